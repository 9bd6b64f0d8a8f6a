//! The `twk-tunnel` binary end to end: real processes, real relay, real signals.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use twk_e2e::*;

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");

struct Running {
    _home: tempfile::TempDir,
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Running {
    /// Sends SIGTERM, as systemd or Ctrl-C's kill would.
    fn sigterm(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("no output line within 10 s")
            .unwrap()
            .expect("stdout closed")
    }
}

fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Running {
    // A private data and config directory: tests never touch the developer's history.
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("TWK_DATA_DIR")
        .env_remove("TWK_CONFIG")
        .env_remove("TWK_RELAY")
        .env_remove("TWK_TOKEN")
        .env_remove("TWK_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    Running {
        _home: home,
        child,
        lines,
    }
}

async fn stderr_of(child: Child) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("process did not exit within 10 s")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ndjson_output_then_sigkill_mid_request_gives_502_within_a_second() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let mut target = FakeTarget::slow(Duration::from_secs(60)).await;
    let relay_url = relay.url(false);
    let target_arg = target.addr.to_string();
    let mut run = spawn(
        &[
            "--relay",
            &relay_url,
            "--name",
            "killme",
            "--json",
            &target_arg,
        ],
        &[("TWK_TOKEN", "tok")],
    );
    let ready: serde_json::Value = serde_json::from_str(&run.line().await).unwrap();
    assert_eq!(ready["event"], "ready");
    assert_eq!(
        ready["public_url"],
        format!("http://{}/t/killme", relay.addr)
    );
    assert_eq!(ready["target"], format!("http://{}", target.addr));

    // One quick exchange shows up as an NDJSON line.
    let r = send(relay.addr, "POST", "/t/killme/quick?x=1", &[], "hello")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let _ = target.next().await;
    let ex: serde_json::Value = serde_json::from_str(&run.line().await).unwrap();
    assert_eq!(ex["event"], "exchange");
    assert_eq!(ex["method"], "POST");
    assert_eq!(ex["path"], "/quick?x=1");
    assert_eq!(ex["status"], 200);
    assert!(ex["id"].as_i64().is_some());
    assert!(ex["duration_ms"].as_i64().is_some());

    // A request is held by the target; the client is killed without a chance to say goodbye.
    let addr = relay.addr;
    let pending = tokio::spawn(async move { send(addr, "POST", "/t/killme/slow", &[], "").await });
    let _ = target.next().await;
    let pid = nix::unistd::Pid::from_raw(run.child.id().unwrap() as i32);
    let t0 = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let r = pending.await.unwrap().unwrap();
    let took = t0.elapsed();
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("(tunnel side)"), "{}", r.text());
    assert!(took < Duration::from_secs(1), "502 took {took:?}");
    // And the name is free again: new requests get 503, not a hang.
    let r = send(relay.addr, "POST", "/t/killme/again", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn a_bad_token_exits_non_zero_with_a_clear_message() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["right"]))).await;
    let run = spawn(
        &["--relay", &relay.url(false), "--no-tui", "3000"],
        &[("TWK_TOKEN", "zq-not-the-token-81")],
    );
    let (code, stderr) = stderr_of(run.child).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("token"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("zq-not-the-token-81"),
        "the token was printed: {stderr}"
    );
}

#[tokio::test]
async fn a_name_held_by_another_token_exits_with_409() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["owner", "other"]))).await;
    let target = FakeTarget::echo().await;
    let mut cfg = agent_config(&relay, target.addr);
    cfg.token = Some("owner".into());
    cfg.name = Some("taken".into());
    let mut holder = spawn_agent(cfg);
    holder.connected().await;
    let run = spawn(
        &[
            "--relay",
            &relay.url(false),
            "--name",
            "taken",
            "--no-tui",
            "3000",
        ],
        &[("TWK_TOKEN", "other")],
    );
    let (code, stderr) = stderr_of(run.child).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("409") && stderr.contains("taken"),
        "{stderr}"
    );
}

