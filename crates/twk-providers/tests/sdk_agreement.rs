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

// Class 2: Authy OneTouch arrays, ordered as authy-python 2.2.6 orders them.

const AUTHY_KEY: &str = "foobar123";
const AUTHY_URL: &str = "https://example.com/authy";
const AUTHY_NONCE: &str = "1455825429";

fn onetouch(body: &str, sig: &str) -> OwnedRequest {
    OwnedRequest::new("POST", AUTHY_URL, body)
        .with_header("Content-Type", "application/json")
        .with_header("X-Authy-Signature-Nonce", AUTHY_NONCE)
        .with_header("X-Authy-Signature", sig)
}

/// (body, the signature authy-python 2.2.6 computes for it with key foobar123, nonce
/// 1455825429, POST, https://example.com/authy, the exact params string).
const AUTHY_ARRAYS: [(&str, &str, &str); 2] = [
    (
        r#"{"l":[{"a":"1","b":"2"},{"a":"3","b":"4"}]}"#,
        "lsY+34A6tQKURn3BbVI+vnoY9O1riTmBXJgyFeV1PHU=",
        "l%5B%5D%5Ba%5D=1&l%5B%5D%5Bb%5D=2&l%5B%5D%5Ba%5D=3&l%5B%5D%5Bb%5D=4",
    ),
    (
        r#"{"n": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"], "a": "x y/~*"}"#,
        "oH+G6pNwdYEz51Z21E9st9kLki1Hg8kbRd1fZMpqzCY=",
        "a=x+y%2F~%2A&n%5B%5D=0&n%5B%5D=1&n%5B%5D=10&n%5B%5D=11&n%5B%5D=2&n%5B%5D=3&\
         n%5B%5D=4&n%5B%5D=5&n%5B%5D=6&n%5B%5D=7&n%5B%5D=8&n%5B%5D=9",
    ),
];

#[test]
fn authy_arrays_keep_their_order_with_positions_compared_as_text() {
    for (body, sig, params) in AUTHY_ARRAYS {
        let a = check(
            Provider::AuthyOnetouch,
            &onetouch(body, sig),
            AUTHY_KEY,
            NOW,
        );
        assert_eq!(a.verdict, Verdict::Valid, "{body}: {a:#?}");
        assert_eq!(a.matched_variant.as_deref(), Some("canonical"));
        let want = format!("{AUTHY_NONCE}|POST|{AUTHY_URL}|{params}");
        assert_eq!(a.signed_string.as_deref(), Some(want.as_str()), "{body}");
    }
}

#[test]
fn authy_sign_reproduces_the_sdk_for_arrays() {
    for (body, sig, _) in AUTHY_ARRAYS {
        let req = OwnedRequest::new("POST", AUTHY_URL, body)
            .with_header("Content-Type", "application/json")
            .with_header("X-Authy-Signature-Nonce", AUTHY_NONCE);
        let s = sign_with_secret(
            Provider::AuthyOnetouch,
            &req.view(),
            &Secret::new(AUTHY_KEY),
            &SignOptions::default(),
        )
        .unwrap();
        let got: Vec<(&str, &str)> = s
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("X-Authy-Signature", sig),
                ("X-Authy-Signature-Nonce", AUTHY_NONCE)
            ]
        );
    }
}

#[test]
fn authy_rejects_reordered_or_repaired_array_elements() {
    // The signature of the first body over elements re-paired ({a:1,b:4},{a:3,b:2}) or
    // reordered: every validator variant must reject them, as authy-python does.
    let (_, sig, _) = AUTHY_ARRAYS[0];
    for body in [
        r#"{"l":[{"a":"1","b":"4"},{"a":"3","b":"2"}]}"#,
        r#"{"l":[{"a":"3","b":"4"},{"a":"1","b":"2"}]}"#,
    ] {
        let a = check(
            Provider::AuthyOnetouch,
            &onetouch(body, sig),
            AUTHY_KEY,
            NOW,
        );
        assert_eq!(a.verdict, Verdict::Invalid, "{body}: {a:#?}");
    }
}

// Class 3: no "empty params" fallback.

/// authy-python's test literal: HMAC over `1427849783.886085|POST|<url>|` (an empty params
/// string, because the test mocks the query builder away), key foobar123.
const AUTHY_EMPTY_PARAMS_SIG: &str = "UJRjviTdXFA0xu4duxW9BWVDRZGsmSUDd4RglmzcX4o=";
const AUTHY_DOCS_URL: &str = "https://api.authy.com/dashboard/json/application/webhooks";

