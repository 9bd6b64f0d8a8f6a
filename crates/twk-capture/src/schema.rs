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
