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
use rusqlite::{Connection, params};
use std::collections::HashMap;

/// The oldest `?2` rows of tunnel `?1`: one index walk of that length.
pub(crate) const RETENTION_DELETE: &str = "DELETE FROM exchanges WHERE id IN (SELECT id FROM \
     exchanges WHERE tunnel = ?1 ORDER BY id ASC LIMIT ?2) RETURNING stored_bytes";
/// The oldest `?1` rows of all, with their tunnels (their cached counts go down) and bytes.
const TOTAL_DELETE: &str = "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges \
     ORDER BY id ASC LIMIT ?1) RETURNING tunnel, stored_bytes";
/// The oldest rows after `?1`, with the bytes each keeps: the bytes bound walks them to
/// find how many to delete.
const OLDEST_SIZES: &str =
    "SELECT id, stored_bytes FROM exchanges WHERE id > ?1 ORDER BY id ASC LIMIT 64";
/// Every row up to id `?1`, with their tunnels and bytes.
const DELETE_THROUGH: &str = "DELETE FROM exchanges WHERE id <= ?1 RETURNING tunnel, stored_bytes";
/// Rows of requests the relay refused itself (`refused`), at most, in all: past it the
/// oldest of them go first. A stranger's flood of refusals then erases at most this many
/// rows of history (a tenth of `retention_total` or of `retention_per_tunnel` when that is
/// smaller, 10 at least).
pub(crate) const REFUSED_KEPT: u64 = 1000;
/// The refused rows: a walk of their partial index.
const REFUSED_COUNT: &str = "SELECT count(*) FROM exchanges WHERE refused = 1";
/// The oldest `?1` refused rows, with their tunnels and bytes.
const REFUSED_DELETE: &str = "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges \
     WHERE refused = 1 ORDER BY id ASC LIMIT ?1) RETURNING tunnel, stored_bytes";
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
        let mut stmt = conn.prepare_cached(REFUSED_DELETE)?;
        let freed = self.count_deleted(stmt.query([clamp_i64(count - most)])?)?;
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
                let mut stmt = conn.prepare_cached(RETENTION_DELETE)?;
                let mut rows = stmt.query(params![tunnel, clamp_i64(count - retention)])?;
                let mut deleted = 0;
                while let Some(row) = rows.next()? {
                    freed.bytes += row.get::<_, i64>(0)?.max(0) as u64;
                    deleted += 1;
                }
                tracing::debug!(tunnel, deleted, "retention cap applied");
                freed.rows += deleted;
                count.saturating_sub(deleted)
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
        let mut stmt = conn.prepare_cached(DELETE_THROUGH)?;
        let freed = self.count_deleted(stmt.query([through])?)?;
        tracing::debug!(deleted = freed.rows, "bytes retention applied");
        Ok(freed)
    }

    /// Deletes the `n` oldest rows of all.
    fn delete_oldest(&mut self, conn: &Connection, n: u64) -> Result<Freed> {
        if n == 0 {
            return Ok(Freed::default());
        }
        let mut stmt = conn.prepare_cached(TOTAL_DELETE)?;
        self.count_deleted(stmt.query([clamp_i64(n)])?)
    }

    /// Sums the `(tunnel, stored_bytes)` rows a delete returned; the tunnels' cached counts
    /// go down.
    fn count_deleted(&mut self, mut rows: rusqlite::Rows<'_>) -> Result<Freed> {
        let mut freed = Freed::default();
        while let Some(row) = rows.next()? {
            let tunnel: String = row.get(0)?;
            if let Some(c) = self.per_tunnel.get_mut(&tunnel) {
                *c = c.saturating_sub(1);
            }
            freed.rows += 1;
            freed.bytes += row.get::<_, i64>(1)?.max(0) as u64;
        }
        Ok(freed)
    }
}

/// `SELECT <what> FROM exchanges`, a count or a sum, as a `u64`.
fn sum(conn: &Connection, what: &'static str) -> Result<u64> {
    let v: f64 = conn
        .prepare_cached(&format!("SELECT {what} FROM exchanges"))?
        .query_row([], |r| r.get(0))?;
    Ok(v.max(0.0) as u64)
}