#[tokio::test]
async fn plain_output_on_the_embedded_relay_and_graceful_sigterm() {
    trace_init();
    let mut target = FakeTarget::echo().await;
    let target_arg = target.addr.to_string();
    // Port 0 asks for any free port, so parallel tests never collide.
    let mut run = spawn(&["--no-tui", "--embedded-port", "0", &target_arg], &[]);
    let first = run.line().await;
    let rest = first.strip_prefix("Forwarding ").expect(&first);
    let (url, tgt) = rest.split_once(" -> ").unwrap();
    assert_eq!(tgt, format!("http://{}", target.addr));
    let rest = url.strip_prefix("http://").expect(url);
    let (hostport, path) = rest.split_once('/').unwrap();
    let addr: std::net::SocketAddr = hostport.parse().unwrap();
    assert!(addr.ip().is_loopback());
    let r = send(addr, "PUT", &format!("/{path}/plain?q=1"), &[], "x")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let _ = target.next().await;
    let line = run.line().await;
    assert!(
        line.contains("PUT") && line.contains("/plain?q=1") && line.contains("200"),
        "{line}"
    );
    run.sigterm();
    let (code, stderr) = stderr_of(run.child).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("embedded relay"), "{stderr}");
    assert!(
        stderr.contains("providers cannot reach this URL") && stderr.contains("docs/deploy.md"),
        "{stderr}"
    );
}

/// `--max-body` and `--request-timeout` set the embedded relay's limits: with `--relay` they
/// do nothing, and the tunnel says so rather than ignoring them silently.
#[tokio::test]
async fn embedded_relay_limits_with_a_remote_relay_are_said_to_do_nothing() {
    let relay = spawn_relay(relay_config(twk_relay::Auth::Open)).await;
    let target = FakeTarget::echo().await;
    let relay_url = relay.url(false);
    let target_arg = target.addr.to_string();
    let mut run = spawn(
        &[
            "--relay",
            &relay_url,
            "--no-tui",
            "--max-body",
            "1000",
            &target_arg,
        ],
        &[],
    );
    let stderr = drain_stderr(&mut run.child);
    let first = run.line().await;
    assert!(first.starts_with("Forwarding "), "{first}");
    run.sigterm();
    let _ = stderr_of(run.child).await;
    let log = stderr.await.unwrap();
    assert!(
        log.contains("--max-body set the embedded relay's limits and do nothing with --relay"),
        "{log}"
    );
    assert!(!log.contains("--request-timeout and"), "{log}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let out = Command::new(BIN).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["--host-header", "sideways", "3000"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A file named as the data directory is a mistake said at once, and left as it was (it
    // was once chmod-ed 0700 and the tunnel ran without capture).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "mine").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file_arg = file.to_str().unwrap();
    for args in [
        &["--no-tui", "--data-dir", file_arg, "3000"][..],
        &["log", "--data-dir", file_arg],
    ] {
        let out = Command::new(BIN).args(args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("is not a directory"), "{stderr}");
    }
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[tokio::test]
async fn the_token_never_reaches_the_client_log_even_at_trace_level() {
    trace_init();
    let token = "tok-0a1b2c3d4e5f60718293";
    let relay = spawn_relay(relay_config(tokens(&[token]))).await;
    let mut target = FakeTarget::echo().await;
    let relay_url = relay.url(false);
    let target_arg = target.addr.to_string();
    let mut run = spawn(
        &[
            "--relay",
            &relay_url,
            "--name",
            "traced",
            "--no-tui",
            &target_arg,
        ],
        &[("TWK_TOKEN", token), ("TWK_LOG", "trace")],
    );
    // Read the trace as it comes: a full pipe would stall the client.
    let stderr = drain_stderr(&mut run.child);
    let first = run.line().await;
    assert!(first.starts_with("Forwarding "), "{first}");
    let r = send(
        relay.addr,
        "POST",
        "/t/traced/x",
        &[("authorization", "Bearer app-level")],
        "hi",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let _ = target.next().await;
    let _ = run.line().await;
    run.sigterm();
    let (code, _) = stderr_of(run.child).await;
    let log = stderr.await.unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("TRACE"), "not a trace log:\n{log}");
    assert!(!log.contains(token), "token in the client log");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a non-terminal log"
    );
}

#[tokio::test]
async fn a_client_displaced_by_another_with_the_same_token_exits_1_and_says_why() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let target = FakeTarget::echo().await;
    let relay_url = relay.url(false);
    let target_arg = target.addr.to_string();
    let args = [
        "--relay",
        relay_url.as_str(),
        "--name",
        "shared",
        "--no-tui",
        target_arg.as_str(),
    ];
    let mut first = spawn(&args, &[("TWK_TOKEN", "tok")]);
    assert!(first.line().await.starts_with("Forwarding "));
    let mut second = spawn(&args, &[("TWK_TOKEN", "tok")]);
    assert!(second.line().await.starts_with("Forwarding "));
    let (code, err) = stderr_of(first.child).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "taken over by another twk-tunnel using the same token; stop it or pick another --name"
        ),
        "{err}"
    );
    second.sigterm();
    let (code, _) = stderr_of(second.child).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn each_reconnect_is_reported_once_in_plain_mode() {
    trace_init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = spawn_relay_on(listener, relay_config(tokens(&["tok"])));
    let target = FakeTarget::echo().await;
    let relay_url = relay.url(false);
    let target_arg = target.addr.to_string();
    let mut run = spawn(
        &[
            "--relay",
            &relay_url,
            "--name",
            "flaky",
            "--no-tui",
            &target_arg,
        ],
        &[("TWK_TOKEN", "tok")],
    );
    assert!(run.line().await.starts_with("Forwarding "));
    let err = run.child.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    relay.stop().await;
    // The relay is gone: one line says so and when the client retries.
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        first.starts_with("twk: ") && first.contains("reconnecting in"),
        "{first}"
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _relay = spawn_relay_on(listener, relay_config(tokens(&["tok"])));
    let mut seen = vec![first];
    let back = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let done = l.contains("reconnected");
            seen.push(l);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(back.is_ok(), "never reconnected: {seen:?}");
    // Only the client's own lines: no tracing WARN duplicates of the same news.
    for l in &seen {
        assert!(l.starts_with("twk: "), "{l}");
        assert!(!l.contains("WARN"), "{l}");
    }
    run.sigterm();
    let _ = run.child.wait().await;
}

