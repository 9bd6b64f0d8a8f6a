//! Capture store benchmark (a plain binary, not a timed test).
//!
//! ```text
//! cargo bench -p twk-capture --bench store            # 1,000,000 exchanges
//! TWK_BENCH_N=100000 cargo bench -p twk-capture --bench store
//! cargo bench -p twk-capture --bench store -- 50000   # N as an argument
//! ```
//!
//! Prints:
//! 1. exchanges/s the recorder's writer thread stores while a producer records as fast as
//!    it can (the forwarding side only calls the non-blocking `record`);
//! 2. the time to fill a store to N exchanges through `insert_batch` (the writer's code path);
//! 3. the time of `log --event X` (list newest 50, and count) and of other filters on N rows.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};
use twk_capture::{
    CapturedBody, Exchange, Filter, Header, Message, Recorder, StatusFilter, Store, StoreOptions,
    Timings,
};

const EVENTS: [&str; 20] = [
    "device_registration_completed",
    "one_touch_request_responded",
    "phone_change_requested",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.created",
    "push",
    "pull_request",
    "message-delivered",
    "message-failed",
    "challenge.approved",
    "challenge.denied",
    "factor.created",
    "factor.verified",
    "orders/create",
    "app_mention",
    "user.created",
    "user.deleted",
    "charge.refunded",
    "ping",
];

fn exchange(i: u64, base_ms: i64) -> Exchange {
    let event = EVENTS[(i % EVENTS.len() as u64) as usize];
    let body = format!(
        "{{\"id\":\"evt_{i:012}\",\"object\":\"event\",\"type\":\"{event}\",\"data\":{{\"object\":{{\"amount\":{},\"currency\":\"usd\",\"customer\":\"cus_{:08}\",\"description\":\"benchmark payload padding padding padding padding\"}}}}}}",
        i * 7 % 10_000,
        i % 5000
    );
    let h = |n: &str, v: String| Header {
        name: n.into(),
        value: v.into_bytes(),
    };
    let at = base_ms + i as i64 * 50;
    Exchange {
        id: None,
        tunnel: "bench".into(),
        request_id: format!("r{i}"),
        public_url: "https://bench.twk.example/webhooks/stripe".into(),
        remote_addr: Some("203.0.113.9:40000".into()),
        method: "POST".into(),
        path: "/webhooks/stripe".into(),
        target: "http://127.0.0.1:3000".into(),
        request: Message {
            headers: vec![
                h("host", "127.0.0.1:3000".into()),
                h(
                    "user-agent",
                    "Stripe/1.0 (+https://stripe.com/docs/webhooks)".into(),
                ),
                h("content-type", "application/json; charset=utf-8".into()),
                h("stripe-signature", format!("t={},v1={:064x}", at / 1000, i)),
                h("content-length", body.len().to_string()),
                h("x-forwarded-for", "203.0.113.9".into()),
            ],
            body: CapturedBody {
                len: body.len() as u64,
                sha256: String::new(),
                bytes: body.into_bytes(),
                truncated: false,
            },
        },
        status: Some(if i.is_multiple_of(17) { 500 } else { 200 }),
        response: Some(Message {
            headers: vec![h("content-type", "text/plain".into())],
            body: CapturedBody {
                bytes: b"ok".to_vec(),
                len: 2,
                sha256: String::new(),
                truncated: false,
            },
        }),
        timings: Timings {
            received_ms: at,
            forwarded_ms: Some(at + 1),
            first_byte_ms: Some(at + 8),
            done_ms: Some(at + 9),
        },
        failure: None,
        provider: Some("stripe".into()),
        event: Some(event.into()),
        summary: None,
        verdict: Some(if i.is_multiple_of(13) {
            twk_providers::Verdict::Invalid
        } else {
            twk_providers::Verdict::Valid
        }),
        ..Default::default()
    }
}

