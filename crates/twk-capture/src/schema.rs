//! Versioned schema migrations (`PRAGMA user_version`).
//!
//! Each entry of [`MIGRATIONS`] moves the schema from version `i` to `i + 1`. Never edit a
//! released migration: append a new one.

use crate::error::{CaptureError, Result};
use rusqlite::Connection;

/// Migration scripts, in order. `MIGRATIONS[0]` creates schema version 1.
const MIGRATIONS: &[&str] = &[
    // v1
    r#"
CREATE TABLE exchanges (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    tunnel               TEXT    NOT NULL,
    request_id           TEXT    NOT NULL,
    received_ms          INTEGER NOT NULL,
    forwarded_ms         INTEGER,
    first_byte_ms        INTEGER,
    done_ms              INTEGER,
    duration_ms          INTEGER,
    method               TEXT    NOT NULL,
    public_url           TEXT    NOT NULL,
    path                 TEXT    NOT NULL,
    target               TEXT    NOT NULL,
    remote_addr          TEXT,
    status               INTEGER,
    failure_side         TEXT,
    failure_message      TEXT,
    provider             TEXT,
    event                TEXT,
    summary              TEXT,
    verdict              TEXT,
    analysis             TEXT,
    replay_of            INTEGER,
    attempt              INTEGER,
    group_key            TEXT,
    req_body_len         INTEGER NOT NULL,
    req_body_sha256      TEXT    NOT NULL,
    req_body_truncated   INTEGER NOT NULL,
    has_response         INTEGER NOT NULL,
    resp_body_len        INTEGER,
    resp_body_sha256     TEXT,
    resp_body_truncated  INTEGER,
    -- Reserved for the Basic-auth handshake pairing and lints (issue 6): JSON, NULL until then.
    handshake            TEXT,
    lints                TEXT,
    -- 4 for 4xx…, so `--status 5xx` is an indexed equality (ordered by id) instead of a sort.
    status_class         INTEGER GENERATED ALWAYS AS (status / 100) VIRTUAL
);
-- Heads and bodies live apart so that list/count/filter scans touch only small rows.
CREATE TABLE payloads (
    id            INTEGER PRIMARY KEY,
    req_headers   TEXT NOT NULL,
    req_body      BLOB NOT NULL,
    resp_headers  TEXT,
    resp_body     BLOB
);
CREATE TRIGGER exchanges_delete_payload AFTER DELETE ON exchanges
BEGIN
    DELETE FROM payloads WHERE id = old.id;
END;
CREATE INDEX exchanges_tunnel   ON exchanges (tunnel, id);
CREATE INDEX exchanges_event    ON exchanges (event, id);
CREATE INDEX exchanges_provider ON exchanges (provider, id);
CREATE INDEX exchanges_verdict  ON exchanges (verdict, id);
CREATE INDEX exchanges_status   ON exchanges (status, id);
CREATE INDEX exchanges_class    ON exchanges (status_class, id);
CREATE INDEX exchanges_received ON exchanges (received_ms);
CREATE INDEX exchanges_group    ON exchanges (group_key, id) WHERE group_key IS NOT NULL;
CREATE INDEX exchanges_replay   ON exchanges (replay_of) WHERE replay_of IS NOT NULL;
"#,
    // v2: the Basic-auth handshake and lints (issue 6). See `crate::handshake`.
    // The v1 `handshake` column stays unused (typed `hs_leg`/`hs_with` replace it); `lints`
    // holds the stored lints as JSON. Rows captured before v2 are neither paired nor linted.
    r#"
ALTER TABLE exchanges ADD COLUMN auth           TEXT;    -- JSON AuthInfo (twk's own check)
ALTER TABLE exchanges ADD COLUMN hs_leg         INTEGER; -- 1 | 2 | NULL
ALTER TABLE exchanges ADD COLUMN hs_with        INTEGER; -- the other leg's id
-- Set while the row may still pair: role tag + hash of (tunnel, method, path, body hash, IP).
ALTER TABLE exchanges ADD COLUMN hs_key         TEXT;
-- An unpaired leg 1 with a Basic challenge: `retry-never-came` applies after this instant.
ALTER TABLE exchanges ADD COLUMN hs_deadline_ms INTEGER;
-- ",code,code," of the stored lints, for `--lint` (NULL when none).
ALTER TABLE exchanges ADD COLUMN lint_codes     TEXT;
CREATE INDEX exchanges_hs_open  ON exchanges (hs_key, received_ms) WHERE hs_key IS NOT NULL;
CREATE INDEX exchanges_hs_wait  ON exchanges (hs_deadline_ms) WHERE hs_deadline_ms IS NOT NULL;
CREATE INDEX exchanges_linted   ON exchanges (id) WHERE lint_codes IS NOT NULL;
"#,
    // v3: leg-1 rows folded into their retry, so counting a collapsed list is
    // "all rows minus folded rows" from two index counts instead of a table scan.
    r#"
CREATE INDEX exchanges_hs_folded ON exchanges (id) WHERE hs_leg = 1 AND hs_with IS NOT NULL;
"#,
    // v4: requests kept by the relay while the client was offline (issue 16), recorded on
    // reconnect; `request_id` de-duplicates a hand-off repeated after a crash.
    r#"
ALTER TABLE exchanges ADD COLUMN missed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX exchanges_missed ON exchanges (id) WHERE missed = 1;
CREATE INDEX exchanges_missed_req ON exchanges (request_id) WHERE missed = 1;
"#,
    // v5: no indexes on provider, verdict, status and status class (issue 14). Each
    // cost every insert a B-tree update (and dirtied a page per commit) for filters that
    // scan newest-first and stop at the page's 50 rows anyway; the writer stores ~10 % more
    // exchanges per second without them, and the store benchmark's filters by them take
    // the same time (0.2–0.4 ms on 50,000 rows).
    r#"
DROP INDEX exchanges_provider;
DROP INDEX exchanges_verdict;
DROP INDEX exchanges_status;
DROP INDEX exchanges_class;
"#,
    // v6: bodies of 64 KiB and more are files beside the database, named by their SHA-256
    // (see `crate::body_files`); the payload's BLOB is then empty. `body_files` counts the
    // payload columns naming each file, so retention knows when a file may go.
    r#"
ALTER TABLE payloads ADD COLUMN req_body_file  TEXT;
ALTER TABLE payloads ADD COLUMN resp_body_file TEXT;
CREATE TABLE body_files (
    name  TEXT PRIMARY KEY,
    refs  INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX body_files_unused ON body_files (name) WHERE refs <= 0;
-- Two statements, not `name IN (…)`: an echoed body names the same file twice.
CREATE TRIGGER payloads_release_body_files AFTER DELETE ON payloads
WHEN old.req_body_file IS NOT NULL OR old.resp_body_file IS NOT NULL
BEGIN
    UPDATE body_files SET refs = refs - 1 WHERE name = old.req_body_file;
    UPDATE body_files SET refs = refs - 1 WHERE name = old.resp_body_file;
END;
"#,
    // v7: the payloads that name a body file, oldest first, for the bound on the bytes of
    // body files (see `crate::file_bound`): its walk starts at the oldest such payload
    // without scanning the rest.
    r#"
CREATE INDEX payloads_with_file ON payloads (id)
    WHERE req_body_file IS NOT NULL OR resp_body_file IS NOT NULL;
"#,
    // v8: the bytes of heads and bodies each exchange keeps in the database, so the bound on
    // them (see `crate::retention`) knows what deleting a row frees (`RETURNING`) without
    // reading its payload.
    r#"
ALTER TABLE exchanges ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE exchanges SET stored_bytes = coalesce((SELECT octet_length(p.req_headers)
    + length(p.req_body) + coalesce(octet_length(p.resp_headers), 0)
    + coalesce(length(p.resp_body), 0) FROM payloads p WHERE p.id = exchanges.id), 0);
"#,
    // v9: which secret a valid or stale signature held with (`configured`, `twk-test`:
    // twk's test secret, for a provider with none configured), for the list and `log`.
    // NULL for every other verdict and for rows stored before.
    r#"
ALTER TABLE exchanges ADD COLUMN matched_secret TEXT;
"#,
    // v10: requests the relay refused itself (over the tunnel's rate, a body declared over
    // its cap), recorded from its notices: head only, never forwarded to the app.
    r#"
ALTER TABLE exchanges ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
CREATE INDEX exchanges_refused ON exchanges (id) WHERE refused = 1;
"#,
    // v11: rows are deleted set by set (`crate::retention::Deletion`): their body files
    // released, their payloads deleted, then the rows, a statement each for all of a
    // batch's rows. The triggers ran a program of their own for each row deleted, which
    // cost the writer more than deleting the row itself.
    r#"
DROP TRIGGER exchanges_delete_payload;
DROP TRIGGER payloads_release_body_files;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(CaptureError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Re-read inside the write lock: another process may have migrated meanwhile.
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, script) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tracing::info!(version = i + 1, "migrating capture database");
        tx.execute_batch(script)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Removes the planner's statistics (`sqlite_stat1`, `sqlite_stat4`), which earlier versions
/// gathered with `PRAGMA optimize` at every open, and gathers none.
///
/// Statistics describe the table as it was when they were taken, and this store's tables
/// swing between empty and their retention bound within one run. Taken on a store of one
/// row (the second run of a new tunnel), they told the planner for the rest of that run that
/// scanning `exchanges` cost one row. So the retention DELETE scanned the whole table
/// (10,000 rows) in every batch at the cap, and the capture writer spent 2-3 times its CPU
/// per exchange (docs/performance.md, thirtieth round). Without statistics SQLite assumes
/// large tables, which is what this store's statements are written and indexed for, and
/// every plan is the same at any size. True when it dropped some.
///
/// Dropping takes the write lock: a reader (`twk log`) that cannot have it in time opens
/// the store with them, and a later open drops them.
pub(crate) fn drop_statistics(conn: &Connection) -> Result<bool> {
    let found: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema \
         WHERE name IN ('sqlite_stat1', 'sqlite_stat4'))",
        [],
        |r| r.get(0),
    )?;
    if !found {
        return Ok(false);
    }
    match conn
        .execute_batch("DROP TABLE IF EXISTS sqlite_stat1; DROP TABLE IF EXISTS sqlite_stat4;")
    {
        Ok(()) => {
            tracing::info!("dropped the capture database's planner statistics");
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(error = %twk_sanitize::error_chain(&e), "cannot drop the capture database's planner statistics yet");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_database_is_migrated_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO exchanges (tunnel, request_id, received_ms, method, public_url, path, \
             target, req_body_len, req_body_sha256, req_body_truncated, has_response) \
             VALUES ('t', 'r', 1, 'POST', 'https://x/', '/', 'http://l', 0, '', 0, 0)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        const { assert!(SCHEMA_VERSION >= 2) };
        let (leg, key, codes): (Option<i64>, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT hs_leg, hs_key, lint_codes FROM exchanges",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((leg, key, codes), (None, None, None));
        // Idempotent.
        migrate(&mut conn).unwrap();
    }

    /// A v5 store (every body in the database) opened by this build: its rows read as they
    /// were, new large bodies go to files, and retention deletes across the two kinds.
    #[test]
    fn a_v5_database_keeps_its_bodies_and_retention_works_across_the_change() {
        use crate::exchange::{CapturedBody, Exchange, Message};
        use crate::{Filter, Store, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let body = |seed: u8| -> Vec<u8> {
            (0..100 * 1024)
                .map(|i: usize| (i as u8).wrapping_mul(7) ^ seed)
                .collect()
        };
        let old = body(1);
        {
            std::fs::create_dir_all(dir.path()).unwrap();
            let conn = Connection::open(dir.path().join("captures.sqlite3")).unwrap();
            for script in &MIGRATIONS[..5] {
                conn.execute_batch(script).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            conn.execute(
                "INSERT INTO exchanges (tunnel, request_id, received_ms, method, public_url, \
                 path, target, req_body_len, req_body_sha256, req_body_truncated, \
                 has_response) VALUES ('t', 'r0', 1, 'POST', 'https://x/old', '/old', \
                 'http://l', ?1, ?2, 0, 0)",
                rusqlite::params![old.len() as i64, CapturedBody::from_bytes(&old).sha256],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO payloads (id, req_headers, req_body) VALUES (1, '[]', ?1)",
                [&old],
            )
            .unwrap();
        }
        let mut opts = StoreOptions::new(dir.path());
        opts.retention_per_tunnel = 2;
        let mut store = Store::open(&opts).unwrap();
        let stored: i64 = Connection::open(dir.path().join("captures.sqlite3"))
            .unwrap()
            .query_row("SELECT stored_bytes FROM exchanges WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, 2 + old.len() as i64, "v8 counts what the row keeps");
        let got = store.get(1).unwrap().unwrap().exchange;
        assert_eq!(
            (got.request.body.bytes, got.request.body.truncated),
            (old, false)
        );

        let new = |i: i64, bytes: &[u8]| Exchange {
            tunnel: "t".into(),
            request_id: format!("r{i}"),
            public_url: format!("https://x/{i}"),
            method: "POST".into(),
            path: format!("/{i}"),
            target: "http://l".into(),
            request: Message {
                headers: Vec::new(),
                body: CapturedBody::from_bytes(bytes),
            },
            timings: crate::exchange::Timings {
                received_ms: i,
                ..Default::default()
            },
            ..Default::default()
        };
        let (a, b, c) = (body(2), body(3), body(4));
        store.insert(&new(2, &a)).unwrap();
        store.insert(&new(3, &b)).unwrap();
        let files = || -> usize { walk(&dir.path().join(crate::body_files::DIR_NAME)) };
        assert_eq!(files(), 2, "the v5 row went, with no file to release");
        let last = store.insert(&new(4, &c)).unwrap();
        assert_eq!(files(), 2, "the first new row went with its file");
        assert_eq!(store.count(&Filter::default()).unwrap(), 2);
        let conn = Connection::open(dir.path().join("captures.sqlite3")).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        let triggers = count("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'");
        assert_eq!(triggers, 0, "v11 deletes without triggers");
        assert_eq!(
            count("SELECT count(*) FROM payloads"),
            2,
            "payloads went with rows"
        );
        let got = store
            .get(last)
            .unwrap()
            .unwrap()
            .exchange
            .request
            .body
            .bytes;
        assert_eq!(got, c);
    }

    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|fans| {
                fans.flatten()
                    .map(|f| std::fs::read_dir(f.path()).map_or(0, |d| d.count()))
                    .sum()
            })
            .unwrap_or(0)
    }
}
