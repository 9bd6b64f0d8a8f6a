//! The Timing tab: when each step happened, as a small timeline, how long the provider waits
//! for the answer (and the `slow-answer` lint when the app took longer), and the delivery
//! attempt.

use crate::style::{clock, key, kv};
use jiff::tz::TimeZone;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use twk_capture::StoredExchange;

pub(super) fn timing_tab(stored: &StoredExchange, tz: &TimeZone, pane: u16) -> Vec<Line<'static>> {
    let ex = &stored.exchange;
    let t = &ex.timings;
    let date = jiff::Timestamp::from_millisecond(t.received_ms)
        .map(|ts| ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %Z").to_string())
        .unwrap_or_default();
    let mut out = vec![kv("date", &date)];
    let points = [
        ("received", Some(t.received_ms)),
        ("forwarded", t.forwarded_ms),
        ("first byte", t.first_byte_ms),
        ("done", t.done_ms),
    ];
    let total = t
        .done_ms
        .map(|d| d.saturating_sub(t.received_ms))
        .unwrap_or(0)
        .max(1);
    for (label, at) in points {
        match at {
            Some(at) => {
                let delta = at.saturating_sub(t.received_ms);
                let bar = usize::try_from((delta.clamp(0, total) * 40) / total).unwrap_or(0);
                out.push(Line::from(vec![
                    Span::styled(format!("{label:<14}"), key()),
                    Span::raw(format!("{}  +{delta:>6} ms  ", clock(at, tz, true))),
                    Span::styled("█".repeat(bar), Style::new().fg(Color::Blue)),
                ]));
            }
            None => out.push(kv(label, "-")),
        }
    }
    out.push(Line::raw(""));
    out.push(kv(
        "total",
        &ex.duration_ms()
            .map_or("-".to_owned(), |d| format!("{d} ms")),
    ));
    if let Some((name, limit)) = ex.known_provider().and_then(|p| {
        let limit =
            twk_providers::answer::answer_limit(p, &ex.request_view(&ex.request.body.bytes))?;
        Some((p.display_name(), limit))
    }) {
        out.push(kv(
            "answer within",
            &format!("{} s: {name} stops waiting then", limit.within.as_secs()),
        ));
    }
    out.extend(super::auth::lints_block(
        stored,
        |c| c == twk_capture::LintCode::SlowAnswer,
        pane,
    ));
    out.push(kv("tunnel", &ex.tunnel));
    out.push(kv("request id", &ex.request_id));
    // The group key itself is internal (tunnel, separator, delivery id or body hash): the
    // attempt number says what it means.
    if let Some(a) = stored.attempt {
        let what = match a {
            0 | 1 => "1 (first delivery of this webhook)".to_owned(),
            2 => "2 (the sender delivered the same webhook once before)".to_owned(),
            n => format!(
                "{n} (the sender delivered the same webhook {} times before)",
                n - 1
            ),
        };
        out.push(kv("attempt", &what));
    }
    out
}
