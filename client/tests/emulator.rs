//! The Twilio Verify / Authy emulator end to end (issue 17): real processes — an app that
//! checks every webhook with the providers' official SDKs (tests/oracle/webhook_app.py), a
//! `twk-tunnel` in front of it, `twk-tunnel emulate`, and tests/oracle/emulator_flow.py,
//! which registers webhooks with the official `twilio` SDK (and Authy's Webhooks API signed
//! as its demo signs), fires events with `trigger --emulator`, and checks what reached the
//! app. The flows' own asserts are listed in that script.
#![allow(clippy::unwrap_used)]

#[path = "support/app.rs"]
mod app;
#[path = "support/home.rs"]
mod home;
#[path = "support/ndjson.rs"]
mod ndjson;
#[path = "support/venv.rs"]
mod venv;

use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// The emulator's auth token, and so the Twilio secret of the app and the tunnel.
const TOKEN: &str = "emulator-auth-token-0123456789ab";

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A twk process of a test: its own home, and the emulator's token as the Twilio secret.
fn twk(home: &Path) -> Command {
    let mut c = home::command(BIN, home);
    c.env("TWILIO_AUTH_TOKEN", TOKEN);
    c
}

/// Reads `child`'s stdout up to the line `ready`, keeps draining the rest.
fn until_ready(child: &mut Child) -> Vec<String> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "ready" || line.contains("\"ready\"") {
            break;
        }
        seen.push(line);
    }
    std::thread::spawn(move || lines.for_each(drop));
    seen
}

/// The word after `key` on the banner line that has it.
fn after(lines: &[String], key: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.split(key).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {key:?} in {lines:?}"))
        .to_owned()
}

struct World {
    home: tempfile::TempDir,
    python: PathBuf,
    app: String,
    public: String,
    emulator: Vec<String>,
    _procs: Procs,
}

