//! What the store keeps of its rows: at most `retention_per_tunnel` exchanges per tunnel
//! name, `retention_total` in all, and `payloads_max_bytes` of heads and bodies in the
//! database, the oldest going first.
//!
//! The bound per tunnel keeps a flood at one tunnel from erasing another's history. The
//! total is what holds the store on disk: without `--name`, every run of the tunnel gets a
//! new random name, so bounds per name alone let the runs add up for ever. The bytes bound
//! holds what a stranger can make each row weigh (heads up to 64 KiB, bodies kept in the
//! database up to 64 KiB each way): each row records its bytes (`stored_bytes`), so
//! deleting it says what it freed.
//!
//! All are kept by counts cached between batches (a `count(*)` is a walk of every row),
//! counted afresh on first use, after a failed batch and every [`RECOUNT_EVERY`] batches, so
//! rows another process wrote (a replay) are not left out for long. A store far over the
//! total or bytes bound comes down [`CATCH_UP`] rows a batch. Body files are bounded apart,
//! in `crate::file_bound`.

use crate::error::Result;
use crate::store::clamp_i64;
use rusqlite::{Connection, ToSql};
use std::collections::HashMap;

/// The statements that delete the rows a selection over `exchanges` gives, in the batch's
/// transaction ([`Retention::delete`]): what the rows kept is read; the body files their
/// payloads name are released, only when a payload as old as the newest of them names one
/// (few do); then the payloads and the rows go. When the rows are the oldest of all, as
/// they are with one tunnel, those two are ranges of ids; otherwise the selection is run
/// again for each. The store has no delete triggers (schema v11): a trigger ran a program
/// of its own for each row, which cost the writer more than the row itself
/// (docs/performance.md, thirty-first round).
pub(crate) struct Deletion {
    /// What each row kept: `(id, tunnel, stored_bytes)`.
    kept: &'static str,
    /// The body files the payloads name (a name twice when a payload names it twice).
    files: &'static str,
    /// The payloads.
    payloads: &'static str,
    /// The rows.
    rows: &'static str,
}

impl Deletion {
    /// The statements it may run.
    #[cfg(test)]
    pub(crate) fn statements(&self) -> [&'static str; 8] {
        [
            self.kept,
            OLDEST_FILE,
            self.files,
            COUNT_THROUGH,
            PAYLOADS_THROUGH,
            ROWS_THROUGH,
            self.payloads,
            self.rows,
        ]
    }
}

/// The oldest payload that names a body file: one step into its partial index.
const OLDEST_FILE: &str = "SELECT min(id) FROM payloads \
     WHERE req_body_file IS NOT NULL OR resp_body_file IS NOT NULL";

/// A [`Deletion`] of the rows of `exchanges` that the literal `WHERE … ORDER BY … LIMIT …`
/// selects.
macro_rules! deletion {
    ($rows:literal) => {
        Deletion {
            kept: concat!("SELECT id, tunnel, stored_bytes FROM exchanges ", $rows),
            files: concat!(
                "SELECT req_body_file, resp_body_file FROM payloads WHERE id IN (SELECT id \
                 FROM exchanges ",
                $rows,
                ") AND (req_body_file IS NOT NULL OR resp_body_file IS NOT NULL)"
            ),
            payloads: concat!(
                "DELETE FROM payloads WHERE id IN (SELECT id FROM exchanges ",
                $rows,
                ")"
            ),
            rows: concat!(
                "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges ",
                $rows,
                ")"
            ),
        }
    };
}

/// The oldest `?2` rows of tunnel `?1`: one index walk of that length.
pub(crate) const PER_TUNNEL: Deletion = deletion!("WHERE tunnel = ?1 ORDER BY id ASC LIMIT ?2");
/// The oldest `?1` rows of all.
const OLDEST: Deletion = deletion!("ORDER BY id ASC LIMIT ?1");
/// The oldest rows after `?1`, with the bytes each keeps: the bytes bound walks them to
/// find how many to delete.
const OLDEST_SIZES: &str =
    "SELECT id, stored_bytes FROM exchanges WHERE id > ?1 ORDER BY id ASC LIMIT 64";
