//! The `twk-relay` binary: startup line, health, tokens file, TLS, refusal without tokens,
//! graceful SIGTERM.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use twk_e2e::*;

const BIN: &str = env!("CARGO_BIN_EXE_twk-relay");

/// Reads the binary's first stdout line, `listening on <addr>`, and returns the address.
async fn listening_addr(child: &mut tokio::process::Child) -> std::net::SocketAddr {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    first
        .strip_prefix("listening on ")
        .expect(&first)
        .parse()
        .unwrap()
}

#[tokio::test]
async fn starts_serves_health_accepts_a_token_from_the_file_and_stops_on_sigterm() {
    trace_init();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# one per line\nfile-token\n").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "relay.test",
            "--url-style",
            "path",
            "--health-detail",
            "--no-state-file",
        ])
        .arg("--tokens-file")
        .arg(&tokens)
        .env_remove("TWK_RELAY_TOKENS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child).await;
    let r = send(addr, "GET", "/_twk/health", &[], "").await.unwrap();
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tunnels"], 0);

    // A tunnel with the file's token works end to end.
    let mut target = FakeTarget::echo().await;
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{addr}")).unwrap(),
        twk_agent::Target::parse(&target.addr.to_string()).unwrap(),
    );
    cfg.token = Some("file-token".into());
    cfg.name = Some("bin".into());
    let mut agent = spawn_agent(cfg);
    let (_, url) = agent.connected().await;
    assert_eq!(url, "http://relay.test/t/bin");
    let r = send(addr, "POST", "/t/bin/x", &[], "hi").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(target.next().await.body.as_ref(), b"hi");
    agent.stop().await.unwrap();

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// `twk-relay args` run to its end, without the tokens of the environment.
async fn relay_output(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TWK_RELAY_TOKENS")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn refuses_to_start_without_tokens_and_with_a_bad_domain() {
    let listen = ["--listen", "127.0.0.1:0"];
    let out =
        relay_output(&[&listen[..], &["--domain", "relay.test", "--no-state-file"]].concat()).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no tunnel tokens configured"), "{err}");
    let out = relay_output(
        &[
            &listen[..],
            &["--domain", "bad domain", "--allow-anonymous"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid domain"));
    // An IP address has no subdomains: asked for them, a usage error.
    let ip_subdomains = ["--domain", "127.0.0.1:8080", "--url-style", "subdomain"];
    let anonymous = ["--allow-anonymous", "--no-state-file"];
    let out = relay_output(&[&listen[..], &ip_subdomains, &anonymous].concat()).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--domain is an IP address"), "{err}");
}

/// With --domain an IP address and no --url-style, clients get path URLs
/// (`http://127.0.0.1:8080/t/name`), not `http://name.127.0.0.1:8080`, which resolves nowhere.
#[tokio::test]
async fn an_ip_address_as_the_domain_gives_path_urls() {
    trace_init();
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--domain", "127.0.0.1:8080"])
        .args(["--allow-anonymous", "--no-state-file"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child).await;
    let target = FakeTarget::echo().await;
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{addr}")).unwrap(),
        twk_agent::Target::parse(&target.addr.to_string()).unwrap(),
    );
    cfg.name = Some("ipname".into());
    let mut agent = spawn_agent(cfg);
    let (_, url) = agent.connected().await;
    assert_eq!(url, "http://127.0.0.1:8080/t/ipname");
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_certificate_file_is_a_usage_error_naming_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--domain", "relay.test"])
        .args(["--allow-anonymous", "--no-state-file"])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    // Issue 12 item 11: the cause was printed twice.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[tokio::test]
async fn a_missing_or_empty_acme_ca_root_is_a_usage_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for (root, cause) in [
        (dir.path().join("missing.pem"), "No such file or directory"),
        (empty, "holds no PEM certificate"),
    ] {
        let out = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--domain", "relay.test"])
            .args(["--allow-anonymous", "--no-state-file"])
            .args(["--acme-email", "ops@relay.test"])
            .arg("--acme-cache")
            .arg(dir.path().join("acme"))
            .arg("--acme-ca-root")
            .arg(&root)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // It used to start and retry the first order forever.
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&root.display().to_string()), "{err}");
        assert_eq!(err.matches(cause).count(), 1, "{err}");
    }
}

#[tokio::test]
async fn a_malformed_token_label_exits_2_an_unknown_one_1() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let run = |args: &'static [&'static str]| {
        let tokens = tokens.clone();
        async move {
            let out = Command::new(BIN)
                .args(args)
                .arg("--tokens-file")
                .arg(&tokens)
                .output()
                .await
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code(), err)
        }
    };
    let (code, err) = run(&["token", "add", "no spaces please"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid label"), "{err}");
    let (code, err) = run(&["token", "revoke", "nobody"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no token is labelled \"nobody\""), "{err}");
}

#[tokio::test]
async fn serves_https_with_a_generated_certificate() {
    trace_init();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "localhost",
            "--no-state-file",
        ])
        .arg("--tls-cert")
        .arg(dir.path().join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("key.pem"))
        .env("TWK_RELAY_TOKENS", "a,b")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let addr: std::net::SocketAddr = first
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("wss://localhost:{}", addr.port())).unwrap(),
        twk_agent::Target::parse("3000").unwrap(),
    );
    cfg.token = Some("b".into());
    cfg.extra_ca_pem = Some(cert.into_bytes());
    let mut agent = spawn_agent(cfg);
    let (name, url) = agent.connected().await;
    // The certificate is for `localhost`, not `*.localhost`: a subdomain URL would fail every
    // sender's handshake, so the URL is a path one.
    assert_eq!(url, format!("https://localhost/t/{name}"));
    agent.stop().await.unwrap();
}

