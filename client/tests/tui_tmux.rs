//! The terminal inspector end to end: the real `twk-tunnel` binary in a real terminal (tmux),
//! driven with `send-keys` and read with `capture-pane`.
//!
//! A signed GitHub webhook arrives and is listed with its verdict (✓); Enter shows its
//! details; `r` replays it and the replay appears as a new row linked to the original (↻1).
//!
//! Needs `tmux`; without it the test fails, unless `TWK_SKIP_TMUX=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};
use twk_e2e::*;
use twk_providers::{Provider, RequestView, Secret, Secrets, SignOptions};

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");
const SECRET: &str = "e2e-github-secret";

/// One tmux server (own socket) per test, killed on drop whatever happens.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-u")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("running tmux")
    }

    fn start(tag: &str, shell_cmd: &str) -> Tmux {
        Tmux::start_sized(tag, shell_cmd, (160, 45))
    }

    fn start_sized(tag: &str, shell_cmd: &str, (w, h): (u16, u16)) -> Tmux {
        let unique = format!("twk-{tag}-{}-{}", std::process::id(), twk_agent::now_ms());
        let t = Tmux {
            socket: unique.clone(),
            session: unique,
        };
        let out = t.cmd(&[
            "new-session",
            "-d",
            "-s",
            &t.session,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            shell_cmd,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn screen(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys failed");
    }

    /// `q`, then the shell's exit line with code 0 (the terminal was given back); returns
    /// that last screen.
    fn quit_cleanly(&self) -> String {
        self.keys(&["q"]);
        let screen = self.wait_for("the process to exit", |s| {
            s.contains("twk-tunnel exited with")
        });
        assert!(
            screen.contains("twk-tunnel exited with 0"),
            "clean exit:\n{screen}"
        );
        screen
    }

    /// Polls the screen until `pred` holds (bounded); panics with the last screen otherwise.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("TWK_SKIP_TMUX").as_deref() == Ok("1"),
            "tmux is not installed: install it (apt-get install -y tmux) or set TWK_SKIP_TMUX=1 to skip this test"
        );
    }
    ok
}

