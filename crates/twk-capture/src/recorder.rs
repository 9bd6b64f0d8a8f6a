//! The recorder: a dedicated writer thread fed by a bounded queue, so recording never slows
//! or blocks forwarding.
//!
//! - [`Recorder::record`] never blocks and never fails loudly. When the writer falls behind
//!   and the queued body bytes reach their bound, new exchanges keep their heads, lengths
//!   and hashes but shed their body bytes beyond a short prefix (counted, logged once); only
//!   when the queue is full, by count or by all the bytes it holds (heads included), is an
//!   exchange dropped and counted (a warning is logged once). When the database cannot be
//!   written (disk full, database locked by another process, I/O error) the batch is dropped,
//!   counted, reported once with `tracing::error!`, and the [`RecorderStatus`] carries the
//!   message for the UI until a later write succeeds.
//! - The writer drains whatever is queued and writes it in one transaction (batching).
//! - Each stored exchange is announced on a broadcast channel ([`Recorder::subscribe`]) and,
//!   if the caller kept it, through the [`PendingId`] returned by `record`.

use crate::error::Result;
use crate::exchange::{Exchange, ExchangeId};
use crate::query::Summary;
use crate::store::{Store, StoreOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Largest number of exchanges written in one transaction.
const MAX_BATCH: usize = 1024;
/// How long the writer lets exchanges gather after a write, in steps, while more come.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);
/// The longest it goes on gathering.
const GATHER_MAX: std::time::Duration = std::time::Duration::from_millis(10);
/// Exchanges gathered that end the gathering: a commit's own cost (its pages written to the
/// log, the retention's statements) is then spread thin. Measured with the store bench at
/// the retention cap: 183 µs per exchange in batches of 8, 95 in 32, 63 in 128.
const GATHER_ENOUGH: usize = 64;
/// Bytes gathered that end it too: large bodies gain little from sharing a commit, and
/// their bytes count against the queue's shedding budget while they wait.
const GATHER_BYTES: usize = 1024 * 1024;
/// Body bytes an exchange keeps when the queue sheds bodies: enough for a preview.
pub const SHED_KEEP: usize = 4 * 1024;
/// Capacity of the new-exchange broadcast; slower subscribers see `Lagged` and should re-query.
const BROADCAST_CAPACITY: usize = 1024;

/// A newly stored exchange, as announced to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExchange {
    /// Its id.
    pub id: ExchangeId,
    /// Its list row.
    pub summary: Summary,
}

/// Whether recording currently works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Writes succeed.
    Ok,
    /// The last write failed; exchanges are not being recorded. Forwarding goes on.
    Failing {
        /// Human message (e.g. "database or disk is full").
        message: String,
    },
}

/// Counters and health of a recorder, for a status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderStatus {
    /// Current health.
    pub health: Health,
    /// Exchanges stored since start.
    pub recorded: u64,
    /// Exchanges dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Exchanges lost because the database write failed.
    pub failed: u64,
    /// Exchanges recorded without their body bytes (beyond [`SHED_KEEP`]) because the
    /// writer was behind.
    pub shed: u64,
    /// Transactions the writer committed: under load, each holds many exchanges.
    pub batches: u64,
}

/// What a status line must show at once: whether writes fail, and how many exchanges were
/// dropped. Published on a watch channel ([`Recorder::alerts`]) whenever either changes, so
/// a UI is told instead of polling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alerts {
    /// `Some(message)` while writes fail.
    pub failing: Option<String>,
    /// Exchanges dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Exchanges recorded with their body bytes shed (see [`RecorderStatus::shed`]).
    pub shed: u64,
}

/// The future id of a recorded exchange.
#[derive(Debug)]
pub struct PendingId(Option<oneshot::Receiver<ExchangeId>>);

impl PendingId {
    /// Whether the exchange was accepted into the queue (false: dropped right away).
    pub fn accepted(&self) -> bool {
        self.0.is_some()
    }

