//! The recorder: ids, live subscription, batching, and failures that must not stop forwarding.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;
use twk_capture::{AnalysisJson, Filter, Health, Recorder, StoreOptions};

fn opts(dir: &std::path::Path) -> StoreOptions {
    StoreOptions::new(dir.join("twk"))
}

#[tokio::test]
async fn records_announces_and_hands_back_ids() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::start(opts(dir.path())).unwrap();
    let mut sub = rec.subscribe();
    let pending: Vec<_> = (0..500)
        .map(|i| rec.record(exchange("t", i, &format!("/p{i}"), b"{}")))
        .collect();
    let mut ids = vec![];
    for p in pending {
        assert!(p.accepted());
        ids.push(p.id().await.unwrap());
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids grow in record order"
    );
    for (i, id) in ids.iter().enumerate() {
        let n = sub.recv().await.unwrap();
        assert_eq!(n.id, *id);
        assert_eq!(n.summary.path, format!("/p{i}"));
    }
    rec.flush().await;
    let st = rec.status();
    assert_eq!(
        (st.recorded, st.dropped, st.failed, st.health),
        (500, 0, 0, Health::Ok)
    );
    let reader = rec.reader().unwrap();
    assert_eq!(reader.count(&Filter::default()).unwrap(), 500);
    assert_eq!(reader.get(ids[7]).unwrap().unwrap().exchange.path, "/p7");
}

/// Exchanges that arrive while the writer gathers (a trickle, as under load) are all stored,
/// with ids in record order, in fewer transactions than exchanges; a flush is answered.
#[test]
fn a_trickle_is_gathered_into_batches_and_every_exchange_stored_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::start(opts(dir.path())).unwrap();
    let pending: Vec<_> = (0..200)
        .map(|i| {
            std::thread::sleep(Duration::from_micros(300));
            rec.record(exchange("t", i, &format!("/p{i}"), b"{}"))
        })
        .collect();
    let ids: Vec<_> = pending
        .into_iter()
        .map(|p| p.blocking_id().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in record order");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(rec.flush());
    let st = rec.status();
    assert_eq!((st.recorded, st.dropped, st.failed), (200, 0, 0));
    assert!(
        (1..200).contains(&st.batches),
        "{} transactions for 200 exchanges",
        st.batches
    );
    let reader = rec.reader().unwrap();
    assert_eq!(reader.count(&Filter::default()).unwrap(), 200);
    assert_eq!(
        reader.get(ids[150]).unwrap().unwrap().exchange.path,
        "/p150"
    );
}

