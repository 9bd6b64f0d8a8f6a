//! The SHA-256 of bodies a [`Tap`](crate::Tap) no longer copies, taken on a thread of its own
//! so that recording does not slow forwarding.
//!
//! A tap's copy is cut short when the capture cap or the capture budget is reached; the body
//! keeps streaming, and its hash must still cover every byte. Hashed where it streamed, it
//! cost the forwarding thread ~0.5 ms per MiB (SHA-256 runs at ~2 GB/s even with SHA-NI):
//! 30 % of that thread's time under 16 concurrent 1 MiB POSTs, whose copies spend the budget.
//! Here the tap hands each chunk (a reference-counted [`Bytes`], not a copy) to a hashing
//! thread instead, which takes the bodies in turns of at most [`TURN_BYTES`].
//!
//! The chunks waiting for that thread are bounded in bytes ([`QUEUE_BYTES`]). Past the bound a
//! tap hashes its body's backlog and the new chunk itself, in order, waiting at most for the
//! thread's turn on that body to end: memory stays bounded and the digest exact, and
//! forwarding pays for hashing only while the thread is behind. The count is of the chunks' lengths; a chunk may keep a larger
//! receive buffer alive until it is hashed.
//!
//! The thread starts with the first body cut short, so an idle client does not have it.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};

/// Bytes of chunks that may wait for the hashing thread, over all bodies.
pub(crate) const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Bytes of one body the thread hashes before it turns to the next (~0.1 ms of SHA-256).
const TURN_BYTES: usize = 256 * 1024;

/// Larger chunks are queued in pieces of this size, so a turn stays near [`TURN_BYTES`].
const PIECE_BYTES: usize = 64 * 1024;

/// Receives a body's hex digest once the body has ended and every chunk of it is hashed.
pub(crate) type OnDigest = Box<dyn FnOnce(String) + Send>;

/// The hashing thread, started when the first body needs it (an idle client has none);
/// cheap to clone.
#[derive(Clone)]
pub struct BodyHasher {
    thread: Arc<OnceLock<Option<Queue>>>,
    bound: usize,
}

/// The hashing thread's queue of bodies with chunks waiting.
#[derive(Clone)]
struct Queue {
    jobs: mpsc::Sender<Arc<Stream>>,
    queued: Arc<AtomicUsize>,
    bound: usize,
}

/// One body's hash in progress.
pub(crate) struct StreamHash {
    stream: Arc<Stream>,
    queue: Queue,
}