    /// Waits for the id; `None` when the exchange was dropped or its write failed.
    pub async fn id(self) -> Option<ExchangeId> {
        match self.0 {
            Some(rx) => rx.await.ok(),
            None => None,
        }
    }

    /// [`PendingId::id`] for a plain thread (panics inside an async runtime, like
    /// `blocking_recv`).
    pub fn blocking_id(self) -> Option<ExchangeId> {
        self.0.and_then(|rx| rx.blocking_recv().ok())
    }
}

enum Cmd {
    Record(Queued),
    Flush(oneshot::Sender<()>),
}

/// An exchange in the queue, with what it counts against the queue's budgets.
struct Queued {
    exchange: Box<Exchange>,
    held: Held,
    id: oneshot::Sender<ExchangeId>,
}

/// Bytes held in the queue: body bytes (the shedding budget) and everything (the bound).
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    bodies: usize,
    total: usize,
}

struct Shared {
    /// Body bytes of the exchanges waiting in the queue.
    queued_bytes: AtomicUsize,
    /// All their bytes (heads, bodies, shed prefixes), as [`head_bytes`] estimates them.
    queued_total: AtomicUsize,
    recorded: AtomicU64,
    batches: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    drop_reported: AtomicBool,
    shed: AtomicU64,
    shed_reported: AtomicBool,
    failing: Mutex<Option<String>>,
    alerts: watch::Sender<Alerts>,
}

/// Handle to the writer. Cheap to clone; the writer thread ends when every clone is dropped
/// (after writing what is queued).
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Cmd>,
    events: broadcast::Sender<NewExchange>,
    shared: Arc<Shared>,
    opts: StoreOptions,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("db", &self.opts.db_path())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Takes what a queued exchange held out of the budgets.
    fn release(&self, held: Held) {
        self.queued_bytes.fetch_sub(held.bodies, Ordering::AcqRel);
        self.queued_total.fetch_sub(held.total, Ordering::AcqRel);
    }
}

impl Recorder {
    /// Opens the store (creating it) and starts the writer thread. Fails only if the database
    /// cannot be opened at all; later write errors are reported through [`Recorder::status`].
    pub fn start(opts: StoreOptions) -> Result<Recorder> {
        let store = Store::open(&opts)?;
        // The writer re-reads little (indexes), and a large cache would only keep the pages
        // of bodies it just wrote: SQLite's 2 MiB default.
        store.set_cache_kib(2048)?;
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let shared = Arc::new(Shared {
            recorded: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            queued_total: AtomicUsize::new(0),
            failed: AtomicU64::new(0),
            drop_reported: AtomicBool::new(false),
            shed: AtomicU64::new(0),
            shed_reported: AtomicBool::new(false),
            failing: Mutex::new(None),
            alerts: watch::Sender::new(Alerts::default()),
        });
        let writer = Writer {
            store,
            rx,
            events: events.clone(),
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("twk-capture-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| {
                crate::CaptureError::io("starting writer thread for", opts.db_path(), e)
            })?;
        Ok(Recorder {
            tx,
            events,
            shared,
            opts,
        })
    }

