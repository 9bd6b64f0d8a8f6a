//! Bodies of 64 KiB and more are files beside the database, named by their SHA-256: read
//! back byte for byte, shared by every row that stored the same bytes, removed with the last
//! of them, searched by `--grep`, and never trusted when lost or altered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use twk_capture::{Filter, Store, StoreOptions};

/// `len` bytes that are not text and not all alike.
fn noise(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn bodies_dir(dir: &Path) -> PathBuf {
    dir.join("twk").join("bodies")
}

fn file_of(dir: &Path, bytes: &[u8]) -> PathBuf {
    let name = sha(bytes);
    bodies_dir(dir).join(&name[..2]).join(name)
}

/// Every file under `bodies/` (temporary ones included).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(fans) = std::fs::read_dir(bodies_dir(dir)) {
        for fan in fans.flatten() {
            for f in std::fs::read_dir(fan.path()).unwrap().flatten() {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// How many bytes the payload rows hold in the database itself.
fn bytes_in_db(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("twk").join("captures.sqlite3")).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(length(req_body) + coalesce(length(resp_body), 0)), 0) FROM payloads",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn store_with(dir: &Path, f: impl FnOnce(&mut StoreOptions)) -> Store {
    let mut o = StoreOptions::new(dir.join("twk"));
    f(&mut o);
    Store::open(&o).unwrap()
}

#[test]
fn large_bodies_are_private_files_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let req = noise(200 * 1024, 1);
    let resp = noise(100 * 1024, 2);
    let mut ex = exchange("t", 1, "/upload", &req);
    ex.response.as_mut().unwrap().body = body(&resp);
    let id = s.insert(&ex).unwrap();

    let got = s.get(id).unwrap().unwrap().exchange;
    assert_eq!(got.request.body.bytes, req);
    assert_eq!(got.request.body.len, req.len() as u64);
    assert_eq!(got.request.body.sha256, sha(&req));
    assert!(!got.request.body.truncated);
    let got_resp = got.response.unwrap().body;
    assert_eq!(got_resp.bytes, resp);
    assert!(!got_resp.truncated);

    assert_eq!(
        files(dir.path()),
        {
            let mut v = vec![file_of(dir.path(), &req), file_of(dir.path(), &resp)];
            v.sort();
            v
        },
        "one file per body, named by its SHA-256"
    );
    assert_eq!(
        bytes_in_db(dir.path()),
        0,
        "the bytes are not in the database too"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&bodies_dir(dir.path())), 0o700);
    assert_eq!(mode(file_of(dir.path(), &req).parent().unwrap()), 0o700);
    assert_eq!(mode(&file_of(dir.path(), &req)), 0o600);
}

#[test]
fn webhook_sized_bodies_stay_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let small = noise(64 * 1024 - 1, 3);
    let id = s.insert(&exchange("t", 1, "/", &small)).unwrap();
    assert_eq!(
        s.get(id).unwrap().unwrap().exchange.request.body.bytes,
        small
    );
    assert!(files(dir.path()).is_empty());
    assert_eq!(bytes_in_db(dir.path()), small.len() as i64 + 2);
}

#[test]
fn one_file_serves_every_row_with_those_bytes_until_the_last_goes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store_with(dir.path(), |o| o.retention_per_tunnel = 2);
    let big = noise(80 * 1024, 4);
    // An echo: the response carries the same bytes as the request.
    let mut echo = exchange("t", 1, "/", &big);
    echo.response.as_mut().unwrap().body = body(&big);
    let first = s.insert(&echo).unwrap();
    let second = s.insert(&exchange("t", 2, "/", &big)).unwrap();
    assert_eq!(files(dir.path()), vec![file_of(dir.path(), &big)]);

    // Retention removes the echo: the second row still needs the file.
    s.insert(&exchange("t", 3, "/", b"small")).unwrap();
    assert!(s.get(first).unwrap().is_none());
    assert_eq!(files(dir.path()), vec![file_of(dir.path(), &big)]);
    assert_eq!(
        s.get(second).unwrap().unwrap().exchange.request.body.bytes,
        big
    );

    // And then the second: the file goes with it.
    s.insert(&exchange("t", 4, "/", b"small")).unwrap();
    assert!(s.get(second).unwrap().is_none());
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));

    // The same bytes again are written again.
    let third = s.insert(&exchange("t", 5, "/", &big)).unwrap();
    assert_eq!(
        s.get(third).unwrap().unwrap().exchange.request.body.bytes,
        big
    );
}

