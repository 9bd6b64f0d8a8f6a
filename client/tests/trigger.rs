//! `twk-tunnel trigger` end to end (issue 15): real processes — an app that checks every
//! webhook with the providers' **official** SDKs (tests/oracle/webhook_app.py, in the venv
//! of tests/oracle/setup.sh), a real `twk-tunnel` on its embedded relay in front of it, and
//! `trigger` finding the tunnel through its runtime file.
//!
//! - every event of every provider passes the SDK's check through the tunnel, and the tunnel
//!   records each as valid; a tampered secret makes the SDK reject it (trigger exits 1);
//! - Bandwidth's sender: challenge then credentials (both legs paired in the capture), a
//!   bare 401 loses the callback, North America retried on a compressed clock,
//!   international never;
//! - a slow app is reported as the provider timing out; no tunnel is a clear usage error;
//! - with no secret configured anywhere, `trigger` signs with twk's test secret (made once,
//!   kept 0600) and the running tunnel records the webhook valid, marked `twk-test` (this
//!   test needs no SDK venv: its app is an echo server).
#![allow(clippy::unwrap_used)]

#[path = "support/app.rs"]
mod app;
#[path = "support/home.rs"]
mod home;
#[path = "support/ndjson.rs"]
mod ndjson;
#[path = "support/venv.rs"]
mod venv;

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use twk_providers::Provider;

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");

/// The secret each provider's webhooks are signed with, known to the app and the tunnel.
fn secret(p: Provider) -> &'static str {
    match p {
        Provider::Twilio => "12345678901234567890123456789012",
        Provider::AuthyOnetouch => "onetouch-api-key-0123456789",
        Provider::AuthyWebhook => "WSK_trigger_test_signing_key_0123456789",
        Provider::Bandwidth => "bw-user:bw-pass-123",
        Provider::Stripe => "whsec_trigger_test_secret",
        Provider::Github => "It's a Secret to Everybody",
        Provider::Slack => "8f742231b10e8888abcd99yyyzzz85a5",
        Provider::Shopify => "test_secret_key",
        Provider::StandardWebhooks | Provider::Svix => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
}

/// An app, a tunnel in front of it, and the private directories they use.
struct Setup {
    home: tempfile::TempDir,
    app: Child,
    tunnel: Option<Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.app.kill();
        if let Some(t) = &mut self.tunnel {
            let _ = t.kill();
            let _ = t.wait();
        }
        let _ = self.app.wait();
    }
}

/// A twk process of a test: its own home, and the providers' secrets in their environment
/// variables.
fn twk(home: &Path) -> Command {
    let mut c = home::command(BIN, home);
    for p in Provider::ALL {
        c.env(p.secret_env_var(), secret(p));
    }
    c
}

