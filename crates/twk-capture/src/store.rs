//! The synchronous SQLite store: open, insert, query.
//!
//! One [`Store`] is one SQLite connection. The tunnel writes through a
//! [`Recorder`](crate::Recorder) (which owns its own `Store` on a writer thread); readers such
//! as `log`, `export` and the inspector open their own `Store` and query it. WAL mode lets
//! readers and the writer work at the same time.

use crate::body_files::BodyFiles;
use crate::error::{CaptureError, Result};
use crate::exchange::{CapturedBody, Exchange, ExchangeId};
use crate::file_bound::FileTally;
use crate::filter_sql::{order_limit, where_clause};
use crate::insert::Inserter;
use crate::paths;
use crate::query::{Filter, StoredExchange, Summary};
use crate::retention::{Added, Bounds, Retention};
pub(crate) use crate::rows::{decode_lints, encode_headers, encode_lints, side_str};
use crate::rows::{read_full, read_summary};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};
use sha2::Digest as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default cap on stored body bytes per body: 1 MiB.
pub const DEFAULT_BODY_CAP: usize = 1024 * 1024;
/// Default number of exchanges kept per tunnel name.
pub const DEFAULT_RETENTION: u64 = 10_000;
/// Default number of exchanges kept in all, whatever their tunnel: ten tunnels' worth, so
/// runs without `--name` (a new name each) do not add up for ever.
pub const DEFAULT_RETENTION_TOTAL: u64 = 100_000;
/// Default bound on the bytes of heads and bodies kept in the database (1 GiB).
pub const DEFAULT_PAYLOADS_MAX_BYTES: u64 = 1 << 30;
/// Default bound on the bytes of body files (1 GiB: a thousand distinct 1 MiB bodies).
pub const DEFAULT_BODY_FILES_MAX_BYTES: u64 = 1 << 30;

/// Default cap on the body bytes waiting in the recorder's queue (8 MiB): beyond it new
/// exchanges shed their bodies rather than grow memory while the disk catches up.
pub const DEFAULT_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Default cap on all the bytes waiting in the recorder's queue (heads, bodies and the
/// prefixes of shed bodies): beyond it new exchanges are dropped (counted). It bounds the
/// queue's memory whatever the heads hold (up to 64 KiB each from a stranger).
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 24 * 1024 * 1024;
/// Default capacity of the recorder's queue, in exchanges. At 30,000 exchanges/s (wrk with
/// 1000 connections through the tunnel on a 2-core machine) a queue of 1024 overflowed
/// while the writer checkpointed, and 2-3 % of the exchanges were not recorded; with 4096
/// none were, for 3-4 MiB more peak memory. [`DEFAULT_QUEUE_MAX_BYTES`] bounds it in bytes.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Where the store lives and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Directory holding the database (created 0700).
    pub data_dir: PathBuf,
    /// Stored bytes per body; longer bodies are truncated (their true length and SHA-256 kept).
    pub body_cap: usize,
    /// Exchanges kept per tunnel name; older ones are deleted on insert. `0` sets no bound.
    pub retention_per_tunnel: u64,
    /// Exchanges kept in all; the oldest are deleted on insert. `0` sets no bound.
    pub retention_total: u64,
    /// Bytes of heads and bodies kept in the database (bodies under 64 KiB) in all; the
    /// oldest exchanges are deleted on insert past it. `0` sets no bound.
    pub payloads_max_bytes: u64,
    /// Capacity of the recorder's queue; when full, new exchanges are dropped (and counted).
    pub queue_capacity: usize,
    /// Body bytes the queue may hold at once; beyond it new exchanges are queued with their
    /// bodies shed (counted), so a flood of large bodies on a slow disk cannot exhaust memory.
    pub queue_bytes: usize,
    /// All the bytes the queue may hold (heads, bodies, shed prefixes); beyond it new
    /// exchanges are dropped (counted), so large heads cannot exhaust memory either.
    pub queue_max_bytes: usize,
    /// How long a connection waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// Optional size limit of the database file in bytes (SQLite `max_page_count`); writes
    /// beyond it fail like a full disk. Body files (bodies of 64 KiB and more, beside the
    /// database) are not counted: they have their own bound, `body_files_max_bytes`.
    pub max_db_bytes: Option<u64>,
    /// Bytes of body files (stored bodies of 64 KiB and more) kept in all; past it the
    /// oldest exchanges' large bodies go, their rows stay (see `crate::file_bound`). `0`
    /// sets no bound.
    pub body_files_max_bytes: u64,
}

