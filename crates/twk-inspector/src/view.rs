//! Drawing: [`view`] renders the [`Model`] into a ratatui [`Frame`]. It reads only the model
//! (rows already paged in, detail already rendered), so a frame costs the same with ten or
//! with 100,000 stored exchanges.
//!
//! All untrusted text reaches the buffer through [`crate::sanitize`].

use crate::detail::Tab;
use crate::layout::{self, Areas};
use crate::model::{Conn, Focus, InFlight, Level, Model};
use crate::sanitize::clean_line;
use crate::style::{
    clock, dim, lint_label, lint_style, millis, severity_mark, status_span, verdict_mark,
};
use crate::topbar::{self, group};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Tabs};
use twk_capture::Summary;
use twk_capture::redact;
use twk_providers::SecretSource;

/// Draws the whole screen.
pub fn view(m: &Model, f: &mut Frame) {
    let size = (f.area().width, f.area().height);
    let a = layout::areas(size, m.focus, topbar::height(m, size.0));
    topbar::draw(m, f, a.top);
    list(m, f, &a);
    detail(m, f, a.detail);
    status_line(m, f, a.status);
    if let Some(p) = &m.picker {
        crate::picker::draw(f, f.area(), p, &m.triggers);
    }
    if m.help {
        crate::help::draw(f, f.area(), m.help_scroll);
    }
}

fn duration(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_owned(), millis)
}

/// The mark of a request that arrived while the tunnel was offline (kept by the relay).
pub const MISSED: &str = "⊘ missed";

/// The mark of a request the relay refused itself (429, 413): the app never saw it.
pub const REFUSED: &str = "⊘ refused";

/// The lock of a Basic-auth handshake row (two columns wide: U+1F512 is an emoji).
pub const LOCK: &str = "\u{1f512}";

/// The mark of a verdict that holds only with twk's test secret (no secret configured for
/// the provider: `trigger` signed with twk's own), and its narrow-screen form.
pub const TEST_MARK: &str = "twk-test";
const TEST_MARK_COMPACT: &str = "t";

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
/// is gone), the first (most severe) lint as `⚠ label` (`+N` more), `twk-test` when the
/// signature held with twk's test secret, then attempt and replay marks (a handshake counts
/// as one delivery attempt).
fn marks(s: &Summary, fold: Fold, compact: bool) -> Line<'static> {
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
        // Narrow screens show the glyph alone; the detail's title names the lint.
        let text = if compact {
            glyph.to_owned()
        } else {
            format!("{glyph} {}", lint_label(*first))
        };
        spans.push(Span::styled(text, lint_style(*first)));
        if s.lints.len() > 1 {
            spans.push(Span::styled(
                format!("+{}", s.lints.len() - 1),
                lint_style(*first),
            ));
        }
    }
    if s.matched_secret == Some(SecretSource::TwkTest) {
        sep(&mut spans);
        // Which secret held: twk's own, not one the developer configured.
        let text = if compact {
            TEST_MARK_COMPACT
        } else {
            TEST_MARK
        };
        spans.push(Span::styled(text, Style::new().fg(Color::Green)));
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
    if s.missed {
        sep(&mut spans);
        spans.push(Span::styled(MISSED, Style::new().fg(Color::Yellow)));
    }
    if s.refused {
        sep(&mut spans);
        spans.push(Span::styled(REFUSED, Style::new().fg(Color::Red)));
    }
    Line::from(spans)
}

/// The provider · event label of a row; `full: false` drops the provider (narrow screens:
/// the event name is what tells rows apart; the provider is in the detail).
fn event_label(s: &Summary, full: bool) -> String {
    provider_event(s.provider.as_deref(), s.event.as_deref(), full)
}

/// The provider · event label of an in-flight request (what its head shows).
fn flight_label(f: &InFlight, full: bool) -> String {
    provider_event(f.provider.as_deref(), f.event.as_deref(), full)
}

fn provider_event(provider: Option<&str>, event: Option<&str>, full: bool) -> String {
    let label = match (provider, event) {
        (Some(p), Some(e)) if full => format!("{p} · {e}"),
        (_, Some(e)) => e.to_owned(),
        (Some(p), None) => p.to_owned(),
        (None, None) => String::new(),
    };
    clean_line(&label, 64)
}

/// A request still being forwarded: a spinner for its status and the time so far (the
/// stored row replaces it when it is done).
fn flight_row(m: &Model, f: &InFlight, cols: Cols) -> Row<'static> {
    const SPIN: [&str; 4] = ["◐", "◓", "◑", "◒"];
    let end = f.done_ms.unwrap_or(m.now_ms);
    let elapsed = end.saturating_sub(f.received_ms).max(0);
    let frame = usize::try_from((m.now_ms / 125).rem_euclid(4)).unwrap_or(0);
    let waiting = Style::new().fg(Color::Cyan);
    Row::new(vec![
        Cell::from(Span::styled("…", dim())),
        Cell::from(clock(f.received_ms, &m.tz, false)),
        Cell::from(Span::styled(
            clean_line(&f.method, 7),
            Style::new().add_modifier(Modifier::BOLD),
        )),
        // The list has no reveal key: a secret query value shows only in a revealed detail.
        Cell::from(clean_line(&redact::redact_query(&f.path, false), 512)),
        Cell::from(Span::styled(
            if f.done_ms.is_some() {
                "✓"
            } else {
                SPIN[frame]
            },
            waiting,
        )),
        Cell::from(Line::from(Span::styled(millis(elapsed), waiting)).alignment(Alignment::Right)),
        Cell::from(""),
        Cell::from(flight_label(f, cols.full_event)),
        Cell::from(Span::styled(
            if f.done_ms.is_some() {
                "done"
            } else {
                "in flight"
            },
            waiting,
        )),
    ])
}