/// Runs `twk-tunnel` with `args` to its end (10 s at most): (exit code, stderr).
async fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let run = spawn(args, &[]);
    stderr_of(run.child).await
}

#[tokio::test]
async fn targets_without_a_host_or_with_a_query_are_refused_at_start() {
    // Issue 12 item 6: `:3000` forwarded to `http://:3000`, a query ended up mid-path.
    let (code, err) = run_to_end(&["--no-tui", ":3000"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`3000` or `localhost:3000`"), "{err}");
    let (code, err) = run_to_end(&["--no-tui", "http://localhost:3000/base?x=1"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("remove the query"), "{err}");
    // Nothing started: no embedded relay was announced.
    assert!(!err.contains("embedded relay"), "{err}");
}

#[tokio::test]
async fn a_relay_url_that_leads_to_an_app_exits_1_saying_so() {
    trace_init();
    let app = FakeTarget::echo().await;
    let relay = format!("http://{}", app.addr);
    let (code, err) = run_to_end(&["--relay", &relay, "--no-tui", "3000"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the relay at ws://{} answered HTTP 200 without upgrading: it is not a twk relay (check --relay)",
            app.addr
        )),
        "{err}"
    );
    assert!(!err.contains("reconnecting"), "{err}");
}

/// An HTTP/1.0 server (python's `http.server`) as the relay: exit 1 saying so, not a
/// reconnect loop ("HTTP version must be 1.1 or higher; reconnecting", forever).
#[tokio::test]
async fn a_relay_url_that_leads_to_an_http_1_0_server_exits_1_saying_so() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    trace_init();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = s.read(&mut head).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                    .await;
            });
        }
    });
    let relay = format!("http://{addr}");
    let (code, err) = run_to_end(&["--relay", &relay, "--no-tui", "3000"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("the server at ws://{addr} is not a twk relay")),
        "{err}"
    );
    assert!(err.contains("check --relay"), "{err}");
    assert!(!err.contains("reconnecting"), "{err}");
}

