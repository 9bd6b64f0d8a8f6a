//! The disagreements with the official SDKs found in issue 13, as fixed vectors: each request
//! is checked (and signed) the way the SDK named in the test does it.
#![allow(clippy::unwrap_used)]

use twk_providers::{
    Analysis, OwnedRequest, Provider, Secret, Secrets, SignOptions, Verdict, VerifyOptions,
    analyze, sign_with_secret,
};

const NOW: i64 = 1_700_000_000;

fn check(provider: Provider, req: &OwnedRequest, secret: &str, now: i64) -> Analysis {
    let secrets = Secrets::new().with(provider, Secret::new(secret));
    let opts = VerifyOptions::at(now).with_provider(Some(provider));
    analyze(&req.view(), &secrets, &opts)
}

fn cause(a: &Analysis) -> String {
    a.diagnosis
        .as_ref()
        .and_then(|d| d.likely_cause.clone())
        .unwrap_or_else(|| panic!("no likely cause: {a:#?}"))
}

// Class 1: Twilio HMAC-SHA256 (X-Twilio-Webhooks-Signature-Settings), as twilio-python 9.13.

const SETTINGS: &str = "X-Twilio-Webhooks-Signature-Settings";
/// twilio-python 9.13: `RequestValidator("12345").compute_signature("https://example.com/sms",
/// {"Body": "hi", "From": "+15551234567"}, "HMAC_SHA256")`.
const TWILIO_SHA256: &str = "WH21wBmNlq44d15s5yqOSWZT4daaBsN63/F6CU9WoMQ=";
/// The same with HMAC_SHA1 (no settings header).
const TWILIO_SHA1: &str = "ByxSJQOe6SaKPG4JImClWdS3Bis=";

fn twilio_sms() -> OwnedRequest {
    OwnedRequest::new(
        "POST",
        "https://example.com/sms",
        "Body=hi&From=%2B15551234567",
    )
    .with_header("Content-Type", "application/x-www-form-urlencoded")
}

#[test]
fn twilio_sha256_signature_named_by_the_settings_header_is_valid() {
    let req = twilio_sms()
        .with_header(SETTINGS, "key=KS1,algorithm=HMAC_SHA256")
        .with_header("X-Twilio-Signature", TWILIO_SHA256);
    let a = check(Provider::Twilio, &req, "12345", NOW);
    assert_eq!(a.verdict, Verdict::Valid, "{a:#?}");
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("HMAC-SHA256") && n.contains("KS1")),
        "{a:#?}"
    );
}

#[test]
fn twilio_sha1_stays_the_default() {
    let req = twilio_sms().with_header("X-Twilio-Signature", TWILIO_SHA1);
    assert_eq!(
        check(Provider::Twilio, &req, "12345", NOW).verdict,
        Verdict::Valid
    );
    // A settings header without an algorithm item is SHA-1 too.
    let req = req.with_header(SETTINGS, "key=KS1");
    assert_eq!(
        check(Provider::Twilio, &req, "12345", NOW).verdict,
        Verdict::Valid
    );
}

#[test]
fn twilio_algorithm_must_be_the_one_the_header_names() {
    // SHA-256 signature, header dropped: invalid, and the diagnosis says so.
    let req = twilio_sms().with_header("X-Twilio-Signature", TWILIO_SHA256);
    let a = check(Provider::Twilio, &req, "12345", NOW);
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(
        cause(&a).contains("no X-Twilio-Webhooks-Signature-Settings"),
        "{a:#?}"
    );
    // SHA-1 signature, header says SHA-256: invalid.
    let req = twilio_sms()
        .with_header(SETTINGS, "key=KS1,algorithm=HMAC_SHA256")
        .with_header("X-Twilio-Signature", TWILIO_SHA1);
    let a = check(Provider::Twilio, &req, "12345", NOW);
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("is HMAC-SHA1"), "{a:#?}");
    // An algorithm the SDKs do not know: rejected, never checked as SHA-1.
    let req = twilio_sms()
        .with_header(SETTINGS, "algorithm=HMAC_SHA512")
        .with_header("X-Twilio-Signature", TWILIO_SHA1);
    let a = check(Provider::Twilio, &req, "12345", NOW);
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(a.diagnosis.unwrap().summary.contains("HMAC_SHA512"));
}

#[test]
fn twilio_sign_uses_the_algorithm_the_header_names() {
    let req = twilio_sms().with_header(SETTINGS, "key=KS1,algorithm=HMAC_SHA256");
    let s = sign_with_secret(
        Provider::Twilio,
        &req.view(),
        &Secret::new("12345"),
        &SignOptions::default(),
    )
    .unwrap();
    assert_eq!(
        s.headers,
        vec![("X-Twilio-Signature".to_owned(), TWILIO_SHA256.to_owned())]
    );
    let s = sign_with_secret(
        Provider::Twilio,
        &twilio_sms().view(),
        &Secret::new("12345"),
        &SignOptions::default(),
    )
    .unwrap();
    assert_eq!(s.headers[0].1, TWILIO_SHA1);
    let bad = twilio_sms().with_header(SETTINGS, "algorithm=HMAC_MD5");
    assert!(
        sign_with_secret(
            Provider::Twilio,
            &bad.view(),
            &Secret::new("12345"),
            &SignOptions::default()
        )
        .is_err()
    );
}