fn world() -> Option<World> {
    let python = venv::oracle_python()?;
    let home = tempfile::tempdir().unwrap();
    let secrets = json!({"twilio": TOKEN});
    let (app, port) = app::start(&python, &venv::workspace(), &secrets);
    let mut procs = Procs(vec![app]);
    let mut tunnel = twk(home.path())
        .args([&port, "--json", "--embedded-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    until_ready(&mut tunnel);
    procs.0.push(tunnel);
    let mut emulator = twk(home.path())
        .args([
            "emulate",
            "--listen",
            "127.0.0.1:0",
            "--account-sid",
            ACCOUNT,
        ])
        .args(["--auth-token", TOKEN])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let banner = until_ready(&mut emulator);
    procs.0.push(emulator);
    let runtime = home.path().join("run/twk");
    let tunnel_file = std::fs::read_dir(&runtime)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("tunnel-")
        })
        .unwrap();
    let live: Value = serde_json::from_slice(&std::fs::read(tunnel_file).unwrap()).unwrap();
    Some(World {
        home,
        python,
        app: format!("http://127.0.0.1:{port}"),
        public: live["public_url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned(),
        emulator: banner,
        _procs: procs,
    })
}

fn flow(w: &World, which: &str) -> Value {
    let e = &w.emulator;
    let cfg = json!({
        "base": after(e, "APIs on "),
        "account_sid": after(e, "TWILIO_ACCOUNT_SID="),
        "auth_token": after(e, "TWILIO_AUTH_TOKEN="),
        "api_key_sid": after(e, "API key "),
        "api_key_secret": after(e, " / "),
        "authy_api_key": after(e, "app_api_key="),
        "authy_access_key": after(e, "access_key="),
        "authy_signing_key": after(e, "API signing key="),
        "public": w.public,
        "app": w.app,
        "bin": BIN,
    });
    assert_eq!(cfg["account_sid"], ACCOUNT, "{e:?}");
    let mut cmd = Command::new(&w.python);
    cmd.arg(venv::workspace().join("tests/oracle/emulator_flow.py"))
        .args([which, &cfg.to_string()])
        .env("PYTHONPATH", venv::workspace().join("tests/oracle"));
    // The flow runs `twk-tunnel trigger`: it must find this test's emulator.
    for (k, d) in [
        ("XDG_RUNTIME_DIR", "run"),
        ("XDG_DATA_HOME", "data"),
        ("HOME", ""),
    ] {
        cmd.env(k, w.home.path().join(d));
    }
    cmd.env_remove("TWK_RUNTIME_DIR");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{which} flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn log(w: &World, args: &[&str]) -> Vec<Value> {
    let out = twk(w.home.path())
        .args(["log", "--json", "--limit", "0"])
        .args(args)
        .output()
        .unwrap();
    ndjson::lines(&out)
}

#[test]
fn the_twilio_sdk_manages_verify_webhooks_and_emulated_events_pass_its_validator() {
    let Some(w) = world() else { return };
    let report = flow(&w, "verify");
    assert_eq!(report["fired"], 5);
    // The tunnel saw the deliveries as they arrived (challenge.approved went to two
    // webhooks, two again by GET, then one), signed with the account's token, each its own
    // delivery rather than a retry of another.
    let rows = log(&w, &["--event", "challenge.approved"]);
    assert_eq!(rows.len(), 5, "{rows:?}");
    for r in &rows {
        assert_eq!(
            (&r["verdict"], &r["attempt"]),
            (&json!("valid"), &json!(1)),
            "{r}"
        );
    }
}

#[test]
fn the_authy_demo_flow_signs_registers_fires_reports_and_deletes() {
    let Some(w) = world() else { return };
    let report = flow(&w, "authy");
    assert_eq!(report["reported"], 2);
    let rows = log(
        &w,
        &["--event", "phone_verification_started", "--since", "1h"],
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
}

#[test]
fn state_survives_a_restart_and_a_tunnel_can_run_the_emulator_itself() {
    let home = tempfile::tempdir().unwrap();
    let start = |home: &Path| {
        let mut c = twk(home)
            .args(["emulate", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let banner = until_ready(&mut c);
        (Procs(vec![c]), banner)
    };
    let (first, a) = start(home.path());
    drop(first);
    let (_second, b) = start(home.path());
    // Generated once, kept: the app's configuration stays valid across restarts.
    for key in [
        "TWILIO_ACCOUNT_SID=",
        "TWILIO_AUTH_TOKEN=",
        "API signing key=",
    ] {
        assert_eq!(after(&a, key), after(&b, key));
    }
    // `--credentials` reads the same ones without listening.
    let out = twk(home.path())
        .args(["emulate", "--credentials"])
        .output()
        .unwrap();
    let env = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    let token = after(&b, "TWILIO_AUTH_TOKEN=");
    assert!(
        env.contains(&format!("TWILIO_AUTH_TOKEN={token}\n")),
        "{env}"
    );
    let db = home.path().join("data/twk/emulator.sqlite");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // `--emulate`: the tunnel runs one, and `trigger --emulator` finds it.
    let other = tempfile::tempdir().unwrap();
    let mut t = twk(other.path())
        .args(["127.0.0.1:9", "--json", "--embedded-port", "0"])
        .args(["--emulate", "--emulate-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until_ready(&mut t);
    let _t = Procs(vec![t]);
    let out = twk(other.path())
        .args(["trigger", "twilio", "challenge.denied", "--emulator"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("no enabled webhook is subscribed to challenge.denied"),
        "{stdout}"
    );
    // Usage errors: a provider the emulator does not serve; no emulator at all.
    let out = twk(other.path())
        .args([
            "trigger",
            "stripe",
            "payment_intent.succeeded",
            "--emulator",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lonely = tempfile::tempdir().unwrap();
    let out = twk(lonely.path())
        .args(["trigger", "twilio", "challenge.approved", "--emulator"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running emulator"));
}
