//! `/_twk/metrics` on the operator's listener: the values move as traffic passes.

use crate::*;
use std::time::Duration;

#[tokio::test]
async fn metrics_count_tunnels_requests_bytes_and_refusals_on_their_own_listener() {
    trace_init();
    let (relay, maddr) = spawn_relay_with_metrics(relay_config(tokens(&["t"]))).await;
    let addr = relay.addr;
    let scrape = || async move {
        let r = send(maddr, "GET", "/_twk/metrics", &[], "").await.unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .contains("openmetrics-text")
        );
        r.text()
    };
    let before = scrape().await;
    assert_eq!(metric_value(&before, "twk_relay_tunnels_connected"), 0.0);

    let mut app = FakeTarget::echo().await;
    let mut c = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{addr}")).unwrap(),
        twk_agent::Target::parse(&app.addr.to_string()).unwrap(),
    );
    c.token = Some("t".into());
    c.name = Some("metered".into());
    let mut agent = spawn_agent(c.clone());
    agent.connected().await;
    let body = "x".repeat(1000);
    for _ in 0..3 {
        let r = send(addr, "POST", "/t/metered/in", &[], body.clone())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let _ = app.next().await;
    }
    let r = send(addr, "POST", "/t/nobody/in", &[], "").await.unwrap();
    assert_eq!(r.status, 503);
    c.token = Some("wrong".into());
    let _ = spawn_agent(c).task.await;
    // The public port never serves metrics.
    let r = send(addr, "GET", "/_twk/metrics", &[], "").await.unwrap();
    assert_eq!(r.status, 404);

    let after = scrape().await;
    assert_eq!(
        metric_value(&after, "twk_relay_tunnels_connected"),
        1.0,
        "{after}"
    );
    assert_eq!(
        metric_value(
            &after,
            r#"twk_relay_requests_total{class="2xx",side="none"}"#
        ),
        3.0,
        "{after}"
    );
    assert_eq!(
        metric_value(
            &after,
            r#"twk_relay_requests_total{class="5xx",side="tunnel"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(&after, "twk_relay_request_body_bytes_total"),
        3000.0,
        "{after}"
    );
    assert_eq!(
        metric_value(&after, "twk_relay_response_body_bytes_total"),
        3000.0,
        "{after}"
    );
    assert_eq!(
        metric_value(&after, "twk_relay_request_duration_seconds_count"),
        4.0,
        "{after}"
    );
    assert_eq!(
        metric_value(
            &after,
            r#"twk_relay_upgrades_refused_total{reason="unauthorized"}"#
        ),
        1.0
    );
    assert_eq!(metric_value(&after, "twk_relay_tunnel_connects_total"), 1.0);
    agent.stop().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), relay.stop()).await;
}
