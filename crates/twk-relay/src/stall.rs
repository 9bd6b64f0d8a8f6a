//! A public connection whose writes fail once its peer has read nothing for a while.
//!
//! A tunnel's answers share one HTTP/2 connection window (`H2_CONN_WINDOW`), and a stream
//! gives its share back only as its sender reads the answer. Eight strangers asking for a
//! large answer and never reading it held the whole window, and every other webhook on the
//! tunnel then got its answer's head but never its body, for as long as they kept their
//! sockets open (found by a hostile review). Here a write that has made no progress for
//! `limit` fails: hyper ends the connection, the answer's stream is reset, and its share of
//! the window comes back.
//!
//! It is not a rate limit: a slow reader that reads at all keeps its connection.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::window::Reader;

/// `io`, whose writes fail with `TimedOut` after `limit` without progress.
pub(crate) struct Stalling<T> {
    io: T,
    limit: Duration,
    /// Armed when a write finds the socket full, disarmed by any progress.
    since: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Told when writes block and move again, for its tunnel's window (`window.rs`).
    reader: Option<Arc<Reader>>,
}

impl<T> Stalling<T> {
    pub(crate) fn new(io: T, limit: Duration) -> Stalling<T> {
        Stalling {
            io,
            limit,
            since: None,
            reader: None,
        }
    }

    /// Tells `reader` when writes block and when they move again.
    pub(crate) fn telling(mut self, reader: Arc<Reader>) -> Stalling<T> {
        self.reader = Some(reader);
        self
    }

    fn watch<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            if self.since.take().is_some()
                && let Some(reader) = &self.reader
            {
                reader.unblocked();
            }
            return r;
        }
        // A timer only for a write that finds the socket full: answers that fit in the
        // socket's buffer, nearly all of them, never make one.
        let limit = self.limit;
        if self.since.is_none()
            && let Some(reader) = &self.reader
        {
            reader.blocked();
        }
        let since = self
            .since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match since.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.since = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the peer read nothing for {limit:?}"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalling<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalling<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// A peer that never reads: the write fails after the limit, not before; one that
    /// reads keeps its writes going.
    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = Stalling::new(a, Duration::from_millis(200));
        let t0 = tokio::time::Instant::now();
        let e = w.write_all(&[7u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= Duration::from_millis(200));
        // A reader that keeps reading: everything goes through.
        let (a, mut b2) = tokio::io::duplex(1024);
        let mut w = Stalling::new(a, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b2, &mut all)
                .await
                .unwrap();
            all.len()
        });
        w.write_all(&[7u8; 64 * 1024]).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 64 * 1024);
        let _ = b.flush().await;
    }
}
