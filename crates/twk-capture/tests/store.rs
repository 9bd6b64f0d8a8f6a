//! The capture store on a real SQLite file: persistence, filters, caps, grouping, modes.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use sha2::Digest as _;
use std::os::unix::fs::PermissionsExt;
use twk_capture::time::{Bound, parse_time};
use twk_capture::{AnalysisJson, Filter, Order, Side, StatusFilter, Store, StoreOptions};

const JAN_2018: i64 = 1_514_764_800_000; // 2018-01-01T00:00:00Z
const HOUR: i64 = 3_600_000;

#[test]
fn ids_are_stable_across_reopen_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new(dir.path().join("twk"));
    let (a, b) = {
        let mut s = Store::open(&opts).unwrap();
        let a = s.insert(&exchange("t", JAN_2018, "/a", b"{}")).unwrap();
        let b = s.insert(&exchange("t", JAN_2018 + 1, "/b", b"{}")).unwrap();
        (a, b)
    };
    let mut s = Store::open(&opts).unwrap();
    let got = s.get(a).unwrap().unwrap();
    assert_eq!(got.exchange.path, "/a");
    assert_eq!(got.exchange.id, Some(a));
    assert_eq!(s.get(b).unwrap().unwrap().exchange.path, "/b");
    // Even after the newest row is gone, its id is not handed out again.
    let c = s.insert(&exchange("t", JAN_2018 + 2, "/c", b"{}")).unwrap();
    assert!(c > b);
    assert_eq!(s.max_id().unwrap(), Some(c));
}

#[test]
fn full_exchange_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let mut ex = with_event(
        exchange("t", JAN_2018, "/hook?x=1", b"{\"a\":1}"),
        "stripe",
        "invoice.paid",
        "valid",
    );
    ex.summary = Some("invoice paid".into());
    ex.matched_secret = Some(twk_providers::SecretSource::TwkTest);
    ex.analysis =
        AnalysisJson::from_value(&serde_json::json!({"verdict": "valid", "details": [1, 2]}));
    ex.request.headers.push(twk_capture::Header {
        name: "x-bin".into(),
        value: vec![0xff, 0xfe, b'a'],
    });
    ex.request.headers.push(twk_capture::Header {
        name: "x-dup".into(),
        value: b"1".to_vec(),
    });
    ex.request.headers.push(twk_capture::Header {
        name: "x-dup".into(),
        value: b"2".to_vec(),
    });
    let id = s.insert(&ex).unwrap();
    let got = s.get(id).unwrap().unwrap();
    let mut expected = ex.clone();
    expected.id = Some(id);
    assert_eq!(got.exchange, expected);
    assert_eq!(got.attempt, Some(1));
    assert!(got.handshake.is_none() && got.lints.is_none());
    // The list row says which secret held too (the inspector's list and `log` show it).
    let rows = s.list(&Filter::default()).unwrap();
    let row = rows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(
        row.matched_secret,
        Some(twk_providers::SecretSource::TwkTest)
    );

    let f = failed(exchange("t", JAN_2018 + 5, "/down", b""), Side::Target);
    let fid = s.insert(&f).unwrap();
    let got = s.get(fid).unwrap().unwrap();
    assert_eq!(got.exchange.failure.unwrap().side, Side::Target);
    assert_eq!(got.exchange.response, None);
    assert_eq!(s.get(fid + 100).unwrap(), None);
}

fn seed(s: &mut Store) -> Vec<i64> {
    let mut ids = vec![];
    let rows = vec![
        with_event(
            exchange("alpha", JAN_2018, "/authy", b"{\"n\":1}"),
            "authy",
            "device_registration_completed",
            "valid",
        ),
        with_event(
            exchange("alpha", JAN_2018 + 24 * HOUR, "/authy", b"{\"n\":2}"),
            "authy",
            "device_registration_completed",
            "invalid",
        ),
        with_event(
            exchange("alpha", JAN_2018 + 40 * 24 * HOUR, "/authy", b"{\"n\":3}"),
            "authy",
            "device_registration_completed",
            "valid",
        ),
        with_event(
            exchange(
                "beta",
                JAN_2018 + 2 * HOUR,
                "/stripe",
                b"{\"needle\":\"Zebra\"}",
            ),
            "stripe",
            "invoice.paid",
            "stale",
        ),
        with_event(
            exchange("beta", JAN_2018 + 3 * HOUR, "/gh", b"{\"n\":5}"),
            "github",
            "push",
            "unsigned",
        ),
        failed(
            exchange("beta", JAN_2018 + 4 * HOUR, "/down", b"{\"n\":6}"),
            Side::Target,
        ),
    ];
    for (i, mut r) in rows.into_iter().enumerate() {
        r.status = match i {
            1 => Some(404),
            3 => Some(500),
            4 => Some(503),
            5 => None,
            _ => Some(200),
        };
        ids.push(s.insert(&r).unwrap());
    }
    ids
}

