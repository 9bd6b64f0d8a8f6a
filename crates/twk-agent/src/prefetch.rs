//! A request body read ahead before it takes one of the local target's slots.
//!
//! The client sends at most [`MAX_TARGET_REQUESTS`](twk_protocol::limits::MAX_TARGET_REQUESTS)
//! requests to the app at once, and a request holds its slot while its body streams. A
//! stranger who declares a body and sends it a byte a second held a slot until the deadline
//! (no idle timeout stops one byte a second), and 250 of them held all 128: every webhook
//! behind them waited 7–9 s or got 504 (found by a hostile review).
//!
//! So before a request asks for a slot, what of its body is there already is read ahead, up
//! to [`AHEAD_BYTES`] and for at most [`AHEAD_WAIT`]. A webhook's body nearly always comes
//! whole with its head, so it is [`Arrival::Whole`] and takes a slot as before. A body still
//! coming ([`Arrival::Streaming`]) takes a slot only with a permit from a pool three quarters
//! the slots' size, so slow bodies never hold more than that, and whole ones always find
//! the last quarter.
//!
//! It is not a timeout: a slow body is forwarded as it comes, within its deadline.

use crate::forward::{AgentBody, BoxError};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most bytes of one body read ahead: webhooks are smaller.
pub(crate) const AHEAD_BYTES: usize = 64 * 1024;
/// Most bytes read ahead for all requests together, so read-ahead never grows the client
/// by more than this; past it a body is counted as still coming.
pub(crate) const AHEAD_BUDGET: usize = 8 * 1024 * 1024;
/// Bytes of each body read ahead even when the budget is spent, so a small webhook is still
/// seen whole: 300 strangers sending 64 KiB each and then a byte now and then spent the
/// budget, and every webhook behind them waited for a streaming turn (a hostile re-check).
/// At most 1,024 streams × 8 KiB beyond the budget.
pub(crate) const AHEAD_ALWAYS: usize = 8 * 1024;
/// How long a body that has not come whole with its head is waited for.
pub(crate) const AHEAD_WAIT: Duration = Duration::from_millis(50);

/// How a request's body had arrived when it was read ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// All of it (or there is none).
    Whole,
    /// Some or none of it; more is coming, or it is too large to read ahead.
    Streaming,
    /// None of it: it failed before its first byte (the relay reset the stream: a chunked
    /// body over its cap, a malformed one). Not to be forwarded: the app would get an empty
    /// request nobody made.
    Broken,
}

/// The local target's slots: every request takes one; a request whose body is still
/// coming first takes a permit from a pool half their size.
pub(crate) struct Slots {
    all: Arc<Semaphore>,
    streaming: Arc<Semaphore>,
}

/// A request's turn at the local target, held until its exchange is reported.
pub(crate) struct Turn {
    _slot: OwnedSemaphorePermit,
    _streaming: Option<OwnedSemaphorePermit>,
}

impl Slots {
    pub(crate) fn new(n: usize) -> Slots {
        let n = n.max(1);
        Slots {
            all: Arc::new(Semaphore::new(n)),
            streaming: Arc::new(Semaphore::new(streaming_turns(n))),
        }
    }

    /// Waits for a turn (`None` only if the semaphores were closed, which they never are).
    pub(crate) async fn turn(&self, arrival: Arrival) -> Option<Turn> {
        let streaming = match arrival {
            Arrival::Whole | Arrival::Broken => None,
            Arrival::Streaming => Some(self.streaming.clone().acquire_owned().await.ok()?),
        };
        let slot = self.all.clone().acquire_owned().await.ok()?;
        Some(Turn {
            _slot: slot,
            _streaming: streaming,
        })
    }
}

/// Turns for bodies still coming: three quarters, so whole ones always find a quarter. Half
/// was a cheaper target for senders who send a large part of a body and stop: their unread
/// rest fills the tunnel's HTTP/2 window while they wait for a turn, and a webhook's own
/// body then cannot arrive to be seen whole (70 such senders delayed webhooks ~3 s where
/// the client before these pools took over 128; a hostile re-check).
fn streaming_turns(n: usize) -> usize {
    (n * 3 / 4).max(1)
}

/// Bytes read ahead by all requests together.
#[derive(Clone, Default)]
pub(crate) struct AheadBudget(Arc<AtomicUsize>);