    /// Queues an exchange for storage without blocking. Past the body budget its bodies are
    /// shed (counted; the first is logged); if the queue is full (by count or by all the
    /// bytes it holds) it is dropped (counted in [`RecorderStatus::dropped`]; the first drop
    /// is logged).
    pub fn record(&self, mut exchange: Exchange) -> PendingId {
        let (id_tx, id_rx) = oneshot::channel();
        let sh = &self.shared;
        let mut bodies = body_bytes(&exchange);
        let mut cut = false;
        let queued = sh.queued_bytes.fetch_add(bodies, Ordering::AcqRel);
        if queued > 0 && queued.saturating_add(bodies) > self.opts.queue_bytes {
            sh.queued_bytes.fetch_sub(bodies, Ordering::AcqRel);
            cut = shed_bodies(&mut exchange);
            bodies = body_bytes(&exchange);
            sh.queued_bytes.fetch_add(bodies, Ordering::AcqRel);
        }
        let held = Held {
            bodies,
            total: bodies.saturating_add(head_bytes(&exchange)),
        };
        let total = sh.queued_total.fetch_add(held.total, Ordering::AcqRel);
        let sent = if total > 0 && total.saturating_add(held.total) > self.opts.queue_max_bytes {
            Err("capture queue is full")
        } else {
            self.tx
                .try_send(Cmd::Record(Queued {
                    exchange: Box::new(exchange),
                    held,
                    id: id_tx,
                }))
                .map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => "capture queue is full",
                    mpsc::error::TrySendError::Closed(_) => "capture writer has stopped",
                })
        };
        match sent {
            Ok(()) => {
                if cut {
                    self.note_shed();
                }
                PendingId(Some(id_rx))
            }
            Err(why) => {
                sh.release(held);
                let (n, first) = self.bump(&sh.dropped, &sh.drop_reported, |a| &mut a.dropped);
                if first {
                    tracing::warn!(
                        dropped = n,
                        "{why}: exchanges are not being recorded (forwarding is unaffected)"
                    );
                }
                PendingId(None)
            }
        }
    }

    /// Adds one to `counter` and publishes it on the alerts watch (`field`); returns the
    /// count and whether it is the first (said once in the log).
    fn bump(
        &self,
        counter: &AtomicU64,
        reported: &AtomicBool,
        field: fn(&mut Alerts) -> &mut u64,
    ) -> (u64, bool) {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.alerts.send_if_modified(|a| {
            let f = field(a);
            let newer = n > *f;
            *f = (*f).max(n);
            newer
        });
        (n, !reported.swap(true, Ordering::Relaxed))
    }

    /// Counts an exchange whose bodies were shed, and says so once.
    fn note_shed(&self) {
        let sh = &self.shared;
        if self.bump(&sh.shed, &sh.shed_reported, |a| &mut a.shed).1 {
            tracing::warn!(
                "capture is behind: exchanges are recorded without their body bytes (head, \
                 length and SHA-256 kept; forwarding is unaffected)"
            );
        }
    }

    /// New exchanges, as they are stored.
    pub fn subscribe(&self) -> broadcast::Receiver<NewExchange> {
        self.events.subscribe()
    }

    /// Waits until everything queued before this call has been written (or failed).
    pub async fn flush(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Cmd::Flush(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
    }

    /// Health and drops as they change (see [`Alerts`]).
    pub fn alerts(&self) -> watch::Receiver<Alerts> {
        self.shared.alerts.subscribe()
    }

    /// Current counters and health.
    pub fn status(&self) -> RecorderStatus {
        let failing = self
            .shared
            .failing
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        RecorderStatus {
            health: match failing {
                Some(message) => Health::Failing { message },
                None => Health::Ok,
            },
            recorded: self.shared.recorded.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            shed: self.shared.shed.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Opens a separate read connection to the same database (for list/get/count).
    pub fn reader(&self) -> Result<Store> {
        Store::open(&self.opts)
    }
}

struct Writer {
    store: Store,
    rx: mpsc::Receiver<Cmd>,
    events: broadcast::Sender<NewExchange>,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self) {
        if let Err(e) = self.store.sweep_body_files() {
            tracing::warn!(error = %twk_sanitize::error_chain(&e), "cannot sweep unused body files");
        }
        let mut batch = Batch::default();
        loop {
            if batch.is_empty() {
                match self.rx.blocking_recv() {
                    Some(cmd) => batch.take(cmd),
                    None => break,
                }
            }
            self.drain(&mut batch);
            let full = batch.exchanges.len() >= MAX_BATCH;
            self.write(&mut batch);
            // After a full batch more is waiting already, and a pause would only let the
            // queue overflow (at c1000 it dropped 4 % of exchanges).
            if !full {
                self.gather(&mut batch);
            }
        }
        tracing::debug!(
            recorded = self.shared.recorded.load(Ordering::Relaxed),
            transactions = self.shared.batches.load(Ordering::Relaxed),
            "capture writer stopping"
        );
    }

    /// Moves what is queued into `batch`, up to [`MAX_BATCH`] exchanges.
    fn drain(&mut self, batch: &mut Batch) {
        while batch.exchanges.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(cmd) => batch.take(cmd),
                Err(_) => break,
            }
        }
    }

    /// Group commit: under load, lets exchanges gather rather than paying a transaction (and
    /// a wake-up) for a few. An idle tunnel's exchange is written at once; the pause comes
    /// after, and ends at the first step that brings nothing, at [`GATHER_ENOUGH`]
    /// exchanges or [`GATHER_BYTES`], at a flush, or after [`GATHER_MAX`].
    fn gather(&mut self, batch: &mut Batch) {
        let start = std::time::Instant::now();
        loop {
            std::thread::sleep(GATHER);
            let before = batch.exchanges.len();
            self.drain(batch);
            if batch.gathered(before, start.elapsed()) {
                return;
            }
        }
    }

    /// Writes `batch` in one transaction, tells its waiters, then answers its flushes.
    fn write(&mut self, batch: &mut Batch) {
        self.write_exchanges(batch);
        for f in batch.flushes.drain(..) {
            let _ = f.send(());
        }
    }

    fn write_exchanges(&mut self, batch: &mut Batch) {
        let n = batch.exchanges.len() as u64;
        let result = if n == 0 {
            Ok(Vec::new())
        } else {
            self.store.insert_batch(&batch.exchanges)
        };
        // Written or failed, the batch's memory is freed and then its bytes leave the budget,
        // before any waiter hears of it: someone told "done" may record again at once.
        batch.exchanges.clear();
        self.shared.release(std::mem::take(&mut batch.held));
        let waiters = &mut batch.waiters;
        if n == 0 {
            return;
        }
        match result {
            Ok(rows) => {
                self.shared.recorded.fetch_add(n, Ordering::Relaxed);
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                let recovered = self
                    .shared
                    .failing
                    .lock()
                    .map(|mut g| g.take())
                    .unwrap_or_else(|p| p.into_inner().take());
                if recovered.is_some() {
                    tracing::info!("capture database writable again: recording resumed");
                    self.shared.alerts.send_modify(|a| a.failing = None);
                }
                for (summary, w) in rows.into_iter().zip(waiters.drain(..)) {
                    let _ = w.send(summary.id);
                    let _ = self.events.send(NewExchange {
                        id: summary.id,
                        summary,
                    });
                }
            }
            Err(e) => {
                self.shared.failed.fetch_add(n, Ordering::Relaxed);
                let message = twk_sanitize::error_chain(&e);
                let mut g = self
                    .shared
                    .failing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if g.is_none() {
                    tracing::error!(
                        error = %message,
                        db = %self.store.options().db_path().display(),
                        "cannot record exchanges (forwarding continues; will retry on the next one)"
                    );
                }
                self.shared.alerts.send_if_modified(|a| {
                    let changed = a.failing.as_deref() != Some(message.as_str());
                    a.failing = Some(message.clone());
                    changed
                });
                *g = Some(message);
                waiters.clear();
            }
        }
    }
}

