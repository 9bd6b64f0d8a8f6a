//! The Signature tab: the verdict in words, the provider's event, and the diagnosis of a
//! mismatch (what was checked, the likely cause, the signed string).

use crate::sanitize::clean_lines;
use crate::style::{PROSE_WIDTH, dim, key, kv, verdict_mark, wrapped};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use serde::Deserialize;
use twk_capture::Exchange;
use twk_providers::Verdict;

/// The provider crate's analysis, read leniently from the stored JSON (unknown fields and
/// missing fields are fine).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AnalysisView {
    provider: Option<String>,
    event: Option<EventView>,
    verdict: Option<Verdict>,
    matched_variant: Option<String>,
    signed_string: Option<String>,
    skew_secs: Option<i64>,
    diagnosis: Option<DiagnosisView>,
    notes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventView {
    name: Option<String>,
    summary: Option<String>,
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DiagnosisView {
    summary: Option<String>,
    expected: Option<String>,
    received: Option<String>,
    signed_string: Option<String>,
    likely_cause: Option<String>,
    hints: Vec<String>,
    checked: Vec<String>,
}

fn verdict_words(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid: the signature matches",
        Verdict::Invalid => "invalid: the signature does not match",
        Verdict::Stale => "stale: the signature matches but the timestamp is too old",
        Verdict::Unsigned => "unsigned: the request carries no signature",
        Verdict::NoSecret => "no secret: configure the provider's secret to check this",
        Verdict::Malformed => "malformed: the signature header cannot be parsed",
    }
}

pub(super) fn signature_tab(ex: &Exchange) -> Vec<Line<'static>> {
    let verdict = ex.verdict;
    let (mark, style) = verdict_mark(verdict);
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{mark} "), style),
        Span::styled(
            verdict.map_or("not checked", verdict_words).to_owned(),
            style.add_modifier(Modifier::BOLD),
        ),
    ])];
    let Some(json) = &ex.analysis else {
        out.push(Line::raw(""));
        out.push(Line::styled(
            "No analysis stored for this exchange (no provider recognised, or recorded without one).",
            dim(),
        ));
        return out;
    };
    let a: AnalysisView = match serde_json::from_value(json.clone()) {
        Ok(a) => a,
        Err(_) => {
            out.push(Line::styled("analysis (raw):", key()));
            let pretty = serde_json::to_string_pretty(json).unwrap_or_default();
            out.extend(clean_lines(&pretty).into_iter().map(Line::from));
            return out;
        }
    };
    out.push(Line::raw(""));
    out.push(kv(
        "provider",
        a.provider
            .as_deref()
            .or(ex.provider.as_deref())
            .unwrap_or("unknown"),
    ));
    if let Some(e) = &a.event {
        let name = e.name.as_deref().unwrap_or("-");
        out.push(kv("event", name));
        if let Some(s) = &e.summary {
            out.push(kv("summary", s));
        }
        if let Some(id) = &e.id {
            out.push(kv("delivery id", id));
        }
    }
    if let Some(v) = &a.matched_variant {
        out.push(kv("matched", v));
    }
    if let Some(s) = a.skew_secs {
        out.push(kv("clock skew", &format!("{s} s (now − signed timestamp)")));
    }
    if let Some(d) = &a.diagnosis {
        out.push(Line::raw(""));
        if let Some(s) = &d.summary {
            out.extend(wrapped("diagnosis", s, Style::new()));
        }
        if let Some(s) = &d.likely_cause {
            out.extend(wrapped("likely cause", s, Style::new().fg(Color::Yellow)));
        }
        if let Some(s) = &d.expected {
            out.push(kv("expected", s));
        }
        if let Some(s) = &d.received {
            out.push(kv("received", s));
        }
        for h in &d.hints {
            out.extend(wrapped("hint", h, dim()));
        }
        if !d.checked.is_empty() {
            out.push(kv("checked", &d.checked.join(", ")));
        }
    }
    let signed = a.signed_string.as_deref().or(a
        .diagnosis
        .as_ref()
        .and_then(|d| d.signed_string.as_deref()));
    if let Some(s) = signed {
        out.push(Line::raw(""));
        // Cut at a fixed width, never at spaces, so every character stays visible.
        out.push(Line::styled(
            "signed string (escaped; cut every 100 characters):",
            key(),
        ));
        for l in clean_lines(s) {
            let chars: Vec<char> = l.chars().collect();
            for chunk in chars.chunks(PROSE_WIDTH) {
                out.push(Line::styled(
                    format!("  {}", chunk.iter().collect::<String>()),
                    Style::new().fg(Color::Gray),
                ));
            }
        }
    }
    for n in &a.notes {
        out.extend(wrapped("note", n, dim()));
    }
    if a.verdict.is_some_and(|v| Some(v) != verdict) {
        out.push(kv("stored verdict", verdict.map_or("-", Verdict::as_str)));
    }
    out
}
