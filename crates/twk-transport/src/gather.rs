//! A body whose small frames are gathered before they become HTTP/2 DATA frames.
//!
//! h2 bounds the small DATA frames a receiver holds unread (under 256 bytes each, against
//! a budget of half the connection window) and ends the whole connection with GOAWAY
//! `ENHANCE_YOUR_CALM` past it. A body's frames become DATA frames one for one, and a
//! stranger decides the frames: a chunked body of one-byte chunks (relay to client), or an
//! app streaming 10-byte pieces to a public sender who never reads them (client to relay),
//! took the tunnel down for every request on it. [`Gathered`] yields what is there at once
//! as one frame (up to [`MERGE_UP_TO`]); after [`AS_THEY_COME`] small frames it holds the
//! rest until they reach [`FLOOR`] bytes, the body ends, or (when it has one) `wait` has
//! passed since the first byte held.
//!
//! It is not a buffer: it holds under [`FLOOR`] bytes waiting, plus what one poll finds.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// DATA frames under this many bytes count against h2's small-frame budget.
pub const FLOOR: usize = 256;

/// What is there at once is merged up to this many bytes.
pub const MERGE_UP_TO: usize = 16 * 1024;

/// Small frames a body sends as they come before the rest are gathered: a webhook's body is
/// one frame or a few. Four per stream across the 1,024 streams a tunnel may have open stay
/// within h2's budget (1,024 × 4 × 255 bytes ≈ 1 MiB of its 2 MiB).
pub const AS_THEY_COME: u32 = 4;

/// `inner` with its small frames gathered (see the module).
pub struct Gathered<B: Body> {
    inner: B,
    /// A chunk taken but not yet copied anywhere: most bodies yield one.
    first: Option<Bytes>,
    /// Chunks merged, once there is more than one.
    merged: BytesMut,
    /// A frame read that is not data (trailers) or an error: yielded after the data.
    held: Option<Result<Frame<Bytes>, B::Error>>,
    /// The body ended with data still gathered.
    ended: bool,
    /// Small frames yielded so far.
    small: u32,
    /// How long small data may wait for more; `None`: until [`FLOOR`] bytes or the end.
    wait: Option<Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B: Body<Data = Bytes> + Unpin> Gathered<B> {
    /// `inner`, gathered; small data waits at most `wait` (`None`: for [`FLOOR`] bytes or
    /// the end).
    pub fn new(inner: B, wait: Option<Duration>) -> Gathered<B> {
        Gathered {
            inner,
            first: None,
            merged: BytesMut::new(),
            held: None,
            ended: false,
            small: 0,
            wait,
            timer: None,
        }
    }

    fn gathered_len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.merged.len()
    }

    fn add(&mut self, data: Bytes) {
        if self.first.is_none() && self.merged.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(first) = self.first.take() {
            self.merged.extend_from_slice(&first);
        }
        self.merged.extend_from_slice(&data);
    }

    fn take(&mut self) -> Frame<Bytes> {
        self.timer = None;
        let data = match self.first.take() {
            Some(first) => first,
            None => self.merged.split().freeze(),
        };
        if data.len() < FLOOR {
            self.small = self.small.saturating_add(1);
        }
        Frame::data(data)
    }

    /// Whether data under [`FLOOR`] bytes, with nothing more there now, goes now.
    fn small_goes_now(&mut self, cx: &mut Context<'_>) -> bool {
        if self.small < AS_THEY_COME {
            return true;
        }
        let Some(wait) = self.wait else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
        timer.as_mut().poll(cx).is_ready()
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Gathered<B>
where
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if this.gathered_len() == 0 {
            if let Some(held) = this.held.take() {
                return Poll::Ready(Some(held));
            }
            if this.ended {
                return Poll::Ready(None);
            }
        }
        loop {
            if this.held.is_some() || this.ended || this.gathered_len() >= MERGE_UP_TO {
                return Poll::Ready(Some(Ok(this.take())));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    // At the end, or large: as it is (nearly every body, with no copy).
                    Ok(data) if this.gathered_len() == 0 && big_or_last(&data, &this.inner) => {
                        if data.len() < FLOOR {
                            this.small = this.small.saturating_add(1);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => {
                        if !data.is_empty() {
                            this.add(data);
                        }
                        this.ended = this.inner.is_end_stream();
                    }
                    Err(other) if this.gathered_len() == 0 => {
                        return Poll::Ready(Some(Ok(other)));
                    }
                    Err(other) => this.held = Some(Ok(other)),
                },
                Poll::Ready(Some(Err(e))) if this.gathered_len() == 0 => {
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Err(e))) => this.held = Some(Err(e)),
                Poll::Ready(None) if this.gathered_len() == 0 => return Poll::Ready(None),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => {
                    let len = this.gathered_len();
                    if len == 0 {
                        return Poll::Pending;
                    }
                    if len >= FLOOR || this.small_goes_now(cx) {
                        return Poll::Ready(Some(Ok(this.take())));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.gathered_len() == 0
            && self.held.is_none()
            && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let extra = self.gathered_len() as u64;
        hint.set_lower(hint.lower().saturating_add(extra));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(extra));
        }
        hint
    }
}

fn big_or_last<B: Body>(data: &Bytes, inner: &B) -> bool {
    data.len() >= MERGE_UP_TO || inner.is_end_stream()
}

#[cfg(test)]
mod tests;
