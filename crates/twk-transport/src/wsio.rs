//! A websocket as an `AsyncRead + AsyncWrite` byte stream.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use std::future::Future as _;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_util::task::TaskTracker;
use tungstenite::Message;

/// Carries an ordered byte stream in binary websocket messages.
///
/// Reads return the payload of binary messages in order; a close frame or the end of the
/// websocket is end-of-file. Text messages are a protocol violation.
///
/// Writes gather in a buffer that becomes one binary message on flush, or when it reaches
/// [`twk_protocol::limits::WS_WRITE_CHUNK`] bytes: HTTP/2 writes a frame head and its payload
/// separately and flushes once per batch of frames, and a message per write cost a websocket
/// frame, a copy and often a syscall each. With [`WsIo::coalescing`], concurrent requests'
/// frames also share a message.
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
    out: BytesMut,
    eof: bool,
    probe: Option<RttProbe>,
    /// The requests in flight on the connection (see [`WsIo::coalescing`]).
    coalesce: Option<TaskTracker>,
    /// This flush already waited its turn.
    waited: bool,
}

/// Measures the round trip to the peer with websocket pings carrying a send time. The peer's
/// websocket answers them by itself (RFC 6455 §5.5.2); no tunnel protocol is involved.
struct RttProbe {
    every: Duration,
    epoch: Instant,
    last_sent: Option<Instant>,
    report: Arc<dyn Fn(Duration) + Send + Sync>,
}

impl<S> WsIo<S> {
    /// Wraps an established websocket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsIo {
            ws,
            pending: Bytes::new(),
            out: BytesMut::new(),
            eof: false,
            probe: None,
            coalesce: None,
            waited: false,
        }
    }

    /// While `in_flight` tracks two requests or more (a token each, held from when it is
    /// sent until its answer is through), a flush first lets the runtime run its
    /// other ready tasks once (`tokio::task::yield_now`): the requests those tasks are
    /// sending, and those whose bytes the socket already holds, leave in the same message
    /// instead of a message and a syscall each. One request alone is sent at once: with
    /// nothing else to run, a worker of a multi-threaded runtime searches for work before it
    /// takes the task back, and finding it wakes an idle worker; that cost a lone request
    /// 16 µs of the relay's CPU and 25 µs of latency (docs/performance.md, thirty-second
    /// round).
    pub fn coalescing(mut self, in_flight: TaskTracker) -> Self {
        self.coalesce = Some(in_flight);
        self
    }

    /// Sends a timestamped ping at most every `every`, piggybacked on writes (HTTP/2 writes at
    /// least a PING of its own every keep-alive interval), and reports each round trip.
    pub fn with_rtt_probe(
        mut self,
        every: Duration,
        report: Arc<dyn Fn(Duration) + Send + Sync>,
    ) -> Self {
        self.probe = Some(RttProbe {
            every,
            epoch: Instant::now(),
            last_sent: None,
            report,
        });
        self
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsIo<S> {
    /// Queues a probe ping when one is due and the sink has room; never waits for room.
    fn maybe_ping(&mut self, cx: &mut Context<'_>) {
        let Some(probe) = &mut self.probe else { return };
        let now = Instant::now();
        if probe
            .last_sent
            .is_some_and(|t| now.duration_since(t) < probe.every)
        {
            return;
        }
        if let Poll::Ready(Ok(())) = Sink::<Message>::poll_ready(Pin::new(&mut self.ws), cx) {
            let nanos = now.duration_since(probe.epoch).as_nanos() as u64;
            let ping = Message::Ping(Bytes::copy_from_slice(&nanos.to_be_bytes()));
            if Pin::new(&mut self.ws).start_send(ping).is_ok() {
                probe.last_sent = Some(now);
            }
        }
    }

    fn on_pong(&self, payload: &[u8]) {
        let (Some(probe), Ok(bytes)) = (&self.probe, <[u8; 8]>::try_from(payload)) else {
            return;
        };
        let sent = Duration::from_nanos(u64::from_be_bytes(bytes));
        if let Some(rtt) = probe.epoch.elapsed().checked_sub(sent) {
            (probe.report)(rtt);
        }
    }
}

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        tungstenite::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.pending = b,
                Some(Ok(Message::Close(_))) | None => this.eof = true,
                Some(Ok(Message::Pong(p))) => this.on_pong(&p),
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unexpected text message on the tunnel websocket",
                    )));
                }
                Some(Err(tungstenite::Error::ConnectionClosed)) => this.eof = true,
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

