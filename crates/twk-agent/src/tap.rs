//! A body that streams through unchanged while keeping a capped copy and a SHA-256.

use crate::hasher::{BodyHasher, StreamHash};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use twk_capture::CapturedBody;

/// What a [`Tap`] saw.
#[derive(Debug)]
pub struct TapResult {
    /// The captured prefix, total length and hash.
    pub body: CapturedBody,
    /// True when the body reached its end (false: dropped or failed midway).
    pub complete: bool,
    /// The error that ended the body, if any.
    pub error: Option<BodyFault>,
    /// The copy's bytes, still counted against the tap's budget until this is dropped.
    pub lease: Lease,
}

/// Why a body ended before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFault {
    /// The relay cut the sender's body off as it passed the relay's cap (the sender got
    /// 413; [`twk_protocol::reset::BODY_OVER_CAP`]).
    OverRelayCap,
    /// Anything else, as its error says.
    Broken(String),
}

impl BodyFault {
    fn of(e: &(dyn std::error::Error + 'static)) -> Self {
        let over_cap = h2::Reason::from(twk_protocol::reset::BODY_OVER_CAP);
        let reset = std::iter::successors(Some(e), |e| e.source())
            .find_map(|e| e.downcast_ref::<h2::Error>()?.reason());
        if reset == Some(over_cap) {
            BodyFault::OverRelayCap
        } else {
            BodyFault::Broken(e.to_string())
        }
    }
}

impl std::fmt::Display for BodyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyFault::OverRelayCap => f.write_str(
                "the relay cut it off: over its cap (--max-body: twk-tunnel's with its embedded \
                     relay, twk-relay's on a remote one)",
            ),
            BodyFault::Broken(e) => f.write_str(e),
        }
    }
}

/// Bytes drawn from a [`CaptureBudget`], given back when dropped. A captured copy counts
/// from the first byte the tap keeps until the exchange holding it has been handed on (to the
/// store's queue, which bounds its own bytes, or to the printer), so every stage in between
/// (the wait for the other body, the signature check) is inside the one bound.
#[derive(Debug, Default)]
pub struct Lease {
    budget: Option<CaptureBudget>,
    bytes: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.bytes);
        }
    }
}

/// When a [`Tap`] takes the body's SHA-256.
enum Hash {
    /// Never (nothing reads it).
    Off,
    /// Not yet: the copy holds the whole body so far, so it can be hashed after the body is
    /// forwarded (the agent does, before it reports the exchange).
    Deferred,
    /// While streaming, since the copy fell short.
    Running(Sha256),
    /// On the hashing thread, since the copy fell short.
    Streaming(StreamHash),
}

/// Streams `inner` through untouched; reports a [`TapResult`] once, when the body ends, fails,
/// or is dropped.
pub struct Tap<B> {
    inner: B,
    cap: usize,
    buf: Vec<u8>,
    len: u64,
    /// The SHA-256, taken while streaming only once the copy is cut short.
    hash: Hash,
    done: Option<oneshot::Sender<TapResult>>,
    budget: Option<CaptureBudget>,
    /// Capacity granted for the copy (from the budget when there is one); `buf` never
    /// outgrows it, so the budget counts the memory actually held.
    allowance: usize,
    /// Where the rest of a body cut short is hashed (`None`: here, as it streams).
    hasher: Option<BodyHasher>,
    /// The body had ended before it was wrapped (a GET's): dropped unread, it is still whole.
    empty: bool,
}

