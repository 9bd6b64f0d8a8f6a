//! The SHA-256 of bodies a [`Tap`](crate::Tap) no longer copies, taken on a thread of its own
//! so that recording does not slow forwarding.
//!
//! A tap's copy is cut short when the capture cap or the capture budget is reached; the body
//! keeps streaming, and its hash must still cover every byte. Hashed where it streamed, it
//! cost the forwarding thread ~0.5 ms per MiB (SHA-256 runs at ~2 GB/s even with SHA-NI):
//! 30 % of that thread's time under 16 concurrent 1 MiB POSTs, whose copies spend the budget.
//! Here the tap hands each chunk (a reference-counted [`Bytes`], not a copy) to the hashing
//! thread instead.
//!
//! The chunks waiting for that thread are bounded in bytes ([`QUEUE_BYTES`]). Past the bound a
//! tap hashes its body's backlog and the new chunk itself, in order: memory stays bounded and
//! the hash exact, and forwarding pays for hashing only while the hashing thread is behind.
//! The one exception is the body the thread is hashing at that moment: its chunks still
//! queue, since its hash is on the thread, and the thread is already draining them.
//!
//! The thread starts with the first body cut short, so an idle client does not have it.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};

/// Bytes of chunks that may wait for the hashing thread, over all bodies.
pub(crate) const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Receives a body's hex digest once the body has ended and every chunk of it is hashed.
pub(crate) type OnDigest = Box<dyn FnOnce(String) + Send>;

/// The hashing thread, started when the first body needs it (an idle client has none);
/// cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    thread: Arc<OnceLock<Option<Queue>>>,
    bound: usize,
}

/// The hashing thread's queue.
#[derive(Clone)]
struct Queue {
    jobs: mpsc::Sender<Arc<Stream>>,
    queued: Arc<AtomicUsize>,
    bound: usize,
}

/// One body's hash in progress.
pub(crate) struct StreamHash {
    stream: Arc<Stream>,
    hasher: Queue,
}

pub(crate) struct Stream {
    state: Mutex<State>,
}

struct State {
    /// The running hash; `None` while the hashing thread works on it.
    sha: Option<Sha256>,
    /// Chunks not hashed yet, in body order.
    chunks: VecDeque<Bytes>,
    /// Sent to the hashing thread and not finished there yet.
    scheduled: bool,
    /// Set when the body has ended while chunks were still waiting.
    on_digest: Option<OnDigest>,
}

fn lock(stream: &Stream) -> MutexGuard<'_, State> {
    stream.state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hasher {
    /// A hashing thread with at most `bound` bytes waiting for it, not started yet.
    pub fn new(bound: usize) -> Hasher {
        Hasher {
            thread: Arc::new(OnceLock::new()),
            bound,
        }
    }

    /// Continues `sha` (what was hashed so far) on the hashing thread; `None` if the thread
    /// could not be started (the caller then hashes where the body streams).
    pub(crate) fn stream(&self, sha: Sha256) -> Option<StreamHash> {
        let queue = self
            .thread
            .get_or_init(|| Queue::start(self.bound))
            .as_ref()?;
        Some(StreamHash {
            stream: Arc::new(Stream {
                state: Mutex::new(State {
                    sha: Some(sha),
                    chunks: VecDeque::new(),
                    scheduled: false,
                    on_digest: None,
                }),
            }),
            hasher: queue.clone(),
        })
    }

    /// Bytes waiting for the hashing thread.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.thread
            .get()
            .and_then(Option::as_ref)
            .map_or(0, |q| q.queued.load(Ordering::Acquire))
    }
}

