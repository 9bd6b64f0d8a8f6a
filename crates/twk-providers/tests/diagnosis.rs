//! The diagnosis names the plausible mistake that would have matched.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use twk_providers::{
    Analysis, OwnedRequest, Provider, Secret, Secrets, SignOptions, Verdict, VerifyOptions,
    analyze, sign_with_secret,
};

const NOW: i64 = 1_700_000_000;
const FORM: &str = "CallSid=CA123&From=%2B14155550100&To=%2B18005550100&Body=hi+there";

fn form_request(url: &str) -> OwnedRequest {
    OwnedRequest::new("POST", url, FORM)
        .with_header("Content-Type", "application/x-www-form-urlencoded")
}

/// Signs `req` as `provider` with `secret` (timestamp NOW-10, id msg_1).
fn signed(provider: Provider, mut req: OwnedRequest, secret: &Secret) -> OwnedRequest {
    let opts = SignOptions {
        timestamp: Some(NOW - 10),
        id: Some("msg_1".into()),
    };
    let s = sign_with_secret(provider, &req.view(), secret, &opts).unwrap();
    req.apply(&s);
    req
}

/// Moves the signature of `from` onto `to` (same body/headers, different URL etc.).
fn with_url(req: &OwnedRequest, url: &str) -> OwnedRequest {
    let mut r = req.clone();
    r.url = url.to_owned();
    r
}

fn check(req: &OwnedRequest, secrets: &Secrets, opts: VerifyOptions) -> Analysis {
    analyze(&req.view(), secrets, &opts)
}

fn cause(a: &Analysis) -> String {
    a.diagnosis
        .as_ref()
        .and_then(|d| d.likely_cause.clone())
        .unwrap_or_else(|| panic!("no likely cause: {a:#?}"))
}

fn twilio_secrets() -> (Secret, Secrets) {
    let s = Secret::new("primary-token");
    (s.clone(), Secrets::new().with(Provider::Twilio, s))
}

#[test]
fn twilio_http_vs_https() {
    let (s, secrets) = twilio_secrets();
    let req = signed(
        Provider::Twilio,
        form_request("https://pub.example.com/sms"),
        &s,
    );
    let a = check(
        &with_url(&req, "http://pub.example.com/sms"),
        &secrets,
        VerifyOptions::at(NOW),
    );
    assert_eq!(a.verdict, Verdict::Invalid);
    let d = a.diagnosis.as_ref().unwrap();
    assert!(
        cause(&a).contains("https://pub.example.com/sms"),
        "{}",
        cause(&a)
    );
    assert!(cause(&a).contains("scheme") || cause(&a).contains("https://"));
    // Expected vs received, and the exact signed string, escaped.
    assert_ne!(d.expected, d.received);
    assert!(d.received.is_some() && d.expected.is_some());
    assert!(
        d.signed_string
            .as_deref()
            .unwrap()
            .starts_with("http://pub.example.com/smsBodyhi thereCallSidCA123")
    );
}

#[test]
fn twilio_port_variants_are_accepted_and_named() {
    let (s, secrets) = twilio_secrets();
    let req = signed(
        Provider::Twilio,
        form_request("https://pub.example.com/sms"),
        &s,
    );
    let a = check(
        &with_url(&req, "https://pub.example.com:8443/sms"),
        &secrets,
        VerifyOptions::at(NOW),
    );
    assert_eq!(a.verdict, Verdict::Valid);
    assert_eq!(a.matched_variant.as_deref(), Some("port-stripped"));
}

#[test]
fn twilio_localhost_url_instead_of_public_url() {
    let (s, secrets) = twilio_secrets();
    let public = "https://abc.relay.example/t/demo/sms";
    let req = signed(Provider::Twilio, form_request(public), &s);
    // The app (or the user) checks against the URL it sees locally.
    let local = with_url(&req, "http://localhost:3000/sms");
    let a = check(
        &local,
        &secrets,
        VerifyOptions::at(NOW).with_alternate_url("https://abc.relay.example/t/demo"),
    );
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains(public), "{}", cause(&a));
    let hints = &a.diagnosis.as_ref().unwrap().hints;
    assert!(hints.iter().any(|h| h.contains("local URL")), "{hints:?}");
}

