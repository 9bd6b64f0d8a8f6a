//! Body plumbing: one boxed body type, and a cap that streams.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub(crate) use twk_transport::body::{BoxError, TunnelBody as RelayBody, full};

/// The sender's body exceeded the cap.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the relay's cap of {0} bytes")]
pub(crate) struct TooLarge(pub u64);

/// Streams a body through, failing once more than `max` bytes have passed. The flag tells
/// the request handler afterwards that the failure was the cap (answer 413), not the tunnel.
pub(crate) struct Capped<B> {
    inner: B,
    seen: u64,
    max: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> Capped<B> {
    pub(crate) fn new(inner: B, max: u64) -> (Self, Arc<AtomicBool>) {
        let exceeded = Arc::new(AtomicBool::new(false));
        (
            Capped {
                inner,
                seen: 0,
                max,
                exceeded: exceeded.clone(),
            },
            exceeded,
        )
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
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.max {
                        this.exceeded.store(true, Ordering::SeqCst);
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.max)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
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