/// Every row up to id `?1`.
const THROUGH: Deletion = deletion!("WHERE id <= ?1");
/// Rows of requests the relay refused itself (`refused`), at most, in all: past it the
/// oldest of them go first. A stranger's flood of refusals then erases at most this many
/// rows of history (a tenth of `retention_total` or of `retention_per_tunnel` when that is
/// smaller, 10 at least).
pub(crate) const REFUSED_KEPT: u64 = 1000;
/// The refused rows: a walk of their partial index.
const REFUSED_COUNT: &str = "SELECT count(*) FROM exchanges WHERE refused = 1";
/// The oldest `?1` refused rows.
const REFUSED: Deletion = deletion!("WHERE refused = 1 ORDER BY id ASC LIMIT ?1");
/// Rows up to id `?1`, counted up to `?2`.
pub(crate) const COUNT_THROUGH: &str =
    "SELECT count(*) FROM (SELECT 1 FROM exchanges WHERE id <= ?1 LIMIT ?2)";
/// Payloads up to id `?1`.
const PAYLOADS_THROUGH: &str = "DELETE FROM payloads WHERE id <= ?1";
/// Rows up to id `?1`.
const ROWS_THROUGH: &str = "DELETE FROM exchanges WHERE id <= ?1";
/// A body file a deleted payload named is named once less (`crate::body_files`).
const RELEASE_FILE: &str = "UPDATE body_files SET refs = refs - 1 WHERE name = ?1";
/// Rows the total and bytes bounds delete per batch beyond what the batch added. A store
/// far over them (the first batch after an upgrade, or after a bound was lowered) comes
/// down over the next batches instead of in one transaction that would hold the writer for
/// seconds (200,000 rows took 1.8 s) while the recorder's queue fills.
pub(crate) const CATCH_UP: u64 = 4096;
/// Batches after which a running count is counted afresh.
pub(crate) const RECOUNT_EVERY: u32 = 1024;

/// A count kept across batches, counted afresh now and then.
#[derive(Debug, Default)]
pub(crate) struct Running {
    /// As of the last committed batch; `None`: to count afresh.
    value: Option<u64>,
    /// Batches since it was last counted afresh.
    since_recount: u32,
}

impl Running {
    /// Counts afresh at the next batch (a batch failed: the value may be off).
    pub(crate) fn forget(&mut self) {
        self.value = None;
    }

    /// The batch's transaction has committed with `value`.
    pub(crate) fn committed(&mut self, value: Option<u64>) {
        self.value = value;
    }

    /// The value after this batch: the last one moved by `add` and `sub`, or `count`, which
    /// counts it afresh within the batch's transaction.
    pub(crate) fn current(
        &mut self,
        add: u64,
        sub: u64,
        count: impl FnOnce() -> Result<u64>,
    ) -> Result<u64> {
        self.since_recount += 1;
        match self.value {
            Some(v) if self.since_recount < RECOUNT_EVERY => {
                Ok(v.saturating_add(add).saturating_sub(sub))
            }
            _ => {
                self.since_recount = 0;
                count()
            }
        }
    }
}

/// The store's bounds on rows (`0`: no bound).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Rows per tunnel name.
    pub(crate) per_tunnel: u64,
    /// Rows in all.
    pub(crate) total: u64,
    /// Bytes of heads and bodies in the database, in all.
    pub(crate) bytes: u64,
}

/// What a batch added: rows per tunnel, the bytes their payloads keep, and how many of
/// them are refused rows.
pub(crate) struct Added<'a> {
    pub(crate) rows: HashMap<&'a str, u64>,
    pub(crate) bytes: u64,
    pub(crate) refused: u64,
}

/// The counts a batch leaves, for [`Retention::committed`]; `None` where there is no bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Left {
    rows: Option<u64>,
    bytes: Option<u64>,
}

/// What the oldest rows a statement deleted freed.
#[derive(Debug, Default)]
struct Freed {
    rows: u64,
    bytes: u64,
}

/// The store's row bounds and what it knows of its counts.
#[derive(Debug, Default)]
pub(crate) struct Retention {
    /// Rows per tunnel name, cached by name. Cleared on any write error.
    per_tunnel: HashMap<String, u64>,
    /// Rows in all.
    total: Running,
    /// Bytes of heads and bodies in the database.
    bytes: Running,
}

impl Retention {
    /// Counts afresh at the next batch.
    pub(crate) fn forget(&mut self) {
        self.per_tunnel.clear();
        self.total.forget();
        self.bytes.forget();
    }

    /// The batch's transaction has committed, leaving `left`.
    pub(crate) fn committed(&mut self, left: Left) {
        self.total.committed(left.rows);
        self.bytes.committed(left.bytes);
    }

