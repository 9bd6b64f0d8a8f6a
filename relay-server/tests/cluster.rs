//! Relay nodes as real processes (`twk-relay --cluster`) over a real `nats-server -js`: the
//! node holding a tunnel is SIGKILLed with a request in flight, and the tunnel client moves
//! to another node with its name and public URL; all three nodes restarted one after the
//! other (SIGTERM: the node asks its clients to move first) under steady load lose nothing.
#![allow(clippy::unwrap_used)]

use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use twk_agent::{ConnState, RelayUrl};
use twk_e2e::nats::Nats;
use twk_e2e::*;

const BIN: &str = env!("CARGO_BIN_EXE_twk-relay");

/// A `twk-relay --cluster` process and its public address.
struct NodeProc {
    child: Child,
    addr: SocketAddr,
}

impl NodeProc {
    fn url(&self) -> RelayUrl {
        RelayUrl::parse(&format!("http://{}", self.addr)).unwrap()
    }

    fn kill(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }
}

/// Starts a node on any free port and waits for its two startup lines.
async fn node(nats: &Nats) -> NodeProc {
    node_on(nats, "127.0.0.1:0").await
}

/// Starts a node on `listen` (token `alice-token`) and waits for its two startup lines
/// (public address, cluster membership).
async fn node_on(nats: &Nats, listen: &str) -> NodeProc {
    node_with(nats, listen, None).await
}

