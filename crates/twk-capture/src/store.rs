//! The synchronous SQLite store: open, insert, query.
//!
//! One [`Store`] is one SQLite connection. The tunnel writes through a
//! [`Recorder`](crate::Recorder) (which owns its own `Store` on a writer thread); readers such
//! as `log`, `export` and the inspector open their own `Store` and query it. WAL mode lets
//! readers and the writer work at the same time.

use crate::error::{CaptureError, Result};
use crate::handshake::{Handshake, Leg, Lint, LintCode};
use crate::insert::Inserter;
use crate::model::{
    AuthInfo, CapturedBody, Exchange, ExchangeId, Failure, Header, Message, Side, Timings,
};
use crate::paths;
use crate::query::{Filter, Order, StatusFilter, StoredExchange, Summary};
use base64::Engine as _;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params, params_from_iter};
use sha2::Digest as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use twk_providers::Verdict;

/// Default cap on stored body bytes per body: 1 MiB.
pub const DEFAULT_BODY_CAP: usize = 1024 * 1024;
/// Default number of exchanges kept per tunnel name.
pub const DEFAULT_RETENTION: u64 = 10_000;
/// Default cap on the body bytes waiting in the recorder's queue (256 MiB).
pub const DEFAULT_QUEUE_BYTES: usize = 256 * 1024 * 1024;
/// Default capacity of the recorder's queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Where the store lives and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Directory holding the database (created 0700).
    pub data_dir: PathBuf,
    /// Stored bytes per body; longer bodies are truncated (their true length and SHA-256 kept).
    pub body_cap: usize,
    /// Exchanges kept per tunnel name; older ones are deleted on insert. `0` keeps everything.
    pub retention_per_tunnel: u64,
    /// Capacity of the recorder's queue; when full, new exchanges are dropped (and counted).
    pub queue_capacity: usize,
    /// Body bytes the queue may hold at once; beyond it new exchanges are dropped (and
    /// counted), so a flood of large bodies on a slow disk cannot exhaust memory.
    pub queue_bytes: usize,
    /// How long a connection waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// Optional size limit of the database file in bytes (SQLite `max_page_count`); writes
    /// beyond it fail like a full disk.
    pub max_db_bytes: Option<u64>,
}

