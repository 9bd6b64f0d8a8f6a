//! Memory stays bounded under large concurrent bodies with capture on, measured on the real
//! `twk-tunnel` process (its peak RSS, `VmHWM`), not inferred from settings.
//!
//! Not a timed test: it asserts what the client holds, whatever the machine's speed.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use twk_e2e::*;

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");

/// Concurrent requests, and each one's body (echoed back by the app: as much again out).
const REQUESTS: usize = 64;
const BODY: usize = 8 * 1024 * 1024;

/// The goal is 64 MiB (docs/performance.md); the margin covers a debug build's larger
/// binary and allocator slack. With hyper's default read buffers and a 16 MiB HTTP/2 window
/// (and the capture already bounded) this run peaked at 134 MiB.
const LIMIT_KIB: u64 = 96 * 1024;

fn kib(pid: u32, field: &str) -> u64 {
    twk_e2e::procfs::status_kib(pid, field).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_8_mib_bodies_with_capture_keep_the_client_under_its_bound() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let target = FakeTarget::echo().await;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--relay", &relay.url(false), "--name", "big", "--json"])
        .arg(target.addr.to_string())
        .env("TWK_TOKEN", "tok")
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("TWK_DATA_DIR")
        .env_remove("TWK_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(ready.contains("\"ready\""), "{ready}");
    // Every line is read (a consumer that keeps up), and the exchanges counted.
    let printed = tokio::spawn(async move {
        let mut n = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            n += usize::from(line.contains("\"event\":\"exchange\""));
        }
        n
    });
    let idle = kib(pid, "VmRSS:");

    let body = Bytes::from((0..BODY).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let sends: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let body = body.clone();
            let addr = relay.addr;
            tokio::spawn(async move {
                let path = format!("/t/big/upload/{i}");
                send(addr, "POST", &path, &[], body).await.unwrap()
            })
        })
        .collect();
    for s in sends {
        let r = s.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, body, "a body was not forwarded intact");
    }
    let peak = kib(pid, "VmHWM:");
    println!(
        "client RSS: idle {} MiB, peak {} MiB",
        idle / 1024,
        peak / 1024
    );
    assert!(
        peak < LIMIT_KIB,
        "client peak RSS {} MiB over {} MiB carrying {REQUESTS} x {} MiB",
        peak / 1024,
        LIMIT_KIB / 1024,
        BODY >> 20
    );

    // Nothing was lost to the bound: every exchange was recorded (bodies shed, not rows).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let exchanges = printed.await.unwrap();
    assert_eq!(exchanges, REQUESTS, "an exchange line is missing");
}
