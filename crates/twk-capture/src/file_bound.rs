//! The bound on the bytes of body files: past it, the oldest exchanges lose their large
//! bodies (their rows stay).
//!
//! Retention bounds rows, not bytes: 10,000 exchanges per tunnel with a 1 MiB request and a
//! 1 MiB response each would be 20 GiB of body files, and the public URL lets a stranger
//! send them (100 requests a second get past the relay's per-tunnel limit). So the files
//! rows name are bounded in bytes too ([`crate::StoreOptions::body_files_max_bytes`]). When a
//! batch takes them over, the oldest payloads that name a file forget it, oldest first,
//! until enough files are named by no row; those are unlinked like the files retention
//! releases. What such an exchange keeps is what a shed body keeps: head, length and
//! SHA-256, its body marked as not kept (`truncated`, no bytes), so it can still be listed,
//! grouped, exported and compared, not replayed.
//!
//! It is not the bound of the database itself (bodies under 64 KiB stay in it, bounded by
//! retention and `max_db_bytes`), nor of the recorder's queue in memory.

use crate::body_files::BodyFiles;
use crate::error::Result;
use crate::retention::Running;
use rusqlite::{Connection, OptionalExtension, params};

/// Payloads taken per walk step: the loop stops within one step of having freed enough.
const STEP: i64 = 32;
/// The oldest payloads that name a body file: a walk of the partial index
/// `payloads_with_file`.
pub(crate) const OLDEST_WITH_FILES: &str = "SELECT id, req_body_file, resp_body_file FROM payloads \
     WHERE req_body_file IS NOT NULL OR resp_body_file IS NOT NULL ORDER BY id LIMIT ?1";
/// The writer's running total of the bytes of body files rows name.
#[derive(Debug, Default)]
pub(crate) struct FileTally {
    bytes: Running,
}

impl FileTally {
    /// Counts afresh at the next batch (a batch failed: the total may be off).
    pub(crate) fn forget(&mut self) {
        self.bytes.forget();
    }

    /// The batch's transaction has committed with `total` named.
    pub(crate) fn committed(&mut self, total: Option<u64>) {
        self.bytes.committed(total);
    }

    /// Holds the files rows name to `max` bytes (`0`: no bound) within transaction `tx`,
    /// given the bytes its batch `named` anew and those retention `freed`; the files it
    /// releases are added to `released`. Returns the bytes still named, for
    /// [`FileTally::committed`].
    pub(crate) fn bound(
        &mut self,
        tx: &Connection,
        max: u64,
        named: u64,
        freed: u64,
        released: &mut Vec<String>,
    ) -> Result<Option<u64>> {
        if max == 0 {
            return Ok(None);
        }
        let total = self.bytes.current(named, freed, || named_bytes(tx))?;
        if total <= max {
            return Ok(Some(total));
        }
        shed_oldest(tx, total - max)?;
        let (names, bytes) = BodyFiles::release_unused(tx)?;
        tracing::debug!(
            files = names.len(),
            bytes,
            "body files over their bound: the oldest large bodies are dropped"
        );
        released.extend(names);
        Ok(Some(total.saturating_sub(bytes)))
    }
}

/// The bytes of the body files some row names, counted afresh.
pub(crate) fn named_bytes(conn: &Connection) -> Result<u64> {
    let total: f64 = conn
        .prepare_cached("SELECT total(bytes) FROM body_files WHERE refs > 0")?
        .query_row([], |r| r.get(0))?;
    Ok(total.max(0.0) as u64)
}

/// Makes the oldest payloads that name a body file forget it until files of at least
/// `need` bytes are named by no row (or no payload names a file). Returns those bytes; the
/// files themselves go with [`crate::body_files::BodyFiles::release_unused`].
pub(crate) fn shed_oldest(conn: &Connection, need: u64) -> Result<u64> {
    let mut oldest = conn.prepare_cached(OLDEST_WITH_FILES)?;
    let mut freed = 0u64;
    while freed < need {
        let rows = oldest
            .query_map([STEP], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<(i64, Option<String>, Option<String>)>>>()?;
        if rows.is_empty() {
            break;
        }
        for (id, req, resp) in rows {
            freed = freed.saturating_add(forget(conn, id, req, resp)?);
            if freed >= need {
                break;
            }
        }
    }
    Ok(freed)
}

/// Makes payload `id` forget its files `req` and `resp`, marks those bodies of its exchange
/// as not kept, and returns the bytes of the files no row names any more.
fn forget(conn: &Connection, id: i64, req: Option<String>, resp: Option<String>) -> Result<u64> {
    conn.prepare_cached(
        "UPDATE payloads SET req_body_file = NULL, resp_body_file = NULL WHERE id = ?1",
    )?
    .execute([id])?;
    conn.prepare_cached(
        "UPDATE exchanges SET \
         req_body_truncated = CASE WHEN ?2 THEN 1 ELSE req_body_truncated END, \
         resp_body_truncated = CASE WHEN ?3 THEN 1 ELSE resp_body_truncated END \
         WHERE id = ?1",
    )?
    .execute(params![id, req.is_some(), resp.is_some()])?;
    let mut unref = conn.prepare_cached(
        "UPDATE body_files SET refs = refs - 1 WHERE name = ?1 RETURNING refs, bytes",
    )?;
    let mut freed = 0u64;
    // An echoed body names one file twice: it is freed at the second count down.
    for name in [req, resp].into_iter().flatten() {
        let left: Option<(i64, i64)> = unref
            .query_row([&name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((_, bytes)) = left.filter(|(refs, _)| *refs <= 0) {
            freed = freed.saturating_add(bytes.max(0) as u64);
        }
    }
    Ok(freed)
}