/// The smallest buffer a message starts with (a response head and a small body fit).
const MIN_BLOCK: usize = 4096;

/// The page size that memory copies alias on.
const PAGE: usize = 4096;

/// Where in its page a message of [`MIN_BLOCK`] bytes or more starts.
///
/// A message's bytes are copied twice here: into this buffer from HTTP/2's writes, and from
/// it into tungstenite's write buffer, behind the frame's head (14 bytes for a large masked
/// one). Under mimalloc (the client's allocator) all three buffers start at page
/// boundaries, so each copy's destination sat a few bytes past its source modulo 4 KiB.
/// glibc's `memmove` copies such a pair with `rep movsb`, which on AMD EPYC ran at 1.3–2.6
/// GB/s with the destination 1 to 31 bytes past the source, against 24–45 GB/s at every
/// other distance measured (`cargo bench -p twk-e2e --bench memmove`); those two copies were
/// half of the client's CPU in 1 MiB downloads (docs/performance.md, twenty-fifth round).
/// Half a page is as far as a message can be from either buffer's start. Under glibc's
/// allocator (the relay's) blocks start anywhere in a page: there it changes nothing.
const PAGE_OFFSET: usize = PAGE / 2;

/// An empty buffer for at least `need` bytes whose first byte sits at [`PAGE_OFFSET`] in
/// its page.
fn placed_block(need: usize) -> BytesMut {
    let mut block = BytesMut::with_capacity(need + PAGE);
    let pad = (PAGE + PAGE_OFFSET - block.as_ptr() as usize % PAGE) % PAGE;
    block.put_bytes(0, pad);
    block.advance(pad);
    block
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsIo<S> {
    /// Hands the gathered bytes to the websocket as one binary message.
    fn poll_send_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.maybe_ping(cx);
        ready!(Sink::<Message>::poll_ready(Pin::new(&mut self.ws), cx)).map_err(to_io)?;
        let msg = Message::Binary(self.out.split().freeze());
        Pin::new(&mut self.ws).start_send(msg).map_err(to_io)?;
        Poll::Ready(Ok(()))
    }

    /// Whether this flush waits a turn of the runtime first (see [`WsIo::coalescing`]); at
    /// most one turn per message.
    fn wait_a_turn(&mut self, cx: &mut Context<'_>) -> bool {
        let concurrent = self.coalesce.as_ref().is_some_and(|t| t.len() > 1);
        if self.waited || self.out.is_empty() || !concurrent {
            self.waited = false;
            return false;
        }
        self.waited = true;
        // Polled once, it registers the task to be woken after the runtime's other ready
        // tasks and its I/O events; the future itself is not needed after that.
        let _ = pin!(tokio::task::yield_now()).poll(cx);
        true
    }

    /// Room left in the current message, with capacity for `want` bytes of it; sends the
    /// full one first.
    ///
    /// Only what the write needs is reserved (at least [`MIN_BLOCK`]), not a whole chunk:
    /// every message takes its buffer away, and a 64 KiB buffer per small message made glibc
    /// consolidate its free lists each time one was freed (a top frame of the profile).
    fn poll_room(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let chunk = twk_protocol::limits::WS_WRITE_CHUNK;
        if self.out.len() >= chunk {
            ready!(self.poll_send_out(cx))?;
        }
        let room = chunk - self.out.len();
        let need = want.min(room);
        if self.out.capacity() - self.out.len() < need {
            if self.out.is_empty() && need >= MIN_BLOCK {
                self.out = placed_block(need);
            } else {
                self.out.reserve(need.max(MIN_BLOCK));
            }
        }
        Poll::Ready(Ok(room))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = ready!(self.poll_room(cx, buf.len()))?;
        let n = buf.len().min(room);
        self.out.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        let want = bufs.iter().map(|b| b.len()).sum();
        let mut room = ready!(self.poll_room(cx, want))?;
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room);
            self.out.extend_from_slice(&b[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.wait_a_turn(cx) {
            return Poll::Pending;
        }
        ready!(self.poll_send_out(cx))?;
        Sink::<Message>::poll_flush(Pin::new(&mut self.ws), cx).map_err(to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_out(cx))?;
        match ready!(Sink::<Message>::poll_close(Pin::new(&mut self.ws), cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tungstenite::protocol::Role;

    /// Both ends of a websocket over an in-memory pipe, with twk's limits.
    async fn ws_pair() -> (
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let cfg = crate::ws_config();
        let wa = WebSocketStream::from_raw_socket(a, Role::Client, Some(cfg)).await;
        let wb = WebSocketStream::from_raw_socket(b, Role::Server, Some(cfg)).await;
        (wa, wb)
    }

    #[tokio::test]
    async fn bytes_round_trip_in_order_over_a_duplex_websocket() {
        let (wa, wb) = ws_pair().await;
        let mut ia = WsIo::new(wa);
        let mut ib = WsIo::new(wb);
        // Small writes, then large ones: messages that start small, and placed ones.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let writer = tokio::spawn(async move {
            for piece in data[..2_000].chunks(100) {
                ia.write_all(piece).await.unwrap();
            }
            ia.flush().await.unwrap();
            for piece in data[2_000..].chunks(70_000) {
                ia.write_all(piece).await.unwrap();
                ia.flush().await.unwrap();
            }
            ia.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        ib.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, expect);
    }

    /// Flushes `io` through one poll: whether it was done at once.
    fn flushed_at_once<S: AsyncRead + AsyncWrite + Unpin>(io: &mut WsIo<S>) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(io).poll_flush(&mut cx) {
            Poll::Ready(r) => {
                r.unwrap();
                true
            }
            Poll::Pending => false,
        }
    }

    /// Whether a task was woken.
    #[derive(Default)]
    struct Woken(AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// The binary messages `ws` holds received now (each flush here wrote into the duplex
    /// before it returned, so they are all there).
    fn messages<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Vec<Bytes> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut got = Vec::new();
        while let Poll::Ready(Some(m)) = Pin::new(&mut *ws).poll_next(&mut cx) {
            if let Message::Binary(b) = m.unwrap() {
                got.push(b);
            }
        }
        got
    }

    #[tokio::test]
    async fn concurrent_requests_frames_leave_in_one_message_and_a_lone_one_at_once() {
        let (wa, mut wb) = ws_pair().await;
        let in_flight = TaskTracker::new();
        let mut ia = WsIo::new(wa).coalescing(in_flight.clone());

        // One request: its flush is not held back.
        let first = in_flight.token();
        ia.write_all(b"one").await.unwrap();
        assert!(flushed_at_once(&mut ia), "a lone request waited");
        assert_eq!(messages(&mut wb), [Bytes::from_static(b"one")]);

        // Two: the first flush waits a turn, and what is written meanwhile goes with it.
        let second = in_flight.token();
        assert_eq!(in_flight.len(), 2);
        ia.write_all(b"two").await.unwrap();
        assert!(
            !flushed_at_once(&mut ia),
            "concurrent requests did not wait"
        );
        ia.write_all(b"three").await.unwrap();
        assert!(flushed_at_once(&mut ia), "waited more than one turn");
        assert_eq!(messages(&mut wb), [Bytes::from_static(b"twothree")]);

        // Nothing gathered: nothing to wait for.
        assert!(flushed_at_once(&mut ia));

        // The wait is a turn of the runtime: the flush's task is woken once the runtime has
        // run its other tasks (here, this test's own yield), and the flush then ends.
        ia.write_all(b"five").await.unwrap();
        let woken = Arc::new(Woken::default());
        let waker = std::task::Waker::from(woken.clone());
        let pending = Pin::new(&mut ia).poll_flush(&mut Context::from_waker(&waker));
        assert!(pending.is_pending());
        tokio::task::yield_now().await;
        assert!(
            woken.0.load(Ordering::SeqCst),
            "a waiting flush was never woken"
        );
        assert!(flushed_at_once(&mut ia));
        assert_eq!(messages(&mut wb), [Bytes::from_static(b"five")]);
        // Both answered: alone again, nothing waits.
        drop((first, second));
        assert_eq!(in_flight.len(), 0);
        ia.write_all(b"six").await.unwrap();
        assert!(flushed_at_once(&mut ia));
        assert_eq!(messages(&mut wb), [Bytes::from_static(b"six")]);
    }

    #[tokio::test]
    async fn a_websocket_without_coalescing_never_waits() {
        let (wa, mut wb) = ws_pair().await;
        let mut ia = WsIo::new(wa);
        for piece in [&b"a"[..], b"b"] {
            ia.write_all(piece).await.unwrap();
            assert!(flushed_at_once(&mut ia));
        }
        let expect = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        assert_eq!(messages(&mut wb), expect);
    }

    #[tokio::test]
    async fn the_rtt_probe_reports_a_round_trip() {
        let (wa, wb) = ws_pair().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut ia = WsIo::new(wa).with_rtt_probe(
            Duration::from_secs(10),
            Arc::new(move |d| {
                let _ = tx.send(d);
            }),
        );
        let mut ib = WsIo::new(wb);
        // The peer echoes bytes back; its websocket answers the ping while reading.
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 5];
            ib.read_exact(&mut buf).await.unwrap();
            ib.write_all(&buf).await.unwrap();
            ib.flush().await.unwrap();
            buf
        });
        ia.write_all(b"hello").await.unwrap();
        ia.flush().await.unwrap();
        let mut back = [0u8; 5];
        ia.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        assert_eq!(&echo.await.unwrap(), b"hello");
        let rtt = rx.try_recv().expect("no round trip reported");
        assert!(rtt < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_oversized_websocket_message_is_an_error_not_an_allocation() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        // The hostile peer has no limits of its own.
        let wa = WebSocketStream::from_raw_socket(
            a,
            Role::Client,
            Some(
                tungstenite::protocol::WebSocketConfig::default()
                    .max_message_size(None)
                    .max_frame_size(None),
            ),
        )
        .await;
        let wb = WebSocketStream::from_raw_socket(b, Role::Server, Some(crate::ws_config())).await;
        let mut ib = WsIo::new(wb);
        let big = vec![7u8; twk_protocol::limits::WS_MAX_MESSAGE + 1];
        let mut wa = wa;
        let sender = tokio::spawn(async move {
            use futures_util::SinkExt;
            let _ = wa.send(Message::Binary(Bytes::from(big))).await;
        });
        let mut buf = [0u8; 16];
        let r = ib.read(&mut buf).await;
        assert!(r.is_err(), "oversized message was accepted: {r:?}");
        sender.abort();
    }

    #[test]
    fn a_large_message_starts_half_a_page_in_and_has_room() {
        for need in [
            MIN_BLOCK,
            64 * 1024 + 9,
            twk_protocol::limits::WS_WRITE_CHUNK,
        ] {
            let block = placed_block(need);
            assert!(block.is_empty());
            assert!(block.capacity() >= need, "{need}: {}", block.capacity());
            assert_eq!(block.as_ptr() as usize % PAGE, PAGE_OFFSET, "{need}");
        }
    }
}
