//! What the store keeps of its rows: at most `retention_per_tunnel` exchanges per tunnel
//! name and `retention_total` in all, the oldest going first.
//!
//! The bound per tunnel keeps a flood at one tunnel from erasing another's history. The
//! total is what holds the store on disk: without `--name`, every run of the tunnel gets a
//! new random name, so bounds per name alone let the runs add up for ever.
//!
//! Both are kept by counts cached between batches (a `count(*)` is a walk of every row),
//! counted afresh on first use, after a failed batch and every [`RECOUNT_EVERY`] batches, so
//! rows another process wrote (a replay) are not left out for long. It is not the bound of
//! bytes: see `crate::file_bound` for body files.

use crate::error::Result;
use crate::store::clamp_i64;
use rusqlite::{Connection, params};
use std::collections::HashMap;

/// The oldest `?2` rows of tunnel `?1`: one index walk of that length.
pub(crate) const RETENTION_DELETE: &str = "DELETE FROM exchanges WHERE id IN (SELECT id FROM \
     exchanges WHERE tunnel = ?1 ORDER BY id ASC LIMIT ?2)";
/// The oldest `?1` rows of all, with their tunnels (their cached counts go down).
const TOTAL_DELETE: &str = "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges \
     ORDER BY id ASC LIMIT ?1) RETURNING tunnel";
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

/// The store's row bounds (`0`: no bound) and what it knows of its counts.
#[derive(Debug, Default)]
pub(crate) struct Retention {
    /// Rows per tunnel name, cached by name. Cleared on any write error.
    per_tunnel: HashMap<String, u64>,
    /// Rows in all.
    total: Running,
}

impl Retention {
    /// Counts afresh at the next batch.
    pub(crate) fn forget(&mut self) {
        self.per_tunnel.clear();
        self.total.forget();
    }

    /// The batch's transaction has committed with `total` rows.
    pub(crate) fn committed(&mut self, total: Option<u64>) {
        self.total.committed(total);
    }

    /// Deletes the oldest rows over `per_tunnel` for each tunnel that `added` rows went to,
    /// then the oldest over `total` in all. Returns the rows left in all (for
    /// [`Retention::committed`]), `None` with no total bound.
    pub(crate) fn apply(
        &mut self,
        conn: &Connection,
        (per_tunnel, total): (u64, u64),
        added: HashMap<&str, u64>,
    ) -> Result<Option<u64>> {
        let inserted = added.values().sum();
        let mut deleted = 0;
        if per_tunnel > 0 {
            deleted = self.per_tunnel_bound(conn, per_tunnel, added)?;
        }
        if total == 0 {
            return Ok(None);
        }
        let count_all = || -> Result<u64> {
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM exchanges")?
                .query_row([], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        let rows = self.total.current(inserted, deleted, count_all)?;
        if rows <= total {
            return Ok(Some(rows));
        }
        let gone = self.delete_oldest(conn, rows - total)?;
        tracing::debug!(deleted = gone, "total retention applied");
        Ok(Some(rows.saturating_sub(gone)))
    }

    /// Keeps at most `retention` rows per tunnel that `added` rows went to; returns how many
    /// it deleted.
    fn per_tunnel_bound(
        &mut self,
        conn: &Connection,
        retention: u64,
        added: HashMap<&str, u64>,
    ) -> Result<u64> {
        let mut deleted_all = 0;
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
                let deleted = conn
                    .prepare_cached(RETENTION_DELETE)?
                    .execute(params![tunnel, clamp_i64(count - retention)])?
                    as u64;
                tracing::debug!(tunnel, deleted, "retention cap applied");
                deleted_all += deleted;
                count.saturating_sub(deleted)
            } else {
                count
            };
            self.per_tunnel.insert(tunnel.to_owned(), count);
        }
        Ok(deleted_all)
    }

    /// Deletes the `n` oldest rows of all; returns how many it deleted.
    fn delete_oldest(&mut self, conn: &Connection, n: u64) -> Result<u64> {
        let mut stmt = conn.prepare_cached(TOTAL_DELETE)?;
        let mut rows = stmt.query([clamp_i64(n)])?;
        let mut gone = 0;
        while let Some(row) = rows.next()? {
            let tunnel: String = row.get(0)?;
            if let Some(c) = self.per_tunnel.get_mut(&tunnel) {
                *c = c.saturating_sub(1);
            }
            gone += 1;
        }
        Ok(gone)
    }
}