/// The shell command tmux runs: `twk-tunnel ARGS` on an embedded relay with its data and
/// config under `dir`, no relay settings from the environment, the GitHub secret, `env`
/// added; then the exit code is printed and the pane stays open.
fn twk_in_shell(dir: &std::path::Path, env: &str, args: &str) -> String {
    let data = dir.join("data");
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    format!(
        "env -u TWK_RELAY -u TWK_TOKEN -u TWK_NAME -u TWK_CONFIG XDG_DATA_HOME={data} \
         TWK_DATA_DIR={twk} XDG_CONFIG_HOME={config} GITHUB_WEBHOOK_SECRET={secret} \
         {env} LC_ALL=C.UTF-8 {bin} --embedded-port 0 {args}; \
         code=$?; echo; echo \"twk-tunnel exited with $code\"; sleep 60",
        data = quote(&data.to_string_lossy()),
        twk = quote(&data.join("twk").to_string_lossy()),
        config = quote(&config.to_string_lossy()),
        secret = quote(SECRET),
        bin = quote(BIN),
    )
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `host:port` after `http://` in `line`.
fn relay_addr(screen: &str) -> Option<std::net::SocketAddr> {
    let line = screen.lines().find(|l| l.contains("connected http://"))?;
    let rest = line.split("connected http://").nth(1)?;
    let hostport: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    hostport.parse().ok()
}

fn row_with<'a>(screen: &'a str, needles: &[&str]) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_listed_with_verdict_details_and_replay() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed and TWK_SKIP_TMUX=1");
        return;
    }
    let mut target = FakeTarget::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let shell_cmd = twk_in_shell(
        dir.path(),
        "VISUAL= EDITOR='sed -i s/octo/edited/g'",
        &format!("--name e2e {}", target.addr),
    );
    let tmux = Tmux::start("inspector", &shell_cmd);

    // The inspector is up and connected; its top bar names the public URL.
    let screen = tmux.wait_for("the connected top bar", |s| relay_addr(s).is_some());
    let relay = relay_addr(&screen).unwrap();
    assert!(
        screen.contains("/t/e2e"),
        "public URL with the tunnel name:\n{screen}"
    );

    // A webhook signed like GitHub does.
    let body = r#"{"ref":"refs/heads/main","repository":{"full_name":"octo/hello"},"pusher":{"name":"octo"}}"#;
    let mut secrets = Secrets::new();
    secrets.set(Provider::Github, Secret::new(SECRET));
    let url = format!("http://{relay}/t/e2e/github");
    let sig = twk_providers::sign(
        Provider::Github,
        &RequestView::new("POST", &url, body.as_bytes()),
        &secrets,
        &SignOptions::default(),
    )
    .unwrap()
    .remove(0)
    .1;
    let reply = send(
        relay,
        "POST",
        "/t/e2e/github",
        &[
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", "d6f8e4a0-0000-4000-8000-000000000001"),
            ("x-hub-signature-256", &sig),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    let got = tokio::time::timeout(Duration::from_secs(10), target.received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.body, body.as_bytes());

    // Listed with its verdict.
    let screen = tmux.wait_for("the row with a valid verdict", |s| {
        row_with(s, &["POST", "/github", "200", "✓", "github · push"]).is_some()
    });
    let row = row_with(&screen, &["/github", "✓"]).unwrap();
    assert!(
        row.trim_start_matches(['│', '▶', ' ']).starts_with("1 "),
        "first exchange has id 1: {row:?}"
    );

    // Enter shows the details: headers (signature redacted) and the pretty JSON body.
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the request details", |s| {
        s.contains("x-github-event: push") && s.contains("x-hub-signature-256: [REDACTED]")
    });
    assert!(screen.contains("#1 POST /github → 200"), "{screen}");
    tmux.keys(&["3"]);
    tmux.wait_for("the signature tab", |s| {
        s.contains("valid: the signature matches")
    });

    // r replays; the replay is a new row linked to #1, and the target got it byte for byte.
    tmux.keys(&["r"]);
    let screen = tmux.wait_for("the replay row", |s| {
        row_with(s, &["/github", "↻1"]).is_some()
    });
    let replay_row = row_with(&screen, &["/github", "↻1"]).unwrap();
    assert!(replay_row.contains("200"), "{replay_row:?}");
    assert!(
        replay_row.contains('✓'),
        "verbatim replay keeps a valid signature: {replay_row:?}"
    );
    let again = tokio::time::timeout(Duration::from_secs(10), target.received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.body, body.as_bytes());
    assert_eq!(
        again.header("x-hub-signature-256").as_deref(),
        Some(sig.as_str())
    );
    tmux.wait_for("the replay notice", |s| s.contains("replayed #1 as #2"));

    // e: edit in $EDITOR (here a sed that changes the body). The edit made the signature
    // stale: the inspector asks first; `r` sends it as is, and the row says it is invalid.
    // The list followed the replay (#2, newest): go back to the list and select #1 (oldest).
    // Enter, not Escape: under load the terminal can deliver Escape and the next key in one
    // read, which reads as Alt-G, and the focus stays in the detail pane.
    tmux.keys(&["Enter"]);
    tmux.keys(&["G"]);
    tmux.wait_for("#1 selected", |s| s.contains("#1 POST /github"));
    tmux.keys(&["e"]);
    tmux.wait_for("the stale-signature question", |s| {
        s.contains("signature no longer matches") && s.contains("R re-sign and send")
    });
    tmux.keys(&["r"]);
    let screen = tmux.wait_for("the edit outcome", |s| {
        s.contains("replayed #1 as #3") || s.contains("not sent")
    });
    assert!(screen.contains("replayed #1 as #3"), "{screen}");
    let edited = tokio::time::timeout(Duration::from_secs(10), target.received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.body, body.replace("octo", "edited").as_bytes());
    // The notice comes when the replay is answered; the row, once the exchange is recorded.
    let screen = tmux.wait_for("the edited replay row", |s| {
        row_with(s, &["/github", "↻1", "✗"]).is_some()
    });
    let edited_row = row_with(&screen, &["/github", "↻1", "✗"]);
    assert!(
        edited_row.is_some(),
        "edited replay with an invalid signature:\n{screen}"
    );

    // e again, and `R`: re-signed with the configured secret, the edit arrives valid.
    tmux.keys(&["G"]);
    tmux.wait_for("#1 selected", |s| s.contains("#1 POST /github"));
    tmux.keys(&["e"]);
    tmux.wait_for("the stale-signature question", |s| {
        s.contains("signature no longer matches")
    });
    tmux.keys(&["R"]);
    let screen = tmux.wait_for("the re-signed edit", |s| s.contains("replayed #1 as #4"));
    let resent = tokio::time::timeout(Duration::from_secs(10), target.received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.body, body.replace("octo", "edited").as_bytes());
    assert_ne!(
        resent.header("x-hub-signature-256").as_deref(),
        Some(sig.as_str())
    );
    assert!(screen.contains("(signature valid)"), "{screen}");

    // c: copy as curl (OSC 52); the status line confirms.
    tmux.keys(&["c"]);
    tmux.wait_for("the copy notice", |s| s.contains("copied the curl command"));

    // q quits, and the terminal is given back (the shell's exit line shows).
    tmux.quit_cleanly();
}

