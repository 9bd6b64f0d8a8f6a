//! The `twk-relay` binary under a flood aimed at an offline tunnel whose requests are kept
//! (issue 16): every sender gets 503 + Retry-After, what is kept stays within the per-tunnel
//! bounds on disk, and the relay's peak memory (VmHWM, measured) stays flat: bodies are read
//! within a bounded room, never queued.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use twk_e2e::*;

const BIN: &str = env!("CARGO_BIN_EXE_twk-relay");

fn dir_bytes(dir: &std::path::Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        n += 1;
        bytes += e.metadata().map_or(0, |m| m.len());
    }
    (n, bytes)
}

/// The relay, with `--keep-bytes keep_bytes`, its pid, address and stdout, and the tunnel
/// `flooded` that connected once (so its owner's key is known) and went away.
async fn relay_with_an_offline_tunnel(
    dir: &std::path::Path,
    keep_bytes: &str,
) -> (
    tokio::process::Child,
    u32,
    std::net::SocketAddr,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    trace_init();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "relay.test",
            "--url-style",
            "path",
            "--hold",
            "0s",
            "--keep-max",
            "50",
            "--keep-bytes",
            keep_bytes,
            "--tunnel-rate",
            "0",
            "--max-conns-per-ip",
            "0",
        ])
        .arg("--state-file")
        .arg(dir.join("names.json"))
        .env("TWK_RELAY_TOKENS", "flood-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let addr: std::net::SocketAddr = first
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();

    // The owner connects once (its key is now known), then goes away.
    let app = FakeTarget::echo().await;
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{addr}")).unwrap(),
        twk_agent::Target::parse(&app.addr.to_string()).unwrap(),
    );
    cfg.token = Some("flood-token".into());
    cfg.name = Some("flooded".into());
    cfg.owner_key = Some(twk_protocol::kept::OwnerKey::generate());
    let mut agent = spawn_agent(cfg);
    agent.connected().await;
    agent.stop().await.unwrap();
    (child, pid, addr, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_for_an_offline_tunnel_is_kept_within_bounds_and_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pid, addr, lines) = relay_with_an_offline_tunnel(dir.path(), "4194304").await;
    let body = vec![b'z'; 256 * 1024];
    // Warm up (allocator, first keeps), then measure the peak across the flood.
    for _ in 0..8 {
        let r = send(addr, "POST", "/t/flooded/x", &[], body.clone())
            .await
            .unwrap();
        assert_eq!(r.status, 503);
    }
    let before = twk_e2e::procfs::status_kib(pid, "VmHWM:").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let body = body.clone();
        tasks.spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..16 {
                let r = send(addr, "POST", "/t/flooded/x", &[], body.clone())
                    .await
                    .unwrap();
                codes.push(r.status);
            }
            codes
        });
    }
    let mut answered = 0;
    while let Some(codes) = tasks.join_next().await {
        for c in codes.unwrap() {
            assert_eq!(c, 503, "never a false 2xx");
            answered += 1;
        }
    }
    assert_eq!(answered, 512);
    let after = twk_e2e::procfs::status_kib(pid, "VmHWM:").unwrap();
    let (files, bytes) = dir_bytes(&dir.path().join("kept/flooded"));
    assert!(files <= 50, "{files} files kept");
    assert!(bytes <= 4 * 1024 * 1024, "{bytes} bytes kept");
    // 512 × 256 KiB = 128 MiB went through; at most 8 MiB of bodies are read or wait to be
    // sealed at once, and 2 of them are sealed (with their copies).
    let grew = after.saturating_sub(before);
    eprintln!(
        "relay VmHWM {before} KiB → {after} KiB (+{grew} KiB) over 128 MiB of offline requests"
    );
    assert!(grew < 48 * 1024, "relay peak grew by {grew} KiB");
    drop(lines);
    let _ = child.kill().await;
}

/// Bodies no sealed record within `--keep-bytes` could hold are not read to be kept: 8
/// senders of 25 MB once took the relay to 1 GB to keep nothing. Declared too large, they
/// are not read at all; chunked, no more is read than could be kept. One that fits is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_too_large_to_keep_are_not_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 4 MiB sealed holds a body of ~3 MiB.
    let (mut child, pid, addr, lines) = relay_with_an_offline_tunnel(dir.path(), "4194304").await;
    let kept = || dir_bytes(&dir.path().join("kept/flooded")).0;
    let r = send(addr, "POST", "/t/flooded/fits", &[], vec![b'k'; 2 << 20])
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(kept(), 1, "a 2 MiB body is kept");
    let before = twk_e2e::procfs::status_kib(pid, "VmHWM:").unwrap();
    let big = bytes::Bytes::from(vec![b'z'; 20 << 20]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let big = big.clone();
        tasks.spawn(async move {
            let chunked: &[(&str, &str)] = &[("transfer-encoding", "chunked")];
            let headers = if i % 2 == 0 { chunked } else { &[] };
            send(addr, "POST", "/t/flooded/big", headers, big)
                .await
                .map(|r| r.status)
        });
    }
    while let Some(r) = tasks.join_next().await {
        // The relay may stop reading and close: either way nothing is a false 2xx.
        if let Ok(status) = r.unwrap() {
            assert_eq!(status, 503);
        }
    }
    let after = twk_e2e::procfs::status_kib(pid, "VmHWM:").unwrap();
    assert_eq!(kept(), 1, "nothing too large was kept");
    let grew = after.saturating_sub(before);
    eprintln!("relay VmHWM {before} KiB → {after} KiB (+{grew} KiB) over 16 × 20 MiB");
    // At most 8 MiB of room for bodies being read, none past the 3 MiB that can be kept.
    assert!(grew < 64 * 1024, "relay peak grew by {grew} KiB");
    drop(lines);
    let _ = child.kill().await;
}