impl StoreOptions {
    /// Defaults with the database in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreOptions {
            data_dir: data_dir.into(),
            body_cap: DEFAULT_BODY_CAP,
            retention_per_tunnel: DEFAULT_RETENTION,
            retention_total: DEFAULT_RETENTION_TOTAL,
            payloads_max_bytes: DEFAULT_PAYLOADS_MAX_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            busy_timeout: Duration::from_secs(5),
            max_db_bytes: None,
            body_files_max_bytes: DEFAULT_BODY_FILES_MAX_BYTES,
        }
    }

    /// Defaults at the default location (`$XDG_DATA_HOME/twk`, else `~/.local/share/twk`),
    /// or in `dir` when given.
    pub fn at(dir: Option<&Path>) -> Result<Self> {
        match dir {
            Some(d) => Ok(Self::new(d)),
            None => Ok(Self::new(paths::default_data_dir()?)),
        }
    }

    /// Path of the database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(paths::DB_FILE_NAME)
    }
}

/// A connection to the capture database.
pub struct Store {
    conn: Connection,
    opts: StoreOptions,
    /// Where bodies of 64 KiB and more are kept.
    files: BodyFiles,
    /// The row bounds and the counts they are checked against.
    retention: Retention,
    /// Body files to unlink once no row names them (see [`Store::unlink_pending`]).
    pending_unlink: Vec<String>,
    /// The bytes of body files rows name, for their bound.
    file_tally: FileTally,
    /// Fixed "now" for time-dependent lints; `None`: the system clock.
    now_ms: Option<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db", &self.opts.db_path())
            .finish()
    }
}

// Rows are read by column name (`read_summary`, `read_full`), so the order below is free.
const SUMMARY_COLS: &str = "e.id, e.tunnel, e.received_ms, e.method, e.path, e.status, \
     e.duration_ms, e.provider, e.event, e.summary, e.verdict, e.attempt, e.replay_of, \
     e.failure_side, e.req_body_len, e.hs_leg, e.hs_with, e.lint_codes, e.hs_deadline_ms, \
     e.missed, e.matched_secret, e.refused";

const FULL_COLS: &str = "e.id, e.tunnel, e.request_id, e.received_ms, e.forwarded_ms, \
     e.first_byte_ms, e.done_ms, e.method, e.public_url, e.path, e.target, e.remote_addr, \
     e.status, e.failure_side, e.failure_message, e.provider, e.event, e.summary, e.verdict, \
     e.analysis, e.replay_of, e.attempt, e.group_key, e.req_body_len, e.req_body_sha256, \
     e.req_body_truncated, e.has_response, e.resp_body_len, e.resp_body_sha256, \
     e.resp_body_truncated, e.hs_leg, e.lints, \
     p.req_headers, p.req_body, p.resp_headers, p.resp_body, p.req_body_file, \
     p.resp_body_file, e.hs_with, e.hs_deadline_ms, e.auth, e.missed, e.matched_secret, \
     e.refused";

impl Store {
    /// Opens (creating if needed) the database described by `opts`: directory 0700, file 0600,
    /// WAL mode, schema migrated to the current version, no planner statistics.
    pub fn open(opts: &StoreOptions) -> Result<Store> {
        let store = Store::connect(opts)?;
        if crate::schema::drop_statistics(&store.conn)? {
            // This connection loaded them with the schema and keeps planning with them after
            // the tables are gone: a new one reads the schema without them.
            drop(store);
            return Store::connect(opts);
        }
        Ok(store)
    }