#[test]
fn grep_searches_every_byte_of_bodies_in_files_and_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    // Binary bodies: NUL bytes before the match (SQLite's LIKE stopped at the first one).
    let mut big = noise(300 * 1024, 5);
    assert!(big[..1000].contains(&0));
    big[150_000..150_013].copy_from_slice(b"Needle-7c1f9e");
    let hit = s.insert(&exchange("t", 1, "/a", &big)).unwrap();
    s.insert(&exchange("t", 2, "/b", &noise(300 * 1024, 6)))
        .unwrap();
    let mut resp_hit = exchange("t", 3, "/c", b"{}");
    resp_hit.response.as_mut().unwrap().body = body(&big);
    let resp_hit = s.insert(&resp_hit).unwrap();
    let mut small = noise(2048, 7);
    small[0] = 0;
    small[1000..1013].copy_from_slice(b"needle-7C1F9E");
    let small_hit = s.insert(&exchange("t", 4, "/d", &small)).unwrap();
    // The needle split by a NUL is not a match.
    s.insert(&exchange("t", 5, "/e", b"\0needle-7c1\0f9e"))
        .unwrap();

    let found = |needle: &str| -> Vec<i64> {
        s.list(&Filter {
            grep: Some(needle.into()),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
    };
    assert_eq!(found("needle-7c1f9e"), vec![small_hit, resp_hit, hit]);
    assert_eq!(found("NEEDLE-7C1F9E"), vec![small_hit, resp_hit, hit]);
    assert_eq!(
        found("needle-7c1_9e"),
        Vec::<i64>::new(),
        "literal, no wildcards"
    );
}

/// A file altered on disk reads as a body not kept, so `--grep` does not find text that was
/// put into it; the untouched file beside it still matches.
#[test]
fn grep_does_not_match_text_put_into_an_altered_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let mut kept = noise(200 * 1024, 3);
    kept[100_000..100_013].copy_from_slice(b"needle-5a2b7d");
    let kept_id = s.insert(&exchange("t", 1, "/kept", &kept)).unwrap();
    let other = noise(200 * 1024, 4);
    s.insert(&exchange("t", 2, "/other", &other)).unwrap();
    let path = file_of(dir.path(), &other);
    let mut altered = std::fs::read(&path).unwrap();
    altered[50_000..50_013].copy_from_slice(b"needle-5a2b7d");
    std::fs::write(&path, &altered).unwrap();
    let found: Vec<i64> = s
        .list(&Filter {
            grep: Some("needle-5a2b7d".into()),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, vec![kept_id]);
}

#[test]
fn a_body_cut_by_the_cap_is_a_file_of_the_kept_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store_with(dir.path(), |o| o.body_cap = 96 * 1024);
    let whole = noise(300 * 1024, 7);
    let id = s.insert(&exchange("t", 1, "/", &whole)).unwrap();
    let b = s.get(id).unwrap().unwrap().exchange.request.body;
    assert_eq!(b.bytes, &whole[..96 * 1024]);
    assert!(b.truncated);
    assert_eq!(
        (b.len, b.sha256.as_str()),
        (whole.len() as u64, sha(&whole).as_str())
    );
    assert_eq!(
        files(dir.path()),
        vec![file_of(dir.path(), &whole[..96 * 1024])]
    );
}

#[test]
fn a_lost_or_altered_file_reads_as_a_body_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let a = noise(70 * 1024, 8);
    let b = noise(70 * 1024, 9);
    let lost = s.insert(&exchange("t", 1, "/", &a)).unwrap();
    let altered = s.insert(&exchange("t", 2, "/", &b)).unwrap();
    std::fs::remove_file(file_of(dir.path(), &a)).unwrap();
    let mut other = b.clone();
    other[100] ^= 1;
    std::fs::write(file_of(dir.path(), &b), &other).unwrap();

    for (id, bytes) in [(lost, &a), (altered, &b)] {
        let body = s.get(id).unwrap().unwrap().exchange.request.body;
        assert!(body.bytes.is_empty(), "wrong bytes were served");
        assert!(body.truncated);
        assert_eq!(
            (body.len, body.sha256.as_str()),
            (bytes.len() as u64, sha(bytes).as_str())
        );
    }
}

#[test]
fn the_writer_sweeps_old_orphans_and_leaves_fresh_or_named_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let kept = noise(90 * 1024, 10);
    let id = s.insert(&exchange("t", 1, "/", &kept)).unwrap();
    let named = file_of(dir.path(), &kept);
    let orphan = file_of(dir.path(), b"never committed");
    let fresh = file_of(dir.path(), b"being committed by another process");
    let tmp = named.with_file_name(".tmp-leftover-1-2");
    for p in [&orphan, &fresh, &tmp] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for p in [&named, &orphan, &tmp] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }

    assert_eq!(s.sweep_body_files().unwrap(), 2);
    assert!(!orphan.exists() && !tmp.exists());
    assert!(fresh.exists(), "a young file may still be committed");
    assert_eq!(
        s.get(id).unwrap().unwrap().exchange.request.body.bytes,
        kept
    );
}