/// What the writer has taken from the queue and not yet written.
#[derive(Default)]
struct Batch {
    exchanges: Vec<Exchange>,
    /// One per exchange, in the same order.
    waiters: Vec<oneshot::Sender<ExchangeId>>,
    /// Flushes queued behind them, answered once they are written.
    flushes: Vec<oneshot::Sender<()>>,
    /// What the exchanges hold of the queue's budgets.
    held: Held,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.exchanges.is_empty() && self.flushes.is_empty()
    }

    /// Whether gathering ends, with `before` exchanges before the last step and `waited`
    /// since it began.
    fn gathered(&self, before: usize, waited: std::time::Duration) -> bool {
        let n = self.exchanges.len();
        n == before
            || n >= GATHER_ENOUGH
            || self.held.total >= GATHER_BYTES
            || !self.flushes.is_empty()
            || waited >= GATHER_MAX
    }

    fn take(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Record(q) => {
                self.held.bodies += q.held.bodies;
                self.held.total += q.held.total;
                self.exchanges.push(*q.exchange);
                self.waiters.push(q.id);
            }
            Cmd::Flush(f) => self.flushes.push(f),
        }
    }
}

/// Cuts both bodies to [`SHED_KEEP`] bytes (marked truncated; length and hash are of the
/// whole body already) and gives the memory back. True when it cut anything.
fn shed_bodies(ex: &mut Exchange) -> bool {
    let mut cut = false;
    let bodies =
        std::iter::once(&mut ex.request.body).chain(ex.response.as_mut().map(|r| &mut r.body));
    for b in bodies {
        if b.bytes.len() > SHED_KEEP {
            // The hash of the whole is kept: it can only be taken before the bytes go.
            b.ensure_sha256();
            b.bytes.truncate(SHED_KEEP);
            b.bytes.shrink_to_fit();
            b.truncated = true;
            cut = true;
        }
    }
    cut
}