/// [`node_on`], with the tokens of `tokens_file` instead of `alice-token`.
async fn node_with(nats: &Nats, listen: &str, tokens_file: Option<&std::path::Path>) -> NodeProc {
    let mut cmd = Command::new(BIN);
    match tokens_file {
        Some(f) => cmd
            .arg("--tokens-file")
            .arg(f)
            .env_remove("TWK_RELAY_TOKENS"),
        None => cmd.env("TWK_RELAY_TOKENS", "alice-token"),
    };
    let mut child = cmd
        .args([
            "--listen",
            listen,
            "--domain",
            "hooks.test",
            "--url-style",
            "path",
            "--no-state-file",
            "--cluster",
            &nats.url,
            "--cluster-lease",
            "3s",
        ])
        .env_remove("TWK_RELAY_CLUSTER")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    let first = next().await;
    let addr = first
        .strip_prefix("listening on ")
        .expect(&first)
        .parse()
        .unwrap();
    let second = next().await;
    assert!(second.starts_with("cluster node n"), "{second}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    NodeProc { child, addr }
}

/// An app that echoes, except `/slow…`, which it reports on `arrived` and never answers.
async fn app() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await?.to_bytes();
                        if path.starts_with("/slow") {
                            let _ = tx.send(path.clone());
                            std::future::pending::<()>().await;
                        }
                        if path.starts_with("/wait") {
                            let _ = tx.send(path.clone());
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                        }
                        Ok::<_, hyper::Error>(Response::new(Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// POSTs `body` to `/t/shop{path}` through `node`.
async fn post(node: SocketAddr, path: &str, body: &'static str) -> anyhow::Result<Reply> {
    send(
        node,
        "POST",
        &format!("/t/shop{path}"),
        &[("host", "hooks.test")],
        body,
    )
    .await
}

/// A client of tunnel `shop` (token `alice-token`) that knows every node, the first first.
fn roaming_agent(nodes: &[NodeProc], app: SocketAddr) -> AgentHandle {
    let mut cfg = twk_agent::AgentConfig::new(
        nodes[0].url(),
        twk_agent::Target::parse(&app.to_string()).unwrap(),
    );
    cfg.fallback_relays = nodes[1..].iter().map(NodeProc::url).collect();
    cfg.token = Some("alice-token".into());
    cfg.name = Some("shop".into());
    spawn_agent(cfg)
}

/// Waits (up to 10 s) until `node` answers 200 for the tunnel: the node's tables follow the
/// cluster's a moment after a claim, and this is a separate process.
async fn until_served(node: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match post(node, "/ping", "ping").await {
            Ok(r) if r.status == 200 => return,
            last => assert!(
                Instant::now() < deadline,
                "{node} never served the tunnel: {:?}",
                last.map(|r| (r.status, r.text()))
            ),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_holding_node_killed_the_client_moves_and_its_url_works_through_every_node() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let mut nodes = vec![node(&nats).await, node(&nats).await, node(&nats).await];
    let (app, mut arrived) = app().await;
    let mut agent = roaming_agent(&nodes, app);
    let (_, url) = agent.connected().await;
    assert_eq!(url, "http://hooks.test/t/shop");
    for n in &nodes {
        until_served(n.addr).await;
    }

    // A request through node 1 is in flight at the app (through node 0) when node 0 dies.
    let entry = nodes[1].addr;
    let in_flight = tokio::spawn(async move { post(entry, "/slow", "wait").await });
    assert_eq!(arrived.recv().await.unwrap(), "/slow");
    let killed = Instant::now();
    nodes[0].kill();
    let r = in_flight.await.unwrap().unwrap();
    let took = killed.elapsed();
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("node holding this tunnel"),
        "{}",
        r.text()
    );
    assert!(took <= Duration::from_secs(1), "502 after {took:?}");

    // The client moves to another node, keeps its name and URL, and the URL works through
    // every node still up.
    agent
        .state(|s| matches!(s, ConnState::Reconnecting { .. }))
        .await;
    let (_, again) = agent.connected().await;
    assert_eq!(again, url);
    for n in &nodes[1..] {
        until_served(n.addr).await;
        let r = post(n.addr, "/after", "moved").await.unwrap();
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "moved"));
    }
    agent.stop().await.unwrap();
    nats.stop().await;
}

/// A port free a moment ago (a restarted node must come back where clients and senders
/// expect it, as behind a load balancer's fixed backend list).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_node_under_load_loses_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = Vec::new();
    for p in ports {
        nodes.push(node_on(&nats, &format!("127.0.0.1:{p}")).await);
    }
    let (app, mut arrived) = app().await;
    let mut agent = roaming_agent(&nodes, app);
    let (_, url) = agent.connected().await;
    for n in &nodes {
        until_served(n.addr).await;
    }

    // Steady load through the nodes that are up (a load balancer takes a node out before it
    // is stopped): each request's body is its number; the app echoes it.
    let up: Arc<[AtomicBool; 3]> = Arc::new([true, true, true].map(AtomicBool::new));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<(u64, u16, String)>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for worker in 0..8usize {
        let (up, stop, answers, next) = (up.clone(), stop.clone(), answers.clone(), next.clone());
        load.push(tokio::spawn(async move {
            let mut turn = worker;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let i = turn % 3;
                if !up[i].load(Ordering::Relaxed) {
                    continue;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                let addr: SocketAddr = format!("127.0.0.1:{}", ports[i]).parse().unwrap();
                let body = n.to_string();
                let r = send(
                    addr,
                    "POST",
                    "/t/shop/load",
                    &[("host", "hooks.test")],
                    body,
                )
                .await
                .unwrap_or_else(|e| panic!("request {n} to node {i} got no answer: {e}"));
                answers
                    .lock()
                    .unwrap()
                    .push((n, r.status.as_u16(), format!("{i} {}", r.text())));
            }
        }));
    }
    let mut slow = Vec::new();
    for i in 0..3 {
        // Take node i out, let a slow request be in flight through another node, stop it
        // (SIGTERM), and bring it back on the same port.
        up[i].store(false, Ordering::Relaxed);
        let entry: SocketAddr = format!("127.0.0.1:{}", ports[(i + 1) % 3]).parse().unwrap();
        let mut in_flight = tokio::spawn(async move {
            send(
                entry,
                "POST",
                "/t/shop/wait",
                &[("host", "hooks.test")],
                "slow",
            )
            .await
        });
        tokio::select! {
            a = arrived.recv() => assert_eq!(a.as_deref(), Some("/wait")),
            r = &mut in_flight => panic!("the slow request never reached the app: {:?}",
                r.unwrap().map(|r| (r.status, r.text()))),
        }
        slow.push(in_flight);
        nodes[i].signal(nix::sys::signal::Signal::SIGTERM);
        let status = tokio::time::timeout(Duration::from_secs(20), nodes[i].child.wait())
            .await
            .expect("the node stops within its grace period")
            .unwrap();
        assert!(status.success(), "node {i}: {status:?}");
        nodes[i] = node_on(&nats, &format!("127.0.0.1:{}", ports[i])).await;
        up[i].store(true, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    // The request in flight while its node stopped is answered by the app, on the old
    // session, after its client moved.
    for (i, s) in slow.into_iter().enumerate() {
        let r = s.await.unwrap().unwrap();
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "slow"),
            "the request in flight while node {i} stopped"
        );
    }
    // The client moved each time it was asked, and its URL never changed.
    let mut moves = 0;
    while let Ok(s) = agent.states.try_recv() {
        match s {
            ConnState::Connected { public_url, .. } => assert_eq!(public_url, url),
            ConnState::Reconnecting { reason, .. } if reason.contains("moving") => moves += 1,
            _ => {}
        }
    }
    assert!(moves >= 1, "the client was never asked to move");

    // Every 2xx is that request's own echo from the app (the relay never answers 2xx by
    // itself); everything else is a 5xx the sender sees.
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let failed: Vec<_> = answers.iter().filter(|(_, s, _)| *s != 200).collect();
    for (n, status, text) in answers.iter() {
        match status {
            200 => assert!(
                text.ends_with(&format!(" {n}")),
                "request {n} got another's answer"
            ),
            500..=599 => {}
            other => panic!("request {n}: {other} {text}"),
        }
    }
    eprintln!(
        "rolling restart: {} requests, {} answered 5xx: {:?}",
        answers.len(),
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
    assert!(answers.len() > 100, "the load ran: {}", answers.len());
    agent.stop().await.unwrap();
    nats.stop().await;
}

/// Runs `twk-relay token ARGS --tokens-file FILE`; returns its stdout (the new token).
async fn token_cmd(args: &[&str], file: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .arg("token")
        .args(args)
        .arg("--tokens-file")
        .arg(file)
        .env_remove("TWK_RELAY_TOKENS")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits (up to 5 s) until `file` mentions `label` (or no longer does, with `present` false);
/// returns how long that took.
async fn until_file(file: &std::path::Path, label: &str, present: bool) -> Duration {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == label))
            == present
        {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{label} never {}: {text}",
            if present { "arrived" } else { "left" }
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn agent_on(node: &NodeProc, token: &str, name: &str, app: SocketAddr) -> AgentHandle {
    let mut cfg = twk_agent::AgentConfig::new(
        node.url(),
        twk_agent::Target::parse(&app.to_string()).unwrap(),
    );
    cfg.token = Some(token.into());
    cfg.name = Some(name.into());
    spawn_agent(cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_added_or_revoked_on_one_node_holds_on_every_node() {
    trace_init();
    let Some(nats) = Nats::start_or_skip().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (file_a, file_b) = (dir.path().join("a-tokens"), dir.path().join("b-tokens"));
    let alice = token_cmd(&["add", "alice"], &file_a).await;
    let carol = token_cmd(&["add", "carol"], &file_b).await;
    let a = node_with(&nats, "127.0.0.1:0", Some(&file_a)).await;
    // Node B joins and takes the cluster's tokens (node A's): its own "carol" is gone.
    let b = node_with(&nats, "127.0.0.1:0", Some(&file_b)).await;
    until_file(&file_b, "alice", true).await;
    until_file(&file_b, "carol", false).await;
    let (app, _arrived) = app().await;
    let err = agent_on(&b, &carol, "c", app)
        .task
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, twk_agent::AgentError::Unauthorized(_)),
        "{err}"
    );

    // Added on node B: node A takes it.
    let mut alice_on_b = agent_on(&b, &alice, "shop", app);
    alice_on_b.connected().await;
    let bob = token_cmd(&["add", "bob"], &file_b).await;
    let took = until_file(&file_a, "bob", true).await;
    eprintln!("token added on node B reached node A's file in {took:?}");
    let mut bob_on_a = agent_on(&a, &bob, "bobs", app);
    bob_on_a.connected().await;

    // Revoked on node A: alice's tunnel on node B is closed, and B refuses her.
    let revoked = Instant::now();
    token_cmd(&["revoke", "alice"], &file_a).await;
    let err = tokio::time::timeout(Duration::from_secs(5), alice_on_b.task)
        .await
        .expect("alice's tunnel on node B is closed")
        .unwrap()
        .unwrap_err();
    eprintln!(
        "token revoked on node A closed its tunnel on node B in {:?}",
        revoked.elapsed()
    );
    assert!(
        matches!(err, twk_agent::AgentError::Unauthorized(_)),
        "{err}"
    );
    assert!(
        revoked.elapsed() < Duration::from_secs(3),
        "revocation took {:?}",
        revoked.elapsed()
    );
    bob_on_a.stop().await.unwrap();
    drop((a, b));
    nats.stop().await;
}