fn ids(s: &Store, f: Filter) -> Vec<i64> {
    let listed: Vec<i64> = s.list(&f).unwrap().into_iter().map(|r| r.id).collect();
    let full: Vec<i64> = s.query(&f).unwrap().into_iter().map(|r| r.id()).collect();
    assert_eq!(listed, full, "list and query disagree for {f:?}");
    let mut unlimited = f.clone();
    unlimited.limit = None;
    unlimited.offset = 0;
    assert_eq!(
        s.count(&f).unwrap() as usize,
        s.list(&unlimited).unwrap().len(),
        "count disagrees for {f:?}"
    );
    listed
}

#[test]
fn every_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let id = seed(&mut s);
    let all = Filter {
        order: Order::OldestFirst,
        ..Filter::default()
    };
    assert_eq!(ids(&s, all.clone()), id);
    assert_eq!(
        ids(
            &s,
            Filter {
                order: Order::NewestFirst,
                ..all.clone()
            }
        ),
        id.iter().rev().copied().collect::<Vec<_>>()
    );
    // name / provider / event / verdict
    assert_eq!(
        ids(
            &s,
            Filter {
                name: Some("beta".into()),
                ..all.clone()
            }
        ),
        id[3..].to_vec()
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                provider: Some("stripe".into()),
                ..all.clone()
            }
        ),
        vec![id[3]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                event: Some("device_registration_completed".into()),
                ..all.clone()
            }
        ),
        id[..3].to_vec()
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                verdict: Some(twk_providers::Verdict::Valid),
                ..all.clone()
            }
        ),
        vec![id[0], id[2]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                verdict: Some(twk_providers::Verdict::NoSecret),
                ..all.clone()
            }
        ),
        Vec::<i64>::new()
    );
    // status: exact, classes, none
    assert_eq!(
        ids(
            &s,
            Filter {
                status: Some(StatusFilter::Exact(404)),
                ..all.clone()
            }
        ),
        vec![id[1]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                status: Some(StatusFilter::Class(4)),
                ..all.clone()
            }
        ),
        vec![id[1]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                status: Some(StatusFilter::Class(5)),
                ..all.clone()
            }
        ),
        vec![id[3], id[4]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                status: Some(StatusFilter::Class(2)),
                ..all.clone()
            }
        ),
        vec![id[0], id[2]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                status: Some(StatusFilter::NoResponse),
                ..all.clone()
            }
        ),
        vec![id[5]]
    );
    // Time range: every device_registration_completed in January 2018, Twilio-reporting style.
    let now = jiff::Timestamp::now();
    let since = parse_time("2018-01-01T00:00:00.000Z", Bound::Since, now).unwrap();
    let until = parse_time("2018-01-31", Bound::Until, now).unwrap();
    let jan = Filter {
        event: Some("device_registration_completed".into()),
        ..all.clone()
    }
    .between(Some(since), Some(until));
    assert_eq!(ids(&s, jan), id[..2].to_vec());
    // Inclusive bounds at the millisecond.
    let exact = Filter {
        since_ms: Some(JAN_2018 + 2 * HOUR),
        until_ms: Some(JAN_2018 + 3 * HOUR),
        ..all.clone()
    };
    assert_eq!(ids(&s, exact), vec![id[3], id[4]]);
    // grep: body text (case-insensitive), path, header, no LIKE wildcards leaking.
    assert_eq!(
        ids(
            &s,
            Filter {
                grep: Some("zebra".into()),
                ..all.clone()
            }
        ),
        vec![id[3]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                grep: Some("/gh".into()),
                ..all.clone()
            }
        ),
        vec![id[4]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                grep: Some("%".into()),
                ..all.clone()
            }
        ),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                grep: Some("text/plain".into()),
                ..all.clone()
            }
        )
        .len(),
        5
    );
    // Combined, limit and offset.
    assert_eq!(
        ids(
            &s,
            Filter {
                name: Some("alpha".into()),
                verdict: Some(twk_providers::Verdict::Valid),
                ..all.clone()
            }
        ),
        vec![id[0], id[2]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                limit: Some(2),
                offset: 1,
                ..all.clone()
            }
        ),
        id[1..3].to_vec()
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                limit: Some(2),
                order: Order::NewestFirst,
                ..all.clone()
            }
        ),
        vec![id[5], id[4]]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                after_id: Some(id[4]),
                ..all.clone()
            }
        ),
        vec![id[5]]
    );
    // Summary rows carry what a list view needs.
    let row = s
        .list(&Filter {
            after_id: Some(id[4]),
            ..all
        })
        .unwrap()
        .remove(0);
    assert_eq!(row.failure_side, Some(Side::Target));
    assert_eq!(row.status, None);
    assert_eq!(row.duration_ms, Some(12));
}