/// The README's first command (`twk-tunnel PORT`) on an 80×24 terminal: the public URL is
/// whole, a request to a slow handler is listed while in flight, a signed webhook is listed
/// with its verdict, and `q` gives the terminal back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_first_command_at_80x24() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed and TWK_SKIP_TMUX=1");
        return;
    }
    // Answers /slow… after 3 s, everything else at once.
    let mut target = FakeTarget::slow(Duration::from_secs(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let shell_cmd = twk_in_shell(
        dir.path(),
        "",
        &format!("--name readme80 {}", target.addr.port()),
    );
    let tmux = Tmux::start_sized("readme80", &shell_cmd, (80, 24));
    let screen = tmux.wait_for("the connected top bar", |s| relay_addr(s).is_some());
    let relay = relay_addr(&screen).unwrap();
    let url = format!("http://{relay}/t/readme80");
    assert!(
        screen.lines().take(2).any(|l| l.contains(&url)),
        "the public URL must be whole at 80 columns:\n{screen}"
    );
    assert!(screen.contains("q quit"), "how to quit is shown:\n{screen}");

    // A slow handler: listed while the app has not answered yet.
    let slow =
        tokio::spawn(async move { send(relay, "POST", "/t/readme80/slow/job", &[], "{}").await });
    tmux.wait_for("the in-flight row", |s| {
        row_with(s, &["/slow/job", "in flight"]).is_some()
    });
    assert_eq!(slow.await.unwrap().unwrap().status, 200);
    tmux.wait_for("the completed row", |s| {
        row_with(s, &["/slow/job", "200"]).is_some()
            && row_with(s, &["/slow/job", "in flight"]).is_none()
    });

    // A webhook signed like GitHub does, listed with its verdict.
    let body = r#"{"ref":"refs/heads/main","repository":{"full_name":"octo/hello"}}"#;
    let mut secrets = Secrets::new();
    secrets.set(Provider::Github, Secret::new(SECRET));
    let sig = twk_providers::sign(
        Provider::Github,
        &RequestView::new("POST", &format!("{url}/github"), body.as_bytes()),
        &secrets,
        &SignOptions::default(),
    )
    .unwrap()
    .remove(0)
    .1;
    let reply = send(
        relay,
        "POST",
        "/t/readme80/github",
        &[
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", "d6f8e4a0-0000-4000-8000-000000000080"),
            ("x-hub-signature-256", &sig),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    let _ = target.received.recv().await;
    tmux.wait_for("the signed row with its verdict", |s| {
        row_with(s, &["/github", "200", "✓", "push"]).is_some()
    });

    let screen = tmux.quit_cleanly();
    assert!(
        !screen.contains("Exchanges"),
        "the inspector's screen is gone (alternate screen left):\n{screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_relay_is_reported_once_in_the_top_bar() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed and TWK_SKIP_TMUX=1");
        return;
    }
    // A port nobody listens on: the first attempt is refused, and the tunnel keeps retrying
    // (the relay may still be starting).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shell_cmd = twk_in_shell(dir.path(), "", &format!("--relay http://{} 3000", closed));
    let tmux = Tmux::start("unreachable", &shell_cmd);
    let screen = tmux.wait_for("the reconnecting top bar", |s| {
        s.contains("reconnecting in") && s.contains("refused")
    });
    // Issue 12 item 11: the bar said "relay unreachable: relay unreachable: …".
    assert_eq!(
        screen.matches("relay unreachable").count(),
        1,
        "the reason once:\n{screen}"
    );
    tmux.quit_cleanly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_url_that_leads_to_an_app_ends_the_inspector_with_the_reason() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed and TWK_SKIP_TMUX=1");
        return;
    }
    let app = FakeTarget::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let shell_cmd = twk_in_shell(dir.path(), "", &format!("--relay http://{} 3000", app.addr));
    let tmux = Tmux::start("notarelay", &shell_cmd);
    // No key pressed: the inspector closes by itself and the reason is printed.
    let screen = tmux.wait_for("the process to exit", |s| {
        s.contains("twk-tunnel exited with")
    });
    assert!(screen.contains("twk-tunnel exited with 1"), "{screen}");
    assert!(screen.contains("it is not a twk relay"), "{screen}");
}

/// `t` in a real terminal: the picker opens, typing narrows it, Enter fires the GitHub
/// event into the tunnel, and the webhook arrives as a row signed with the tunnel's secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_triggers_a_picked_event_into_the_tunnel() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed and TWK_SKIP_TMUX=1");
        return;
    }
    let target = FakeTarget::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let shell_cmd = twk_in_shell(dir.path(), "", &format!("--name pick {}", target.addr));
    let tmux = Tmux::start("picker", &shell_cmd);
    tmux.wait_for("the connected top bar", |s| relay_addr(s).is_some());
    tmux.keys(&["t"]);
    tmux.wait_for("the picker", |s| {
        s.contains("Trigger a webhook into this tunnel")
    });
    tmux.keys(&["-l", "github pull_request.op"]);
    tmux.wait_for("the narrowed picker", |s| s.contains("1 of "));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the triggered row", |s| {
        row_with(s, &["pull_request.opened", "✓"]).is_some() && s.contains("triggered github")
    });
    assert!(
        !screen.contains("Trigger a webhook into this tunnel"),
        "{screen}"
    );
    tmux.quit_cleanly();
}