impl StoreOptions {
    /// Defaults with the database in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreOptions {
            data_dir: data_dir.into(),
            body_cap: DEFAULT_BODY_CAP,
            retention_per_tunnel: DEFAULT_RETENTION,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            busy_timeout: Duration::from_secs(5),
            max_db_bytes: None,
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
    /// Cached row counts per tunnel, for cheap retention checks. Cleared on any write error.
    tunnel_counts: HashMap<String, u64>,
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
     e.failure_side, e.req_body_len, e.hs_leg, e.hs_with, e.lint_codes, e.hs_deadline_ms";

const FULL_COLS: &str = "e.id, e.tunnel, e.request_id, e.received_ms, e.forwarded_ms, \
     e.first_byte_ms, e.done_ms, e.method, e.public_url, e.path, e.target, e.remote_addr, \
     e.status, e.failure_side, e.failure_message, e.provider, e.event, e.summary, e.verdict, \
     e.analysis, e.replay_of, e.attempt, e.group_key, e.req_body_len, e.req_body_sha256, \
     e.req_body_truncated, e.has_response, e.resp_body_len, e.resp_body_sha256, \
     e.resp_body_truncated, e.hs_leg, e.lints, \
     p.req_headers, p.req_body, p.resp_headers, p.resp_body, \
     e.hs_with, e.hs_deadline_ms, e.auth";

impl Store {
    /// Opens (creating if needed) the database described by `opts`: directory 0700, file 0600,
    /// WAL mode, schema migrated to the current version.
    pub fn open(opts: &StoreOptions) -> Result<Store> {
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
        if let Some(max) = opts.max_db_bytes {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page.max(512) as u64).max(1);
            conn.pragma_update(None, "max_page_count", pages as i64)?;
        }
        let mut store = Store {
            conn,
            opts: opts.clone(),
            tunnel_counts: HashMap::new(),
            now_ms: None,
        };
        crate::schema::migrate(&mut store.conn)?;
        // Keep planner statistics fresh (bounded work: analysis_limit), as SQLite recommends
        // for connections opened on a database that may have grown.
        store
            .conn
            .execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;")?;
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
            self.tunnel_counts.clear();
        }
        res
    }

    fn insert_batch_inner(&mut self, batch: &[Exchange]) -> Result<Vec<Summary>> {
        let now = self.now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = Inserter::prepare(&tx, self.opts.body_cap, now)?.write_all(batch)?;
        let mut added: HashMap<&str, u64> = HashMap::new();
        for ex in batch {
            *added.entry(ex.tunnel.as_str()).or_default() += 1;
        }
        let retention = self.opts.retention_per_tunnel;
        if retention > 0 {
            apply_retention(&tx, &mut self.tunnel_counts, retention, added)?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// The exchange with this id, with heads and stored bodies.
    pub fn get(&self, id: ExchangeId) -> Result<Option<StoredExchange>> {
        let sql = format!(
            "SELECT {FULL_COLS} FROM exchanges e JOIN payloads p ON p.id = e.id WHERE e.id = ?1"
        );
        let now = self.now_ms();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let row = stmt.query_row([id], |r| Ok(read_full(r, now))).optional()?;
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
            each(read_full(r, now)?)?;
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

    /// Runs SQLite's `PRAGMA optimize` (refreshes planner statistics; cheap).
    pub fn optimize(&self) -> Result<()> {
        self.conn.execute_batch("PRAGMA optimize")?;
        Ok(())
    }
}

/// Keeps at most `retention` exchanges per tunnel that `added` rows went to, oldest first to
/// go; `counts` caches each tunnel's row count between batches.
fn apply_retention(
    conn: &Connection,
    counts: &mut HashMap<String, u64>,
    retention: u64,
    added: HashMap<&str, u64>,
) -> Result<()> {
    for (tunnel, n) in added {
        let count = match counts.get(tunnel) {
            Some(c) => c.saturating_add(n),
            None => conn.query_row(
                "SELECT count(*) FROM exchanges WHERE tunnel = ?1",
                [tunnel],
                |r| r.get::<_, i64>(0),
            )? as u64,
        };
        let count = if count > retention {
            let cutoff: Option<i64> = conn
                .query_row(
                    "SELECT id FROM exchanges WHERE tunnel = ?1 ORDER BY id DESC \
                     LIMIT 1 OFFSET ?2",
                    params![tunnel, clamp_i64(retention)],
                    |r| r.get(0),
                )
                .optional()?;
            let deleted = match cutoff {
                Some(c) => conn.execute(
                    "DELETE FROM exchanges WHERE tunnel = ?1 AND id <= ?2",
                    params![tunnel, c],
                )?,
                None => 0,
            };
            tracing::debug!(tunnel, deleted, "retention cap applied");
            count.saturating_sub(deleted as u64)
        } else {
            count
        };
        counts.insert(tunnel.to_owned(), count);
    }
    Ok(())
}

pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Applies the body cap: keeps at most `cap` bytes, the true length, and the SHA-256 of the
/// complete body (computed here when the producer left it empty and has the whole body).
pub(crate) fn cap_body(b: &CapturedBody, cap: usize) -> CapturedBody {
    let stored = b.bytes.len();
    let len = b.len.max(stored as u64);
    let sha256 = if b.sha256.is_empty() && !b.truncated && len == stored as u64 {
        hex::encode(sha2::Sha256::digest(&b.bytes))
    } else {
        b.sha256.clone()
    };
    let keep = stored.min(cap);
    CapturedBody {
        bytes: b.bytes.get(..keep).unwrap_or_default().to_vec(),
        len,
        sha256,
        truncated: b.truncated || (keep as u64) < len,
    }
}

pub(crate) fn side_str(s: Side) -> &'static str {
    match s {
        Side::Sender => "sender",
        Side::Tunnel => "tunnel",
        Side::Target => "target",
    }
}

fn parse_side(s: &str) -> Option<Side> {
    match s {
        "sender" => Some(Side::Sender),
        "tunnel" => Some(Side::Tunnel),
        "target" => Some(Side::Target),
        _ => None,
    }
}

/// Headers as JSON text: `[["name","value"], ["name", null, "<base64>"]]` (the second form
/// for values that are not UTF-8). Text keeps `grep` working on heads.
pub(crate) fn encode_headers(h: &[Header]) -> String {
    let arr: Vec<serde_json::Value> = h
        .iter()
        .map(|h| match std::str::from_utf8(&h.value) {
            Ok(s) => serde_json::json!([h.name, s]),
            Err(_) => serde_json::json!([
                h.name,
                null,
                base64::engine::general_purpose::STANDARD.encode(&h.value)
            ]),
        })
        .collect();
    serde_json::Value::Array(arr).to_string()
}

pub(crate) fn decode_headers(id: i64, s: &str) -> Result<Vec<Header>> {
    let corrupt = |what: &str| CaptureError::Corrupt {
        id,
        what: format!("headers: {what}"),
    };
    let v: Vec<Vec<serde_json::Value>> =
        serde_json::from_str(s).map_err(|e| corrupt(&e.to_string()))?;
    v.into_iter()
        .map(|pair| {
            let name = pair
                .first()
                .and_then(|n| n.as_str())
                .ok_or_else(|| corrupt("name"))?
                .to_owned();
            let value = match (pair.get(1), pair.get(2)) {
                (Some(serde_json::Value::String(s)), _) => s.clone().into_bytes(),
                (_, Some(serde_json::Value::String(b))) => {
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|_| corrupt("base64 value"))?
                }
                _ => return Err(corrupt("value")),
            };
            Ok(Header { name, value })
        })
        .collect()
}

