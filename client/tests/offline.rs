//! Never miss a webhook (issue 16), with the real `twk-tunnel` binary killed (SIGKILL) and
//! restarted in front of an in-process relay:
//!
//! - within the hold, the sender's request completes with the app's answer;
//! - offline past the hold, senders get 503 and the restarted client records every request,
//!   byte-identical, as missed (`log --missed --json`);
//! - a hand-off repeated after the client died between recording and acknowledging (the
//!   relay still has the request) is not recorded twice;
//! - `--deliver-missed` replays each once, its verdict checked with twk's test secrets as
//!   they are at delivery (a relay restarted around the running client hands them over);
//! - a request the relay refuses itself (over the tunnel's rate) is in the tunnel's `--json`
//!   output and its log (`log --refused`), never at the app;
//! - an `owner.key` that holds no key is reported and left as it is, and forwarding goes on.
#![allow(clippy::unwrap_used)]

#[path = "support/ndjson.rs"]
mod ndjson;

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twk_e2e::*;

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");

struct Tunnel {
    child: Child,
    /// Its `--json` lines after `ready`.
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Tunnel {
    /// Its next line that `pick` accepts.
    async fn line_where(&mut self, pick: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.lines.recv())
                .await
                .expect("a line within 60 s")
                .expect("the tunnel's output");
            let v: Value = serde_json::from_str(&line).unwrap();
            if pick(&v) {
                return v;
            }
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `twk-tunnel` against `relay` as token `t`, name `away`, data under `home`, its `--json`
/// lines on a pipe; no setting from the environment running the tests.
fn command(home: &Path, relay: &RelayHandle, app: std::net::SocketAddr) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--relay", &relay.url(false), "--name", "away", "--json"])
        .arg(app.to_string())
        .env("TWK_TOKEN", "t")
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env_remove("TWK_DATA_DIR")
        .env_remove("TWK_RELAY")
        .env_remove("TWK_NAME")
        .env_remove("TWK_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    c
}

/// Starts `twk-tunnel` ([`command`]); returns once it printed `ready`.
fn tunnel(home: &Path, relay: &RelayHandle, app: std::net::SocketAddr) -> Tunnel {
    tunnel_with(home, relay, app, &[])
}

fn tunnel_with(
    home: &Path,
    relay: &RelayHandle,
    app: std::net::SocketAddr,
    extra: &[&str],
) -> Tunnel {
    let mut c = command(home, relay, app);
    c.args(extra).stderr(Stdio::null());
    let (child, lines) = spawn_ready(c);
    // Keep reading: a full pipe would stall the tunnel's printer.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Tunnel { child, lines: rx }
}

/// Spawns `c` and waits for its `ready` line: the child, and the rest of its stdout.
fn spawn_ready(mut c: Command) -> (Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.contains("\"ready\""), "{ready}");
    (child, lines)
}

/// Kills the tunnel (SIGKILL: no goodbye) and waits until the relay has seen it go.
async fn kill(t: Tunnel, relay: &RelayHandle) {
    drop(t);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = send(relay.addr, "GET", "/_twk/health", &[], "")
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&h.text()).unwrap();
        if v["tunnels"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never saw the client go"
        );
        tokio::task::yield_now().await;
    }
}

fn relay_cfg(dir: &Path, hold: Duration) -> twk_relay::RelayConfig {
    let mut cfg = relay_config(tokens(&["t"]));
    cfg.health_detail = true;
    cfg.hold = hold;
    cfg.state_file = Some(dir.join("names.json"));
    cfg.keep_dir = Some(dir.join("kept"));
    cfg
}

