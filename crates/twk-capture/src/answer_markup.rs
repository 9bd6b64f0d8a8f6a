//! The `invalid-bxml` and `invalid-twiml` lints: the app answered a callback whose answer
//! the provider runs (Bandwidth's synchronous voice callbacks, Twilio's voice and
//! incoming-message webhooks) with something that is not a document it can run: JSON, an
//! empty body, `text/plain`, broken XML, `<Bxml>` or `<response>` as the root, an unknown or
//! misplaced verb ([`twk_providers::answer`]). Through a tunnel every one of these is a 200.
//!
//! Replays are judged like the provider's deliveries (a fixed handler is checked by replaying
//! the call's webhook); missed and refused rows, exchanges that failed on twk's side (502,
//! 504: the app never answered), requests whose signature is invalid and requests whose
//! captured body was cut short are not.

use crate::exchange::Exchange;
use crate::handshake::{Lint, LintCode};
use twk_providers::answer::{self, Answer, Expected};
use twk_providers::{Provider, RequestView};

/// Problems named in the message at most; the rest are counted.
const SHOWN: usize = 3;

/// The lint of an answer `provider` cannot run, if it was one; `req` is `ex`'s request.
pub(crate) fn invalid_answer(
    ex: &Exchange,
    provider: Provider,
    req: &RequestView<'_>,
) -> Option<Lint> {
    // twk's own 502/504 are not the app's answer; a forged request's answer is not worth
    // the parse (a stranger could aim it at any route of the app that returns XML).
    let forged = matches!(
        ex.verdict,
        Some(twk_providers::Verdict::Invalid | twk_providers::Verdict::Malformed)
    );
    if ex.missed || ex.refused || ex.request.body.truncated || ex.failure.is_some() || forged {
        return None;
    }
    let expected = answer::expected_answer(provider, req)?;
    let status = ex.status?;
    let response = ex.response.as_ref()?;
    let content_type = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| h.value.as_slice());
    let problems = answer::check(
        expected,
        &Answer {
            status,
            content_type,
            body: &response.body.bytes,
            len: response.body.len,
        },
    );
    if problems.is_empty() {
        return None;
    }
    let code = match expected {
        Expected::Bxml(_) => LintCode::InvalidBxml,
        Expected::TwimlVoice | Expected::TwimlMessaging => LintCode::InvalidTwiml,
    };
    let event = ex
        .event
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let mut message = format!(
        "a {expected}{event} runs the answer as {markup}: {what}",
        markup = expected.markup(),
        what = answer::describe(&problems, SHOWN),
    );
    if let Some(otherwise) = problems.first().and_then(|p| expected.otherwise(p)) {
        message.push_str(&format!(". {otherwise}"));
    }
    Some(Lint::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{CapturedBody, Header, Message};

    /// As `handshake::analyze` calls it.
    fn invalid_answer(ex: &Exchange) -> Option<Lint> {
        let provider = ex.known_provider()?;
        super::invalid_answer(ex, provider, &ex.request_view(&ex.request.body.bytes))
    }

    fn call(answer_type: &str, answer: &str) -> Exchange {
        let header = |n: &str, v: &str| Header {
            name: n.into(),
            value: v.as_bytes().to_vec(),
        };
        Exchange {
            provider: Some("bandwidth".into()),
            event: Some("answer".into()),
            method: "POST".into(),
            public_url: "https://relay.example/t/demo/voice".into(),
            request: Message {
                headers: vec![header("content-type", "application/json")],
                body: CapturedBody::from_bytes(br#"{"eventType":"answer","callId":"c-1"}"#),
            },
            status: Some(200),
            response: Some(Message {
                headers: vec![header("Content-Type", answer_type)],
                body: CapturedBody::from_bytes(answer.as_bytes()),
            }),
            ..Exchange::default()
        }
    }

    #[test]
    fn a_json_answer_to_a_voice_callback_is_linted_with_what_bandwidth_does() {
        let lint = invalid_answer(&call("application/json", r#"{"ok":true}"#)).expect("a lint");
        assert_eq!(lint.code, LintCode::InvalidBxml);
        assert_eq!(
            lint.message,
            "a Bandwidth voice callback (answer) runs the answer as BXML: the answer is \
             application/json, not XML. Bandwidth fails the call on invalid BXML (a disconnect \
             event with cause invalid-bxml)"
        );
        assert_eq!(
            invalid_answer(&call("application/xml", "<Response/>")),
            None
        );
    }

    #[test]
    fn answers_the_app_gave_to_whole_requests_are_judged_replays_too() {
        let bad = || call("application/json", "{}");
        let mut replay = bad();
        replay.replay_of = Some(1);
        assert!(invalid_answer(&replay).is_some(), "a replay checks a fix");
        let mut missed = bad();
        missed.missed = true;
        let mut refused = bad();
        refused.refused = true;
        let mut cut = bad();
        cut.request.body.truncated = true;
        let mut other = bad();
        other.provider = Some("stripe".into());
        let mut timed_out = bad();
        timed_out.status = Some(504);
        timed_out.failure = Some(crate::exchange::Failure {
            side: crate::exchange::Side::Target,
            message: "the local target did not answer within 9 s".into(),
        });
        let mut forged = bad();
        forged.verdict = Some(twk_providers::Verdict::Invalid);
        let mut status = bad();
        status.request.body = CapturedBody::from_bytes(br#"{"eventType":"disconnect"}"#);
        for ex in [missed, refused, cut, other, status, timed_out, forged] {
            assert_eq!(invalid_answer(&ex), None, "{ex:?}");
        }
        let twiml = Exchange {
            provider: Some("twilio".into()),
            request: Message {
                headers: Vec::new(),
                body: CapturedBody::from_bytes(b"AccountSid=AC1&CallSid=CA1&CallStatus=ringing"),
            },
            ..call("text/xml", "<Response><say>Hi</say></Response>")
        };
        let lint = invalid_answer(&twiml).expect("a lint");
        assert_eq!(lint.code, LintCode::InvalidTwiml);
        assert!(lint.message.contains("<Say>"), "{}", lint.message);
    }
}
