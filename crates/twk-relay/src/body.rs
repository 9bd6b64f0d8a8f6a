//! Body plumbing: one boxed body type, and a cap that streams.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub(crate) use twk_transport::body::{BoxError, TunnelBody as RelayBody, full};

/// The sender's body exceeded the cap.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the relay's cap of {0} bytes")]
pub(crate) struct TooLarge(pub u64);

/// What went wrong with the sender's body, if anything: the sender's fault, not the tunnel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SenderFault {
    /// More than the cap arrived (answer 413).
    TooLarge,
    /// The body was malformed (bad chunked framing, oversized chunk extension) or cut short
    /// (answer 400).
    Broken(String),
}

/// Shared between a [`Capped`] body and the request handler that reads it afterwards.
pub(crate) type FaultCell = Arc<Mutex<Option<SenderFault>>>;

/// Streams a body through, failing once more than `max` bytes have passed, and notes in the
/// fault cell why the sender's body failed, so the handler can blame the sender (413, 400)
/// rather than the tunnel.
pub(crate) struct Capped<B> {
    inner: B,
    seen: u64,
    max: u64,
    fault: FaultCell,
    bytes: Counter,
}

impl<B> Capped<B> {
    /// Caps `inner` at `max`, counting what passes in `bytes`.
    pub(crate) fn new(inner: B, max: u64, bytes: Counter) -> (Self, FaultCell) {
        let fault = FaultCell::default();
        (
            Capped {
                inner,
                seen: 0,
                max,
                fault: fault.clone(),
                bytes,
            },
            fault,
        )
    }

    fn note(&self, f: SenderFault) {
        let mut cell = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        cell.get_or_insert(f);
    }
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.inc_by(data.len() as u64);
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.max {
                        this.note(SenderFault::TooLarge);
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.max)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                this.note(SenderFault::Broken(e.to_string()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
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

/// The tunnel session ended while this body was still streaming.
#[derive(Debug, thiserror::Error)]
#[error("the tunnel was lost while the response was streaming")]
pub(crate) struct SessionLost;

/// Streams a response body from a tunnel session, failing at once when the session dies
/// instead of waiting on a stream nobody will ever finish.
pub(crate) struct UntilDead<B> {
    inner: B,
    dead: Pin<Box<WaitForCancellationFutureOwned>>,
    bytes: Counter,
    /// Keeps the session's in-flight count while the answer streams.
    _inflight: Option<tokio_util::task::task_tracker::TaskTrackerToken>,
}

impl<B> UntilDead<B> {
    /// Streams `inner` until `dead` fires, counting what passes in `bytes`.
    pub(crate) fn new(inner: B, dead: CancellationToken, bytes: Counter) -> Self {
        UntilDead {
            inner,
            dead: Box::pin(dead.cancelled_owned()),
            bytes,
            _inflight: None,
        }
    }

    /// Holds `token` until the body is done or dropped.
    pub(crate) fn holding(
        mut self,
        token: tokio_util::task::task_tracker::TaskTrackerToken,
    ) -> Self {
        self._inflight = Some(token);
        self
    }
}

impl<B> Body for UntilDead<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => match this.dead.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(SessionLost)))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.inc_by(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other.map(|o| o.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