/// Subdomain URLs need a certificate for `*.domain`: asked for without one, the relay says
/// so and does not start; with one, they are what clients get.
#[tokio::test]
async fn subdomain_urls_need_a_wildcard_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, names: &[&str]| {
        let (cert, key) = self_signed_for(names);
        let (c, k) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    };
    let (plain, plain_key) = write("plain", &["hooks.test"]);
    let (cert, key) = (plain.to_str().unwrap(), plain_key.to_str().unwrap());
    let out = relay_output(&[
        "--listen",
        "127.0.0.1:0",
        "--domain",
        "hooks.test",
        "--allow-anonymous",
        "--no-state-file",
        "--url-style",
        "subdomain",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("need a certificate for *.hooks.test")
            && stderr.contains("is for hooks.test"),
        "{stderr}"
    );

    // A certificate for some tunnel names only keeps subdomain URLs (those names work).
    let (some, some_key) = write("some", &["hooks.test", "shop.hooks.test"]);
    let (_, url) = tls_tunnel_url(&some, &some_key, Some("shop")).await;
    assert_eq!(url, "https://shop.hooks.test");

    let (wild, wild_key) = write("wild", &["hooks.test", "*.hooks.test"]);
    let (name, url) = tls_tunnel_url(&wild, &wild_key, None).await;
    assert_eq!(url, format!("https://{name}.hooks.test"));
}

/// The (name, public URL) a tunnel gets from a relay for `hooks.test` serving `cert`.
async fn tls_tunnel_url(
    cert: &std::path::Path,
    key: &std::path::Path,
    name: Option<&str>,
) -> (String, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--domain", "hooks.test"])
        .args(["--allow-anonymous", "--no-state-file"])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child).await;
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("wss://hooks.test:{}", addr.port())).unwrap(),
        twk_agent::Target::parse("3000").unwrap(),
    );
    cfg.extra_ca_pem = Some(std::fs::read(cert).unwrap());
    cfg.connect_to = Some(addr);
    cfg.name = name.map(str::to_owned);
    let mut agent = spawn_agent(cfg);
    let got = agent.connected().await;
    agent.stop().await.unwrap();
    got
}

/// Starts the binary with `args` and TWK_LOG=trace; returns it and its address.
async fn start_traced(args: &[&str], token: &str) -> (tokio::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "relay.test",
            "--url-style",
            "path",
        ])
        .args(args)
        .env("TWK_RELAY_TOKENS", token)
        .env("TWK_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child).await;
    (child, addr)
}