#[test]
fn twilio_signed_for_the_local_url_seen_through_host() {
    let (s, secrets) = twilio_secrets();
    // A misconfigured sender signed the URL the local app sees.
    let req = signed(
        Provider::Twilio,
        form_request("http://localhost:3000/sms"),
        &s,
    );
    let mut public = with_url(&req, "https://abc.relay.example/sms");
    public.set_header("Host", "localhost:3000");
    let a = check(&public, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(
        cause(&a).contains("local URL your app sees"),
        "{}",
        cause(&a)
    );
}

#[test]
fn twilio_missing_path_prefix() {
    let (s, secrets) = twilio_secrets();
    let req = signed(
        Provider::Twilio,
        form_request("https://relay.example/t/demo/sms"),
        &s,
    );
    // Checked against the URL with the tunnel's path route stripped, but the forwarded-prefix
    // header says what was removed.
    let mut stripped = with_url(&req, "https://relay.example/sms");
    stripped.set_header("X-Forwarded-Prefix", "/t/demo");
    let a = check(&stripped, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("/t/demo"), "{}", cause(&a));
    // And the other way round: the URL checked has a prefix the sender did not use.
    let req = signed(
        Provider::Twilio,
        form_request("https://relay.example/sms"),
        &s,
    );
    let a = check(
        &with_url(&req, "https://relay.example/t/demo/sms"),
        &secrets,
        VerifyOptions::at(NOW),
    );
    assert!(cause(&a).contains("no /t/demo prefix"), "{}", cause(&a));
}

#[test]
fn twilio_secondary_token() {
    let secondary = Secret::new("secondary-token");
    let req = signed(
        Provider::Twilio,
        form_request("https://pub.example.com/sms"),
        &secondary,
    );
    let mut secrets = Secrets::new().with(Provider::Twilio, Secret::new("primary-token"));
    secrets.set_twilio_secondary(secondary);
    let a = check(&req, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("secondary auth token"), "{}", cause(&a));
}

#[test]
fn twilio_json_body_hash() {
    let (s, secrets) = twilio_secrets();
    let body = br#"{"a":1,"b":"x"}"#;
    let req = OwnedRequest::new("POST", "https://pub.example.com/studio?x=1", body.to_vec())
        .with_header("Content-Type", "application/json");
    let req = signed(Provider::Twilio, req, &s);
    assert!(req.url.contains("&bodySHA256="), "{}", req.url);
    assert_eq!(
        check(&req, &secrets, VerifyOptions::at(NOW)).verdict,
        Verdict::Valid
    );
    // A proxy pretty-printed the JSON: URL signature holds, the body hash does not.
    let mut pretty = req.clone();
    pretty.body =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(body).unwrap())
            .unwrap();
    let a = check(&pretty, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    let d = a.diagnosis.as_ref().unwrap();
    assert!(d.summary.contains("bodySHA256"), "{}", d.summary);
    assert!(cause(&a).contains("re-encoded"), "{}", cause(&a));
    // JSON without bodySHA256 in the URL.
    let mut bare = req.clone();
    bare.url = "https://pub.example.com/studio?x=1".into();
    let a = check(&bare, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(a.diagnosis.unwrap().summary.contains("no bodySHA256"));
}

#[test]
fn twilio_params_sorted_wrongly() {
    let (s, secrets) = twilio_secrets();
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    // Go test vector: key+value sorted (`ReasonConferenceEnded` before `Reason`).
    let body = "Digits=1234&CallSid=CA1234567890ABCDE&To=%2B18005551212&Caller=%2B14158675309&From=%2B14158675309&ReasonConferenceEnded=test&Reason=Participant";
    let req = OwnedRequest::new("POST", url, body)
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_header("X-Twilio-Signature", "95+Bu0JVPi0r/SsESZCVf0dWAjw=");
    let secrets = secrets.with(Provider::Twilio, Secret::new("12345"));
    let _ = s;
    let a = check(&req, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("key+value"), "{}", cause(&a));
}

#[test]
fn raw_body_schemes_name_a_reencoded_body() {
    for provider in [
        Provider::Github,
        Provider::Shopify,
        Provider::Stripe,
        Provider::Slack,
        Provider::Svix,
    ] {
        let secret = if provider == Provider::Svix {
            Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        } else {
            Secret::new("s3cr3t")
        };
        let compact = r#"{"id":"evt_1","type":"thing.happened","data":{"n":"ñ"}}"#.as_bytes();
        let req = OwnedRequest::new("POST", "https://pub.example.com/hook", compact.to_vec())
            .with_header("Content-Type", "application/json");
        let mut req = signed(provider, req, &secret);
        req.body = serde_json::to_vec_pretty(
            &serde_json::from_slice::<serde_json::Value>(compact).unwrap(),
        )
        .unwrap();
        let secrets = Secrets::new().with(provider, secret);
        let a = check(&req, &secrets, VerifyOptions::at(NOW));
        assert_eq!(a.verdict, Verdict::Invalid, "{provider}");
        assert!(
            cause(&a).contains("re-encoded"),
            "{provider}: {}",
            cause(&a)
        );
        assert!(cause(&a).contains("compact"), "{provider}: {}", cause(&a));
    }
}

#[test]
fn stripe_vs_svix_key_handling() {
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"id":"evt_1","type":"invoice.paid"}"#.to_vec();
    // A Svix-style sender (key = base64-decoded secret) checked as Stripe.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap();
    let req = signed(
        Provider::Stripe,
        OwnedRequest::new("POST", "https://x.example/h", body.clone()),
        &Secret::from_bytes(decoded),
    );
    let secrets = Secrets::new().with(Provider::Stripe, Secret::new(whsec));
    let a = check(&req, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("Svix"), "{}", cause(&a));

    // A Stripe-style sender (key = the whole whsec_ string) checked as Svix: sign with a
    // secret whose decoded form is the literal string.
    let literal_as_key = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(whsec)
    );
    let req = signed(
        Provider::Svix,
        OwnedRequest::new("POST", "https://x.example/h", body),
        &Secret::new(literal_as_key),
    );
    let secrets = Secrets::new().with(Provider::Svix, Secret::new(whsec));
    let a = check(&req, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("Stripe"), "{}", cause(&a));
}

