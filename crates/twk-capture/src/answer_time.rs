//! The `slow-answer` lint: the app answered a provider's webhook after the provider stops
//! waiting for it ([`twk_providers::answer::answer_limit`]: the provider's figure, or 15 s
//! for Bandwidth's voice callbacks). twk's own deadline (9 s by default,
//! `--request-timeout`) is longer than Slack's 3 s and Shopify's 5 s, so such an
//! answer still reaches twk's sender while the real provider would have given up and, for
//! most, sent the webhook again: a handler that works before it answers looks fine through
//! the tunnel and fails in production.
//!
//! Measured from when the client forwarded the request to when the app's answer head came
//! (both on the client's clock): the app's own time, the least the provider would wait.
//! Replays, missed and refused rows were not sent by the provider this way: none.

use crate::exchange::Exchange;
use crate::handshake::{Lint, LintCode};
use twk_providers::{Provider, RequestView};

/// The lint of an answer later than `provider` waits, if it was; `req` is `ex`'s request.
pub(crate) fn slow_answer(
    ex: &Exchange,
    provider: Provider,
    req: &RequestView<'_>,
) -> Option<Lint> {
    if ex.replay_of.is_some() || ex.missed || ex.refused {
        return None;
    }
    // Bandwidth's voice callbacks wait longer than its messaging ones: the request says which.
    let limit = twk_providers::answer::answer_limit(provider, req)?;
    let took = ex
        .timings
        .first_byte_ms?
        .checked_sub(ex.timings.forwarded_ms?)?;
    let within = i64::try_from(limit.within.as_millis()).ok()?;
    if took <= within {
        return None;
    }
    Some(Lint::new(
        LintCode::SlowAnswer,
        format!(
            "{name} waits {secs} s for the answer; the app took {took} ms: {otherwise}",
            name = provider.display_name(),
            secs = limit.within.as_secs(),
            otherwise = limit.otherwise,
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Timings;

    /// As `handshake::analyze` calls it.
    fn slow_answer(ex: &Exchange) -> Option<Lint> {
        let provider = ex.known_provider()?;
        super::slow_answer(ex, provider, &ex.request_view(&ex.request.body.bytes))
    }

    fn answered(provider: &str, took_ms: i64) -> Exchange {
        Exchange {
            provider: Some(provider.into()),
            status: Some(200),
            timings: Timings {
                received_ms: 1_000,
                forwarded_ms: Some(1_005),
                first_byte_ms: Some(1_005 + took_ms),
                done_ms: Some(1_010 + took_ms),
            },
            ..Exchange::default()
        }
    }

    #[test]
    fn an_answer_past_the_providers_wait_is_linted_and_one_within_it_is_not() {
        let late = slow_answer(&answered("slack", 3_001)).expect("a lint");
        assert_eq!(late.code, LintCode::SlowAnswer);
        assert!(late.message.contains("Slack waits 3 s"), "{}", late.message);
        assert!(late.message.contains("3001 ms"), "{}", late.message);
        assert!(
            late.message.contains("X-Slack-Retry-Num"),
            "{}",
            late.message
        );
        assert_eq!(slow_answer(&answered("slack", 3_000)), None);
        assert!(slow_answer(&answered("shopify", 5_500)).is_some());
        assert_eq!(slow_answer(&answered("github", 9_000)), None);
    }

    /// Bandwidth's voice callbacks wait `callbackTimeout` (15 s by default), its messaging
    /// callbacks 10 s: the request's body says which it is.
    #[test]
    fn bandwidth_voice_callbacks_get_15_s_and_messaging_callbacks_10() {
        let with_body = |took: i64, body: &str| {
            let mut ex = answered("bandwidth", took);
            ex.request.body = crate::exchange::CapturedBody::from_bytes(body.as_bytes());
            ex
        };
        let voice = r#"{"eventType":"answer","callId":"c-1","accountId":"9"}"#;
        let messaging = r#"[{"type":"message-delivered","message":{"id":"m"}}]"#;
        assert_eq!(slow_answer(&with_body(12_000, voice)), None);
        let late = slow_answer(&with_body(15_001, voice)).expect("a lint");
        assert!(
            late.message.contains("Bandwidth waits 15 s"),
            "{}",
            late.message
        );
        assert!(late.message.contains("callbackTimeout"), "{}", late.message);
        let late = slow_answer(&with_body(12_000, messaging)).expect("a lint");
        assert!(
            late.message.contains("Bandwidth waits 10 s"),
            "{}",
            late.message
        );
    }

    #[test]
    fn no_lint_without_a_known_wait_an_answer_or_the_provider_sending_it() {
        assert_eq!(slow_answer(&answered("stripe", 60_000)), None, "no figure");
        assert_eq!(slow_answer(&answered("nobody", 60_000)), None);
        let mut unanswered = answered("slack", 5_000);
        unanswered.timings.first_byte_ms = None;
        assert_eq!(slow_answer(&unanswered), None, "a 504's failure says it");
        let mut replay = answered("slack", 5_000);
        replay.replay_of = Some(1);
        assert_eq!(slow_answer(&replay), None);
        let mut missed = answered("slack", 5_000);
        missed.missed = true;
        assert_eq!(slow_answer(&missed), None);
    }
}
