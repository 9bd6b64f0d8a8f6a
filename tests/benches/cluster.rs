//! Same-node against cross-node requests in a relay cluster, and what a tunnel and an idle
//! connection cost a node, in one run.
//!
//! Starts `nats-server -js`, two `twk-relay --cluster` nodes (release build) and one
//! `twk-tunnel` connected to node A, then drives POSTs through node A (same node) and node B
//! (sent on to A over the peer listener) at 1, 16 and 64 keep-alive connections. Prints
//! req/s, p50, p99 and the CPU time of each process per request. Then opens idle tunnels
//! and idle public connections to node B and prints its RSS per tunnel and per connection.
//!
//! Run: `cargo build --release -p twk-relay-server -p twk-tunnel && cargo bench -p twk-e2e --bench cluster`
//! Env: `TWK_BENCH_SECS` (seconds per phase, default 3), `TWK_BIN_DIR`, `TWK_BENCH_TUNNELS`
//! (idle tunnels, default 200), `TWK_BENCH_IDLE` (idle connections, default 1000).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::Full;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::process::Child;
use twk_e2e::bench::{bin_dir, drive, start_relay, start_tunnel};
use twk_e2e::nats::Nats;
use twk_e2e::procfs::{clk_tck, cpu_ticks, status_kib};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A node and its public address (its other stdout lines are drained).
async fn node(bin: &std::path::Path, nats: &Nats) -> (Child, SocketAddr) {
    let extra = ["--max-tunnels-per-token", "0", "--cluster", &nats.url];
    let (child, addr, mut rest) = start_relay(bin, &extra).await;
    let member = rest.next_line().await.unwrap().unwrap();
    assert!(member.starts_with("cluster node"), "{member}");
    tokio::spawn(async move { while let Ok(Some(_)) = rest.next_line().await {} });
    (child, addr)
}

fn mib(pid: Option<u32>, field: &str) -> f64 {
    pid.and_then(|p| status_kib(p, field)).unwrap_or(0) as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let secs = env_or("TWK_BENCH_SECS", 3);
    let dir = bin_dir();
    let (relay_bin, tunnel_bin) = (dir.join("twk-relay"), dir.join("twk-tunnel"));
    if !relay_bin.exists() || !tunnel_bin.exists() {
        eprintln!(
            "benchmark needs release binaries in {}: run `cargo build --release -p twk-relay-server -p twk-tunnel` first",
            dir.display()
        );
        std::process::exit(2);
    }
    let Ok(nats) = Nats::start().await else {
        eprintln!("benchmark needs nats-server (apt-get install nats-server)");
        std::process::exit(2);
    };
    let target = twk_e2e::FakeTarget::with(|_| {
        http::Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")))
    })
    .await;
    let (a, a_addr) = node(&relay_bin, &nats).await;
    let (b, b_addr) = node(&relay_bin, &nats).await;
    let data = tempfile::tempdir().unwrap();
    let (tunnel, mut lines) = start_tunnel(
        &tunnel_bin,
        a_addr,
        target.addr,
        data.path(),
        &["--no-capture"],
    )
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // Node B must know where the tunnel is before its phase.
    let probe = drive(b_addr, "/t/bench/warm", 1, 1, Bytes::from_static(b"{}")).await;
    assert!(probe.requests > 0, "node B never reached the tunnel");

    let body = Bytes::from(vec![b'x'; 1024]);
    println!(
        "twk cluster benchmark: {secs} s per phase, POST 1 KiB, keep-alive, capture off; \
         tunnel held by node A"
    );
    println!(
        "{:>5}  {:<10} {:>9} {:>9} {:>9}  {:>8} {:>8} {:>8} {:>8}  {:>6}",
        "conns", "via", "rps", "p50", "p99", "A us/req", "B us/req", "client", "total", "errors"
    );
    let tck = clk_tck();
    let procs = [a.id(), b.id(), tunnel.id()];
    for conns in [1usize, 16, 64] {
        for (via, addr) in [("same node", a_addr), ("cross node", b_addr)] {
            let before: Vec<u64> = procs
                .iter()
                .map(|p| p.and_then(cpu_ticks).unwrap_or(0))
                .collect();
            let s = drive(addr, "/t/bench/hook", conns, secs, body.clone()).await;
            let us: Vec<f64> = procs
                .iter()
                .zip(&before)
                .map(|(p, b0)| {
                    let t = p.and_then(cpu_ticks).unwrap_or(0).saturating_sub(*b0);
                    t as f64 * 1e6 / tck / s.requests.max(1) as f64
                })
                .collect();
            println!(
                "{:>5}  {:<10} {:>9.0} {:>9.2?} {:>9.2?}  {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {:>6}",
                conns,
                via,
                s.rps,
                s.p50,
                s.p99,
                us[0],
                us[1],
                us[2],
                us.iter().sum::<f64>(),
                s.errors
            );
        }
    }
    idle_costs(b_addr, b.id()).await;
    println!(
        "peak RSS: node A {:.1} MiB, node B {:.1} MiB, client {:.1} MiB",
        mib(a.id(), "VmHWM:"),
        mib(b.id(), "VmHWM:"),
        mib(tunnel.id(), "VmHWM:")
    );
    drop((a, b, tunnel));
    nats.stop().await;
}

/// Node B's resident memory per idle tunnel (in-process agents, each its own websocket and
/// HTTP/2 session and its cluster lease) and per idle public connection.
async fn idle_costs(b_addr: SocketAddr, b_pid: Option<u32>) {
    let tunnels = env_or("TWK_BENCH_TUNNELS", 200) as usize;
    let idle = env_or("TWK_BENCH_IDLE", 1000) as usize;
    let rss = || mib(b_pid, "VmRSS:");
    let base = rss();
    let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut agents = Vec::new();
    for i in 0..tunnels {
        let mut cfg = twk_agent::AgentConfig::new(
            twk_agent::RelayUrl::parse(&format!("http://{b_addr}")).unwrap(),
            twk_agent::Target::parse(&target.to_string()).unwrap(),
        );
        cfg.token = Some("bench-token".into());
        cfg.name = Some(format!("idle-{i}"));
        agents.push(twk_e2e::spawn_agent(cfg));
    }
    for a in &mut agents {
        a.connected().await;
    }
    let with_tunnels = rss();
    let mut conns = Vec::new();
    for _ in 0..idle {
        conns.push(tokio::net::TcpStream::connect(b_addr).await.unwrap());
    }
    // Let the node accept them all (each waits for a request head).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_conns = rss();
    println!(
        "node B RSS: {base:.1} MiB idle; +{tunnels} tunnels {with_tunnels:.1} MiB ({:.1} KiB each); \
         +{idle} idle connections {with_conns:.1} MiB ({:.1} KiB each)",
        (with_tunnels - base) * 1024.0 / tunnels.max(1) as f64,
        (with_conns - with_tunnels) * 1024.0 / idle.max(1) as f64
    );
    drop(conns);
    for a in agents {
        let _ = a.stop().await;
    }
}