/// A raw HTTP/1.1 request to the emulator with the account's Basic credentials; the JSON
/// answer.
fn emulator_post(base: &str, auth: &str, path: &str, form: &str) -> serde_json::Value {
    use base64::Engine as _;
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(auth);
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_with_emulate_delivers_through_the_emulator_to_registered_webhooks() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed and TWK_SKIP_TMUX=1");
        return;
    }
    let target = FakeTarget::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // The emulator's credentials, made once in the data directory the tunnel will use.
    let creds = Command::new(BIN)
        .args(["emulate", "--credentials"])
        .env("TWK_DATA_DIR", dir.path().join("data/twk"))
        .output()
        .unwrap();
    let creds = String::from_utf8(creds.stdout).unwrap();
    let value = |k: &str| {
        creds
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    let (sid, token) = (value("TWILIO_ACCOUNT_SID"), value("TWILIO_AUTH_TOKEN"));
    let env = format!(
        "TWK_RUNTIME_DIR={} TWILIO_AUTH_TOKEN={}",
        quote(&run.to_string_lossy()),
        quote(&token)
    );
    let args = format!(
        "--name emu --emulate --emulate-listen 127.0.0.1:0 {}",
        target.addr
    );
    let tmux = Tmux::start("emulate", &twk_in_shell(dir.path(), &env, &args));
    let screen = tmux.wait_for("the connected top bar", |s| relay_addr(s).is_some());
    let public = format!("http://{}/t/emu", relay_addr(&screen).unwrap());
    let file = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("emulator-"))
        .expect("the emulator's runtime file");
    let live: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let base = live["base_url"].as_str().unwrap().to_owned();
    let auth = format!("{sid}:{token}");
    let svc = emulator_post(&base, &auth, "/v2/Services", "FriendlyName=tmux");
    let va = svc["sid"].as_str().unwrap();
    let form = format!(
        "FriendlyName=hook&EventTypes=challenge.approved&WebhookUrl={}",
        public.replace(':', "%3A").replace('/', "%2F") + "%2Femu-hook"
    );
    let hook = emulator_post(&base, &auth, &format!("/v2/Services/{va}/Webhooks"), &form);
    assert_eq!(hook["status"], "enabled", "{hook}");

    tmux.keys(&["t"]);
    tmux.wait_for("the picker", |s| {
        s.contains("Trigger a webhook into this tunnel")
    });
    tmux.keys(&["-l", "twilio challenge.appr"]);
    tmux.wait_for("the narrowed picker", |s| s.contains("1 of "));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the delivery through the emulator", |s| {
        row_with(s, &["challenge.approved", "✓", "/emu-hook"]).is_some()
            && s.contains("via the emulator: delivered to 1 of 1")
    });
    tmux.quit_cleanly();
}