#[tokio::test]
async fn locked_database_is_reported_and_recording_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.busy_timeout = Duration::from_millis(100);
    o.queue_capacity = 1;
    let rec = Recorder::start(o.clone()).unwrap();
    let mut alerts = rec.alerts();
    assert_eq!(*alerts.borrow_and_update(), twk_capture::Alerts::default());
    // Another process holds the write lock.
    let other = rusqlite::Connection::open(o.db_path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // record() never waits: with a queue of 1 and a stuck writer, most are dropped at once.
    let pending: Vec<_> = (0..10)
        .map(|i| rec.record(exchange("t", i, "/", b"x")))
        .collect();
    let accepted = pending.iter().filter(|p| p.accepted()).count();
    // At most: one the writer took, one it gathered into the same batch before blocking on
    // the lock, and one in the queue of 1 (a loaded machine sees all three).
    assert!(accepted <= 3, "{accepted} accepted");
    for p in pending {
        assert_eq!(p.id().await, None, "nothing can be written while locked");
    }
    let st = rec.status();
    assert_eq!(st.dropped, 10 - accepted as u64);
    assert_eq!(st.failed, accepted as u64);
    match &st.health {
        Health::Failing { message } => assert!(message.contains("locked"), "{message}"),
        h => panic!("expected failing, got {h:?}"),
    }
    // The UI is told (a watch, not polling): the same drops and the same failure.
    assert!(alerts.has_changed().unwrap());
    let told = alerts.borrow_and_update().clone();
    assert_eq!(told.dropped, st.dropped);
    assert!(
        told.failing
            .as_deref()
            .is_some_and(|m| m.contains("locked")),
        "{told:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    let id = rec.record(exchange("t", 99, "/after", b"x")).id().await;
    assert!(id.is_some());
    assert_eq!(rec.status().health, Health::Ok);
    alerts.changed().await.unwrap();
    assert_eq!(
        alerts.borrow_and_update().failing,
        None,
        "recovery is told too"
    );
}

#[tokio::test]
async fn a_writer_behind_sheds_body_bytes_but_keeps_every_exchange() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.queue_bytes = 3 * 64 * 1024;
    let rec = Recorder::start(o.clone()).unwrap();
    let mut alerts = rec.alerts();
    // A stuck writer (another process holds the write lock) and a flood of 64 KiB bodies:
    // the queue keeps about three bodies' worth; the rest are queued without their bytes.
    let other = rusqlite::Connection::open(o.db_path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let big = vec![b'q'; 64 * 1024];
    let pending: Vec<_> = (0..200)
        .map(|i| rec.record(exchange("t", i, "/flood", &big)))
        .collect();
    assert!(
        pending.iter().all(|p| p.accepted()),
        "an exchange was dropped"
    );
    let st = rec.status();
    assert!((196..=199).contains(&st.shed), "{} of 200 shed", st.shed);
    assert_eq!(st.dropped, 0);
    alerts.changed().await.unwrap();
    assert_eq!(alerts.borrow_and_update().shed, st.shed, "the UI is told");
    other.execute_batch("COMMIT").unwrap();
    let mut ids = vec![];
    for p in pending {
        ids.push(p.id().await.expect("a queued exchange was not stored"));
    }
    let reader = rec.reader().unwrap();
    let first = reader.get(ids[0]).unwrap().unwrap().exchange.request.body;
    assert_eq!((first.bytes.len(), first.truncated), (big.len(), false));
    let last = reader.get(ids[199]).unwrap().unwrap().exchange.request.body;
    assert_eq!(last.bytes, big[..twk_capture::SHED_KEEP]);
    assert!(last.truncated);
    assert_eq!(
        last.len,
        big.len() as u64,
        "the length is of the whole body"
    );
    assert_eq!(last.sha256, hex::encode(sha2::Sha256::digest(&big)));
    // The bytes leave the bound once the writer is done with a batch.
    let id = rec.record(exchange("t", 500, "/after", &big)).id().await;
    let after = reader
        .get(id.unwrap())
        .unwrap()
        .unwrap()
        .exchange
        .request
        .body;
    assert!(
        !after.truncated,
        "bound not returned after the writer caught up"
    );
}

#[tokio::test]
async fn full_disk_is_reported_and_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.max_db_bytes = Some(256 * 1024);
    o.retention_per_tunnel = 0;
    let rec = Recorder::start(o).unwrap();
    let big = vec![b'z'; 32 * 1024];
    let mut failed_at = None;
    for i in 0..64 {
        if rec.record(exchange("t", i, "/", &big)).id().await.is_none() {
            failed_at = Some(i);
            break;
        }
    }
    assert!(failed_at.is_some(), "the quota was never hit");
    match rec.status().health {
        Health::Failing { message } => assert!(message.contains("full"), "{message}"),
        h => panic!("expected failing, got {h:?}"),
    }
    // Still accepting (and failing) without blocking; small rows may fit again.
    assert!(rec.record(exchange("t", 100, "/", &big)).accepted());
}

