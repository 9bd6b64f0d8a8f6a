//! twk's test secrets: tried only for a provider with no secret of its own, and believed only
//! when the signature holds with them. A webhook signed with another secret (a real
//! provider's) keeps the verdict it has without them: `no_secret`, never `invalid`.
#![allow(clippy::unwrap_used)]

use twk_providers::{
    Analysis, OwnedRequest, Provider, Secret, SecretSource, Secrets, SignOptions, Verdict,
    VerifyOptions, analyze, sign_with_secret,
};

const NOW: i64 = 1_700_000_000;
// `whsec_` and base64, so that Standard Webhooks takes them too.
const TEST: &str = "whsec_dHdrJ3MgdGVzdCBzZWNyZXQgMDEyMzQ1Ng==";
const OTHER: &str = "whsec_dGhlIHJlYWwgcHJvdmlkZXJzIHNlY3JldA==";

/// A Stripe-shaped JSON event, or a Twilio form callback to a public URL.
fn request(provider: Provider) -> OwnedRequest {
    match provider {
        Provider::Twilio => OwnedRequest::new(
            "POST",
            "https://hooks.example.com/t/demo/sms",
            "MessageSid=SM1&MessageStatus=delivered",
        )
        .with_header("Content-Type", "application/x-www-form-urlencoded"),
        _ => OwnedRequest::new(
            "POST",
            "https://hooks.example.com/t/demo/hook",
            r#"{"id":"evt_1","type":"payment_intent.succeeded","object":"event"}"#,
        )
        .with_header("Content-Type", "application/json"),
    }
}

fn signed(provider: Provider, secret: &str, at: i64) -> OwnedRequest {
    let mut req = request(provider);
    let opts = SignOptions {
        timestamp: Some(at),
        id: Some("msg_1".into()),
    };
    let s = sign_with_secret(provider, &req.view(), &Secret::new(secret), &opts).unwrap();
    req.apply(&s);
    req
}

fn check(req: &OwnedRequest, secrets: &Secrets) -> Analysis {
    analyze(&req.view(), secrets, &VerifyOptions::at(NOW))
}

fn with_test(provider: Provider) -> Secrets {
    Secrets::new().with_test_secret(provider, Secret::new(TEST))
}

const PROVIDERS: [Provider; 4] = [
    Provider::Stripe,
    Provider::Github,
    Provider::Twilio,
    Provider::StandardWebhooks,
];

#[test]
fn signed_with_the_test_secret_is_valid_and_says_so() {
    for p in PROVIDERS {
        let a = check(&signed(p, TEST, NOW - 5), &with_test(p));
        assert_eq!(a.verdict, Verdict::Valid, "{p}: {a:#?}");
        assert_eq!(a.matched_secret, Some(SecretSource::TwkTest), "{p}");
        assert!(a.diagnosis.is_none(), "{p}");
        assert_eq!(a.provider, Some(p));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["matched_secret"], "twk-test", "{p}");
    }
}

#[test]
fn signed_with_another_secret_stays_exactly_no_secret() {
    for p in PROVIDERS {
        let req = signed(p, OTHER, NOW - 5);
        let a = check(&req, &with_test(p));
        assert_eq!(a.verdict, Verdict::NoSecret, "{p}: {a:#?}");
        assert_eq!(a.matched_secret, None);
        // Word for word what it is with no test secret at all.
        assert_eq!(a, check(&req, &Secrets::new()), "{p}");
    }
}

#[test]
fn unsigned_or_another_providers_test_secret_changes_nothing() {
    let bare = request(Provider::Stripe).with_header("Stripe-Signature", "t=1,v1=");
    let a = check(&bare, &with_test(Provider::Stripe));
    assert_eq!(a, check(&bare, &Secrets::new()));
    // GitHub's test secret is no Stripe secret.
    let req = signed(Provider::Stripe, TEST, NOW - 5);
    let a = check(&req, &with_test(Provider::Github));
    assert_eq!(a.verdict, Verdict::NoSecret);
}

#[test]
fn a_configured_secret_always_wins() {
    for p in PROVIDERS {
        let both = with_test(p).with(p, Secret::new(OTHER));
        // Signed with the test secret while another one is configured: as today, invalid.
        let a = check(&signed(p, TEST, NOW - 5), &both);
        assert_eq!(a.verdict, Verdict::Invalid, "{p}: {a:#?}");
        assert_eq!(a.matched_secret, None);
        assert_eq!(
            a,
            check(
                &signed(p, TEST, NOW - 5),
                &Secrets::new().with(p, Secret::new(OTHER))
            )
        );
        // Signed with the configured one: valid, and it says which.
        let a = check(&signed(p, OTHER, NOW - 5), &both);
        assert_eq!(a.verdict, Verdict::Valid, "{p}");
        assert_eq!(a.matched_secret, Some(SecretSource::Configured));
    }
}

#[test]
fn an_old_signature_with_the_test_secret_is_stale_like_any_other() {
    let a = check(
        &signed(Provider::Stripe, TEST, NOW - 3600),
        &with_test(Provider::Stripe),
    );
    assert_eq!(a.verdict, Verdict::Stale, "{a:#?}");
    assert_eq!(a.matched_secret, Some(SecretSource::TwkTest));
}

#[test]
fn test_secrets_are_masked_and_never_counted_as_configured() {
    let s = with_test(Provider::Stripe);
    assert!(!format!("{s:?}").contains(TEST));
    assert!(s.is_empty());
    assert!(s.get(Provider::Stripe).is_none());
    assert_eq!(s.configured().count(), 0);
    assert!(s.test_secret(Provider::Stripe).is_some());
    // Signing never falls back to it.
    let req = request(Provider::Stripe);
    let signed = twk_providers::sign_request(
        Provider::Stripe,
        &req.view(),
        &s,
        &SignOptions {
            timestamp: Some(NOW),
            id: None,
        },
    );
    assert!(signed.is_err());
}

#[test]
fn an_analysis_stored_before_test_secrets_still_reads() {
    let mut json = serde_json::to_value(check(
        &signed(Provider::Stripe, OTHER, NOW),
        &Secrets::new().with(Provider::Stripe, Secret::new(OTHER)),
    ))
    .unwrap();
    json.as_object_mut().unwrap().remove("matched_secret");
    let a: Analysis = serde_json::from_value(json).unwrap();
    assert_eq!((a.verdict, a.matched_secret), (Verdict::Valid, None));
}