impl Queue {
    fn start(bound: usize) -> Option<Queue> {
        let (jobs, rx) = mpsc::channel::<Arc<Stream>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let started = std::thread::Builder::new()
            .name("twk-hash".into())
            .spawn(move || {
                for stream in rx {
                    work_on(&stream, &counter);
                }
            });
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
}

/// Hashes what `stream` has waiting until nothing is left; reports the digest if the body
/// has ended.
fn work_on(stream: &Stream, queued: &AtomicUsize) {
    loop {
        let (mut sha, chunks) = {
            let mut s = lock(stream);
            let Some(sha) = s.sha.take() else { return };
            (sha, std::mem::take(&mut s.chunks))
        };
        let mut n = 0;
        for c in &chunks {
            sha.update(c);
            n += c.len();
        }
        queued.fetch_sub(n, Ordering::AcqRel);
        let mut s = lock(stream);
        if !s.chunks.is_empty() {
            s.sha = Some(sha);
            continue;
        }
        s.scheduled = false;
        match s.on_digest.take() {
            Some(report) => {
                drop(s);
                report(hex::encode(sha.finalize()));
            }
            None => s.sha = Some(sha),
        }
        return;
    }
}

impl StreamHash {
    /// Adds the body's next chunk.
    pub(crate) fn update(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let h = &self.hasher;
        let mut s = lock(&self.stream);
        let waiting = h.queued.load(Ordering::Acquire);
        if waiting.saturating_add(chunk.len()) > h.bound && s.sha.is_some() {
            // Behind: this body's backlog and chunk are hashed here, in order.
            hash_backlog(&mut s, h);
            if let Some(sha) = &mut s.sha {
                sha.update(&chunk);
            }
            return;
        }
        h.queued.fetch_add(chunk.len(), Ordering::AcqRel);
        s.chunks.push_back(chunk);
        if !s.scheduled {
            s.scheduled = true;
            if h.jobs.send(self.stream.clone()).is_err() {
                s.scheduled = false;
                hash_backlog(&mut s, h);
            }
        }
    }

    /// The body has ended: `report` receives its digest, here if nothing is waiting, else on
    /// the hashing thread once the rest is hashed.
    pub(crate) fn end(self, report: OnDigest) {
        let mut s = lock(&self.stream);
        if s.scheduled {
            s.on_digest = Some(report);
            return;
        }
        // Not scheduled: nothing is waiting and the hash is here.
        hash_backlog(&mut s, &self.hasher);
        let sha = s.sha.take().unwrap_or_default();
        drop(s);
        report(hex::encode(sha.finalize()));
    }
}

/// Hashes the chunks waiting in `s`, here (its hash must be present).
fn hash_backlog(s: &mut State, h: &Queue) {
    let Some(sha) = &mut s.sha else { return };
    let mut n = 0;
    for c in s.chunks.drain(..) {
        sha.update(&c);
        n += c.len();
    }
    h.queued.fetch_sub(n, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_via(h: &Hasher, chunks: &[Bytes]) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = h.stream(Sha256::new()).expect("thread");
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
        let h = Hasher::new(QUEUE_BYTES);
        let bodies: Vec<_> = (0..8).map(|i| chunks(40, 3000, i * 31)).collect();
        let pending: Vec<_> = bodies.iter().map(|(c, _)| digest_via(&h, c)).collect();
        for ((_, want), rx) in bodies.iter().zip(pending) {
            assert_eq!(&rx.recv().expect("digest"), want);
        }
        assert_eq!(h.queued(), 0, "every queued byte was hashed and uncounted");
    }

    #[test]
    fn past_the_bound_the_tap_hashes_the_backlog_itself_and_the_digest_is_the_same() {
        // A bound smaller than one chunk: every chunk is hashed by the caller.
        let h = Hasher::new(100);
        let (c, want) = chunks(20, 5000, 7);
        let s = h.stream(Sha256::new()).expect("thread");
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
        let h = Hasher::new(64 * 1024);
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
        let h = Hasher::new(QUEUE_BYTES);
        assert!(
            h.thread.get().is_none(),
            "started before any body needed it"
        );
        let mut sha = Sha256::new();
        sha.update(b"prefix");
        let s = h.stream(sha).expect("thread");
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
