//! Tunnel sessions: tokens, name ownership, reconnects, TLS, shutdown.

use crate::*;
use std::time::Duration;
use twk_agent::{AgentError, ConnState};

#[tokio::test]
async fn wrong_or_missing_token_is_refused_with_401_and_the_agent_stops() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["good-token"]))).await;
    let target = FakeTarget::echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.token = Some("bad-token".into());
    let agent = spawn_agent(cfg.clone());
    let err = tokio::time::timeout(Duration::from_secs(10), agent.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, AgentError::Unauthorized(_)), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert!(
        !err.to_string().contains("bad-token"),
        "token leaked: {err}"
    );
    cfg.token = None;
    let agent = spawn_agent(cfg.clone());
    let err = agent.task.await.unwrap().unwrap_err();
    assert!(matches!(err, AgentError::Unauthorized(_)), "{err}");
    cfg.token = Some("good-token".into());
    let mut agent = spawn_agent(cfg);
    agent.connected().await;
}

#[tokio::test]
async fn a_live_name_belongs_to_its_token_and_the_same_token_replaces_its_session() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["alice", "mallory"]))).await;
    let mut target = FakeTarget::echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.name = Some("shop".into());
    cfg.token = Some("alice".into());
    let mut first = spawn_agent(cfg.clone());
    first.connected().await;

    let mut thief = cfg.clone();
    thief.token = Some("mallory".into());
    let err = spawn_agent(thief).task.await.unwrap().unwrap_err();
    assert!(matches!(err, AgentError::NameTaken(_)), "{err}");
    assert!(err.to_string().contains("409"), "{err}");

    // Another client of the same token takes the name over (the newest wins); the first is
    // told so and stops (see scenarios::hardening for the whole rule).
    let mut second = spawn_agent(cfg);
    second.connected().await;
    let r = send(relay.addr, "POST", "/t/shop/x", &[], "one")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let _ = target.next().await;
    let ex = second.exchange().await;
    assert_eq!(ex.tunnel, "shop");
    let err = first.task.await.unwrap().unwrap_err();
    assert!(matches!(err, AgentError::TakenOver), "{err}");
    second.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_names_are_refused_and_random_names_are_assigned() {
    let (relay, target) = open_relay_and_echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.name = Some("Bad_Name".into());
    let err = spawn_agent(cfg.clone()).task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("lowercase"), "{err}");
    cfg.name = Some("www".into());
    let err = spawn_agent(cfg.clone()).task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    cfg.name = None;
    let mut a = spawn_agent(cfg.clone());
    let mut b = spawn_agent(cfg);
    let (na, ua) = a.connected().await;
    let (nb, _) = b.connected().await;
    assert_ne!(na, nb);
    assert!(twk_protocol::validate_name(&na).is_ok());
    assert_eq!(ua, format!("http://{}/t/{na}", relay.addr));
}