/// Starts the SDK app and, when `tunnel`, a tunnel to it; `None` when the SDK venv is
/// unavailable and skipping was asked for.
fn setup(tunnel: bool) -> Option<Setup> {
    let python = venv::oracle_python()?;
    let home = tempfile::tempdir().unwrap();
    let secrets: serde_json::Map<String, Value> = Provider::ALL
        .iter()
        .map(|p| (p.as_str().to_owned(), Value::from(secret(*p))))
        .collect();
    let (app, port) = app::start(&python, &venv::workspace(), &Value::Object(secrets));
    let mut s = Setup {
        home,
        app,
        tunnel: None,
    };
    if tunnel {
        let mut child = twk(s.home.path())
            .args([&port, "--json", "--embedded-port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The tunnel publishes its URL before it prints "ready".
        let ready = lines.next().expect("tunnel output").unwrap();
        assert!(ready.contains("\"ready\""), "{ready}");
        // Keep draining: a full pipe would stall the tunnel's printer.
        std::thread::spawn(move || lines.for_each(drop));
        s.tunnel = Some(child);
    }
    Some(s)
}

/// What one `trigger` run printed.
struct Run {
    code: i32,
    attempts: Vec<Value>,
    stderr: String,
}

fn trigger(s: &Setup, args: &[&str]) -> Run {
    let out = twk(s.home.path())
        .arg("trigger")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        attempts: stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn log(s: &Setup) -> Vec<Value> {
    let out = twk(s.home.path())
        .args(["log", "--json", "--limit", "0"])
        .output()
        .unwrap();
    ndjson::lines(&out)
}

/// How many requests reached `route` of the app (its own count, over HTTP).
fn app_count(s: &Setup, route: &str) -> u64 {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect(format!("127.0.0.1:{}", app_port(s))).unwrap();
    write!(
        c,
        "GET /count{route} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    c.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str::<Value>(body).unwrap()["count"]
        .as_u64()
        .unwrap()
}

fn app_port(s: &Setup) -> String {
    let dir = s.home.path().join("run/twk");
    let file = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let v: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v["target"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn every_event_of_every_provider_passes_the_official_sdks_through_the_tunnel() {
    let Some(s) = setup(true) else { return };
    let (mut attempts, mut refused) = (0, 0);
    for p in Provider::ALL
        .into_iter()
        .filter(|p| *p != Provider::Bandwidth)
    {
        let path = format!("/{}", p.as_str());
        for spec in twk_trigger::events(p) {
            let r = trigger(&s, &[p.as_str(), spec.name, "--path", &path]);
            let what = format!(
                "{} {}: {:?} {}",
                p.as_str(),
                spec.name,
                r.attempts,
                r.stderr
            );
            assert_eq!(r.code, 0, "{what}");
            let last = r.attempts.last().unwrap();
            assert_eq!(last["fate"], "delivered", "{what}");
            assert_eq!(
                (&last["status"], &last["event"]),
                (&Value::from(200), &Value::from(spec.name))
            );
            attempts += r.attempts.len();
        }
        // Signed with another secret: the official SDK must refuse it (a sender that
        // retries at once tries twice).
        let first = twk_trigger::events(p)[0].name;
        let wrong = ["--secret", "tampered-secret-0000"];
        let r = trigger(
            &s,
            &[&[p.as_str(), first, "--path", &path][..], &wrong[..]].concat(),
        );
        assert_eq!(r.code, 1, "{}: the SDK accepted a wrong secret", p.as_str());
        assert!(
            r.attempts.iter().all(|a| a["status"] == 400),
            "{:?}",
            r.attempts
        );
        attempts += r.attempts.len();
        refused += r.attempts.len();
    }
    // The tunnel recorded every attempt, with the verdict the SDK gave.
    let rows = log(&s);
    assert_eq!(rows.len(), attempts);
    let valid = rows.iter().filter(|r| r["verdict"] == "valid").count();
    assert_eq!(valid, attempts - refused, "{rows:?}");
}

#[test]
fn bandwidth_challenges_retries_and_loses_like_the_real_sender() {
    let Some(s) = setup(true) else { return };
    // The app enforces Basic auth: 401 + WWW-Authenticate, then the credentials leg.
    let r = trigger(
        &s,
        &["bandwidth", "message-delivered", "--path", "/bandwidth"],
    );
    assert_eq!(r.code, 0, "{:?}", r.attempts);
    let legs: Vec<&str> = r
        .attempts
        .iter()
        .map(|a| a["leg"].as_str().unwrap())
        .collect();
    assert_eq!(legs, ["unauthenticated", "with_credentials"]);
    assert_eq!(r.attempts[0]["status"], 401);
    assert_eq!(r.attempts[0]["next"], "challenge");
    // Both legs are paired in the capture.
    let rows = log(&s);
    let hs: Vec<&Value> = rows.iter().map(|r| &r["handshake"]).collect();
    assert_eq!(hs.len(), 2);
    assert!(hs.iter().all(|h| !h.is_null()), "{hs:?}");
    let (newest, oldest) = (&rows[0], &rows[1]);
    assert_eq!(newest["handshake"]["with"], oldest["id"]);
    // A bare 401: Bandwidth never sends the credentials; the callback is lost.
    let r = trigger(
        &s,
        &[
            "bandwidth",
            "message-delivered",
            "--path",
            "/bandwidth-bare",
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0]["fate"], "lost");
    assert!(
        r.attempts[0]["says"]
            .as_str()
            .unwrap()
            .contains("without WWW-Authenticate")
    );
    // North America: retried (a day compressed into seconds) until the app recovers.
    let r = trigger(
        &s,
        &[
            "bandwidth",
            "2fa.message-delivered",
            "--path",
            "/flaky/3",
            "--retry-speed",
            "3600",
        ],
    );
    assert_eq!(r.code, 0, "{:?}", r.attempts);
    assert_eq!(r.attempts.len(), 4);
    assert_eq!(r.attempts[2]["next"], "retry");
    assert_eq!(app_count(&s, "/flaky/3"), 4);
    // An app that never recovers: Bandwidth gives up 24 h after the first attempt in its own
    // time (60 s doubling to 1 h: 29 attempts), here ~2.4 s, not one attempt a second forever.
    let r = trigger(
        &s,
        &[
            "bandwidth",
            "2fa.message-failed",
            "--path",
            "/fail/na",
            "--retry-speed",
            "36000",
        ],
    );
    assert_eq!(r.code, 1, "{:?}", r.attempts);
    let last = r.attempts.last().unwrap();
    assert_eq!(last["fate"], "lost", "{last}");
    assert!(last["says"].as_str().unwrap().contains("24 h"), "{last}");
    assert!(
        (26..=31).contains(&r.attempts.len()),
        "{}",
        r.attempts.len()
    );
    assert_eq!(app_count(&s, "/fail/na"), r.attempts.len() as u64);
    // Without --retry-speed: said, not waited for.
    let r = trigger(&s, &["bandwidth", "2fa.message-failed", "--path", "/fail"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0]["fate"], "will_retry");
    assert_eq!(r.attempts[0]["retry_in_ms"], 60_000);
    // International: never retried, even with the clock compressed.
    let r = trigger(
        &s,
        &[
            "bandwidth",
            "2fa.message-failed",
            "--set",
            "to=+447700900123",
            "--path",
            "/fail",
            "--retry-speed",
            "3600",
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0]["fate"], "lost");
    assert!(
        r.attempts[0]["says"]
            .as_str()
            .unwrap()
            .contains("international")
    );
    assert_eq!(app_count(&s, "/fail"), 2);
}

#[test]
fn a_slow_app_is_the_provider_timing_out_and_no_tunnel_is_a_usage_error() {
    let Some(s) = setup(true) else { return };
    let r = trigger(
        &s,
        &[
            "twilio",
            "message.delivered",
            "--path",
            "/slow/2000",
            "--deadline",
            "300ms",
        ],
    );
    assert_eq!(r.code, 1, "{:?}", r.attempts);
    // Twilio retries a timeout once, at once, then gives up.
    assert_eq!(r.attempts.len(), 2);
    assert!(r.attempts.iter().all(|a| a["outcome"] == "timeout"));
    assert_eq!(r.attempts[1]["fate"], "lost");
    assert!(
        r.attempts[0]["says"]
            .as_str()
            .unwrap()
            .contains("would have given up")
    );
    // Straight to the app, bypassing the tunnel.
    let to = format!("http://127.0.0.1:{}/github", app_port(&s));
    let r = trigger(&s, &["github", "ping", "--to", &to]);
    assert_eq!(r.code, 0, "{:?}", r.attempts);

    let Some(none) = setup(false) else { return };
    let r = trigger(&none, &["stripe", "payment_intent.succeeded"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no running twk-tunnel"), "{}", r.stderr);
    let r = trigger(
        &none,
        &["stripe", "no.such.event", "--to", "http://127.0.0.1:9/"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("trigger --list stripe"), "{}", r.stderr);
}

/// A `--to` that is no URL, or a zero `--deadline`, is a usage error (exit 2) found before
/// anything is generated or sent; `localhost:3000` gets the URL it most likely meant.
#[test]
fn bad_flags_are_refused_before_anything_is_sent() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("trigger")
            .args(args)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("TWK_DATA_DIR", home.path().join("data"))
            .env_remove("STRIPE_WEBHOOK_SECRET")
            .output()
            .unwrap()
    };
    let out = run(&[
        "stripe",
        "payment_intent.succeeded",
        "--to",
        "localhost:3000",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("e.g. http://localhost:3000"), "{err}");
    assert!(out.stdout.is_empty(), "nothing was sent");
    assert!(!err.contains("test secret"), "no secret was made: {err}");
    assert!(
        !home.path().join("data/test-secrets.toml").exists(),
        "no secret was made"
    );
    let out = run(&[
        "stripe",
        "payment_intent.succeeded",
        "--to",
        "http://localhost:3000",
        "--deadline",
        "0s",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("longer than 0"), "{err}");
}

/// A `twk-tunnel` in `home` with no provider secret anywhere: none in the environment that
/// runs the tests either.
fn unconfigured(home: &Path) -> Command {
    let mut c = home::command(BIN, home);
    for p in Provider::ALL {
        c.env_remove(p.secret_env_var());
    }
    for k in [
        "TWILIO_SECONDARY_AUTH_TOKEN",
        "WEBHOOK_SECRET",
        "BANDWIDTH_CALLBACK_USERNAME",
        "BANDWIDTH_CALLBACK_PASSWORD",
    ] {
        c.env_remove(k);
    }
    c
}

/// `trigger ARGS --json` through the tunnel of `home`: exit code, stderr.
async fn trigger_unconfigured(home: &Path, args: &[&str]) -> (i32, String) {
    let mut c = unconfigured(home);
    c.arg("trigger").args(args).arg("--json");
    let out = tokio::process::Command::from(c).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The secret a test-secret message names (`…for Stripe, whsec_… (…`).
fn named_secret(stderr: &str) -> &str {
    let at = stderr
        .find("for Stripe, ")
        .unwrap_or_else(|| panic!("{stderr}"))
        + 12;
    stderr[at..].split(' ').next().unwrap()
}

/// A tunnel in `home` with no secret configured, on its embedded relay, in front of the
/// app on `port`; its NDJSON lines one by one.
struct UnconfiguredTunnel {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl UnconfiguredTunnel {
    /// Starts it and waits for `ready` (its runtime file is written by then).
    async fn start(home: &Path, port: u16) -> UnconfiguredTunnel {
        let mut child = tokio::process::Command::from(unconfigured(home))
            .args([&port.to_string(), "--json", "--embedded-port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().unwrap(),
        ));
        let mut t = UnconfiguredTunnel { child, lines };
        assert_eq!(t.next().await["event"], "ready");
        t
    }

    /// Its next line.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("a line within 10 s")
            .unwrap()
            .expect("the tunnel's output");
        serde_json::from_str(&line).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_secret_configured_trigger_and_the_tunnel_share_twks_test_secret() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = twk_e2e::FakeTarget::echo().await;
    let home = tempfile::tempdir().unwrap();
    let mut tunnel = UnconfiguredTunnel::start(home.path(), app.addr.port()).await;

    // The first use makes the secret (after the tunnel started) and says so, once.
    let (code, err) =
        trigger_unconfigured(home.path(), &["stripe", "payment_intent.succeeded"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no Stripe webhook secret configured"), "{err}");
    assert!(err.contains("made now"), "{err}");
    assert!(err.contains("twk-tunnel checks it already"), "{err}");
    let secret = named_secret(&err).to_owned();
    assert!(secret.starts_with("whsec_"), "{err}");
    assert!(
        err.contains(&format!("STRIPE_WEBHOOK_SECRET={secret}")),
        "{err}"
    );
    let file = home.path().join("data/twk/test-secrets.toml");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&format!("stripe = \"{secret}\""))
    );
    let ex = tunnel.next().await;
    assert_eq!(
        (&ex["verdict"], &ex["secret"]),
        (&"valid".into(), &"twk-test".into()),
        "{ex}"
    );

    // Later uses reuse it.
    let (code, err) = trigger_unconfigured(home.path(), &["stripe", "charge.refunded"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(named_secret(&err), secret, "{err}");
    assert!(!err.contains("made now"), "{err}");
    let ex = tunnel.next().await;
    assert_eq!(
        (&ex["verdict"], &ex["secret"]),
        (&"valid".into(), &"twk-test".into()),
        "{ex}"
    );

    // Signed with another secret (a real Stripe's): not invalid, just no secret.
    let other = [
        "stripe",
        "invoice.paid",
        "--secret",
        "whsec_someone_elses_secret",
    ];
    let (code, err) = trigger_unconfigured(home.path(), &other).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("test secret"), "{err}");
    let ex = tunnel.next().await;
    assert_eq!(
        (&ex["verdict"], &ex["secret"]),
        (&"no_secret".into(), &Value::Null),
        "{ex}"
    );

    // Bandwidth with no credentials configured sends none, and gets no test secret.
    let (code, err) = trigger_unconfigured(home.path(), &["bandwidth", "message-delivered"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("test secret"), "{err}");
    assert!(
        !std::fs::read_to_string(&file)
            .unwrap()
            .contains("bandwidth")
    );
    tunnel.next().await;

    // The history says the same, and `verify` agrees.
    let mut log = unconfigured(home.path());
    log.args(["log", "--json", "--limit", "0"]);
    let rows = ndjson::lines(&tokio::process::Command::from(log).output().await.unwrap());
    let got: Vec<(&Value, &Value)> = rows.iter().map(|r| (&r["verdict"], &r["secret"])).collect();
    let (valid, test, none) = (
        Value::from("valid"),
        Value::from("twk-test"),
        Value::from("no_secret"),
    );
    assert_eq!(
        got[..3],
        [(&valid, &test), (&valid, &test), (&none, &Value::Null)],
        "{rows:?}"
    );
    let mut table = unconfigured(home.path());
    table.arg("log");
    let out = tokio::process::Command::from(table).output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (twk-test)"));
    let first = rows[0]["id"].to_string();
    let mut verify = unconfigured(home.path());
    verify.args(["verify", &first]);
    let out = tokio::process::Command::from(verify)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("twk's test secret"), "{text}");
    tunnel.child.kill().await.unwrap();
}

/// `twk-tunnel ARGS` in `home` with no secret configured: exit code, stdout, stderr.
async fn run_unconfigured(home: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = unconfigured(home);
    c.args(args);
    let out = tokio::process::Command::from(c).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The verdict `secret` gives a Stripe webhook the app received.
fn stripe_verdict(got: &twk_e2e::Received, secret: &str) -> String {
    let mut view = twk_providers::RequestView::new("POST", "http://app/", &got.body);
    for (n, v) in &got.headers {
        view = view.with_header(n, v);
    }
    let secrets =
        twk_providers::Secrets::new().with(Provider::Stripe, twk_providers::Secret::new(secret));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let opts = twk_providers::VerifyOptions::at(now);
    twk_providers::analyze(&view, &secrets, &opts)
        .verdict
        .as_str()
        .to_owned()
}

/// A webhook `trigger` signed with twk's test secret, edited and replayed with `--resign`,
/// is re-signed with that secret (no secret configured), so the replay is as valid as the
/// original was; a configured secret wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resign_with_no_secret_configured_signs_with_twks_test_secret() {
    let mut app = twk_e2e::FakeTarget::echo().await;
    let home = tempfile::tempdir().unwrap();
    let mut tunnel = UnconfiguredTunnel::start(home.path(), app.addr.port()).await;
    let (code, err) =
        trigger_unconfigured(home.path(), &["stripe", "payment_intent.succeeded"]).await;
    assert_eq!(code, 0, "{err}");
    let test = named_secret(&err).to_owned();
    let original = tunnel.next().await;
    assert_eq!(original["secret"], "twk-test", "{original}");
    let _ = app.next().await;

    let id = original["id"].to_string();
    let edited = home.path().join("edited.json");
    std::fs::write(&edited, r#"{"id":"evt_1","type":"invoice.paid"}"#).unwrap();
    let edited = edited.to_str().unwrap();
    let replay = ["replay", &id, "--body-file", edited, "--resign", "--json"];
    let (code, out, err) = run_unconfigured(home.path(), &replay).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (&v["verdict"], &v["secret"], &v["replay_of"]),
        (&"valid".into(), &"twk-test".into(), &original["id"]),
        "{v}"
    );
    let got = app.next().await;
    assert_eq!(&got.body[..], std::fs::read(edited).unwrap().as_slice());
    assert_eq!(stripe_verdict(&got, &test), "valid");

    // A configured secret wins: the replay is signed with it, not with the test secret.
    let configured = "whsec_configured_for_this_replay";
    let flag = format!("stripe={configured}");
    let (code, out, err) =
        run_unconfigured(home.path(), &[&replay[..], &["--secret", &flag]].concat()).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (&v["verdict"], &v["secret"]),
        (&"valid".into(), &"configured".into())
    );
    let got = app.next().await;
    assert_eq!(stripe_verdict(&got, configured), "valid");
    assert_eq!(stripe_verdict(&got, &test), "invalid");
    tunnel.child.kill().await.unwrap();
}

/// `trigger` signs with the test secret of the tunnel it goes through even when
/// `TWK_DATA_DIR` in its own environment names another directory (the tunnel would never
/// check that one); an explicit `--data-dir` still wins over the tunnel's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_signs_with_the_tunnels_test_secret_over_twk_data_dir_but_not_over_the_flag() {
    let app = twk_e2e::FakeTarget::echo().await;
    let home = tempfile::tempdir().unwrap();
    let mut tunnel = UnconfiguredTunnel::start(home.path(), app.addr.port()).await;
    let elsewhere = home.path().join("elsewhere");
    let mut c = unconfigured(home.path());
    c.args(["trigger", "stripe", "invoice.paid", "--json"])
        .env("TWK_DATA_DIR", &elsewhere);
    let out = tokio::process::Command::from(c).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let tunnels = home.path().join("data/twk/test-secrets.toml");
    assert!(err.contains(&tunnels.display().to_string()), "{err}");
    assert!(
        !elsewhere.exists(),
        "nothing is made where the tunnel does not look"
    );
    let ex = tunnel.next().await;
    assert_eq!(
        (&ex["verdict"], &ex["secret"]),
        (&"valid".into(), &"twk-test".into()),
        "{ex}"
    );

    let flag = home.path().join("flag");
    let args = [
        "stripe",
        "invoice.paid",
        "--data-dir",
        flag.to_str().unwrap(),
    ];
    let (code, err) = trigger_unconfigured(home.path(), &args).await;
    assert_eq!(code, 0, "{err}");
    assert!(flag.join("test-secrets.toml").exists(), "{err}");
    let ex = tunnel.next().await;
    assert_eq!(
        ex["verdict"], "no_secret",
        "the tunnel checks its own: {ex}"
    );
    tunnel.child.kill().await.unwrap();
}

/// A test secrets file twk cannot parse is an error naming it (exit 2), never replaced.
#[test]
fn a_corrupt_test_secrets_file_is_a_usage_error_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("data/twk/test-secrets.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "stripe = \"whsec_x\"\ngarbage\n").unwrap();
    let out = unconfigured(home.path())
        .args([
            "trigger",
            "stripe",
            "invoice.paid",
            "--to",
            "http://127.0.0.1:9/",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(!err.contains("whsec_x"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "stripe = \"whsec_x\"\ngarbage\n"
    );
    assert!(out.stdout.is_empty(), "nothing was sent");
}

/// The app's answer to a call's webhook, as Bandwidth and Twilio run it: a JSON answer to
/// Bandwidth's `initiate` and `<say>` to Twilio's incoming call are errors the tunnel names
/// (`invalid-bxml`, `invalid-twiml`), with what the provider then does; BXML that Bandwidth
/// can run, an ignored status callback's JSON and an SMS answered with text/plain (which
/// Twilio would send back as a reply) are told apart. `log --lint` finds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_call_webhooks_that_the_provider_cannot_run_are_named() {
    use http_body_util::Full;
    let app = twk_e2e::FakeTarget::with(|r: &twk_e2e::Received| {
        let (ct, body): (&str, &str) = match r.path_and_query.as_str() {
            "/bw-good" => (
                "application/xml",
                "<?xml version=\"1.0\"?><Response><SpeakSentence>Hi</SpeakSentence></Response>",
            ),
            "/tw-say" => ("text/xml", "<Response><say>Hi</say></Response>"),
            "/tw-sms" => ("text/plain", "OK"),
            _ => ("application/json", "{\"ok\":true}"),
        };
        let mut body = bytes::Bytes::from(body);
        if r.path_and_query == "/slack-echo" {
            // Slack's Request URL check answered as its docs say: the challenge, as text.
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            body = bytes::Bytes::from(v["challenge"].as_str().unwrap_or_default().to_owned());
        }
        let mut resp = http::Response::new(Full::new(body));
        resp.headers_mut()
            .insert("content-type", ct.parse().unwrap());
        resp
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let mut tunnel = UnconfiguredTunnel::start(home.path(), app.addr.port()).await;
    let mut lints_of = async |args: &[&str]| {
        let (code, err) = trigger_unconfigured(home.path(), args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        let line = tunnel.next().await;
        let lints: Vec<(String, String)> = line["lints"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        let s = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
                        (s("code"), s("message"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        lints
    };

    let bw = lints_of(&["bandwidth", "voice.initiate", "--path", "/bw-json"]).await;
    assert_eq!(bw.len(), 1, "{bw:?}");
    assert_eq!(bw[0].0, "invalid-bxml");
    assert!(
        bw[0].1.contains("(initiate)")
            && bw[0].1.contains("application/json, not XML")
            && bw[0].1.contains("cause invalid-bxml"),
        "{}",
        bw[0].1
    );
    let good = lints_of(&["bandwidth", "voice.answer", "--path", "/bw-good"]).await;
    assert!(good.is_empty(), "{good:?}");
    let ignored = lints_of(&["bandwidth", "voice.disconnect", "--path", "/bw-json"]).await;
    assert!(
        ignored.is_empty(),
        "a disconnect's answer is ignored: {ignored:?}"
    );
    let tw = lints_of(&["twilio", "call.ringing", "--path", "/tw-say"]).await;
    assert_eq!(tw.len(), 1, "{tw:?}");
    assert_eq!(tw[0].0, "invalid-twiml");
    assert!(tw[0].1.contains("case-sensitive: <Say>"), "{}", tw[0].1);
    let sms = lints_of(&["twilio", "message.received", "--path", "/tw-sms"]).await;
    assert!(sms.len() == 1 && sms[0].1.contains("SMS reply"), "{sms:?}");
    let status = lints_of(&["twilio", "call.completed", "--path", "/tw-sms"]).await;
    assert!(
        status.is_empty(),
        "a status callback's answer is not run: {status:?}"
    );

    // The sender says it too: delivered (exit 0), but Bandwidth cannot run it.
    let mut c = unconfigured(home.path());
    c.args(["trigger", "bandwidth", "voice.gather", "--path", "/tw-say"]);
    let out = tokio::process::Command::from(c).output().await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(
            "⚠ delivered, but Bandwidth cannot run the answer as BXML: <say> is not a verb"
        ),
        "{said}"
    );
    tunnel.next().await;
    let mut c = unconfigured(home.path());
    c.args([
        "trigger",
        "twilio",
        "call.ringing",
        "--path",
        "/bw-good",
        "--json",
    ]);
    let out = tokio::process::Command::from(c).output().await.unwrap();
    let attempt: Value = ndjson::lines(&out).pop().unwrap();
    assert_eq!(attempt["fate"], "delivered");
    assert_eq!(
        attempt["answer_problems"][0],
        "Twilio cannot run the answer as TwiML: <SpeakSentence> is not a verb (that is BXML: \
         TwiML says <Say>)",
        "{attempt}"
    );
    tunnel.next().await;
    // Slack's Request URL check: an answer without the challenge leaves the URL unverified.
    for (path, problem) in [("/bw-json", true), ("/slack-echo", false)] {
        let mut c = unconfigured(home.path());
        c.args([
            "trigger",
            "slack",
            "url_verification",
            "--path",
            path,
            "--json",
        ]);
        let out = tokio::process::Command::from(c).output().await.unwrap();
        let attempt: Value = ndjson::lines(&out).pop().unwrap();
        assert_eq!(attempt["fate"], "delivered", "{attempt}");
        let said = attempt["answer_problems"][0].as_str().unwrap_or_default();
        assert_eq!(
            said.starts_with("Slack does not verify the Request URL") && said.contains("`{"),
            problem,
            "{path}: {attempt}"
        );
        tunnel.next().await;
    }
    let (code, _) = trigger_unconfigured(
        home.path(),
        &["bandwidth", "voice.answer", "--path", "/bw-good"],
    )
    .await;
    assert_eq!(code, 0);
    tunnel.next().await;

    let mut log = unconfigured(home.path());
    log.args(["log", "--lint", "invalid-twiml"]);
    let out = tokio::process::Command::from(log).output().await.unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert_eq!(table.matches("bad TwiML").count(), 3, "{table}");
    assert!(!table.contains("bad BXML"), "{table}");
    tunnel.child.kill().await.unwrap();
}