#[test]
fn secret_with_a_stray_newline_and_the_wrong_providers_secret() {
    let req = signed(
        Provider::Github,
        OwnedRequest::new("POST", "https://x.example/h", b"{}".to_vec()),
        &Secret::new("abc"),
    );
    let secrets = Secrets::new().with(Provider::Github, Secret::new("abc\n"));
    assert!(cause(&check(&req, &secrets, VerifyOptions::at(NOW))).contains("whitespace"));
    let secrets = Secrets::new()
        .with(Provider::Github, Secret::new("other"))
        .with(Provider::Slack, Secret::new("abc"));
    assert!(cause(&check(&req, &secrets, VerifyOptions::at(NOW))).contains("slack"));
}

#[test]
fn stale_timestamps_report_the_skew() {
    for provider in [
        Provider::Stripe,
        Provider::Slack,
        Provider::StandardWebhooks,
    ] {
        let secret = if provider == Provider::StandardWebhooks {
            Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        } else {
            Secret::new("k")
        };
        let req = signed(
            provider,
            OwnedRequest::new("POST", "https://x.example/h", b"{}".to_vec()),
            &secret,
        );
        let secrets = Secrets::new().with(provider, secret);
        // Signed at NOW-10; checked an hour later.
        let a = check(&req, &secrets, VerifyOptions::at(NOW + 3600));
        assert_eq!(a.verdict, Verdict::Stale, "{provider}");
        assert_eq!(a.skew_secs, Some(3610));
        assert!(a.diagnosis.unwrap().summary.contains("3610 s old"));
        // --tolerance 0 turns the check off.
        let a = check(
            &req,
            &secrets,
            VerifyOptions::at(NOW + 3600).with_tolerance(Some(0)),
        );
        assert_eq!(a.verdict, Verdict::Valid, "{provider}");
    }
    // Slack and Standard Webhooks also reject the future; Stripe does not (like its SDKs).
    let secret = Secret::new("k");
    let req = signed(
        Provider::Slack,
        OwnedRequest::new("POST", "https://x.example/h", b"a=b".to_vec()),
        &secret,
    );
    let a = check(
        &req,
        &Secrets::new().with(Provider::Slack, secret.clone()),
        VerifyOptions::at(NOW - 3600),
    );
    assert_eq!(a.verdict, Verdict::Stale);
    assert!(a.diagnosis.unwrap().summary.contains("in the future"));
    let req = signed(
        Provider::Stripe,
        OwnedRequest::new("POST", "https://x.example/h", b"{}".to_vec()),
        &secret,
    );
    let a = check(
        &req,
        &Secrets::new().with(Provider::Stripe, secret),
        VerifyOptions::at(NOW - 3600),
    );
    assert_eq!(a.verdict, Verdict::Valid);
}

