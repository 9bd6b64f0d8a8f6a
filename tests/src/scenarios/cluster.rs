//! Several relay nodes coordinated through a real NATS JetStream (`nats-server -js`):
//! requests sent to any node reach the tunnel held by one of them, byte for byte, and a name
//! is never granted to two owners.

use crate::nats::Nats;
use crate::*;
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use twk_agent::{AgentError, ConnState};
use twk_cluster::{Cluster, ClusterConfig};

/// One node: the relay (serving on its own public and peer listeners) and its membership.
struct Node {
    relay: RelayHandle,
    cluster: Arc<Cluster>,
    peer: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
}

impl Node {
    /// The value of one line of the node's `/_twk/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        let r = send(self.metrics, "GET", "/_twk/metrics", &[], "")
            .await
            .unwrap();
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from the metrics:\n{}", r.text()))
    }
}

async fn node(nats: &Nats, auth: twk_relay::Auth) -> Node {
    node_with(nats, relay_config(auth)).await
}

/// [`node`] with a configuration of the test's own.
async fn node_with(nats: &Nats, mut cfg: twk_relay::RelayConfig) -> Node {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = public.local_addr().unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cluster = Cluster::join(
        ClusterConfig {
            servers: vec![nats.url.clone()],
            creds: None,
            ca: None,
            advertise: format!("http://{}", peer.local_addr().unwrap()),
            lease: Duration::from_secs(5),
        },
        shutdown.child_token(),
    )
    .await
    .expect("joins the cluster");
    // Every node serves the same public URLs (path style on one host name), as behind one
    // load balancer.
    cfg.domain = "hooks.test".into();
    cfg.cluster = Some(cluster.clone());
    let task = tokio::spawn(twk_relay::serve_node(
        public,
        Some(metrics),
        Some(peer),
        cfg,
        shutdown.clone(),
    ));
    Node {
        relay: RelayHandle {
            addr,
            shutdown,
            task,
        },
        cluster,
        peer: peer_addr,
        metrics: metrics_addr,
    }
}

/// A client of tunnel `name` on `node` with `token`.
fn tunnel_on(
    node: &Node,
    target: std::net::SocketAddr,
    token: &str,
    name: &str,
) -> twk_agent::AgentConfig {
    let mut cfg = agent_config(&node.relay, target);
    cfg.token = Some(token.into());
    cfg.name = Some(name.into());
    cfg
}

async fn three_nodes(nats: &Nats, auth: twk_relay::Auth) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(node(nats, auth.clone()).await);
    }
    nodes
}