fn time<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    println!("  {label:<52} {:>9.2} ms", t.elapsed().as_secs_f64() * 1e3);
    out
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .or_else(|| {
            std::env::var("TWK_BENCH_N")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let base_ms = 1_514_764_800_000; // 2018-01-01
    if let Some((size, rows)) = cap_only() {
        let us = per_exchange(dir.path(), base_ms, size, rows, true);
        println!(
            "at the retention cap, batches of {size}, {rows} exchanges: {us:.1} µs per exchange"
        );
        return;
    }
    println!(
        "twk-capture store benchmark, N = {n} (db in {})",
        dir.path().display()
    );

    // 1. Recorder throughput: producer records without waiting; measure stored/s.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rec_n = n.min(200_000);
    rt.block_on(async {
        let mut opts = StoreOptions::new(dir.path().join("recorder"));
        opts.retention_per_tunnel = 0;
        let rec = Recorder::start(opts).unwrap();
        let items: Vec<Exchange> = (0..rec_n).map(|i| exchange(i, base_ms)).collect();
        let t = Instant::now();
        let mut last = None;
        let mut record_ns: u128 = 0;
        for ex in items {
            loop {
                // The tunnel never waits; the benchmark producer backs off when the queue is
                // full so that it measures the writer's sustained rate instead of drops.
                let t0 = Instant::now();
                let p = rec.record(ex.clone());
                record_ns += t0.elapsed().as_nanos();
                if p.accepted() {
                    last = Some(p);
                    break;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        let st_dropped = rec.status().dropped;
        last.unwrap().id().await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "recorder: {rec_n} exchanges stored in {secs:.2} s = {:.0} exchanges/s (writer thread, batched); \
             record() mean {:.2} µs; {st_dropped} queue-full retries",
            rec_n as f64 / secs,
            record_ns as f64 / 1e3 / (rec_n + st_dropped) as f64,
        );
    });

    // 2. Fill a store to N rows through the writer's code path.
    let mut opts = StoreOptions::new(dir.path().join("big"));
    opts.retention_per_tunnel = 0;
    let mut store = Store::open(&opts).unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<Exchange> = (i..(i + 5000).min(n))
            .map(|k| exchange(k, base_ms))
            .collect();
        store.insert_batch(&batch).unwrap();
        i += batch.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "fill: {n} exchanges in {secs:.1} s = {:.0} exchanges/s; db file {:.0} MiB",
        n as f64 / secs,
        std::fs::metadata(opts.db_path()).unwrap().len() as f64 / 1048576.0
    );
    drop(store);

    // 3. Queries on N rows (fresh connection: cold statement cache).
    let store = Store::open(&opts).unwrap();
    println!("queries on {n} rows:");
    let ev = Filter {
        event: Some("device_registration_completed".into()),
        limit: Some(50),
        ..Filter::default()
    };
    let rows = time("log --event X --limit 50 (list)", || {
        store.list(&ev).unwrap()
    });
    assert_eq!(rows.len() as u64, 50.min(n / 20));
    let full = time("log --event X --limit 50 --json (full rows)", || {
        store.query(&ev).unwrap()
    });
    assert_eq!(full.len(), rows.len());
    let all_ev = Filter {
        limit: None,
        ..ev.clone()
    };
    let c = time("count --event X", || store.count(&all_ev).unwrap());
    let listed = time(&format!("log --event X, all {c} summary rows"), || {
        store.list(&all_ev).unwrap().len()
    });
    assert_eq!(listed as u64, c);
    let jan = Filter {
        event: Some("device_registration_completed".into()),
        since_ms: Some(base_ms),
        until_ms: Some(base_ms + 31 * 86_400_000 - 1),
        ..Filter::default()
    };
    let jc = time(
        "count --event X --since 2018-01-01 --until 2018-01-31",
        || store.count(&jan).unwrap(),
    );
    println!("    ({jc} matching)");
    let s5 = Filter {
        status: Some(StatusFilter::Class(5)),
        limit: Some(50),
        ..Filter::default()
    };
    time("log --status 5xx --limit 50", || store.list(&s5).unwrap());
    let inv = Filter {
        verdict: Some(twk_providers::Verdict::Invalid),
        limit: Some(50),
        ..Filter::default()
    };
    time("log --verdict invalid --limit 50", || {
        store.list(&inv).unwrap()
    });
    let g = Filter {
        grep: Some(format!("evt_{:012}", n / 2)),
        limit: Some(50),
        ..Filter::default()
    };
    time("log --grep <one id> (full scan)", || {
        store.list(&g).unwrap()
    });
    let latest = Filter {
        limit: Some(50),
        ..Filter::default()
    };
    time("log --limit 50 (newest)", || store.list(&latest).unwrap());
    time("get(id)", || store.get((n / 3) as i64 + 1).unwrap());
    drop(store);
    steady_state(dir.path(), base_ms);
}

/// 4. A tunnel at its retention cap, as under sustained load: every batch inserts its rows
///    and deletes as many old ones. The cost per exchange by batch size shows what the
///    writer's group commit (how long it lets exchanges gather) buys; the same batches into a
///    store without retention show what the deletes cost.
fn steady_state(dir: &std::path::Path, base_ms: i64) {
    const ROWS: u64 = 20_000;
    println!(
        "at the retention cap ({} rows), {ROWS} exchanges, µs per exchange:",
        twk_capture::DEFAULT_RETENTION
    );
    println!("  batch size    at the cap    without retention");
    for size in [1u64, 8, 32, 128, 512] {
        let at_cap = per_exchange(dir, base_ms, size, ROWS, true);
        let unbounded = per_exchange(dir, base_ms, size, ROWS, false);
        println!("  {size:>10}    {at_cap:>10.1}    {unbounded:>17.1}");
    }
}

/// `TWK_BENCH_CAP=SIZE[xROWS]`: only one case of section 4, at the cap, so that it can run
/// alone under callgrind (`valgrind --tool=callgrind --toggle-collect='*insert_batch*'`;
/// two runs with different ROWS, and their difference, leave the fill out).
fn cap_only() -> Option<(u64, u64)> {
    let spec = std::env::var("TWK_BENCH_CAP").ok()?;
    let (size, rows) = spec.split_once('x').unwrap_or((&spec, "20000"));
    Some((size.parse().unwrap(), rows.parse().unwrap()))
}

/// µs per exchange of `rows` exchanges in batches of `size` into a store already holding
/// the default retention's worth of rows, with that retention or none.
fn per_exchange(dir: &std::path::Path, base_ms: i64, size: u64, rows: u64, retain: bool) -> f64 {
    let mut opts = StoreOptions::new(dir.join(format!("steady-{size}-{retain}")));
    if !retain {
        opts.retention_per_tunnel = 0;
    }
    let mut store = Store::open(&opts).unwrap();
    let fill: Vec<Exchange> = (0..twk_capture::DEFAULT_RETENTION)
        .map(|k| exchange(k, base_ms))
        .collect();
    store.insert_batch(&fill).unwrap();
    let start = twk_capture::DEFAULT_RETENTION;
    let t = Instant::now();
    let mut i = 0;
    while i < rows {
        let batch: Vec<Exchange> = (i..i + size)
            .map(|k| exchange(start + k, base_ms))
            .collect();
        store.insert_batch(&batch).unwrap();
        i += size;
    }
    t.elapsed().as_secs_f64() * 1e6 / i as f64
}
