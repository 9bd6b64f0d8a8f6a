//! A request body that comes back when the connection to the target drops it unfinished.
//!
//! hyper's client drops the request, body and all, when it cannot connect to the target
//! (the app is not running) or the connection fails before the body is written. The body
//! is the sender's, still streaming through the capture's tap: dropped, the capture kept
//! only what had passed (often nothing), so the exchange a user wants to replay once the
//! app is up had an empty body. [`Unread`] gives the rest back instead, to be read into
//! the capture before the sender is answered.
//!
//! It is not a retry: nothing here sends the body again.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// What comes back: the body, boxed, from where the connection stopped reading it.
pub(crate) type Rest = crate::forward::AgentBody;

/// What an [`Unread`] can carry: a body it can box to give back.
pub(crate) trait Carried:
    Body<Data = Bytes, Error = crate::forward::BoxError> + Send + Sync + Unpin + 'static
{
}

impl<B> Carried for B where
    B: Body<Data = Bytes, Error = crate::forward::BoxError> + Send + Sync + Unpin + 'static
{
}

/// `inner`, given back through its receiver if dropped before its end.
pub(crate) struct Unread<B: Carried> {
    inner: Option<B>,
    back: Option<oneshot::Sender<Rest>>,
}

impl<B: Carried> Unread<B> {
    pub(crate) fn new(inner: B) -> (Unread<B>, oneshot::Receiver<Rest>) {
        let (back, rx) = oneshot::channel();
        let body = Unread {
            inner: Some(inner),
            back: Some(back),
        };
        (body, rx)
    }
}

impl<B: Carried> Drop for Unread<B> {
    fn drop(&mut self) {
        // Boxed only here, so the common case (read to its end) pays for no second box.
        if let (Some(inner), Some(back)) = (self.inner.take(), self.back.take())
            && !inner.is_end_stream()
        {
            use http_body_util::BodyExt as _;
            let _ = back.send(inner.boxed());
        }
    }
}

impl<B: Carried> Body for Unread<B> {
    type Data = Bytes;
    type Error = crate::forward::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
