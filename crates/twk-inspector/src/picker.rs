//! The trigger picker (`t`): every provider event the host can fire, filtered as you type;
//! Enter asks the host to trigger the selected one into the running tunnel
//! ([`crate::Intent::Trigger`]). The inspector only picks: the host builds, signs and sends.

use crate::sanitize::clean_line;
use crate::style::dim;
use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

/// Longest query typed into the picker.
pub const MAX_QUERY_CHARS: usize = 64;

/// One event the host can trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerChoice {
    /// Provider id (`stripe`, `bandwidth`, …).
    pub provider: String,
    /// Event name as `trigger` takes it.
    pub event: String,
    /// One line on what it is.
    pub about: String,
}

/// The open picker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picker {
    /// What was typed: every word must appear in "provider event".
    pub query: String,
    /// Index into the matches.
    pub selected: usize,
}

impl Picker {
    /// Indexes of the `choices` that match the query, in catalog order.
    pub fn matches(&self, choices: &[TriggerChoice]) -> Vec<usize> {
        let words: Vec<String> = self
            .query
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        choices
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let hay = format!("{} {}", c.provider, c.event).to_lowercase();
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The selected choice, if any matches.
    pub fn chosen<'c>(&self, choices: &'c [TriggerChoice]) -> Option<&'c TriggerChoice> {
        let m = self.matches(choices);
        m.get(self.selected.min(m.len().saturating_sub(1)))
            .map(|i| &choices[*i])
    }

    /// Moves the selection by `delta` within the matches.
    pub fn step(&mut self, delta: isize, choices: &[TriggerChoice]) {
        let n = self.matches(choices).len();
        if n == 0 {
            self.selected = 0;
            return;
        }
        self.selected = self.selected.saturating_add_signed(delta).min(n - 1);
    }
}

/// Where the overlay goes on a `screen`.
fn area(screen: Rect) -> Rect {
    let w = 96.min(screen.width);
    let h = 24.min(screen.height);
    Rect::new(
        screen.x + (screen.width - w) / 2,
        screen.y + (screen.height - h) / 2,
        w,
        h,
    )
}

/// Draws the picker over `screen`.
pub fn draw(f: &mut Frame, screen: Rect, picker: &Picker, choices: &[TriggerChoice]) {
    let area = area(screen);
    let rows = usize::from(area.height.saturating_sub(3));
    let matches = picker.matches(choices);
    let selected = picker.selected.min(matches.len().saturating_sub(1));
    // Keep the selection in view.
    let first = selected.saturating_sub(rows.saturating_sub(1));
    let width = usize::from(area.width.saturating_sub(2));
    let mut lines = vec![Line::from(vec![
        Span::styled(" ▸ ", Style::new().fg(Color::Yellow)),
        Span::raw(clean_line(&picker.query, MAX_QUERY_CHARS)),
        Span::styled("█", Style::new().fg(Color::Yellow)),
        Span::styled(format!("   {} of {}", matches.len(), choices.len()), dim()),
    ])];
    for (row, i) in matches.iter().enumerate().skip(first).take(rows) {
        let c = &choices[*i];
        let name = format!(
            " {:<18} {}",
            clean_line(&c.provider, 18),
            clean_line(&c.event, 56)
        );
        let about = clean_line(&c.about, width.saturating_sub(name.chars().count() + 2));
        let style = if row == selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        let pad = width.saturating_sub(name.chars().count() + about.chars().count() + 1);
        lines.push(Line::from(vec![
            Span::styled(name, style),
            Span::styled(format!("{} {about}", " ".repeat(pad)), style.patch(dim())),
        ]));
    }
    if matches.is_empty() {
        lines.push(Line::styled(" nothing matches: Backspace to widen", dim()));
    }
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Span::styled(
                    " Trigger a webhook into this tunnel ",
                    Style::new().add_modifier(Modifier::BOLD),
                ))
                .title_bottom(
                    Line::styled(
                        " type to filter · ↑↓ choose · Enter send · Esc close ",
                        dim(),
                    )
                    .alignment(Alignment::Right),
                )
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Vec<TriggerChoice> {
        [
            ("stripe", "payment_intent.succeeded"),
            ("stripe", "charge.refunded"),
            ("bandwidth", "message-delivered"),
            ("twilio", "factor.verified"),
        ]
        .iter()
        .map(|(p, e)| TriggerChoice {
            provider: (*p).into(),
            event: (*e).into(),
            about: String::new(),
        })
        .collect()
    }

    #[test]
    fn every_word_must_match_and_the_selection_stays_in_the_matches() {
        let c = choices();
        let mut p = Picker {
            query: "STRIPE succ".into(),
            selected: 0,
        };
        assert_eq!(p.matches(&c), vec![0]);
        p.query = "stripe".into();
        p.step(5, &c);
        assert_eq!(p.selected, 1);
        assert_eq!(
            p.chosen(&c).map(|c| c.event.as_str()),
            Some("charge.refunded")
        );
        p.step(-9, &c);
        assert_eq!(p.selected, 0);
        p.query = "nothing".into();
        assert_eq!(p.chosen(&c), None);
    }
}