/// Two locks, always taken in this order: `sha` is held while hashing, so a tap pushing a
/// chunk (`waiting` only) never waits for a hash.
struct Stream {
    sha: Mutex<Sha256>,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    /// Chunks not hashed yet, in body order.
    chunks: VecDeque<Bytes>,
    /// In the thread's queue (sent, and its turns not over).
    scheduled: bool,
    /// Set when the body ended while it was scheduled.
    on_digest: Option<OnDigest>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // Only if the thread died with this body queued: the exchange is still reported,
        // its digest unknown (empty) rather than wrong.
        if let Some(report) = self.on_digest.take() {
            report(String::new());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BodyHasher {
    /// A hashing thread with at most `bound` bytes waiting for it, not started yet.
    pub fn new(bound: usize) -> BodyHasher {
        BodyHasher {
            thread: Arc::new(OnceLock::new()),
            bound,
        }
    }

    /// A body's hash, taken on the hashing thread; `None` if the thread could not be started
    /// (the caller then hashes where the body streams).
    pub(crate) fn stream(&self) -> Option<StreamHash> {
        let queue = self
            .thread
            .get_or_init(|| Queue::start(self.bound))
            .as_ref()?;
        Some(StreamHash {
            stream: Arc::new(Stream {
                sha: Mutex::new(Sha256::new()),
                waiting: Mutex::new(Waiting::default()),
            }),
            queue: queue.clone(),
        })
    }

    /// Bytes waiting for the hashing thread.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.thread
            .get()
            .and_then(Option::as_ref)
            .map_or(0, |q| q.queued.load(Ordering::Relaxed))
    }
}

impl Queue {
    fn start(bound: usize) -> Option<Queue> {
        let (jobs, rx) = mpsc::channel::<Arc<Stream>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let started = std::thread::Builder::new()
            .name("twk-hash".into())
            .spawn(move || run(&rx, &counter));
        match started {
            Ok(_) => Some(Queue {
                jobs,
                queued,
                bound,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no hashing thread: bodies cut short are hashed inline");
                None
            }
        }
    }

    /// Counts `n` more bytes as waiting, if that stays within the bound.
    fn reserve(&self, n: usize) -> bool {
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) <= self.bound {
            return true;
        }
        self.queued.fetch_sub(n, Ordering::Relaxed);
        false
    }
}

/// The hashing thread: bodies take turns, so one long body delays no other's digest by more
/// than a turn per body waiting.
fn run(jobs: &mpsc::Receiver<Arc<Stream>>, queued: &AtomicUsize) {
    let mut turns: VecDeque<Arc<Stream>> = VecDeque::new();
    loop {
        turns.extend(jobs.try_iter());
        let stream = match turns.pop_front() {
            Some(s) => s,
            None => match jobs.recv() {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        // A panic (none is known) costs that body its digest, reported empty when the last
        // reference to it goes, not the thread.
        let more = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| turn(&stream, queued)));
        if more.unwrap_or(false) {
            turns.push_back(stream);
        }
    }
}

/// Hashes up to [`TURN_BYTES`] of what `stream` has waiting; `true` if more is left. When
/// nothing is left and the body has ended, reports its digest.
fn turn(stream: &Stream, queued: &AtomicUsize) -> bool {
    let mut sha = lock(&stream.sha);
    let mut done = 0;
    loop {
        let mut w = lock(&stream.waiting);
        let next = if done < TURN_BYTES {
            w.chunks.pop_front()
        } else {
            None
        };
        let Some(chunk) = next else {
            if !w.chunks.is_empty() {
                return true;
            }
            w.scheduled = false;
            let report = w.on_digest.take();
            drop(w);
            if let Some(report) = report {
                let digest = std::mem::take(&mut *sha).finalize();
                drop(sha);
                report(twk_capture::lower_hex(&digest));
            }
            return false;
        };
        drop(w);
        sha.update(&chunk);
        done += chunk.len();
        queued.fetch_sub(chunk.len(), Ordering::Relaxed);
    }
}

impl StreamHash {
    /// Adds the body's next chunk.
    pub(crate) fn update(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if !self.queue.reserve(chunk.len()) {
            return self.hash_here(&chunk);
        }
        self.push(chunk);
    }

    /// Adds bytes the caller holds only by reference: copied for the thread when it has
    /// room, else hashed here without the copy.
    pub(crate) fn update_slice(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.queue.reserve(data.len()) {
            self.push(Bytes::copy_from_slice(data));
        } else {
            self.hash_here(data);
        }
    }

    /// Queues `chunk` (its bytes already reserved) in pieces no larger than [`PIECE_BYTES`],
    /// so that a turn ends near [`TURN_BYTES`]; schedules the body.
    fn push(&self, mut chunk: Bytes) {
        let mut w = lock(&self.stream.waiting);
        while chunk.len() > PIECE_BYTES {
            w.chunks.push_back(chunk.split_to(PIECE_BYTES));
        }
        w.chunks.push_back(chunk);
        if !w.scheduled {
            w.scheduled = true;
            if self.queue.jobs.send(self.stream.clone()).is_err() {
                w.scheduled = false;
                drop(w);
                self.hash_here(&[]);
            }
        }
    }

    /// Hashes the backlog, then `data`, here (after the thread's turn on this body, if any).
    fn hash_here(&self, data: &[u8]) {
        let mut sha = lock(&self.stream.sha);
        let backlog = std::mem::take(&mut lock(&self.stream.waiting).chunks);
        let mut n = 0;
        for c in &backlog {
            sha.update(c);
            n += c.len();
        }
        self.queue.queued.fetch_sub(n, Ordering::Relaxed);
        sha.update(data);
    }

