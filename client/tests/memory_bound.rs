//! Memory stays bounded under large concurrent bodies with capture on, measured on the real
//! `twk-tunnel` process (its peak RSS, `VmHWM`), not inferred from settings.
//!
//! Not a timed test: it asserts what the client holds, whatever the machine's speed.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A `twk-tunnel --json` process with capture on, forwarding tunnel `name` to `target`;
/// its stdout is read to the end (a consumer that keeps up) and its exchange lines counted.
async fn tunnel(
    relay: &RelayHandle,
    target: std::net::SocketAddr,
    name: &str,
    home: &tempfile::TempDir,
) -> Tunnel {
    let mut child = Command::new(BIN)
        .args(["--relay", &relay.url(false), "--name", name, "--json"])
        .arg(target.to_string())
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
    let seen = Arc::new(AtomicUsize::new(0));
    let printed_one = Arc::new(tokio::sync::Notify::new());
    let (counted, notify) = (seen.clone(), printed_one.clone());
    let printed = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("\"event\":\"exchange\"") {
                counted.fetch_add(1, Ordering::Relaxed);
                notify.notify_one();
            }
        }
        counted.load(Ordering::Relaxed)
    });
    Tunnel {
        child,
        pid,
        seen,
        printed_one,
        printed,
    }
}

struct Tunnel {
    child: tokio::process::Child,
    pid: u32,
    /// Exchange lines printed so far.
    seen: Arc<AtomicUsize>,
    /// Woken at each exchange line.
    printed_one: Arc<tokio::sync::Notify>,
    printed: tokio::task::JoinHandle<usize>,
}

/// Stops the client and returns how many exchanges it printed.
async fn stop(t: Tunnel) -> usize {
    let Tunnel {
        mut child,
        pid,
        printed,
        ..
    } = t;
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
    printed.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_8_mib_bodies_with_capture_keep_the_client_under_its_bound() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let target = FakeTarget::echo().await;
    let home = tempfile::tempdir().unwrap();
    let t = tunnel(&relay, target.addr, "big", &home).await;
    let pid = t.pid;
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
    assert_eq!(stop(t).await, REQUESTS, "an exchange line is missing");
}

/// Bodies that cost the analysis far more memory than their size: 1 MiB of JSON (its
/// values, parsed, are ~20 times larger), some signed as Stripe events (named from the
/// parsed body), and 1 MiB forms of a quarter million fields claiming to be Twilio's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_json_and_form_bodies_being_analysed_keep_the_client_under_its_bound() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let target = FakeTarget::echo().await;
    let home = tempfile::tempdir().unwrap();
    let t = tunnel(&relay, target.addr, "parse", &home).await;
    let mut json = String::from("[");
    while json.len() < 1 << 20 {
        json.push_str(r#"{"id":"evt_123","n":42,"tags":["a","b"]},"#);
    }
    json.push_str("{}]");
    let stripe = format!(
        r#"{{"id":"evt_1","object":"event","type":"x","data":{}}}"#,
        json
    );
    let form = format!("AccountSid=AC1{}", "&a=1".repeat((1 << 20) / 4));
    const EACH: usize = 16;
    let sends: Vec<_> = (0..2 * EACH)
        .map(|i| {
            let addr = relay.addr;
            let (body, headers): (String, &[(&str, &str)]) = if i % 4 == 0 {
                (json.clone(), &[("content-type", "application/json")])
            } else if i % 4 == 2 {
                // Named as a Stripe event: its details come from the parsed body.
                let signed = &[
                    ("content-type", "application/json"),
                    ("stripe-signature", "t=1,v1=00"),
                ];
                (stripe.clone(), signed)
            } else {
                (
                    form.clone(),
                    &[
                        ("content-type", "application/x-www-form-urlencoded"),
                        ("x-twilio-signature", "c2lnbmF0dXJl"),
                    ],
                )
            };
            tokio::spawn(async move {
                send(addr, "POST", &format!("/t/parse/hook/{i}"), headers, body)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for s in sends {
        let r = s.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Every exchange is analysed and printed before the peak is read.
    tokio::time::timeout(Duration::from_secs(120), async {
        while t.seen.load(Ordering::Relaxed) < 2 * EACH {
            t.printed_one.notified().await;
        }
    })
    .await
    .expect("exchanges not all printed");
    let peak = kib(t.pid, "VmHWM:");
    assert_eq!(stop(t).await, 2 * EACH, "an exchange line is missing");
    println!(
        "client peak RSS analysing large bodies: {} MiB",
        peak / 1024
    );
    assert!(
        peak < LIMIT_KIB,
        "client peak RSS {} MiB over {} MiB analysing {} large JSON and form bodies",
        peak / 1024,
        LIMIT_KIB / 1024,
        2 * EACH
    );
}

/// What an idle tunnel holds besides its code: anonymous memory (`RssAnon`), which neither
/// the binary's size nor the page cache moves. An output queue allocated whole up front once
/// took 3.5 MiB of it (the idle goal is 16 MiB in all, docs/performance.md).
const IDLE_ANON_LIMIT_KIB: u64 = 6 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_holds_little_anonymous_memory() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let target = FakeTarget::echo().await;
    let home = tempfile::tempdir().unwrap();
    let t = tunnel(&relay, target.addr, "idle", &home).await;
    // One exchange through every part (forwarding, capture, output), as a tunnel that has
    // seen a webhook.
    let r = send(
        relay.addr,
        "POST",
        "/t/idle/hook",
        &[],
        Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::timeout(Duration::from_secs(20), t.printed_one.notified())
        .await
        .expect("the exchange line was printed");
    let anon = kib(t.pid, "RssAnon:");
    println!(
        "idle client: RssAnon {anon} KiB, VmRSS {} KiB",
        kib(t.pid, "VmRSS:")
    );
    assert!(
        anon < IDLE_ANON_LIMIT_KIB,
        "an idle client holds {anon} KiB of anonymous memory (limit {IDLE_ANON_LIMIT_KIB} KiB)"
    );
    assert_eq!(stop(t).await, 1);
}
