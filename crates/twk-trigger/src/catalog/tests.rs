//! Every event of the catalog builds, signs with a fresh secret, and is recognised by
//! twk's own analysis as that provider and that event, with a valid signature.

use super::*;
use crate::draft::Set;
use twk_providers::{RequestView, Secret, SignOptions, Verdict, VerifyOptions, analyze};

const NOW: i64 = 1_767_225_600;
const URL: &str = "https://relay.example.com/t/demo/hooks?x=1";

/// The name twk's analysis gives the event (the catalog's own where they agree).
fn detected_name(spec: &EventSpec) -> &'static str {
    match (spec.provider, spec.name) {
        (Provider::AuthyOnetouch, _) => "approval_request_status",
        (Provider::Bandwidth, n) => n.trim_start_matches("2fa.").trim_start_matches("voice."),
        (_, n) => n,
    }
}

/// Signs `draft` as `fire` does and returns the analysis of the signed request.
fn signed_analysis(draft: &Draft, secret: &Secret) -> twk_providers::Analysis {
    let body = draft.body_bytes().expect("body");
    let mut view = RequestView::new(draft.method, URL, &body);
    for (k, v) in &draft.headers {
        view = view.with_header(k, v.as_bytes());
    }
    let opts = SignOptions {
        timestamp: Some(NOW),
        id: Some(draft.id.clone()),
    };
    let signed =
        twk_providers::sign_with_secret(draft.provider, &view, secret, &opts).expect("signs");
    let url = signed.url.unwrap_or_else(|| URL.to_owned());
    let body = signed.body.unwrap_or(body);
    let mut headers = draft.headers.clone();
    for (k, v) in signed.headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
        headers.push((k, v));
    }
    let mut req = RequestView::new(draft.method, &url, &body);
    for (k, v) in &headers {
        req = req.with_header(k, v.as_bytes());
    }
    let mut secrets = twk_providers::Secrets::new();
    secrets.set(draft.provider, secret.clone());
    let mut vo = VerifyOptions::at(NOW);
    vo.provider = None;
    analyze(&req, &secrets, &vo)
}

#[test]
fn every_event_is_detected_named_and_valid() {
    let mut count = 0;
    for p in Provider::ALL {
        let specs = events(p);
        assert!(!specs.is_empty(), "{p:?} has no events");
        for spec in specs {
            let draft = build(&spec, Vec::new(), NOW).expect("builds");
            let secret = Secret::new(crate::ids::generated_secret(p));
            let a = signed_analysis(&draft, &secret);
            let what = format!("{} {}", p.as_str(), spec.name);
            // Standard Webhooks and Svix share a scheme: detection says which by headers.
            assert_eq!(a.provider, Some(p), "{what}: {a:?}");
            assert_eq!(a.verdict, Verdict::Valid, "{what}: {a:?}");
            let event = a.event.as_ref().map(|e| e.name.as_str());
            assert_eq!(event, Some(detected_name(&spec)), "{what}");
            // What `trigger` says twk records (`log --event` matches it), before signing.
            if p != Provider::AuthyWebhook {
                let said = draft.recorded_event();
                assert_eq!(said.as_deref(), Some(detected_name(&spec)), "{what}");
            }
            count += 1;
        }
    }
    assert!(count > 80, "{count} events");
}

#[test]
fn the_seed_lists_each_have_a_fixture() {
    let twilio: Vec<&str> = events(Provider::Twilio).iter().map(|s| s.name).collect();
    for e in VERIFY_PUSH_EVENTS {
        assert!(twilio.contains(&e), "Verify Push {e}");
    }
    let authy: Vec<&str> = events(Provider::AuthyWebhook)
        .iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(authy, twk_providers::AUTHY_WEBHOOK_EVENTS.to_vec());
}

fn sets(list: &[&str]) -> Vec<Set> {
    list.iter().map(|s| s.parse().expect("set")).collect()
}

#[test]
fn verify_push_comes_in_both_versions() {
    for e in VERIFY_PUSH_EVENTS {
        let spec = find(Provider::Twilio, e).expect("event");
        let v2 = build(&spec, Vec::new(), NOW).expect("v2");
        let v1 = build(&spec, sets(&["version=v1"]), NOW).expect("v1");
        let keys = |d: &Draft| match &d.body {
            Body::Form(p) => p.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let want_v1: Vec<&str> = super::VERIFY_PUSH_V1_FIELDS
            .into_iter()
            .filter(|f| *f != "challenge_sid" || e.starts_with("challenge."))
            .collect();
        assert_eq!(keys(&v1), want_v1, "{e} v1");
        for k in ["factor_type", "factor_friendly_name", "factor_metadata"] {
            assert!(keys(&v2).iter().any(|x| x == k), "{e} v2 has {k}");
        }
        if e.starts_with("challenge.") {
            for k in [
                "challenge_details",
                "challenge_hidden_details",
                "challenge_metadata",
            ] {
                assert!(keys(&v2).iter().any(|x| x == k), "{e} v2 has {k}");
            }
        }
        assert_eq!(v2.field("type").as_deref(), Some(e));
        assert!(v2.header_value("I-Twilio-Idempotency-Token").is_some());
        let bad = build(&spec, sets(&["version=v3"]), NOW).expect_err("v3");
        assert!(bad.to_string().contains("v1 or v2"), "{bad}");
    }
}

#[test]
fn a_bandwidth_2fa_destination_picks_the_platform() {
    let spec = find(Provider::Bandwidth, "2fa.message-failed").expect("event");
    let na = build(&spec, Vec::new(), NOW).expect("na");
    assert_eq!(na.field("platform").as_deref(), Some("NorthAmericaSMS"));
    let intl = build(&spec, sets(&["to=+447700900123"]), NOW).expect("intl");
    assert_eq!(intl.field("platform").as_deref(), Some("GlobalSMS"));
    assert!(
        intl.field("to").is_none(),
        "`to` is a parameter, not a field"
    );
    assert!(intl.field("errorCode").is_some());
    let bad = build(&spec, sets(&["to=44"]), NOW).expect_err("not E.164");
    assert!(bad.to_string().contains("E.164"), "{bad}");
}

#[test]
fn overrides_reach_the_body_and_the_shown_id() {
    let spec = find(Provider::Stripe, "payment_intent.succeeded").expect("event");
    let d = build(
        &spec,
        sets(&["data.object.amount=4242", "id=evt_fixed"]),
        NOW,
    )
    .expect("builds");
    assert_eq!(d.field("data.object.amount").as_deref(), Some("4242"));
    assert_eq!(d.id, "evt_fixed");
}

#[test]
fn unknown_events_say_what_there_is() {
    let e = find(Provider::Stripe, "payment_intent").expect_err("unknown");
    let msg = e.to_string();
    assert!(msg.contains("payment_intent.succeeded"), "{msg}");
    let e = find(Provider::Github, "nope").expect_err("unknown");
    assert!(e.to_string().contains("trigger --list github"), "{e}");
}