#[tokio::test]
async fn the_token_never_reaches_the_relay_log_even_at_trace_level() {
    trace_init();
    let token = "tok-9f8e7d6c5b4a39281706";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("names.json");
    let state_arg = state.to_str().unwrap();
    let (mut child, addr) = start_traced(&["--state-file", state_arg], token).await;
    let stderr = drain_stderr(&mut child);
    let mut target = FakeTarget::echo().await;
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{addr}")).unwrap(),
        twk_agent::Target::parse(&target.addr.to_string()).unwrap(),
    );
    cfg.token = Some(token.into());
    cfg.name = Some("traced".into());
    let mut agent = spawn_agent(cfg.clone());
    agent.connected().await;
    let r = send(addr, "POST", "/t/traced/x", &[], "hi").await.unwrap();
    assert_eq!(r.status, 200);
    let _ = target.next().await;
    agent.stop().await.unwrap();
    // A wrong token, too, is never echoed.
    cfg.token = Some("wrong-5a4b3c2d1e0f".into());
    let _ = spawn_agent(cfg).task.await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let log = stderr.await.unwrap();
    assert!(log.contains("TRACE"), "not a trace log:\n{log}");
    assert!(log.contains("tunnel connected"), "{log}");
    // stderr is a pipe here, as under journald: plain text, no colour codes.
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a non-terminal log"
    );
    assert!(log.contains("tunnel upgrade refused"), "{log}");
    assert!(!log.contains(token), "token in the relay log");
    assert!(
        !log.contains("wrong-5a4b3c2d1e0f"),
        "wrong token in the relay log"
    );
    // Nor in the reservations file, which holds only a fingerprint.
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        saved.contains("traced") && !saved.contains(token),
        "{saved}"
    );
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    trace_init();
    let (mut child, _addr) = start_traced(&["--no-state-file"], "t").await;
    let _stderr = drain_stderr(&mut child);
    let pid = child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files  <soft>  <hard>  files"
    assert_eq!(fields[3], fields[4], "{line}");
    child.kill().await.unwrap();
}

