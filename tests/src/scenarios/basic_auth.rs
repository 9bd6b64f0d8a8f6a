//! The 401 Basic-auth challenge through the real tunnel, with a sender that behaves like
//! Bandwidth: no credentials first; on 401 **with** `WWW-Authenticate: Basic` it resends with
//! credentials; on a bare 401 it gives up (the callback is lost).
//!
//! The exchanges the real tunnel reports are recorded through a real capture recorder into a
//! store in a temp dir, and each test checks the pairing and lints the store derived.

use crate::*;
use base64::Engine;
use http::Response;
use http_body_util::Full;
use twk_capture::export::json::exchange_json;
use twk_capture::{Exchange, ExchangeId, Handshake, LintCode, Recorder, Store, StoreOptions};

/// Records `exchanges` in the order the agent reported them, one writer batch each, through
/// a real [`Recorder`]; returns a reader on the store and the ids in the same order.
async fn record(exchanges: Vec<Exchange>) -> (tempfile::TempDir, Store, Vec<ExchangeId>) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(StoreOptions::new(dir.path().join("twk"))).unwrap();
    let mut events = recorder.subscribe();
    let mut ids = Vec::new();
    for ex in exchanges {
        ids.push(
            recorder
                .record(ex)
                .id()
                .await
                .expect("exchange not recorded"),
        );
        // The live row announced to the inspector carries the handshake as stored.
        let new = events.recv().await.unwrap();
        assert_eq!(new.id, *ids.last().unwrap());
        let reader = recorder.reader().unwrap();
        let stored = reader.get(new.id).unwrap().unwrap();
        assert_eq!(new.summary.handshake, stored.handshake);
    }
    let reader = recorder.reader().unwrap();
    (dir, reader, ids)
}

fn lints(store: &Store, id: ExchangeId) -> Vec<LintCode> {
    store
        .get(id)
        .unwrap()
        .unwrap()
        .lints
        .unwrap_or_default()
        .iter()
        .map(|l| l.code)
        .collect()
}

fn handshake(store: &Store, id: ExchangeId) -> Option<Handshake> {
    store.get(id).unwrap().unwrap().handshake
}

/// Asserts that `a` (leg 1) and `b` (leg 2) are one handshake, in the store and in the
/// `log --json` objects.
fn assert_paired(store: &Store, a: ExchangeId, b: ExchangeId) {
    assert_eq!(
        handshake(store, a),
        Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: Some(b)
        })
    );
    assert_eq!(
        handshake(store, b),
        Some(Handshake {
            leg: twk_capture::Leg::Retry,
            with: Some(a)
        })
    );
    let j = |id| exchange_json(&store.get(id).unwrap().unwrap(), false);
    assert_eq!(j(a)["handshake"], serde_json::json!({"leg": 1, "with": b}));
    assert_eq!(j(b)["handshake"], serde_json::json!({"leg": 2, "with": a}));
}