fn where_clause(f: &Filter, now_ms: i64) -> (String, Vec<Value>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut eq = |col: &str, v: &Option<String>, conds: &mut Vec<String>| {
        if let Some(v) = v {
            args.push(Value::Text(v.clone()));
            conds.push(format!("{col} = ?{}", args.len()));
        }
    };
    eq("e.tunnel", &f.name, &mut conds);
    eq("e.provider", &f.provider, &mut conds);
    eq("e.event", &f.event, &mut conds);
    eq(
        "e.verdict",
        &f.verdict.map(|v| v.as_str().to_string()),
        &mut conds,
    );
    let mut push = |sql: &str, v: Value, conds: &mut Vec<String>| {
        args.push(v);
        conds.push(sql.replace('#', &format!("?{}", args.len())));
    };
    match f.status {
        Some(StatusFilter::Exact(c)) => push("e.status = #", Value::Integer(c.into()), &mut conds),
        Some(StatusFilter::Class(c)) => {
            push("e.status_class = #", Value::Integer(c.into()), &mut conds)
        }
        Some(StatusFilter::NoResponse) => conds.push("e.status IS NULL".into()),
        None => {}
    }
    // With an equality filter, its (col, id) index is the better access path: keep the
    // planner off the received_ms index (unary `+`) so `--event X --since T` stays fast.
    let has_eq =
        f.name.is_some() || f.provider.is_some() || f.event.is_some() || f.verdict.is_some();
    let time_col = if has_eq {
        "+e.received_ms"
    } else {
        "e.received_ms"
    };
    if let Some(s) = f.since_ms {
        push(&format!("{time_col} >= #"), Value::Integer(s), &mut conds);
    }
    if let Some(u) = f.until_ms {
        push(&format!("{time_col} <= #"), Value::Integer(u), &mut conds);
    }
    if let Some(r) = f.replay_of {
        push("e.replay_of = #", Value::Integer(r), &mut conds);
    }
    if let Some(a) = f.after_id {
        push("e.id > #", Value::Integer(a), &mut conds);
    }
    match f.lint {
        Some(LintCode::RetryNeverCame) => {
            push("e.hs_deadline_ms < #", Value::Integer(now_ms), &mut conds)
        }
        Some(code) => push(
            "e.lint_codes IS NOT NULL AND instr(e.lint_codes, #) > 0",
            Value::Text(format!(",{},", code.as_str())),
            &mut conds,
        ),
        None => {}
    }
    if f.collapse_handshakes {
        conds.push("(e.hs_leg IS NOT 1 OR e.hs_with IS NULL)".into());
    }
    if let Some(g) = f.grep.as_deref().filter(|g| !g.is_empty()) {
        let pat = format!("%{}%", like_escape(g));
        push(
            "(e.public_url LIKE # ESCAPE '\\' OR e.path LIKE # ESCAPE '\\' \
             OR e.summary LIKE # ESCAPE '\\' OR EXISTS (SELECT 1 FROM payloads p2 \
             WHERE p2.id = e.id AND (p2.req_headers LIKE # ESCAPE '\\' \
             OR p2.req_body LIKE # ESCAPE '\\' OR p2.resp_headers LIKE # ESCAPE '\\' \
             OR p2.resp_body LIKE # ESCAPE '\\')))",
            Value::Text(pat),
            &mut conds,
        );
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (sql, args)
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn order_limit(f: &Filter) -> String {
    let dir = match f.order {
        Order::NewestFirst => "DESC",
        Order::OldestFirst => "ASC",
    };
    let limit = f.limit.map(clamp_i64).unwrap_or(-1);
    format!(
        "ORDER BY e.id {dir} LIMIT {limit} OFFSET {}",
        clamp_i64(f.offset)
    )
}

fn read_summary(r: &Row<'_>, now_ms: i64) -> rusqlite::Result<Summary> {
    let mut lints: Vec<LintCode> = r
        .get::<_, Option<String>>(17)?
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.parse().ok())
        .collect();
    if r.get::<_, Option<i64>>(18)?.is_some_and(|d| d < now_ms) {
        lints.push(LintCode::RetryNeverCame);
    }
    lints.sort();
    Ok(Summary {
        id: r.get("id")?,
        tunnel: r.get("tunnel")?,
        received_ms: r.get("received_ms")?,
        method: r.get("method")?,
        path: r.get("path")?,
        status: r.get("status")?,
        duration_ms: r.get("duration_ms")?,
        provider: r.get("provider")?,
        event: r.get("event")?,
        summary: r.get("summary")?,
        verdict: verdict_col(r.get("verdict")?),
        attempt: r.get("attempt")?,
        replay_of: r.get("replay_of")?,
        failure_side: r
            .get::<_, Option<String>>(13)?
            .as_deref()
            .and_then(parse_side),
        request_body_len: r.get::<_, i64>("req_body_len")?.max(0) as u64,
        handshake: read_handshake(r.get("hs_leg")?, r.get("hs_with")?),
        lints,
    })
}

/// The handshake of a row from its `hs_leg`/`hs_with` columns.
fn read_handshake(leg: Option<i64>, with: Option<ExchangeId>) -> Option<Handshake> {
    match leg {
        Some(l) => Leg::from_number(l).map(|leg| Handshake { leg, with }),
        _ => None,
    }
}

/// Stored lints as (`lints` JSON, `lint_codes`), both `NULL` when there are none.
pub(crate) fn encode_lints(lints: &[Lint]) -> Result<(Option<String>, Option<String>)> {
    if lints.is_empty() {
        return Ok((None, None));
    }
    let codes: String = lints.iter().fold(String::from(","), |mut s, l| {
        s.push_str(l.code.as_str());
        s.push(',');
        s
    });
    Ok((Some(serde_json::to_string(lints)?), Some(codes)))
}

pub(crate) fn decode_lints(id: ExchangeId, json: Option<&str>) -> Result<Vec<Lint>> {
    match json {
        Some(s) => serde_json::from_str(s).map_err(|e| CaptureError::Corrupt {
            id,
            what: format!("lints: {e}"),
        }),
        None => Ok(Vec::new()),
    }
}

fn read_full(r: &Row<'_>, now_ms: i64) -> Result<StoredExchange> {
    let id: i64 = r.get("id")?;
    let json_col = |col: &str| -> Result<Option<serde_json::Value>> {
        match r.get::<_, Option<String>>(col)? {
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| CaptureError::Corrupt {
                    id,
                    what: e.to_string(),
                }),
            None => Ok(None),
        }
    };
    let failure = match r
        .get::<_, Option<String>>(13)?
        .as_deref()
        .and_then(parse_side)
    {
        Some(side) => Some(Failure {
            side,
            message: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
        }),
        None => None,
    };
    let request = Message {
        headers: decode_headers(id, &r.get::<_, String>("req_headers")?)?,
        body: CapturedBody {
            bytes: r.get("req_body")?,
            len: r.get::<_, i64>("req_body_len")?.max(0) as u64,
            sha256: r.get("req_body_sha256")?,
            truncated: r.get("req_body_truncated")?,
        },
    };
    let response = if r.get::<_, bool>("has_response")? {
        Some(Message {
            headers: decode_headers(id, &r.get::<_, Option<String>>(34)?.unwrap_or_default())?,
            body: CapturedBody {
                bytes: r.get::<_, Option<Vec<u8>>>(35)?.unwrap_or_default(),
                len: r.get::<_, Option<i64>>(27)?.unwrap_or(0).max(0) as u64,
                sha256: r.get::<_, Option<String>>(28)?.unwrap_or_default(),
                truncated: r.get::<_, Option<bool>>(29)?.unwrap_or(false),
            },
        })
    } else {
        None
    };
    let exchange =
        Exchange {
            id: Some(id),
            tunnel: r.get("tunnel")?,
            request_id: r.get("request_id")?,
            timings: Timings {
                received_ms: r.get("received_ms")?,
                forwarded_ms: r.get("forwarded_ms")?,
                first_byte_ms: r.get("first_byte_ms")?,
                done_ms: r.get("done_ms")?,
            },
            method: r.get("method")?,
            public_url: r.get("public_url")?,
            path: r.get("path")?,
            target: r.get("target")?,
            remote_addr: r.get("remote_addr")?,
            status: r.get("status")?,
            failure,
            provider: r.get("provider")?,
            event: r.get("event")?,
            summary: r.get("summary")?,
            verdict: verdict_col(r.get("verdict")?),
            analysis: json_col("analysis")?,
            replay_of: r.get("replay_of")?,
            request,
            response,
            auth: match r.get::<_, Option<String>>(38)? {
                Some(s) => Some(serde_json::from_str::<AuthInfo>(&s).map_err(|e| {
                    CaptureError::Corrupt {
                        id,
                        what: format!("auth: {e}"),
                    }
                })?),
                None => None,
            },
        };
    let mut lints = decode_lints(id, r.get::<_, Option<String>>(31)?.as_deref())?;
    if r.get::<_, Option<i64>>(37)?.is_some_and(|d| d < now_ms) {
        lints.push(Lint::retry_never_came());
        lints.sort_by_key(|l| l.code);
    }
    Ok(StoredExchange {
        exchange,
        attempt: r.get("attempt")?,
        group_key: r.get("group_key")?,
        handshake: read_handshake(r.get("hs_leg")?, r.get("hs_with")?),
        lints: (!lints.is_empty()).then_some(lints),
    })
}

/// A verdict column: text in SQLite, typed everywhere else (an unknown word reads as none).
fn verdict_col(text: Option<String>) -> Option<Verdict> {
    text.and_then(|t| t.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = encode_headers(&h);
        assert_eq!(decode_headers(1, &s).ok(), Some(h));
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
