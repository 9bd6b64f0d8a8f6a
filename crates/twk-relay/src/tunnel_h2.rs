//! The relay's HTTP/2 client to a tunnel, on the `h2` crate directly.
//!
//! hyper's HTTP/2 client puts a dispatch channel between the caller and the connection's
//! task, and spawns a task per request to carry the answer back (and one to pipe a body that
//! is not all there at once). Each is a hop between tasks, often between threads: in the
//! transport bench (`tests/benches/transport.rs`) they were 66 of 88 µs of CPU per request at
//! one stream, and 6 of 24 at sixteen. Here the public connection's own task opens the
//! stream, pipes the body and awaits the answer; only the connection itself is a task of its
//! own ([`drive`]).
//!
//! What hyper's wrapper did and this module does instead: the body is piped under HTTP/2
//! flow control (a frame is pulled from the sender, then room for it awaited before the
//! next, so a slow tunnel slows the sender; trailers; the stream reset when the sender's
//! body fails); the
//! answer's body gives its window back as it is read ([`AnswerBody`]; `h2` checks its
//! `Content-Length`); PINGs every `ping` and the connection dead without a PONG within
//! `timeout`; a request the connection cannot take (the client said GOAWAY) comes back
//! whole ([`SendError::unsent`]).
//!
//! It is not the tunnel client's side (hyper's HTTP/2 server there) nor a general client.

use crate::body::{RelayBody, TooLarge};
use crate::window::{RECHECK, Reader, WATCH_AFTER, WindowShare};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::future::{Future as _, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use twk_transport::gather::Gathered;

/// Why a tunnel's connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// HTTP/2 (or the I/O under it) failed.
    #[error(transparent)]
    H2(#[from] h2::Error),
    /// No PONG came back in time: the link is dead or the client stuck.
    #[error("no answer to a ping within {0:?}")]
    PingTimeout(Duration),
}

/// A request the tunnel did not answer.
#[derive(Debug)]
pub(crate) struct SendError {
    /// What failed.
    pub(crate) error: h2::Error,
    /// The request itself, when the connection never took it (it was going away).
    pub(crate) unsent: Option<Request<RelayBody>>,
}

/// Sends requests to one tunnel; cheap to clone.
#[derive(Clone)]
pub(crate) struct TunnelSender {
    h2: h2::client::SendRequest<Bytes>,
    /// Its answers' slow readers (`window.rs`).
    share: Arc<WindowShare>,
    /// How requests' metadata goes to the client.
    meta: MetaForm,
}

/// How a request's metadata goes to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaForm {
    /// One `x-twk-*` header each (what every client reads).
    Headers,
    /// The public URL, and the rest in one header (`twk_protocol::bundle`).
    Bundle,
}

impl std::fmt::Debug for TunnelSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelSender")
    }
}

/// Opens HTTP/2 over `io` with the limits of [`twk_transport::h2_direct_client_builder`]:
/// the sender, and the connection to run ([`drive`]) for as long as the session lasts.
pub(crate) async fn handshake<T>(
    io: T,
) -> Result<(TunnelSender, h2::client::Connection<T, Bytes>), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (h2, conn) = twk_transport::h2_direct_client_builder()
        .handshake(io)
        .await?;
    let share = Arc::default();
    let meta = MetaForm::Headers;
    Ok((TunnelSender { h2, share, meta }, conn))
}

/// Runs the connection until it ends, with a PING every `ping` that must be answered
/// within `timeout`. `Ok` when it closed cleanly (the client's GOAWAY, then its end).
pub(crate) async fn drive<T>(
    mut conn: h2::client::Connection<T, Bytes>,
    ping: Duration,
    timeout: Duration,
) -> Result<(), ConnError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut pings) = conn.ping_pong() else {
        return Ok(conn.await?);
    };
    let alive = async {
        loop {
            tokio::time::sleep(ping).await;
            let pong = pings.ping(h2::Ping::opaque());
            match tokio::time::timeout(timeout, pong).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return ConnError::H2(e),
                Err(_) => return ConnError::PingTimeout(timeout),
            }
        }
    };
    tokio::select! {
        r = &mut conn => Ok(r?),
        e = alive => Err(e),
    }
}

impl TunnelSender {
    /// Sends requests' metadata in one header from now on: the client named
    /// `twk_protocol::upgrade::ACCEPTS_BUNDLED_META`.
    pub(crate) fn bundle_meta(&mut self) {
        self.meta = MetaForm::Bundle;
    }

