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
        scrape_metric(self.metrics, name).await
    }
}

async fn node(nats: &Nats, auth: twk_relay::Auth) -> Node {
    node_with(nats, relay_config(auth)).await
}

/// [`node`] with a configuration of the test's own.
async fn node_with(nats: &Nats, cfg: twk_relay::RelayConfig) -> Node {
    node_joining(vec![nats.url.clone()], None, cfg).await
}

/// A node that reaches NATS at `servers`, trusting `ca` for TLS.
async fn node_joining(
    servers: Vec<String>,
    ca: Option<std::path::PathBuf>,
    cfg: twk_relay::RelayConfig,
) -> Node {
    node_joining_as(servers, ca, None, cfg).await
}

/// [`node_joining`], authenticating with the NATS credentials file `creds`.
async fn node_joining_as(
    servers: Vec<String>,
    ca: Option<std::path::PathBuf>,
    creds: Option<std::path::PathBuf>,
    mut cfg: twk_relay::RelayConfig,
) -> Node {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = public.local_addr().unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cluster = Cluster::join(
        ClusterConfig {
            servers,
            creds,
            ca,
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
    let cfg = only_joining(format!("nats://127.0.0.1:{port}"), None, None);
    let err = Cluster::join(cfg.clone(), Default::default())
        .await
        .unwrap_err();
    assert_refused(&err, "cannot connect to NATS");
    let bad = ClusterConfig {
        servers: vec!["not a url at all".into()],
        ..cfg
    };
    let err = Cluster::join(bad, Default::default()).await.unwrap_err();
    assert!(matches!(err, twk_cluster::ClusterError::Config(_)), "{err}");
}

/// The cluster configuration of a node that only joins (it serves nothing): NATS at
/// `server`, trusting `ca`, with the credentials file `creds`.
fn only_joining(
    server: String,
    ca: Option<std::path::PathBuf>,
    creds: Option<std::path::PathBuf>,
) -> ClusterConfig {
    ClusterConfig {
        servers: vec![server],
        creds,
        ca,
        advertise: "http://127.0.0.1:1".into(),
        lease: Duration::from_secs(5),
    }
}

/// A node that could not join NATS at start (not a configuration error), saying `why`.
fn assert_refused(err: &twk_cluster::ClusterError, why: &str) {
    assert!(
        matches!(err, twk_cluster::ClusterError::Connect(_)),
        "{err}"
    );
    assert!(err.to_string().contains(why), "{err}");
}

/// Two nodes that reach NATS at `servers` (trusting `ca`, with the credentials file `creds`)
/// form a cluster: a tunnel held by node 0 answers `body` to a request sent to node 1.
async fn two_nodes_route_a_request(
    servers: Vec<String>,
    ca: Option<std::path::PathBuf>,
    creds: Option<std::path::PathBuf>,
    body: &'static str,
) {
    let auth = tokens(&["alice-token"]);
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let cfg = relay_config(auth.clone());
        nodes.push(node_joining_as(servers.clone(), ca.clone(), creds.clone(), cfg).await);
    }
    let target = FakeTarget::echo().await;
    let mut shop = spawn_agent(tunnel_on(&nodes[0], target.addr, "alice-token", "shop"));
    shop.connected().await;
    nodes[1]
        .cluster
        .await_holder("shop", Duration::from_secs(10))
        .await
        .expect("node 1 learns the holder");
    let r = send(
        nodes[1].relay.addr,
        "POST",
        "/t/shop/x",
        &[("host", "hooks.test")],
        body,
    )
    .await
    .unwrap();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, body));
    shop.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_reach_nats_over_tls_with_a_password_and_are_refused_without_either() {
    trace_init();
    if !Nats::available_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (dir.path().join("nats.pem"), dir.path().join("nats.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let (c, k) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    let tls = ["--tls", "--tlscert", c, "--tlskey", k];
    let nats = Nats::start_with(&[&tls[..], &["--user", "twk", "--pass", "s3cret"]].concat())
        .await
        .unwrap();
    let url = |auth: &str| format!("tls://{auth}@127.0.0.1:{}", nats.port());
    let join = |servers: String, ca: Option<std::path::PathBuf>| {
        Cluster::join(only_joining(servers, ca, None), Default::default())
    };
    // Not trusting the server's certificate, or with a wrong password: refused at start.
    let err = join(url("twk:s3cret"), None).await.unwrap_err();
    assert_refused(&err, "certificate");
    let err = join(url("twk:wrong"), Some(cert_path.clone()))
        .await
        .unwrap_err();
    assert_refused(&err, "authorization");
    // Trusting it, with the password: two nodes form a cluster and route to each other.
    two_nodes_route_a_request(vec![url("twk:s3cret")], Some(cert_path), None, "tls").await;
    nats.stop().await;
}

/// A NATS user's credentials file (JWT and NKey seed), as `nsc` writes one.
fn creds_file(path: &std::path::Path, jwt: &str, seed: &str) {
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    std::fs::write(path, text).unwrap();
}

/// An account's JWT signed by `operator`, JetStream on (unlimited), and a user of it that
/// must prove its key (not a bearer token): the user's credentials go to `creds`.
fn account_and_user(operator: &nats_io_jwt::KeyPair, creds: &std::path::Path) -> (String, String) {
    use nats_io_jwt::{Account, KeyPair, OperatorLimits, Token, User};
    let account = KeyPair::new_account();
    let claims: Account = Account::builder()
        .limits(Some(OperatorLimits::default()))
        .try_into()
        .unwrap();
    let account_jwt = Token::new(account.public_key())
        .name("twk")
        .claims(claims)
        .sign(operator);
    let user = KeyPair::new_user();
    let claims: User = User::builder().bearer_token(false).try_into().unwrap();
    let user_jwt = Token::new(user.public_key())
        .name("twk-relay")
        .claims(claims)
        .sign(&account);
    creds_file(creds, &user_jwt, &user.seed().unwrap());
    (account.public_key(), account_jwt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_reach_nats_in_operator_mode_with_a_creds_file_and_a_foreign_one_is_refused() {
    trace_init();
    if !Nats::available_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let operator = nats_io_jwt::KeyPair::new_operator();
    let operator_jwt = nats_io_jwt::Token::new(operator.public_key())
        .name("twk-test")
        .claims(nats_io_jwt::Operator::default())
        .sign(&operator);
    let (good, foreign) = (
        dir.path().join("twk.creds"),
        dir.path().join("foreign.creds"),
    );
    let (account, account_jwt) = account_and_user(&operator, &good);
    // An account of another operator, unknown to this server.
    account_and_user(&nats_io_jwt::KeyPair::new_operator(), &foreign);
    // JetStream needs the server's own (system) account.
    let system = nats_io_jwt::KeyPair::new_account();
    let system_jwt = nats_io_jwt::Token::new(system.public_key())
        .name("SYS")
        .claims(nats_io_jwt::Account::default())
        .sign(&operator);
    let system = system.public_key();
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "operator: {operator_jwt}\nsystem_account: {system}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {account}: {account_jwt}\n  {system}: {system_jwt}\n}}\n"
        ),
    )
    .unwrap();
    let nats = Nats::start_with(&["-c", config.to_str().unwrap()])
        .await
        .unwrap();
    let join = |creds: Option<std::path::PathBuf>| {
        Cluster::join(
            only_joining(nats.url.clone(), None, creds),
            Default::default(),
        )
    };
    // Without credentials, or with a user the server cannot trace to its operator: refused.
    for creds in [None, Some(foreign)] {
        let err = join(creds).await.unwrap_err();
        assert_refused(&err, "authorization");
    }
    // A missing file is the configuration's error, said with its path.
    let err = join(Some(dir.path().join("absent.creds")))
        .await
        .unwrap_err();
    assert!(matches!(err, twk_cluster::ClusterError::Config(_)), "{err}");
    assert!(err.to_string().contains("absent.creds"), "{err}");
    // With the account's user: two nodes form a cluster (JetStream included) and route.
    two_nodes_route_a_request(vec![nats.url.clone()], None, Some(good), "creds").await;
    nats.stop().await;
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

/// Nodes that keep requests for offline tunnels, each with a directory of its own (the
/// fallback while NATS cannot take one).
async fn keeping_nodes(nats: &Nats, n: usize) -> (Vec<Node>, Vec<tempfile::TempDir>) {
    keeping_nodes_at_most(nats, n, twk_relay::KeepLimits::default().count).await
}

/// [`keeping_nodes`] that keep at most `count` requests per tunnel.
async fn keeping_nodes_at_most(
    nats: &Nats,
    n: usize,
    count: usize,
) -> (Vec<Node>, Vec<tempfile::TempDir>) {
    let (mut nodes, mut dirs) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = relay_config(tokens(&["alice-token"]));
        // Past any hold: straight to "offline".
        cfg.hold = Duration::ZERO;
        cfg.keep_dir = Some(d.path().join("kept"));
        cfg.keep.count = count;
        nodes.push(node_with(nats, cfg).await);
        dirs.push(d);
    }
    (nodes, dirs)
}

/// Files a node's disk keeps for tunnel `name`.
fn kept_on_disk(dir: &tempfile::TempDir, name: &str) -> usize {
    std::fs::read_dir(dir.path().join("kept").join(name)).map_or(0, |d| d.count())
}

/// Waits until the cluster's store keeps `n` requests for `name`.
async fn kept_in_cluster(cluster: &Cluster, name: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = cluster.kept(name).await.map(|k| k.len());
        if now.as_ref().is_ok_and(|k| *k == n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: {now:?} kept in JetStream, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client of tunnel "away" on `node` with the owner key `key`.
fn away_client(
    node: &Node,
    target: std::net::SocketAddr,
    key: &twk_protocol::kept::OwnerKey,
) -> AgentHandle {
    let mut cfg = tunnel_on(node, target, "alice-token", "away");
    cfg.owner_key = Some(key.clone());
    spawn_agent(cfg)
}

/// Connects a client of "away" on node 0 once, so every node learns its owner key, and
/// leaves: the tunnel is offline.
async fn away_was_here(
    nodes: &[Node],
    target: std::net::SocketAddr,
    key: &twk_protocol::kept::OwnerKey,
) {
    let mut first = away_client(&nodes[0], target, key);
    first.connected().await;
    for n in &nodes[1..] {
        n.cluster
            .await_owner_key("away", Duration::from_secs(10))
            .await
            .expect("every node learns the owner key");
    }
    first.stop().await.unwrap();
}

/// A webhook to the offline tunnel through `node`: answered 503 and kept.
async fn webhook_kept(node: &Node, body: &[u8]) {
    let r = send(
        node.relay.addr,
        "POST",
        "/t/away/hook?x=1",
        &[("host", "hooks.test")],
        body.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("kept"), "{}", r.text());
}

/// The client, back, records the kept request as missed, byte for byte (its length and
/// SHA-256; the bytes themselves as far as the capture keeps them).
async fn receives_kept(client: &mut AgentHandle, body: &[u8]) {
    let ex = client.exchange().await;
    assert!(ex.missed, "{ex:?}");
    assert_eq!(ex.path, "/hook?x=1");
    let whole = twk_capture::CapturedBody::from_bytes(body);
    let got = &ex.request.body;
    assert_eq!(
        (got.len, &got.sha256),
        (whole.len, &whole.sha256),
        "the kept body came back altered"
    );
    assert!(body.starts_with(&got.bytes) && !got.bytes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_kept_in_jetstream_outlives_the_nodes_that_kept_it() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let (nodes, dirs) = keeping_nodes(&nats, 3).await;
    let target = FakeTarget::echo().await;
    let key = twk_protocol::kept::OwnerKey::generate();
    away_was_here(&nodes, target.addr, &key).await;

    // Offline: kept, sealed, in JetStream (by node 1, or by node 0 when node 1 still saw the
    // tunnel there a moment ago), not on any node's disk. A body over one NATS message.
    let body = pattern(3 << 20, 3);
    webhook_kept(&nodes[1], &body).await;
    kept_in_cluster(&nodes[2].cluster, "away", 1).await;
    assert!(dirs.iter().all(|d| kept_on_disk(d, "away") == 0));

    // Both nodes that could have kept it go away for good; the client comes back on the
    // third, which hands the request over from JetStream, then deletes it there.
    let mut nodes = nodes;
    let third = nodes.pop().unwrap();
    for n in nodes {
        n.relay.stop().await;
    }
    let mut back = away_client(&third, target.addr, &key);
    back.connected().await;
    receives_kept(&mut back, &body).await;
    kept_in_cluster(&third.cluster, "away", 0).await;
    back.stop().await.unwrap();
    nats.stop().await;
}

/// A request for tunnel "away" sealed to `key`, as a node keeps it: its name (stem) and
/// sealed bytes.
fn sealed_for(key: &twk_protocol::kept::OwnerKey, id: &str, body: &[u8]) -> (String, Vec<u8>) {
    let received_ms = twk_protocol::now_ms();
    let request = twk_protocol::kept::KeptRequest {
        request_id: id.into(),
        received_ms,
        method: "POST".into(),
        path: "/hook?x=1".into(),
        public_url: "http://hooks.test/t/away/hook?x=1".into(),
        remote_addr: "127.0.0.1:9".into(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.to_vec(),
        answered: 503,
    };
    let sealed = key.public().seal(&request).unwrap();
    (format!("{received_ms:013}-{id}"), sealed)
}

/// Another node hands the holding node a request it kept, for the client process it expects
/// there (`expect`, when given): the holding node's answer.
async fn hand_over_from_a_peer(
    holder: &twk_cluster::Peer,
    at: std::net::SocketAddr,
    expect: Option<&str>,
    key: &twk_protocol::kept::OwnerKey,
    id: &str,
    body: &[u8],
) -> http::StatusCode {
    let (stem, sealed) = sealed_for(key, id, body);
    let received = stem.split('-').next().unwrap().to_owned();
    let (kept, at_ms) = (twk_protocol::meta::KEPT, twk_protocol::meta::RECEIVED_AT);
    let mut headers = vec![
        ("x-twk-peer", holder.secret.as_str()),
        (kept.as_str(), id),
        (at_ms.as_str(), received.as_str()),
    ];
    headers.extend(expect.map(|c| ("x-twk-peer-expect-client", c)));
    let r = send(at, "POST", "/_twk/peer/kept/away", &headers, sealed)
        .await
        .unwrap();
    r.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_request_handed_over_for_one_client_process_never_reaches_another() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let (nodes, _dirs) = keeping_nodes(&nats, 2).await;
    let target = FakeTarget::echo().await;
    let key = twk_protocol::kept::OwnerKey::generate();
    let mut client = away_client(&nodes[0], target.addr, &key);
    client.connected().await;
    // What node 1 knows of the holder: node 0, and the client process whose session it is.
    let holder = nodes[1]
        .cluster
        .await_holder("away", Duration::from_secs(10))
        .await
        .expect("node 1 learns who holds the tunnel");
    assert!(
        !holder.client.is_empty(),
        "the holder's record names its client"
    );
    let at = nodes[0].peer;

    // Handed over for another process (the tunnel changed hands since node 1 looked): 409,
    // and the client is not offered it, so its refusal could not be noted under that id.
    // Node 1 may learn the holder before node 0's registry has the session ready (503,
    // "not held here"): asked again until node 0 answers for the session itself.
    let mut status = http::StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = hand_over_from_a_peer(&holder, at, Some("p-other"), &key, "r-1", b"first").await;
        if status != http::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 409);
    // For the process that holds it: delivered, and it is the first the client receives.
    let status =
        hand_over_from_a_peer(&holder, at, Some(&holder.client), &key, "r-2", b"second").await;
    assert_eq!(status, 204, "the client took it");
    receives_kept(&mut client, b"second").await;
    // From a node that does not name a process (an older version): delivered as before.
    let status = hand_over_from_a_peer(&holder, at, None, &key, "r-3", b"third").await;
    assert_eq!(status, 204, "the client took it");
    receives_kept(&mut client, b"third").await;
    client.stop().await.unwrap();
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_for_another_key_is_offered_once_to_a_client_process_not_every_second() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let (nodes, dirs) = keeping_nodes(&nats, 1).await;
    let target = FakeTarget::echo().await;
    let (old_key, new_key) = (
        twk_protocol::kept::OwnerKey::generate(),
        twk_protocol::kept::OwnerKey::generate(),
    );
    // The owner's new machine is connected, and the node's disk holds a request sealed to
    // the old machine's key (kept there while NATS could not take it).
    let mut back = away_client(&nodes[0], target.addr, &new_key);
    back.connected().await;
    let (stem, sealed) = sealed_for(&old_key, "r-old", b"for the old key");
    let dir = dirs[0].path().join("kept").join("away");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{stem}.sealed")), sealed).unwrap();
    // The node's loop over its disk offers it; the client cannot open it.
    let skipped = "twk_relay_kept_skipped_total";
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while nodes[0].metric(skipped).await < 1.0 {
        assert!(std::time::Instant::now() < deadline, "never offered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A request it can open, kept in JetStream and announced: the hand-off that brings it
    // does not offer the refused one again, nor does the loop, which ran meanwhile.
    let (stem, sealed) = sealed_for(&new_key, "r-new", b"for the new key");
    let ttl = Duration::from_secs(600);
    let cluster = &nodes[0].cluster;
    cluster
        .put_kept("away", &stem, &sealed, ttl, 1 << 20)
        .await
        .unwrap();
    cluster.announce_kept("away").await;
    receives_kept(&mut back, b"for the new key").await;
    assert_eq!(nodes[0].metric(skipped).await, 1.0);
    assert_eq!(
        kept_on_disk(&dirs[0], "away"),
        1,
        "it stays for the old key"
    );
    back.stop().await.unwrap();
    // The old machine's client, another process, is offered it and takes it.
    let mut old = away_client(&nodes[0], target.addr, &old_key);
    old.connected().await;
    receives_kept(&mut old, b"for the old key").await;
    old.stop().await.unwrap();
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_while_nats_is_away_it_waits_on_disk_then_moves_to_jetstream() {
    trace_init();
    let Some(mut nats) = Nats::start_or_skip().await else {
        return;
    };
    let (nodes, dirs) = keeping_nodes(&nats, 2).await;
    let target = FakeTarget::echo().await;
    let key = twk_protocol::kept::OwnerKey::generate();
    away_was_here(&nodes, target.addr, &key).await;

    nats.pause().await;
    let body = pattern(100_000, 5);
    webhook_kept(&nodes[1], &body).await;
    let on_disk = dirs.iter().map(|d| kept_on_disk(d, "away")).sum::<usize>();
    assert_eq!(on_disk, 1, "kept on the node's disk while NATS is away");

    nats.resume().await.unwrap();
    kept_in_cluster(&nodes[0].cluster, "away", 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dirs.iter().any(|d| kept_on_disk(d, "away") > 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the disk kept its copy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut back = away_client(&nodes[0], target.addr, &key);
    back.connected().await;
    receives_kept(&mut back, &body).await;
    back.stop().await.unwrap();
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_kept_by_another_node_reaches_a_client_already_connected() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let (nodes, _dirs) = keeping_nodes(&nats, 2).await;
    let target = FakeTarget::echo().await;
    let key = twk_protocol::kept::OwnerKey::generate();
    let mut client = away_client(&nodes[1], target.addr, &key);
    client.connected().await;
    // Node 0 keeps one just as the client connected on node 1 (its table still said
    // offline): stored and announced, node 1 hands it over without a reconnect.
    let body = pattern(10_000, 9);
    let (object, sealed) = sealed_for(&key, "x1y2z3-7", &body);
    nodes[0]
        .cluster
        .put_kept(
            "away",
            &object,
            &sealed,
            Duration::from_secs(3600),
            64 << 20,
        )
        .await
        .unwrap();
    nodes[0].cluster.announce_kept("away").await;
    receives_kept(&mut client, &body).await;
    kept_in_cluster(&nodes[0].cluster, "away", 0).await;
    client.stop().await.unwrap();
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_keeps_a_tunnels_newest_requests_within_its_bound() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let (nodes, _dirs) = keeping_nodes_at_most(&nats, 2, 2).await;
    let target = FakeTarget::echo().await;
    let key = twk_protocol::kept::OwnerKey::generate();
    away_was_here(&nodes, target.addr, &key).await;
    // Three kept through alternate nodes; the bound is two: the oldest goes.
    for i in 0..3 {
        let r = send(
            nodes[i % 2].relay.addr,
            "POST",
            &format!("/t/away/n{i}"),
            &[("host", "hooks.test")],
            format!("body {i}"),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 503, "{}", r.text());
        kept_in_cluster(&nodes[0].cluster, "away", (i + 1).min(2)).await;
    }
    let mut back = away_client(&nodes[1], target.addr, &key);
    back.connected().await;
    let mut paths = Vec::new();
    for _ in 0..2 {
        let ex = back.exchange().await;
        assert!(ex.missed, "{ex:?}");
        paths.push(ex.path);
    }
    assert_eq!(paths, ["/n1", "/n2"], "the two newest, oldest first");
    kept_in_cluster(&nodes[0].cluster, "away", 0).await;
    back.stop().await.unwrap();
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tunnels_kept_bucket_follows_a_changed_keep_ttl_and_bytes() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let node_keeping = |ttl: u64, bytes: u64, dir: &tempfile::TempDir| {
        let mut cfg = relay_config(tokens(&["alice-token"]));
        cfg.hold = Duration::ZERO;
        cfg.keep_dir = Some(dir.path().join("kept"));
        cfg.keep.ttl = Duration::from_secs(ttl);
        cfg.keep.bytes = bytes;
        cfg
    };
    let d0 = tempfile::tempdir().unwrap();
    let first = node_with(&nats, node_keeping(3600, 8 << 20, &d0)).await;
    let target = FakeTarget::echo().await;
    let key = twk_protocol::kept::OwnerKey::generate();
    away_was_here(std::slice::from_ref(&first), target.addr, &key).await;
    webhook_kept(&first, b"{\"n\":1}").await;
    kept_in_cluster(&first.cluster, "away", 1).await;
    let room = |bytes: u64| bytes * 4; // the bucket's room: 4x --keep-bytes
    let bounds = first.cluster.kept_bounds("away").await.unwrap();
    assert_eq!(bounds, Some((Duration::from_secs(3600), room(8 << 20))));

    // The relay comes back with a longer --keep-ttl and a smaller --keep-bytes: the bucket
    // made under the old ones follows at the next request kept, and keeps what it held.
    // Then once more, below NATS's 2-minute duplicate window, which max_age may not undercut.
    let (mut last, mut dirs) = (first, vec![d0]);
    for (n, ttl, bytes) in [(2, 7200, 2 << 20), (3, 60, 1 << 20)] {
        last.relay.stop().await;
        dirs.push(tempfile::tempdir().unwrap());
        let node = node_with(&nats, node_keeping(ttl, bytes, &dirs[dirs.len() - 1])).await;
        node.cluster
            .await_owner_key("away", Duration::from_secs(10))
            .await
            .expect("the owner key is shared");
        webhook_kept(&node, format!("{{\"n\":{n}}}").as_bytes()).await;
        kept_in_cluster(&node.cluster, "away", n).await;
        let bounds = node.cluster.kept_bounds("away").await.unwrap();
        assert_eq!(bounds, Some((Duration::from_secs(ttl), room(bytes))));
        last = node;
    }
    nats.stop().await;
}

/// Readers who never read, on a node that does not hold the tunnel, hold its window on the
/// node that does through the peer connections their answers travel on: those connections
/// are watched and evicted there as public readers are, and a webhook gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_on_another_node_who_hold_the_window_are_evicted_on_the_tunnels_node() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let mut cfg = relay_config(twk_relay::Auth::Open);
    // The stall timer out of the way: eviction is what is tested.
    cfg.send_stall_timeout = Duration::from_secs(3600);
    let entry = node_with(&nats, cfg.clone()).await;
    let holder = node_with(&nats, cfg).await;
    let (_client, mut asked) = big_answers(holder.relay.addr, 64 << 20).await;
    entry
        .cluster
        .await_holder("big", Duration::from_secs(10))
        .await
        .expect("the entry node learns who holds the tunnel");
    let stalled = unread_answers(entry.relay.addr, "/t/big/big", 16).await;
    for _ in 0..16 {
        asked.recv().await.unwrap();
    }
    let evicted = webhooks_until_evicted(entry.relay.addr, "/t/big/hook", holder.metrics, 5).await;
    assert!(
        evicted > 0.0,
        "the holding node evicted none of the peer connections"
    );
    drop(stalled);
}
