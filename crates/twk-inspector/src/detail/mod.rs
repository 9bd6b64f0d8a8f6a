//! The detail pane's content: one list of display lines per tab, built once when an exchange
//! is loaded (so drawing a frame only slices them). One file per tab: [`http`] (Request and
//! Response), [`signature`], [`auth`] (the Basic-auth handshake), [`timing`].
//!
//! Secrets: header values that carry credentials or signatures (the capture crate's
//! [`twk_capture::redact`] rule: `Authorization`, cookies, every `*signature*` header, …) are
//! shown as `[REDACTED]` in the Request and Response tabs unless the user reveals them with
//! `s`. The Signature tab shows the expected and received signatures (comparing them is its
//! purpose; a signature is not the secret), and Basic-auth passwords are always masked.

use crate::sanitize::clean_line;
use crate::style::{lint_style, severity_mark};
use jiff::tz::TimeZone;
use ratatui::text::{Line, Span};
use std::cell::OnceCell;

mod auth;
mod http;
mod signature;
mod timing;
use twk_capture::{Lint, StoredExchange};

/// The detail tabs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tab {
    /// Request head and pretty body.
    #[default]
    Request,
    /// Response head and pretty body.
    Response,
    /// Signature verdict and diagnosis.
    Signature,
    /// Basic-auth handshake timeline and lints.
    Auth,
    /// Timings.
    Timing,
}

impl Tab {
    /// All tabs in display order.
    pub const ALL: [Tab; 5] = [
        Tab::Request,
        Tab::Response,
        Tab::Signature,
        Tab::Auth,
        Tab::Timing,
    ];

    /// Title shown in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Request => "Request",
            Tab::Response => "Response",
            Tab::Signature => "Signature",
            Tab::Auth => "Auth",
            Tab::Timing => "Timing",
        }
    }

    /// Position in [`Tab::ALL`].
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The next tab (wrapping).
    pub fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    /// The previous tab (wrapping).
    pub fn prev(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }
}

/// A loaded exchange. Its tabs are rendered on first use (by the view, when the tab is shown
/// or scrolled) and kept, so loading an exchange in `update` costs no drawing work and drawing
/// a frame only slices lines already built.
#[derive(Debug, Clone)]
pub struct Detail {
    /// The exchange as stored.
    pub stored: StoredExchange,
    /// The other leg of its Basic-auth handshake, when it has one still stored.
    pub partner: Option<StoredExchange>,
    /// Whether secret headers are shown.
    pub revealed: bool,
    /// One header line for the pane title.
    pub title: String,
    /// The exchange's lints for the pane title (`⚠ code +N`), shown on every tab.
    pub lint_badge: Option<Span<'static>>,
    tz: TimeZone,
    /// The pane's width, which prose is wrapped to fit ([`crate::style::prose_width`]).
    pane: u16,
    rendered: [OnceCell<Vec<Line<'static>>>; Tab::ALL.len()],
}

impl Detail {
    /// The detail of `stored`; `partner` is the other leg of its Basic-auth handshake; its
    /// prose wrapped to fit a pane `pane` columns wide.
    pub fn build(
        stored: StoredExchange,
        partner: Option<StoredExchange>,
        revealed: bool,
        tz: &TimeZone,
        pane: u16,
    ) -> Detail {
        let ex = &stored.exchange;
        let title = clean_line(
            &format!(
                "#{} {} {} → {}",
                stored.id(),
                ex.method,
                twk_capture::redact::redact_query(&ex.path, revealed),
                ex.status
                    .map_or("no response".to_owned(), |s| s.to_string())
            ),
            512,
        );
        Detail {
            lint_badge: lint_badge(stored.lints.as_deref().unwrap_or_default()),
            title,
            revealed,
            stored,
            partner,
            tz: tz.clone(),
            pane,
            rendered: Default::default(),
        }
    }

    /// Wraps prose to fit a pane `pane` columns wide from now on (the terminal was resized):
    /// the tabs are rendered again when next shown.
    pub fn set_pane(&mut self, pane: u16) {
        if pane != self.pane {
            self.pane = pane;
            self.rendered = Default::default();
        }
    }

    /// The lines of `tab`, rendered on the first call.
    pub fn lines(&self, tab: Tab) -> &[Line<'static>] {
        self.rendered[tab.index()].get_or_init(|| self.render(tab))
    }

    fn render(&self, tab: Tab) -> Vec<Line<'static>> {
        let ex = &self.stored.exchange;
        match tab {
            Tab::Request => http::request_tab(ex, self.revealed),
            Tab::Response => http::response_tab(&self.stored, self.revealed, self.pane),
            Tab::Signature => signature::signature_tab(ex, self.pane),
            Tab::Auth => auth::auth_tab(&self.stored, self.partner.as_ref(), &self.tz, self.pane),
            Tab::Timing => timing::timing_tab(&self.stored, &self.tz, self.pane),
        }
    }

    /// The exchange id.
    pub fn id(&self) -> twk_capture::ExchangeId {
        self.stored.id()
    }
}

/// The pane-title badge of an exchange's lints: the first (most severe) code and how many more.
fn lint_badge(lints: &[Lint]) -> Option<Span<'static>> {
    let first = lints.first()?;
    let (glyph, _) = severity_mark(first.severity);
    let more = match lints.len() {
        0 | 1 => String::new(),
        n => format!(" +{}", n - 1),
    };
    // Where its prose is: the timing lint on the Timing tab, the answer's document on the
    // Response tab, the others (the Basic-auth handshake's) on the Auth tab, which lists
    // them all.
    let tab = match first.code {
        twk_capture::LintCode::SlowAnswer => Tab::Timing,
        c if c.about_the_answer_document() => Tab::Response,
        _ => Tab::Auth,
    };
    Some(Span::styled(
        format!(
            "{glyph} {}{more} ({} {}) ",
            first.code,
            tab.index() + 1,
            tab.title()
        ),
        lint_style(first.code),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lint_badge_names_the_tab_its_prose_is_on() {
        let lint = |code: twk_capture::LintCode| Lint {
            code,
            severity: code.severity(),
            message: String::new(),
        };
        let badge = |l: &[Lint]| lint_badge(l).map(|s| s.content.to_string());
        assert_eq!(
            badge(&[lint(twk_capture::LintCode::SlowAnswer)]).as_deref(),
            Some("⚠ slow-answer (5 Timing) ")
        );
        assert_eq!(
            badge(&[lint(twk_capture::LintCode::RetryNeverCame)]).as_deref(),
            Some("⚠ retry-never-came (4 Auth) ")
        );
    }

    #[test]
    fn tabs_cycle() {
        assert_eq!(Tab::Timing.next(), Tab::Request);
        assert_eq!(Tab::Request.prev(), Tab::Timing);
        assert_eq!(Tab::Signature.index(), 2);
    }
}