    /// How requests' metadata goes to the client.
    pub(crate) fn meta_form(&self) -> MetaForm {
        self.meta
    }

    /// True once the connection takes no new request: the client said GOAWAY, or it ended.
    /// On `&mut self`, not a probe clone: every clone and drop of `h2`'s handle takes the
    /// connection's lock, which the public connections' tasks and the connection's own contend
    /// for (docs/performance.md, eleventh round).
    pub(crate) fn is_closed(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(self.h2.poll_ready(&mut cx), Poll::Ready(Err(_)))
    }

    /// Sends `req` and returns the tunnel's answer once its head has come.
    pub(crate) async fn send(
        &mut self,
        req: Request<RelayBody>,
    ) -> Result<Response<AnswerBody>, SendError> {
        if let Err(error) = poll_fn(|cx| self.h2.poll_ready(cx)).await {
            return Err(SendError {
                error,
                unsent: Some(req),
            });
        }
        let (parts, body) = req.into_parts();
        let eos = body.is_end_stream();
        let (answer, stream) = self
            .h2
            .send_request(Request::from_parts(parts, ()), eos)
            .map_err(|error| SendError {
                error,
                unsent: None,
            })?;
        let answer = if eos {
            answer.await
        } else {
            with_body(answer, pipe(body, stream)).await
        };
        match answer {
            Ok(resp) => Ok(resp.map(|recv| AnswerBody {
                recv,
                data_done: false,
                share: self.share.clone(),
                reader: None,
                passed: 0,
                recheck: None,
            })),
            Err(error) => Err(SendError {
                error,
                unsent: None,
            }),
        }
    }
}

/// Awaits `answer` while `pipe` sends the body. An answer that comes before the body is
/// through (a 413 before reading it, say) returns at once, and the rest of the body goes on
/// in a task of its own, as the tunnel may still read it.
async fn with_body(
    answer: h2::client::ResponseFuture,
    pipe: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Response<h2::RecvStream>, h2::Error> {
    let mut pipe = Box::pin(pipe);
    let mut answer = std::pin::pin!(answer);
    tokio::select! {
        biased;
        r = &mut answer => {
            tokio::spawn(pipe);
            r
        }
        () = &mut pipe => answer.await,
    }
}

/// Sends `body` on `tx`, as hyper's client does: a frame is pulled from the sender, then
/// room for it awaited before the next (so a slow tunnel slows the sender); the stream is
/// reset when the sender's body fails (the sender's fault is recorded by the body itself,
/// `Capped`). The sender's small frames are gathered first ([`Gathered`]): as they came, a
/// chunked body of one-byte chunks made the client's HTTP/2 server end the whole session.
async fn pipe(body: RelayBody, mut tx: h2::SendStream<Bytes>) {
    let mut body = Gathered::new(body, None);
    if let Err(e) = pipe_inner(&mut body, &mut tx).await {
        tracing::debug!(error = %e, "request body not sent whole");
        // The client tells a body over the cap (the sender got 413) from a broken one.
        let reason = if over_cap(&*e) {
            h2::Reason::from(twk_protocol::reset::BODY_OVER_CAP)
        } else {
            h2::Reason::INTERNAL_ERROR
        };
        tx.send_reset(reason);
    }
}

/// Whether `e` is, or was caused by, the sender's body passing the relay's cap.
fn over_cap(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<TooLarge>())
}

async fn pipe_inner(
    body: &mut Gathered<RelayBody>,
    tx: &mut h2::SendStream<Bytes>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    loop {
        // The frame first, then capacity: reserving ahead of data would pin connection
        // window on a stream whose sender is slow, and a peer that updates the window only
        // once it is used up would then starve the other streams (hyperium/hyper#4003).
        let frame = tokio::select! {
            biased;
            reset = poll_fn(|cx| tx.poll_reset(cx)) => return stopped(reset),
            f = body.frame() => f,
        };
        let frame = match frame {
            None => {
                tx.send_data(Bytes::new(), true)?;
                return Ok(());
            }
            Some(frame) => frame?,
        };
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(mut trailers) = frame.into_trailers() {
                    twk_protocol::strip_trailer_fields(&mut trailers);
                    tx.reserve_capacity(0);
                    tx.send_trailers(trailers)?;
                    return Ok(());
                }
                continue;
            }
        };
        let eos = body.is_end_stream();
        if frame.is_empty() && !eos {
            // h2 ends a connection after 100 empty DATA frames in its lifetime.
            continue;
        }
        if !frame.is_empty() {
            // A claim of one byte: h2 raises it to what is buffered once the data is in.
            tx.reserve_capacity(1);
            while tx.capacity() == 0 {
                let room = poll_fn(|cx| match tx.poll_reset(cx) {
                    Poll::Ready(reset) => Poll::Ready(Err(reset)),
                    Poll::Pending => tx.poll_capacity(cx).map(Ok),
                })
                .await;
                match room {
                    Err(reset) => return stopped(reset),
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(e))) => return Err(e.into()),
                    Ok(None) => return Err("the tunnel closed the request's stream".into()),
                }
            }
        }
        tx.send_data(frame, eos)?;
        if eos {
            return Ok(());
        }
    }
}