/// Bytes that differ at every offset (a shifted or mixed-up chunk cannot look right).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_sent_to_any_node_reaches_the_tunnel_held_by_one() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let nodes = three_nodes(&nats, tokens(&["alice-token"])).await;
    let target = FakeTarget::echo().await;
    let mut agent = spawn_agent(tunnel_on(&nodes[0], target.addr, "alice-token", "shop"));
    agent.connected().await;
    for other in &nodes[1..] {
        let holder = other
            .cluster
            .await_holder("shop", Duration::from_secs(10))
            .await
            .expect("the other nodes learn who holds the name");
        assert_eq!(holder.node, nodes[0].cluster.node());
    }

    // An 8 MiB body through each node, byte-identical both ways.
    let big = pattern(8 << 20, 7);
    for (i, n) in nodes.iter().enumerate() {
        let path = format!("/t/shop/big/{i}");
        let r = send(
            n.relay.addr,
            "POST",
            &path,
            &[("host", "hooks.test")],
            big.clone(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "node {i}: {}", r.text());
        assert_eq!(r.headers["x-echo-path"], format!("/big/{i}").as_str());
        assert!(r.body == big, "node {i}: the 8 MiB body came back altered");
    }

    // 300 concurrent requests spread over the three nodes: each gets its own answer.
    let client = pooled_client();
    let sends = (0..300u64).map(|i| {
        let (client, addr) = (client.clone(), nodes[(i % 3) as usize].relay.addr);
        async move {
            let body = pattern(1024 + (i as usize % 7) * 513, i);
            let req = http::Request::post(format!("http://{addr}/t/shop/n/{i}"))
                .header("host", "hooks.test")
                .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                .unwrap();
            let resp = client.request(req).await.expect("answered");
            let status = resp.status();
            let path = resp.headers()["x-echo-path"].to_str().unwrap().to_owned();
            let got = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (i, status, path, got == body)
        }
    });
    for (i, status, path, same) in join_all(sends).await {
        assert_eq!(status, 200, "request {i}");
        assert_eq!(path, format!("/n/{i}"), "request {i} got another's answer");
        assert!(same, "request {i}: body altered or mixed");
    }

    // The gauges: the holder holds one name; the nodes that passed requests on counted them.
    assert_eq!(nodes[0].metric("twk_relay_cluster_names_held").await, 1.0);
    assert_eq!(nodes[1].metric("twk_relay_cluster_names_held").await, 0.0);
    assert!(nodes[1].metric("twk_relay_cluster_forwarded_total").await >= 101.0);
    assert_eq!(
        nodes[0].metric("twk_relay_cluster_forwarded_total").await,
        0.0
    );
    assert!(nodes[1].metric("twk_relay_cluster_nodes_seen").await >= 2.0);

    // A stranger cannot use a node's peer listener, with no secret or a wrong one.
    for secret in [None, Some("not-the-secret")] {
        let mut headers = vec![
            ("host", "hooks.test"),
            ("x-twk-peer-client", "203.0.113.9:1"),
        ];
        headers.extend(secret.map(|s| ("x-twk-peer", s)));
        let r = send(nodes[0].peer, "POST", "/t/shop/x", &headers, "hi")
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{}", r.text());
    }
    agent.stop().await.unwrap();
    for n in nodes {
        n.relay.stop().await;
    }
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tokens_racing_for_one_name_on_two_nodes_exactly_one_wins() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let auth = tokens(&["alice-token", "mallory-token"]);
    let nodes = three_nodes(&nats, auth).await;
    let target = FakeTarget::echo().await;
    for round in 0..5 {
        let name = format!("race-{round}");
        let agents: Vec<_> = [("alice-token", 0), ("mallory-token", 1)]
            .into_iter()
            .map(|(token, at)| spawn_agent(tunnel_on(&nodes[at], target.addr, token, &name)))
            .collect();
        let mut winners = Vec::new();
        let mut losers = 0;
        for mut agent in agents {
            let state = agent
                .state(|s| matches!(s, ConnState::Connected { .. } | ConnState::Stopped))
                .await;
            if matches!(state, ConnState::Connected { .. }) {
                winners.push(agent);
            } else {
                let err = agent.task.await.unwrap().unwrap_err();
                assert!(matches!(err, AgentError::NameTaken(_)), "{err}");
                losers += 1;
            }
        }
        assert_eq!((winners.len(), losers), (1, 1), "round {round}");
        for w in winners {
            w.stop().await.unwrap();
        }
    }
    for n in nodes {
        n.relay.stop().await;
    }
    nats.stop().await;
}