#[tokio::test]
async fn wss_to_a_plain_http_relay_exits_1_saying_to_use_ws() {
    trace_init();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let url = format!("wss://{}", relay.addr);
    let (code, err) = run_to_end(&["--relay", &url, "--no-tui", "3000"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the server speaks plain HTTP; use ws:// or http://"),
        "{err}"
    );
}

#[tokio::test]
async fn an_untrusted_relay_certificate_exits_1_with_the_fix() {
    trace_init();
    let (cert, key) = self_signed();
    let relay = spawn_tls_relay(relay_config(tokens(&["tok"])), &cert, &key).await;
    let url = format!("wss://localhost:{}", relay.addr.port());
    let (code, err) = run_to_end(&["--relay", &url, "--no-tui", "3000"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("not trusted") && err.contains("--relay-ca FILE"),
        "{err}"
    );
}

#[tokio::test]
async fn a_self_signed_ca_flagged_relay_certificate_given_with_relay_ca_connects() {
    trace_init();
    // As `openssl req -x509` makes it: curl --cacert accepts it; webpki alone says
    // CaUsedAsEndEntity.
    let (cert, key) = self_signed_ca_flagged();
    let relay = spawn_tls_relay(relay_config(tokens(&["tok"])), &cert, &key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("relay.pem");
    std::fs::write(&ca, &cert).unwrap();
    let url = format!("wss://localhost:{}", relay.addr.port());
    let mut run = spawn(
        &[
            "--relay",
            &url,
            "--relay-ca",
            ca.to_str().unwrap(),
            "--name",
            "pinned",
            "--no-tui",
            "3000",
        ],
        &[("TWK_TOKEN", "tok")],
    );
    let first = run.line().await;
    assert_eq!(
        first,
        format!(
            "Forwarding https://{}/t/pinned -> http://localhost:3000",
            relay.addr
        )
    );
    run.sigterm();
    let (code, err) = stderr_of(run.child).await;
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test]
async fn ws_to_a_tls_relay_exits_1_saying_to_use_wss() {
    trace_init();
    let (cert, key) = self_signed();
    let relay = spawn_tls_relay(relay_config(tokens(&["tok"])), &cert, &key).await;
    let url = format!("ws://localhost:{}", relay.addr.port());
    let (code, err) = run_to_end(&["--relay", &url, "--no-tui", "3000"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("does not answer in HTTP; if it speaks TLS, use wss://"),
        "{err}"
    );
}

#[tokio::test]
async fn completions_for_bash_zsh_and_fish_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in [
            "log",
            "replay",
            "export",
            "verify",
            "completions",
            "relay-ca",
        ] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn man_prints_roff_and_writes_a_page_per_command() {
    let out = Command::new(BIN).arg("man").output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    assert_roff(&page, "twk-tunnel");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    assert!(page.contains("twk\\-tunnel\\-log(1)"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    for name in ["twk-tunnel", "twk-tunnel-log", "twk-tunnel-replay"] {
        let page = std::fs::read_to_string(dir.path().join(format!("{name}.1"))).unwrap();
        assert_roff(&page, name);
    }
}

/// A man page: roff whose first request (after clap_mangen's `Aq` string definition) is
/// `.TH NAME 1`, with the usual sections; when groff is installed, it renders the page
/// without a warning.
fn assert_roff(page: &str, name: &str) {
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap_or_default();
    assert!(first.starts_with(&format!(".TH {name} 1 ")), "{first}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS"] {
        assert!(page.contains(section), "{name}: no {section}");
    }
    let groff = std::process::Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    if let Ok(mut groff) = groff {
        use std::io::Write as _;
        groff
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let out = groff.wait_with_output().unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && warnings.is_empty(), "{warnings}");
    }
}
