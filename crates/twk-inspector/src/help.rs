//! The help overlay: every key and mark from [`crate::keymap`], wrapped to the screen and
//! scrollable (`j`/`k`, PgDn/PgUp) when the screen is shorter than the list, so nothing is cut
//! at 80×24.

use crate::keymap;
use crate::style::{dim, wrap};
use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

/// Width of the key column.
const KEY_COLS: usize = 14;

/// Where the overlay goes on a `screen`.
pub fn area(screen: Rect) -> Rect {
    let w = 80.min(screen.width);
    let h = (lines(w).len() as u16 + 2).min(screen.height);
    Rect::new(
        screen.x + (screen.width - w) / 2,
        screen.y + (screen.height - h) / 2,
        w,
        h,
    )
}

/// Lines of help content shown inside an overlay `width` columns wide (borders included).
pub fn lines(width: u16) -> Vec<Line<'static>> {
    let text_cols = usize::from(width.saturating_sub(2 + 1 + KEY_COLS as u16)).max(8);
    let key = Style::new().fg(Color::Cyan);
    let entry = |(k, what): &(&'static str, &'static str)| {
        wrap(what, text_cols)
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let k = if i == 0 { *k } else { "" };
                Line::from(vec![
                    Span::styled(format!(" {}", pad(k, KEY_COLS)), key),
                    Span::raw(part),
                ])
            })
            .collect::<Vec<_>>()
    };
    let mut out: Vec<Line<'static>> = keymap::KEYS.iter().flat_map(entry).collect();
    out.push(Line::raw(""));
    out.push(Line::styled(
        " Marks",
        Style::new().add_modifier(Modifier::BOLD),
    ));
    out.extend(keymap::MARKS.iter().flat_map(entry));
    out
}

/// The largest useful scroll offset for a `screen`.
pub fn max_scroll(screen: (u16, u16)) -> usize {
    let a = area(Rect::new(0, 0, screen.0, screen.1));
    lines(a.width)
        .len()
        .saturating_sub(usize::from(a.height.saturating_sub(2)))
}

/// Draws the overlay scrolled by `scroll` lines.
pub fn draw(f: &mut Frame, screen: Rect, scroll: usize) {
    let area = area(screen);
    let all = lines(area.width);
    let total = all.len();
    let rows = usize::from(area.height.saturating_sub(2));
    let start = scroll.min(total.saturating_sub(rows));
    let shown: Vec<Line> = all.into_iter().skip(start).take(rows).collect();
    let more = start + rows < total;
    let footer = match (start > 0, more) {
        (_, true) => " j/PgDn more · any other key closes ",
        (true, false) => " k/PgUp back · any other key closes ",
        (false, false) => " any key closes ",
    };
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(shown).block(
            Block::bordered()
                .title(Span::styled(
                    " Keys ",
                    Style::new().add_modifier(Modifier::BOLD),
                ))
                .title_bottom(Line::styled(footer, dim()).alignment(Alignment::Right))
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
