//! Fixtures shared by the update and view tests: a real capture store in a tempdir, realistic
//! exchanges (with analyses from the real provider crate), a model with a fixed clock.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use twk_capture::{
    AuthInfo, CapturedBody, Exchange, Failure, Header, Message, Side, Store, StoreOptions, Timings,
};
use twk_inspector::{Conn, Intent, Loader, Model, Msg};
use twk_providers::{Provider, RequestView, Secret, Secrets, SignOptions, VerifyOptions};

/// 2023-11-14T22:13:20Z.
pub const T0: i64 = 1_700_000_000_000;
pub const W: u16 = 120;
pub const H: u16 = 32;
pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";

pub fn h(name: &str, value: &[u8]) -> Header {
    Header {
        name: name.into(),
        value: value.to_vec(),
    }
}

pub fn body(b: &[u8]) -> CapturedBody {
    CapturedBody {
        bytes: b.to_vec(),
        len: b.len() as u64,
        sha256: String::new(),
        truncated: false,
    }
}

/// A plain exchange `i` (received at T0 + i s).
pub fn plain(i: i64, method: &str, path: &str, status: Option<u16>) -> Exchange {
    let received = T0 + i * 1000;
    Exchange {
        id: None,
        tunnel: "demo".into(),
        request_id: format!("req-{i}"),
        public_url: format!("https://relay.example/t/demo{path}"),
        remote_addr: Some("203.0.113.7:51234".into()),
        method: method.into(),
        path: path.into(),
        target: "http://127.0.0.1:3000".into(),
        request: Message {
            headers: vec![
                h("host", b"relay.example"),
                h("user-agent", b"curl/8.5.0"),
                h("content-type", b"text/plain"),
            ],
            body: body(b"ping"),
        },
        status,
        response: status.map(|_| Message {
            headers: vec![h("content-type", b"text/plain")],
            body: body(b"ok"),
        }),
        timings: Timings {
            received_ms: received,
            forwarded_ms: Some(received + 2),
            first_byte_ms: Some(received + 30),
            done_ms: Some(received + 34),
        },
        failure: None,
        provider: None,
        event: None,
        summary: None,
        verdict: Some(twk_providers::Verdict::Unsigned),
        ..Default::default()
    }
}

fn secrets() -> Secrets {
    let mut s = Secrets::new();
    s.set(Provider::Github, Secret::new(GITHUB_SECRET));
    s
}

/// Fills provider, event, verdict and analysis with what twk-providers says.
pub fn analyze(ex: &mut Exchange) {
    let mut view = RequestView::new(&ex.method, &ex.public_url, &ex.request.body.bytes);
    for hd in &ex.request.headers {
        view = view.with_header(&hd.name, &hd.value);
    }
    let a = twk_providers::analyze(&view, &secrets(), &VerifyOptions::at(T0 / 1000 + 60));
    ex.provider = a.provider.map(|p| p.as_str().to_owned());
    ex.event = a.event.as_ref().map(|e| e.name.clone());
    ex.summary = a.event.as_ref().map(|e| e.summary.clone());
    ex.verdict = Some(a.verdict);
    ex.analysis = twk_capture::AnalysisJson::of(&a);
}