    /// [`Store::open`] but for the planner statistics.
    fn connect(opts: &StoreOptions) -> Result<Store> {
        paths::ensure_private_dir(&opts.data_dir)?;
        let path = opts.db_path();
        paths::ensure_private_file(&path)?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(opts.busy_timeout)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "capture database is not in WAL mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 16 MiB page cache (SQLite's default is 2 MiB): list views re-read the same pages.
        conn.pragma_update(None, "cache_size", -16384)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Plans do not depend on bound values. Without this, SQLite reads a bound `LIMIT ?`
        // (and, with STAT4 statistics, some `col = ?`) while planning, and so re-prepares the
        // statement each time a new value is bound: the writer's retention DELETE was parsed
        // and planned again on every batch (13 % of the writer's time at the retention cap).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        if let Some(max) = opts.max_db_bytes {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page.max(512) as u64).max(1);
            conn.pragma_update(None, "max_page_count", pages as i64)?;
        }
        let files = BodyFiles::new(&opts.data_dir);
        crate::grep::register(&conn, &files)?;
        let mut store = Store {
            conn,
            opts: opts.clone(),
            files,
            retention: Retention::default(),
            pending_unlink: Vec::new(),
            file_tally: FileTally::default(),
            now_ms: None,
        };
        crate::schema::migrate(&mut store.conn)?;
        // WAL and SHM exist now: make sure they are private too.
        paths::ensure_private_file(&path)?;
        Ok(store)
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Fixes the clock that time-dependent lints (`retry-never-came`) are judged against, in
    /// Unix ms (tests, reproducible output); `None` goes back to the system clock.
    pub fn set_now_ms(&mut self, now_ms: Option<i64>) {
        self.now_ms = now_ms;
    }

    /// The instant time-dependent lints are judged against, Unix ms.
    pub fn now_ms(&self) -> i64 {
        self.now_ms.unwrap_or_else(crate::time::now_ms)
    }

    /// Stores one exchange (in its own transaction) and returns its new id.
    /// Bodies over the cap are truncated; the attempt number and retention are applied.
    pub fn insert(&mut self, ex: &Exchange) -> Result<ExchangeId> {
        let out = self.insert_batch(std::slice::from_ref(ex))?;
        out.first()
            .map(|s| s.id)
            .ok_or_else(|| CaptureError::Corrupt {
                id: 0,
                what: "insert returned no id".into(),
            })
    }

    /// Stores several exchanges in one transaction; returns their summaries in order.
    pub fn insert_batch(&mut self, batch: &[Exchange]) -> Result<Vec<Summary>> {
        let res = self.insert_batch_inner(batch);
        if res.is_err() {
            self.retention.forget();
            self.file_tally.forget();
        }
        res
    }

    fn insert_batch_inner(&mut self, batch: &[Exchange]) -> Result<Vec<Summary>> {
        let mut created = Vec::new();
        let res = match self.write_batch(batch, &mut created) {
            Ok((out, released)) => {
                self.pending_unlink.extend(released);
                Ok(out)
            }
            Err(e) => {
                // Rolled back: the files this batch wrote are named by no row.
                self.pending_unlink.extend(created);
                Err(e)
            }
        };
        self.unlink_pending();
        res
    }

    /// Unlinks the body files released or left by earlier batches, if the write lock is free
    /// now: the writer does not wait for another process's transaction (its queue would
    /// fill), it tries again after its next batch.
    fn unlink_pending(&mut self) {
        /// Beyond this many waiting names, they are left to the sweep at the next start.
        const MAX_PENDING: usize = 100_000;
        if self.pending_unlink.is_empty() {
            return;
        }
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let res = self
            .files
            .unlink_unnamed(&mut self.conn, &self.pending_unlink);
        let _ = self.conn.busy_timeout(self.opts.busy_timeout);
        match res {
            Ok(_) => self.pending_unlink.clear(),
            Err(e) if self.pending_unlink.len() > MAX_PENDING => {
                tracing::warn!(error = %twk_sanitize::error_chain(&e), files = self.pending_unlink.len(), "cannot remove unused body files; left to the sweep at the next start");
                self.pending_unlink = Vec::new();
            }
            Err(e) => {
                tracing::debug!(error = %twk_sanitize::error_chain(&e), files = self.pending_unlink.len(), "unused body files wait for the write lock");
            }
        }
    }

    /// The batch's transaction; returns its summaries and the body files it released.
    /// `created` receives the names of the files it wrote, whether or not it commits.
    fn write_batch(
        &mut self,
        batch: &[Exchange],
        created: &mut Vec<String>,
    ) -> Result<(Vec<Summary>, Vec<String>)> {
        let now = self.now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut inserter = Inserter::prepare(&tx, &self.files, self.opts.body_cap, now)?;
        let out = inserter.write_all(batch);
        created.append(&mut inserter.created);
        let (named, stored) = (inserter.named_bytes, inserter.stored_bytes);
        drop(inserter);
        let out = out?;
        let mut added: HashMap<&str, u64> = HashMap::new();
        for ex in batch {
            *added.entry(ex.tunnel.as_str()).or_default() += 1;
        }
        let bounds = Bounds {
            per_tunnel: self.opts.retention_per_tunnel,
            total: self.opts.retention_total,
            bytes: self.opts.payloads_max_bytes,
        };
        let added = Added {
            rows: added,
            bytes: stored,
            refused: batch.iter().filter(|ex| ex.refused).count() as u64,
        };
        let left = self.retention.apply(&tx, bounds, added)?;
        let (mut released, freed) = BodyFiles::release_unused(&tx)?;
        let max = self.opts.body_files_max_bytes;
        let file_bytes = self
            .file_tally
            .bound(&tx, max, named, freed, &mut released)?;
        tx.commit()?;
        self.retention.committed(left);
        self.file_tally.committed(file_bytes);
        Ok((out, released))
    }