impl AheadBudget {
    fn take(&self, n: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&t| t <= AHEAD_BUDGET)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::AcqRel);
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// Reads `body` ahead (see the module's text) and gives back a body that yields the same
/// frames, with how it had arrived. A body with nothing to read comes back as it was.
pub(crate) async fn read_ahead(mut body: AgentBody, budget: &AheadBudget) -> (AgentBody, Arrival) {
    if body.is_end_stream() {
        return (body, Arrival::Whole);
    }
    let mut ahead = Ahead {
        frames: VecDeque::new(),
        held: 0,
        free: 0,
        budget: budget.clone(),
        end: None,
    };
    let mut wait: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let arrival = poll_fn(|cx| ahead.fill(&mut body, &mut wait, cx)).await;
    if ahead.frames.is_empty() {
        match ahead.end {
            None => return (body, arrival),
            Some(End::Failed(_)) => return (body, Arrival::Broken),
            Some(End::Clean) => {}
        }
    }
    let rest = ahead.end.is_none().then_some(body);
    (Prefetched { ahead, rest }.boxed(), arrival)
}

/// How the body ended while it was read ahead.
enum End {
    Clean,
    /// Given to whoever reads it, after the frames before it: the forwarding path then
    /// blames the sender as it would have.
    Failed(BoxError),
}

/// The frames read ahead, and the bytes of the budget they hold.
struct Ahead {
    frames: VecDeque<Frame<Bytes>>,
    held: usize,
    /// Bytes read ahead outside the budget ([`AHEAD_ALWAYS`]).
    free: usize,
    budget: AheadBudget,
    end: Option<End>,
}

impl Ahead {
    fn fill(
        &mut self,
        body: &mut AgentBody,
        wait: &mut Option<Pin<Box<tokio::time::Sleep>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Arrival> {
        loop {
            if self.held + self.free >= AHEAD_BYTES {
                return Poll::Ready(Arrival::Streaming);
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(None) => {
                    self.end = Some(End::Clean);
                    return Poll::Ready(Arrival::Whole);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.end = Some(End::Failed(e));
                    return Poll::Ready(Arrival::Whole);
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    self.frames.push_back(frame);
                    if self.free + n <= AHEAD_ALWAYS {
                        self.free += n;
                    } else if self.budget.take(n) {
                        self.held += n;
                    } else {
                        // A frame past the budget is still yielded first; it is only not
                        // counted, and the reading ahead stops.
                        return Poll::Ready(Arrival::Streaming);
                    }
                }
                // A timer only for a body that is not there whole: most never make one.
                Poll::Pending => {
                    let sleep =
                        wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(AHEAD_WAIT)));
                    return match sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Arrival::Streaming),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// The frames read ahead, then the rest of the body.
struct Prefetched {
    ahead: Ahead,
    rest: Option<AgentBody>,
}

impl Body for Prefetched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(frame) = this.ahead.frames.pop_front() {
            if this.ahead.frames.is_empty() {
                // All handed on: the budget is free for other requests at once.
                this.ahead
                    .budget
                    .give_back(std::mem::take(&mut this.ahead.held));
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(rest) = this.rest.as_mut() {
            return Pin::new(rest).poll_frame(cx);
        }
        match this.ahead.end.take() {
            Some(End::Failed(e)) => Poll::Ready(Some(Err(e))),
            Some(End::Clean) | None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.frames.is_empty()
            && match &self.rest {
                Some(rest) => rest.is_end_stream(),
                None => !matches!(self.ahead.end, Some(End::Failed(_))),
            }
    }

    fn size_hint(&self) -> SizeHint {
        let ahead: u64 = self
            .ahead
            .frames
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        match &self.rest {
            Some(rest) => {
                let h = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower().saturating_add(ahead));
                if let Some(upper) = h.upper() {
                    out.set_upper(upper.saturating_add(ahead));
                }
                out
            }
            None => SizeHint::with_exact(ahead),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::sync::mpsc;

    /// A body fed frame by frame from the test.
    struct Fed(mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx)
        }
    }

    type Feed = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

    fn fed() -> (Feed, AgentBody) {
        let (tx, rx) = mpsc::channel(1024);
        (tx, Fed(rx).boxed())
    }

    async fn data(tx: &Feed, bytes: &[u8]) {
        tx.send(Ok(Frame::data(Bytes::copy_from_slice(bytes))))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_body_there_whole_is_whole_and_passes_unchanged() {
        let budget = AheadBudget::default();
        let (tx, body) = fed();
        data(&tx, b"{\"id\":").await;
        data(&tx, b"1}").await;
        tx.send(Ok(Frame::trailers(http::HeaderMap::new())))
            .await
            .unwrap();
        drop(tx);
        let (body, arrival) = read_ahead(body, &budget).await;
        assert_eq!(arrival, Arrival::Whole);
        assert_eq!(budget.held(), 0, "a small body needs none of the budget");
        assert_eq!(body.size_hint().exact(), Some(8));
        let got = body.collect().await.unwrap();
        assert!(got.trailers().is_some());
        assert_eq!(&got.to_bytes()[..], b"{\"id\":1}");
        assert_eq!(budget.held(), 0, "the budget came back");
        // No body at all: whole, untouched.
        let (body, arrival) = read_ahead(crate::forward::AgentBody::default(), &budget).await;
        assert_eq!(arrival, Arrival::Whole);
        assert!(body.is_end_stream());
    }

    /// A byte, then nothing: streaming after the wait, and what comes later still passes.
    #[tokio::test]
    async fn a_body_still_coming_is_streaming_and_passes_as_it_comes() {
        let budget = AheadBudget::default();
        let (tx, body) = fed();
        data(&tx, b"a").await;
        let t0 = tokio::time::Instant::now();
        let (mut body, arrival) = read_ahead(body, &budget).await;
        assert_eq!(arrival, Arrival::Streaming);
        assert!(t0.elapsed() >= AHEAD_WAIT);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        data(&tx, b"bc").await;
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "bc"
        );
        drop(tx);
        assert!(body.frame().await.is_none());
        assert_eq!(budget.held(), 0);
    }

    /// More than a webhook: streaming at once, without waiting, every byte in order.
    #[tokio::test]
    async fn a_large_body_is_streaming_without_a_wait() {
        let budget = AheadBudget::default();
        let (tx, body) = fed();
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let feeder = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for c in sent.chunks(16 * 1024) {
                    data(&tx, c).await;
                }
            })
        };
        let (body, arrival) = read_ahead(body, &budget).await;
        assert_eq!(arrival, Arrival::Streaming);
        assert!(budget.held() <= AHEAD_BYTES + 16 * 1024);
        feeder.await.unwrap();
        assert_eq!(body.collect().await.unwrap().to_bytes(), sent);
        assert_eq!(budget.held(), 0);
    }