#[test]
fn retention_cap_holds_under_hostile_volume() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("twk"));
    opts.retention_per_tunnel = 50;
    let mut s = Store::open(&opts).unwrap();
    // One quiet tunnel that must keep its rows while a noisy one floods.
    let quiet = s.insert(&exchange("quiet", 1, "/q", b"q")).unwrap();
    let big = vec![b'x'; 16 * 1024];
    let mut last = 0;
    for round in 0..20 {
        let batch: Vec<_> = (0..100)
            .map(|i| exchange("noisy", 10 + round * 100 + i, "/n", &big))
            .collect();
        last = s.insert_batch(&batch).unwrap().last().unwrap().id;
    }
    let noisy = Filter {
        name: Some("noisy".into()),
        ..Filter::default()
    };
    assert_eq!(s.count(&noisy).unwrap(), 50);
    let kept = s.list(&noisy).unwrap();
    assert_eq!(kept.first().unwrap().id, last, "the newest are kept");
    assert_eq!(kept.last().unwrap().id, last - 49);
    assert!(
        s.get(quiet).unwrap().is_some(),
        "other tunnels are untouched"
    );
    drop(s);
    // A smaller cap applies at the next write, even after reopen; bodies go with their rows.
    opts.retention_per_tunnel = 10;
    let mut s = Store::open(&opts).unwrap();
    s.insert(&exchange("noisy", 99_999, "/n", b"y")).unwrap();
    assert_eq!(s.count(&noisy).unwrap(), 10);
    let file_len = std::fs::metadata(opts.db_path()).unwrap().len();
    // 2000 × 16 KiB (31 MiB) were written; only the retained rows' pages may stay in use (free pages
    // are reused), so the file must not have grown to hold them all.
    assert!(file_len < 8 * 1024 * 1024, "db file is {file_len} bytes");
}

#[test]
fn runs_under_new_names_add_up_only_to_the_total_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("twk"));
    opts.retention_per_tunnel = 50;
    opts.retention_total = 100;
    let mut s = Store::open(&opts).unwrap();
    let count = |s: &Store, name: &str| {
        let f = Filter {
            name: Some(name.into()),
            ..Filter::default()
        };
        s.count(&f).unwrap()
    };
    // Ten runs, each under a new name (no `--name`), 30 exchanges each: in batches and alone.
    let mut at = 0;
    for run in 0..10 {
        let name = format!("run-{run}");
        let mut batch = Vec::new();
        for _ in 0..30 {
            at += 1;
            batch.push(exchange(&name, at, "/", b"{}"));
            if run % 2 == 0 {
                s.insert_batch(&std::mem::take(&mut batch)).unwrap();
            }
        }
        if !batch.is_empty() {
            s.insert_batch(&batch).unwrap();
        }
    }
    assert_eq!(s.count(&Filter::default()).unwrap(), 100);
    let kept: Vec<_> = (0..10).map(|r| count(&s, &format!("run-{r}"))).collect();
    assert_eq!(
        kept,
        [0, 0, 0, 0, 0, 0, 10, 30, 30, 30],
        "the oldest go first"
    );

    // run-6 lost 20 rows to the total: its own bound counts from 10, not 30.
    let batch: Vec<_> = (0..45)
        .map(|_| {
            at += 1;
            exchange("run-6", at, "/", b"{}")
        })
        .collect();
    s.insert_batch(&batch).unwrap();
    // run-6: 10 + 45 over 50, so its 5 oldest go; then the total is 140: the 40 oldest go
    // (run-6's other 5 old rows, run-7, 5 of run-8).
    let kept: Vec<_> = (6..10).map(|r| count(&s, &format!("run-{r}"))).collect();
    assert_eq!(kept, [45, 0, 25, 30]);
    assert_eq!(s.count(&Filter::default()).unwrap(), 100);

    // Opened afresh, the counts start from the rows themselves.
    drop(s);
    let mut s = Store::open(&opts).unwrap();
    s.insert(&exchange("fresh", at + 1, "/", b"{}")).unwrap();
    assert_eq!(s.count(&Filter::default()).unwrap(), 100);
    assert_eq!(count(&s, "run-8"), 24);
}

