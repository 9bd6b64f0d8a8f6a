//! Byte-exact forwarding, routing, forwarding headers, concurrency, large bodies.

use crate::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (RelayHandle, FakeTarget, AgentHandle, String) {
    let (relay, target) = open_relay_and_echo().await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    let (name, _) = agent.connected().await;
    (relay, target, agent, name)
}

#[tokio::test]
async fn request_and_response_are_byte_exact() {
    let (relay, mut target, mut agent, name) = setup().await;
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let path = format!("/t/{name}/hooks/in%20put?b=2&a=1&a=%27x%27&empty=&raw=%E2%9C%93");
    let reply = send(
        relay.addr,
        "PATCH",
        &path,
        &[
            ("content-type", "application/octet-stream"),
            ("x-multi", "first"),
            ("x-other", "o"),
            ("x-multi", "second"),
            ("x-multi", "third, with comma"),
            ("x-spaces", "a  b\tc"),
            ("x-twk-request-id", "forged"),
        ],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body.as_ref(),
        body.as_slice(),
        "response body differs"
    );
    let got = target.next().await;
    assert_eq!(got.method, "PATCH");
    assert_eq!(
        got.path_and_query,
        "/hooks/in%20put?b=2&a=1&a=%27x%27&empty=&raw=%E2%9C%93"
    );
    assert_eq!(got.body.as_ref(), body.as_slice());
    assert_eq!(
        got.header_all("x-multi"),
        vec!["first", "second", "third, with comma"]
    );
    assert_eq!(got.header("x-spaces").as_deref(), Some("a  b\tc"));
    assert!(
        got.headers.iter().all(|(n, _)| !n.starts_with("x-twk-")),
        "x-twk-* headers reached the target: {:?}",
        got.headers
    );
    // Host rewritten to the target; forwarding headers rebuild the public URL.
    assert_eq!(got.header("host"), Some(target.addr.to_string()));
    assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(got.header("x-forwarded-host"), Some(relay.addr.to_string()));
    assert_eq!(got.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(got.header("x-forwarded-prefix"), Some(format!("/t/{name}")));
    let fwd = got.header("forwarded").unwrap();
    assert!(
        fwd.contains("for=127.0.0.1") && fwd.contains("proto=http"),
        "{fwd}"
    );

    let ex = agent.exchange().await;
    assert_eq!(ex.method, "PATCH");
    assert_eq!(
        ex.public_url,
        format!("http://{}{path}", relay.addr),
        "public URL must be exactly what the sender used"
    );
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.request.body.len, body.len() as u64);
    assert_eq!(ex.request.body.sha256, hex::encode(Sha256::digest(&body)));
    assert!(ex.request_id.contains('-'));
    assert!(ex.timings.done_ms.unwrap() >= ex.timings.received_ms);
}

#[tokio::test]
async fn response_status_headers_and_body_come_back_unchanged_and_redirects_are_not_followed() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let target = FakeTarget::with(|_| {
        http::Response::builder()
            .status(302)
            .header("location", "http://example.invalid/elsewhere")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("x-app", "yes")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"moved\x00\xff",
            )))
            .unwrap()
    })
    .await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    let (name, _) = agent.connected().await;
    let r = send(relay.addr, "GET", &format!("/t/{name}/"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], "http://example.invalid/elsewhere");
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, vec!["a=1", "b=2"]);
    assert_eq!(r.body.as_ref(), b"moved\x00\xff");
}

