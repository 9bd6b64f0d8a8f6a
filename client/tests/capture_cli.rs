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
        let mut child = Command::new(BIN)
            .args([
                "--relay",
                &relay.url(false),
                "--name",
                "capt",
                "--json",
                "--secret",
                &format!("stripe={STRIPE}"),
                "--secret",
                &format!("twilio={TWILIO}"),
                &target.addr.to_string(),
            ])
            .env("TWK_TOKEN", "tok")
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

    async fn json_line(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("no line within 10 s")
            .unwrap()
            .expect("tunnel exited");
        serde_json::from_str(&line).unwrap()
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
    let out = Command::new(BIN)
        .args(args)
        .env("TWK_DATA_DIR", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("STRIPE_WEBHOOK_SECRET")
        .env_remove("TWILIO_AUTH_TOKEN")
        .output()
        .await
        .unwrap();
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
    assert!(!String::from_utf8_lossy(&std::fs::read(&har).unwrap()).contains("v1="));

    // curl export: redacted by default; revealed, it reproduces the request byte for byte.
    let (code, out, _) = cli(&home, &["export", "--curl", &stripe_id.to_string()]).await;
    assert_eq!(code, 0);
    assert!(
        !out.contains("v1="),
        "signature in a default curl export: {out}"
    );
    let (code, cmd, err) = cli(
        &home,
        &[
            "export",
            "--curl",
            &stripe_id.to_string(),
            "--reveal-secrets",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
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