#[test]
fn a_large_body_kept_in_the_database_by_an_older_store_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let id = s.insert(&exchange("t", 1, "/", b"old row")).unwrap();
    drop(s);
    // A row as a v5 store wrote it: the body in the database, no file column set.
    let conn = rusqlite::Connection::open(dir.path().join("twk").join("captures.sqlite3")).unwrap();
    let big = noise(100 * 1024, 11);
    conn.execute(
        "UPDATE payloads SET req_body = ?1, req_body_file = NULL WHERE id = ?2",
        rusqlite::params![big, id],
    )
    .unwrap();
    drop(conn);
    let s = open(dir.path());
    assert_eq!(s.get(id).unwrap().unwrap().exchange.request.body.bytes, big);
}

#[test]
fn a_body_file_that_cannot_be_written_fails_the_write_whole_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    // A file where the bodies directory should be: no body file can be created.
    std::fs::write(bodies_dir(dir.path()), b"in the way").unwrap();
    let big = noise(100 * 1024, 12);
    let err = s.insert(&exchange("t", 1, "/", &big)).unwrap_err();
    let chain = twk_sanitize::error_chain(&err);
    assert!(chain.contains("bodies"), "{chain}");
    assert_eq!(
        s.count(&Filter::default()).unwrap(),
        0,
        "no row without its body"
    );
    // Small bodies are still stored, and large ones again once the way is clear.
    s.insert(&exchange("t", 2, "/", b"small")).unwrap();
    std::fs::remove_file(bodies_dir(dir.path())).unwrap();
    let id = s.insert(&exchange("t", 3, "/", &big)).unwrap();
    assert_eq!(s.get(id).unwrap().unwrap().exchange.request.body.bytes, big);
    assert_eq!(s.count(&Filter::default()).unwrap(), 2);
}

#[test]
fn a_batch_that_does_not_commit_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Room for a few rows, not for a batch that also holds 60 KiB bodies in the database.
    let mut s = store_with(dir.path(), |o| o.max_db_bytes = Some(512 * 1024));
    let kept = noise(100 * 1024, 20);
    let kept_id = s.insert(&exchange("t", 1, "/kept", &kept)).unwrap();
    let mut batch = vec![
        exchange("t", 2, "/big", &noise(200 * 1024, 21)),
        exchange("t", 3, "/again", &kept),
    ];
    batch.extend((0..20).map(|i| exchange("t", 4 + i, "/fill", &noise(60 * 1024, i as u8))));
    let err = s.insert_batch(&batch).unwrap_err();
    assert!(
        twk_sanitize::error_chain(&err).contains("full"),
        "{}",
        twk_sanitize::error_chain(&err)
    );
    assert_eq!(s.count(&Filter::default()).unwrap(), 1);
    assert_eq!(
        files(dir.path()),
        vec![file_of(dir.path(), &kept)],
        "the file the batch wrote is gone; the one it reused stays with its row"
    );
    assert_eq!(
        s.get(kept_id).unwrap().unwrap().exchange.request.body.bytes,
        kept
    );
}