    /// Deletes the oldest rows over the bound per tunnel for each tunnel the batch `added`
    /// rows to, then the oldest over the total, then the oldest over the bytes bound.
    pub(crate) fn apply(&mut self, conn: &Connection, b: Bounds, added: Added<'_>) -> Result<Left> {
        let inserted = added.rows.values().sum();
        let mut freed = Freed::default();
        if added.refused > 0 {
            freed = self.refused_bound(conn, b)?;
        }
        if b.per_tunnel > 0 {
            let f = self.per_tunnel_bound(conn, b.per_tunnel, added.rows)?;
            freed.rows += f.rows;
            freed.bytes += f.bytes;
        }
        let mut left = Left {
            rows: None,
            bytes: None,
        };
        if b.total > 0 {
            let rows = self
                .total
                .current(inserted, freed.rows, || sum(conn, "count(*)"))?;
            let excess = rows.saturating_sub(b.total);
            let over = self.delete_oldest(conn, excess.min(inserted + CATCH_UP))?;
            left.rows = Some(rows.saturating_sub(over.rows));
            freed.rows += over.rows;
            freed.bytes += over.bytes;
        }
        if b.bytes > 0 {
            let bytes = self.bytes.current(added.bytes, freed.bytes, || {
                sum(conn, "total(stored_bytes)")
            })?;
            let over = self.bytes_bound(conn, bytes, b.bytes, inserted + CATCH_UP)?;
            left.bytes = Some(bytes.saturating_sub(over.bytes));
            left.rows = left.rows.map(|r| r.saturating_sub(over.rows));
        }
        Ok(left)
    }

    /// Keeps at most [`REFUSED_KEPT`] refused rows (fewer when a row bound is small).
    fn refused_bound(&mut self, conn: &Connection, b: Bounds) -> Result<Freed> {
        let most = [b.total, b.per_tunnel]
            .into_iter()
            .filter(|n| *n > 0)
            .map(|n| (n / 10).max(10))
            .fold(REFUSED_KEPT, u64::min);
        let count = conn
            .prepare_cached(REFUSED_COUNT)?
            .query_row([], |r| r.get::<_, i64>(0))?
            .max(0) as u64;
        if count <= most {
            return Ok(Freed::default());
        }
        let freed = self.delete(conn, &REFUSED, &[&clamp_i64(count - most)])?;
        tracing::debug!(deleted = freed.rows, "refused rows bounded");
        Ok(freed)
    }

    /// Keeps at most `retention` rows per tunnel that `added` rows went to.
    fn per_tunnel_bound(
        &mut self,
        conn: &Connection,
        retention: u64,
        added: HashMap<&str, u64>,
    ) -> Result<Freed> {
        let mut freed = Freed::default();
        for (tunnel, n) in added {
            let count = match self.per_tunnel.get(tunnel) {
                Some(c) => c.saturating_add(n),
                None => conn
                    .prepare_cached("SELECT count(*) FROM exchanges WHERE tunnel = ?1")?
                    .query_row([tunnel], |r| r.get::<_, i64>(0))?
                    .max(0) as u64,
            };
            let count = if count > retention {
                // The excess is the oldest `count - retention` rows (usually this batch's
                // size): one index walk of that length, not a scan past every row kept.
                // Prepared once: parsing it on every batch showed in the writer's profile.
                let excess = clamp_i64(count - retention);
                let f = self.delete(conn, &PER_TUNNEL, &[&tunnel, &excess])?;
                tracing::debug!(tunnel, deleted = f.rows, "retention cap applied");
                freed.rows += f.rows;
                freed.bytes += f.bytes;
                count.saturating_sub(f.rows)
            } else {
                count
            };
            self.per_tunnel.insert(tunnel.to_owned(), count);
        }
        Ok(freed)
    }

