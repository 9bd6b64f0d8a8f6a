//! Shared look: colours and marks of statuses, verdicts and lints, key/value lines, word wrap,
//! and the clock and duration formats, so the list, the detail tabs and help agree.

use crate::sanitize::{clean, clean_line, clean_lines};
use jiff::tz::TimeZone;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use twk_capture::{LintCode, Severity};
use twk_providers::Verdict;

/// Secondary text.
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Labels and keys.
pub fn key() -> Style {
    Style::new().fg(Color::Cyan)
}

/// Headings.
pub fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// A `label         value` line (both sanitized).
pub fn kv(k: &str, v: &str) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{:<14}", clean_line(k, 14)), key()),
        Span::raw(clean(v)),
    ])
}

/// A bold section heading.
pub fn section(title: &str) -> Line<'static> {
    Line::styled(clean_line(title, 256), bold())
}

/// A coloured status code.
pub fn status_span(status: Option<u16>) -> Span<'static> {
    match status {
        None => Span::styled("---", Style::new().fg(Color::Red)),
        Some(s) => {
            let color = match s {
                200..=299 => Color::Green,
                300..=399 => Color::Cyan,
                400..=499 => Color::Yellow,
                _ => Color::Red,
            };
            Span::styled(s.to_string(), Style::new().fg(color))
        }
    }
}

/// The verdict mark of the list: (symbol, style); the symbol is [`Verdict::mark`], the one
/// the plain output prints too.
pub fn verdict_mark(verdict: Option<Verdict>) -> (&'static str, Style) {
    let style = match verdict {
        Some(Verdict::Valid) => Style::new().fg(Color::Green),
        Some(Verdict::Invalid) => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Some(Verdict::Malformed) => Style::new().fg(Color::Magenta),
        Some(Verdict::Stale) => Style::new().fg(Color::Yellow),
        Some(Verdict::NoSecret) => Style::new().fg(Color::Blue),
        Some(Verdict::Unsigned) | None => dim(),
    };
    (verdict.unwrap_or(Verdict::Unsigned).mark(), style)
}

/// The mark of a lint severity in the list and the detail: (glyph, style); the glyph is
/// [`Severity::mark`].
pub fn severity_mark(sev: Severity) -> (&'static str, Style) {
    let style = match sev {
        Severity::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Severity::Warning => Style::new().fg(Color::Yellow),
        Severity::Info => Style::new().fg(Color::Blue),
    };
    (sev.mark(), style)
}

/// A short label of a lint for the list's marks column ([`LintCode::label`], as `log`).
pub fn lint_label(code: LintCode) -> &'static str {
    code.label()
}

/// The style of a lint's mark. The mistake that silently loses callbacks
/// (`401-without-www-authenticate`) is white on red so that it cannot be missed.
pub fn lint_style(code: LintCode) -> Style {
    match code {
        LintCode::Unauthorized401WithoutChallenge => Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD),
        c => severity_mark(c.severity()).1,
    }
}

/// Widest prose (diagnosis, hints, notes) is wrapped at, however wide the pane: lines
/// longer than this are hard to read.
pub const PROSE_WIDTH: usize = 100;

/// The width prose indented `indent` columns is wrapped at in a pane `pane` columns wide:
/// inside its border and the indent, at most [`PROSE_WIDTH`]. An 80-column terminal once
/// clipped the diagnosis at column 78 (found by a new user's walk-through).
pub fn prose_width(pane: u16, indent: u16) -> usize {
    usize::from(pane.saturating_sub(2 + indent)).clamp(20, PROSE_WIDTH)
}

/// Word-wraps one display line at `width` characters (long words are split).
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for word in line.split(' ') {
        let mut word = word.to_owned();
        let mut wlen = word.chars().count();
        while wlen > width {
            if cur_len > 0 {
                out.push(std::mem::take(&mut cur));
                cur_len = 0;
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            wlen -= width;
            out.push(head);
        }
        let sep = usize::from(cur_len > 0);
        if cur_len + sep + wlen > width && cur_len > 0 {
            out.push(std::mem::take(&mut cur));
            cur_len = 0;
        }
        if cur_len > 0 {
            cur.push(' ');
            cur_len += 1;
        }
        cur.push_str(&word);
        cur_len += wlen;
    }
    if cur_len > 0 || out.is_empty() {
        out.push(cur);
    }
    out
}

/// `label:` then `text` sanitized, wrapped at `width` and indented.
pub fn wrapped(label: &str, text: &str, style: Style, width: usize) -> Vec<Line<'static>> {
    let mut out = vec![Line::styled(format!("{label}:"), key())];
    out.extend(
        clean_lines(text)
            .iter()
            .flat_map(|l| wrap(l, width))
            .map(|l| Line::styled(format!("  {l}"), style)),
    );
    out
}

/// A duration for people: `180 ms` or `12.5 s` (the one formatter of the list, the
/// detail and the timeline).
pub fn millis(ms: i64) -> String {
    if ms.abs() < 10_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// `HH:MM:SS.mmm` in `tz`.
pub fn clock(ms: i64, tz: &TimeZone, millis: bool) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => {
            let z = ts.to_zoned(tz.clone());
            if millis {
                z.strftime("%H:%M:%S%.3f").to_string()
            } else {
                z.strftime("%H:%M:%S").to_string()
            }
        }
        Err(_) => "??:??:??".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words() {
        assert_eq!(wrap("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghijkl", 8), vec!["abcdefgh", "ijkl"]);
        assert_eq!(wrap("", 8), vec![""]);
    }

    #[test]
    fn millis_switches_to_seconds_at_ten() {
        assert_eq!(millis(180), "180 ms");
        assert_eq!(millis(12_500), "12.5 s");
        assert_eq!(millis(-200), "-200 ms");
    }
}
