//! Requests the relay refuses itself (over the tunnel's rate, a body declared over the cap)
//! reach the tunnel's log as `refused` rows, in bounded batches, and only clients that accept
//! the notices get them.

use crate::*;
use std::time::Duration;
use twk_capture::{Exchange, Side};

/// A relay with a tiny body cap and a tunnel rate that does not refill during a test:
/// `burst` requests pass, then every one is refused.
async fn strict_relay(burst: f64) -> RelayHandle {
    let mut cfg = relay_config(twk_relay::Auth::Open);
    cfg.max_body = 1024;
    cfg.abuse = twk_relay::AbuseLimits {
        exempt_loopback: false,
        tunnel_rate: 0.001,
        tunnel_burst: burst,
        ..twk_relay::AbuseLimits::none()
    };
    spawn_relay(cfg).await
}

fn header<'a>(ex: &'a Exchange, name: &str) -> Option<&'a [u8]> {
    ex.request
        .headers
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.value.as_slice())
}

fn response_header<'a>(ex: &'a Exchange, name: &str) -> Option<&'a [u8]> {
    ex.response
        .as_ref()?
        .headers
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.value.as_slice())
}

#[tokio::test]
async fn requests_the_relay_refuses_are_recorded_as_refused_with_their_head() {
    trace_init();
    let relay = strict_relay(2.0).await;
    let mut app = FakeTarget::echo().await;
    let mut agent = spawn_agent(agent_config(&relay, app.addr));
    let (name, _) = agent.connected().await;
    let github = [
        ("x-github-event", "push"),
        ("x-github-delivery", "d-1"),
        ("x-hub-signature-256", "sha256=00"),
        ("content-type", "application/json"),
    ];
    let path = format!("/t/{name}/hooks?x=1");

    // From another address: the relay lists one request per sender address a batch.
    let head: String = github
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let big = raw_from(
        [127, 0, 0, 2].into(),
        relay.addr,
        format!("POST {path} HTTP/1.1\r\nhost: relay\r\n{head}content-length: 2048\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    let ok = send(relay.addr, "POST", &path, &github, "{}")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let over = send(relay.addr, "POST", &path, &github, "{}")
        .await
        .unwrap();
    assert_eq!(over.status, 429);

    let mut seen = vec![
        agent.exchange().await,
        agent.exchange().await,
        agent.exchange().await,
    ];
    seen.sort_by_key(|e| e.status);
    let [ok, big, over] = <[Exchange; 3]>::try_from(seen).unwrap();
    assert_eq!(ok.status, Some(200));
    assert!(!ok.refused, "a forwarded request is not refused");
    app.next().await;

    assert_eq!(big.status, Some(413));
    assert!(big.refused);
    assert_eq!(big.method, "POST");
    assert_eq!(big.path, "/hooks?x=1");
    assert!(big.public_url.ends_with(&path), "{}", big.public_url);
    assert_eq!(
        big.remote_addr
            .as_deref()
            .map(|a| a.starts_with("127.0.0.2:")),
        Some(true)
    );
    assert_eq!(header(&big, "x-github-event"), Some(&b"push"[..]));
    assert_eq!(big.provider.as_deref(), Some("github"));
    assert_eq!(big.verdict, None, "no body: the signature is not judged");
    assert_eq!(big.request.body.len, 2048, "the declared length");
    assert!(big.request.body.truncated && big.request.body.bytes.is_empty());
    let failure = big.failure.clone().unwrap();
    assert_eq!(failure.side, Side::Sender);
    assert!(
        failure.message.contains("2048 bytes declared"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("cap of 1024 bytes"),
        "{}",
        failure.message
    );
    assert_eq!(
        response_header(&big, "x-twk-error-source"),
        Some(&b"relay"[..])
    );
    let answer = String::from_utf8_lossy(&big.response.as_ref().unwrap().body.bytes).to_string();
    assert!(answer.contains("exceeds the cap of 1024 bytes"), "{answer}");

    assert_eq!(over.status, Some(429));
    assert!(over.refused);
    assert!(
        over.failure
            .as_ref()
            .unwrap()
            .message
            .contains("request rate"),
        "{:?}",
        over.failure
    );
    assert!(response_header(&over, "retry-after").is_some());
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_refusals_is_told_in_bounded_batches_and_counted_whole() {
    trace_init();
    let relay = strict_relay(1.0).await;
    let app = FakeTarget::echo().await;
    let mut agent = spawn_agent(agent_config(&relay, app.addr));
    let (name, _) = agent.connected().await;
    let path = format!("/t/{name}/x");
    let first = send(relay.addr, "GET", &path, &[], "").await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(agent.exchange().await.status, Some(200));
    const FLOOD: u64 = 60;
    for _ in 0..FLOOD {
        let r = send(relay.addr, "GET", &path, &[], "").await.unwrap();
        assert_eq!(r.status, 429);
    }
    // One sender: one row (a stranger's flood from one address is one row a minute), the
    // rest counted; every refusal is told.
    let row = agent.exchange().await;
    assert!(row.refused && row.status == Some(429), "{row:?}");
    assert_eq!(row.request.body.len, 0);
    assert!(
        !row.request.body.truncated,
        "a GET's empty body is known whole"
    );
    let mut told = 1;
    while told < FLOOD {
        told += tokio::time::timeout(Duration::from_secs(10), agent.unlisted.recv())
            .await
            .expect("the rest are counted")
            .unwrap();
    }
    assert_eq!(told, FLOOD);
    // A signed webhook in the flood from the same sender is listed still, in the next batch.
    let stripe = [("stripe-signature", "t=1,v1=00")];
    let r = send(relay.addr, "POST", &path, &stripe, "{}")
        .await
        .unwrap();
    assert_eq!(r.status, 429);
    let signed = agent.exchange().await;
    assert!(signed.refused, "{signed:?}");
    assert_eq!(signed.provider.as_deref(), Some("stripe"));
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_accept_notices_gets_none() {
    trace_init();
    let relay = strict_relay(100.0).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let _client = raw_agent(relay.addr, &[("x-twk-name", "older")], move |req| {
        let _ = seen_tx.send(req.headers().clone());
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
    })
    .await
    .unwrap();
    let path = "/t/older/x";
    // The name may still be settling: the first request the client answers says it is up.
    let up = send(relay.addr, "GET", path, &[], "").await.unwrap();
    assert_eq!(up.status, 200);
    seen.recv().await.unwrap();
    let big = send(relay.addr, "POST", path, &[], vec![0u8; 4096])
        .await
        .unwrap();
    assert_eq!(big.status, 413);
    let after = send(relay.addr, "GET", path, &[("x-after", "1")], "")
        .await
        .unwrap();
    assert_eq!(after.status, 200);
    let next = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !next.contains_key(twk_protocol::meta::REFUSED),
        "a notice reached a client that never said it takes them"
    );
    assert!(next.contains_key("x-after"));
}
