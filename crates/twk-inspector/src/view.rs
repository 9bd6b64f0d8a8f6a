//! Drawing: [`view`] renders the [`Model`] into a ratatui [`Frame`]. It reads only the model
//! (rows already paged in, detail already rendered), so a frame costs the same with ten or
//! with 100,000 stored exchanges.
//!
//! All untrusted text reaches the buffer through [`crate::sanitize`].

use crate::detail::Tab;
use crate::keymap;
use crate::layout::{self, Areas};
use crate::model::{Conn, Focus, Level, Model};
use crate::sanitize::clean_line;
use crate::style::{
    clock, dim, lint_label, lint_style, millis, severity_mark, status_span, verdict_mark,
};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Tabs};
use twk_capture::Summary;

/// Draws the whole screen.
pub fn view(m: &Model, f: &mut Frame) {
    let a = layout::areas((f.area().width, f.area().height), m.focus);
    top_bar(m, f, a.top);
    list(m, f, &a);
    detail(m, f, a.detail);
    status_line(m, f, a.status);
    if m.help {
        help(f, f.area());
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn top_bar(m: &Model, f: &mut Frame, area: Rect) {
    let bar = Style::new().bg(Color::Rgb(30, 30, 46)).fg(Color::White);
    let mut spans = vec![Span::styled(" twk ", bar.add_modifier(Modifier::BOLD))];
    match &m.conn {
        Conn::Connected { public_url, .. } => {
            spans.push(Span::styled("● connected ", bar.fg(Color::Green)));
            spans.push(Span::styled(
                clean_line(public_url, 200),
                bar.add_modifier(Modifier::BOLD),
            ));
            if m.embedded {
                spans.push(Span::styled(
                    // Short enough to survive next to the counts at 120 columns; the plain
                    // output and docs/deploy.md say what to do instead.
                    " ⚠ loopback: providers can't reach",
                    bar.fg(Color::Yellow),
                ));
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
    spans.push(Span::styled(" → ", bar.fg(Color::Gray)));
    spans.push(Span::styled(clean_line(&m.target, 120), bar));
    spans.push(Span::styled(" │ ", bar.fg(Color::Gray)));
    spans.push(Span::styled(
        m.rtt_ms
            .map_or("rtt –".to_owned(), |r| format!("rtt {r} ms")),
        bar,
    ));
    let c = m.counts;
    let counts = vec![
        Span::styled(format!(" {} total", group(c.total)), bar),
        Span::styled(" · ", bar.fg(Color::Gray)),
        Span::styled(
            format!("{} errors", group(c.errors)),
            if c.errors > 0 {
                bar.fg(Color::Red)
            } else {
                bar
            },
        ),
        Span::styled(" · ", bar.fg(Color::Gray)),
        Span::styled(
            format!("{} invalid sig ", group(c.invalid)),
            if c.invalid > 0 {
                bar.fg(Color::Red)
            } else {
                bar
            },
        ),
    ];
    let counts = Line::from(counts);
    let cw = (counts.width() as u16).min(area.width);
    let left = Rect {
        width: area.width.saturating_sub(cw + 1),
        ..area
    };
    f.render_widget(Paragraph::new("").style(bar), area);
    f.render_widget(Paragraph::new(Line::from(spans)).style(bar), left);
    f.render_widget(
        Paragraph::new(counts)
            .style(bar)
            .alignment(Alignment::Right),
        area.intersection(Rect {
            x: area.right().saturating_sub(cw),
            width: cw,
            ..area
        }),
    );
}

fn duration(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_owned(), millis)
}

/// The lock of a Basic-auth handshake row (two columns wide: U+1F512 is an emoji).
pub const LOCK: &str = "\u{1f512}";

/// How a row takes part in a Basic-auth handshake, for the marks column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    /// The row as listed.
    Row,
    /// The listed row of a handshake that is expanded.
    Open,
    /// The leg-1 line drawn under an expanded row.
    Leg1,
}

/// The marks column: the Basic-auth lock (`🔒▸` a handshake of two legs, expandable with
/// space; `🔒▾` expanded; `🔒1` a leg 1 alone or the leg-1 line; `🔒2` a leg 2 whose leg 1
/// is gone), the first (most severe) lint as `⚠ label` (`+N` more), then attempt and replay
/// marks (a handshake counts as one delivery attempt).
fn marks(s: &Summary, fold: Fold) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let sep = |spans: &mut Vec<Span<'static>>| {
        if !spans.is_empty() {
            spans.push(Span::raw(" "));
        }
    };
    if let Some(h) = s.handshake {
        let tail = match (fold, h.leg, h.with) {
            (Fold::Leg1, ..) => "1",
            (Fold::Open, ..) => "▾",
            (Fold::Row, twk_capture::Leg::Retry, Some(_)) => "▸",
            (Fold::Row, twk_capture::Leg::Challenge, _) => "1",
            (Fold::Row, ..) => "2",
        };
        spans.push(Span::styled(
            format!("{LOCK}{tail}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(first) = s.lints.first() {
        sep(&mut spans);
        let (glyph, _) = severity_mark(first.severity());
        spans.push(Span::styled(
            format!("{glyph} {}", lint_label(*first)),
            lint_style(*first),
        ));
        if s.lints.len() > 1 {
            spans.push(Span::styled(
                format!("+{}", s.lints.len() - 1),
                lint_style(*first),
            ));
        }
    }
    let magenta = Style::new().fg(Color::Magenta);
    // A handshake's retry is the same delivery as its leg 1 (the store counts it as the next
    // attempt): the handshake row shows the delivery's attempt, not the retry's.
    let retry = fold != Fold::Leg1
        && s.handshake
            .is_some_and(|h| h.leg == twk_capture::Leg::Retry && h.with.is_some());
    let attempt = s
        .attempt
        .map(|a| if retry { a.saturating_sub(1) } else { a });
    if let Some(a) = attempt.filter(|a| *a > 1) {
        sep(&mut spans);
        spans.push(Span::styled(format!("×{a}"), magenta));
    }
    if let Some(of) = s.replay_of {
        sep(&mut spans);
        spans.push(Span::styled(format!("↻{of}"), magenta));
    }
    Line::from(spans)
}

fn row<'a>(m: &Model, s: &'a Summary, fold: Fold) -> Row<'a> {
    let (mark, mark_style) = verdict_mark(s.verdict);
    let pe = match (&s.provider, &s.event) {
        (Some(p), Some(e)) => format!("{p} · {e}"),
        (Some(p), None) => p.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => String::new(),
    };
    let failed = s.failure_side.is_some();
    let id = match fold {
        Fold::Leg1 => format!(" └{}", s.id),
        _ => s.id.to_string(),
    };
    Row::new(vec![
        Cell::from(Span::styled(id, dim())),
        Cell::from(clock(s.received_ms, &m.tz, false)),
        Cell::from(Span::styled(
            clean_line(&s.method, 7),
            Style::new().add_modifier(Modifier::BOLD),
        )),
        Cell::from(clean_line(&s.path, 512)),
        Cell::from(status_span(s.status)),
        Cell::from(
            Line::from(Span::styled(
                duration(s.duration_ms),
                if failed {
                    Style::new().fg(Color::Red)
                } else {
                    Style::new()
                },
            ))
            .alignment(Alignment::Right),
        ),
        Cell::from(Span::styled(mark, mark_style)),
        Cell::from(clean_line(&pe, 64)),
        Cell::from(marks(s, fold)),
    ])
}

fn list(m: &Model, f: &mut Frame, a: &Areas) {
    let l = &m.list;
    let mut title = vec![Span::styled(
        " Exchanges ",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if l.total > 0 {
        title.push(Span::raw(format!(
            "{}/{} ",
            group(l.selected + 1),
            group(l.total)
        )));
    }
    if !m.filter_text.is_empty() {
        title.push(Span::styled(
            format!("filter: {} ", clean_line(&m.filter_text, 80)),
            Style::new().fg(Color::Yellow),
        ));
    }
    let state = if l.paused {
        Span::styled(" paused ", Style::new().fg(Color::Black).bg(Color::Yellow))
    } else if l.follow {
        Span::styled(" following ", Style::new().fg(Color::Green))
    } else if l.unseen > 0 {
        Span::styled(
            format!(" {} new ↑ (g) ", group(l.unseen)),
            Style::new().fg(Color::Cyan),
        )
    } else {
        Span::styled(" scrolled (g: newest) ", dim())
    };
    let border = if m.focus == Focus::List {
        Style::new().fg(Color::Cyan)
    } else {
        dim()
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Line::from(title))
        .title_top(Line::from(state).alignment(Alignment::Right));
    let inner = block.inner(a.list);
    f.render_widget(block, a.list);
    if l.total == 0 && !l.loading {
        let text = if m.filter_text.is_empty() {
            match &m.conn {
                Conn::Connected { public_url, .. } => format!(
                    "No exchanges yet. Send a webhook to {}",
                    clean_line(public_url, 200)
                ),
                _ => "No exchanges yet.".to_owned(),
            }
        } else {
            "No exchange matches the filter (/ to change it, / then Enter on an empty line to clear)."
                .to_owned()
        };
        f.render_widget(Paragraph::new(Line::styled(text, dim())), inner);
        return;
    }
    let vh = u64::from(a.list_rows());
    let open = l.expanded.as_ref().map(|e| e.row);
    let lines = l.lines(vh);
    let selected_line = lines
        .iter()
        .position(|&(pos, leg1)| pos == l.selected && leg1 == l.on_leg1);
    let rows: Vec<Row> = lines
        .iter()
        .map(|&(pos, leg1)| match (l.row(pos), leg1) {
            (Some(_), true) => match l.open_leg1() {
                Some(s) => row(m, s, Fold::Leg1),
                None => Row::new(vec![Cell::from("")]),
            },
            (Some(s), false) => row(
                m,
                s,
                if Some(s.id) == open {
                    Fold::Open
                } else {
                    Fold::Row
                },
            ),
            (None, _) => Row::new(vec![Cell::from(""), Cell::from(Span::styled("…", dim()))]),
        })
        .collect();
    let header = Row::new(vec![
        "#",
        "time",
        "method",
        "path",
        "st",
        "took",
        "sig",
        "provider · event",
        "marks",
    ])
    .style(Style::new().fg(Color::Gray).add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Fill(1),
        Constraint::Length(3),
        Constraint::Length(8),
        Constraint::Length(3),
        Constraint::Length(30),
        Constraint::Length(16),
    ];
    let highlight = if m.focus == Focus::List {
        Style::new()
            .bg(Color::Rgb(50, 50, 80))
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().bg(Color::Rgb(40, 40, 40))
    };
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(highlight)
        .highlight_symbol("▶")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = TableState::default();
    if l.total > 0 {
        state.select(selected_line);
    }
    f.render_stateful_widget(table, inner, &mut state);
}

fn detail(m: &Model, f: &mut Frame, area: Rect) {
    let border = if m.focus == Focus::Detail {
        Style::new().fg(Color::Cyan)
    } else {
        dim()
    };
    let title = m
        .detail
        .as_ref()
        .map_or(" Detail ".to_owned(), |d| format!(" {} ", d.title));
    let mut title = vec![Span::styled(
        title,
        Style::new().add_modifier(Modifier::BOLD),
    )];
    // The lints are visible from every tab, next to the title.
    if let Some(badge) = m.detail.as_ref().and_then(|d| d.lint_badge.clone()) {
        title.push(badge);
    }
    let mut block = Block::new()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Line::from(title));
    if m.reveal {
        block = block.title_top(
            Line::styled(" secrets shown (s) ", Style::new().fg(Color::Yellow))
                .alignment(Alignment::Right),
        );
    }
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let tabs = Tabs::new(Tab::ALL.iter().enumerate().map(|(i, t)| {
        Line::from(vec![
            Span::styled(format!("{} ", i + 1), dim()),
            Span::raw(t.title()),
        ])
    }))
    .select(m.tab.index())
    .style(Style::new().fg(Color::Gray))
    .highlight_style(
        Style::new()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    );
    f.render_widget(tabs, Rect { height: 1, ..inner });
    let body = Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    };
    let Some(d) = &m.detail else {
        let text = if m.list.total == 0 {
            "Details of the selected exchange appear here."
        } else {
            "Loading…"
        };
        f.render_widget(Paragraph::new(Line::styled(text, dim())), body);
        return;
    };
    let lines = d.lines(m.tab);
    let start = m.detail_scroll.min(lines.len());
    let end = (start + usize::from(body.height)).min(lines.len());
    let shown: Vec<Line> = lines.get(start..end).unwrap_or_default().to_vec();
    f.render_widget(Paragraph::new(shown), body);
    if lines.len() > usize::from(body.height) {
        let pos = format!(" {}-{}/{} ", start + 1, end, lines.len());
        let w = pos.chars().count() as u16;
        if area.width > w + 2 {
            let r = Rect::new(area.x + area.width - w - 1, area.y + area.height - 1, w, 1);
            f.render_widget(Paragraph::new(Span::styled(pos, dim())), r);
        }
    }
}

fn status_line(m: &Model, f: &mut Frame, area: Rect) {
    let line = if let Some(input) = &m.input {
        Line::from(vec![
            Span::styled(
                "/",
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ),
            Span::raw(clean_line(input, 256)),
            Span::styled("█", Style::new().fg(Color::Yellow)),
            Span::styled(
                "   Enter apply · Esc cancel · terms: provider: event: status: verdict:",
                dim(),
            ),
        ])
    } else if let Some(n) = &m.notice {
        let style = match n.level {
            Level::Info => Style::new().fg(Color::Cyan),
            Level::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        };
        Line::styled(clean_line(&n.text, 300), style)
    } else if let Some(e) = &m.recorder_error {
        Line::styled(
            format!(
                "not recording: {} (forwarding continues)",
                clean_line(e, 200)
            ),
            Style::new().fg(Color::Red),
        )
    } else {
        let key = Style::new().fg(Color::Cyan);
        let mut spans = Vec::new();
        for (k, what) in [
            ("?", "help"),
            ("Enter", "details"),
            ("space", "expand 🔒"),
            ("/", "filter"),
            ("r", "replay"),
            ("R", "re-sign"),
            ("e", "edit"),
            ("c", "curl"),
            ("y", "body"),
            ("p", "pause"),
            ("q", "quit"),
        ] {
            spans.push(Span::styled(k, key));
            spans.push(Span::styled(format!(" {what}  "), dim()));
        }
        if m.dropped > 0 {
            spans.push(Span::styled(
                format!("{} not recorded (queue full)", group(m.dropped)),
                Style::new().fg(Color::Red),
            ));
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(line), area);
}

fn help(f: &mut Frame, screen: Rect) {
    let rows = keymap::KEYS.len() + keymap::MARKS.len() + 5;
    let h = (rows as u16).min(screen.height);
    let w = 78.min(screen.width);
    let area = Rect::new(
        screen.x + (screen.width - w) / 2,
        screen.y + (screen.height - h) / 2,
        w,
        h,
    );
    let key = Style::new().fg(Color::Cyan);
    let mut lines: Vec<Line> = keymap::KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {}", pad(k, 14)), key),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " Marks",
        Style::new().add_modifier(Modifier::BOLD),
    ));
    lines.extend(keymap::MARKS.iter().map(|(k, what)| {
        Line::from(vec![
            Span::styled(format!(" {}", pad(k, 14)), key),
            Span::raw(*what),
        ])
    }));
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Span::styled(
                    " Keys ",
                    Style::new().add_modifier(Modifier::BOLD),
                ))
                .title_bottom(Line::styled(" any key closes ", dim()).alignment(Alignment::Right))
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        area,
    );
}

/// `s` padded with spaces to `width` terminal columns (the lock is two columns wide).
fn pad(s: &str, width: usize) -> String {
    let w = Span::raw(s).width();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// The buffer's text, one line per row with trailing spaces removed (for snapshots and docs).
/// A wide symbol (the lock) covers two cells; the cell it hides is skipped, so the text lines
/// up as on a terminal.
pub fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut hidden = 0usize;
        for x in area.left()..area.right() {
            if hidden > 0 {
                hidden -= 1;
                continue;
            }
            if let Some(cell) = buf.cell((x, y)) {
                line.push_str(cell.symbol());
                hidden = Span::raw(cell.symbol()).width().saturating_sub(1);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
