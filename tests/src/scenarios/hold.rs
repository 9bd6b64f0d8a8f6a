//! The hold (issue 16): a request for a tunnel whose client was connected within the last
//! minute waits, up to `hold`, for it to come back, and is delivered when it does; bounded per
//! tunnel; otherwise 503 + Retry-After as before. Observed through the relay's own
//! `requests_held` gauge, never a sleep.

use crate::*;
use std::net::SocketAddr;
use std::time::Duration;

/// The relay of these tests and its metrics listener; shut down when dropped.
struct Relay {
    addr: SocketAddr,
    metrics: SocketAddr,
    handle: RelayHandle,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.handle.shutdown.cancel();
    }
}

async fn relay(hold: Duration, hold_max: usize) -> Relay {
    let mut cfg = relay_config(tokens(&["t"]));
    cfg.hold = hold;
    cfg.hold_max = hold_max;
    let (handle, metrics) = spawn_relay_with_metrics(cfg).await;
    Relay {
        addr: handle.addr,
        metrics,
        handle,
    }
}

async fn metric(r: &Relay, series: &str) -> f64 {
    scrape_metric(r.metrics, series).await
}

/// Polls the relay's gauge until `held` requests are waiting (bounded).
async fn until_held(r: &Relay, held: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(r, "twk_relay_requests_held").await != held {
        assert!(std::time::Instant::now() < deadline, "never {held} held");
        tokio::task::yield_now().await;
    }
}

fn agent_for(r: &Relay, app: SocketAddr) -> twk_agent::AgentConfig {
    let mut c = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{}", r.addr)).unwrap(),
        twk_agent::Target::parse(&app.to_string()).unwrap(),
    );
    c.token = Some("t".into());
    c.name = Some("held".into());
    c
}

#[tokio::test]
async fn a_request_during_a_reconnect_is_held_and_delivered_when_the_client_is_back() {
    trace_init();
    let r = relay(Duration::from_secs(5), 8).await;
    let mut app = FakeTarget::echo().await;
    let mut first = spawn_agent(agent_for(&r, app.addr));
    first.connected().await;
    first.stop().await.unwrap();
    // The client is gone: the webhook that arrives now is held, not refused.
    let addr = r.addr;
    let pending =
        tokio::spawn(
            async move { send(addr, "POST", "/t/held/hook", &[], "sent while away").await },
        );
    until_held(&r, 1.0).await;
    let mut second = spawn_agent(agent_for(&r, app.addr));
    second.connected().await;
    let reply = pending.await.unwrap().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(&app.next().await.body[..], b"sent while away");
    assert_eq!(metric(&r, "twk_relay_requests_held").await, 0.0);
    assert_eq!(
        metric(&r, r#"twk_relay_holds_total{reason="delivered"}"#).await,
        1.0
    );
    second.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_stays_away_means_503_after_the_hold_and_the_bound_is_kept() {
    trace_init();
    let r = relay(Duration::from_millis(600), 1).await;
    let app = FakeTarget::echo().await;
    let mut a = spawn_agent(agent_for(&r, app.addr));
    a.connected().await;
    a.stop().await.unwrap();
    let addr = r.addr;
    let first = tokio::spawn(async move { send(addr, "POST", "/t/held/one", &[], "1").await });
    until_held(&r, 1.0).await;
    // Past the bound (one held request per tunnel here): told at once, never queued.
    let second = send(r.addr, "POST", "/t/held/two", &[], "2").await.unwrap();
    assert_eq!(second.status, 503);
    assert!(second.headers.contains_key("retry-after"));
    assert_eq!(metric(&r, "twk_relay_requests_held").await, 1.0);
    // The held one: 503 + Retry-After once the hold runs out (never a false 2xx).
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status, 503);
    assert!(first.headers.contains_key("retry-after"));
    assert_eq!(
        metric(&r, r#"twk_relay_holds_total{reason="offline"}"#).await,
        1.0
    );
    // A name that never had a client is not held at all.
    let never = send(r.addr, "POST", "/t/nobody/x", &[], "").await.unwrap();
    assert_eq!(never.status, 503);
    assert_eq!(
        metric(&r, r#"twk_relay_holds_total{reason="offline"}"#).await,
        1.0
    );
}
