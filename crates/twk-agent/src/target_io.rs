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

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// [`HttpConnector`] whose connections are [`TargetStream`]s.
#[derive(Clone)]
pub(crate) struct TargetConnector(pub(crate) HttpConnector);

impl tower_service::Service<http::Uri> for TargetConnector {
    type Response = TargetStream;
    type Error = <HttpConnector as tower_service::Service<http::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<TargetStream, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { Ok(TargetStream::new(connecting.await?)) })
    }
}

/// A connection to the target; see the module documentation.
pub(crate) struct TargetStream {
    io: TokioIo<TcpStream>,
    /// The target stopped reading and answered: writes are dropped from here on.
    discarding: bool,
}

impl TargetStream {
    /// Wraps a connection to the target.
    pub(crate) fn new(io: TokioIo<TcpStream>) -> Self {
        TargetStream {
            io,
            discarding: false,
        }
    }

    /// Whether `e` means the target closed after answering (its answer waits to be read).
    fn answered_then_closed(&self, e: &io::Error) -> bool {
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return false;
        }
        // A direct peek at the socket: tokio's readiness may not have seen the answer yet.
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        socket2::SockRef::from(self.io.inner())
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

impl Read for TargetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for TargetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.discarding {
            return Poll::Ready(Ok(buf.len()));
        }
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.settle(r, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if this.discarding {
            return Poll::Ready(Ok(len));
        }
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.settle(r, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.discarding {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(Err(e)) if this.answered_then_closed(&e) => {
                this.discarding = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.discarding {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl Connection for TargetStream {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}