#[test]
fn bandwidth_basic_auth() {
    let creds = Secret::new("twk:hunter2");
    let secrets = Secrets::new().with(Provider::Bandwidth, creds.clone());
    let body = br#"[{"type":"message-delivered","time":"2024-01-01T00:00:00Z","to":"+14155550100","description":"ok","message":{"id":"m1","direction":"out","to":["+14155550100"],"from":"+18005550100"}}]"#;
    let unsigned = OwnedRequest::new("POST", "https://x.example/bw", body.to_vec())
        .with_header("Content-Type", "application/json; charset=utf-8")
        .with_header("User-Agent", "BandwidthAPI/v2");
    let a = check(&unsigned, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.provider, Some(Provider::Bandwidth));
    assert_eq!(a.verdict, Verdict::Unsigned);
    assert!(a.notes.iter().any(|n| n.contains("WWW-Authenticate")));
    assert!(a.notes.iter().any(|n| n.contains("retried for 24 h")));

    let ok = signed(Provider::Bandwidth, unsigned.clone(), &creds);
    assert_eq!(
        check(&ok, &secrets, VerifyOptions::at(NOW)).verdict,
        Verdict::Valid
    );

    let wrong = signed(
        Provider::Bandwidth,
        unsigned.clone(),
        &Secret::new("twk:hunter3"),
    );
    let a = check(&wrong, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    let d = a.diagnosis.unwrap();
    assert!(d.summary.contains("password does not"), "{}", d.summary);
    // Never the password, on either side.
    assert!(!format!("{d:?}").contains("hunter"));

    let mut digest = unsigned.clone();
    digest.set_header("Authorization", "Digest username=\"twk\"");
    assert_eq!(
        check(&digest, &secrets, VerifyOptions::at(NOW)).verdict,
        Verdict::Malformed
    );
    assert_eq!(
        check(&ok, &Secrets::new(), VerifyOptions::at(NOW)).verdict,
        Verdict::NoSecret
    );
}

#[test]
fn authy_webhook_pins_hs256_and_explains_the_key() {
    let key = Secret::new("WSK_abc123");
    let secrets = Secrets::new().with(Provider::AuthyWebhook, key.clone());
    let claims = br#"{"event":"user_added","authy_id":42,"iat":1699999000}"#;
    let req = signed(
        Provider::AuthyWebhook,
        OwnedRequest::new("POST", "https://x.example/authy", claims.to_vec()),
        &key,
    );
    let a = check(&req, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Valid, "{a:#?}");
    assert_eq!(a.event.as_ref().unwrap().name, "user_added");
    // `iat` moved to the signing timestamp.
    assert_eq!(a.event.as_ref().unwrap().details["iat"], NOW - 10);

    // alg none is refused even with a "valid" shape.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"event":"user_added"}"#)
    );
    let forged = OwnedRequest::new(
        "POST",
        "https://x.example/authy",
        format!(r#"{{"body":"{none}"}}"#),
    );
    let a = check(
        &forged,
        &secrets,
        VerifyOptions::at(NOW).with_provider(Some(Provider::AuthyWebhook)),
    );
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(a.diagnosis.unwrap().summary.contains("HS256"));

    // Signed with the key minus its WSK_ prefix.
    let wrong = signed(
        Provider::AuthyWebhook,
        OwnedRequest::new("POST", "https://x.example/authy", claims.to_vec()),
        &Secret::new("abc123"),
    );
    assert!(cause(&check(&wrong, &secrets, VerifyOptions::at(NOW))).contains("WSK_"));

    // Expired token: stale unless the check is off.
    let exp = br#"{"event":"user_added","exp":1600000000}"#;
    let old = signed(
        Provider::AuthyWebhook,
        OwnedRequest::new("POST", "https://x.example/authy", exp.to_vec()),
        &key,
    );
    assert_eq!(
        check(&old, &secrets, VerifyOptions::at(NOW)).verdict,
        Verdict::Stale
    );
    assert_eq!(
        check(
            &old,
            &secrets,
            VerifyOptions::at(NOW).with_tolerance(Some(0))
        )
        .verdict,
        Verdict::Valid
    );
}

#[test]
fn authy_onetouch_port_and_form_bodies() {
    let key = Secret::new("api-key");
    let secrets = Secrets::new().with(Provider::AuthyOnetouch, key.clone());
    let req = OwnedRequest::new(
        "POST",
        "https://pub.example.com/authy/callback",
        "a[b]=1&c=x+y",
    )
    .with_header("Content-Type", "application/x-www-form-urlencoded");
    let req = signed(Provider::AuthyOnetouch, req, &key);
    assert_eq!(
        check(&req, &secrets, VerifyOptions::at(NOW)).verdict,
        Verdict::Valid
    );
    let a = check(
        &with_url(&req, "https://pub.example.com:3000/authy/callback"),
        &secrets,
        VerifyOptions::at(NOW),
    );
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("port"), "{}", cause(&a));
}

