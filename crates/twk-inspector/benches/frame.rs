//! Frame time of the inspector with a big capture store.
//!
//! Fills a real SQLite capture store (in a tempdir) with 100,000 exchanges, then measures,
//! per frame, `update` (including any paging from the store and detail loading) plus `view`
//! drawn into a 160×45 `TestBackend`, and prints p50/p99/max per scenario.
//!
//! ```text
//! cargo bench -p twk-inspector --bench frame
//! TWK_BENCH_EXCHANGES=10000 TWK_BENCH_FRAMES=200 cargo bench -p twk-inspector --bench frame
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::{Duration, Instant};
use twk_capture::{CapturedBody, Exchange, Header, Message, Store, StoreOptions, Timings};
use twk_inspector::{Loader, Model, Msg};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn exchange(i: usize) -> Exchange {
    let received = 1_700_000_000_000 + i as i64 * 250;
    let (provider, event, verdict, status) = match i % 5 {
        0 => ("github", "push", "valid", 200),
        1 => ("stripe", "invoice.paid", "invalid", 400),
        2 => ("twilio", "message.delivered", "no_secret", 204),
        3 => ("slack", "event_callback", "stale", 200),
        _ => ("svix", "user.created", "valid", 500),
    };
    let body = format!(
        r#"{{"id":"evt_{i}","type":"{event}","data":{{"object":{{"id":"in_{i}","amount_paid":{},"customer":"cus_{}"}}}}}}"#,
        i * 7,
        i % 977
    );
    Exchange {
        id: None,
        tunnel: "bench".into(),
        request_id: format!("r{i}"),
        public_url: format!("https://relay.example/t/bench/hooks/{provider}/{i}"),
        remote_addr: Some("203.0.113.9:40000".into()),
        method: "POST".into(),
        path: format!("/hooks/{provider}/{i}"),
        target: "http://127.0.0.1:3000".into(),
        request: Message {
            headers: vec![
                Header {
                    name: "content-type".into(),
                    value: b"application/json".to_vec(),
                },
                Header {
                    name: "user-agent".into(),
                    value: b"Bench/1.0".to_vec(),
                },
                Header {
                    name: "x-signature".into(),
                    value: format!("v1={i:064x}").into_bytes(),
                },
            ],
            body: CapturedBody {
                len: body.len() as u64,
                bytes: body.into_bytes(),
                sha256: String::new(),
                truncated: false,
            },
        },
        status: Some(status),
        response: Some(Message {
            headers: vec![],
            body: CapturedBody::default(),
        }),
        timings: Timings {
            received_ms: received,
            forwarded_ms: Some(received + 1),
            first_byte_ms: Some(received + 20),
            done_ms: Some(received + 22),
        },
        failure: None,
        provider: Some(provider.into()),
        event: Some(event.into()),
        summary: Some(format!("{event} · in_{i}")),
        verdict: verdict.parse().ok(),
        analysis: Some(serde_json::json!({
            "provider": provider, "verdict": verdict,
            "event": {"name": event, "summary": format!("{event} · in_{i}"), "id": format!("evt_{i}")},
            "signed_string": format!("{i}.{{\"id\":\"evt_{i}\"}}"),
            "diagnosis": {"summary": "The signature does not match.", "expected": "v1=00", "received": "v1=11", "hints": [], "checked": ["v1"]},
            "notes": []
        }))
        .as_ref()
        .and_then(twk_capture::AnalysisJson::from_value),
        ..Default::default()
    }
}

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

struct Stats(Vec<Duration>);

impl Stats {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or_default()
    }

    fn print(&self, name: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name:<44} frames {:>5}  p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
            self.0.len(),
            ms(self.pct(0.50)),
            ms(self.pct(0.99)),
            ms(self.0.iter().max().copied().unwrap_or_default()),
        );
    }
}

fn frames(
    data: &Loader,
    m: &mut Model,
    term: &mut Terminal<TestBackend>,
    n: usize,
    mut msg: impl FnMut(usize) -> Option<Msg>,
) -> Stats {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        if let Some(msg) = msg(i) {
            let _ = data.dispatch(m, msg);
        }
        term.draw(|f| twk_inspector::view(m, f)).unwrap();
        out.push(t.elapsed());
    }
    Stats(out)
}

fn main() {
    let n = env_usize("TWK_BENCH_EXCHANGES", 100_000);
    let nframes = env_usize("TWK_BENCH_FRAMES", 500);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path());
    opts.retention_per_tunnel = 0;
    let mut store = Store::open(&opts).unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<Exchange> = (i..(i + 2_000).min(n)).map(exchange).collect();
        store.insert_batch(&batch).unwrap();
        i += batch.len();
    }
    println!(
        "store: {n} exchanges inserted in {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        opts.db_path().display()
    );
    drop(store);
    let data = Loader::new(Store::open(&opts).unwrap());
    let mut m = Model::new(
        "http://127.0.0.1:3000",
        1_700_000_000_000,
        (160, 45),
        jiff::tz::TimeZone::UTC,
    );
    let t = Instant::now();
    for cmd in m.init() {
        if let twk_inspector::Cmd::Load(l) = cmd {
            let answer = data.load(&l).unwrap();
            let _ = data.dispatch(&mut m, answer);
        }
    }
    println!(
        "open: first screen loaded in {:.3} ms ({} rows, window {})",
        t.elapsed().as_secs_f64() * 1000.0,
        m.list.total,
        m.list.rows.len()
    );
    let mut term = Terminal::new(TestBackend::new(160, 45)).unwrap();

    frames(&data, &mut m, &mut term, nframes, |_| None)
        .print("idle redraw (following, newest on top)");
    frames(&data, &mut m, &mut term, nframes, |_| {
        Some(key(KeyCode::Char('j')))
    })
    .print("j per frame (select next, detail loads)");
    frames(&data, &mut m, &mut term, nframes, |_| {
        Some(key(KeyCode::PageDown))
    })
    .print("PgDn per frame (pages rows from SQLite)");
    let _ = data.dispatch(&mut m, key(KeyCode::Char('G')));
    frames(&data, &mut m, &mut term, nframes, |_| {
        Some(key(KeyCode::PageUp))
    })
    .print("PgUp per frame near the oldest row");
    frames(&data, &mut m, &mut term, nframes.min(100), |i| {
        Some(key(KeyCode::Char(if i % 2 == 0 { 'g' } else { 'G' })))
    })
    .print("g/G per frame (jump newest <-> oldest)");
    // The worst case for OFFSET paging: the middle of the list (50,000 rows from either end).
    m.list.selected = m.list.total / 2;
    m.list.top = m.list.total / 2;
    m.list.follow = false;
    let _ = data.dispatch(&mut m, Msg::Resize(160, 45));
    frames(&data, &mut m, &mut term, nframes, |_| {
        Some(key(KeyCode::PageDown))
    })
    .print("PgDn per frame in the middle (worst case)");
    let _ = data.dispatch(&mut m, key(KeyCode::Char('g')));
    let mut next_id = n as i64;
    frames(&data, &mut m, &mut term, nframes, |_| {
        next_id += 1;
        let mut ex = exchange(next_id as usize);
        ex.id = Some(next_id);
        Some(Msg::Captured(Box::new(twk_capture::Summary::of(
            next_id,
            &ex,
            Some(1),
        ))))
    })
    .print("live arrival per frame (following)");
    frames(&data, &mut m, &mut term, nframes.min(100), |i| {
        Some(if i % 2 == 0 {
            key(KeyCode::Char('5'))
        } else {
            key(KeyCode::Char('1'))
        })
    })
    .print("tab switch per frame (detail pane)");
}