/// A status without a standard reason phrase reaches the sender with an empty one, as the
/// app sent it; hyper wrote `<none>`.
#[tokio::test]
async fn a_status_without_a_standard_reason_phrase_gets_an_empty_one() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let target = FakeTarget::with(|_| {
        http::Response::builder()
            .status(299)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
            .unwrap()
    })
    .await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    let (name, _) = agent.connected().await;
    let head = format!("GET /t/{name}/ HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
    let r = raw(relay.addr, head.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 299 \r\n"), "{r:?}");
    let ok = raw(relay.addr, head.replace("/ HTTP", "/x HTTP").as_bytes()).await;
    assert!(!ok.contains("<none>"), "{ok:?}");
}

#[tokio::test]
async fn subdomain_routing_and_host_preserve() {
    trace_init();
    let mut cfg = relay_config(twk_relay::Auth::Open);
    cfg.domain = "relay.example".into();
    cfg.url_style = twk_relay::UrlStyle::Subdomain;
    let relay = spawn_relay(cfg).await;
    let mut target = FakeTarget::echo().await;
    let mut acfg = agent_config(&relay, target.addr);
    acfg.name = Some("myapp".into());
    acfg.host_header = twk_agent::HostHeader::Preserve;
    let mut agent = spawn_agent(acfg);
    let (name, url) = agent.connected().await;
    assert_eq!(name, "myapp");
    assert_eq!(url, "http://myapp.relay.example");
    let r = send(
        relay.addr,
        "POST",
        "/sms?x=1",
        &[("host", "myapp.relay.example:8080")],
        "hi",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = target.next().await;
    assert_eq!(got.path_and_query, "/sms?x=1");
    assert_eq!(
        got.header("host").as_deref(),
        Some("myapp.relay.example:8080")
    );
    assert!(got.header("x-forwarded-prefix").is_none());
    let ex = agent.exchange().await;
    assert_eq!(ex.public_url, "http://myapp.relay.example:8080/sms?x=1");
    // An unknown subdomain is not routed anywhere.
    let r = send(
        relay.addr,
        "POST",
        "/",
        &[("host", "other.relay.example")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn five_hundred_concurrent_requests_without_cross_talk() {
    let (relay, _target, _agent, name) = setup().await;
    let client = pooled_client();
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let client = client.clone();
        let url = format!("http://{}/t/{name}/req/{i}?i={i}", relay.addr);
        tasks.push(tokio::spawn(async move {
            let body = format!("request-{i}-{}", "x".repeat((i as usize * 37) % 5000));
            let req = http::Request::post(url)
                .header("x-id", i.to_string())
                .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let path = resp.headers()["x-echo-path"].to_str().unwrap().to_string();
            let got = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(path, format!("/req/{i}?i={i}"));
            assert_eq!(
                hex::encode(Sha256::digest(&got)),
                hex::encode(Sha256::digest(body.as_bytes())),
                "cross-talk on request {i}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn an_8_mib_body_is_byte_identical_both_ways() {
    let (relay, mut target, mut agent, name) = setup().await;
    let body: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = send(
        relay.addr,
        "POST",
        &format!("/t/{name}/big"),
        &[],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body.as_ref() == body.as_slice(), "echoed body differs");
    let got = target.next().await;
    assert!(got.body.as_ref() == body.as_slice(), "target body differs");
    let ex = agent.exchange().await;
    assert_eq!(ex.request.body.len, body.len() as u64);
    assert!(ex.request.body.truncated, "capture must be capped at 1 MiB");
    assert_eq!(ex.request.body.bytes.len(), 1024 * 1024);
    assert_eq!(ex.request.body.sha256, hex::encode(Sha256::digest(&body)));
}

#[tokio::test]
async fn one_slow_request_never_delays_the_others() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let target = FakeTarget::slow(Duration::from_secs(5)).await;
    let mut agent = spawn_agent(agent_config(&relay, target.addr));
    let (name, _) = agent.connected().await;
    let addr = relay.addr;
    let slow_name = name.clone();
    let slow =
        tokio::spawn(
            async move { send(addr, "POST", &format!("/t/{slow_name}/slow"), &[], "").await },
        );
    // While the slow one is held by the target, fast ones complete.
    let started = std::time::Instant::now();
    for i in 0..20 {
        let r = send(addr, "POST", &format!("/t/{name}/fast/{i}"), &[], "")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert!(
        !slow.is_finished(),
        "the slow request should still be in flight"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fast requests waited for the slow one"
    );
    slow.abort();
}

#[tokio::test]
async fn many_large_bodies_at_once_stay_within_the_capture_budget_and_forward_intact() {
    let (relay, target) = open_relay_and_echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    // Hostile: 32 concurrent 2 MiB bodies against a 4 MiB budget for all captured copies.
    cfg.capture_budget = 4 * 1024 * 1024;
    let mut agent = spawn_agent(cfg);
    let (name, _) = agent.connected().await;
    let client = pooled_client();
    let mut tasks = Vec::new();
    for i in 0..32u8 {
        let client = client.clone();
        let url = format!("http://{}/t/{name}/big/{i}", relay.addr);
        tasks.push(tokio::spawn(async move {
            let body = bytes::Bytes::from(vec![i; 2 * 1024 * 1024]);
            let req = http::Request::post(url)
                .body(http_body_util::Full::new(body.clone()))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let got = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert!(got == body, "body {i} altered");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The budget arithmetic itself is unit-tested in twk-agent (tap.rs); here: under that
    // pressure every body still forwards intact and every capture keeps its true length.
    for _ in 0..32 {
        let ex = agent.exchange().await;
        assert_eq!(ex.request.body.len, 2 * 1024 * 1024, "true length kept");
        assert!(ex.request.body.truncated);
        assert!(ex.request.body.bytes.len() <= 1024 * 1024);
    }
}

/// Connections a [`counting_app`] has seen.
#[derive(Clone, Default)]
struct Counts {
    /// Most open at once.
    max_open: Arc<std::sync::atomic::AtomicUsize>,
    /// Accepted in all.
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

/// A local app that answers every request after `hold` and counts its connections.
async fn counting_app(hold: Duration) -> (std::net::SocketAddr, Counts) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let counts = Counts::default();
    let seen = counts.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            counts.max_open.fetch_max(now, Ordering::SeqCst);
            let open = open.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| async move {
                    tokio::time::sleep(hold).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_target_connection_is_reused_at_once_but_not_after_an_idle_second() {
    // Apps' servers close idle connections on their own clock (Node after 5 s, gunicorn
    // after 2): a request sent on one as it closes gets no answer. The client reuses a
    // connection while it is busy and lets it go before any of those clocks runs out.
    use std::sync::atomic::Ordering;
    let (relay, _echo) = open_relay_and_echo().await;
    let (app, counts) = counting_app(Duration::ZERO).await;
    let mut agent = spawn_agent(agent_config(&relay, app));
    let (name, _) = agent.connected().await;
    let path = format!("/t/{name}/hook");
    let post = || send(relay.addr, "POST", &path, &[], b"{}".to_vec());
    assert_eq!(post().await.unwrap().status, 200);
    assert_eq!(post().await.unwrap().status, 200);
    assert_eq!(
        counts.accepted.load(Ordering::SeqCst),
        1,
        "not reused at once"
    );
    // Waiting is the subject here: the pool's idle time has to run out.
    tokio::time::sleep(twk_protocol::limits::TARGET_POOL_IDLE + Duration::from_millis(200)).await;
    assert_eq!(post().await.unwrap().status, 200);
    assert_eq!(
        counts.accepted.load(Ordering::SeqCst),
        2,
        "an idle connection was reused"
    );
}

#[tokio::test]
async fn a_flood_of_senders_reaches_a_slow_app_over_a_bounded_number_of_connections() {
    // Hostile: 64 senders at once against an app that takes 200 ms per request, with room
    // for 8 at the app. Every one is answered, in turn; the app never sees more than 8
    // connections (each costs the client a connection's buffers). Unbounded, it saw all 64.
    let (relay, _echo) = open_relay_and_echo().await;
    let (app, counts) = counting_app(Duration::from_millis(200)).await;
    let mut cfg = agent_config(&relay, app);
    cfg.max_target_requests = 8;
    let mut agent = spawn_agent(cfg);
    let (name, _) = agent.connected().await;
    let client = pooled_client();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            let url = format!("http://{}/t/{name}/flood/{i}", relay.addr);
            tokio::spawn(async move {
                let req = http::Request::post(url)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                client.request(req).await.unwrap().status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let max = counts.max_open.load(std::sync::atomic::Ordering::SeqCst);
    assert!(max <= 8, "the app saw {max} connections at once");
}

/// A path a stranger sends as raw UTF-8 keeps its public URL (a signature over the URL
/// needs it): the relay's header held only ASCII, and the exchange had no URL at all.
#[tokio::test]
async fn a_raw_utf_8_path_keeps_its_public_url() {
    let (relay, _target, mut agent, name) = setup().await;
    let req = format!(
        "POST /t/{name}/caf\u{e9}/\u{202e} HTTP/1.1\r\nhost: relay\r\ncontent-length: 1\r\n\r\nx"
    );
    let answer = raw(relay.addr, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let ex = agent.exchange().await;
    assert!(
        ex.public_url
            .ends_with(&format!("/t/{name}/caf\u{e9}/\u{202e}")),
        "{:?}",
        ex.public_url
    );
}

/// A Slack event the app answers in 3.2 s reaches Slack's sender through twk (whose deadline
/// is 9 s), but Slack stops waiting at 3 s: the exchange the tunnel records has the client's
/// own timings, and they give it the `slow-answer` lint.
#[tokio::test]
async fn an_answer_slower_than_slack_waits_is_linted() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let app = FakeTarget::slow(Duration::from_millis(3_200)).await;
    let mut agent = spawn_agent(agent_config(&relay, app.addr));
    let (name, _) = agent.connected().await;
    let slack = [
        ("x-slack-request-timestamp", "1700000000"),
        ("x-slack-signature", "v0=00"),
        ("content-type", "application/json"),
    ];
    let path = format!("/t/{name}/slow/events");
    let r = send(relay.addr, "POST", &path, &slack, "{}").await.unwrap();
    assert_eq!(r.status, 200, "twk's own deadline is longer than Slack's");
    let ex = agent.exchange().await;
    assert_eq!(ex.provider.as_deref(), Some("slack"));
    let lints = twk_capture::lints_of(&ex);
    let slow = lints
        .iter()
        .find(|l| l.code == twk_capture::LintCode::SlowAnswer)
        .unwrap_or_else(|| panic!("no slow-answer lint: {lints:?}"));
    assert!(slow.message.contains("Slack waits 3 s"), "{}", slow.message);
    agent.stop().await.unwrap();
}

/// An app that answers chunked with a trailer field, once it has a whole chunked request
/// (its trailer section included).
async fn answers_with_trailers() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    // `keep-alive` may not travel in HTTP/2 trailers and `x-twk-*` is twk's: neither
    // reaches the sender.
    let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\
        trailer: x-t, keep-alive, x-twk-note\r\n\r\n\
        3\r\nabc\r\n0\r\nx-t: yes\r\nkeep-alive: 5\r\nx-twk-note: app\r\n\r\n";
    let chunked_in = |got: &[u8]| {
        String::from_utf8_lossy(got).contains("\r\n0\r\n") && got.ends_with(b"\r\n\r\n")
    };
    raw_app(answer, chunked_in).await
}

/// Trailer fields go through both ways (to a sender who said `TE: trailers`, as hyper's
/// server requires), and an answer that ends with them is recorded whole: `Trailer` was
/// stripped as if hop-by-hop, so hyper sent none on, and the capture, which waited for an
/// end that never came after the trailers, said the sender had gone away. Names a sender
/// must not forge (`x-twk-*`, `x-forwarded-*`, `proxy-*`) and hop-by-hop ones are dropped
/// from trailer fields as from headers, and a GET's chunked body with trailer fields still
/// reaches the app (hyper sends none for a GET of unknown length unless told chunked).
#[tokio::test]
async fn trailers_go_through_both_ways_and_an_answer_with_them_is_whole() {
    trace_init();
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let (app, mut seen) = answers_with_trailers().await;
    let mut agent = spawn_agent(agent_config(&relay, app));
    let (name, _) = agent.connected().await;
    let request = format!(
        "POST /t/{name}/hook HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\
         te: trailers\r\ntransfer-encoding: chunked\r\n\
         trailer: x-sum, x-twk-remote-addr, x-forwarded-for, proxy-authorization\r\n\r\n\
         5\r\nhello\r\n0\r\nx-sum: 5d41\r\nx-twk-remote-addr: 6.6.6.6:1\r\n\
         x-forwarded-for: 6.6.6.6\r\nproxy-authorization: Basic eA==\r\n\r\n"
    );
    let answer = raw(relay.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    let answer = answer.to_ascii_lowercase();
    let (_, answer_trailers) = answer
        .split_once("\r\n3\r\nabc\r\n0\r\n")
        .expect("{answer:?}");
    assert_eq!(answer_trailers, "x-t: yes\r\n\r\n");
    let at_app = String::from_utf8_lossy(&seen.recv().await.unwrap()).to_ascii_lowercase();
    let (head, trailers) = at_app.split_once("hello\r\n0\r\n").expect("{at_app:?}");
    assert_eq!(trailers, "x-sum: 5d41\r\n\r\n");
    // Asked again on the app's leg (TE is hop-by-hop): apps that send trailer fields only
    // when asked, as hyper's server does, send them through twk.
    assert!(head.contains("\r\nte: trailers\r\n"), "{head:?}");
    let ex = agent.exchange().await;
    assert_eq!(ex.status, Some(200));
    assert!(ex.failure.is_none(), "{:?}", ex.failure);
    let response = ex.response.expect("the answer is recorded");
    assert_eq!(response.body.bytes.as_slice(), b"abc");
    assert!(!response.body.truncated && !ex.request.body.truncated);
    assert_eq!(ex.request.body.bytes.as_slice(), b"hello");

    let get = format!(
        "GET /t/{name}/get HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\
         transfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n2\r\nhi\r\n0\r\nx-sum: 1\r\n\r\n"
    );
    let answer = raw(relay.addr, get.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    let at_app = String::from_utf8_lossy(&seen.recv().await.unwrap()).to_ascii_lowercase();
    assert!(
        at_app.ends_with("2\r\nhi\r\n0\r\nx-sum: 1\r\n\r\n"),
        "{at_app:?}"
    );
    assert!(!at_app.contains("\r\nte:"), "not asked: {at_app:?}");
}

/// An observer that reports nothing until the test says the response arrived: on the
/// forwarding thread, as the capture's analysis and recording are.
struct ReportsAfterTheAnswer {
    states: tokio::sync::mpsc::UnboundedSender<twk_agent::ConnState>,
    arrived: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    reported: std::sync::mpsc::Sender<bool>,
}

impl twk_agent::Observer for ReportsAfterTheAnswer {
    fn connection(&self, state: &twk_agent::ConnState) {
        let _ = self.states.send(state.clone());
    }
    fn exchange(&self, _: twk_capture::Exchange) {
        let arrived = self.arrived.lock().unwrap();
        let waited = arrived.recv_timeout(Duration::from_secs(20)).is_ok();
        let _ = self.reported.send(waited);
    }
}

/// The response leaves before the exchange is analysed and recorded: reporting first put
/// the analysis, the `--json` line and the store's hand-off on every response's time. The
/// agent runs on one thread, as twk-tunnel's forwarding does, so an observer still waiting
/// holds up whatever has not been written yet.
#[tokio::test]
async fn the_response_leaves_before_the_exchange_is_reported() {
    let (relay, target) = open_relay_and_echo().await;
    let (arrived, arrived_rx) = std::sync::mpsc::channel();
    let (reported_tx, reported) = std::sync::mpsc::channel();
    let (states_tx, mut states) = tokio::sync::mpsc::unbounded_channel();
    let observer = Arc::new(ReportsAfterTheAnswer {
        states: states_tx,
        arrived: std::sync::Mutex::new(arrived_rx),
        reported: reported_tx,
    });
    let cfg = agent_config(&relay, target.addr);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (forwarding, name) =
        agent_on_own_thread(cfg, observer, &mut states, shutdown.clone()).await;
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        send(relay.addr, "POST", &format!("/t/{name}/hook"), &[], "x"),
    )
    .await
    .expect("the response waited for the exchange's report")
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_ref(), b"x");
    arrived.send(()).unwrap();
    let waited =
        tokio::task::spawn_blocking(move || reported.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap();
    assert_eq!(
        waited,
        Ok(true),
        "the exchange was reported before its response left"
    );
    shutdown.cancel();
    relay.stop().await;
    forwarding.join().unwrap().unwrap();
}

/// What the relay sent a hand-made client naming `accepts` (or nothing) for one request.
async fn metadata_sent_to(accepts: Option<&str>, name: &str) -> http::HeaderMap {
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let mut headers = vec![("x-twk-name", name)];
    headers.extend(accepts.map(|a| ("x-twk-accepts", a)));
    let _client = raw_agent(relay.addr, &headers, move |req| {
        let _ = seen_tx.send(req.headers().clone());
        http::Response::new(Full::new(Bytes::from_static(b"ok")))
    })
    .await
    .unwrap();
    let path = format!("/t/{name}/hook?x=1");
    let host = ("host", "Relay.Example:8080\"x");
    let r = send(relay.addr, "POST", &path, &[host], "{}")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    seen.recv().await.unwrap()
}

#[tokio::test]
async fn a_client_that_names_bundled_meta_gets_its_metadata_in_one_header() {
    use twk_protocol::{bundle::Bundle, meta};
    trace_init();
    let h = metadata_sent_to(Some("refused, bundled-meta"), "bundled").await;
    let ours: Vec<_> = h
        .keys()
        .filter(|k| k.as_str().starts_with("x-twk-"))
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(
        h[meta::PUBLIC_URL],
        "http://Relay.Example:8080\"x/t/bundled/hook?x=1"
    );
    let b = Bundle::decode(h[meta::BUNDLE].as_bytes()).unwrap();
    assert!(b.request_id.contains('-'), "{b:?}");
    assert!(b.received_ms > 1_700_000_000_000, "{b:?}");
    assert_eq!(b.deadline_ms, 9_000);
    assert!(b.remote_addr.starts_with("127.0.0.1:"), "{b:?}");
    assert_eq!(
        (b.proto, b.host, b.prefix),
        ("http", "Relay.Example:8080\"x", Some("/t/bundled"))
    );
}

#[tokio::test]
async fn a_client_that_does_not_name_bundled_meta_gets_one_header_each() {
    use twk_protocol::meta;
    trace_init();
    let h = metadata_sent_to(Some("refused"), "older").await;
    assert!(!h.contains_key(meta::BUNDLE));
    for name in [
        meta::REQUEST_ID,
        meta::PUBLIC_URL,
        meta::REMOTE_ADDR,
        meta::RECEIVED_AT,
        meta::PROTO,
        meta::HOST,
        meta::FORWARDED_PREFIX,
        meta::DEADLINE_MS,
    ] {
        assert!(h.contains_key(&name), "{name} missing: {h:?}");
    }
    assert_eq!(h[meta::HOST], "Relay.Example:8080\"x");
    assert_eq!(h[meta::DEADLINE_MS], "9000");
    let none = metadata_sent_to(None, "oldest").await;
    assert!(!none.contains_key(meta::BUNDLE));
    assert!(none.contains_key(meta::REQUEST_ID));
}
