//! The status-line words for what the host did on the inspector's behalf (replays), so every
//! host says the same thing and the binary only carries the intent out.

use crate::model::{Level, Msg};
use crate::sanitize::clean;
use twk_capture::{Exchange, ExchangeId};

/// What a replay's outcome says, taken from the new exchange before it is handed to the
/// recorder (so the exchange, bodies included, need not be kept or copied for the notice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    outcome: String,
    verdict: &'static str,
}

impl Replayed {
    /// The outcome of the replay `new`: failure, status or no response, and its verdict.
    pub fn of(new: &Exchange) -> Replayed {
        let outcome = match (&new.failure, new.status) {
            (Some(f), _) => format!("failed: {}", clean(&f.message)),
            (None, Some(s)) => format!("→ {s}"),
            (None, None) => "no response".to_owned(),
        };
        Replayed {
            outcome,
            verdict: new.verdict.map_or("not checked", |v| v.as_str()),
        }
    }

    /// The notice for the replay of `#id`; `new_id` is its stored id (`None`: the store did
    /// not record it).
    pub fn notice(self, id: ExchangeId, new_id: Option<ExchangeId>) -> Msg {
        let Replayed { outcome, verdict } = self;
        match new_id {
            Some(new_id) => Msg::Notice(
                format!("replayed #{id} as #{new_id} {outcome} (signature {verdict})"),
                Level::Info,
            ),
            None => Msg::Notice(
                format!("replayed #{id} {outcome}, but the capture store did not record it"),
                Level::Error,
            ),
        }
    }
}

/// What a trigger (`t`) came to: `what` names the webhook (provider, event, id), `how` is
/// the sender's last word; an error notice unless `delivered`.
pub fn triggered(what: &str, delivered: bool, how: &str) -> Msg {
    let level = if delivered { Level::Info } else { Level::Error };
    Msg::Notice(format!("triggered {}: {}", clean(what), clean(how)), level)
}

/// A replay of `#id` could not be sent (or `#id` could not be read).
pub fn not_replayed(id: ExchangeId, why: &dyn std::fmt::Display) -> Msg {
    Msg::Notice(format!("replay of #{id} not sent: {why}"), Level::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_outcomes_are_sanitized_and_name_both_ids() {
        let mut new = Exchange {
            status: Some(200),
            verdict: Some(twk_providers::Verdict::Valid),
            ..Exchange::default()
        };
        let Msg::Notice(text, Level::Info) = Replayed::of(&new).notice(3, Some(9)) else {
            panic!("info notice expected");
        };
        assert_eq!(text, "replayed #3 as #9 → 200 (signature valid)");
        new.failure = Some(twk_capture::Failure {
            side: twk_capture::Side::Target,
            message: "refused\u{1b}[2J".into(),
        });
        let Msg::Notice(text, Level::Error) = Replayed::of(&new).notice(3, None) else {
            panic!("error notice expected");
        };
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