/// `--acme-email` against Pebble: the binary obtains a certificate and serves https with it.
#[tokio::test]
async fn acme_on_the_command_line_serves_https_with_an_obtained_certificate() {
    trace_init();
    let Some(_turn) = twk_e2e::pebble::turn_or_skip().await else {
        return;
    };
    // Pebble must know the relay's port before either starts: take a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pebble = twk_e2e::pebble::Pebble::start(port).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--domain", &format!("localhost:{port}")])
        .args([
            "--acme-email",
            "ops@example.com",
            "--acme-directory",
            &pebble.directory,
        ])
        .arg("--acme-ca-root")
        .arg(&pebble.api_root)
        .arg("--acme-cache")
        .arg(dir.path().join("acme"))
        .arg("--state-file")
        .arg(dir.path().join("names.json"))
        .args(["--log-format", "json"])
        .env("TWK_RELAY_TOKENS", "t")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = drain_stderr(&mut child);
    let addr = listening_addr(&mut child).await;
    let root = pebble.issuing_root().await.unwrap();
    let tls = twk_transport::tls::client_config(Some(root.as_bytes())).unwrap();
    // The first handshakes fail until the certificate is there.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stream = loop {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        match tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
        {
            Ok(s) => break s,
            Err(e) => assert!(std::time::Instant::now() < deadline, "no certificate: {e}"),
        }
        tokio::task::yield_now().await;
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/_twk/health")
        .header("host", format!("localhost:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = child.wait().await;
    // JSON logs: every line parses, and the certificate was logged.
    let log = stderr.await.unwrap();
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(log.contains("certificate obtained"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a non-terminal log"
    );
}

/// Runs `twk-relay token …` and returns (exit code, stdout, stderr).
async fn token_cmd(args: &[&str], files: &[&std::path::Path]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("token").args(args);
    cmd.arg("--tokens-file").arg(files[0]);
    if let Some(state) = files.get(1) {
        cmd.arg("--state-file").arg(state);
    }
    let out = cmd.env_remove("TWK_RELAY_TOKENS").output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn tokens_are_added_listed_and_revoked_without_a_restart() {
    trace_init();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let state = dir.path().join("names.json");
    let (code, out, err) = token_cmd(&["add", "alice"], &[&tokens]).await;
    assert_eq!(code, 0, "{err}");
    let alice = out.trim().to_string();
    assert!(alice.starts_with("twk_"), "{out}");
    assert!(err.contains("shown only now"), "{err}");
    let file = std::fs::read_to_string(&tokens).unwrap();
    assert!(file.contains("alice") && !file.contains(&alice), "{file}");
    let mode = std::fs::metadata(&tokens).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let (code, _, err) = token_cmd(&["add", "alice"], &[&tokens]).await;
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    // Without the relay's state file, when a token was last used is not known: not "never".
    let (code, out, err) = token_cmd(&["list"], &[&tokens, &state]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("alice") && l.ends_with("unknown")),
        "{out}"
    );
    assert!(
        err.contains("no state file at") && err.contains("--state-file"),
        "{err}"
    );

    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "relay.test",
            "--url-style",
            "path",
        ])
        .arg("--tokens-file")
        .arg(&tokens)
        .arg("--state-file")
        .arg(&state)
        .env_remove("TWK_RELAY_TOKENS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = drain_stderr(&mut child);
    let addr = listening_addr(&mut child).await;
    let target = FakeTarget::echo().await;
    let mut cfg = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{addr}")).unwrap(),
        twk_agent::Target::parse(&target.addr.to_string()).unwrap(),
    );
    cfg.token = Some(alice.clone());
    cfg.name = Some("alices".into());
    let mut agent = spawn_agent(cfg);
    agent.connected().await;

    // `token list` shows the label and, once the relay saved it, the last use.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, err) = token_cmd(&["list"], &[&tokens, &state]).await;
        assert_eq!(code, 0, "{err}");
        let row = out.lines().find(|l| l.starts_with("alice")).expect(&out);
        if !row.ends_with("never") && !row.ends_with("unknown") {
            assert!(row.contains('T') && row.contains('Z'), "{row}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last use never saved: {out}"
        );
    }

    // Revoking closes the live tunnel; the client's reconnect is refused and it stops.
    let (code, _, err) = token_cmd(&["revoke", "alice"], &[&tokens]).await;
    assert_eq!(code, 0, "{err}");
    let result = tokio::time::timeout(Duration::from_secs(15), agent.task)
        .await
        .expect("the revoked token's tunnel stayed open")
        .unwrap();
    assert!(
        matches!(result, Err(twk_agent::AgentError::Unauthorized(_))),
        "{result:?}"
    );
    let r = send(
        addr,
        "GET",
        "/_twk/connect",
        &[
            ("authorization", &format!("Bearer {alice}")),
            ("x-twk-protocol", "1"),
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    let (code, _, err) = token_cmd(&["revoke", "alice"], &[&tokens]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no token is labelled"), "{err}");
    child.kill().await.unwrap();
    let log = stderr.await.unwrap();
    assert!(log.contains("token revoked"), "{log}");
    assert!(!log.contains(&alice), "token in the log");
}

#[tokio::test]
async fn completions_and_man_pages_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["token", "revoke", "tls-cert", "acme-email"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = Command::new(BIN).arg("man").output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap_or_default();
    assert!(first.starts_with(".TH twk-relay 1 "), "{first}");
    assert!(page.contains(".SH OPTIONS") && page.contains("twk\\-relay\\-token(1)"));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let token = std::fs::read_to_string(dir.path().join("twk-relay-token-add.1")).unwrap();
    assert!(token.contains(".TH twk-relay-token-add 1 "), "{token}");
}

#[tokio::test]
async fn help_never_shows_the_password_in_the_cluster_url() {
    let out = Command::new(BIN)
        .arg("--help")
        .env(
            "TWK_RELAY_CLUSTER",
            "nats://twk:hunter2-secret@nats.internal:4222",
        )
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("TWK_RELAY_CLUSTER"), "{help}");
    assert!(!help.contains("hunter2-secret"), "{help}");
}

#[tokio::test]
async fn workers_must_be_at_least_one_and_one_serves() {
    let out = Command::new(BIN)
        .args(["--domain", "relay.test", "--workers", "0"])
        .env("TWK_RELAY_TOKENS", "tok-1234567890abcdef")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers"), "{err}");
    let (_child, addr) = start_traced(&["--workers", "1"], "tok-1234567890abcdef").await;
    let r = send(addr, "GET", "/_twk/health", &[], "").await.unwrap();
    assert_eq!(r.status, 200);
}