/// 1,000 requests the relay refused (429), recorded in 20 batches of 50, after `at`.
fn refused_flood(s: &mut Store, at: &mut i64) {
    for _ in 0..20 {
        let flood: Vec<_> = (0..50)
            .map(|_| {
                *at += 1;
                let mut ex = exchange("shop", *at, "/flood", b"");
                ex.refused = true;
                ex.status = Some(429);
                ex
            })
            .collect();
        s.insert_batch(&flood).unwrap();
    }
}

/// A stranger's flood of requests the relay refused (recorded from its notices) erases at
/// most a bounded number of rows of history: past it the oldest refused rows go first.
#[test]
fn refused_rows_are_bounded_apart_so_a_flood_of_them_keeps_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("twk"));
    opts.retention_total = 100;
    let mut s = Store::open(&opts).unwrap();
    let mut at = 0;
    let history: Vec<_> = (0..60)
        .map(|_| {
            at += 1;
            exchange("shop", at, "/hooks", b"{}")
        })
        .collect();
    s.insert_batch(&history).unwrap();
    refused_flood(&mut s, &mut at);
    let refused = Filter {
        refused: Some(true),
        ..Filter::default()
    };
    assert_eq!(
        s.count(&refused).unwrap(),
        10,
        "a tenth of the total of 100"
    );
    assert_eq!(
        s.count(&Filter::default()).unwrap(),
        70,
        "the 60 rows of history stay whole beside 10 refused"
    );
    let newest = ids(&s, refused.clone());
    assert_eq!(newest.len(), 10);
    assert!(
        newest.iter().all(|id| *id > at - 10),
        "the newest refused stay: {newest:?}"
    );

    // The bound per tunnel counts too (a review set `retention = 100` and lost every row).
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("twk"));
    opts.retention_per_tunnel = 100;
    let mut s = Store::open(&opts).unwrap();
    s.insert_batch(&history).unwrap();
    refused_flood(&mut s, &mut at);
    assert_eq!(s.count(&refused).unwrap(), 10);
    assert_eq!(s.count(&Filter::default()).unwrap(), 70);
}