/// The end of a pipe whose stream the tunnel reset: it answered and wants no more of the
/// body (`NO_ERROR`), or it gave up.
fn stopped(
    reset: Result<h2::Reason, h2::Error>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match reset {
        Ok(h2::Reason::NO_ERROR) => Ok(()),
        Ok(reason) => Err(format!("the tunnel reset the stream: {reason}").into()),
        Err(e) => Err(e.into()),
    }
}

/// The body of a tunnel's answer: gives its HTTP/2 window back as it is read.
#[derive(Debug)]
pub(crate) struct AnswerBody {
    recv: h2::RecvStream,
    /// The data is through; trailers (if any) are next.
    data_done: bool,
    /// The tunnel's slow readers (`window.rs`).
    share: Arc<WindowShare>,
    /// Who reads this answer, if a public connection does; watched once it is large.
    reader: Option<Arc<Reader>>,
    passed: u64,
    /// While data is awaited and readers are blocked on the tunnel: when to check them.
    recheck: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AnswerBody {
    /// Says who reads this answer, so a slow reader of a large one can be evicted when the
    /// tunnel's other answers need the window it holds.
    pub(crate) fn read_by(&mut self, reader: Option<Arc<Reader>>) {
        self.reader = reader;
    }

    fn passing(&mut self, n: usize) {
        let before = self.passed;
        self.passed = before.saturating_add(n as u64);
        if before < WATCH_AFTER
            && self.passed >= WATCH_AFTER
            && let Some(reader) = &self.reader
        {
            reader.watch(self.recv.flow_control().clone(), self.share.clone());
        }
    }

    /// Waiting for data: while readers are blocked on the tunnel, they are checked every
    /// [`RECHECK`], since what this answer waits for may be the window they hold.
    fn awaiting(&mut self, cx: &mut Context<'_>) {
        if !self.share.any_blocked() {
            self.recheck = None;
            return;
        }
        let recheck = self
            .recheck
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(RECHECK)));
        while recheck.as_mut().poll(cx).is_ready() {
            self.share.relieve();
            recheck
                .as_mut()
                .reset(tokio::time::Instant::now() + RECHECK);
        }
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        if self.passed >= WATCH_AFTER
            && let Some(reader) = &self.reader
        {
            reader.unwatch();
        }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if !this.data_done {
            let polled = this.recv.poll_data(cx);
            if polled.is_pending() {
                this.awaiting(cx);
            }
            match ready!(polled) {
                Some(Ok(data)) => {
                    // The window goes back whole: the relay reads as fast as the sender does.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.passing(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::{Full, StreamBody};
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use twk_protocol::limits::{PING_INTERVAL, PING_TIMEOUT};

    /// hyper's HTTP/2 server, as the tunnel client runs it, on a loopback socket answering
    /// with `answer`; the relay's side connected to it, its connection driven until it ends
    /// (`ended` fires then), and a way to make the server say GOAWAY.
    async fn tunnel<F, Fut>(
        answer: F,
    ) -> (
        TunnelSender,
        tokio::sync::oneshot::Receiver<Result<(), ConnError>>,
        tokio::sync::oneshot::Sender<()>,
    )
    where
        F: Fn(Request<hyper::body::Incoming>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let (goaway, mut go) = tokio::sync::oneshot::channel::<()>();
        let answer = std::sync::Arc::new(answer);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let answer = answer.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req).await) }
            });
            let server = twk_transport::h2_server_builder(PING_INTERVAL, PING_TIMEOUT);
            let conn = server.serve_connection(TokioIo::new(s), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = &mut conn => return,
                _ = &mut go => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
        let (sender, conn) = handshake(c).await.unwrap();
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = ended_tx.send(drive(conn, PING_INTERVAL, PING_TIMEOUT).await);
        });
        (sender, ended, goaway)
    }

    fn chunk(n: usize, b: u8) -> Result<Frame<Bytes>, crate::body::BoxError> {
        Ok(Frame::data(Bytes::from(vec![b; n])))
    }

    /// A body that comes in pieces larger than the stream's window, then trailers, reaches
    /// the tunnel whole, and the answer's body comes back whole.
    #[tokio::test]
    async fn a_streamed_body_with_trailers_goes_through_under_flow_control() {
        let (mut sender, _ended, _goaway) = tunnel(|req: Request<hyper::body::Incoming>| async {
            let got = req.into_body().collect().await.unwrap();
            let trailer = got
                .trailers()
                .and_then(|t| t.get("x-sum"))
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let bytes = got.to_bytes();
            let text = format!(
                "{} {} {trailer}",
                bytes.len(),
                bytes.iter().map(|&b| b as u64).sum::<u64>()
            );
            Response::new(Full::new(Bytes::from(text.repeat(10_000))))
        })
        .await;
        let (tx, req) = streamed(4);
        let feed = tokio::spawn(async move {
            for b in [1u8, 2, 3] {
                tx.send(chunk(700 * 1024, b)).await.unwrap();
            }
            let mut t = http::HeaderMap::new();
            t.insert("x-sum", http::HeaderValue::from_static("done"));
            tx.send(Ok(Frame::trailers(t))).await.unwrap();
        });
        let resp = sender.send(req).await.unwrap();
        feed.await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let want = format!("{} {} done", 3 * 700 * 1024, 6 * 700 * 1024).repeat(10_000);
        assert_eq!(body.len(), want.len());
        assert!(body == want.as_bytes());
    }

    /// After the tunnel's GOAWAY the sender says it is closed, and a request comes back
    /// unsent, whole, to be kept.
    #[tokio::test]
    async fn after_the_clients_goaway_a_request_comes_back_unsent() {
        let (mut sender, ended, goaway) =
            tunnel(|_| async { Response::new(Full::new(Bytes::from_static(b"ok"))) }).await;
        let ok = Request::get("http://t.tunnel/")
            .body(crate::body::full(""))
            .unwrap();
        assert_eq!(sender.send(ok).await.unwrap().status(), 200);
        assert!(!sender.is_closed());
        goaway.send(()).unwrap();
        assert!(ended.await.unwrap().is_ok(), "a GOAWAY is a clean end");
        assert!(sender.is_closed());
        let req = Request::post("http://t.tunnel/hook")
            .header("x-id", "7")
            .body(crate::body::full("kept"))
            .unwrap();
        let e = sender.send(req).await.unwrap_err();
        let unsent = e.unsent.expect("the request comes back");
        assert_eq!(unsent.headers()["x-id"], "7");
        let body = unsent.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "kept");
    }

    /// A sender whose body fails half-way: the tunnel sees its stream end in an error (not
    /// a short body passed off as whole), and the connection carries the next request.
    #[tokio::test]
    async fn a_body_that_fails_resets_its_stream_and_the_connection_goes_on() {
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<bool>();
        let (mut sender, _ended, _goaway) = tunnel(move |req: Request<hyper::body::Incoming>| {
            let seen_tx = seen_tx.clone();
            async move {
                let whole = req.into_body().collect().await.is_ok();
                let _ = seen_tx.send(whole);
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        })
        .await;
        let (tx, req) = streamed(4);
        tx.send(chunk(100 * 1024, 7)).await.unwrap();
        tx.send(Err("the sender went away".into())).await.unwrap();
        // The answer may win the race against the reset or lose it; what matters is what
        // the tunnel saw.
        let _ = sender.send(req).await;
        assert_eq!(
            seen.recv().await,
            Some(false),
            "the tunnel saw a whole body"
        );
        let mut next = sender.clone();
        let ok = Request::post("http://t.tunnel/again")
            .body(crate::body::full("x"))
            .unwrap();
        assert_eq!(next.send(ok).await.unwrap().status(), 200);
        assert_eq!(seen.recv().await, Some(true));
    }

    /// A tunnel that answers before it has read the body (it streams, or refuses early):
    /// the answer comes back at once, and the rest of the body still reaches it.
    #[tokio::test]
    async fn an_answer_before_the_body_is_through_comes_back_at_once() {
        let (len_tx, mut len_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let (mut sender, _ended, _goaway) = tunnel(move |req: Request<hyper::body::Incoming>| {
            let len_tx = len_tx.clone();
            async move {
                tokio::spawn(async move {
                    let got = req.into_body().collect().await.unwrap().to_bytes();
                    let _ = len_tx.send(got.len());
                });
                Response::new(Full::new(Bytes::from_static(b"early")))
            }
        })
        .await;
        let (tx, req) = streamed(1);
        tx.send(chunk(16 * 1024, 1)).await.unwrap();
        // The body ends only after the answer is here: waiting for the body first would wait
        // for ever (the timeout only turns such a hang into a failure).
        let resp = tokio::time::timeout(Duration::from_secs(30), sender.send(req))
            .await
            .expect("the answer came back before the body was through")
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(text, "early");
        tx.send(chunk(100 * 1024, 2)).await.unwrap();
        drop(tx);
        assert_eq!(len_rx.recv().await, Some(116 * 1024));
    }

    /// hyper's HTTP/2 server answering with the number of DATA frames and bytes it got
    /// (and the way to make it say GOAWAY, which it does once that is dropped).
    async fn frame_counter() -> (TunnelSender, tokio::sync::oneshot::Sender<()>) {
        let (sender, _ended, goaway) = tunnel(|req: Request<hyper::body::Incoming>| async {
            let mut body = req.into_body();
            let (mut frames, mut len) = (0usize, 0usize);
            while let Some(f) = body.frame().await {
                if let Some(d) = f.unwrap().data_ref() {
                    frames += 1;
                    len += d.len();
                }
            }
            Response::new(Full::new(Bytes::from(format!("{frames} {len}"))))
        })
        .await;
        (sender, goaway)
    }

    async fn frames_and_len(sender: &mut TunnelSender, req: Request<RelayBody>) -> (usize, usize) {
        let resp = sender.send(req).await.unwrap();
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        let (frames, len) = std::str::from_utf8(&text).unwrap().split_once(' ').unwrap();
        (frames.parse().unwrap(), len.parse().unwrap())
    }

    /// A sender's 100,000 one-byte chunks reach the tunnel whole in few DATA frames, both
    /// when they are all there at once and when they come one at a time (as hyper's HTTP/1
    /// server hands a chunked body on): as 100,000 frames they made the client's HTTP/2
    /// server end the session (`too_many_data_frames`), failing every request on it.
    #[tokio::test]
    async fn a_flood_of_tiny_chunks_goes_in_few_frames_and_the_session_lives() {
        let (mut sender, _goaway) = frame_counter().await;
        let n = 100_000;
        let (tx, req) = streamed(n + 1);
        for i in 0..n {
            tx.try_send(chunk(1, i as u8)).unwrap();
        }
        drop(tx);
        let (frames, len) = frames_and_len(&mut sender, req).await;
        assert_eq!(len, n);
        assert!(frames <= 1_000, "{frames} DATA frames, all there at once");
        let (tx, req) = streamed(1);
        let feed = tokio::spawn(async move {
            for i in 0..n {
                tx.send(chunk(1, i as u8)).await.unwrap();
            }
        });
        let (frames, len) = frames_and_len(&mut sender, req).await;
        feed.await.unwrap();
        assert_eq!(len, n);
        // Four small ones as they come, then at least 256 bytes each (h2 counts only those
        // under 256 against its budget).
        assert!(
            frames <= 4 + n / 256 + 1,
            "{frames} DATA frames, one at a time"
        );
        // A body of a few small frames goes as it comes, and the session carries on.
        let (tx, req) = streamed(4);
        let feed = tokio::spawn(async move {
            for b in [1u8, 2, 3] {
                tx.send(chunk(10, b)).await.unwrap();
            }
        });
        assert_eq!(frames_and_len(&mut sender, req).await.1, 30);
        feed.await.unwrap();
    }

    /// A POST whose body is what is sent on the channel (`depth` frames buffered), until it
    /// is dropped.
    fn streamed(
        depth: usize,
    ) -> (
        tokio::sync::mpsc::Sender<Result<Frame<Bytes>, crate::body::BoxError>>,
        Request<RelayBody>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(depth);
        let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let body = StreamBody::new(frames).boxed();
        (tx, Request::post("http://t.tunnel/up").body(body).unwrap())
    }
}
