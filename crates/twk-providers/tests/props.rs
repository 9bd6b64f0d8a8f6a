//! Property tests: for every scheme, sign-then-verify holds, and one flipped byte in a signed
//! part (body, URL, signature header) is rejected; hostile input never panics.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use proptest::prelude::*;
use twk_providers::{
    OwnedRequest, Provider, Secret, Secrets, SignOptions, Verdict, VerifyOptions, analyze, detect,
    sign_with_secret,
};

const NOW: i64 = 1_700_000_000;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A secret that suits the provider.
fn secret_for(provider: Provider, raw: &[u8]) -> Secret {
    match provider {
        Provider::StandardWebhooks | Provider::Svix => Secret::new(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )),
        Provider::Bandwidth => Secret::new(format!("user{}:{}", raw.len(), hex::encode(raw))),
        Provider::AuthyWebhook => Secret::new(format!("WSK_{}", hex::encode(raw))),
        _ => Secret::new(hex::encode(raw)),
    }
}

/// A request shaped like what the provider sends, before signing.
fn request_for(
    provider: Provider,
    url: &str,
    body: &[u8],
    fields: &[(String, String)],
) -> OwnedRequest {
    match provider {
        Provider::Twilio | Provider::Slack => {
            OwnedRequest::new("POST", url, serde_urlencoded::to_string(fields).unwrap())
                .with_header("Content-Type", "application/x-www-form-urlencoded")
        }
        Provider::AuthyOnetouch | Provider::AuthyWebhook => {
            let obj: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            OwnedRequest::new("POST", url, serde_json::to_vec(&obj).unwrap())
                .with_header("Content-Type", "application/json")
        }
        _ => OwnedRequest::new("POST", url, body.to_vec())
            .with_header("Content-Type", "application/json"),
    }
}

fn sign_and_apply(provider: Provider, req: &OwnedRequest, secret: &Secret) -> OwnedRequest {
    let opts = SignOptions {
        timestamp: Some(NOW - 5),
        id: Some("msg_prop".to_owned()),
    };
    let signed = sign_with_secret(provider, &req.view(), secret, &opts).unwrap();
    let mut out = req.clone();
    out.apply(&signed);
    out
}

fn verdict(provider: Provider, req: &OwnedRequest, secret: &Secret) -> Verdict {
    let secrets = Secrets::new().with(provider, secret.clone());
    let opts = VerifyOptions::at(NOW).with_provider(Some(provider));
    analyze(&req.view(), &secrets, &opts).verdict
}

fn provider_strategy() -> impl Strategy<Value = Provider> {
    prop::sample::select(Provider::ALL.to_vec())
}

/// Unique alphanumeric form/JSON fields (unique keys: Twilio de-duplicates repeated values,
/// which would make some flips legitimately neutral).
fn fields_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map("[A-Za-z][A-Za-z0-9_]{0,7}", "[A-Za-z0-9]{0,12}", 1..6)
        .prop_map(|m| m.into_iter().collect())
}

fn url_strategy() -> impl Strategy<Value = String> {
    ("[a-z]{1,10}", "[a-z0-9]{0,8}", "[a-z0-9/]{0,12}")
        .prop_map(|(host, seg, path)| format!("https://{host}.example/{seg}/{path}"))
}

/// The name of the header carrying the signature (or credentials) of each scheme.
fn signature_header(provider: Provider) -> Option<&'static str> {
    Some(match provider {
        Provider::Twilio => "X-Twilio-Signature",
        Provider::AuthyOnetouch => "X-Authy-Signature",
        Provider::AuthyWebhook => return None,
        Provider::Bandwidth => "Authorization",
        Provider::Stripe => "Stripe-Signature",
        Provider::Github => "X-Hub-Signature-256",
        Provider::Slack => "X-Slack-Signature",
        Provider::Shopify => "X-Shopify-Hmac-Sha256",
        Provider::StandardWebhooks => "webhook-signature",
        Provider::Svix => "svix-signature",
    })
}

/// Whether the scheme covers the body bytes (Bandwidth Basic auth covers no content).
fn covers_body(provider: Provider) -> bool {
    provider != Provider::Bandwidth
}