    /// The row of a request kept by the relay while the client was offline, by its relay
    /// request id, if recorded (a hand-off repeated after a crash is not recorded twice).
    pub fn missed_id(&self, request_id: &str) -> Result<Option<ExchangeId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM exchanges WHERE missed = 1 AND request_id = ?1 ORDER BY id LIMIT 1",
        )?;
        Ok(stmt.query_row([request_id], |r| r.get(0)).optional()?)
    }

    /// The exchange with this id, with heads and stored bodies.
    pub fn get(&self, id: ExchangeId) -> Result<Option<StoredExchange>> {
        let sql = format!(
            "SELECT {FULL_COLS} FROM exchanges e JOIN payloads p ON p.id = e.id WHERE e.id = ?1"
        );
        let now = self.now_ms();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let row = stmt
            .query_row([id], |r| Ok(read_full(r, now, &self.files)))
            .optional()?;
        row.transpose()
    }

    /// Summary rows matching `filter` (no heads or bodies: cheap).
    pub fn list(&self, filter: &Filter) -> Result<Vec<Summary>> {
        let now = self.now_ms();
        let (where_sql, args) = where_clause(filter, now);
        let sql = format!(
            "SELECT {SUMMARY_COLS} FROM exchanges e {where_sql} {}",
            order_limit(filter)
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| read_summary(r, now))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// Full exchanges matching `filter`, passed one by one to `each` (memory stays flat for
    /// big exports). Stops at the first error `each` returns.
    pub fn for_each<E>(
        &self,
        filter: &Filter,
        mut each: impl FnMut(StoredExchange) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E>
    where
        E: From<CaptureError>,
    {
        let now = self.now_ms();
        let (where_sql, args) = where_clause(filter, now);
        let sql = format!(
            "SELECT {FULL_COLS} FROM exchanges e JOIN payloads p ON p.id = e.id {where_sql} {}",
            order_limit(filter)
        );
        let mut stmt = self.conn.prepare(&sql).map_err(CaptureError::from)?;
        let mut rows = stmt
            .query(params_from_iter(args))
            .map_err(CaptureError::from)?;
        while let Some(r) = rows.next().map_err(CaptureError::from)? {
            each(read_full(r, now, &self.files)?)?;
        }
        Ok(())
    }

    /// Full exchanges matching `filter`, collected.
    pub fn query(&self, filter: &Filter) -> Result<Vec<StoredExchange>> {
        let mut out = Vec::new();
        self.for_each(filter, |x| {
            out.push(x);
            Ok::<(), CaptureError>(())
        })?;
        Ok(out)
    }

    /// Number of exchanges matching `filter` (its `limit`/`offset`/`order` are ignored).
    pub fn count(&self, filter: &Filter) -> Result<u64> {
        if filter.collapse_handshakes {
            // Collapsed = every matching row minus the matching leg-1 rows folded into a
            // retry; both counts use indexes (the second the `exchanges_hs_folded` one).
            let all = Filter {
                collapse_handshakes: false,
                ..filter.clone()
            };
            let total = self.count(&all)?;
            let (where_sql, args) = where_clause(&all, self.now_ms());
            let joiner = if where_sql.trim().is_empty() {
                "WHERE"
            } else {
                "AND"
            };
            let sql = format!(
                "SELECT count(*) FROM exchanges e {where_sql} {joiner} \
                 e.hs_leg = 1 AND e.hs_with IS NOT NULL"
            );
            let folded: i64 = self
                .conn
                .query_row(&sql, params_from_iter(args), |r| r.get(0))?;
            return Ok(total.saturating_sub(folded.max(0) as u64));
        }
        let (where_sql, args) = where_clause(filter, self.now_ms());
        let sql = format!("SELECT count(*) FROM exchanges e {where_sql}");
        let n: i64 = self
            .conn
            .query_row(&sql, params_from_iter(args), |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// All attempts in the same delivery group as `id` (oldest first), including `id`.
    pub fn attempts_of(&self, id: ExchangeId) -> Result<Vec<Summary>> {
        let sql = format!(
            "SELECT {SUMMARY_COLS} FROM exchanges e WHERE e.group_key = \
             (SELECT group_key FROM exchanges WHERE id = ?1) ORDER BY e.id ASC"
        );
        let now = self.now_ms();
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([id], |r| read_summary(r, now))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// The highest id stored, if any.
    pub fn max_id(&self) -> Result<Option<ExchangeId>> {
        Ok(self
            .conn
            .query_row("SELECT max(id) FROM exchanges", [], |r| r.get(0))?)
    }

    /// Removes body files that no row names and that are over an hour old (left by a crash
    /// between writing a file and committing its row); the writer runs it at its start.
    /// Removes under the write lock: a writer in another process may otherwise reuse a file
    /// (by its name) between the check and the unlink.
    pub fn sweep_body_files(&mut self) -> Result<usize> {
        self.files.sweep_orphans(&mut self.conn)
    }

    /// Sets this connection's page cache size.
    pub(crate) fn set_cache_kib(&self, kib: i64) -> Result<()> {
        self.conn.pragma_update(None, "cache_size", -kib)?;
        Ok(())
    }
}

pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A body as stored: a borrowed prefix of at most the cap, the true length and hash.
pub(crate) struct CappedBody<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) len: u64,
    pub(crate) sha256: std::borrow::Cow<'a, str>,
    pub(crate) truncated: bool,
}

/// Applies the body cap: keeps at most `cap` bytes (borrowed, not copied: bodies are up to a
/// MiB each), the true length, and the SHA-256 of the complete body (computed here when the
/// producer left it empty and has the whole body).
pub(crate) fn cap_body(b: &CapturedBody, cap: usize) -> CappedBody<'_> {
    let stored = b.bytes.len();
    let len = b.len.max(stored as u64);
    let sha256 = if b.sha256.is_empty() && !b.truncated && len == stored as u64 {
        crate::exchange::lower_hex(&sha2::Sha256::digest(&b.bytes)).into()
    } else {
        b.sha256.as_str().into()
    };
    let keep = stored.min(cap);
    CappedBody {
        bytes: b.bytes.get(..keep).unwrap_or_default(),
        len,
        sha256,
        truncated: b.truncated || (keep as u64) < len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{CapturedBody, Exchange, Header, Message};
    use crate::handshake::LintCode;
    use crate::rows::decode_headers;

    /// The planner-statistics tables the store's database holds.
    fn statistics(store: &Store) -> i64 {
        let q = "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'sqlite_stat%'";
        store.conn.query_row(q, [], |r| r.get(0)).unwrap()
    }

    /// Payloads whose exchange is gone: retention deletes both (there are no triggers).
    fn orphans(store: &Store) -> i64 {
        let q = "SELECT count(*) FROM payloads WHERE id NOT IN (SELECT id FROM exchanges)";
        store.conn.query_row(q, [], |r| r.get(0)).unwrap()
    }

    /// The rows tunnel `t` holds.
    fn tunnel_rows(store: &Store, t: &str) -> i64 {
        let q = "SELECT count(*) FROM exchanges WHERE tunnel = ?1";
        store.conn.query_row(q, [t], |r| r.get(0)).unwrap()
    }

    /// Statistics taken on a store of one row (earlier versions took them at every open)
    /// made the retention DELETE scan the whole table in every batch. They are dropped at
    /// open, and nothing takes them again.
    #[test]
    fn statistics_of_a_small_store_are_dropped_so_retention_never_scans_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = StoreOptions::new(dir.path());
        opts.retention_per_tunnel = 1024;
        let ex = |i: usize| Exchange {
            tunnel: "t".into(),
            request_id: format!("r{i}"),
            ..Default::default()
        };
        let mut store = Store::open(&opts).unwrap();
        store.insert_batch(&[ex(0)]).unwrap();
        store.conn.execute_batch("ANALYZE").unwrap();
        assert!(statistics(&store) > 0, "an earlier version's statistics");
        drop(store);

        let mut store = Store::open(&opts).unwrap();
        assert_eq!(statistics(&store), 0);
        for i in 0..110 {
            let batch: Vec<_> = (0..10).map(|j| ex(1 + i * 10 + j)).collect();
            store.insert_batch(&batch).unwrap();
        }
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM exchanges", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1024, "the bound applied");
        assert_eq!(
            orphans(&store),
            0,
            "one tunnel: its oldest rows and payloads by range"
        );
        for sql in crate::retention::PER_TUNNEL.statements() {
            let stmt = store.conn.prepare_cached(sql).unwrap();
            let scanned = stmt.get_status(rusqlite::StatementStatus::FullscanStep);
            assert_eq!(scanned, 0, "{sql}");
        }
        drop(store);
        let store = Store::open(&opts).unwrap();
        assert_eq!(statistics(&store), 0, "no statistics taken since");
    }

    /// A reader opening while another connection writes cannot drop the statistics in
    /// time: it opens with them, and a later open drops them.
    #[test]
    fn a_store_opened_while_another_writes_keeps_the_statistics_until_later() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = StoreOptions::new(dir.path());
        let mut store = Store::open(&opts).unwrap();
        store.insert(&Exchange::default()).unwrap();
        store.conn.execute_batch("ANALYZE").unwrap();
        drop(store);
        let writer = Connection::open(opts.db_path()).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        opts.busy_timeout = Duration::from_millis(20);
        let store = Store::open(&opts).expect("opens while another connection writes");
        assert!(statistics(&store) > 0);
        writer.execute_batch("COMMIT").unwrap();
        drop(store);
        assert_eq!(statistics(&Store::open(&opts).unwrap()), 0);
    }

    /// Deleting a tunnel's oldest rows checks whether they are the oldest of all by counting
    /// rows up to the newest of them. Another tunnel's older rows, kept, must not be walked
    /// in every batch: the count stops one row past the rows deleted. Here they are not the
    /// oldest, so their payloads go by the selection, not by a range, and none is left.
    #[test]
    fn another_tunnels_older_rows_are_not_walked_in_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = StoreOptions::new(dir.path());
        opts.retention_per_tunnel = 1000;
        let ex = |tunnel: &str, i: usize| Exchange {
            tunnel: tunnel.into(),
            request_id: format!("r{i}"),
            ..Default::default()
        };
        let mut store = Store::open(&opts).unwrap();
        let old: Vec<_> = (0..1000).map(|i| ex("old", i)).collect();
        store.insert_batch(&old).unwrap();
        for i in 0..110 {
            let batch: Vec<_> = (0..10).map(|j| ex("new", i * 10 + j)).collect();
            store.insert_batch(&batch).unwrap();
        }
        let stmt = store
            .conn
            .prepare_cached(crate::retention::COUNT_THROUGH)
            .unwrap();
        // Ten deletions of ten rows, 11 rows counted each: 1,150 VM steps in all. Counting
        // every row up to the newest deleted walks the old tunnel's thousand each time:
        // 91,090.
        let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps < 10_000, "{steps} VM steps");
        drop(stmt);
        assert_eq!(orphans(&store), 0);
        let rows = (tunnel_rows(&store, "old"), tunnel_rows(&store, "new"));
        assert_eq!(rows, (1000, 1000));
    }

    #[test]
    fn the_retention_delete_is_planned_once_not_on_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = StoreOptions::new(dir.path());
        opts.retention_per_tunnel = 10;
        let mut store = Store::open(&opts).unwrap();
        for i in 0..60 {
            let ex = Exchange {
                tunnel: ["a", "b"][i % 2].into(),
                request_id: format!("r{i}"),
                ..Default::default()
            };
            store.insert_batch(&[ex]).unwrap();
        }
        let rows = (tunnel_rows(&store, "a"), tunnel_rows(&store, "b"));
        assert_eq!(rows, (10, 10));
        assert_eq!(orphans(&store), 0);
        // 40 batches ran the deletion; before QPSG each one prepared its statements again.
        for sql in crate::retention::PER_TUNNEL.statements() {
            let stmt = store.conn.prepare_cached(sql).unwrap();
            let prepared = stmt.get_status(rusqlite::StatementStatus::RePrepare);
            assert_eq!(prepared, 0, "{sql}");
        }
    }

    #[test]
    fn unused_body_files_wait_for_a_free_write_lock_and_are_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = StoreOptions::new(dir.path());
        opts.retention_per_tunnel = 1;
        let mut store = Store::open(&opts).unwrap();
        let big = |seed: u8| Exchange {
            tunnel: "t".into(),
            request_id: format!("r{seed}"),
            request: Message {
                headers: Vec::new(),
                body: CapturedBody::from_bytes(&vec![seed; 100 * 1024]),
            },
            ..Default::default()
        };
        store.insert(&big(1)).unwrap();
        let first = store.files.path_of(&big(1).request.body.sha256).unwrap();
        assert!(first.exists());
        // Another process takes the write lock the moment the batch that released the file
        // has committed: the writer does not wait for it, the file waits.
        store.insert(&big(2)).unwrap();
        store.pending_unlink.push(big(1).request.body.sha256);
        std::fs::write(&first, vec![1; 100 * 1024]).unwrap();
        let other = Connection::open(opts.db_path()).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        store.unlink_pending();
        assert!(first.exists());
        assert_eq!(store.pending_unlink.len(), 1);
        other.execute_batch("COMMIT").unwrap();
        store.unlink_pending();
        assert!(!first.exists());
        assert!(store.pending_unlink.is_empty());
    }

    #[test]
    fn header_encoding_round_trips() {
        let h = vec![
            Header {
                name: "a".into(),
                value: b"x \"y\"".to_vec(),
            },
            Header {
                name: "b".into(),
                value: vec![0xff, 0x80, b'z'],
            },
        ];
        let s = encode_headers(&h).unwrap();
        assert_eq!(decode_headers(1, &s).ok(), Some(h));
    }

    #[test]
    fn header_encoding_is_the_text_stored_before() {
        use base64::Engine as _;
        let h = vec![
            Header {
                name: "content-type".into(),
                value: b"application/json; charset=\"utf-8\"".to_vec(),
            },
            Header {
                name: "x-ctl".into(),
                value: "tab\t nl\n bell\u{7} \\ caf\u{e9} \u{2028}".into(),
            },
            Header {
                name: "x-bin".into(),
                value: vec![0xff, 0x00, b'z'],
            },
        ];
        // How v0.1 to v6 wrote them (a `serde_json::Value` per header): rows already stored
        // and rows written now must read, and grep, alike.
        let before = serde_json::Value::Array(
            h.iter()
                .map(|h| match std::str::from_utf8(&h.value) {
                    Ok(s) => serde_json::json!([h.name, s]),
                    Err(_) => serde_json::json!([
                        h.name,
                        null,
                        base64::engine::general_purpose::STANDARD.encode(&h.value)
                    ]),
                })
                .collect(),
        )
        .to_string();
        assert_eq!(encode_headers(&h).unwrap(), before);
        assert_eq!(encode_headers(&[]).unwrap(), "[]");
    }

    fn plan(store: &Store, sql: &str, args: &[&dyn rusqlite::ToSql]) -> String {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = stmt.query_map(args, |r| r.get::<_, String>(3)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn pairing_and_lint_lookups_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let p = plan(
            &store,
            "SELECT id FROM exchanges WHERE hs_key = ?1 AND received_ms BETWEEN ?2 AND ?3 \
             ORDER BY received_ms DESC, id DESC LIMIT 1",
            &[&"1abc", &0i64, &1i64],
        );
        assert!(p.contains("exchanges_hs_open"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        let (w, args) = where_clause(
            &Filter {
                lint: Some(LintCode::RetryNeverCame),
                ..Filter::default()
            },
            5,
        );
        let p = plan(
            &store,
            &format!("SELECT count(*) FROM exchanges e {w}"),
            &[&args[0] as &dyn rusqlite::ToSql],
        );
        assert!(p.contains("exchanges_hs_wait"), "{p}");
        let p = plan(&store, crate::file_bound::OLDEST_WITH_FILES, &[&32i64]);
        assert!(p.contains("payloads_with_file"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[test]
    fn cap_keeps_true_len_and_hash() {
        let b = CapturedBody {
            bytes: b"hello world".to_vec(),
            len: 11,
            sha256: String::new(),
            truncated: false,
        };
        let c = cap_body(&b, 5);
        assert_eq!(c.bytes, b"hello");
        assert_eq!(c.len, 11);
        assert!(c.truncated);
        assert_eq!(c.sha256, hex::encode(sha2::Sha256::digest(b"hello world")));
    }
}