/// The bytes of every body file on disk.
fn bytes_on_disk(dir: &Path) -> u64 {
    files(dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

/// An exchange whose request and response are `len` distinct bytes each.
fn large_exchange(at_ms: i64, len: usize) -> (twk_capture::Exchange, Vec<u8>, Vec<u8>) {
    let mut req = noise(len, (at_ms * 2) as u8);
    let mut resp = noise(len, (at_ms * 2 + 1) as u8);
    // Distinct whatever the seed wraps to: the time is in the bytes.
    req[..8].copy_from_slice(&at_ms.to_be_bytes());
    resp[..8].copy_from_slice(&(-at_ms).to_be_bytes());
    let mut ex = exchange("t", at_ms, "/upload", &req);
    ex.response.as_mut().unwrap().body = body(&resp);
    (ex, req, resp)
}

#[test]
fn a_flood_of_distinct_large_bodies_keeps_the_files_within_their_bound_and_every_row() {
    const KIB: usize = 1024;
    const BOUND: u64 = 550 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let bounded = |o: &mut StoreOptions| o.body_files_max_bytes = BOUND;
    let mut s = store_with(dir.path(), bounded);
    let mut sent = Vec::new();
    let mut at = 0;
    // Singles, then batches of 7 (one batch alone is over the bound), then singles again
    // from a store opened afresh (its running total starts from a count).
    for round in 0..4 {
        if round == 3 {
            drop(s);
            s = store_with(dir.path(), bounded);
        }
        let size = if round % 2 == 1 { 7 } else { 1 };
        for _ in 0..3 {
            let batch: Vec<_> = (0..size)
                .map(|_| {
                    at += 1;
                    large_exchange(at, 100 * KIB)
                })
                .collect();
            let exs: Vec<_> = batch.iter().map(|(ex, _, _)| ex.clone()).collect();
            let ids = s.insert_batch(&exs).unwrap();
            for (row, (_, req, resp)) in ids.iter().zip(batch) {
                sent.push((row.id, req, resp));
            }
            let on_disk = bytes_on_disk(dir.path());
            assert!(on_disk <= BOUND, "{on_disk} bytes of body files after {at}");
        }
    }
    assert_eq!(sent.len(), 48);
    assert_eq!(s.count(&Filter::default()).unwrap(), 48, "every row stays");

    // The newest bodies are whole; the oldest keep their length and hash, not their bytes.
    let (mut whole, mut dropped) = (0, 0);
    for (id, req, resp) in &sent {
        let ex = s.get(*id).unwrap().unwrap().exchange;
        let got_resp = ex.response.unwrap().body;
        for (got, want) in [(ex.request.body, req), (got_resp, resp)] {
            assert_eq!(got.len, want.len() as u64);
            assert_eq!(got.sha256, sha(want));
            if got.truncated {
                assert!(got.bytes.is_empty());
                dropped += 1;
            } else {
                assert!(&got.bytes == want, "a kept body reads back whole");
                whole += 1;
            }
        }
    }
    // An exchange gives up both its bodies at once: 550 KiB hold the newest two exchanges'
    // four 100 KiB bodies (a third exchange would take them to 600).
    assert_eq!(whole, 4);
    assert_eq!(dropped, 48 * 2 - 4);
    let (last_id, last_req, _) = sent.last().unwrap();
    let last = s.get(*last_id).unwrap().unwrap().exchange;
    assert!(&last.request.body.bytes == last_req, "the newest are kept");
    assert_eq!(files(dir.path()).len(), 4, "files no row names are gone");
}

#[test]
fn a_file_several_rows_name_goes_only_when_the_last_of_them_lets_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store_with(dir.path(), |o| o.body_files_max_bytes = 150 * 1024);
    let a = noise(100 * 1024, 7);
    let mut echo = exchange("t", 1, "/", &a);
    echo.response.as_mut().unwrap().body = body(&a);
    let first = s.insert(&echo).unwrap();
    let second = s.insert(&exchange("t", 2, "/", &a)).unwrap();
    assert_eq!(files(dir.path()), vec![file_of(dir.path(), &a)]);

    // B takes the files to 200 KiB: A goes, though three bodies named it.
    let b = noise(100 * 1024, 8);
    let third = s.insert(&exchange("t", 3, "/", &b)).unwrap();
    assert_eq!(files(dir.path()), vec![file_of(dir.path(), &b)]);
    for id in [first, second] {
        let ex = s.get(id).unwrap().unwrap().exchange;
        assert!(ex.request.body.truncated && ex.request.body.bytes.is_empty());
        assert_eq!(ex.request.body.sha256, sha(&a));
    }
    let echoed = s.get(first).unwrap().unwrap().exchange.response.unwrap();
    assert!(echoed.body.truncated && echoed.body.bytes.is_empty());
    let kept = s.get(third).unwrap().unwrap().exchange;
    assert!(
        kept.request.body.bytes == b,
        "the newest body is kept whole"
    );

    // A again is written afresh; one file fits, so B, now the oldest, goes.
    let fourth = s.insert(&exchange("t", 4, "/", &a)).unwrap();
    let again = s.get(fourth).unwrap().unwrap().exchange.request.body;
    assert!(again.bytes == a && !again.truncated);
    assert!(
        s.get(third)
            .unwrap()
            .unwrap()
            .exchange
            .request
            .body
            .truncated
    );
    assert_eq!(files(dir.path()), vec![file_of(dir.path(), &a)]);
}

#[test]
fn with_no_bound_every_file_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store_with(dir.path(), |o| o.body_files_max_bytes = 0);
    for at in 1..=6 {
        s.insert(&large_exchange(at, 100 * 1024).0).unwrap();
    }
    assert_eq!(files(dir.path()).len(), 12);
}