#[tokio::test]
async fn large_heads_count_against_the_queue_so_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.queue_max_bytes = 1024 * 1024;
    let rec = Recorder::start(o.clone()).unwrap();
    // A stuck writer, and strangers sending the largest heads the relay admits (64 KiB):
    // without a byte bound the 4096-deep queue would hold 256 MiB of them.
    let other = rusqlite::Connection::open(o.db_path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let big_head = |i: i64| {
        let mut ex = exchange("t", i, "/h", b"{}");
        ex.request.headers.push(twk_capture::Header {
            name: "x-padding".into(),
            value: vec![b'p'; 63 * 1024],
        });
        ex
    };
    let pending: Vec<_> = (0..100).map(|i| rec.record(big_head(i))).collect();
    let kept = pending.iter().filter(|p| p.accepted()).count();
    // 1 MiB holds 15 such exchanges (64 KiB and the allowances each), the 16th passes it.
    assert!((14..=16).contains(&kept), "{kept} of 100 queued");
    let st = rec.status();
    assert_eq!(st.dropped, 100 - kept as u64);
    assert_eq!(st.shed, 0, "nothing to shed: the bodies are small");
    assert!(
        pending[..kept].iter().all(|p| p.accepted()),
        "the first ones fill the queue, the rest are refused"
    );
    other.execute_batch("COMMIT").unwrap();
    for p in pending {
        if p.accepted() {
            p.id().await.expect("a queued exchange was not stored");
        }
    }
    // Written, their bytes leave the queue: recording goes on.
    let after = rec.record(exchange("t", 300, "/after", b"{}"));
    assert!(after.id().await.is_some());
}

#[tokio::test]
async fn an_analysis_counts_against_the_queue_and_a_refused_exchange_is_not_also_shed() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.queue_max_bytes = 1024 * 1024;
    o.queue_bytes = 1;
    let rec = Recorder::start(o.clone()).unwrap();
    let other = rusqlite::Connection::open(o.db_path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // A stranger's form, every field of which the analysis repeats: 200 KiB of strings for
    // a body that is shed to 4 KiB.
    let fields: serde_json::Map<String, serde_json::Value> = (0..2000)
        .map(|i| {
            (
                format!("Field{i}"),
                serde_json::Value::String("v".repeat(100)),
            )
        })
        .collect();
    let pending: Vec<_> = (0..20)
        .map(|i| {
            let mut ex = exchange("t", i, "/form", &vec![b'f'; 64 * 1024]);
            ex.analysis =
                AnalysisJson::from_value(&serde_json::json!({ "details": fields.clone() }));
            rec.record(ex)
        })
        .collect();
    let kept = pending.iter().filter(|p| p.accepted()).count();
    // Held as its JSON text, the analysis weighs ~225 KiB (2,000 fields of ~115 bytes): the
    // first exchange with its whole body, and three more shed to 4 KiB, fit in 1 MiB.
    assert!((3..=4).contains(&kept), "{kept} of 20 queued");
    let st = rec.status();
    assert_eq!(st.dropped, 20 - kept as u64);
    assert_eq!(
        st.shed,
        kept as u64 - 1,
        "shed: the queued ones after the first, not the refused ones"
    );
    other.execute_batch("COMMIT").unwrap();
}

#[tokio::test]
async fn bodies_too_small_to_cut_are_not_counted_as_shed() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.queue_bytes = 1;
    let rec = Recorder::start(o.clone()).unwrap();
    let other = rusqlite::Connection::open(o.db_path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let pending: Vec<_> = (0..50)
        .map(|i| rec.record(exchange("t", i, "/small", &[b's'; 1024])))
        .collect();
    assert!(pending.iter().all(|p| p.accepted()));
    let st = rec.status();
    assert_eq!(
        (st.shed, st.dropped),
        (0, 0),
        "over the body budget, nothing to cut"
    );
    other.execute_batch("COMMIT").unwrap();
    for p in pending {
        let id = p.id().await.unwrap();
        let body = rec
            .reader()
            .unwrap()
            .get(id)
            .unwrap()
            .unwrap()
            .exchange
            .request
            .body;
        assert_eq!((body.bytes.len(), body.truncated), (1024, false));
    }
}