/// What the Bandwidth-like sender did.
#[derive(Debug)]
struct Delivery {
    /// Status of each attempt, in order.
    statuses: Vec<u16>,
    /// True when it gave up without delivering.
    lost: bool,
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

async fn bandwidth_sender(
    addr: std::net::SocketAddr,
    path: &str,
    body: &str,
    user: &str,
    pass: &str,
) -> Delivery {
    let headers = [
        ("content-type", "application/json"),
        ("user-agent", "BandwidthAPI/v2"),
    ];
    let first = send(addr, "POST", path, &headers, body.to_string())
        .await
        .unwrap();
    let mut statuses = vec![first.status.as_u16()];
    if first.status != 401 {
        return Delivery {
            lost: !first.status.is_success(),
            statuses,
        };
    }
    let challenge = first
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !challenge.to_ascii_lowercase().starts_with("basic") {
        // Bandwidth's documented behaviour: no challenge, no retry.
        return Delivery {
            statuses,
            lost: true,
        };
    }
    let auth = basic(user, pass);
    let mut with = headers.to_vec();
    with.push(("authorization", auth.as_str()));
    let second = send(addr, "POST", path, &with, body.to_string())
        .await
        .unwrap();
    statuses.push(second.status.as_u16());
    Delivery {
        lost: !second.status.is_success(),
        statuses,
    }
}

const BODY: &str = r#"[{"type":"message-delivered","to":"+15551234567","message":{"id":"m-1"}}]"#;

#[tokio::test]
async fn twk_enforces_the_challenge_and_the_app_sees_only_the_authenticated_leg() {
    let (relay, mut target) = open_relay_and_echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.basic_auth =
        Some(twk_agent::BasicAuth::parse("bw-user:s3cret:pw", "callbacks", false).unwrap());
    let mut agent = spawn_agent(cfg);
    let (name, _) = agent.connected().await;
    let path = format!("/t/{name}/bandwidth/status");

    let d = bandwidth_sender(relay.addr, &path, BODY, "bw-user", "s3cret:pw").await;
    assert_eq!(d.statuses, vec![401, 200]);
    assert!(!d.lost);
    // The local app received exactly one request: the authenticated one, Authorization kept.
    let got = target.next().await;
    assert_eq!(got.body.as_ref(), BODY.as_bytes());
    assert_eq!(
        got.header("authorization"),
        Some(basic("bw-user", "s3cret:pw"))
    );
    assert!(target.received.try_recv().is_err(), "leg 1 reached the app");
    let leg1 = agent.exchange().await;
    let leg2 = agent.exchange().await;
    assert_eq!(leg1.status, Some(401));
    let resp = leg1.response.clone().unwrap();
    let www: Vec<_> = resp
        .headers
        .iter()
        .filter(|h| h.name == "www-authenticate")
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        .collect();
    assert_eq!(
        www,
        vec!["Basic realm=\"callbacks\", charset=\"UTF-8\"".to_string()]
    );
    assert_eq!(leg2.status, Some(200));
    assert_eq!(
        leg1.request.body.sha256, leg2.request.body.sha256,
        "legs must pair by body hash"
    );

    // Wrong credentials: challenged again, never forwarded.
    let d = bandwidth_sender(relay.addr, &path, BODY, "bw-user", "guess").await;
    assert_eq!(d.statuses, vec![401, 401]);
    assert!(d.lost);
    assert!(target.received.try_recv().is_err());
    let wrong1 = agent.exchange().await;
    let wrong2 = agent.exchange().await;
    assert_eq!((wrong1.status, wrong2.status), (Some(401), Some(401)));

    // In the capture store: two handshakes; only the wrong credentials are linted.
    let (_dir, store, ids) = record(vec![leg1, leg2, wrong1, wrong2]).await;
    let [a, b, c, d] = ids[..] else {
        panic!("{ids:?}")
    };
    assert_paired(&store, a, b);
    assert_paired(&store, c, d);
    assert!(lints(&store, a).is_empty(), "{:?}", lints(&store, a));
    assert!(lints(&store, b).is_empty(), "{:?}", lints(&store, b));
    assert!(lints(&store, c).is_empty(), "{:?}", lints(&store, c));
    assert_eq!(lints(&store, d), vec![LintCode::CredentialsMismatch]);
    let wrong = store.get(d).unwrap().unwrap();
    let auth = wrong.exchange.auth.clone().unwrap();
    assert_eq!(
        (auth.user.as_deref(), auth.matched),
        (Some("bw-user"), Some(false))
    );
    let json = exchange_json(&wrong, false);
    assert_eq!(json["lints"][0]["code"], "credentials-mismatch");
    assert_eq!(json["lints"][0]["severity"], "error");
    assert_eq!(
        json["auth"],
        serde_json::json!({"user": "bw-user", "matched": false})
    );
    assert!(
        !json.to_string().contains("guess"),
        "password leaked: {json}"
    );
    let right = store.get(b).unwrap().unwrap().exchange.auth.unwrap();
    assert_eq!(right.matched, Some(true));
}

#[tokio::test]
async fn strip_auth_removes_the_credentials_before_the_app() {
    let (relay, mut target) = open_relay_and_echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.basic_auth = Some(twk_agent::BasicAuth::parse("u:p", "twk", true).unwrap());
    let mut agent = spawn_agent(cfg);
    let (name, _) = agent.connected().await;
    let d = bandwidth_sender(relay.addr, &format!("/t/{name}/cb"), BODY, "u", "p").await;
    assert_eq!(d.statuses, vec![401, 200]);
    let got = target.next().await;
    assert!(got.header("authorization").is_none());
    // The stored retry has no Authorization header either; the agent's check still pairs it.
    let leg1 = agent.exchange().await;
    let leg2 = agent.exchange().await;
    assert!(
        leg2.request
            .headers
            .iter()
            .all(|h| h.name != "authorization")
    );
    let (_dir, store, ids) = record(vec![leg1, leg2]).await;
    assert_paired(&store, ids[0], ids[1]);
    assert!(lints(&store, ids[0]).is_empty() && lints(&store, ids[1]).is_empty());
}

#[tokio::test]
async fn an_app_that_challenges_correctly_gets_the_retry() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let expected = basic("app", "pw");
    let mut target = FakeTarget::with(move |r| {
        if r.header("authorization").as_deref() == Some(expected.as_str()) {
            Response::new(Full::new(bytes::Bytes::from_static(b"ok")))
        } else {
            Response::builder()
                .status(401)
                .header("www-authenticate", "Basic realm=\"app\"")
                .body(Full::new(bytes::Bytes::new()))
                .unwrap()
        }
    })
    .await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    let (name, _) = agent.connected().await;
    let d = bandwidth_sender(relay.addr, &format!("/t/{name}/cb"), BODY, "app", "pw").await;
    assert_eq!(d.statuses, vec![401, 200]);
    assert!(!d.lost);
    // Both legs reached the app, which ran the challenge itself; twk observed both.
    assert!(target.next().await.header("authorization").is_none());
    assert!(target.next().await.header("authorization").is_some());
    let leg1 = agent.exchange().await;
    let leg2 = agent.exchange().await;
    assert_eq!((leg1.status, leg2.status), (Some(401), Some(200)));
    assert!(
        leg1.auth.is_none() && leg2.auth.is_none(),
        "twk did not enforce"
    );
    let (_dir, store, ids) = record(vec![leg1, leg2]).await;
    assert_paired(&store, ids[0], ids[1]);
    assert!(
        lints(&store, ids[0]).is_empty(),
        "{:?}",
        lints(&store, ids[0])
    );
    assert!(
        lints(&store, ids[1]).is_empty(),
        "{:?}",
        lints(&store, ids[1])
    );
    let j = exchange_json(&store.get(ids[1]).unwrap().unwrap(), false);
    assert_eq!(j["lints"], serde_json::json!([]));
}