#[test]
fn unknown_no_secret_and_malformed() {
    let req = OwnedRequest::new("POST", "https://x.example/h", b"hello".to_vec());
    let a = check(&req, &Secrets::new(), VerifyOptions::at(NOW));
    assert_eq!((a.provider, a.verdict), (None, Verdict::Unsigned));

    let req = req.with_header("Stripe-Signature", "t=1,v1=00");
    let a = check(&req, &Secrets::new(), VerifyOptions::at(NOW));
    assert_eq!(
        (a.provider, a.verdict),
        (Some(Provider::Stripe), Verdict::NoSecret)
    );
    // The diagnosis says where the secret goes: flag, environment variable, config key.
    let why = a.diagnosis.map(|d| d.summary).unwrap_or_default();
    for place in [
        "--secret stripe=whsec_",
        "STRIPE_WEBHOOK_SECRET",
        "[secrets] as stripe = ",
    ] {
        assert!(why.contains(place), "{place} missing: {why}");
    }

    let req = OwnedRequest::new("POST", "https://x.example/h", b"{}".to_vec())
        .with_header("X-Slack-Signature", "v0=00")
        .with_header("X-Slack-Request-Timestamp", "yesterday");
    let a = check(
        &req,
        &Secrets::new().with(Provider::Slack, Secret::new("k")),
        VerifyOptions::at(NOW),
    );
    assert_eq!(a.verdict, Verdict::Malformed);

    // Odd paths (empty segments before multi-byte characters) are handled.
    let req = OwnedRequest::new("POST", "https://h.example//ñ/x?q=1", FORM)
        .with_header("X-Twilio-Signature", "abc=");
    let a = check(&req, &twilio_secrets().1, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);

    // Twilio needs an absolute URL.
    let req = OwnedRequest::new("POST", "/sms", FORM).with_header("X-Twilio-Signature", "abc=");
    let a = check(&req, &twilio_secrets().1, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Malformed);
}

#[test]
fn json_output_has_the_documented_fields() {
    let (s, secrets) = twilio_secrets();
    let req = signed(
        Provider::Twilio,
        form_request("https://pub.example.com/sms"),
        &s,
    );
    let a = check(
        &with_url(&req, "http://pub.example.com/sms"),
        &secrets,
        VerifyOptions::at(NOW),
    );
    let v = serde_json::to_value(&a).unwrap();
    for k in [
        "provider",
        "event",
        "verdict",
        "matched_variant",
        "diagnosis",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["provider"], "twilio");
    assert_eq!(v["verdict"], "invalid");
    assert!(v["diagnosis"]["likely_cause"].is_string());
    // Secrets never appear.
    assert!(!v.to_string().contains("primary-token"));
}

/// The labels of everything the diagnosis checked.
fn checked(a: &Analysis) -> &[String] {
    a.diagnosis.as_ref().map_or(&[], |d| d.checked.as_slice())
}