/// Bytes that all captured copies together may hold until handed on (see [`Lease`]), so that
/// many concurrent large bodies cannot grow the client's memory: when the budget is spent,
/// further bytes stream through uncopied (the capture is marked truncated; length and hash
/// stay exact) and forwarding never waits for it.
#[derive(Clone, Debug)]
pub struct CaptureBudget(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl CaptureBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        CaptureBudget(std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(
            bytes,
        )))
    }

    /// Takes up to `want` bytes; returns how many were granted.
    fn take(&self, want: usize) -> usize {
        use std::sync::atomic::Ordering;
        let mut avail = self.0.load(Ordering::Relaxed);
        loop {
            let take = want.min(avail);
            if take == 0 {
                return 0;
            }
            match self.0.compare_exchange_weak(
                avail,
                avail - take,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(now) => avail = now,
            }
        }
    }

    fn give_back(&self, n: usize) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::AcqRel);
    }

    /// Bytes currently available.
    pub fn available(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<B> Tap<B> {
    /// Wraps `inner`, keeping at most `cap` bytes.
    pub fn new(inner: B, cap: usize) -> (Self, oneshot::Receiver<TapResult>)
    where
        B: Body,
    {
        let (tx, rx) = oneshot::channel();
        (
            Tap {
                empty: inner.is_end_stream(),
                inner,
                cap,
                buf: Vec::new(),
                len: 0,
                hash: Hash::Deferred,
                done: Some(tx),
                budget: None,
                allowance: 0,
                hasher: None,
            },
            rx,
        )
    }

    /// Leaves the SHA-256 out, even of a body cut short: for when nothing reads it.
    pub fn without_hash(mut self) -> Self {
        self.hash = Hash::Off;
        self
    }

    /// Draws the copy from a shared budget (returned when the tap finishes).
    pub fn with_budget(mut self, budget: CaptureBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Hashes the rest of a body cut short on `hasher`'s thread rather than as it streams.
    pub fn with_hasher(mut self, hasher: BodyHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    fn finish(&mut self, complete: bool, error: Option<BodyFault>) {
        let Some(tx) = self.done.take() else { return };
        let lease = Lease {
            budget: self.budget.clone(),
            bytes: self.allowance,
        };
        let truncated = self.len > self.buf.len() as u64;
        let mut result = TapResult {
            body: CapturedBody {
                bytes: std::mem::take(&mut self.buf),
                len: self.len,
                sha256: String::new(),
                truncated,
            },
            complete,
            error,
            lease,
        };
        match std::mem::replace(&mut self.hash, Hash::Off) {
            Hash::Running(h) => result.body.sha256 = twk_capture::lower_hex(&h.finalize()),
            Hash::Streaming(s) => {
                // Reported once the hashing thread has the rest: the exchange waits for it.
                return s.end(Box::new(move |sha256| {
                    result.body.sha256 = sha256;
                    let _ = tx.send(result);
                }));
            }
            Hash::Off | Hash::Deferred => {}
        }
        let _ = tx.send(result);
    }

    /// Copies what the cap and the allowance let through of `data` (already counted in
    /// `len`); `rest` is how many more body bytes are announced.
    fn keep(&mut self, data: &[u8], rest: u64) {
        let want = data.len().min(self.cap.saturating_sub(self.buf.len()));
        // Once a byte was refused (the copy is shorter than what came before), copy no
        // more: the capture stays a prefix.
        let refused = (self.buf.len() as u64) < self.len - data.len() as u64;
        if refused || want == 0 {
            return;
        }
        if self.buf.len() + want > self.allowance {
            self.grow(want, rest);
        }
        let n = want.min(self.allowance - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
    }

    /// Hashes `data` if the hash is running; starts it (over the copy so far, which was
    /// complete, then `data`) the moment the copy falls short of the body. A complete copy is
    /// hashed once the exchange is done, a large one on the analysis thread: for 1 MiB bodies
    /// the hash was 41 % of the forwarding thread's time.
    ///
    /// With a [`BodyHasher`], the rest is hashed on its thread: the chunks are handed over by
    /// reference, and the copy so far is copied for it when it has room (a tenth of what
    /// hashing it costs).
    fn hash_on(&mut self, copied_before: usize, data: &Bytes) {
        match &mut self.hash {
            Hash::Off => {}
            Hash::Running(h) => h.update(data),
            Hash::Streaming(s) => s.update(data.clone()),
            Hash::Deferred if (self.buf.len() as u64) < self.len => {
                self.hash = match self.hasher.as_ref().and_then(BodyHasher::stream) {
                    Some(s) => {
                        s.update_slice(&self.buf[..copied_before]);
                        s.update(data.clone());
                        Hash::Streaming(s)
                    }
                    None => {
                        let mut h = Sha256::new();
                        h.update(&self.buf[..copied_before]);
                        h.update(data);
                        Hash::Running(h)
                    }
                };
            }
            Hash::Deferred => {}
        }
    }

    /// Raises the allowance for `want` more bytes: to the announced length the first time,
    /// else by doubling (chunked bodies), within the cap and what the budget grants.
    fn grow(&mut self, want: usize, rest: u64) {
        let needed = self.buf.len() + want;
        let announced = needed.saturating_add(usize::try_from(rest).unwrap_or(usize::MAX));
        let target = needed
            .max(announced)
            .max(self.allowance.saturating_mul(2))
            .min(self.cap);
        let extra = target.saturating_sub(self.allowance);
        let granted = match &self.budget {
            Some(b) => b.take(extra),
            None => extra,
        };
        self.allowance += granted;
        self.buf.reserve_exact(self.allowance - self.buf.len());
    }
}

impl<B> Drop for Tap<B> {
    fn drop(&mut self) {
        // A body with nothing to read (a GET's) is dropped unread, and is whole: a request
        // sent again after the app closed a reused connection needs to know it is.
        self.finish(self.empty, None);
    }
}

impl<B> Body for Tap<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let before = this.buf.len();
                    this.len += data.len() as u64;
                    let rest = this.inner.size_hint().lower();
                    this.keep(data, rest);
                    this.hash_on(before, data);
                }
                // Trailers are a body's last frame: whoever forwards them polls no further,
                // so the body is whole here or never said to be.
                if frame.is_trailers() || this.inner.is_end_stream() {
                    this.finish(true, None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false, Some(BodyFault::of(&e)));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(true, None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn passes_bytes_through_and_caps_the_copy() {
        let data = Bytes::from(vec![b'x'; 10_000]);
        let (tap, rx) = Tap::new(Full::new(data.clone()), 100);
        let out = tap.collect().await.unwrap().to_bytes();
        assert_eq!(out, data);
        let r = rx.await.unwrap();
        assert!(r.complete);
        assert_eq!(r.body.len, 10_000);
        assert_eq!(r.body.bytes.len(), 100);
        assert!(r.body.truncated);
        assert_eq!(r.body.sha256, hex::encode(Sha256::digest(&data)));
    }

    /// A body of several frames.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn chunks(data: &[u8], size: usize) -> Chunks {
        Chunks(data.chunks(size).map(Bytes::copy_from_slice).collect())
    }

    #[tokio::test]
    async fn a_complete_copy_leaves_its_hash_to_the_store_and_a_cut_one_is_hashed_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let whole = hex::encode(Sha256::digest(&data));

        let (tap, rx) = Tap::new(chunks(&data, 1000), 1 << 20);
        assert_eq!(tap.collect().await.unwrap().to_bytes(), data);
        let mut r = rx.await.unwrap();
        assert_eq!(
            (r.body.bytes.as_slice(), r.body.truncated),
            (&data[..], false)
        );
        assert_eq!(r.body.sha256, "", "hashed on the forwarding path");
        r.body.ensure_sha256();
        assert_eq!(r.body.sha256, whole);

        // The cap falls inside the fourth frame, and the budget inside the second.
        let (tap, rx) = Tap::new(chunks(&data, 1000), 3_500);
        tap.collect().await.unwrap();
        let r = rx.await.unwrap();
        assert_eq!((r.body.bytes.len(), r.body.truncated), (3_500, true));
        assert_eq!(r.body.sha256, whole);
        let (tap, rx) = Tap::new(chunks(&data, 1000), 1 << 20);
        tap.with_budget(CaptureBudget::new(1_500))
            .collect()
            .await
            .unwrap();
        let r = rx.await.unwrap();
        assert!(r.body.truncated && r.body.bytes.len() <= 1_500);
        assert_eq!(r.body.sha256, whole);
    }

    #[tokio::test]
    async fn a_cut_body_hashed_on_the_hashing_thread_has_the_whole_bodys_digest() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13) as u8).collect();
        let whole = hex::encode(Sha256::digest(&data));
        let hasher = BodyHasher::new(crate::hasher::QUEUE_BYTES);
        // Cut by the cap, by the budget, and with a bound so small that the tap hashes it.
        for (cap, budget, bound) in [
            (3_500, 1 << 20, crate::hasher::QUEUE_BYTES),
            (1 << 20, 1_500, crate::hasher::QUEUE_BYTES),
            (3_500, 1 << 20, 10),
        ] {
            let hasher = if bound == 10 {
                BodyHasher::new(bound)
            } else {
                hasher.clone()
            };
            let (tap, rx) = Tap::new(chunks(&data, 1000), cap);
            let tap = tap
                .with_budget(CaptureBudget::new(budget))
                .with_hasher(hasher);
            assert_eq!(tap.collect().await.unwrap().to_bytes(), data);
            let r = rx.await.unwrap();
            assert!(r.complete && r.body.truncated && r.body.len == data.len() as u64);
            assert_eq!(
                r.body.sha256, whole,
                "cap {cap}, budget {budget}, bound {bound}"
            );
        }
        // A body dropped midway still reports, with the digest of what went through.
        let (tap, rx) = Tap::new(chunks(&data, 1000), 2_000);
        let mut tap = tap.with_hasher(hasher);
        for _ in 0..5 {
            tap.frame().await.unwrap().unwrap();
        }
        drop(tap);
        let r = rx.await.unwrap();
        assert!(!r.complete);
        assert_eq!(r.body.sha256, hex::encode(Sha256::digest(&data[..5_000])));
    }

    #[tokio::test]
    async fn without_hash_the_copy_and_length_are_the_same_and_the_hash_is_left_empty() {
        let data = Bytes::from((0..70_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let (tap, rx) = Tap::new(Full::new(data.clone()), 1 << 20);
        let out = tap.without_hash().collect().await.unwrap().to_bytes();
        assert_eq!(out, data);
        let r = rx.await.unwrap();
        assert_eq!((r.body.len, r.body.truncated), (70_000, false));
        assert_eq!(r.body.bytes, data);
        assert_eq!(r.body.sha256, "");
    }

    #[tokio::test]
    async fn a_copy_cut_by_the_budget_is_truncated_even_below_the_cap() {
        let budget = CaptureBudget::new(40);
        let data = Bytes::from(vec![b'z'; 60]);
        let (tap, rx) = Tap::new(Full::new(data.clone()), 100);
        let tap = tap.with_budget(budget.clone());
        assert_eq!(tap.collect().await.unwrap().to_bytes(), data);
        let r = rx.await.unwrap();
        assert_eq!(
            (r.body.bytes.len(), r.body.len, r.body.truncated),
            (40, 60, true)
        );
        assert!(
            r.body.bytes.capacity() <= 40,
            "holds more than the budget counts"
        );
        assert_eq!(budget.available(), 0);
        drop(r);
        assert_eq!(budget.available(), 40);
    }

    #[tokio::test]
    async fn a_whole_copy_is_not_truncated() {
        let (tap, rx) = Tap::new(Full::new(Bytes::from_static(b"abc")), 100);
        let tap = tap.with_budget(CaptureBudget::new(100));
        tap.collect().await.unwrap();
        let r = rx.await.unwrap();
        assert_eq!(
            (r.body.bytes.as_slice(), r.body.truncated),
            (&b"abc"[..], false)
        );
    }

    #[tokio::test]
    async fn a_dropped_body_reports_incomplete() {
        let (tap, rx) = Tap::new(Full::new(Bytes::from_static(b"abc")), 100);
        drop(tap);
        let r = rx.await.unwrap();
        assert!(!r.complete);
        assert_eq!(r.body.len, 0);
    }

    #[tokio::test]
    async fn a_spent_budget_truncates_the_copy_but_not_the_stream_and_is_returned() {
        let budget = CaptureBudget::new(150);
        let data = Bytes::from(vec![b'y'; 1000]);
        let (a, rx_a) = Tap::new(Full::new(data.clone()), 100);
        let (b, rx_b) = Tap::new(Full::new(data.clone()), 100);
        let a = a.with_budget(budget.clone());
        let b = b.with_budget(budget.clone());
        assert_eq!(a.collect().await.unwrap().to_bytes(), data);
        let ra = rx_a.await.unwrap();
        assert_eq!(ra.body.bytes.len(), 100);
        assert_eq!(
            budget.available(),
            50,
            "the copy counts until its result is dropped"
        );
        drop(ra);
        assert_eq!(
            budget.available(),
            150,
            "a dropped result returns its bytes"
        );
        // Hold one copy's worth while the second tap runs.
        let held = budget.take(100);
        assert_eq!(b.collect().await.unwrap().to_bytes(), data);
        let rb = rx_b.await.unwrap();
        assert_eq!(rb.body.bytes.len(), 50);
        assert!(rb.body.truncated);
        assert_eq!(rb.body.len, 1000);
        assert_eq!(rb.body.sha256, hex::encode(Sha256::digest(&data)));
        drop(rb);
        budget.give_back(held);
        assert_eq!(budget.available(), 150);
    }
}