    /// The body has ended: `report` receives its digest, here if the body is not in the
    /// thread's queue, else from the thread once the rest is hashed.
    pub(crate) fn end(self, report: OnDigest) {
        let mut w = lock(&self.stream.waiting);
        if w.scheduled {
            w.on_digest = Some(report);
            return;
        }
        drop(w);
        self.hash_here(&[]);
        let digest = std::mem::take(&mut *lock(&self.stream.sha)).finalize();
        report(twk_capture::lower_hex(&digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_via(h: &BodyHasher, chunks: &[Bytes]) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = h.stream().expect("thread");
        for c in chunks {
            s.update(c.clone());
        }
        s.end(Box::new(move |d| {
            let _ = tx.send(d);
        }));
        rx
    }

    fn chunks(n: usize, size: usize, seed: u8) -> (Vec<Bytes>, String) {
        let all: Vec<Bytes> = (0..n)
            .map(|i| Bytes::from(vec![seed.wrapping_add(i as u8); size + i]))
            .collect();
        let mut sha = Sha256::new();
        for c in &all {
            sha.update(c);
        }
        (all, hex::encode(sha.finalize()))
    }

    #[test]
    fn a_body_hashed_on_the_thread_has_the_digest_of_its_bytes_in_order() {
        let h = BodyHasher::new(QUEUE_BYTES);
        let bodies: Vec<_> = (0..8).map(|i| chunks(40, 3000, i * 31)).collect();
        let pending: Vec<_> = bodies.iter().map(|(c, _)| digest_via(&h, c)).collect();
        for ((_, want), rx) in bodies.iter().zip(pending) {
            assert_eq!(&rx.recv().expect("digest"), want);
        }
        assert_eq!(h.queued(), 0, "every queued byte was hashed and uncounted");
    }

    #[test]
    fn a_body_longer_than_a_turn_loses_no_chunk_and_one_beside_it_is_exact() {
        let h = BodyHasher::new(QUEUE_BYTES);
        // 3.5 MiB in 64 KiB chunks: fourteen turns.
        let (long, long_want) = chunks(56, 64 * 1024, 3);
        let (short, short_want) = chunks(2, 1000, 9);
        let l = h.stream().expect("thread");
        for c in &long {
            l.update(c.clone());
        }
        let short_rx = digest_via(&h, &short);
        let (tx, long_rx) = std::sync::mpsc::channel();
        l.end(Box::new(move |d| {
            let _ = tx.send(d);
        }));
        assert_eq!(short_rx.recv().expect("digest"), short_want);
        assert_eq!(long_rx.recv().expect("digest"), long_want);
        assert_eq!(h.queued(), 0);
    }

    #[test]
    fn past_the_bound_the_tap_hashes_the_backlog_itself_and_the_digest_is_the_same() {
        // A bound smaller than one chunk: every chunk is hashed by the caller.
        let h = BodyHasher::new(100);
        let (c, want) = chunks(20, 5000, 7);
        let s = h.stream().expect("thread");
        for x in &c {
            s.update(x.clone());
            assert!(
                h.queued() <= 100,
                "held {} bytes past the bound",
                h.queued()
            );
        }
        let (tx, rx) = std::sync::mpsc::channel();
        s.end(Box::new(move |d| {
            let _ = tx.send(d);
        }));
        assert_eq!(rx.recv().expect("digest"), want);
    }

    #[test]
    fn bodies_from_many_threads_at_once_are_each_hashed_exactly() {
        let h = BodyHasher::new(64 * 1024);
        let workers: Vec<_> = (0..6u8)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for j in 0..20u8 {
                        let (c, want) = chunks(16, 2048, i.wrapping_mul(50).wrapping_add(j));
                        assert_eq!(digest_via(&h, &c).recv().expect("digest"), want);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        assert_eq!(h.queued(), 0);
    }

    #[test]
    fn an_empty_rest_gives_the_digest_of_the_prefix() {
        let h = BodyHasher::new(QUEUE_BYTES);
        assert!(
            h.thread.get().is_none(),
            "started before any body needed it"
        );
        let s = h.stream().expect("thread");
        s.update_slice(b"prefix");
        s.update(Bytes::new());
        let (tx, rx) = std::sync::mpsc::channel();
        s.end(Box::new(move |d| {
            let _ = tx.send(d);
        }));
        assert_eq!(
            rx.recv().expect("digest"),
            hex::encode(Sha256::digest(b"prefix"))
        );
    }
}