#[tokio::test]
async fn protocol_version_mismatch_is_a_human_error() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let r = send(
        relay.addr,
        "GET",
        "/_twk/connect",
        &[
            ("x-twk-protocol", "99"),
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.headers["x-twk-error"], "protocol-version");
    assert!(
        r.text().contains("speaks 1") && r.text().contains("speaks 99"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn after_a_relay_restart_the_agent_reconnects_and_the_same_url_works() {
    trace_init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = spawn_relay_on(listener, relay_config(tokens(&["t"])));
    let target = FakeTarget::echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.token = Some("t".into());
    // No name asked for: the relay picks one, and the agent must get the same one back.
    let mut agent = spawn_agent(cfg);
    let (name1, url1) = agent.connected().await;
    relay.stop().await;
    let down = agent
        .state(|s| matches!(s, ConnState::Reconnecting { .. }))
        .await;
    if let ConnState::Reconnecting { reason, .. } = down {
        assert!(!reason.is_empty());
    }
    // Same address, new process state: nothing is remembered on the relay side.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let relay = spawn_relay_on(listener, relay_config(tokens(&["t"])));
    // The agent retries with backoff; the first retries may still find the port closed.
    let (name, url2) = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let ConnState::Connected { name, public_url } =
                agent.states.recv().await.expect("agent stopped")
            {
                return (name, public_url);
            }
        }
    })
    .await
    .expect("agent did not reconnect within 60 s");
    assert_eq!(name, name1);
    assert_eq!(url1, url2);
    let r = send(relay.addr, "POST", &format!("/t/{name}/again"), &[], "x")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn wss_with_a_generated_certificate() {
    trace_init();
    let (cert, key) = self_signed();
    let mut cfg = relay_config(tokens(&["tls-token"]));
    cfg.tls = Some(twk_transport_tls(&cert, &key));
    let relay = spawn_relay(cfg).await;
    let mut target = FakeTarget::echo().await;
    let mut acfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("wss://localhost:{}", relay.addr.port())).unwrap(),
        twk_agent::Target::parse(&target.addr.to_string()).unwrap(),
    );
    acfg.token = Some("tls-token".into());
    // Without the CA the handshake must fail, never silently succeed; on the first attempt
    // that ends the run with what to do (issue 12 item 6).
    let untrusting = spawn_agent(acfg.clone());
    let err = tokio::time::timeout(Duration::from_secs(10), untrusting.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, AgentError::CertificateNotTrusted { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--relay-ca"), "{err}");

    acfg.extra_ca_pem = Some(cert.clone().into_bytes());
    let mut agent = spawn_agent(acfg);
    let (name, url) = agent.connected().await;
    assert!(url.starts_with("https://"), "{url}");
    // A sender over TLS too.
    let ca = twk_transport_client(&cert);
    let tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(ca)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            http::Request::post(format!("/t/{name}/secure?q=1"))
                .header("host", format!("localhost:{}", relay.addr.port()))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"tls body",
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = target.next().await;
    assert_eq!(got.body.as_ref(), b"tls body");
    assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("https"));
    let ex = agent.exchange().await;
    assert_eq!(
        ex.public_url,
        format!(
            "https://localhost:{}/t/{name}/secure?q=1",
            relay.addr.port()
        )
    );
}

fn twk_transport_tls(cert: &str, key: &str) -> std::sync::Arc<rustls::ServerConfig> {
    twk_transport::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
}

