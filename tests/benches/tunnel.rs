//! Tunnel throughput and latency against a direct request, in one run.
//!
//! Starts a local HTTP server, the real `twk-relay` and `twk-tunnel` binaries (release build),
//! then drives the server directly and through the tunnel at 1, 16 and 64 concurrent
//! keep-alive connections. Prints req/s, p50, p99, the tunnel/direct ratio, the CPU time the
//! relay and client burnt per tunnelled request, and the RSS of both processes: idle after one
//! request, and at their peak.
//!
//! Run: `cargo build --release -p twk-relay-server -p twk-tunnel && cargo bench -p twk-e2e --bench tunnel`
//! Env: `TWK_BENCH_SECS` (seconds per phase, default 3), `TWK_BIN_DIR` (default target/release),
//! `TWK_BENCH_BODY` (request body bytes, default 1024).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::Full;
use twk_e2e::bench::{bin_dir, drive, start_relay, start_tunnel};
use twk_e2e::procfs::{clk_tck, context_switches, cpu_ticks, status_kib};

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("TWK_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let body_len: usize = std::env::var("TWK_BENCH_BODY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = bin_dir();
    let relay_bin = dir.join("twk-relay");
    let tunnel_bin = dir.join("twk-tunnel");
    if !relay_bin.exists() || !tunnel_bin.exists() {
        eprintln!(
            "benchmark needs release binaries in {}: run `cargo build --release -p twk-relay-server -p twk-tunnel` first",
            dir.display()
        );
        std::process::exit(2);
    }
    // The local target: answers 200 with a small JSON body.
    let target = twk_e2e::FakeTarget::with(|_| {
        http::Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")))
    })
    .await;
    let (mut relay, relay_addr, _relay_lines) = start_relay(&relay_bin, &[]).await;
    // Captures go to a private directory (recording is on, as for a user, unless
    // TWK_BENCH_NO_CAPTURE=1).
    let data = tempfile::tempdir().unwrap();
    let no_capture = std::env::var("TWK_BENCH_NO_CAPTURE").is_ok_and(|v| v == "1");
    let extra: &[&str] = if no_capture { &["--no-capture"] } else { &[] };
    let (mut tunnel, mut lines) =
        start_tunnel(&tunnel_bin, relay_addr, target.addr, data.path(), extra).await;
    // Drain the per-exchange NDJSON lines, as a consumer would.
    let drained = tokio::spawn(async move {
        let mut n = 0u64;
        while let Ok(Some(_)) = lines.next_line().await {
            n += 1;
        }
        n
    });

    let body = Bytes::from(vec![b'x'; body_len]);
    print_idle_rss(relay_addr, &relay, &tunnel).await;
    println!(
        "twk tunnel benchmark: {secs} s per phase, POST with a {body_len}-byte body, keep-alive connections, capture {}",
        if no_capture { "off" } else { "on (SQLite)" }
    );
    println!(
        "{:>5}  {:>12} {:>9} {:>9}  {:>12} {:>9} {:>9}  {:>9} {:>10} {:>10} {:>8}",
        "conns",
        "direct rps",
        "p50",
        "p99",
        "tunnel rps",
        "p50",
        "p99",
        "rps ratio",
        "cpu us/req",
        "csw/req",
        "errors"
    );
    let pids: Vec<u32> = [relay.id(), tunnel.id()].into_iter().flatten().collect();
    let ticks = || pids.iter().filter_map(|&p| cpu_ticks(p)).sum::<u64>();
    // Sleeps and wake-ups of the tunnel's threads: the relay's workers waking each other
    // were 18 % of its samples at c16 (docs/performance.md, twelfth round).
    let switches = || {
        pids.iter()
            .filter_map(|&p| context_switches(p))
            .sum::<u64>()
    };
    let tck = clk_tck();
    for conns in [1usize, 16, 64] {
        let d = drive(target.addr, "/hook", conns, secs, body.clone()).await;
        let (before, csw_before) = (ticks(), switches());
        let t = drive(relay_addr, "/t/bench/hook", conns, secs, body.clone()).await;
        let per_req = |n: u64| n as f64 / t.requests.max(1) as f64;
        let cpu_us = per_req(ticks() - before) * 1e6 / tck;
        let csw = per_req(switches().saturating_sub(csw_before));
        println!(
            "{:>5}  {:>12.0} {:>9.2?} {:>9.2?}  {:>12.0} {:>9.2?} {:>9.2?}  {:>9.3} {:>10.1} {:>10.2} {:>8}",
            conns,
            d.rps,
            d.p50,
            d.p99,
            t.rps,
            t.p50,
            t.p99,
            t.rps / d.rps,
            cpu_us,
            csw,
            d.errors + t.errors
        );
    }
    println!(
        "peak RSS: relay {} MiB, client {} MiB",
        mib(&relay, "VmHWM:"),
        mib(&tunnel, "VmHWM:")
    );
    let _ = tunnel.start_kill();
    let _ = tunnel.wait().await;
    let lines = drained.await.unwrap_or(0);
    println!("client printed {lines} exchange lines");
    let _ = relay.start_kill();
}

/// What both processes hold once one request has passed and they idle (issue 14's goals:
/// relay 8 MiB, client 16), mostly their code as mapped (docs/performance.md, thirteenth
/// round).
async fn print_idle_rss(
    relay_addr: std::net::SocketAddr,
    relay: &tokio::process::Child,
    tunnel: &tokio::process::Child,
) {
    let r = twk_e2e::send(relay_addr, "POST", "/t/bench/hook", &[], "{}").await;
    assert_eq!(
        r.map(|r| r.status.as_u16()).ok(),
        Some(200),
        "one request through"
    );
    // Settled as peers.sh lets it (one second), not a synchronisation.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    println!(
        "idle RSS after one request: relay {} MiB, client {} MiB",
        mib(relay, "VmRSS:"),
        mib(tunnel, "VmRSS:")
    );
}

/// A process's `/proc/<pid>/status` memory field (`VmRSS:`, `VmHWM:`) in MiB, "?" once gone.
fn mib(process: &tokio::process::Child, field: &str) -> String {
    process
        .id()
        .and_then(|p| status_kib(p, field))
        .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}