/// Column widths of the list for the rows on screen.
#[derive(Debug, Clone, Copy)]
struct Cols {
    id: u16,
    method: u16,
    event: u16,
    marks: u16,
    /// Provider and event (`false`: event alone).
    full_event: bool,
    /// Lint marks as a glyph without their label.
    compact: bool,
}

/// Columns by priority: number, time, method, status, duration and verdict always whole;
/// then event names (with the provider when it fits) and marks as wide as the rows on
/// screen need; the path takes what is left (at least [`MIN_PATH`]).
fn columns(rows: &[(&Summary, Fold)], flying: &[&InFlight], width: u16) -> Cols {
    let cells = |f: &dyn Fn(&Summary, Fold) -> usize| {
        rows.iter().map(|(s, fold)| f(s, *fold)).max().unwrap_or(0)
    };
    let flights = |full: bool| {
        flying
            .iter()
            .map(|f| Span::raw(flight_label(f, full)).width())
            .max()
            .unwrap_or(0)
    };
    let id = cells(&|s, _| s.id.to_string().len() + 2).clamp(3, 12) as u16;
    let method = cells(&|s, _| s.method.chars().count())
        .max(
            flying
                .iter()
                .map(|f| f.method.chars().count())
                .max()
                .unwrap_or(0),
        )
        .clamp(4, 7) as u16;
    let full = cells(&|s, _| Span::raw(event_label(s, true)).width()).max(flights(true)) as u16;
    let short = cells(&|s, _| Span::raw(event_label(s, false)).width()).max(flights(false)) as u16;
    // "in flight" is the widest mark an in-flight row has.
    let flight_marks = if flying.is_empty() { 5 } else { 9 };
    let marks_full = (cells(&|s, fold| marks(s, fold, false).width()) as u16).max(flight_marks);
    let marks_compact = (cells(&|s, fold| marks(s, fold, true).width()) as u16).max(flight_marks);
    // Highlight symbol, 8 gaps and the fixed columns (time 8, status 3, duration 7, verdict 3).
    let fixed = 1 + 8 + id + 8 + method + 3 + 7 + 3;
    let rest = width.saturating_sub(fixed + MIN_PATH);
    let (full_event, event, compact) = if full.max(16) + marks_full <= rest {
        (true, full.max(16), false)
    } else if short.max(5) + marks_full <= rest {
        (false, short.max(5), false)
    } else {
        let event = short.min(rest.saturating_sub(marks_compact)).max(5);
        (false, event, true)
    };
    let marks = if compact { marks_compact } else { marks_full };
    Cols {
        id,
        method,
        event,
        marks: marks.min(rest.saturating_sub(event)).max(1),
        full_event,
        compact,
    }
}

/// The path column never shrinks below this (when the screen has room at all).
const MIN_PATH: u16 = 10;

fn row<'a>(m: &Model, s: &'a Summary, fold: Fold, cols: Cols) -> Row<'a> {
    let (mark, mark_style) = verdict_mark(s.verdict);
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
        Cell::from(clean_line(&redact::redact_query(&s.path, false), 512)),
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
        Cell::from(event_label(s, cols.full_event)),
        Cell::from(marks(s, fold, cols.compact)),
    ])
}

/// The list's title: position, filter and tunnel scope.
fn list_title(m: &Model) -> Line<'static> {
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
    match m.scope() {
        Some(t) if m.counts.other > 0 => title.push(Span::styled(
            format!(
                "tunnel {} · {} more in other tunnels (a: all) ",
                clean_line(&t, 40),
                group(m.counts.other)
            ),
            dim(),
        )),
        None if m.tunnel.is_some() => title.push(Span::styled(
            "all tunnels (a: this one) ",
            Style::new().fg(Color::Magenta),
        )),
        _ => {}
    }
    Line::from(title)
}

/// Following, paused, or how many new rows arrived above.
fn list_state(l: &crate::model::List) -> Span<'static> {
    if l.paused {
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
    }
}