#[test]
fn twilio_signed_for_port_9999_is_not_blamed_on_the_secret() {
    let (s, secrets) = twilio_secrets();
    let req = signed(
        Provider::Twilio,
        form_request("https://example.test:9999/hook"),
        &s,
    );
    // Checked against the URL without the port, with nothing in the headers naming it (as
    // `twk-tunnel verify --url … --header X-Twilio-Signature:…` does).
    let bare = with_url(&req, "https://example.test/hook");
    let a = check(&bare, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    let d = a.diagnosis.as_ref().unwrap();
    assert!(
        !d.summary.contains("secret is probably not"),
        "{}",
        d.summary
    );
    assert!(cause(&a).contains("signed for port 9999"), "{}", cause(&a));
    assert!(cause(&a).contains("https://example.test:9999/hook"));
    assert!(cause(&a).contains("has no port"), "{}", cause(&a));
    // The same when the checked URL has another port, and when the Host header carries the
    // port the sender used: the explanation names where the port came from.
    let other = with_url(&req, "https://example.test:8443/hook");
    let a = check(&other, &secrets, VerifyOptions::at(NOW));
    assert!(cause(&a).contains("signed for port 9999"), "{}", cause(&a));
    assert!(cause(&a).contains("has :8443"), "{}", cause(&a));
    let mut hosted = bare.clone();
    hosted.set_header("Host", "example.test:9999");
    let a = check(&hosted, &secrets, VerifyOptions::at(NOW));
    assert!(cause(&a).contains("signed for port 9999"), "{}", cause(&a));
    assert!(cause(&a).contains("Host header"), "{}", cause(&a));
}

#[test]
fn twilio_and_authy_find_the_port_in_forwarding_headers() {
    // 7443 is in no list of common ports: only the request can name it.
    let (s, secrets) = twilio_secrets();
    let req = signed(
        Provider::Twilio,
        form_request("https://example.test:7443/hook"),
        &s,
    );
    let bare = with_url(&req, "https://example.test/hook");
    let a = check(&bare, &secrets, VerifyOptions::at(NOW));
    assert!(cause_or_none(&a).is_none(), "{a:#?}");
    for (name, value, source) in [
        ("X-Forwarded-Port", "7443, 443", "X-Forwarded-Port"),
        ("X-Forwarded-Host", "example.test:7443", "X-Forwarded-Host"),
        (
            "Forwarded",
            "for=192.0.2.60;proto=https;host=\"example.test:7443\", for=10.0.0.1",
            "Forwarded",
        ),
        ("x-twk-host", "example.test:7443", "x-twk-host"),
        (
            "x-twk-public-url",
            "https://example.test:7443/hook",
            "x-twk-public-url",
        ),
    ] {
        let mut r = bare.clone();
        r.set_header(name, value);
        let a = check(&r, &secrets, VerifyOptions::at(NOW));
        assert_eq!(a.verdict, Verdict::Invalid, "{name}");
        assert!(
            cause(&a).contains("signed for port 7443"),
            "{name}: {}",
            cause(&a)
        );
        assert!(cause(&a).contains(source), "{name}: {}", cause(&a));
    }

    // Authy OneTouch signs the URL too and gets the same explanation.
    let key = Secret::new("api-key");
    let secrets = Secrets::new().with(Provider::AuthyOnetouch, key.clone());
    let req = OwnedRequest::new("POST", "https://example.test:7443/authy", "a=1")
        .with_header("Content-Type", "application/x-www-form-urlencoded");
    let mut r = with_url(
        &signed(Provider::AuthyOnetouch, req, &key),
        "https://example.test/authy",
    );
    r.set_header("X-Forwarded-Port", "7443");
    let a = check(&r, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    assert!(cause(&a).contains("signed for port 7443"), "{}", cause(&a));
}

fn cause_or_none(a: &Analysis) -> Option<String> {
    a.diagnosis.as_ref().and_then(|d| d.likely_cause.clone())
}

#[test]
fn hostile_port_headers_try_a_bounded_number_of_ports() {
    let (_, secrets) = twilio_secrets();
    let many: Vec<String> = (1..5000).map(|p| p.to_string()).collect();
    let many_hosts: Vec<String> = (1..5000).map(|p| format!("h.example:{p}")).collect();
    let forwarded: Vec<String> = (1..5000).map(|p| format!("host=h.example:{p}")).collect();
    let req = form_request("https://example.test/hook")
        .with_header("X-Twilio-Signature", "bm90IGl0")
        .with_header("Host", "example.test:99999999999")
        .with_header("X-Forwarded-Port", many.join(","))
        .with_header("X-Forwarded-Host", many_hosts.join(","))
        .with_header("Forwarded", forwarded.join(", "))
        .with_header("x-twk-host", "example.test:-1");
    let a = check(&req, &secrets, VerifyOptions::at(NOW));
    assert_eq!(a.verdict, Verdict::Invalid);
    let ports = checked(&a)
        .iter()
        .filter(|l| l.starts_with("port "))
        .count();
    // One port per header at most, plus the fixed list of common ports.
    assert!(ports <= 16, "{ports} ports tried: {:?}", checked(&a));
    assert!(
        checked(&a).iter().any(|l| l == "port 1"),
        "{:?}",
        checked(&a)
    );
}

#[test]
fn checked_lists_each_label_once() {
    let (s, _) = twilio_secrets();
    let req = signed(
        Provider::Twilio,
        form_request("https://pub.example.com:8443/t/demo/sms?x=1"),
        &s,
    );
    let mut req = req;
    req.set_header("Host", "localhost:3000");
    req.set_header("X-Forwarded-Proto", "https");
    let wrong = Secrets::new().with(Provider::Twilio, Secret::new("not-the-token"));
    // Two alternates: each is an "alternate URL" and an "alternate origin".
    let opts = VerifyOptions::at(NOW)
        .with_alternate_url("https://abc.relay.example/t/demo")
        .with_alternate_url("http://localhost:3000/");
    let a = check(&req, &wrong, opts.clone());
    assert_eq!(a.verdict, Verdict::Invalid);
    let labels = checked(&a);
    assert!(labels.len() > 10, "{labels:?}");
    for (i, l) in labels.iter().enumerate() {
        assert!(
            !labels[..i].contains(l),
            "{l:?} appears twice in {labels:?}"
        );
    }
    // The same for the other URL-signing scheme.
    let key = Secret::new("api-key");
    let authy = OwnedRequest::new("POST", "https://pub.example.com:8443/authy", "a=1")
        .with_header("Content-Type", "application/x-www-form-urlencoded");
    let authy = signed(Provider::AuthyOnetouch, authy, &key);
    let wrong = Secrets::new().with(Provider::AuthyOnetouch, Secret::new("other"));
    let a = check(&authy, &wrong, opts);
    assert_eq!(a.verdict, Verdict::Invalid);
    let labels = checked(&a);
    for (i, l) in labels.iter().enumerate() {
        assert!(
            !labels[..i].contains(l),
            "{l:?} appears twice in {labels:?}"
        );
    }
}

#[test]
fn an_unrecognised_request_says_only_that() {
    let opts = || VerifyOptions::at(NOW);
    let plain = OwnedRequest::new("GET", "https://h.example/x", "");
    let a = check(&plain, &Secrets::default(), opts());
    assert!(a.is_unrecognised(), "{a:?}");
    assert_eq!(a.notes, [twk_providers::UNRECOGNISED]);
    // Anything more is worth keeping: a note added after, or a provider named.
    let mut more = a.clone();
    more.notes.push("the relay refused this request".into());
    assert!(!more.is_unrecognised());
    let mut named = opts();
    named.provider = Some(Provider::Stripe);
    assert!(!check(&plain, &Secrets::default(), named).is_unrecognised());
    let twilio = form_request("https://h.example/sms").with_header("X-Twilio-Signature", "x");
    assert!(!check(&twilio, &Secrets::default(), opts()).is_unrecognised());
    // A GET status callback is known by its query alone; without one, by nothing.
    let get = OwnedRequest::new("GET", "https://h.example/s?AccountSid=AC1&CallSid=CA1", "");
    assert_eq!(twk_providers::detect(&get.view()), Some(Provider::Twilio));
    let bare = OwnedRequest::new("GET", "https://h.example/s/AccountSid=AC1&CallSid=CA1", "");
    assert_eq!(twk_providers::detect(&bare.view()), None);
}