    /// A body that breaks while read ahead: its bytes first, then its error.
    #[tokio::test]
    async fn a_broken_body_gives_its_error_after_its_bytes() {
        let budget = AheadBudget::default();
        let (tx, body) = fed();
        data(&tx, b"part").await;
        tx.send(Err("cut short".into())).await.unwrap();
        let (mut body, _) = read_ahead(body, &budget).await;
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "part"
        );
        let e = body.frame().await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "cut short");
    }

    /// A body that breaks before its first byte is not to be forwarded at all.
    #[tokio::test]
    async fn a_body_broken_before_its_first_byte_is_broken() {
        let budget = AheadBudget::default();
        let (tx, body) = fed();
        tx.send(Err("reset".into())).await.unwrap();
        let (_, arrival) = read_ahead(body, &budget).await;
        assert_eq!(arrival, Arrival::Broken);
        assert_eq!(budget.held(), 0);
    }

    /// Past the shared budget, reading ahead stops: nothing is lost, and the body counts as
    /// streaming; but a small body is still seen whole. Dropped unread, its share comes back.
    #[tokio::test]
    async fn the_shared_budget_bounds_reading_ahead() {
        let budget = AheadBudget::default();
        assert!(budget.take(AHEAD_BUDGET - 10));
        let (tx, body) = fed();
        data(&tx, &[1; 10_000]).await;
        drop(tx);
        let (body, arrival) = read_ahead(body, &budget).await;
        assert_eq!(arrival, Arrival::Streaming);
        assert_eq!(budget.held(), AHEAD_BUDGET - 10);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 10_000);
        let (tx, body) = fed();
        data(&tx, &[1; 100]).await;
        drop(tx);
        let (body, arrival) = read_ahead(body, &budget).await;
        assert_eq!(
            arrival,
            Arrival::Whole,
            "a small webhook, whatever the budget"
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 100);
        budget.give_back(AHEAD_BUDGET - 10);
        let (tx, body) = fed();
        data(&tx, &[1; 10_000]).await;
        let (body, _) = read_ahead(body, &budget).await;
        assert_eq!(budget.held(), 10_000);
        drop(body);
        assert_eq!(budget.held(), 0);
    }

    /// Bodies still coming hold three quarters of the turns at most; a whole one finds a
    /// turn beside them.
    #[tokio::test]
    async fn streaming_bodies_hold_at_most_three_quarters_of_the_turns() {
        let slots = Slots::new(4);
        let a = slots.turn(Arrival::Streaming).await.unwrap();
        let b = slots.turn(Arrival::Streaming).await.unwrap();
        let c = slots.turn(Arrival::Streaming).await.unwrap();
        let fourth = slots.turn(Arrival::Streaming);
        tokio::pin!(fourth);
        assert!(
            futures_poll_once(fourth.as_mut()).await.is_none(),
            "a fourth streaming turn"
        );
        let w1 = slots.turn(Arrival::Whole).await.unwrap();
        // Every slot taken now; a whole request waits like any other.
        let w3 = slots.turn(Arrival::Whole);
        tokio::pin!(w3);
        assert!(futures_poll_once(w3.as_mut()).await.is_none());
        drop(w1);
        assert!(w3.await.is_some());
        drop(a);
        assert!(fourth.await.is_some());
        drop((b, c));
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut f).poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await
    }
}