#[tokio::test]
async fn an_app_that_answers_a_bare_401_loses_the_callback() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let mut target = FakeTarget::with(|_| {
        Response::builder()
            .status(401)
            .body(Full::new(bytes::Bytes::from_static(b"unauthorized")))
            .unwrap()
    })
    .await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    let (name, _) = agent.connected().await;
    let d = bandwidth_sender(relay.addr, &format!("/t/{name}/cb"), BODY, "app", "pw").await;
    assert_eq!(d.statuses, vec![401]);
    assert!(
        d.lost,
        "a bare 401 must make the Bandwidth-like sender give up"
    );
    let _ = target.next().await;
    let leg1 = agent.exchange().await;
    assert_eq!(leg1.status, Some(401));
    assert!(
        leg1.response
            .as_ref()
            .unwrap()
            .headers
            .iter()
            .all(|h| h.name != "www-authenticate")
    );
    // The store shows a lonely leg 1 and says why the callback is lost.
    let (_dir, store, ids) = record(vec![leg1]).await;
    let a = ids[0];
    assert_eq!(
        handshake(&store, a),
        Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: None
        })
    );
    assert_eq!(
        lints(&store, a),
        vec![LintCode::Unauthorized401WithoutChallenge]
    );
    let j = exchange_json(&store.get(a).unwrap().unwrap(), false);
    assert_eq!(j["handshake"], serde_json::json!({"leg": 1, "with": null}));
    assert_eq!(j["lints"][0]["code"], "401-without-www-authenticate");
    assert!(
        j["lints"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Bandwidth sends the credentials from the Bandwidth application")
    );
}