#[tokio::test]
async fn a_node_that_cannot_reach_nats_refuses_to_start_with_a_clear_error() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = ClusterConfig {
        servers: vec![format!("nats://127.0.0.1:{port}")],
        creds: None,
        ca: None,
        advertise: "http://127.0.0.1:1".into(),
        lease: Duration::from_secs(5),
    };
    let err = Cluster::join(cfg.clone(), Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, twk_cluster::ClusterError::Connect(_)),
        "{err}"
    );
    assert!(err.to_string().contains("cannot connect to NATS"), "{err}");
    let bad = ClusterConfig {
        servers: vec!["not a url at all".into()],
        ..cfg
    };
    let err = Cluster::join(bad, Default::default()).await.unwrap_err();
    assert!(matches!(err, twk_cluster::ClusterError::Config(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_nats_gone_nodes_serve_what_they_hold_refuse_new_names_and_recover() {
    trace_init();
    let Some(mut nats) = Nats::start_or_skip().await else {
        return;
    };
    let auth = tokens(&["alice-token"]);
    let nodes = vec![node(&nats, auth.clone()).await, node(&nats, auth).await];
    let target = FakeTarget::echo().await;
    let tunnel = |at: usize, name: &str| {
        spawn_agent(tunnel_on(&nodes[at], target.addr, "alice-token", name))
    };
    let mut shop = tunnel(0, "shop");
    shop.connected().await;
    nodes[1]
        .cluster
        .await_holder("shop", Duration::from_secs(10))
        .await
        .expect("node 1 learns the holder");

    nats.pause().await;
    // The tunnel a node holds keeps working.
    let r = send(
        nodes[0].relay.addr,
        "POST",
        "/t/shop/a",
        &[("host", "hooks.test")],
        "a",
    )
    .await
    .unwrap();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "a"));
    // A new name is refused, saying why (the client keeps trying).
    let mut late = tunnel(1, "late");
    let ConnState::Reconnecting { reason, .. } = late
        .state(|s| matches!(s, ConnState::Reconnecting { .. }))
        .await
    else {
        unreachable!()
    };
    assert!(reason.contains("503"), "{reason}");
    assert!(reason.contains("cannot grant tunnel names"), "{reason}");

    // NATS back: the waiting client gets its name, and both tunnels work through both nodes.
    nats.resume().await.unwrap();
    late.connected().await;
    for (name, holder) in [("late", 1), ("shop", 0)] {
        let other = &nodes[1 - holder];
        other
            .cluster
            .await_holder(name, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{name} is located again after NATS returned"));
        for n in &nodes {
            let r = send(
                n.relay.addr,
                "POST",
                &format!("/t/{name}/b"),
                &[("host", "hooks.test")],
                "b",
            )
            .await
            .unwrap();
            assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "b"), "{name}");
        }
    }
    shop.stop().await.unwrap();
    late.stop().await.unwrap();
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_client_of_the_same_token_on_another_node_takes_over_and_the_first_stops() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let auth = tokens(&["alice-token"]);
    let nodes = vec![node(&nats, auth.clone()).await, node(&nats, auth).await];
    let target = FakeTarget::echo().await;
    // Each agent run is its own client process (its own client id).
    let client = |at: usize| spawn_agent(tunnel_on(&nodes[at], target.addr, "alice-token", "shop"));
    let mut first = client(0);
    first.connected().await;
    let mut second = client(1);
    second.connected().await;
    // Node 0 sees its lease taken and closes the first client's session; the first client
    // reconnects to node 0 and is refused for good, on this node as on any other.
    let err = tokio::time::timeout(Duration::from_secs(15), first.task)
        .await
        .expect("the displaced client stops")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, AgentError::TakenOver), "{err}");
    // The name stays with the second client, reachable through both nodes.
    nodes[0]
        .cluster
        .await_holder("shop", Duration::from_secs(10))
        .await
        .expect("node 0 routes to the second client's node");
    for n in &nodes {
        let r = send(
            n.relay.addr,
            "POST",
            "/t/shop/x",
            &[("host", "hooks.test")],
            "x",
        )
        .await
        .unwrap();
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "x"));
    }
    second.stop().await.unwrap();
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_kept_on_one_node_reaches_the_client_back_on_another() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut nodes = Vec::new();
    for d in &dirs {
        let mut cfg = relay_config(tokens(&["alice-token"]));
        // Past any hold: straight to "offline".
        cfg.hold = Duration::ZERO;
        cfg.keep_dir = Some(d.path().join("kept"));
        nodes.push(node_with(&nats, cfg).await);
    }
    let target = FakeTarget::echo().await;
    let key = twk_protocol::kept::OwnerKey::generate();
    let client = |at: usize| {
        let mut cfg = tunnel_on(&nodes[at], target.addr, "alice-token", "away");
        cfg.owner_key = Some(key.clone());
        spawn_agent(cfg)
    };
    // The client connects to node 0 only; node 1 learns its key through the cluster.
    let mut first = client(0);
    first.connected().await;
    nodes[1]
        .cluster
        .await_owner_key("away", Duration::from_secs(10))
        .await
        .expect("node 1 learns the owner key");
    first.stop().await.unwrap();

    // Offline: a webhook through node 1 is answered 503 and kept, sealed: by node 1, or by
    // node 0 when node 1 still saw the tunnel there a moment ago.
    let body = pattern(64 * 1024, 3);
    let r = send(
        nodes[1].relay.addr,
        "POST",
        "/t/away/hook?x=1",
        &[("host", "hooks.test")],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("kept"), "{}", r.text());
    let kept = |i: usize| {
        std::fs::read_dir(dirs[i].path().join("kept").join("away")).map_or(0, |d| d.count())
    };
    let keeper = if kept(1) == 1 { 1 } else { 0 };
    assert_eq!((kept(keeper), kept(1 - keeper)), (1, 0));

    // The client comes back on the other node: the keeper hands the request over through it.
    let mut back = client(1 - keeper);
    back.connected().await;
    let ex = back.exchange().await;
    assert!(ex.missed, "{ex:?}");
    assert_eq!(ex.path, "/hook?x=1");
    assert!(
        ex.request.body.bytes == body,
        "the kept body came back altered"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while kept(keeper) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the keeper kept its copy"
        );
        tokio::task::yield_now().await;
    }
    back.stop().await.unwrap();
    nats.stop().await;
}
