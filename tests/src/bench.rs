//! What the benchmarks share: where the release binaries are, a keep-alive HTTP/1.1 load
//! generator, and reading a child's first stdout line.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// `TWK_BIN_DIR`, or the workspace's `target/release`.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TWK_BIN_DIR") {
        return PathBuf::from(d);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap().join("target").join("release")
}

/// What one load phase measured.
pub struct Stats {
    pub requests: u64,
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: u64,
}

impl Stats {
    /// Joins load workers, each returning its latencies and error count, into the figures of
    /// the phase that began at `started`.
    pub async fn gather(
        workers: Vec<tokio::task::JoinHandle<(Vec<Duration>, u64)>>,
        started: std::time::Instant,
    ) -> Stats {
        let mut all = Vec::new();
        let mut errors = 0;
        for w in workers {
            let (lat, e) = w.await.unwrap();
            all.extend(lat);
            errors += e;
        }
        let elapsed = started.elapsed();
        all.sort();
        let pct = |p: f64| {
            all.get(((all.len().max(1) - 1) as f64 * p) as usize)
                .copied()
                .unwrap_or_default()
        };
        Stats {
            requests: all.len() as u64,
            rps: all.len() as f64 / elapsed.as_secs_f64(),
            p50: pct(0.50),
            p99: pct(0.99),
            errors,
        }
    }
}

/// Sends POSTs of `body` to `path` on `conns` keep-alive connections for `secs` seconds.
pub async fn drive(addr: SocketAddr, path: &str, conns: usize, secs: u64, body: Bytes) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let path = path.to_string();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let req = http::Request::post(path.as_str())
                    .header("host", addr.to_string())
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let t0 = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == 200;
                        let _ = resp.into_body().collect().await;
                        if ok {
                            lat.push(t0.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    Stats::gather(tasks, started).await
}

/// The child's first stdout line (within 20 s) and the rest of its lines.
pub async fn first_line(
    child: &mut Child,
) -> (
    String,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("no first line within 20 s")
        .unwrap()
        .expect("process exited");
    (line, lines)
}

/// Starts `twk-relay` on a free loopback port with the bench's token and no state file,
/// path-style URLs on `bench.test`, plus `extra` arguments; returns it, its address and its
/// further stdout lines.
pub async fn start_relay(
    bin: &std::path::Path,
    extra: &[&str],
) -> (Child, SocketAddr, tokio::io::Lines<BufReader<ChildStdout>>) {
    let mut relay = Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "bench.test",
            "--url-style",
            "path",
            // The bench's name and token must not linger in the user's own relay state.
            "--no-state-file",
        ])
        .args(extra)
        .env("TWK_RELAY_TOKENS", "bench-token")
        .env("TWK_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("twk-relay starts");
    let (line, lines) = first_line(&mut relay).await;
    let addr = line.strip_prefix("listening on ").unwrap().parse().unwrap();
    (relay, addr, lines)
}

/// Starts the release `twk-tunnel` (`bin`) for tunnel `bench` on `relay` to `target`, its data
/// in `data`, and waits for its `ready` line; returns it and its further NDJSON lines.
pub async fn start_tunnel(
    bin: &std::path::Path,
    relay: SocketAddr,
    target: SocketAddr,
    data: &std::path::Path,
    extra: &[&str],
) -> (Child, tokio::io::Lines<BufReader<ChildStdout>>) {
    let mut tunnel = Command::new(bin)
        .args([
            "--relay",
            &format!("http://{relay}"),
            "--name",
            "bench",
            "--json",
        ])
        .args(extra)
        .arg(target.to_string())
        .env("TWK_DATA_DIR", data)
        .env("XDG_CONFIG_HOME", data)
        .env("TWK_TOKEN", "bench-token")
        .env("TWK_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("twk-tunnel starts");
    let (ready, lines) = first_line(&mut tunnel).await;
    assert!(ready.contains("\"ready\""), "{ready}");
    (tunnel, lines)
}