#[test]
fn authy_signature_over_empty_params_does_not_cover_a_request_with_params() {
    for (method, url, body) in [
        (
            "POST",
            AUTHY_DOCS_URL.to_owned(),
            r#"{"b":"val|ue&2","a":"value1"}"#,
        ),
        ("POST", AUTHY_DOCS_URL.to_owned(), r#"{"anything":"else"}"#),
        ("GET", format!("{AUTHY_DOCS_URL}?a=1"), ""),
    ] {
        let req = OwnedRequest::new(method, url.as_str(), body)
            .with_header("Content-Type", "application/json")
            .with_header("X-Authy-Signature-Nonce", "1427849783.886085")
            .with_header("X-Authy-Signature", AUTHY_EMPTY_PARAMS_SIG);
        let a = check(Provider::AuthyOnetouch, &req, AUTHY_KEY, NOW);
        assert_eq!(a.verdict, Verdict::Invalid, "{method} {url} {body}: {a:#?}");
        assert!(
            !a.diagnosis
                .unwrap()
                .checked
                .iter()
                .any(|c| c.contains("empty")),
            "no empty-params variant is tried"
        );
    }
    // Without parameters, the same signature is simply the canonical one.
    let req = OwnedRequest::new("POST", AUTHY_DOCS_URL, "")
        .with_header("X-Authy-Signature-Nonce", "1427849783.886085")
        .with_header("X-Authy-Signature", AUTHY_EMPTY_PARAMS_SIG);
    let a = check(Provider::AuthyOnetouch, &req, AUTHY_KEY, NOW);
    assert_eq!(a.verdict, Verdict::Valid, "{a:#?}");
    assert_eq!(a.matched_variant.as_deref(), Some("canonical"));
}

// Class 4: Authy webhook JWT times, as RFC 7519 and PyJWT 2.15 check them.

const WSK: &str = "WSK_0123456789abcdefghijklmnopqrstuv";

/// A webhook request whose `body` field is a JWT of `claims`, signed with [`WSK`].
fn jwt_request(claims: &str) -> OwnedRequest {
    let req = OwnedRequest::new("POST", "https://example.com/authy-events", claims)
        .with_header("Content-Type", "application/json");
    let s = sign_with_secret(
        Provider::AuthyWebhook,
        &req.view(),
        &Secret::new(WSK),
        &SignOptions::default(),
    )
    .unwrap();
    let mut req = req;
    req.apply(&s);
    req
}

fn jwt_verdict(claims: &str, now: i64, tolerance: Option<u64>) -> Verdict {
    let secrets = Secrets::new().with(Provider::AuthyWebhook, Secret::new(WSK));
    let opts = VerifyOptions::at(now)
        .with_provider(Some(Provider::AuthyWebhook))
        .with_tolerance(tolerance);
    analyze(&jwt_request(claims).view(), &secrets, &opts).verdict
}

#[test]
fn authy_jwt_is_expired_from_the_second_exp_on() {
    let claims = format!(r#"{{"event":"user_added","exp":{NOW}}}"#);
    assert_eq!(jwt_verdict(&claims, NOW - 1, None), Verdict::Valid);
    assert_eq!(jwt_verdict(&claims, NOW, None), Verdict::Stale);
    // Leeway (the tolerance) moves the boundary by exactly that much.
    assert_eq!(jwt_verdict(&claims, NOW + 4, Some(5)), Verdict::Valid);
    assert_eq!(jwt_verdict(&claims, NOW + 5, Some(5)), Verdict::Stale);
    // --tolerance 0 turns time checks off.
    assert_eq!(jwt_verdict(&claims, NOW + 1000, Some(0)), Verdict::Valid);
    // A fractional exp counts as its whole seconds (PyJWT's int()).
    let frac = format!(r#"{{"event":"user_added","exp":{NOW}.9}}"#);
    assert_eq!(jwt_verdict(&frac, NOW, None), Verdict::Stale);
}

#[test]
fn authy_jwt_issued_or_valid_only_in_the_future_is_rejected() {
    for claim in ["iat", "nbf"] {
        let claims = format!(r#"{{"event":"user_added","{claim}":{}}}"#, NOW + 1);
        assert_eq!(
            jwt_verdict(&claims, NOW + 1, None),
            Verdict::Valid,
            "{claim}"
        );
        assert_eq!(jwt_verdict(&claims, NOW, None), Verdict::Stale, "{claim}");
        assert_eq!(
            jwt_verdict(&claims, NOW - 4, Some(5)),
            Verdict::Valid,
            "{claim}"
        );
        assert_eq!(
            jwt_verdict(&claims, NOW - 5, Some(5)),
            Verdict::Stale,
            "{claim}"
        );
    }
}

#[test]
fn authy_jwt_time_claim_that_is_not_a_number_is_malformed() {
    let claims = r#"{"event":"user_added","exp":"tomorrow"}"#;
    assert_eq!(jwt_verdict(claims, NOW, None), Verdict::Malformed);
}