fn twk_transport_client(cert: &str) -> std::sync::Arc<rustls::ClientConfig> {
    twk_transport::tls::client_config(Some(cert.as_bytes())).unwrap()
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let mut target = FakeTarget::slow(Duration::from_millis(500)).await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    let (name, _) = agent.connected().await;
    let addr = relay.addr;
    let inflight =
        tokio::spawn(async move { send(addr, "POST", &format!("/t/{name}/slow"), &[], "").await });
    let _ = target.next().await;
    // Both sides are told to stop while the request is at the target.
    relay.shutdown.cancel();
    agent.shutdown.cancel();
    let r = inflight.await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok");
    relay.task.await.unwrap().unwrap();
    agent.task.await.unwrap().unwrap();
    // And the port no longer accepts.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_half_open_link_is_detected_by_ping_and_both_sides_recover() {
    trace_init();
    let mut rcfg = relay_config(tokens(&["t"]));
    rcfg.ping_interval = Duration::from_millis(200);
    rcfg.ping_timeout = Duration::from_millis(300);
    let relay = spawn_relay(rcfg).await;
    let target = FakeTarget::echo().await;
    // The first session goes through a proxy that will go silent; later ones go direct.
    let hole = Blackhole::start(relay.addr).await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.relay = twk_agent::RelayUrl::parse(&format!("http://{}", hole.addr)).unwrap();
    cfg.token = Some("t".into());
    cfg.name = Some("sleepy".into());
    cfg.ping_interval = Duration::from_millis(200);
    cfg.ping_timeout = Duration::from_millis(300);
    let mut agent = spawn_agent(cfg);
    agent.connected().await;
    let r = send(relay.addr, "POST", "/t/sleepy/a", &[], "x")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    hole.cut();
    // The agent notices the silence by itself (no FIN, no RST ever arrives)...
    let s = agent
        .state(|s| matches!(s, ConnState::Reconnecting { .. }))
        .await;
    if let ConnState::Reconnecting { reason, .. } = s {
        assert!(reason.contains("tunnel lost"), "{reason}");
    }
    // ...and the relay frees the dead session: the name answers 503, not a hang (or, when
    // the agent's reconnection wins the race on a loaded machine, the new session's 200).
    let mut freed = false;
    for _ in 0..50 {
        let r = send(relay.addr, "POST", "/t/sleepy/b", &[], "x")
            .await
            .unwrap();
        if r.status == 503 || r.status == 200 {
            freed = true;
            break;
        }
        assert_eq!(r.status, 502, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the relay kept a dead session");
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_relay_that_worked_once_is_retried_whatever_answers_in_its_place() {
    trace_init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = spawn_relay_on(listener, relay_config(twk_relay::Auth::Open));
    let target = FakeTarget::echo().await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    agent.connected().await;
    relay.stop().await;
    // An app answers 200 on the relay's port now. On a first attempt that ends the run (not a
    // twk relay: check --relay); after a session it is an outage like any other.
    let imposter = FakeTarget::echo_on(tokio::net::TcpListener::bind(addr).await.unwrap());
    let s = agent
        .state(
            |s| matches!(s, ConnState::Reconnecting { reason, .. } if reason.contains("HTTP 200")),
        )
        .await;
    assert!(
        matches!(&s, ConnState::Reconnecting { reason, .. } if reason.contains("not a twk relay")),
        "{s:?}"
    );
    agent.stop().await.unwrap();
    imposter.shutdown.cancel();
}

#[tokio::test]
async fn an_app_in_place_of_the_relay_ends_the_first_attempt() {
    trace_init();
    let app = FakeTarget::echo().await;
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{}", app.addr)).unwrap(),
        twk_agent::Target::parse("3000").unwrap(),
    );
    cfg.shutdown_grace = Duration::from_secs(1);
    let agent = spawn_agent(cfg);
    let err = tokio::time::timeout(Duration::from_secs(10), agent.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, AgentError::NotARelay { status: 200, .. }),
        "{err}"
    );
}

/// Sends each finished exchange on a std channel: read after the agent's thread has ended.
struct Reported {
    states: tokio::sync::mpsc::UnboundedSender<twk_agent::ConnState>,
    exchanges: std::sync::Mutex<std::sync::mpsc::Sender<twk_capture::Exchange>>,
}

impl twk_agent::Observer for Reported {
    fn connection(&self, state: &twk_agent::ConnState) {
        let _ = self.states.send(state.clone());
    }
    fn exchange(&self, exchange: twk_capture::Exchange) {
        let _ = self.exchanges.lock().unwrap().send(exchange);
    }
}

/// A request in flight when the client is told to stop is answered and also recorded, even
/// though twk-tunnel's forwarding runtime is dropped as soon as the agent returns: the
/// exchange is reported after its response is written, so the agent waits for its report.
#[tokio::test]
async fn shutdown_reports_the_exchanges_it_drained() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let mut target = FakeTarget::slow(Duration::from_millis(300)).await;
    let (states_tx, mut states) = tokio::sync::mpsc::unbounded_channel();
    let (exchanges_tx, exchanges) = std::sync::mpsc::channel();
    let observer = std::sync::Arc::new(Reported {
        states: states_tx,
        exchanges: std::sync::Mutex::new(exchanges_tx),
    });
    let cfg = agent_config(&relay, target.addr);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (forwarding, name) =
        agent_on_own_thread(cfg, observer, &mut states, shutdown.clone()).await;
    let addr = relay.addr;
    let inflight =
        tokio::spawn(async move { send(addr, "POST", &format!("/t/{name}/slow"), &[], "").await });
    let _ = target.next().await;
    shutdown.cancel();
    let r = inflight.await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let ended = tokio::task::spawn_blocking(move || forwarding.join().unwrap());
    ended.await.unwrap().unwrap();
    let ex = exchanges
        .try_recv()
        .expect("the drained exchange was never reported");
    assert_eq!(ex.status, Some(200));
    relay.stop().await;
}