/// Whether the scheme covers the URL.
fn covers_url(provider: Provider) -> bool {
    matches!(provider, Provider::Twilio | Provider::AuthyOnetouch)
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn sign_then_verify_holds(
        provider in provider_strategy(),
        raw_secret in prop::collection::vec(any::<u8>(), 8..40),
        url in url_strategy(),
        body in prop::collection::vec(any::<u8>(), 0..200),
        fields in fields_strategy(),
    ) {
        let secret = secret_for(provider, &raw_secret);
        let req = request_for(provider, &url, &body, &fields);
        let signed = sign_and_apply(provider, &req, &secret);
        prop_assert_eq!(verdict(provider, &signed, &secret), Verdict::Valid);
        // Detection agrees once the request carries the provider's signature.
        if provider != Provider::Bandwidth {
            prop_assert_eq!(detect(&signed.view()), Some(provider));
        }
    }

    #[test]
    fn a_flipped_body_byte_is_rejected(
        provider in provider_strategy(),
        raw_secret in prop::collection::vec(any::<u8>(), 8..40),
        url in url_strategy(),
        body in prop::collection::vec(any::<u8>(), 1..200),
        fields in fields_strategy(),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        prop_assume!(covers_body(provider));
        let secret = secret_for(provider, &raw_secret);
        let mut signed = sign_and_apply(provider, &request_for(provider, &url, &body, &fields), &secret);
        prop_assume!(!signed.body.is_empty());
        let i = pos.index(signed.body.len());
        signed.body[i] ^= mask;
        prop_assert_ne!(verdict(provider, &signed, &secret), Verdict::Valid);
    }

    #[test]
    fn a_flipped_url_byte_is_rejected(
        provider in prop::sample::select(vec![Provider::Twilio, Provider::AuthyOnetouch]),
        raw_secret in prop::collection::vec(any::<u8>(), 8..40),
        url in url_strategy(),
        fields in fields_strategy(),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=127,
    ) {
        prop_assert!(covers_url(provider));
        let secret = secret_for(provider, &raw_secret);
        let mut signed = sign_and_apply(provider, &request_for(provider, &url, b"", &fields), &secret);
        let mut bytes = signed.url.clone().into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        // Keep it a string (ASCII masks on an ASCII URL); skip flips into control bytes
        // that would make the URL unparseable in the same way as the original (none here).
        signed.url = String::from_utf8(bytes).unwrap();
        prop_assert_ne!(verdict(provider, &signed, &secret), Verdict::Valid);
    }

    #[test]
    fn a_flipped_signature_header_byte_is_rejected(
        provider in provider_strategy(),
        raw_secret in prop::collection::vec(any::<u8>(), 8..40),
        url in url_strategy(),
        body in prop::collection::vec(any::<u8>(), 0..100),
        fields in fields_strategy(),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let Some(name) = signature_header(provider) else { return Ok(()) };
        let secret = secret_for(provider, &raw_secret);
        let mut signed = sign_and_apply(provider, &request_for(provider, &url, &body, &fields), &secret);
        let (_, value) = signed
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap();
        // The Basic auth scheme name is case-insensitive by definition: flip the credentials.
        let start = if provider == Provider::Bandwidth { "Basic ".len() } else { 0 };
        let i = start + pos.index(value.len() - start);
        value[i] ^= mask;
        prop_assert_ne!(verdict(provider, &signed, &secret), Verdict::Valid);
    }

    #[test]
    fn the_authy_webhook_jwt_is_covered(
        raw_secret in prop::collection::vec(any::<u8>(), 8..40),
        fields in fields_strategy(),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=127,
    ) {
        let provider = Provider::AuthyWebhook;
        let secret = secret_for(provider, &raw_secret);
        let signed = sign_and_apply(provider, &request_for(provider, "https://x.example/hook", b"", &fields), &secret);
        let body: serde_json::Value = serde_json::from_slice(&signed.body).unwrap();
        let jwt = body["body"].as_str().unwrap().to_owned();
        let mut bytes = jwt.into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        let flipped = String::from_utf8(bytes).unwrap();
        let mut tampered = signed.clone();
        tampered.body = serde_json::to_vec(&serde_json::json!({ "body": flipped })).unwrap();
        prop_assert_ne!(verdict(provider, &tampered, &secret), Verdict::Valid);
    }
}

/// Header names whose values the analyzers parse.
const PARSED_HEADERS: [&str; 24] = [
    "X-Twilio-Signature",
    "X-Authy-Signature",
    "X-Authy-Signature-Nonce",
    "Authorization",
    "User-Agent",
    "Stripe-Signature",
    "X-Hub-Signature-256",
    "X-Hub-Signature",
    "X-GitHub-Event",
    "X-Slack-Signature",
    "X-Slack-Request-Timestamp",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Topic",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "Content-Type",
    "Host",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Prefix",
];

fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        // Structured-looking bodies reach deeper into the parsers.
        "[\\[\\]{}\":,a-z0-9 =&%+.\\\\]{0,200}".prop_map(String::into_bytes),
        Just(br#"{"body":"eyJhbGciOiJIUzI1NiJ9.e30.x"}"#.to_vec()),
        Just(b"body=eyJhbGciOiJub25lIn0.e30.".to_vec()),
        Just(br#"[{"type":"message-failed","to":"+5","message":{"to":[1]}}]"#.to_vec()),
        Just(br#"{"platform":"GlobalSMS","type":"message-failed","errorCode":null}"#.to_vec()),
        Just(
            b"type=challenge.approved&entity_identity=&factor_sid=&challenge_details=%7B".to_vec()
        ),
    ]
}

fn hostile_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80),
        "[tv01=, a-zA-Z0-9+/_.:-]{0,80}".prop_map(String::into_bytes),
        Just(b"Basic !!!".to_vec()),
        Just(b"t=,v1=".to_vec()),
        Just(b"v1, v1,,".to_vec()),
        Just(b"99999999999999999999999999".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_requests_never_panic(
        method in prop::sample::select(vec!["POST", "GET", "post", "", "PUT"]),
        url in prop_oneof![
            "\\PC{0,60}",
            "https?://[a-z0-9.:@\\[\\]]{0,20}/[a-z0-9/?=&%#']{0,30}",
            "https?://[a-zé.]{1,10}(:[0-9]{0,5})?(/{1,2}[a-zñé%'/]{0,4}){0,4}(\\?[a-zñ=&%']{0,10})?",
        ],
        headers in prop::collection::vec(
            (prop::sample::select(PARSED_HEADERS.to_vec()), hostile_value()), 0..8),
        body in hostile_body(),
        forced in prop::option::of(provider_strategy()),
        secret in prop::collection::vec(any::<u8>(), 0..40),
        tolerance in prop::option::of(0u64..1000),
        now in any::<i64>(),
    ) {
        let mut req = OwnedRequest::new(method, url, body);
        for (n, v) in headers {
            req = req.with_header(n, v);
        }
        let view = req.view();
        let _ = detect(&view);
        let secret = Secret::from_bytes(secret);
        let mut secrets = Secrets::for_all(&secret);
        secrets.set_twilio_secondary(Secret::new("second"));
        let opts = VerifyOptions::at(now)
            .with_tolerance(tolerance)
            .with_provider(forced)
            .with_alternate_url("https://relay.example/t/demo");
        let a = analyze(&view, &secrets, &opts);
        // Serialisable, and nothing raw leaks into the signed string.
        let json = serde_json::to_string(&a).unwrap();
        prop_assert!(!json.is_empty());
        if let Some(s) = &a.signed_string {
            prop_assert!(!s.chars().any(char::is_control));
        }
        for p in Provider::ALL {
            let _ = sign_with_secret(p, &view, &secret, &SignOptions { timestamp: Some(now), id: None });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// URL-signed schemes rebuild many candidate URLs from the URL and the Host/X-Forwarded-*
    /// headers when explaining a failure: none of that may panic on odd URLs.
    #[test]
    fn url_diagnosis_never_panics(
        provider in prop::sample::select(vec![Provider::Twilio, Provider::AuthyOnetouch]),
        url in "https?://[a-zé.\\[\\]:@]{0,12}(:[0-9]{0,5})?(/{1,2}[a-zñé%'/#?]{0,4}){0,5}(\\?[a-zñ=&%'#]{0,10})?",
        host in "\\PC{0,12}",
        prefix in "/?[a-zñ/]{0,6}",
        alternate in "\\PC{0,30}",
    ) {
        let req = OwnedRequest::new("POST", url, "a=1&b=%C3%B1")
            .with_header("X-Twilio-Signature", "AAAA")
            .with_header("X-Authy-Signature", "AAAA")
            .with_header("X-Authy-Signature-Nonce", "1")
            .with_header("Host", host.clone())
            .with_header("X-Forwarded-Host", host)
            .with_header("X-Forwarded-Prefix", prefix);
        let secrets = Secrets::new().with(provider, Secret::new("k"));
        let opts = VerifyOptions::at(NOW)
            .with_provider(Some(provider))
            .with_alternate_url(alternate);
        let a = analyze(&req.view(), &secrets, &opts);
        prop_assert_ne!(a.verdict, Verdict::Valid);
    }
}
