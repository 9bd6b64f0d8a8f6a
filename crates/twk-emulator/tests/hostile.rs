//! The emulator against bytes nobody should send it: every refusal is a clear JSON error in
//! the API's own shape, and nothing is half-made. Real sockets on loopback, a real SQLite
//! file.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use twk_emulator::model::Api;
use twk_emulator::{Emulator, EmulatorConfig, FireRequest};
use twk_providers::Secret;

const SID: &str = "AC0123456789abcdef0123456789abcdef";

async fn start(dir: &std::path::Path) -> Emulator {
    Emulator::start(EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_path: dir.join("emulator.sqlite"),
        account_sid: Some(SID.into()),
        auth_token: Some(Secret::new("token")),
        extra_ca_pem: None,
    })
    .await
    .unwrap()
}

/// Sends `head` + `body` raw; returns the status and the JSON body.
async fn raw(e: &Emulator, head: &str, body: &[u8]) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(e.addr()).await.unwrap();
    let req = format!(
        "{head}\r\nHost: emu\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // A refused body may be answered before it is all sent: a failed write is fine.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn basic() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:token"));
    format!("Authorization: Basic {b64}")
}

fn form(path: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\n{}\r\nContent-Type: application/x-www-form-urlencoded",
        basic()
    )
}

async fn service(e: &Emulator) -> String {
    let (status, v) = raw(e, &form("/v2/Services"), b"FriendlyName=svc").await;
    assert_eq!(status, 201, "{v}");
    v["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn oversized_unauthenticated_and_unknown_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path()).await;
    let big = vec![b'a'; 65 * 1024];
    let (status, v) = raw(&e, &form("/v2/Services"), &big).await;
    assert_eq!((status, &v["status"]), (413, &Value::from(413)), "{v}");

    let (status, v) = raw(&e, "POST /v2/Services HTTP/1.1", b"FriendlyName=x").await;
    assert_eq!((status, &v["code"]), (401, &Value::from(20003)));
    let wrong = "POST /v2/Services HTTP/1.1\r\nAuthorization: Basic Og==";
    assert_eq!(raw(&e, wrong, b"FriendlyName=x").await.0, 401);
    let not_basic = "POST /v2/Services HTTP/1.1\r\nAuthorization: Bearer token";
    assert_eq!(raw(&e, not_basic, b"FriendlyName=x").await.0, 401);

    let (status, v) = raw(&e, &format!("GET /v2/Nope HTTP/1.1\r\n{}", basic()), b"").await;
    assert_eq!((status, &v["code"]), (404, &Value::from(20404)));
    assert_eq!(
        v["message"],
        "The requested resource /v2/Nope was not found"
    );
    let (status, _) = raw(&e, "GET /etc/passwd HTTP/1.1", b"").await;
    assert_eq!(status, 404);
    // Authy calls without keys or signature.
    let (status, v) = raw(&e, "GET /dashboard/json/application/webhooks HTTP/1.1", b"").await;
    assert_eq!((status, &v["success"]), (401, &Value::Bool(false)));
    let (status, _) = raw(&e, "GET /protected/json/reporting/events HTTP/1.1", b"").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn bad_fields_create_nothing_and_say_which_field() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path()).await;
    let va = service(&e).await;
    let hooks = format!("/v2/Services/{va}/Webhooks");
    let cases: [(&str, u32, &str); 6] = [
        ("EventTypes=*&WebhookUrl=http://x/", 20001, "FriendlyName"),
        ("FriendlyName=a&WebhookUrl=http://x/", 20001, "EventTypes"),
        ("FriendlyName=a&EventTypes=*", 20001, "WebhookUrl"),
        (
            "FriendlyName=a&EventTypes=*&EventTypes=x&WebhookUrl=http://x/",
            60200,
            "EventTypes",
        ),
        (
            "FriendlyName=a&EventTypes=*&WebhookUrl=javascript:alert(1)",
            60200,
            "WebhookUrl",
        ),
        (
            "FriendlyName=a&EventTypes=*&WebhookUrl=http://x/&Status=on",
            60200,
            "Status",
        ),
    ];
    for (body, code, field) in cases {
        let (status, v) = raw(&e, &form(&hooks), body.as_bytes()).await;
        assert_eq!(
            (status, &v["code"]),
            (400, &Value::from(code)),
            "{body}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let long = format!(
        "FriendlyName={}&EventTypes=*&WebhookUrl=http://x/",
        "n".repeat(65)
    );
    assert_eq!(raw(&e, &form(&hooks), long.as_bytes()).await.0, 400);
    let list = format!("GET {hooks}?PageSize=1000 HTTP/1.1\r\n{}", basic());
    let (status, v) = raw(&e, &list, b"").await;
    assert_eq!(status, 200);
    assert_eq!(
        v["webhooks"],
        Value::Array(vec![]),
        "nothing was half-created"
    );
    // A webhook of another service is not this one's.
    let other = service(&e).await;
    let ok = "FriendlyName=a&EventTypes=*&WebhookUrl=http://x/";
    let (_, w) = raw(&e, &form(&hooks), ok.as_bytes()).await;
    let sid = w["sid"].as_str().unwrap();
    let cross = format!(
        "GET /v2/Services/{other}/Webhooks/{sid} HTTP/1.1\r\n{}",
        basic()
    );
    assert_eq!(raw(&e, &cross, b"").await.0, 404);
}

#[tokio::test]
async fn the_control_endpoint_takes_only_this_runs_token() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path()).await;
    let body = br#"{"api":"verify","event":"challenge.approved"}"#;
    let (status, _) = raw(&e, "POST /twk/v1/fire HTTP/1.1", body).await;
    assert_eq!(status, 401);
    let bad = "POST /twk/v1/fire HTTP/1.1\r\nAuthorization: Bearer twkc_guess";
    assert_eq!(raw(&e, bad, body).await.0, 401);
    let token = e.control_token().expose_str().unwrap().to_owned();
    let auth = format!("POST /twk/v1/fire HTTP/1.1\r\nAuthorization: Bearer {token}");
    let (status, v) = raw(&e, &auth, body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["deliveries"],
        Value::Array(vec![]),
        "nothing is registered"
    );
    let (status, v) = raw(&e, &auth, b"{not json").await;
    assert_eq!(status, 400, "{v}");
    let unknown = br#"{"api":"verify","event":"factor.exploded"}"#;
    let (status, v) = raw(&e, &auth, unknown).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("challenge.approved"),
        "{v}"
    );
    // An event with no subscriber still happened: the reporting API lists it.
    let fired = e
        .fire(FireRequest {
            api: Api::Authy,
            event: "user_added".into(),
            sets: vec![],
            service_sid: None,
        })
        .await
        .unwrap();
    assert!(fired.deliveries.is_empty());
}