fn list(m: &Model, f: &mut Frame, a: &Areas) {
    let l = &m.list;
    let title = list_title(m);
    let state = list_state(l);
    let border = if m.focus == Focus::List {
        Style::new().fg(Color::Cyan)
    } else {
        dim()
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(border)
        .title(title)
        .title_top(Line::from(state).alignment(Alignment::Right));
    let inner = block.inner(a.list);
    f.render_widget(block, a.list);
    if l.total == 0 && !l.loading && m.in_flight.is_empty() {
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
    let vh = m.list_rows();
    let flying: Vec<&InFlight> = m
        .in_flight
        .iter()
        .take(usize::from(m.in_flight_lines(a.list_rows())))
        .collect();
    let open = l.expanded.as_ref().map(|e| e.row);
    let lines = l.lines(vh);
    let selected_line = lines
        .iter()
        .position(|&(pos, leg1)| pos == l.selected && leg1 == l.on_leg1)
        .map(|i| i + flying.len());
    let shown: Vec<Option<(&Summary, Fold)>> = lines
        .iter()
        .map(|&(pos, leg1)| match (l.row(pos), leg1) {
            (Some(_), true) => l.open_leg1().map(|s| (s, Fold::Leg1)),
            (Some(s), false) => Some((
                s,
                if Some(s.id) == open {
                    Fold::Open
                } else {
                    Fold::Row
                },
            )),
            (None, _) => None,
        })
        .collect();
    let present: Vec<(&Summary, Fold)> = shown.iter().flatten().copied().collect();
    let cols = columns(&present, &flying, inner.width);
    let flight_rows = flying.iter().map(|f| flight_row(m, f, cols));
    let rows: Vec<Row> = flight_rows
        .chain(shown.iter().zip(&lines).map(|(r, &(_, leg1))| match r {
            Some((s, fold)) => row(m, s, *fold, cols),
            None if leg1 => Row::new(vec![Cell::from("")]),
            None => Row::new(vec![Cell::from(""), Cell::from(Span::styled("…", dim()))]),
        }))
        .collect();
    let header = Row::new(vec![
        "#",
        "time",
        "method",
        "path",
        "st",
        "took",
        "sig",
        if cols.full_event {
            "provider · event"
        } else {
            "event"
        },
        "marks",
    ])
    .style(Style::new().fg(Color::Gray).add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(cols.id),
        Constraint::Length(8),
        Constraint::Length(cols.method),
        Constraint::Fill(1),
        Constraint::Length(3),
        Constraint::Length(7),
        Constraint::Length(3),
        Constraint::Length(cols.event),
        Constraint::Length(cols.marks),
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

/// Key hints in display order, with as many as fit `width`, most useful first (help and quit
/// always).
fn hints(width: usize) -> Vec<Span<'static>> {
    // (key, what, priority: lower is kept first)
    const HINTS: [(&str, &str, u8); 11] = [
        ("?", "help", 0),
        ("Enter", "details", 2),
        ("space", "expand 🔒", 5),
        ("/", "filter", 3),
        ("r", "replay", 4),
        ("R", "re-sign", 6),
        ("e", "edit", 8),
        ("c", "curl", 7),
        ("y", "body", 9),
        ("p", "pause", 10),
        ("q", "quit", 1),
    ];
    let cost = |(k, what, _): &(&str, &str, u8)| Span::raw(format!("{k} {what}  ")).width();
    let mut by_priority: Vec<_> = HINTS.iter().collect();
    by_priority.sort_by_key(|h| h.2);
    let mut used = 0;
    let mut keep = Vec::new();
    for h in by_priority {
        if used + cost(h) <= width {
            used += cost(h);
            keep.push(h.2);
        }
    }
    let key = Style::new().fg(Color::Cyan);
    HINTS
        .iter()
        .filter(|h| keep.contains(&h.2))
        .flat_map(|(k, what, _)| {
            [
                Span::styled(*k, key),
                Span::styled(format!(" {what}  "), dim()),
            ]
        })
        .collect()
}

fn status_line(m: &Model, f: &mut Frame, area: Rect) {
    let line = if let Some(input) = &m.input {
        let text = if m.input_fresh {
            // Selected: the first key replaces it.
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        let mut spans = vec![
            Span::styled(
                "/",
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ),
            Span::styled(clean_line(input, 256), text),
            Span::styled("█", Style::new().fg(Color::Yellow)),
        ];
        match &m.input_error {
            Some(e) => spans.push(Span::styled(
                format!("  {}", clean_line(e, 200)),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            )),
            None => spans.push(Span::styled(
                "   Enter apply (empty: clear) · Esc cancel · provider: event: status: verdict: lint:",
                dim(),
            )),
        }
        Line::from(spans)
    } else if let Some(e) = &m.stale_edit {
        let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
        let mut spans = vec![Span::styled(
            format!(
                "edited #{}: its {} signature no longer matches  ",
                e.id,
                clean_line(&e.provider, 20)
            ),
            Style::new().fg(Color::Yellow),
        )];
        if e.can_resign {
            spans.extend([Span::styled("R", key), Span::raw(" re-sign and send  ")]);
        }
        spans.extend([
            Span::styled("r", key),
            Span::raw(" send as is  "),
            Span::styled("Esc", key),
            Span::raw(" drop the edit"),
        ]);
        Line::from(spans)
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
        let mut spans = hints(usize::from(area.width));
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
