//! Capture, query, replay and export through the real tunnel: the `twk-tunnel` binary on a
//! real relay, a local app that checks signatures the way the providers' SDKs do, and the
//! SQLite store on disk.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::Full;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use twk_e2e::*;
use twk_providers::{Provider, RequestView, Secret, Secrets, SignOptions, VerifyOptions};

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");
const STRIPE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TWILIO: &str = "12345";

fn secrets() -> Secrets {
    Secrets::new()
        .with(Provider::Stripe, Secret::new(STRIPE))
        .with(Provider::Twilio, Secret::new(TWILIO))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The local app: rebuilds the public URL from the forwarding headers (as Twilio's SDK
/// middleware does behind a proxy) and checks the signature; 200 when valid, 403 otherwise.
async fn verifying_app() -> FakeTarget {
    FakeTarget::with(|r| {
        let proto = r.header("x-forwarded-proto").unwrap_or("http".into());
        let host = r
            .header("x-forwarded-host")
            .or(r.header("host"))
            .unwrap_or_default();
        let prefix = r.header("x-forwarded-prefix").unwrap_or_default();
        let url = format!("{proto}://{host}{prefix}{}", r.path_and_query);
        let mut view = RequestView::new(&r.method, &url, &r.body);
        for (n, v) in &r.headers {
            view = view.with_header(n, v);
        }
        let a = twk_providers::analyze(&view, &secrets(), &VerifyOptions::at(now()));
        let status = if a.verdict.is_valid() { 200 } else { 403 };
        http::Response::builder()
            .status(status)
            .header("x-verdict", a.verdict.as_str())
            .body(Full::new(Bytes::from(format!(
                "verdict {}",
                a.verdict.as_str()
            ))))
            .unwrap()
    })
    .await
}

struct Tunnel {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Tunnel {
    fn start(relay: &RelayHandle, target: &FakeTarget, home: &Path) -> Tunnel {
        let stripe = format!("stripe={STRIPE}");
        let twilio = format!("twilio={TWILIO}");
        let args = ["--json", "--secret", &stripe, "--secret", &twilio];
        Tunnel::spawn(relay, target, home, "capt", &args)
    }

    /// `twk-tunnel --relay … --name NAME ARGS… TARGET` with the test's private directories.
    fn spawn(
        relay: &RelayHandle,
        target: &FakeTarget,
        home: &Path,
        name: &str,
        args: &[&str],
    ) -> Tunnel {
        let mut child = Command::new(BIN)
            .args(["--relay", &relay.url(false), "--name", name])
            .args(args)
            .arg(target.addr.to_string())
            .env("TWK_TOKEN", "tok")
            .env_remove("STRIPE_WEBHOOK_SECRET")
            .env_remove("BANDWIDTH_CALLBACK_CREDENTIALS")
            .env_remove("TWK_BASIC_AUTH")
            .env("TWK_DATA_DIR", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("TWK_RELAY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Tunnel { child, lines }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("no line within 10 s")
            .unwrap()
            .expect("tunnel exited")
    }

    async fn json_line(&mut self) -> serde_json::Value {
        serde_json::from_str(&self.line().await).unwrap()
    }

    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
    }
}

/// Runs a `twk-tunnel` subcommand against the test's data directory.
async fn cli(home: &Path, args: &[&str]) -> (i32, String, String) {
    cli_env(home, args, &[]).await
}

/// [`cli`] with environment variables set: no secret reaches it from elsewhere.
async fn cli_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("TWK_DATA_DIR", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("TWK_CONFIG")
        .env_remove("TWK_SECRET")
        .env_remove("TWK_BASIC_AUTH");
    for p in Provider::ALL {
        cmd.env_remove(p.secret_env_var());
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn log_json(home: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["log", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(home, &args).await;
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(rows: &[serde_json::Value]) -> Vec<i64> {
    let mut v: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    v.sort();
    v
}

fn stripe_body(amount: u32) -> String {
    format!(
        r#"{{"id":"evt_{amount}","object":"event","type":"payment_intent.succeeded","data":{{"object":{{"id":"pi_1","amount":{amount}}}}}}}"#
    )
}

#[tokio::test]
async fn capture_query_replay_and_export_through_the_real_tunnel() {
    trace_init();
    let home_dir = tempfile::tempdir().unwrap();
    let home: PathBuf = home_dir.path().to_path_buf();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let mut app = verifying_app().await;
    let mut tunnel = Tunnel::start(&relay, &app, &home);
    let ready = tunnel.json_line().await;
    let public = ready["public_url"].as_str().unwrap().to_string();
    let base = "/t/capt";

    // 1. A valid Stripe event.
    let body = stripe_body(100);
    let view = RequestView::new("POST", &public, body.as_bytes());
    let opts = SignOptions {
        timestamp: Some(now()),
        id: None,
    };
    let sig = twk_providers::sign(Provider::Stripe, &view, &secrets(), &opts).unwrap();
    let headers: Vec<(&str, &str)> = std::iter::once(("content-type", "application/json"))
        .chain(sig.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .collect();
    let r = send(
        relay.addr,
        "POST",
        &format!("{base}/stripe"),
        &headers,
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let stripe_seen = app.next().await;
    let stripe_line = tunnel.json_line().await;

    // 2. A valid Twilio form callback, signed over the public URL.
    let form = "To=%2B15551234567&From=%2B15557654321&Body=hello+twk&MessageSid=SM1";
    let url = format!("{public}/sms?x=1");
    let view = RequestView::new("POST", &url, form.as_bytes())
        .with_header("content-type", b"application/x-www-form-urlencoded");
    let sig =
        twk_providers::sign(Provider::Twilio, &view, &secrets(), &SignOptions::default()).unwrap();
    let mut headers: Vec<(&str, &str)> =
        vec![("content-type", "application/x-www-form-urlencoded")];
    headers.extend(sig.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let r = send(
        relay.addr,
        "POST",
        &format!("{base}/sms?x=1"),
        &headers,
        form,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let twilio_seen = app.next().await;
    let twilio_line = tunnel.json_line().await;

    // 3. An unsigned request and 4. a Stripe event with a wrong signature.
    let r = send(
        relay.addr,
        "POST",
        &format!("{base}/plain"),
        &[],
        "needle-7731",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    let _ = app.next().await;
    let plain_line = tunnel.json_line().await;
    let bad = [
        ("content-type", "application/json"),
        (
            "stripe-signature",
            "t=1,v1=0000000000000000000000000000000000000000000000000000000000000000",
        ),
    ];
    let r = send(
        relay.addr,
        "POST",
        &format!("{base}/stripe"),
        &bad,
        stripe_body(5),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    let _ = app.next().await;
    let bad_line = tunnel.json_line().await;
    assert_eq!(stripe_line["verdict"], "valid");
    assert_eq!(stripe_line["provider"], "stripe");
    assert_eq!(stripe_line["event_name"], "payment_intent.succeeded");
    assert_eq!(stripe_line["event_id"], "evt_100");
    assert_eq!(stripe_line["lints"], serde_json::json!([]));
    assert_eq!(twilio_line["verdict"], "valid");
    assert_eq!(bad_line["verdict"], "invalid");

    // Captures survive a restart, with stable ids.
    tunnel.stop().await;
    let before = log_json(&home, &[]).await;
    assert_eq!(before.len(), 4);
    let mut tunnel = Tunnel::start(&relay, &app, &home);
    let _ = tunnel.json_line().await;
    let r = send(relay.addr, "GET", &format!("{base}/after-restart"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let _ = app.next().await;
    let after_line = tunnel.json_line().await;
    let after = log_json(&home, &[]).await;
    assert_eq!(after.len(), 5);
    assert!(ids(&before).iter().all(|id| ids(&after).contains(id)));
    assert!(after_line["id"].as_i64().unwrap() > *ids(&before).last().unwrap());

    // Each query filter.
    let stripe_id = stripe_line["id"].as_i64().unwrap();
    let twilio_id = twilio_line["id"].as_i64().unwrap();
    let rows = log_json(
        &home,
        &["--event", "payment_intent.succeeded", "--verdict", "valid"],
    )
    .await;
    assert_eq!(ids(&rows), vec![stripe_id]);
    let rows = log_json(&home, &["--status", "4xx"]).await;
    assert_eq!(rows.len(), 3);
    let rows = log_json(&home, &["--status", "200"]).await;
    assert_eq!(ids(&rows), ids(&[stripe_line.clone(), twilio_line.clone()]));
    let rows = log_json(&home, &["--verdict", "invalid"]).await;
    assert_eq!(ids(&rows), vec![bad_line["id"].as_i64().unwrap()]);
    let rows = log_json(&home, &["--grep", "needle-7731"]).await;
    assert_eq!(ids(&rows), vec![plain_line["id"].as_i64().unwrap()]);
    let rows = log_json(&home, &["--provider", "twilio"]).await;
    assert_eq!(ids(&rows), vec![twilio_id]);
    assert_eq!(log_json(&home, &["--since", "1h"]).await.len(), 5);
    assert_eq!(
        log_json(&home, &["--until", "2020-01-01T00:00:00Z"])
            .await
            .len(),
        0
    );
    assert_eq!(
        log_json(&home, &["--since", "2999-01-01T00:00:00Z"])
            .await
            .len(),
        0
    );
    let row = &log_json(&home, &["--provider", "twilio"]).await[0];
    assert_eq!(row["url"], url, "the log keeps the exact public URL");
    assert!(row["request"]["headers"].is_array());
    assert_eq!(row["replay_of"], serde_json::Value::Null);

    // Secrets are redacted in the log unless asked for.
    let (_, out, _) = cli(&home, &["log", "--json"]).await;
    let twilio_sig = twilio_seen.header("x-twilio-signature").unwrap();
    assert!(!out.contains(&twilio_sig), "signature leaked into the log");
    assert!(!out.contains(STRIPE) && !out.contains("whsec_"));
    let (_, out, _) = cli(&home, &["log", "--json", "--reveal-secrets"]).await;
    assert!(out.contains(&twilio_sig));

    // Replay verbatim: byte-identical at the local app.
    let (code, out, err) = cli(&home, &["replay", &twilio_id.to_string(), "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let replayed = app.next().await;
    assert_eq!(replayed.method, twilio_seen.method);
    assert_eq!(replayed.path_and_query, twilio_seen.path_and_query);
    assert_eq!(replayed.body, twilio_seen.body);
    assert_eq!(
        replayed.headers, twilio_seen.headers,
        "headers differ on replay"
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["replay_of"], twilio_id);
    assert_eq!(v["status"], 200);

    // Edited body: fails the app's check verbatim, passes with --resign (Twilio and Stripe).
    let edited_form = home.join("form.txt");
    std::fs::write(
        &edited_form,
        "To=%2B15551234567&From=%2B15557654321&Body=edited&MessageSid=SM1",
    )
    .unwrap();
    let edited_json = home.join("stripe.json");
    std::fs::write(&edited_json, stripe_body(999)).unwrap();
    // --resign without a secret is the user's to fix (exit 2), and says so once (issue 12
    // item 11: "no secret configured for stripe: no secret configured for stripe").
    let (code, _, err) = cli(&home, &["replay", &stripe_id.to_string(), "--resign"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot re-sign: no secret configured for stripe"),
        "{err}"
    );
    assert_eq!(err.matches("no secret configured").count(), 1, "{err}");
    for (id, file) in [(twilio_id, &edited_form), (stripe_id, &edited_json)] {
        let id = id.to_string();
        let file = file.to_str().unwrap();
        let (code, out, err) = cli(&home, &["replay", &id, "--body-file", file, "--json"]).await;
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["status"], 403, "an edited body must fail verbatim: {v}");
        let _ = app.next().await;
        let (code, out, err) = cli(
            &home,
            &[
                "replay",
                &id,
                "--body-file",
                file,
                "--resign",
                "--json",
                "--secret",
                &format!("stripe={STRIPE}"),
                "--secret",
                &format!("twilio={TWILIO}"),
            ],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["status"], 200, "re-signed replay rejected: {v}");
        assert_eq!(v["verdict"], "valid");
        let got = app.next().await;
        assert_eq!(got.body.as_ref(), std::fs::read(file).unwrap().as_slice());
    }
    let replays = log_json(&home, &["--limit", "100"]).await;
    assert_eq!(
        replays
            .iter()
            .filter(|r| r["replay_of"] == twilio_id)
            .count(),
        3
    );

    // HAR 1.2 that round-trips the body.
    let har = home.join("out.har");
    let (code, _, err) = cli(&home, &["export", "--har", har.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    assert_eq!(v["log"]["version"], "1.2");
    assert!(v["log"]["creator"]["name"].is_string());
    let entries = v["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), replays.len());
    let stripe_entry = entries
        .iter()
        .find(|e| {
            e["request"]["url"].as_str().unwrap().ends_with("/stripe")
                && e["response"]["status"] == 200
        })
        .unwrap();
    assert_eq!(stripe_entry["request"]["postData"]["text"], body);
    // The HAR's Host is its URL's (the public one), not the one the local app saw.
    let host_of = |e: &serde_json::Value| {
        e["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "host")
            .map(|h| h["value"].as_str().unwrap().to_owned())
    };
    let public_authority = public
        .split_once("://")
        .and_then(|(_, r)| r.split('/').next())
        .unwrap()
        .to_owned();
    assert_eq!(host_of(stripe_entry), Some(public_authority));
    let kept = home.join("kept.har");
    let (code, _, err) = cli(
        &home,
        &["export", "--har", kept.to_str().unwrap(), "--keep-host"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(
        host_of(&v["log"]["entries"][0]),
        stripe_seen.header("host"),
        "--keep-host keeps what the app saw"
    );

    // replay --to another host: Host names that host (here the same app, spelled
    // `localhost`, so the recorded `127.0.0.1:port` would disagree with the URL).
    let elsewhere = format!("http://localhost:{}", app.addr.port());
    let (code, _, err) = cli(
        &home,
        &["replay", &stripe_id.to_string(), "--to", &elsewhere],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let got = app.next().await;
    assert_eq!(
        got.header("host"),
        Some(format!("localhost:{}", app.addr.port()))
    );
    let (code, _, err) = cli(
        &home,
        &[
            "replay",
            &stripe_id.to_string(),
            "--to",
            &elsewhere,
            "--keep-host",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let got = app.next().await;
    assert_eq!(got.header("host"), stripe_seen.header("host"));
    assert!(!String::from_utf8_lossy(&std::fs::read(&har).unwrap()).contains("v1="));

    // curl export: made to be re-sent, so exact by default (it reproduces the request byte
    // for byte); `--redact` is for sharing it.
    let (code, out, _) = cli(
        &home,
        &["export", "--curl", &stripe_id.to_string(), "--redact"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        !out.contains("v1=") && out.contains("[REDACTED]"),
        "signature in a --redact curl export: {out}"
    );
    let (code, cmd, err) = cli(&home, &["export", "--curl", &stripe_id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        cmd.contains("v1="),
        "the default curl export must be exact: {cmd}"
    );
    let script = home.join("curl.sh");
    std::fs::write(&script, &cmd).unwrap();
    let status = Command::new("bash")
        .arg(&script)
        .stdout(Stdio::null())
        .status()
        .await;
    match status {
        Ok(s) => assert!(s.success(), "curl failed: {cmd}"),
        Err(e) => panic!("bash is needed to run the curl export: {e}"),
    }
    let again = app.next().await;
    assert_eq!(again.method, stripe_seen.method);
    assert_eq!(again.path_and_query, stripe_seen.path_and_query);
    assert_eq!(again.body, stripe_seen.body);
    let without_curl_defaults = |h: &Vec<(String, Vec<u8>)>| {
        h.iter()
            .filter(|(n, _)| n != "host" && n != "user-agent" && n != "accept")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        without_curl_defaults(&again.headers),
        without_curl_defaults(&stripe_seen.headers)
    );

    // The database is private.
    let db = home.join("data").join("captures.sqlite3");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "db mode {mode:o}");
    let dmode = std::fs::metadata(home.join("data"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700, "dir mode {dmode:o}");
    tunnel.stop().await;
}

/// A header value with an 8-bit CSI (U+009B, bytes C2 9B: hyper accepts obs-text) and a bidi
/// override: `--json` and `log --json` print them as `\u` escapes, never raw.
#[tokio::test]
async fn c1_controls_never_reach_json_output_raw() {
    trace_init();
    let home_dir = tempfile::tempdir().unwrap();
    let home: PathBuf = home_dir.path().to_path_buf();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let mut app = FakeTarget::echo().await;
    let mut tunnel = Tunnel::start(&relay, &app, &home);
    let _ready = tunnel.json_line().await;
    let raw_req = "POST /t/capt/hook HTTP/1.1\r\nhost: a\r\nx-evil: a\u{9b}2Jb\u{202e}c\r\n\
                   content-length: 9\r\n\r\n\u{9b}31mbody";
    let answer = raw(relay.addr, raw_req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = app.next().await;
    // Forwarded bytes are untouched.
    assert_eq!(seen.header("x-evil").unwrap(), "a\u{9b}2Jb\u{202e}c");
    let line = tokio::time::timeout(Duration::from_secs(10), tunnel.lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        !line.contains('\u{9b}') && !line.contains('\u{202e}'),
        "{line}"
    );
    tunnel.stop().await;
    let (code, out, err) = cli(&home, &["log", "--json", "--reveal-secrets"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\u{9b}'), "raw C1 in log --json");
    assert!(!out.contains('\u{202e}'), "raw bidi override in log --json");
    assert!(out.contains("\\u009b") && out.contains("\\u202e"), "{out}");
    // Still the same JSON: the escapes read back as the original characters.
    let row: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(row.to_string().contains("a\u{9b}2Jb\u{202e}c"), "{row}");
}

/// A Stripe event signed with `secret` for the public URL, as (headers, body).
fn stripe_signed(public: &str, amount: u32, secret: &str) -> (Vec<(String, String)>, String) {
    let body = stripe_body(amount);
    let view = RequestView::new("POST", public, body.as_bytes());
    let opts = SignOptions {
        timestamp: Some(now()),
        id: None,
    };
    let key = Secrets::new().with(Provider::Stripe, Secret::new(secret));
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    headers.extend(twk_providers::sign(Provider::Stripe, &view, &key, &opts).unwrap());
    (headers, body)
}

async fn send_owned(
    relay: &RelayHandle,
    path: &str,
    headers: &[(String, String)],
    body: String,
) -> Reply {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    send(relay.addr, "POST", path, &h, body).await.unwrap()
}

/// Issue 12 item 3: `--no-tui` lines say which webhook came in and whether it holds: a valid
/// Stripe event and one signed with another secret no longer print the same line; a 401
/// without a challenge shows its lint.
#[tokio::test]
async fn no_tui_lines_name_the_event_and_its_verdict() {
    trace_init();
    let home_dir = tempfile::tempdir().unwrap();
    let home: PathBuf = home_dir.path().to_path_buf();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let mut app = FakeTarget::with(|r| {
        let status = if r.path_and_query.ends_with("/bare") {
            401
        } else {
            200
        };
        http::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap()
    })
    .await;
    let secret = format!("stripe={STRIPE}");
    let mut tunnel = Tunnel::spawn(
        &relay,
        &app,
        &home,
        "plain",
        &["--no-tui", "--secret", &secret],
    );
    let ready = tunnel.line().await;
    let public = ready
        .strip_prefix("Forwarding ")
        .and_then(|r| r.split(" -> ").next())
        .unwrap_or_else(|| panic!("{ready}"))
        .to_owned();

    let (headers, body) = stripe_signed(&public, 100, STRIPE);
    assert_eq!(
        send_owned(&relay, "/t/plain/hooks/stripe", &headers, body)
            .await
            .status,
        200
    );
    let _ = app.next().await;
    let valid = tunnel.line().await;
    let (headers, body) = stripe_signed(&public, 5, "whsec_not_the_configured_one");
    assert_eq!(
        send_owned(&relay, "/t/plain/hooks/stripe", &headers, body)
            .await
            .status,
        200
    );
    let _ = app.next().await;
    let wrong = tunnel.line().await;

    assert!(
        valid.contains("--> stripe payment_intent.succeeded [evt_100] ✓ valid POST /hooks/stripe"),
        "{valid}"
    );
    assert!(valid.contains("<-- 200 "), "{valid}");
    assert!(
        wrong.contains("--> stripe payment_intent.succeeded [evt_5] ✗ invalid POST /hooks/stripe"),
        "{wrong}"
    );
    let verdict_part = |l: &str| l.split("<--").next().unwrap().replace(char::is_numeric, "");
    assert_ne!(verdict_part(&valid), verdict_part(&wrong));

    // A Bandwidth callback answered 401 without WWW-Authenticate: the lint that loses it shows
    // at once.
    let bandwidth = [("user-agent".to_owned(), "BandwidthAPI/v2".to_owned())];
    assert_eq!(
        send_owned(&relay, "/t/plain/cb/bare", &bandwidth, String::new())
            .await
            .status,
        401
    );
    let _ = app.next().await;
    let bare = tunnel.line().await;
    assert!(
        bare.contains("⚠ bare 401 POST /cb/bare  <-- 401 "),
        "{bare}"
    );
    // And says why under it, not only as a label.
    let why = tunnel.line().await;
    assert!(
        why.starts_with("          ⚠ 401-without-www-authenticate: 401 without a WWW-Authenticate"),
        "{why}"
    );
    assert!(why.contains("this callback is lost"), "{why}");
    tunnel.stop().await;
}

/// Writes the test's config file (0600, as twk wants it).
fn write_config(home: &Path, text: &str) {
    let dir = home.join("config").join("twk");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Issue 12 item 5: with `--basic-auth`, those credentials are the Bandwidth secret, so the
/// retry that passes twk's check is `valid`, not `no_secret`; a later `replay` or `verify` in
/// another process finds the same credentials in the environment or the config file, and
/// says where to put them when it finds none.
#[tokio::test]
async fn basic_auth_credentials_are_the_bandwidth_secret_for_every_command() {
    trace_init();
    let home_dir = tempfile::tempdir().unwrap();
    let home: PathBuf = home_dir.path().to_path_buf();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let mut app = FakeTarget::echo().await;
    let mut tunnel = Tunnel::spawn(
        &relay,
        &app,
        &home,
        "bw",
        &["--json", "--basic-auth", "bw-user:s3cret"],
    );
    let _ready = tunnel.json_line().await;
    let body = r#"[{"type":"message-delivered","to":"+15551234567","message":{"id":"m-1"}}]"#;
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("user-agent", "BandwidthAPI/v2".to_owned()),
    ];
    let h = |v: &[(&'static str, String)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect()
    };
    let r = send_owned(&relay, "/t/bw/status", &h(&headers), body.to_owned()).await;
    assert_eq!(r.status, 401);
    let leg1 = tunnel.json_line().await;
    // What Bandwidth sends on the retry: the credentials of its application, as Basic auth.
    let creds = Secrets::new().with(Provider::Bandwidth, Secret::new("bw-user:s3cret"));
    let view = RequestView::new("POST", "", body.as_bytes());
    let signed =
        twk_providers::sign(Provider::Bandwidth, &view, &creds, &SignOptions::default()).unwrap();
    for (n, v) in signed {
        assert!(n.eq_ignore_ascii_case("authorization"), "{n}");
        headers.push(("authorization", v));
    }
    let r = send_owned(&relay, "/t/bw/status", &h(&headers), body.to_owned()).await;
    assert_eq!(r.status, 200);
    let _ = app.next().await;
    let leg2 = tunnel.json_line().await;
    assert_eq!(leg1["provider"], "bandwidth");
    assert_eq!(leg1["verdict"], "unsigned", "{leg1}");
    assert_eq!(leg2["provider"], "bandwidth");
    assert_eq!(leg2["verdict"], "valid", "{leg2}");
    tunnel.stop().await;
    let id = leg2["id"].as_i64().unwrap().to_string();

    // With --strip-auth the stored retry has no Authorization; twk's own check vouches for it.
    let mut stripping = Tunnel::spawn(
        &relay,
        &app,
        &home,
        "bw-strip",
        &["--json", "--basic-auth", "bw-user:s3cret", "--strip-auth"],
    );
    let _ready = stripping.json_line().await;
    let without: Vec<_> = headers[..2].to_vec();
    let r = send_owned(&relay, "/t/bw-strip/status", &h(&without), body.to_owned()).await;
    assert_eq!(r.status, 401);
    assert_eq!(stripping.json_line().await["verdict"], "unsigned");
    let r = send_owned(&relay, "/t/bw-strip/status", &h(&headers), body.to_owned()).await;
    assert_eq!(r.status, 200);
    assert!(app.next().await.header("authorization").is_none());
    let stripped = stripping.json_line().await;
    assert_eq!(stripped["verdict"], "valid", "{stripped}");
    stripping.stop().await;

    // Another process, no credentials anywhere: no_secret, and where to put them.
    let (code, out, err) = cli(&home, &["replay", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(verdict now: no_secret)"), "{out}");
    for place in [
        "--secret bandwidth=user:pass",
        "BANDWIDTH_CALLBACK_CREDENTIALS",
        "[secrets] as bandwidth = ",
        "--basic-auth",
    ] {
        assert!(err.contains(place), "{place} missing: {err}");
    }
    // The tunnel's own environment variable for --basic-auth…
    let (code, out, err) = cli_env(
        &home,
        &["replay", &id],
        &[("TWK_BASIC_AUTH", "bw-user:s3cret")],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(verdict now: valid)"), "{out}");
    // …or the config file's basic_auth.
    write_config(&home, "basic_auth = \"bw-user:s3cret\"\n");
    let (code, out, err) = cli(&home, &["verify", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict    valid"), "{out}");
}

/// Issue 12 items 5 and 12: secrets given to the tunnel with --secret are not stored; a
/// later `replay` or `verify ID` reads them from the same places as the tunnel
/// (environment, config file, flag), and `verify ID --secret` re-checks with another one.
#[tokio::test]
async fn replay_and_verify_id_find_secrets_where_the_tunnel_does() {
    trace_init();
    let home_dir = tempfile::tempdir().unwrap();
    let home: PathBuf = home_dir.path().to_path_buf();
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let mut app = FakeTarget::echo().await;
    let mut tunnel = Tunnel::spawn(&relay, &app, &home, "sec", &["--json"]);
    let ready = tunnel.json_line().await;
    let public = ready["public_url"].as_str().unwrap().to_owned();
    let (headers, body) = stripe_signed(&public, 42, STRIPE);
    assert_eq!(
        send_owned(&relay, "/t/sec/hook", &headers, body)
            .await
            .status,
        200
    );
    let _ = app.next().await;
    let line = tunnel.json_line().await;
    assert_eq!(line["verdict"], "no_secret", "{line}");
    tunnel.stop().await;
    let id = line["id"].as_i64().unwrap().to_string();

    let (code, out, err) = cli(&home, &["replay", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(verdict now: no_secret)"), "{out}");
    for place in [
        "--secret stripe=whsec_",
        "STRIPE_WEBHOOK_SECRET",
        "[secrets]",
    ] {
        assert!(err.contains(place), "{place} missing: {err}");
    }
    let _ = app.next().await;
    let (code, out, err) = cli_env(
        &home,
        &["replay", &id, "--json"],
        &[("STRIPE_WEBHOOK_SECRET", STRIPE)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verdict"], "valid", "{v}");
    let _ = app.next().await;

    // verify ID: no secret, then each source, then another secret on the command line.
    let (code, out, _) = cli(&home, &["verify", &id]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no_secret") && out.contains("--secret stripe="),
        "{out}"
    );
    write_config(&home, &format!("[secrets]\nstripe = \"{STRIPE}\"\n"));
    let (code, out, err) = cli(&home, &["replay", &id, "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verdict"], "valid", "{v}");
    let (code, out, err) = cli(&home, &["verify", &id, "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["provider"], "stripe");
    assert_eq!(v["verdict"], "valid");
    assert_eq!(v["event"]["id"], "evt_42");
    let (code, out, _) = cli(&home, &["verify", &id, "--secret", "whsec_other"]).await;
    assert_eq!(code, 1, "a flag beats the config file: {out}");
    assert!(out.contains("verdict    invalid"), "{out}");
    let named = format!("stripe={STRIPE}");
    write_config(&home, "");
    let (code, out, _) = cli(&home, &["verify", &id, "--secret", &named]).await;
    assert_eq!(code, 0, "{out}");
    // Usage errors: an id that is not stored; an id with a request.
    let (code, _, err) = cli(&home, &["verify", "99999"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no exchange with id 99999"), "{err}");
    let (code, _, _) = cli(&home, &["verify", &id, "--body", "x"]).await;
    assert_eq!(code, 2);
}

/// Issue 12 item 12: `log` stops at 100 rows by default and now says so (on stderr: stdout
/// stays a table or NDJSON), and a table with AUTH marks explains them.
#[tokio::test]
async fn log_says_when_rows_are_left_out_and_explains_auth_marks() {
    let home_dir = tempfile::tempdir().unwrap();
    let home: PathBuf = home_dir.path().to_path_buf();
    let opts = twk_capture::StoreOptions::at(Some(&home.join("data"))).unwrap();
    let mut store = twk_capture::Store::open(&opts).unwrap();
    let t0 = now() * 1000 - 60_000;
    for i in 0..101 {
        let mut ex = twk_capture::Exchange {
            tunnel: "many".into(),
            method: "POST".into(),
            path: format!("/n/{i}"),
            public_url: format!("https://many.example/n/{i}"),
            remote_addr: Some("203.0.113.9:4000".into()),
            status: Some(200),
            ..Default::default()
        };
        ex.timings.received_ms = t0 + i;
        if i == 100 {
            // The newest: a Bandwidth callback answered 401 without a challenge (a leg 1
            // with a lint).
            ex.provider = Some("bandwidth".into());
            ex.status = Some(401);
            ex.response = Some(twk_capture::Message::default());
        }
        store.insert(&ex).unwrap();
    }
    drop(store);

    let (code, out, err) = cli(&home, &["log"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("100 of 101 shown; --limit N for more"),
        "{err}"
    );
    assert!(!out.contains("shown;"), "the footer is not table output");
    assert!(out.contains("AUTH: \u{1f512}1>7 leg 1"), "{out}");
    assert!(out.contains("lints: ! error, ? warning, i info"), "{out}");

    let (code, out, err) = cli(&home, &["log", "--json", "--limit", "3"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 of 101 shown"), "{err}");
    assert_eq!(out.lines().count(), 3);
    for l in out.lines() {
        let _: serde_json::Value = serde_json::from_str(l).unwrap();
    }
    // Everything shown: no footer; no AUTH marks: no legend.
    let (_, out, err) = cli(&home, &["log", "--limit", "0", "--status", "200"]).await;
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("/n/")).count(), 100);
    assert!(!out.contains("AUTH:"), "{out}");
    let (_, _, err) = cli(&home, &["log", "--limit", "101"]).await;
    assert!(err.is_empty(), "{err}");
    // A reader that has gone (`log --json | head`): no "Broken pipe" error, exit 0.
    let mut cmd = Command::new(BIN);
    cmd.args(["log", "--json", "--limit", "0"])
        .env("TWK_DATA_DIR", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}

/// The `[capture]` bounds of the config file hold for the real tunnel: distinct 100 KiB
/// uploads from a stranger keep at most `retention_total` rows and `body_files_max_bytes`
/// of body files; the oldest kept rows say their body was not kept, with its length and
/// hash.
#[tokio::test]
async fn the_capture_bounds_of_the_config_file_hold_for_the_real_tunnel() {
    trace_init();
    let home_dir = tempfile::tempdir().unwrap();
    let home: PathBuf = home_dir.path().to_path_buf();
    write_config(
        &home,
        "[capture]\nretention_total = 4\nbody_files_max_bytes = 250000\n",
    );
    let relay = spawn_relay(relay_config(tokens(&["tok"]))).await;
    let mut app = FakeTarget::with(|_| {
        http::Response::builder()
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap()
    })
    .await;
    let mut tunnel = Tunnel::spawn(&relay, &app, &home, "bounds", &["--json"]);
    let _ready = tunnel.json_line().await;
    let upload = |i: usize| format!("{i:06}").repeat(100 * 1024 / 6 + 1);
    for i in 0..6 {
        let reply = send(relay.addr, "POST", "/t/bounds/upload", &[], upload(i))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(app.next().await.body.len(), upload(i).len());
        let _line = tunnel.json_line().await;
    }
    tunnel.stop().await;

    let rows = log_json(&home, &[]).await;
    assert_eq!(rows.len(), 4, "retention_total = 4");
    // Oldest first: two 100 KiB bodies fit in 250,000 bytes of files, the newest two.
    let kept: Vec<bool> = rows
        .iter()
        .map(|r| !r["request"]["body_truncated"].as_bool().unwrap())
        .collect();
    assert_eq!(kept, [false, false, true, true]);
    for (row, i) in rows.iter().zip([2, 3, 4, 5]) {
        let req = &row["request"];
        let body = upload(i);
        assert_eq!(req["body_len"], body.len());
        assert_eq!(
            req["body_sha256"],
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
        );
        let got = req["body"].as_str().unwrap_or_default();
        assert!(
            got == body || got.is_empty(),
            "row {i}: a body is whole or not kept"
        );
    }
    let files = walkdir(&home.join("data").join("bodies"));
    assert_eq!(files, 2, "files no row names are gone");
}

/// The regular files under `dir`, at any depth.
fn walkdir(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walkdir(&e.path()),
                Ok(t) if t.is_file() => 1,
                _ => 0,
            })
            .sum()
    })
}