/// A GitHub `push` webhook, signed with `secret`.
pub fn github(i: i64, secret: &str) -> Exchange {
    let payload = br#"{"ref":"refs/heads/main","before":"6113728f","after":"59b20b8d","repository":{"id":1296269,"full_name":"octo/hello"},"pusher":{"name":"octo"}}"#;
    let mut ex = plain(i, "POST", "/github", Some(200));
    let mut s = Secrets::new();
    s.set(Provider::Github, Secret::new(secret));
    let view = RequestView::new("POST", &ex.public_url, payload);
    let sig = twk_providers::sign(Provider::Github, &view, &s, &SignOptions::default())
        .unwrap()
        .remove(0)
        .1;
    ex.request.headers = vec![
        h("host", b"relay.example"),
        h("user-agent", b"GitHub-Hookshot/7c5b0f2"),
        h("content-type", b"application/json"),
        h("x-github-event", b"push"),
        h("x-github-delivery", b"72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        h("x-hub-signature-256", sig.as_bytes()),
    ];
    ex.request.body = body(payload);
    ex.response = Some(Message {
        headers: vec![h("content-type", b"application/json")],
        body: body(br#"{"received":true}"#),
    });
    analyze(&mut ex);
    ex
}

/// A Stripe `payment_intent.succeeded` event signed with `secret` (the analysis has no Stripe
/// secret, so its verdict is "no secret"), at `path`.
pub fn stripe(i: i64, secret: &str, path: &str) -> Exchange {
    let payload = format!(
        r#"{{"id":"evt_3Q{i:04}abcdefghijkl","object":"event","type":"payment_intent.succeeded","data":{{"object":{{"id":"pi_1","amount":2000,"currency":"usd"}}}}}}"#
    );
    let mut ex = plain(i, "POST", path, Some(200));
    let mut s = Secrets::new();
    s.set(Provider::Stripe, Secret::new(secret));
    let view = RequestView::new("POST", &ex.public_url, payload.as_bytes());
    let opts = SignOptions {
        timestamp: Some(T0 / 1000),
        ..SignOptions::default()
    };
    let sig = twk_providers::sign(Provider::Stripe, &view, &s, &opts)
        .unwrap()
        .remove(0)
        .1;
    ex.request.headers = vec![
        h("host", b"relay.example"),
        h(
            "user-agent",
            b"Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        ),
        h("content-type", b"application/json; charset=utf-8"),
        h("stripe-signature", sig.as_bytes()),
    ];
    ex.request.body = body(payload.as_bytes());
    analyze(&mut ex);
    ex
}

/// A Twilio SMS status callback (form body), unsigned-by-secret (no Twilio secret set).
pub fn twilio_form(i: i64) -> Exchange {
    let mut ex = plain(i, "POST", "/sms/status", Some(204));
    ex.request.headers = vec![
        h("host", b"relay.example"),
        h("user-agent", b"TwilioProxy/1.1"),
        h(
            "content-type",
            b"application/x-www-form-urlencoded; charset=utf-8",
        ),
        h("x-twilio-signature", b"6dSb0/RkK1fr6G4wsFh1eRHVu6A="),
    ];
    ex.request.body = body(b"MessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&MessageStatus=delivered&To=%2B15558675310&From=%2B15017122661&AccountSid=AC00000000000000000000000000000000");
    ex.response = Some(Message {
        headers: vec![],
        body: body(b""),
    });
    analyze(&mut ex);
    ex
}

/// A Bandwidth `initiate` callback the app answered 200 with JSON: Bandwidth cannot run it
/// as BXML (`invalid-bxml`, an error on a 200).
pub fn bad_bxml(i: i64) -> Exchange {
    let mut ex = plain(i, "POST", "/bandwidth/voice", Some(200));
    ex.provider = Some("bandwidth".into());
    ex.event = Some("initiate".into());
    ex.request.headers = vec![h("content-type", b"application/json")];
    ex.request.body = body(br#"{"eventType":"initiate","callId":"c-1","accountId":"9"}"#);
    let answer = ex.response.as_mut().expect("an answer");
    answer.headers = vec![h("content-type", b"application/json")];
    answer.body = body(br#"{"ok":true}"#);
    ex
}

/// A request to a local app that failed.
pub fn failed(i: i64) -> Exchange {
    let mut ex = plain(i, "POST", "/hooks/stripe", None);
    ex.response = None;
    ex.failure = Some(Failure {
        side: Side::Target,
        message: "connection refused (is your app running on 127.0.0.1:3000?)".into(),
    });
    ex.timings.first_byte_ms = None;
    ex
}

/// A request full of terminal escapes in path, headers and body.
pub fn hostile(i: i64) -> Exchange {
    let nasty = "\u{1b}]0;pwned\u{7}\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}\u{9b}31m\u{1b}[2J\u{202e}gpj.exe\u{1b}P+q\u{1b}\\\u{7f}\r";
    let mut ex = plain(i, "POST", &format!("/x{nasty}/y"), Some(200));
    ex.public_url = format!("https://relay.example/t/demo/x{nasty}");
    ex.request.headers = vec![
        h("host", b"relay.example"),
        h("x-evil", nasty.as_bytes()),
        h(&format!("x-name{nasty}"), b"v"),
        h("content-type", b"text/plain"),
    ];
    ex.request.body = body(format!("line1 {nasty}\nline2 \u{1b}[6n\u{9d}0;t\u{9c}").as_bytes());
    ex.response = Some(Message {
        headers: vec![h("x-reply", nasty.as_bytes())],
        body: body(format!("{{\"echo\":\"{}\"}}", "\\u001b]0;x\\u0007\\u202e").as_bytes()),
    });
    ex.provider = Some(format!("prov{nasty}"));
    ex.event = Some(format!("ev{nasty}"));
    ex.summary = Some(format!("sum{nasty}"));
    // The analysis is the provider crate's type: its provider is an enum, every text in it
    // is hostile.
    ex.analysis = twk_capture::AnalysisJson::from_value(&serde_json::json!({
        "provider": "github",
        "event": {"name": format!("ev{nasty}"), "summary": format!("sum{nasty}"), "id": nasty, "details": {}},
        "matched_variant": nasty,
        "verdict": "invalid",
        "signed_string": format!("signed{nasty}"),
        "diagnosis": {"summary": format!("diag{nasty}"), "expected": nasty, "received": nasty, "hints": [nasty], "checked": [nasty]},
        "notes": [nasty],
    }));
    ex.failure = None;
    ex
}

/// A store in a tempdir holding `exchanges` (ids 1..).
pub fn store(exchanges: &[Exchange]) -> (tempfile::TempDir, Loader) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path());
    opts.retention_per_tunnel = 0;
    let mut s = Store::open(&opts).unwrap();
    if !exchanges.is_empty() {
        s.insert_batch(exchanges).unwrap();
    }
    (dir, Loader::new(s))
}

/// Stores one more exchange through a second connection; returns its list row.
pub fn add(dir: &tempfile::TempDir, ex: &Exchange) -> twk_capture::Summary {
    let mut opts = StoreOptions::new(dir.path());
    opts.retention_per_tunnel = 0;
    let mut s = Store::open(&opts).unwrap();
    s.insert_batch(std::slice::from_ref(ex)).unwrap().remove(0)
}

/// A model at T0 + 60 s, UTC, 120×32, connected, initialised against `data`.
pub fn model(data: &Loader) -> Model {
    let mut m = Model::new(
        "http://127.0.0.1:3000",
        T0 + 60_000,
        (W, H),
        jiff::tz::TimeZone::UTC,
    );
    m.conn = Conn::Connected {
        name: "demo".into(),
        public_url: "https://relay.example/t/demo".into(),
    };
    m.rtt_ms = Some(12);
    for cmd in m.init() {
        if let twk_inspector::Cmd::Load(l) = cmd {
            let answer = data.load(&l).unwrap();
            let _ = data.dispatch(&mut m, answer);
        }
    }
    m
}

pub fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

pub fn code(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

pub fn press(data: &Loader, m: &mut Model, keys: &str) -> Vec<Intent> {
    let mut out = Vec::new();
    for c in keys.chars() {
        out.extend(data.dispatch(m, key(c)));
    }
    out
}

pub fn render(m: &Model) -> (String, ratatui::buffer::Buffer) {
    let mut t = Terminal::new(TestBackend::new(m.size.0, m.size.1)).unwrap();
    t.draw(|f| twk_inspector::view(m, f)).unwrap();
    let buf = t.backend().buffer().clone();
    (twk_inspector::view::buffer_text(&buf), buf)
}

/// Panics when any cell holds a control, bidi or invisible character.
pub fn assert_clean(buf: &ratatui::buffer::Buffer) {
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            for c in sym.chars() {
                assert!(
                    !c.is_control() && !twk_inspector::sanitize::is_unsafe(c),
                    "cell ({x},{y}) holds {c:?} (U+{:04X})",
                    c as u32
                );
            }
        }
    }
}

/// The usual mix: oldest first, so the newest (a replay) gets the highest id.
pub fn mix() -> Vec<Exchange> {
    let mut v = vec![
        plain(1, "GET", "/health", Some(200)),
        github(2, GITHUB_SECRET),
        twilio_form(3),
        github(4, "wrong secret"),
        failed(5),
    ];
    let mut retry = github(6, "wrong secret");
    retry.timings.received_ms += 10;
    v.push(retry);
    let mut replay = github(7, GITHUB_SECRET);
    replay.replay_of = Some(2);
    v.push(replay);
    v
}

/// The challenge twk (or a correct app) answers leg 1 with.
pub const CHALLENGE: &str = "Basic realm=\"twk\"";
pub const BW_USER: &str = "bw-user";

/// Leg 1 of a Bandwidth-style Basic-auth handshake at `T0 + ms`: a callback without
/// credentials, answered 401 with `challenge` (or a bare 401); `twk`: twk's `--basic-auth`
/// answered it (else the app did).
pub fn bw_leg1(ms: i64, path: &str, challenge: Option<&str>, twk: bool) -> Exchange {
    let mut ex = plain(0, "POST", path, Some(401));
    let t = T0 + ms;
    ex.request_id = format!("bw{ms}");
    ex.timings = Timings {
        received_ms: t,
        forwarded_ms: Some(t + 1),
        first_byte_ms: Some(t + 3),
        done_ms: Some(t + 4),
    };
    ex.request.headers = vec![
        h("host", b"relay.example"),
        h("user-agent", b"BandwidthAPI/v1"),
        h("content-type", b"application/json"),
    ];
    // One callback per leg 1 (its own message id): different handshakes are different
    // deliveries, not attempts of one.
    ex.request.body = body(
        format!(r#"[{{"type":"message-delivered","time":"2023-11-14T22:13:20Z","to":"+15551234567","message":{{"id":"1589228074636lm4k2je{ms}"}}}}]"#).as_bytes(),
    );
    ex.response = Some(Message {
        headers: challenge
            .map(|c| vec![h("www-authenticate", c.as_bytes())])
            .unwrap_or_default(),
        body: body(b""),
    });
    ex.provider = Some("bandwidth".into());
    ex.event = Some("message-delivered".into());
    ex.verdict = Some(twk_providers::Verdict::Unsigned);
    ex.auth = twk.then(AuthInfo::default);
    ex
}

/// Leg 2: the same request `after_ms` later with `Authorization: Basic user:pass`, answered
/// `status`; `matched`: twk's `--basic-auth` verdict (`None`: the app checked).
pub fn bw_leg2(
    leg1: &Exchange,
    after_ms: i64,
    user: &str,
    status: u16,
    matched: Option<bool>,
) -> Exchange {
    let mut ex = leg1.clone();
    let t = leg1.timings.received_ms + after_ms;
    ex.request_id = format!("{}-2", leg1.request_id);
    ex.timings = Timings {
        received_ms: t,
        forwarded_ms: Some(t + 1),
        first_byte_ms: Some(t + 20),
        done_ms: Some(t + 22),
    };
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("{user}:s3cret-pw"));
    ex.request
        .headers
        .push(h("authorization", format!("Basic {cred}").as_bytes()));
    ex.status = Some(status);
    if status != 401 {
        ex.response = Some(Message {
            headers: vec![h("content-type", b"text/plain")],
            body: body(b"ok"),
        });
    }
    ex.auth = matched.map(|m| AuthInfo {
        user: Some(user.to_owned()),
        matched: Some(m),
    });
    ex
}

/// Every handshake case, oldest first (ids 1..=7):
/// 1 a plain request; 2+3 twk answers the challenge, the retry matches (app 200);
/// 4+5 the retry's credentials do not match (twk answers 401 again); 6 the app's bare 401
/// (no WWW-Authenticate: the callback is lost); 7 a challenge whose retry never came.
pub fn handshakes() -> Vec<Exchange> {
    let ok = bw_leg1(2_000, "/bandwidth/ok", Some(CHALLENGE), true);
    let ok2 = bw_leg2(&ok, 180, BW_USER, 200, Some(true));
    let wrong = bw_leg1(4_000, "/bandwidth/wrong", Some(CHALLENGE), true);
    let mut wrong2 = bw_leg2(&wrong, 150, "bw-usr", 401, Some(false));
    wrong2.timings.first_byte_ms = Some(wrong2.timings.received_ms + 1);
    wrong2.timings.done_ms = Some(wrong2.timings.received_ms + 2);
    vec![
        plain(1, "GET", "/health", Some(200)),
        ok,
        ok2,
        wrong,
        wrong2,
        bw_leg1(6_000, "/bandwidth/bare", None, false),
        bw_leg1(
            8_000,
            "/bandwidth/noretry",
            Some("Basic realm=\"callbacks\""),
            false,
        ),
    ]
}

/// A handshake with terminal escapes in the path, the challenge and the user name.
pub fn hostile_handshake() -> Vec<Exchange> {
    let nasty = "\u{1b}]0;pwned\u{7}\u{9b}31m\u{1b}[2J\u{202e}gpj.exe\u{7f}\r";
    let challenge = format!("Basic realm=\"{nasty}\"");
    let leg1 = bw_leg1(2_000, &format!("/bw{nasty}"), Some(&challenge), true);
    let leg2 = bw_leg2(&leg1, 90, &format!("u{nasty}"), 401, Some(false));
    vec![
        leg1,
        leg2,
        bw_leg1(5_000, &format!("/bare{nasty}"), None, false),
    ]
}

/// Selects the row (or leg-1 line) of exchange `id` by moving down from the top.
pub fn select(data: &Loader, m: &mut Model, id: i64) {
    press(data, m, "g");
    for _ in 0..50 {
        if m.list.selected_id == Some(id) {
            return;
        }
        press(data, m, "j");
    }
    panic!("exchange #{id} not reachable");
}