/// Body bytes an exchange holds in memory (what the queue's byte budget counts).
fn body_bytes(ex: &Exchange) -> usize {
    ex.request.body.bytes.len() + ex.response.as_ref().map_or(0, |r| r.body.bytes.len())
}

/// What an exchange holds in memory besides its body bytes, estimated: header names and
/// values, its strings, its analysis (its JSON text: a stranger's form or JSON can make it
/// many times the body's size), and allowances for the allocations around them.
fn head_bytes(ex: &Exchange) -> usize {
    const PER_EXCHANGE: usize = 1024;
    const PER_HEADER: usize = 64;
    let headers = |m: &crate::exchange::Message| -> usize {
        m.headers
            .iter()
            .map(|h| PER_HEADER + h.name.len() + h.value.len())
            .sum()
    };
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    PER_EXCHANGE
        + headers(&ex.request)
        + ex.response.as_ref().map_or(0, headers)
        + ex.tunnel.len()
        + ex.request_id.len()
        + ex.public_url.len()
        + ex.method.len()
        + ex.path.len()
        + ex.target.len()
        + text(&ex.remote_addr)
        + ex.failure.as_ref().map_or(0, |f| f.message.len())
        + text(&ex.provider)
        + text(&ex.event)
        + text(&ex.summary)
        + ex.analysis.as_ref().map_or(0, |a| a.text().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn batch_of(n: usize, bytes: usize) -> Batch {
        Batch {
            exchanges: (0..n).map(|_| Exchange::default()).collect(),
            held: Held {
                bodies: bytes,
                total: bytes,
            },
            ..Batch::default()
        }
    }

    #[test]
    fn gathering_goes_on_while_exchanges_keep_coming() {
        let early = Duration::from_millis(2);
        assert!(!batch_of(10, 10_000).gathered(5, early));
        assert!(!batch_of(GATHER_ENOUGH - 1, 10_000).gathered(1, early));
    }

    #[test]
    fn gathering_ends_when_none_came_enough_came_a_flush_came_or_it_waited_long_enough() {
        let early = Duration::from_millis(2);
        // An idle tunnel: the step brought nothing.
        assert!(batch_of(0, 0).gathered(0, early));
        assert!(batch_of(3, 0).gathered(3, early));
        assert!(batch_of(GATHER_ENOUGH, 0).gathered(1, early));
        assert!(batch_of(2, GATHER_BYTES).gathered(1, early));
        let mut flushed = batch_of(2, 0);
        let (tx, _rx) = oneshot::channel();
        flushed.take(Cmd::Flush(tx));
        assert!(flushed.gathered(1, early));
        assert!(batch_of(10, 0).gathered(5, GATHER_MAX));
    }
}