/// What the payloads keep in the database, and the rows whose `stored_bytes` disagree.
fn payload_bytes(db: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let size = "octet_length(p.req_headers) + length(p.req_body) \
                + coalesce(octet_length(p.resp_headers), 0) + coalesce(length(p.resp_body), 0)";
    conn.query_row(
        &format!(
            "SELECT coalesce(sum({size}), 0), coalesce(sum(e.stored_bytes != {size}), 0) \
             FROM exchanges e JOIN payloads p ON p.id = e.id"
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn heavy_rows_from_a_stranger_keep_the_database_within_its_bytes_bound() {
    const BOUND: i64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("twk"));
    opts.payloads_max_bytes = BOUND as u64;
    let mut s = Store::open(&opts).unwrap();
    let quiet = s.insert(&exchange("quiet", 0, "/q", b"q")).unwrap();
    // Each: a 60 KiB body (under the 64 KiB that go to files), a 16 KiB header with bytes
    // that are not UTF-8 (kept as base64), a 30 KiB answer: ~114 KiB the database keeps.
    let heavy = |at: i64| {
        let mut ex = exchange("flood", at, "/", &vec![b'x'; 60 * 1024]);
        let mut value = vec![0xff_u8; 16 * 1024];
        value[..8].copy_from_slice(&at.to_be_bytes());
        ex.request.headers.push(twk_capture::exchange::Header {
            name: "x-pad".into(),
            value,
        });
        ex.response.as_mut().unwrap().body = body(&vec![b'y'; 30 * 1024]);
        ex
    };
    let mut at = 0;
    let mut newest = 0;
    for round in 0..6 {
        if round == 4 {
            drop(s);
            s = Store::open(&opts).unwrap();
        }
        let batch: Vec<_> = (0..5)
            .map(|_| {
                at += 1;
                heavy(at)
            })
            .collect();
        newest = s.insert_batch(&batch).unwrap().last().unwrap().id;
        let (bytes, wrong) = payload_bytes(&opts.db_path());
        assert_eq!(wrong, 0, "every row knows what it keeps");
        assert!(bytes <= BOUND, "{bytes} bytes of payloads after {at} rows");
        if at > 10 {
            // Full: what went is the fewest oldest rows (one is ~114 KiB).
            assert!(bytes > BOUND - 115 * 1024, "more went than needed: {bytes}");
        }
    }
    assert!(
        s.get(quiet).unwrap().is_none(),
        "the bound is the store's, oldest first"
    );
    let kept = s.list(&Filter::default()).unwrap();
    assert_eq!(kept.first().unwrap().id, newest, "the newest are kept");
    assert_eq!(kept.len(), 9, "rows of ~114 KiB in 1 MiB");
    let flood = Filter {
        name: Some("flood".into()),
        ..Filter::default()
    };
    assert_eq!(s.count(&flood).unwrap(), kept.len() as u64);
}

/// A store of 10,000 rows under ten names, with no bound on rows or bytes.
fn ten_thousand_rows(dir: &std::path::Path) -> (StoreOptions, i64) {
    let mut opts = StoreOptions::new(dir.join("twk"));
    opts.retention_per_tunnel = 0;
    opts.retention_total = 0;
    opts.payloads_max_bytes = 0;
    let mut s = Store::open(&opts).unwrap();
    let mut at = 0;
    for run in 0..10 {
        let batch: Vec<_> = (0..1000)
            .map(|_| {
                at += 1;
                exchange(&format!("run-{run}"), at, "/", b"{}")
            })
            .collect();
        s.insert_batch(&batch).unwrap();
    }
    (opts, at)
}

/// Inserts one row at a time and says how many rows there are after each.
fn rows_after_inserts(s: &mut Store, at: &mut i64, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            *at += 1;
            s.insert(&exchange("new", *at, "/", b"{}")).unwrap();
            s.count(&Filter::default()).unwrap()
        })
        .collect()
}

#[test]
fn a_store_far_over_its_bounds_comes_down_over_several_batches() {
    // An upgrade, or a bound lowered: 10,000 rows against 1,000. Each batch deletes what it
    // adds and 4,096 more, so no transaction holds the writer for long.
    let dir = tempfile::tempdir().unwrap();
    let (mut opts, mut at) = ten_thousand_rows(dir.path());
    opts.retention_total = 1000;
    let mut s = Store::open(&opts).unwrap();
    let left = rows_after_inserts(&mut s, &mut at, 4);
    assert_eq!(left, [10_001 - 4_097, 5_904 + 1 - 4_097, 1000, 1000]);
    let newest = s.list(&Filter::default()).unwrap();
    assert_eq!(newest.first().unwrap().tunnel, "new", "the newest are kept");

    // The same for the bytes bound: 1,000 rows' worth (every row here keeps as many).
    let dir = tempfile::tempdir().unwrap();
    let (mut opts, mut at) = ten_thousand_rows(dir.path());
    let row: i64 = rusqlite::Connection::open(opts.db_path())
        .unwrap()
        .query_row("SELECT max(stored_bytes) FROM exchanges", [], |r| r.get(0))
        .unwrap();
    opts.payloads_max_bytes = 1000 * row as u64;
    let mut s = Store::open(&opts).unwrap();
    let left = rows_after_inserts(&mut s, &mut at, 4);
    assert_eq!(left, [10_001 - 4_097, 5_904 + 1 - 4_097, 1000, 1000]);
}

#[test]
fn body_cap_truncates_store_only_and_keeps_len_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("twk"));
    opts.body_cap = 1000;
    let mut s = Store::open(&opts).unwrap();
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let full = body(&payload);
    let mut ex = exchange("t", 1, "/big", &payload);
    ex.response.as_mut().unwrap().body = body(&payload);
    let id = s.insert(&ex).unwrap();
    let got = s.get(id).unwrap().unwrap().exchange;
    for b in [&got.request.body, &got.response.unwrap().body] {
        assert_eq!(b.bytes, payload[..1000]);
        assert_eq!(b.len, 5000);
        assert_eq!(b.sha256, full.sha256);
        assert!(b.truncated);
    }
    // Already truncated by the agent (at 2000) and over the store cap: true len kept.
    let mut pre = exchange("t", 2, "/pre", &payload[..2000]);
    pre.request.body.len = 9_999_999;
    pre.request.body.sha256 = "ab".repeat(32);
    pre.request.body.truncated = true;
    let pid = s.insert(&pre).unwrap();
    let got = s.get(pid).unwrap().unwrap().exchange.request.body;
    assert_eq!(
        (got.bytes.len(), got.len, got.truncated),
        (1000, 9_999_999, true)
    );
    assert_eq!(got.sha256, "ab".repeat(32));
    // Under the cap: untouched; a missing hash is computed.
    let mut small = exchange("t", 3, "/small", b"hello");
    small.request.body.sha256 = String::new();
    let sid = s.insert(&small).unwrap();
    let got = s.get(sid).unwrap().unwrap().exchange.request.body;
    assert_eq!(got, body(b"hello"));
}