fn kept_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("kept/away"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The kept files and their bytes, to put back later: a hand-off repeated as if the client
/// had died after recording but before acknowledging.
fn kept_copies(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    kept_files(dir)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Puts back what [`kept_copies`] took.
fn restore(copies: &[(PathBuf, Vec<u8>)]) {
    for (p, bytes) in copies {
        std::fs::write(p, bytes).unwrap();
    }
}

async fn until_taken(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kept_files(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the client never took the kept requests"
        );
        tokio::task::yield_now().await;
    }
}

fn missed(home: &Path) -> Vec<Value> {
    log(home, &["--missed"])
}

fn log(home: &Path, filter: &[&str]) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["log", "--json", "--limit", "0"])
        .args(filter)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("TWK_DATA_DIR")
        .env_remove("TWK_CONFIG")
        .output()
        .unwrap();
    ndjson::lines(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_and_restarted_within_the_hold_answers_the_waiting_sender() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let relay = spawn_relay(relay_cfg(dir.path(), Duration::from_secs(5))).await;
    let mut app = FakeTarget::echo().await;
    let t = tunnel(home.path(), &relay, app.addr);
    kill(t, &relay).await;
    let addr = relay.addr;
    let waiting =
        tokio::spawn(
            async move { send(addr, "POST", "/t/away/hook", &[], "while restarting").await },
        );
    let _back = tunnel(home.path(), &relay, app.addr);
    let r = waiting.await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(&app.next().await.body[..], b"while restarting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_arrived_while_offline_is_recorded_as_missed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let relay = spawn_relay(relay_cfg(dir.path(), Duration::ZERO)).await;
    let app = FakeTarget::echo().await;
    let t = tunnel(home.path(), &relay, app.addr);
    kill(t, &relay).await;
    let bodies = [b"{\"a\":1}".to_vec(), vec![0u8, 159, 146, 150, b'x']];
    for (i, b) in bodies.iter().enumerate() {
        let r = send(
            relay.addr,
            "POST",
            &format!("/t/away/cb/{i}"),
            &[],
            b.clone(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 503);
    }
    // What the relay holds now, to hand over again as if the client had died after recording
    // but before acknowledging.
    let copies = kept_copies(dir.path());
    assert_eq!(copies.len(), 2);

    let back = tunnel(home.path(), &relay, app.addr);
    until_taken(dir.path()).await;
    let rows = missed(home.path());
    assert_eq!(rows.len(), 2, "{rows:?}");
    // `log` lists oldest first: the order they arrived in.
    for (row, (i, b)) in rows.iter().zip(bodies.iter().enumerate()) {
        assert_eq!(row["missed"], true);
        assert_eq!(row["status"], 503);
        assert_eq!(row["path"], format!("/cb/{i}"));
        use sha2::Digest as _;
        assert_eq!(
            row["request"]["body_sha256"],
            hex::encode(sha2::Sha256::digest(b)),
            "byte-identical"
        );
    }
    kill(back, &relay).await;

    restore(&copies);
    let _again = tunnel(home.path(), &relay, app.addr);
    until_taken(dir.path()).await;
    assert_eq!(
        missed(home.path()).len(),
        2,
        "a repeated hand-off is recorded once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_missed_replays_each_to_the_app_once_even_when_handed_over_twice() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let relay = spawn_relay(relay_cfg(dir.path(), Duration::ZERO)).await;
    let mut app = FakeTarget::echo().await;
    let t = tunnel(home.path(), &relay, app.addr);
    kill(t, &relay).await;
    for i in 0..2 {
        let r = send(
            relay.addr,
            "POST",
            &format!("/t/away/d/{i}"),
            &[],
            format!("body {i}"),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 503);
    }
    let copies = kept_copies(dir.path());
    let back = tunnel_with(home.path(), &relay, app.addr, &["--deliver-missed"]);
    // Delivered in the order they arrived, each once.
    assert_eq!(&app.next().await.body[..], b"body 0");
    assert_eq!(&app.next().await.body[..], b"body 1");
    until_taken(dir.path()).await;
    let all = log(home.path(), &[]);
    let replays: Vec<&Value> = all.iter().filter(|r| !r["replay_of"].is_null()).collect();
    assert_eq!(replays.len(), 2, "{all:?}");
    for r in &replays {
        assert_eq!(r["status"], 200);
    }
    kill(back, &relay).await;

    // The client died after delivering but before the relay heard back: the same requests
    // come again. Nothing is recorded or delivered twice.
    restore(&copies);
    let _again = tunnel_with(home.path(), &relay, app.addr, &["--deliver-missed"]);
    until_taken(dir.path()).await;
    assert!(app.received.try_recv().is_err(), "delivered twice");
    assert_eq!(log(home.path(), &[]).len(), 4);
}

/// A delivery the app did not take (it was down: no answer) leaves the missed row waiting:
/// handed over again (the client died before the relay heard back), it is delivered, where
/// it once counted as delivered for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_request_the_app_could_not_take_is_delivered_later() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let relay = spawn_relay(relay_cfg(dir.path(), Duration::ZERO)).await;
    let mut app = FakeTarget::echo().await;
    let t = tunnel(home.path(), &relay, app.addr);
    kill(t, &relay).await;
    let r = send(relay.addr, "POST", "/t/away/late", &[], "late")
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    let copies = kept_copies(dir.path());
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let back = tunnel_with(home.path(), &relay, down, &["--deliver-missed"]);
    until_taken(dir.path()).await;
    let all = log(home.path(), &[]);
    let failed: Vec<&Value> = all.iter().filter(|r| !r["replay_of"].is_null()).collect();
    assert_eq!(failed.len(), 1, "{all:?}");
    assert!(failed[0]["status"].is_null(), "{all:?}");
    assert_eq!(failed[0]["failure"]["side"], "target", "{all:?}");
    kill(back, &relay).await;

    restore(&copies);
    let _up = tunnel_with(home.path(), &relay, app.addr, &["--deliver-missed"]);
    assert_eq!(&app.next().await.body[..], b"late");
    until_taken(dir.path()).await;
}

/// With `--deliver-missed`, a delivered replay is checked with twk's test secrets as the file
/// is when it is delivered: one `trigger` made after the tunnel started counts, as it does
/// for live requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_missed_checks_with_a_test_secret_made_after_the_tunnel_started() {
    use twk_providers::Provider;
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = spawn_relay_on(listener, relay_cfg(dir.path(), Duration::ZERO));
    let mut app = FakeTarget::echo().await;
    let mut t = tunnel_with(home.path(), &relay, app.addr, &["--deliver-missed"]);
    // Made now, as `trigger` makes it, in the data directory the tunnel reads.
    let test = twk_trigger::TestSecrets::in_dir(&home.path().join("data/twk"))
        .get_or_make(Provider::Stripe)
        .unwrap();
    assert!(test.made_now);

    // The relay goes away; while the tunnel cannot reach it, another relay with the same
    // names and kept requests keeps a webhook signed with the test secret for it.
    relay.stop().await;
    let other = spawn_relay(relay_cfg(dir.path(), Duration::ZERO)).await;
    let body = r#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#;
    let url = format!("{}/t/away/stripe", other.url(false));
    let view = twk_providers::RequestView::new("POST", &url, body.as_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let opts = twk_providers::SignOptions {
        timestamp: Some(now),
        id: None,
    };
    let signed =
        twk_providers::sign_with_secret(Provider::Stripe, &view, &test.secret, &opts).unwrap();
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(signed.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let r = send(other.addr, "POST", "/t/away/stripe", &headers, body)
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    other.stop().await;

    // Back where the tunnel looks for it: the webhook is handed over and delivered.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _relay = spawn_relay_on(listener, relay_cfg(dir.path(), Duration::ZERO));
    let is_replay = |v: &Value| {
        v["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("replay-"))
    };
    let replay = t.line_where(is_replay).await;
    assert_eq!(&app.next().await.body[..], body.as_bytes());
    assert_eq!(
        (&replay["status"], &replay["verdict"], &replay["secret"]),
        (&200.into(), &"valid".into(), &"twk-test".into()),
        "{replay}"
    );
}

/// A webhook the relay refuses itself (here: over the tunnel's request rate) never reaches the
/// app, and the tunnel says so: a `--json` line with `"refused":true` and the relay's 429,
/// and a row `log --refused` finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_relay_refuses_is_in_the_tunnels_output_and_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut cfg = relay_cfg(dir.path(), Duration::from_secs(5));
    cfg.abuse = twk_relay::AbuseLimits {
        exempt_loopback: false,
        tunnel_rate: 0.001,
        tunnel_burst: 1.0,
        ..twk_relay::AbuseLimits::none()
    };
    let relay = spawn_relay(cfg).await;
    let app = FakeTarget::echo().await;
    let mut t = tunnel(home.path(), &relay, app.addr);
    let hook = [("x-github-event", "ping"), ("x-github-delivery", "d-7")];
    let ok = send(relay.addr, "POST", "/t/away/gh", &hook, "{}")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let over = send(relay.addr, "POST", "/t/away/gh", &hook, "{}")
        .await
        .unwrap();
    assert_eq!(over.status, 429);

    let line = t.line_where(|v| v["refused"] == true).await;
    assert_eq!(line["status"], 429);
    assert_eq!(line["path"], "/gh");
    assert_eq!(line["provider"], "github");
    assert_eq!(line["failure"]["side"], "sender");
    let forwarded = log(home.path(), &[]);
    let refused = log(home.path(), &["--refused"]);
    assert_eq!(forwarded.len(), 2, "both are recorded: {forwarded:?}");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 429);
    assert_eq!(refused[0]["refused"], true);
    let headers = refused[0]["request"]["headers"].as_array().unwrap();
    assert!(
        headers.contains(&serde_json::json!(["x-github-delivery", "d-7"])),
        "the head the relay refused is kept: {headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_without_a_key_is_reported_left_alone_and_forwarding_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("data/twk/owner.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, "torn\n").unwrap();
    let relay = spawn_relay(relay_cfg(dir.path(), Duration::ZERO)).await;
    let mut app = FakeTarget::echo().await;
    let mut c = command(home.path(), &relay, app.addr);
    c.stderr(Stdio::piped());
    let (mut child, _out) = spawn_ready(c);
    let r = send(relay.addr, "POST", "/t/away/hook", &[], "still forwarded")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(&app.next().await.body[..], b"still forwarded");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("nothing will be kept while offline") && err.contains("move it away"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        "torn\n",
        "left as it was"
    );
}