#[tokio::test]
async fn a_service_takes_at_most_100_webhooks_and_answers_name_the_host_called() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path()).await;
    let va = service(&e).await;
    let hooks = format!("/v2/Services/{va}/Webhooks");
    let ok = b"FriendlyName=a&EventTypes=*&WebhookUrl=http://127.0.0.1:9/x";
    for _ in 0..100 {
        assert_eq!(raw(&e, &form(&hooks), ok).await.0, 201);
    }
    let (status, v) = raw(&e, &form(&hooks), ok).await;
    assert_eq!((status, &v["code"]), (400, &Value::from(60200)), "{v}");
    // Resource URLs lead back the way the client came (its Host), not to the bound address.
    let list = format!("GET {hooks}?PageSize=2 HTTP/1.1\r\n{}", basic());
    let (_, v) = raw(&e, &list, b"").await;
    let next = v["meta"]["next_page_url"].as_str().unwrap();
    assert!(next.starts_with("http://emu/v2/Services/"), "{next}");
    assert_eq!(v["meta"]["page_size"], 2);
    // A service name is at most 32 characters, as Twilio's reference says.
    let long = format!("FriendlyName={}", "s".repeat(33));
    assert_eq!(raw(&e, &form("/v2/Services"), long.as_bytes()).await.0, 400);
}

#[tokio::test]
async fn authy_refusals_before_routing_keep_authys_shape() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path()).await;
    let big = vec![b'a'; 65 * 1024];
    let head = "POST /dashboard/json/application/webhooks HTTP/1.1\r\n\
                Content-Type: application/x-www-form-urlencoded";
    let (status, v) = raw(&e, head, &big).await;
    assert_eq!(status, 413);
    assert_eq!(
        (&v["success"], &v["error_code"]),
        (&Value::Bool(false), &Value::from("60000")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("64 KiB"), "{v}");
}

/// The reporting API names a Verify event's service: the one its webhooks belong to, not a
/// made-up `VA…` nobody has (found by a first-user review).
#[tokio::test]
async fn a_reported_verify_event_names_the_service_of_its_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path()).await;
    let va = service(&e).await;
    let hooks = format!("/v2/Services/{va}/Webhooks");
    let hook = b"FriendlyName=a&EventTypes=*&WebhookUrl=http://127.0.0.1:9/x";
    assert_eq!(raw(&e, &form(&hooks), hook).await.0, 201);
    e.fire(FireRequest {
        api: Api::Verify,
        event: "challenge.approved".into(),
        sets: vec![],
        service_sid: None,
    })
    .await
    .unwrap();
    let key = e
        .credentials()
        .authy_api_key
        .expose_str()
        .unwrap()
        .to_owned();
    let head = format!("GET /protected/json/reporting/events HTTP/1.1\r\nX-Authy-API-Key: {key}");
    let (status, v) = raw(&e, &head, b"").await;
    assert_eq!(status, 200, "{v}");
    let event = v["events"]
        .as_array()
        .and_then(|a| a.iter().find(|ev| ev["event"] == "challenge.approved"))
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(event["objects"]["service_sid"], va.as_str(), "{event}");
}
