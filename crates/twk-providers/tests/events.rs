//! Every provider names its events; the one-line summaries carry what matters.
#![allow(clippy::unwrap_used)]

use twk_providers::{
    AUTHY_WEBHOOK_EVENTS, Event, OwnedRequest, Provider, Secret, Secrets, SignOptions,
    VerifyOptions, analyze, sign_with_secret,
};

fn event_of(req: &OwnedRequest) -> Event {
    analyze(&req.view(), &Secrets::new(), &VerifyOptions::at(0))
        .event
        .unwrap_or_else(|| panic!("no event for {req:?}"))
}

fn form(pairs: &[(&str, &str)]) -> OwnedRequest {
    OwnedRequest::new(
        "POST",
        "https://x.example/hook",
        serde_urlencoded::to_string(pairs).unwrap(),
    )
    .with_header("Content-Type", "application/x-www-form-urlencoded")
    .with_header("X-Twilio-Signature", "x")
}

#[test]
fn verify_push_v2_challenge() {
    let details = r#"{"message":"Hi! Mr. John Doe, would you like to sign up?","date":"2020-07-01T12:13:14Z","fields":[{"label":"Action","value":"Sign up in portal"}]}"#;
    let e = event_of(&form(&[
        ("uuid", "Unique identifier"),
        ("type", "challenge.approved"),
        ("account_sid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        ("service_sid", "VAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        ("entity_identity", "ff483d1ff591898a9942916050d2ca3f"),
        ("factor_sid", "YFXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        ("factor_type", "push"),
        ("factor_friendly_name", "John's Phone"),
        ("factor_metadata", r#"{"os": "Android"}"#),
        ("challenge_sid", "YCXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        ("challenge_details", details),
        ("challenge_hidden_details", r#"{"ip": "127.0.0.1"}"#),
        ("challenge_metadata", r#"{"os": "Android"}"#),
    ]));
    assert_eq!(e.name, "challenge.approved");
    assert!(
        e.summary
            .starts_with("challenge.approved · entity ff48… · factor YF…"),
        "{}",
        e.summary
    );
    assert_eq!(e.id.as_deref(), Some("Unique identifier"));
    assert_eq!(e.details["webhook_version"], "v2");
    assert_eq!(
        e.details["challenge_details"]["fields"][0]["label"],
        "Action"
    );
    assert_eq!(e.details["challenge_hidden_details"]["ip"], "127.0.0.1");
    assert_eq!(e.details["factor_metadata"]["os"], "Android");
    assert_eq!(e.details["challenge_metadata"]["os"], "Android");
}

#[test]
fn verify_push_v1_and_every_type() {
    for t in [
        "factor.created",
        "factor.verified",
        "factor.deleted",
        "challenge.approved",
        "challenge.denied",
    ] {
        let e = event_of(&form(&[
            ("uuid", "u1"),
            ("type", t),
            ("account_sid", "AC1"),
            ("service_sid", "VA1"),
            ("entity_identity", "ff483d1ff591898a9942916050d2ca3f"),
            ("factor_sid", "YF1"),
        ]));
        assert_eq!(e.name, t);
        assert_eq!(e.details["webhook_version"], "v1");
        assert!(e.summary.ends_with("v1 (legacy)"), "{}", e.summary);
        assert!(e.details.get("undocumented_type").is_none());
    }
}

#[test]
fn twilio_status_callbacks() {
    let e = event_of(&form(&[
        ("AccountSid", "AC1"),
        ("MessageSid", "SM1234567890"),
        ("MessageStatus", "undelivered"),
        ("From", "+14155550100"),
        ("To", "+447700900000"),
        ("ErrorCode", "30003"),
    ]));
    assert_eq!(e.name, "message.undelivered");
    assert!(e.summary.contains("error 30003"), "{}", e.summary);
    let e = event_of(&form(&[
        ("AccountSid", "AC1"),
        ("CallSid", "CA1"),
        ("CallStatus", "ringing"),
    ]));
    assert_eq!(e.name, "call.ringing");
}

#[test]
fn all_23_authy_events_are_named() {
    assert_eq!(AUTHY_WEBHOOK_EVENTS.len(), 23);
    let key = Secret::new("WSK_k");
    for name in AUTHY_WEBHOOK_EVENTS {
        let claims = serde_json::json!({ "event": name, "authy_id": 7 });
        let mut req = OwnedRequest::new(
            "POST",
            "https://x.example/a",
            serde_json::to_vec(&claims).unwrap(),
        );
        let s = sign_with_secret(
            Provider::AuthyWebhook,
            &req.view(),
            &key,
            &SignOptions::default(),
        )
        .unwrap();
        req.apply(&s);
        let e = event_of(&req);
        assert_eq!(e.name, name);
        assert!(!e.summary.contains("not one of"), "{}", e.summary);
        assert!(e.summary.contains("authy_id 7"), "{}", e.summary);
    }
    // Claim names are undocumented: a known event anywhere in the claims is found.
    let claims = serde_json::json!({ "webhook": { "events": ["phone_verification_started"] } });
    let mut req = OwnedRequest::new(
        "POST",
        "https://x.example/a",
        serde_json::to_vec(&claims).unwrap(),
    );
    let s = sign_with_secret(
        Provider::AuthyWebhook,
        &req.view(),
        &key,
        &SignOptions::default(),
    )
    .unwrap();
    req.apply(&s);
    assert_eq!(event_of(&req).name, "phone_verification_started");
}

#[test]
fn authy_onetouch_callback() {
    let body = r#"{"authy_id":12345,"callback_action":"approval_request_status","uuid":"xxxxx-f798","status":"denied","approval_request":{"transaction":{"message":"Request login to Twilio demo app"}}}"#;
    let req = OwnedRequest::new("POST", "https://x.example/a", body)
        .with_header("Content-Type", "application/json");
    let e = event_of(&req);
    assert_eq!(e.name, "approval_request_status");
    assert!(
        e.summary.contains("denied · authy_id 12345"),
        "{}",
        e.summary
    );
}

fn json(body: &str) -> OwnedRequest {
    OwnedRequest::new("POST", "https://x.example/bw", body.to_owned())
        .with_header("Content-Type", "application/json")
        .with_header("User-Agent", "BandwidthAPI/v2")
}

#[test]
fn bandwidth_messaging_2fa_and_voice() {
    let failed = r#"[{"type":"message-failed","time":"2016-09-14T18:20:16Z","description":"forbidden to country","to":"+52345678903","errorCode":4432,"message":{"id":"14762070468292kw2fuqty55yp2b2","time":"2016-09-14T18:20:16Z","to":["+52345678903"],"from":"+18883428286","text":"","applicationId":"93de2206-9669-4e07-948d-329f4b722ee2","media":[],"owner":"+18883428286","direction":"out","segmentCount":1}}]"#;
    let e = event_of(&json(failed));
    assert_eq!(e.name, "message-failed");
    assert_eq!(
        e.summary,
        "message-failed · +52… · international: not retried · error 4432 (forbidden to country)"
    );
    assert_eq!(e.details["region"], "international");

    let delivered = r#"[{"type":"message-delivered","to":"+14155550100","message":{"id":"m1","to":["+14155550100"]}},{"type":"message-delivered","to":"+14155550101","message":{"id":"m2"}}]"#;
    let e = event_of(&json(delivered));
    assert_eq!(
        e.summary,
        "message-delivered · +14… · north america: retried for 24 h (+1 more)"
    );

    let mfa = r#"{"type":"message-failed","time":"2024-01-01T00:00:00Z","description":"No error","platform":"GlobalSMS","message":{"id":"abc"},"errorCode":9902}"#;
    let e = event_of(&json(mfa));
    assert!(
        e.summary.contains("GlobalSMS · international: not retried"),
        "{}",
        e.summary
    );
    assert_eq!(e.details["kind"], "2fa");
    let mfa_na = mfa.replace("GlobalSMS", "NorthAmericaSMS");
    assert!(
        event_of(&json(&mfa_na))
            .summary
            .contains("north america: retried for 24 h")
    );

    let voice = r#"{"eventType":"disconnect","callId":"c-15ac29a2-1331029c","from":"+15555550100","to":"+15555550101","cause":"hangup","accountId":"9900000"}"#;
    let e = event_of(&json(voice));
    assert_eq!(e.name, "disconnect");
    assert!(e.summary.contains("cause hangup"), "{}", e.summary);
}

#[test]
fn stripe_github_slack_shopify_standard() {
    let stripe = OwnedRequest::new(
        "POST",
        "https://x.example/s",
        r#"{"id":"evt_1","type":"payment_intent.succeeded","livemode":false,"data":{"object":{"id":"pi_1","object":"payment_intent"}}}"#,
    )
    .with_header("Stripe-Signature", "t=1,v1=00");
    let e = event_of(&stripe);
    assert_eq!(e.name, "payment_intent.succeeded");
    assert_eq!(
        e.summary,
        "payment_intent.succeeded · evt_1 · payment_intent pi_1 · test mode"
    );

    let gh = OwnedRequest::new(
        "POST",
        "https://x.example/g",
        r#"{"action":"opened","repository":{"full_name":"o/r"},"sender":{"login":"octocat"}}"#,
    )
    .with_header("X-GitHub-Event", "pull_request")
    .with_header("X-GitHub-Delivery", "72d3162e");
    let e = event_of(&gh);
    assert_eq!(e.name, "pull_request.opened");
    assert_eq!(e.summary, "pull_request.opened · o/r · by octocat");
    assert_eq!(e.id.as_deref(), Some("72d3162e"));

    let slack = OwnedRequest::new(
        "POST",
        "https://x.example/sl",
        "token=t&team_domain=testteamnow&channel_name=foobar&user_name=roadrunner&command=%2Fwebhook-collect",
    )
    .with_header("X-Slack-Signature", "v0=00");
    let e = event_of(&slack);
    assert_eq!(
        e.summary,
        "slash_command /webhook-collect · testteamnow · #foobar · by roadrunner"
    );
    assert!(
        e.details.get("token").is_none(),
        "the verification token is not kept"
    );

    let shop = OwnedRequest::new("POST", "https://x.example/sh", r#"{"id":1}"#)
        .with_header("X-Shopify-Topic", "orders/create")
        .with_header("X-Shopify-Shop-Domain", "shop1.myshopify.io")
        .with_header("X-Shopify-Webhook-Id", "w1");
    assert_eq!(
        event_of(&shop).summary,
        "orders/create · shop1.myshopify.io"
    );

    let sw = OwnedRequest::new(
        "POST",
        "https://x.example/w",
        r#"{"type":"invoice.paid","data":{}}"#,
    )
    .with_header("webhook-id", "msg_1")
    .with_header("webhook-timestamp", "1")
    .with_header("webhook-signature", "v1,x");
    let e = event_of(&sw);
    assert_eq!(
        (e.name.as_str(), e.id.as_deref()),
        ("invoice.paid", Some("msg_1"))
    );
}
