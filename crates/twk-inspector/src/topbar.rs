//! The top bar: connection, public URL, target, round trip and counts. The public URL is
//! never cut: when everything does not fit on one line the bar takes two (status and URL on
//! the first, target, round trip and counts on the second), and the least important parts
//! shorten first.

use crate::model::{Conn, Model};
use crate::sanitize::clean_line;
use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

fn bar() -> Style {
    Style::new().bg(Color::Rgb(30, 30, 46)).fg(Color::White)
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `twk`, the connection state and the public URL (whole), with the loopback warning in the
/// longest form that fits `width` (none when nothing fits).
fn status(m: &Model, width: usize) -> Vec<Span<'static>> {
    let bar = bar();
    let mut spans = vec![Span::styled(" twk ", bar.add_modifier(Modifier::BOLD))];
    match &m.conn {
        Conn::Connected { public_url, .. } => {
            spans.push(Span::styled("● connected ", bar.fg(Color::Green)));
            spans.push(Span::styled(
                clean_line(public_url, 200),
                bar.add_modifier(Modifier::BOLD),
            ));
            if m.embedded {
                let used = Line::from(spans.clone()).width();
                let warning = [
                    " ⚠ loopback: providers can't reach it",
                    " ⚠ loopback only",
                    " ⚠",
                ]
                .into_iter()
                .find(|w| used + Span::raw(*w).width() <= width);
                if let Some(w) = warning {
                    spans.push(Span::styled(w, bar.fg(Color::Yellow)));
                }
            }
        }
        Conn::Connecting { attempt } => spans.push(Span::styled(
            if *attempt == 0 {
                "◌ connecting…".to_owned()
            } else {
                format!("◌ connecting (attempt {})…", attempt + 1)
            },
            bar.fg(Color::Yellow),
        )),
        Conn::Reconnecting {
            retry_at_ms,
            reason,
        } => {
            let secs = (retry_at_ms.saturating_sub(m.now_ms) + 999).max(0) / 1000;
            spans.push(Span::styled(
                format!("◌ reconnecting in {secs} s "),
                bar.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
            // The agent's reason says what failed ("relay unreachable: …", "tunnel lost: …");
            // a prefix here would repeat it, or be wrong.
            spans.push(Span::styled(clean_line(reason, 120), bar.fg(Color::Red)));
        }
        Conn::Stopped => spans.push(Span::styled("■ stopped", bar.fg(Color::Red))),
    }
    spans
}

/// `→ target │ rtt 12 ms`.
fn route(m: &Model) -> Vec<Span<'static>> {
    let bar = bar();
    vec![
        Span::styled(" → ", bar.fg(Color::Gray)),
        Span::styled(clean_line(&m.target, 120), bar),
        Span::styled(" │ ", bar.fg(Color::Gray)),
        Span::styled(
            m.rtt_ms
                .map_or("rtt –".to_owned(), |r| format!("rtt {r} ms")),
            bar,
        ),
    ]
}

/// `7 total · 1 error · 2 refused · 2 invalid sig`: deliveries, a Basic-auth handshake one;
/// `refused` and `missed` only when there are any.
fn counts(m: &Model) -> Line<'static> {
    let bar = bar();
    let c = m.counts;
    let warn = |n: u64| if n > 0 { bar.fg(Color::Red) } else { bar };
    let mut spans = vec![
        Span::styled(format!(" {} total", group(c.total)), bar),
        Span::styled(" · ", bar.fg(Color::Gray)),
        Span::styled(
            format!(
                "{} error{}",
                group(c.errors),
                if c.errors == 1 { "" } else { "s" }
            ),
            warn(c.errors),
        ),
    ];
    // The relay's own answers, only when there are any: most sessions have none.
    for (n, what) in [(c.refused, "refused"), (c.missed, "missed")] {
        if n > 0 {
            spans.push(Span::styled(" · ", bar.fg(Color::Gray)));
            spans.push(Span::styled(format!("{} {what}", group(n)), warn(n)));
        }
    }
    spans.push(Span::styled(" · ", bar.fg(Color::Gray)));
    spans.push(Span::styled(
        format!("{} invalid sig ", group(c.invalid)),
        warn(c.invalid),
    ));
    Line::from(spans)
}

/// Lines the top bar needs at `width` columns: 1 when status, URL, route and counts fit
/// side by side, else 2.
pub fn height(m: &Model, width: u16) -> u16 {
    let width = usize::from(width);
    let one = Line::from(status(m, usize::MAX)).width()
        + Line::from(route(m)).width()
        + counts(m).width()
        + 1;
    if one <= width { 1 } else { 2 }
}

/// Draws the bar into `area` (one or two lines, as [`height`] said).
pub fn draw(m: &Model, f: &mut Frame, area: Rect) {
    let bar = bar();
    f.render_widget(Paragraph::new("").style(bar), area);
    let width = usize::from(area.width);
    let last = Rect {
        y: area.bottom().saturating_sub(1),
        height: area.height.min(1),
        ..area
    };
    let counts = counts(m);
    let cw = (counts.width() as u16).min(area.width);
    let (first, second) = if area.height >= 2 {
        (status(m, width), route(m))
    } else {
        let mut one = status(m, usize::MAX);
        one.extend(route(m));
        (one, Vec::new())
    };
    let first_area = Rect { height: 1, ..area };
    if area.height >= 2 {
        f.render_widget(Paragraph::new(Line::from(first)).style(bar), first_area);
        let left = Rect {
            width: area.width.saturating_sub(cw + 1),
            ..last
        };
        f.render_widget(Paragraph::new(Line::from(second)).style(bar), left);
    } else {
        let left = Rect {
            width: area.width.saturating_sub(cw + 1),
            ..first_area
        };
        f.render_widget(Paragraph::new(Line::from(first)).style(bar), left);
    }
    f.render_widget(
        Paragraph::new(counts)
            .style(bar)
            .alignment(Alignment::Right),
        last.intersection(Rect {
            x: last.right().saturating_sub(cw),
            width: cw,
            ..last
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::group;

    #[test]
    fn counts_read_in_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(100), "100");
        assert_eq!(group(4210), "4,210");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
