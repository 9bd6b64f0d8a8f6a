//! The Signature tab: the verdict in words, the provider's event, and the diagnosis of a
//! mismatch (what was checked, the likely cause, the signed string).

use crate::sanitize::clean_lines;
use crate::style::{dim, key, kv, prose_width, verdict_mark, wrapped};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use twk_capture::Exchange;
use twk_providers::{Analysis, SecretSource, Verdict};

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

/// What the headline adds when the signature held with twk's test secret only.
const TEST_SECRET_WORDS: &str = " (twk's test secret)";

/// Where that secret comes from, for the `secret` line.
const TEST_SECRET_NOTE: &str = "twk's test secret for this provider: no secret is configured \
     for it, and `twk-tunnel trigger` signs with this one (kept in test-secrets.toml in twk's \
     data directory; it prints it). Your app needs the same one.";

/// The Signature tab, its prose wrapped to fit a pane `pane` columns wide.
pub(super) fn signature_tab(ex: &Exchange, pane: u16) -> Vec<Line<'static>> {
    let width = prose_width(pane, 2);
    let verdict = ex.verdict;
    let (mark, style) = verdict_mark(verdict);
    let test_secret = ex.matched_secret == Some(SecretSource::TwkTest);
    let mut words = verdict.map_or("not checked", verdict_words).to_owned();
    if test_secret {
        words.push_str(TEST_SECRET_WORDS);
    }
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{mark} "), style),
        Span::styled(words, style.add_modifier(Modifier::BOLD)),
    ])];
    let Some(json) = &ex.analysis else {
        out.push(Line::raw(""));
        out.push(Line::styled(
            "No analysis stored for this exchange (no provider recognised, or recorded without one).",
            dim(),
        ));
        // What the analysis of such a request said, now that it is not stored with it.
        if ex.provider.is_none() {
            let id = ex.id.map_or_else(|| "ID".to_owned(), |id| id.to_string());
            let how =
                format!("`twk-tunnel verify {id} --provider NAME` checks it as that provider's.");
            out.extend(wrapped("hint", &how, dim(), width));
        }
        return out;
    };
    // The provider crate's own type: a row stored by another version that does not read
    // back is shown raw.
    let a: Analysis = match serde_json::from_str(json.text()) {
        Ok(a) => a,
        Err(_) => {
            out.push(Line::styled("analysis (raw):", key()));
            let pretty = serde_json::to_string_pretty(&json.value()).unwrap_or_default();
            out.extend(clean_lines(&pretty).into_iter().map(Line::from));
            return out;
        }
    };
    out.push(Line::raw(""));
    out.push(kv(
        "provider",
        a.provider
            .map(|p| p.as_str())
            .or(ex.provider.as_deref())
            .unwrap_or("unknown"),
    ));
    if let Some(e) = &a.event {
        out.push(kv("event", &e.name));
        if !e.summary.is_empty() {
            out.push(kv("summary", &e.summary));
        }
        if let Some(id) = &e.id {
            out.push(kv("delivery id", id));
        }
    }
    if let Some(v) = &a.matched_variant {
        out.push(kv("matched", v));
    }
    if test_secret {
        out.extend(wrapped("secret", TEST_SECRET_NOTE, Style::new(), width));
    }
    if let Some(s) = a.skew_secs {
        out.push(kv("clock skew", &format!("{s} s (now − signed timestamp)")));
    }
    if let Some(d) = &a.diagnosis {
        out.push(Line::raw(""));
        if !d.summary.is_empty() {
            out.extend(wrapped("diagnosis", &d.summary, Style::new(), width));
        }
        if let Some(s) = &d.likely_cause {
            out.extend(wrapped(
                "likely cause",
                s,
                Style::new().fg(Color::Yellow),
                width,
            ));
        }
        if let Some(s) = &d.expected {
            out.push(kv("expected", s));
        }
        if let Some(s) = &d.received {
            out.push(kv("received", s));
        }
        for h in &d.hints {
            out.extend(wrapped("hint", h, dim(), width));
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
            format!("signed string (escaped; cut every {width} characters):"),
            key(),
        ));
        for l in clean_lines(s) {
            let chars: Vec<char> = l.chars().collect();
            for chunk in chars.chunks(width) {
                out.push(Line::styled(
                    format!("  {}", chunk.iter().collect::<String>()),
                    Style::new().fg(Color::Gray),
                ));
            }
        }
    }
    for n in &a.notes {
        out.extend(wrapped("note", n, dim(), width));
    }
    if Some(a.verdict) != verdict {
        out.push(kv("stored verdict", verdict.map_or("-", Verdict::as_str)));
    }
    out
}
