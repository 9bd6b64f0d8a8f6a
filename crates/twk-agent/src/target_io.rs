//! Connections to the local target that keep an answer the target gave early.
//!
//! An app may answer a request before reading its body (a 404, a 413, a 401) and close the
//! connection. The kernel then resets it, and the next write of the body fails with `EPIPE`
//! or `ECONNRESET`, though the answer is already waiting to be read. hyper reports that
//! write error and never reads the answer, so the sender would get a 502 where a direct
//! client such as curl gets the app's 404. Here a write that fails that way, on a connection
//! with bytes waiting to be read, is taken as "the target stopped reading": the rest of the
//! body is dropped and the answer is read as usual. Without bytes waiting (the target died
//! without answering) the error goes up unchanged.
//!
//! What that costs: the sender's whole body still comes through the tunnel (into nothing),
//! and the capture records it as sent. Dropping stops once a read has met the end of the
//! connection (the answer has been read by then), so writes fail again from there. A request
//! hyper puts on the connection before that read (an answer without `Connection: close`
//! lets it pool the connection) gets a 502, as on any keep-alive connection a target
//! closes under a new request.
//!
//! Each connection also counts the bytes read on it ([`ReadCount`]); the pool notes the count
//! as it reuses a connection for a request (`target_pool::Checkout`). A request that then
//! fails having read nothing went out on a connection the app's server closed as it arrived
//! (an idle timeout firing): the request can be sent again, as browsers do.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The bytes read on one connection to the target so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadCount(Arc<AtomicU64>);

impl ReadCount {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connection to the target; see the module documentation.
pub(crate) struct TargetStream(TokioIo<Watched>);

impl TargetStream {
    /// Wraps a connection to the target.
    pub(crate) fn new(tcp: TcpStream) -> Self {
        TargetStream(TokioIo::new(Watched {
            tcp,
            discarding: false,
            read_closed: false,
            read: ReadCount::default(),
        }))
    }

    /// The count of bytes read on this connection, as it grows.
    pub(crate) fn read_count(&self) -> ReadCount {
        self.0.inner().read.clone()
    }
}

/// The TCP stream under a [`TargetStream`], with what its reads and writes have met.
struct Watched {
    tcp: TcpStream,
    /// The target stopped reading and answered: writes are dropped.
    discarding: bool,
    /// A read met the connection's end (EOF or an error): the answer has been read.
    read_closed: bool,
    read: ReadCount,
}

impl Watched {
    /// Whether writes are dropped now.
    fn dropping(&self) -> bool {
        self.discarding && !self.read_closed
    }

    /// Whether `e` means the target closed after answering (its answer waits to be read).
    fn answered_then_closed(&self, e: &io::Error) -> bool {
        if self.read_closed
            || !matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            )
        {
            return false;
        }
        // A direct peek at the socket: tokio's readiness may not have seen the answer yet.
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        socket2::SockRef::from(&self.tcp)
            .peek(&mut probe)
            .is_ok_and(|n| n > 0)
    }

    /// Turns a write error after an answer into "written": the bytes are dropped.
    fn settle(&mut self, r: Poll<io::Result<usize>>, len: usize) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Err(e)) if self.answered_then_closed(&e) => {
                tracing::debug!(error = %e, "the target answered and stopped reading the request body");
                self.discarding = true;
                Poll::Ready(Ok(len))
            }
            other => other,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (before, room) = (buf.filled().len(), buf.remaining());
        let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if room > 0 && buf.filled().len() == before => {
                this.read_closed = true;
            }
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                this.read.0.fetch_add(n, Ordering::Relaxed);
            }
            Poll::Ready(Err(_)) => this.read_closed = true,
            _ => {}
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.dropping() {
            return Poll::Ready(Ok(buf.len()));
        }
        let r = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.settle(r, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if this.dropping() {
            return Poll::Ready(Ok(len));
        }
        let r = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.settle(r, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TCP stream has nothing to flush: its writes fail or not (above).
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.discarding {
            // The target already reset the connection: there is nothing left to shut down.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl Read for TargetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for TargetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
