//! Slow readers who hold a tunnel's HTTP/2 window, let go of when other answers need it.
//!
//! A tunnel's answers share one connection window (`H2_CONN_WINDOW`, 4 MiB), and an answer
//! holds its part of it (up to its stream window, 1 MiB) until its reader takes it.
//! `stall.rs` ends readers who take nothing for 10 s; readers who took 2 MB every 9 s (a
//! hostile re-check) made enough progress for that, and four of them held the whole
//! window: every other webhook's answer waited ~8 s behind them, for as long as they went on.
//!
//! Here a public connection whose writes are blocked (`stall.rs` says when) and whose answer
//! is large (past [`WATCH_AFTER`]) is a blocked [`Reader`] on its tunnel's [`WindowShare`].
//! When readers blocked for [`BLOCKED_FOR`] together hold more than [`MOST_HELD`], those
//! holding most are evicted until the rest hold less: their connections end, their streams
//! are reset, and h2 gives their share back. That is checked only when another answer has
//! waited [`RECHECK`] for data, so readers are evicted only when someone waits behind them.
//!
//! It is not a rate limit: up to three slow readers are never evicted; more only when
//! other answers wait. Nor can it tell an honest slow download from a stranger's: under
//! such an attack honest slow downloads are cut too (a hostile re-check).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use twk_protocol::limits::H2_CONN_WINDOW;

/// An answer is watched once this much of it has passed: a smaller one cannot hold much.
pub(crate) const WATCH_AFTER: u64 = 64 * 1024;
/// Readers blocked for less are not evicted: a fast reader's socket fills for a moment too.
pub(crate) const BLOCKED_FOR: Duration = Duration::from_secs(1);
/// What blocked readers may hold together: three quarters of the window, so the rest moves
/// on the last quarter. With half, three honest downloads read at 200 KB/s lost one of
/// them (a hostile re-check).
pub(crate) const MOST_HELD: usize = H2_CONN_WINDOW as usize / 4 * 3;
/// How often an answer waiting for data checks, while readers are blocked on its tunnel.
pub(crate) const RECHECK: Duration = Duration::from_millis(250);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One tunnel's blocked readers.
#[derive(Debug, Default)]
pub(crate) struct WindowShare {
    blocked: Mutex<Vec<Blocked>>,
    /// `blocked.len()`, read without the lock by every answer that waits for data.
    count: AtomicUsize,
}

/// A blocked reader as its tunnel sees it.
#[derive(Debug)]
struct Blocked {
    id: u64,
    since: Instant,
    flow: h2::FlowControl,
    evict: CancellationToken,
}

impl WindowShare {
    /// True while any reader is blocked: the only case with anything to check.
    pub(crate) fn any_blocked(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    fn add(&self, b: Blocked) {
        let mut blocked = lock(&self.blocked);
        blocked.retain(|o| o.id != b.id);
        blocked.push(b);
        self.count.store(blocked.len(), Ordering::Release);
    }

    fn remove(&self, id: u64) {
        let mut blocked = lock(&self.blocked);
        blocked.retain(|o| o.id != id);
        self.count.store(blocked.len(), Ordering::Release);
    }

    /// Evicts the readers holding most, of those blocked for [`BLOCKED_FOR`], until those
    /// left hold at most [`MOST_HELD`].
    pub(crate) fn relieve(&self) {
        if !self.any_blocked() {
            return;
        }
        let now = Instant::now();
        let mut blocked = lock(&self.blocked);
        let mut held: Vec<(usize, usize)> = blocked
            .iter()
            .enumerate()
            .filter(|(_, b)| now.saturating_duration_since(b.since) >= BLOCKED_FOR)
            .map(|(i, b)| (b.flow.used_capacity(), i))
            .collect();
        let mut total: usize = held.iter().map(|(n, _)| n).sum();
        if total <= MOST_HELD {
            return;
        }
        held.sort_unstable_by(|a, b| b.cmp(a));
        let mut gone = Vec::new();
        for (n, i) in held {
            if total <= MOST_HELD {
                break;
            }
            total -= n;
            gone.push(i);
        }
        gone.sort_unstable_by(|a, b| b.cmp(a));
        for i in &gone {
            let b = blocked.swap_remove(*i);
            tracing::debug!(
                held = b.flow.used_capacity(),
                "a blocked reader evicted: readers blocked together held over three quarters of the tunnel's window"
            );
            b.evict.cancel();
        }
        self.count.store(blocked.len(), Ordering::Release);
    }
}

/// One public connection as a reader of its answers.
#[derive(Debug)]
pub(crate) struct Reader {
    id: u64,
    evict: CancellationToken,
    state: Mutex<ReaderState>,
}

#[derive(Debug, Default)]
struct ReaderState {
    /// The answer being written, once large enough to watch, and its tunnel.
    answer: Option<(h2::FlowControl, Arc<WindowShare>)>,
    /// Since when its writes have found the socket full.
    blocked_since: Option<Instant>,
}

static NEXT_READER: AtomicU64 = AtomicU64::new(0);

impl Reader {
    pub(crate) fn new() -> Arc<Reader> {
        Arc::new(Reader {
            id: NEXT_READER.fetch_add(1, Ordering::Relaxed),
            evict: CancellationToken::new(),
            state: Mutex::default(),
        })
    }

    /// Cancelled when this connection is evicted: it is to end.
    pub(crate) fn evicted(&self) -> &CancellationToken {
        &self.evict
    }

    fn register(&self, s: &ReaderState) {
        if let (Some((flow, share)), Some(since)) = (&s.answer, s.blocked_since) {
            share.add(Blocked {
                id: self.id,
                since,
                flow: flow.clone(),
                evict: self.evict.clone(),
            });
        }
    }

    /// The answer being written is large: watch it (its window, and its tunnel).
    pub(crate) fn watch(&self, flow: h2::FlowControl, share: Arc<WindowShare>) {
        let mut s = lock(&self.state);
        if let Some((_, old)) = s.answer.take() {
            old.remove(self.id);
        }
        s.answer = Some((flow, share));
        self.register(&s);
    }

    /// The watched answer is over.
    pub(crate) fn unwatch(&self) {
        if let Some((_, share)) = lock(&self.state).answer.take() {
            share.remove(self.id);
        }
    }

    /// A write found the socket full.
    pub(crate) fn blocked(&self) {
        let mut s = lock(&self.state);
        s.blocked_since = Some(Instant::now());
        self.register(&s);
    }

    /// A write made progress again.
    pub(crate) fn unblocked(&self) {
        let mut s = lock(&self.state);
        s.blocked_since = None;
        if let Some((_, share)) = &s.answer {
            share.remove(self.id);
        }
    }
}
