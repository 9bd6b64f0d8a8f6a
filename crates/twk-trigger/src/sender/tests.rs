use super::*;
use crate::draft::{Body, Draft};
use serde_json::json;

fn draft(provider: Provider, body: serde_json::Value) -> Draft {
    Draft::post(provider, "e", "id".into(), Body::Json(body))
}

fn status(code: u16, www: Option<&str>) -> Answer {
    Answer::Status {
        code,
        www_authenticate: www.map(str::to_owned),
        no_retry: false,
    }
}

const T0: Duration = Duration::ZERO;

#[test]
fn bandwidth_answers_a_basic_challenge_and_loses_a_bare_401() {
    let s = Sender::for_draft(&draft(
        Provider::Bandwidth,
        json!([{"type": "message-delivered"}]),
    ));
    assert_eq!(s.deadline, Duration::from_secs(10));
    let challenge = status(401, Some("Basic realm=\"twk\""));
    assert_eq!(s.decide(1, T0, &challenge, false), Next::Challenge);
    match s.decide(1, T0, &status(401, None), false) {
        Next::GivesUp { why } => assert!(why.contains("without WWW-Authenticate"), "{why}"),
        other => panic!("{other:?}"),
    }
    match s.decide(1, T0, &status(401, Some("Digest realm=x")), false) {
        Next::GivesUp { why } => assert!(why.contains("Basic"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Credentials refused: an ordinary failure, retried.
    assert!(matches!(
        s.decide(1, T0, &challenge, true),
        Next::Retry { .. }
    ));
    assert_eq!(s.decide(1, T0, &status(202, None), false), Next::Delivered);
}

#[test]
fn bandwidth_retries_north_america_for_a_day_and_international_never() {
    let na = Sender::for_draft(&draft(
        Provider::Bandwidth,
        json!({"type": "message-failed", "platform": "NorthAmericaSMS"}),
    ));
    let mut elapsed = Duration::ZERO;
    let mut n = 1;
    while let Next::Retry { after, reason } = na.decide(n, elapsed, &Answer::TimedOut, false) {
        assert_eq!(reason, RetryReason::HttpTimeout);
        assert!(after <= Duration::from_secs(3600));
        elapsed += after;
        n += 1;
        assert!(n < 100, "runaway schedule");
    }
    assert!(elapsed <= Duration::from_secs(24 * 3600), "{elapsed:?}");
    assert!(elapsed >= Duration::from_secs(23 * 3600), "{elapsed:?}");
    assert!(n > 20, "{n} attempts");
    let intl = Sender::for_draft(&draft(
        Provider::Bandwidth,
        json!({"type": "message-failed", "platform": "GlobalSMS"}),
    ));
    match intl.decide(1, T0, &status(500, None), false) {
        Next::GivesUp { why } => assert!(why.contains("international"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn twilio_retries_only_connection_failures_and_timeouts() {
    let s = Sender::for_draft(&draft(Provider::Twilio, json!({})));
    assert_eq!(
        s.decide(1, T0, &Answer::TimedOut, false),
        Next::Retry {
            after: Duration::ZERO,
            reason: RetryReason::HttpTimeout
        }
    );
    assert!(matches!(
        s.decide(2, T0, &Answer::TimedOut, false),
        Next::GivesUp { .. }
    ));
    match s.decide(1, T0, &status(500, None), false) {
        Next::GivesUp { why } => assert!(why.contains("11200"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stripe_schedules_depend_on_livemode() {
    let test = Sender::for_draft(&draft(Provider::Stripe, json!({"livemode": false})));
    match test.decide(1, T0, &status(500, None), false) {
        Next::Retry { after, .. } => assert_eq!(human(after), "~1 h"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        test.decide(4, T0, &status(500, None), false),
        Next::GivesUp { .. }
    ));
    let live = Sender::for_draft(&draft(Provider::Stripe, json!({"livemode": true})));
    match live.decide(1, T0, &status(500, None), false) {
        Next::Retry { after, .. } => assert_eq!(human(after), "~5 min"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn slack_honours_no_retry_and_github_never_retries() {
    let s = Sender::for_draft(&draft(Provider::Slack, json!({})));
    assert_eq!(s.deadline, Duration::from_secs(3));
    let no_retry = Answer::Status {
        code: 500,
        www_authenticate: None,
        no_retry: true,
    };
    assert!(matches!(
        s.decide(1, T0, &no_retry, false),
        Next::GivesUp { .. }
    ));
    assert_eq!(
        s.decide(1, T0, &Answer::ConnectFailed("refused".into()), false),
        Next::Retry {
            after: Duration::ZERO,
            reason: RetryReason::ConnectionFailed
        }
    );
    let g = Sender::for_draft(&draft(Provider::Github, json!({})));
    match g.decide(1, T0, &status(500, None), false) {
        Next::GivesUp { why } => assert!(why.contains("Recent Deliveries"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A 401 from a provider without the challenge is an ordinary failure.
    assert!(matches!(
        g.decide(1, T0, &status(401, Some("Basic")), false),
        Next::GivesUp { .. }
    ));
}

#[test]
fn delays_read_as_people_say_them() {
    assert_eq!(human(Duration::ZERO), "at once");
    assert_eq!(human(Duration::from_secs(5)), "~5 s");
    assert_eq!(human(Duration::from_secs(300)), "~5 min");
    assert_eq!(human(Duration::from_secs(3600)), "~1 h");
    assert_eq!(human(Duration::from_secs(86_400)), "~24 h");
}

/// Bandwidth's voice callbacks wait 15 s and are not resent for 24 h like its messaging
/// callbacks: a synchronous one goes to the fallback URL, an asynchronous one is resent only
/// after a failed connection. The Basic-auth challenge is the same.
#[test]
fn bandwidth_voice_callbacks_wait_15_s_and_are_not_resent_for_a_day() {
    let s = Sender::for_draft(&draft(
        Provider::Bandwidth,
        json!({"eventType": "initiate", "callId": "c-1"}),
    ));
    assert_eq!(s.deadline, Duration::from_secs(15));
    assert!(s.challenge);
    match s.decide(1, T0, &status(500, None), false) {
        Next::GivesUp { why } => assert!(why.contains("fallback URL"), "{why}"),
        other => panic!("{other:?}"),
    }
    let challenge = status(401, Some("Basic realm=\"twk\""));
    assert_eq!(s.decide(1, T0, &challenge, false), Next::Challenge);
    let s = Sender::for_draft(&draft(
        Provider::Bandwidth,
        json!({"eventType": "disconnect", "callId": "c-1"}),
    ));
    match s.decide(1, T0, &Answer::TimedOut, false) {
        Next::GivesUp { why } => assert!(why.contains("asynchronous"), "{why}"),
        other => panic!("{other:?}"),
    }
}