#[test]
fn file_and_directory_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("twk");
    let opts = StoreOptions::new(&data);
    let mut s = Store::open(&opts).unwrap();
    s.insert(&exchange("t", 1, "/", b"x")).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&opts.db_path()), 0o600);
    for suffix in ["-wal", "-shm"] {
        let mut p = opts.db_path().into_os_string();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    drop(s);
    // Loosened by someone else: tightened again on open.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(opts.db_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let _s = Store::open(&opts).unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&opts.db_path()), 0o600);
}

#[test]
fn attempts_are_grouped() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let gh = |at: i64, delivery: &str| {
        let mut e = exchange("t", at, "/gh", format!("{{\"at\":{at}}}").as_bytes());
        e.request.headers.push(twk_capture::Header {
            name: "X-GitHub-Delivery".into(),
            value: delivery.as_bytes().to_vec(),
        });
        e
    };
    let stripe = |at: i64| {
        exchange(
            "t",
            at,
            "/stripe",
            br#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#,
        )
    };
    let a1 = s.insert(&gh(1, "d-1")).unwrap();
    let b1 = s.insert(&gh(2, "d-2")).unwrap();
    let a2 = s.insert(&gh(3, "d-1")).unwrap();
    let st1 = s.insert(&stripe(4)).unwrap();
    let st2 = s.insert(&stripe(4 + 3 * 24 * HOUR)).unwrap(); // id-based: no time window
    let other_tunnel = s.insert(&exchange("u", 5, "/gh", b"{}")).unwrap();
    // Body-hash fallback: same body within 24 h groups; after 24 h starts over.
    let p1 = s.insert(&exchange("t", 10, "/plain", b"same")).unwrap();
    let p2 = s
        .insert(&exchange("t", 10 + HOUR, "/plain", b"same"))
        .unwrap();
    let p3 = s
        .insert(&exchange("t", 10 + 26 * HOUR, "/plain", b"same"))
        .unwrap();
    // A replay is not an attempt.
    let mut r = gh(50, "d-1");
    r.replay_of = Some(a1);
    let rid = s.insert(&r).unwrap();
    let attempt = |id| s.get(id).unwrap().unwrap().attempt;
    assert_eq!(
        [a1, b1, a2, st1, st2, other_tunnel, p1, p2, p3].map(attempt),
        [
            Some(1),
            Some(1),
            Some(2),
            Some(1),
            Some(2),
            Some(1),
            Some(1),
            Some(2),
            Some(1)
        ]
    );
    assert_eq!(attempt(rid), None);
    let group: Vec<i64> = s.attempts_of(a2).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(group, vec![a1, a2]);
    let replays = Filter {
        replay_of: Some(a1),
        ..Filter::default()
    };
    assert_eq!(s.list(&replays).unwrap().len(), 1);
}

#[test]
fn a_body_hash_left_to_the_store_is_stored_and_groups_retries() {
    // The client's tap leaves a complete body's SHA-256 to the store.
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let unhashed = |at: i64| {
        let mut e = exchange("t", at, "/plain", b"the same body");
        e.request.body.sha256.clear();
        e
    };
    let first = s.insert(&unhashed(10)).unwrap();
    let retry = s.insert(&unhashed(20)).unwrap();
    let got = s.get(retry).unwrap().unwrap();
    assert_eq!(
        got.exchange.request.body.sha256,
        hex::encode(sha2::Sha256::digest(b"the same body"))
    );
    assert_eq!(
        [first, retry].map(|id| s.get(id).unwrap().unwrap().attempt),
        [Some(1), Some(2)]
    );
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new(dir.path().join("twk"));
    drop(Store::open(&opts).unwrap());
    let c = rusqlite::Connection::open(opts.db_path()).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = Store::open(&opts).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");
}