    /// Deletes the fewest oldest rows that bring the payloads' `bytes` to `max` or under,
    /// at most `most` of them.
    fn bytes_bound(&mut self, conn: &Connection, bytes: u64, max: u64, most: u64) -> Result<Freed> {
        let need = bytes.saturating_sub(max);
        if need == 0 {
            return Ok(Freed::default());
        }
        let mut oldest = conn.prepare_cached(OLDEST_SIZES)?;
        let (mut sum, mut through, mut taken) = (0u64, None, 0u64);
        'walk: while taken < most {
            let after = through.unwrap_or(i64::MIN);
            let rows = oldest
                .query_map([after], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if rows.is_empty() {
                break;
            }
            for (id, size) in rows {
                sum = sum.saturating_add(size.max(0) as u64);
                through = Some(id);
                taken += 1;
                if sum >= need || taken >= most {
                    break 'walk;
                }
            }
        }
        let Some(through) = through else {
            return Ok(Freed::default());
        };
        let freed = self.delete(conn, &THROUGH, &[&through])?;
        tracing::debug!(deleted = freed.rows, "bytes retention applied");
        Ok(freed)
    }

    /// Deletes the `n` oldest rows of all.
    fn delete_oldest(&mut self, conn: &Connection, n: u64) -> Result<Freed> {
        if n == 0 {
            return Ok(Freed::default());
        }
        self.delete(conn, &OLDEST, &[&clamp_i64(n)])
    }

    /// Runs `deletion` with `params`. The tunnels' cached counts go down by the rows it
    /// deleted of each.
    fn delete(
        &mut self,
        conn: &Connection,
        deletion: &Deletion,
        params: &[&dyn ToSql],
    ) -> Result<Freed> {
        let (freed, newest) = self.read_kept(conn, deletion, params)?;
        if freed.rows == 0 {
            return Ok(freed);
        }
        let oldest_file: Option<i64> = conn
            .prepare_cached(OLDEST_FILE)?
            .query_row([], |r| r.get(0))?;
        if oldest_file.is_some_and(|id| id <= newest) {
            release_files(conn, deletion, params)?;
        }
        // Counted no further than one row past them: with another tunnel's older rows kept,
        // a count of every row up to the newest would walk all of those in every batch.
        let through: i64 = conn
            .prepare_cached(COUNT_THROUGH)?
            .query_row([newest, clamp_i64(freed.rows + 1)], |r| r.get(0))?;
        if through as u64 == freed.rows {
            // The oldest rows of all, as usual with one tunnel: ranges of the two tables.
            conn.prepare_cached(PAYLOADS_THROUGH)?.execute([newest])?;
            conn.prepare_cached(ROWS_THROUGH)?.execute([newest])?;
        } else {
            conn.prepare_cached(deletion.payloads)?.execute(params)?;
            conn.prepare_cached(deletion.rows)?.execute(params)?;
        }
        Ok(freed)
    }

    /// What the rows `deletion` selects kept, and the newest of their ids; the tunnels'
    /// cached counts go down by them.
    fn read_kept(
        &mut self,
        conn: &Connection,
        deletion: &Deletion,
        params: &[&dyn ToSql],
    ) -> Result<(Freed, i64)> {
        let (mut freed, mut newest) = (Freed::default(), i64::MIN);
        let mut kept = conn.prepare_cached(deletion.kept)?;
        let mut rows = kept.query(params)?;
        while let Some(row) = rows.next()? {
            newest = newest.max(row.get(0)?);
            if let Some(c) = text(row, 1)?.and_then(|t| self.per_tunnel.get_mut(t)) {
                *c = c.saturating_sub(1);
            }
            freed.rows += 1;
            freed.bytes += row.get::<_, i64>(2)?.max(0) as u64;
        }
        Ok((freed, newest))
    }
}

/// Each body file the payloads of `deletion` name is named once less.
fn release_files(conn: &Connection, deletion: &Deletion, params: &[&dyn ToSql]) -> Result<()> {
    let mut release = conn.prepare_cached(RELEASE_FILE)?;
    let mut files = conn.prepare_cached(deletion.files)?;
    let mut named = files.query(params)?;
    while let Some(row) = named.next()? {
        for column in [0, 1] {
            if let Some(name) = text(row, column)? {
                release.execute([name])?;
            }
        }
    }
    Ok(())
}

/// Column `i` of `row` when it is text, borrowed (no `String` per deleted row).
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>> {
    Ok(match row.get_ref(i)? {
        rusqlite::types::ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    })
}

/// `SELECT <what> FROM exchanges`, a count or a sum, as a `u64`.
fn sum(conn: &Connection, what: &'static str) -> Result<u64> {
    let v: f64 = conn
        .prepare_cached(&format!("SELECT {what} FROM exchanges"))?
        .query_row([], |r| r.get(0))?;
    Ok(v.max(0.0) as u64)
}
