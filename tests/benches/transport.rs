//! What the tunnel's transport costs on its own: HTTP/2 over the websocket (`WsIo`, as twk
//! runs it) against HTTP/2 straight over TCP, in one process on loopback, with the same
//! HTTP/2 settings as the relay and client. No HTTP/1, routing, capture or analysis: the
//! difference between the two rows is what any change of framing under HTTP/2 could win.
//!
//! The third row is the alternative design: a kept multiplexer (yamux) carrying each public
//! connection as a stream of raw HTTP/1.1 bytes (keep-alive), parsed by hyper at the far
//! end, as a relay that passed connections through without re-encoding them would.
//!
//! The fourth row drives the `h2` crate's client directly over the same websocket, to the
//! same hyper server: what hyper's client wrapper costs the relay per request (its dispatch
//! channel, and a task it spawns per request to carry the answer back).
//!
//! Run: `cargo bench -p twk-e2e --bench transport` (`TWK_BENCH_SECS`, default 3).
//! `TWK_BENCH_ROWS=yamux` runs only the small rows whose transport's name holds that text
//! (`TCP`, `websocket`, `h2`, `yamux`), and `TWK_BENCH_STREAMS=16` only that many streams, so
//! that one row can run under callgrind (`valgrind --tool=callgrind`) and be counted alone.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::Role;
use twk_e2e::procfs::{clk_tck, cpu_ticks};
use twk_transport::WsIo;

type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// User + system CPU of this process, in clock ticks.
fn own_cpu_ticks() -> u64 {
    cpu_ticks(std::process::id()).unwrap()
}

/// A connected pair of loopback sockets.
async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (s, _) = l.accept().await.unwrap();
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    (c, s)
}

/// The body of the large rows' POSTs and GET answers.
const MIB: usize = 1024 * 1024;

/// What every row's far end does: reads the body, as the client's forwarding reads it into
/// the app, and answers 200 with a small JSON body, or 1 MiB to a GET.
async fn answer(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let get = req.method() == http::Method::GET;
    let _ = req.into_body().collect().await;
    let body = if get {
        big_body()
    } else {
        Bytes::from_static(b"{\"ok\":true}")
    };
    Ok(http::Response::new(Full::new(body)))
}

fn big_body() -> Bytes {
    static BODY: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| Bytes::from(vec![b'x'; MIB])).clone()
}

/// Serves 200 "ok" over HTTP/2 on `io`, and returns a client for it over `io`'s peer.
async fn connect<C, S>(client_io: C, server_io: S) -> Sender
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use twk_protocol::limits::{PING_INTERVAL, PING_TIMEOUT};
    let svc = hyper::service::service_fn(answer);
    let server = twk_transport::h2_server_builder(PING_INTERVAL, PING_TIMEOUT);
    tokio::spawn(async move { server.serve_connection(TokioIo::new(server_io), svc).await });
    let (sender, conn) = twk_transport::h2_client_builder(PING_INTERVAL, PING_TIMEOUT)
        .handshake(TokioIo::new(client_io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn over_tcp() -> Sender {
    let (c, s) = pair().await;
    connect(c, s).await
}

async fn over_websocket() -> Sender {
    let (c, s) = pair().await;
    let cfg = twk_transport::ws_config();
    // As in twk: the relay, HTTP/2's client, accepted the websocket; the tunnel client,
    // HTTP/2's server, dialled it (and masks what it sends).
    let c = WebSocketStream::from_raw_socket(c, Role::Server, Some(cfg)).await;
    let s = WebSocketStream::from_raw_socket(s, Role::Client, Some(cfg)).await;
    connect(WsIo::new(c), WsIo::new(s)).await
}

/// The `h2` crate's client over the websocket, as the relay runs it, with [`over_websocket`]'s
/// hyper client wrapper taken away: the same hyper server at the far end.
async fn over_websocket_h2() -> h2::client::SendRequest<Bytes> {
    use twk_protocol::limits::*;
    let (c, s) = pair().await;
    let cfg = twk_transport::ws_config();
    let c = WebSocketStream::from_raw_socket(c, Role::Server, Some(cfg)).await;
    let s = WebSocketStream::from_raw_socket(s, Role::Client, Some(cfg)).await;
    let svc = hyper::service::service_fn(answer);
    let server = twk_transport::h2_server_builder(PING_INTERVAL, PING_TIMEOUT);
    tokio::spawn(async move {
        server
            .serve_connection(TokioIo::new(WsIo::new(s)), svc)
            .await
    });
    let (sender, conn) = twk_transport::h2_direct_client_builder()
        .handshake(WsIo::new(c))
        .await
        .unwrap();
    tokio::spawn(async move { conn.await.unwrap() });
    sender
}

/// [`drive`] for the `h2` crate's client: each loop sends the head, then the 1 KiB body,
/// awaits the answer and reads it, giving its flow-control window back.
async fn drive_h2(
    sender: h2::client::SendRequest<Bytes>,
    streams: usize,
    secs: u64,
) -> (u64, Duration) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let loops = (0..streams)
        .map(|_| {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut sender = sender.ready().await.unwrap();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let req = http::Request::post("http://t/hook").body(()).unwrap();
                    sender = sender.ready().await.unwrap();
                    let (resp, mut body) = sender.send_request(req, false).unwrap();
                    body.send_data(Bytes::from_static(&[b'x'; 1024]), true)
                        .unwrap();
                    let mut answer = resp.await.unwrap().into_body();
                    while let Some(chunk) = answer.data().await {
                        let n = chunk.unwrap().len();
                        answer.flow_control().release_capacity(n).unwrap();
                    }
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    summary(loops).await
}

/// A yamux connection over loopback: the server side serves HTTP/1.1 on every stream it
/// accepts; the client side opens streams on request (one task owns each connection, as
/// yamux wants: it makes progress only while `poll_next_inbound` is polled).
async fn over_yamux() -> tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<yamux::Stream>> {
    use tokio_util::compat::TokioAsyncReadCompatExt as _;
    let (c, s) = pair().await;
    let mut server =
        yamux::Connection::new(s.compat(), yamux::Config::default(), yamux::Mode::Server);
    tokio::spawn(async move {
        while let Some(Ok(stream)) = std::future::poll_fn(|cx| server.poll_next_inbound(cx)).await {
            tokio::spawn(serve_h1(stream));
        }
    });
    let mut client =
        yamux::Connection::new(c.compat(), yamux::Config::default(), yamux::Mode::Client);
    let (tx, mut opens) =
        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<yamux::Stream>>(64);
    tokio::spawn(async move {
        use std::task::Poll;
        let mut waiting = std::collections::VecDeque::new();
        std::future::poll_fn(|cx| {
            loop {
                while let Poll::Ready(Some(w)) = opens.poll_recv(cx) {
                    waiting.push_back(w);
                }
                if !waiting.is_empty() {
                    match client.poll_new_outbound(cx) {
                        Poll::Ready(Ok(stream)) => {
                            if let Some(w) = waiting.pop_front() {
                                let _ = w.send(stream);
                            }
                            continue;
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => {}
                    }
                }
                match client.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
    });
    tx
}

/// HTTP/1.1 on one yamux stream, answering as [`connect`]'s server does.
async fn serve_h1(stream: yamux::Stream) {
    use tokio_util::compat::FuturesAsyncReadCompatExt as _;
    let svc = hyper::service::service_fn(answer);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream.compat()), svc)
        .await;
}

/// The two kinds of request sender the rows use: each makes the 1 KiB POST in its form.
trait Post: Send + 'static {
    fn request() -> http::Request<Full<Bytes>>;

    fn post(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = http::Response<hyper::body::Incoming>> + Send;
}

fn kib() -> Full<Bytes> {
    Full::new(Bytes::from_static(&[b'x'; 1024]))
}

impl Post for Sender {
    /// HTTP/2: the authority is in the URI.
    fn request() -> http::Request<Full<Bytes>> {
        http::Request::post("http://t/hook").body(kib()).unwrap()
    }

    async fn post(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        self.send_request(req).await.unwrap()
    }
}

impl Post for hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    /// HTTP/1.1: origin form and a `Host` header.
    fn request() -> http::Request<Full<Bytes>> {
        http::Request::post("/hook")
            .header("host", "t")
            .body(kib())
            .unwrap()
    }

    async fn post(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        self.send_request(req).await.unwrap()
    }
}

/// One loop: POST 1 KiB and read the answer until `deadline`; the latencies.
fn posts_until<P: Post>(
    mut sender: P,
    deadline: Instant,
) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut lat = Vec::new();
        while Instant::now() < deadline {
            let t0 = Instant::now();
            let resp = sender.post(P::request()).await;
            let _ = resp.into_body().collect().await.unwrap();
            lat.push(t0.elapsed());
        }
        lat
    })
}

/// All loops' requests and their p50.
async fn summary(loops: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> (u64, Duration) {
    let mut all = Vec::new();
    for l in loops {
        all.extend(l.await.unwrap());
    }
    all.sort();
    (
        all.len() as u64,
        all.get(all.len() / 2).copied().unwrap_or_default(),
    )
}

/// `streams` loops, each over its own yamux stream with HTTP/1.1 keep-alive.
async fn drive_yamux(
    opener: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<yamux::Stream>>,
    streams: usize,
    secs: u64,
) -> (u64, Duration) {
    use tokio_util::compat::FuturesAsyncReadCompatExt as _;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut loops = Vec::new();
    for _ in 0..streams {
        let (tx, rx) = tokio::sync::oneshot::channel();
        opener.send(tx).await.unwrap();
        let stream = rx.await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream.compat()))
            .await
            .unwrap();
        tokio::spawn(conn);
        loops.push(posts_until(sender, deadline));
    }
    summary(loops).await
}

/// `streams` loops of requests over one HTTP/2 connection for `secs`: (requests, p50).
async fn drive(sender: Sender, streams: usize, secs: u64) -> (u64, Duration) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let loops = (0..streams)
        .map(|_| posts_until(sender.clone(), deadline))
        .collect();
    summary(loops).await
}

/// Which way the large rows' megabyte travels.
#[derive(Clone, Copy)]
enum Large {
    /// Up, from HTTP/2's client (the relay) to its server (the tunnel client).
    Post,
    /// Down, in the answer.
    Get,
}

/// `streams` loops of 1 MiB exchanges over one HTTP/2 connection for `secs`: MiB moved.
async fn drive_large(sender: Sender, large: Large, streams: usize, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let loops: Vec<_> = (0..streams)
        .map(|_| {
            let mut sender = sender.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let req = match large {
                        Large::Post => {
                            http::Request::post("http://t/hook").body(Full::new(big_body()))
                        }
                        Large::Get => {
                            http::Request::get("http://t/file").body(Full::new(Bytes::new()))
                        }
                    };
                    let resp = sender.send_request(req.unwrap()).await.unwrap();
                    let _ = resp.into_body().collect().await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for l in loops {
        total += l.await.unwrap();
    }
    total
}

/// The large rows: 1 MiB up and down, HTTP/2 over TCP against over the websocket.
async fn large_rows(secs: u64, tck: f64) {
    println!("\n1 MiB bodies, {secs} s per row");
    println!(
        "{:<22} {:>4} {:>7} {:>10} {:>11}",
        "transport", "way", "streams", "MiB/s", "cpu us/MiB"
    );
    for (way, large) in [("POST", Large::Post), ("GET", Large::Get)] {
        for streams in [1usize, 4] {
            for (name, sender) in [
                ("HTTP/2 over TCP", over_tcp().await),
                ("HTTP/2 over websocket", over_websocket().await),
            ] {
                let t0 = own_cpu_ticks();
                let n = drive_large(sender, large, streams, secs).await;
                let cpu = (own_cpu_ticks() - t0) as f64 * 1e6 / tck / n.max(1) as f64;
                println!(
                    "{:<22} {:>4} {:>7} {:>10.0} {:>11.0}",
                    name,
                    way,
                    streams,
                    n as f64 / secs as f64,
                    cpu
                );
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("TWK_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let tck = clk_tck();
    println!("tunnel transports, one process, POST 1 KiB -> 200, {secs} s per row");
    println!(
        "{:<22} {:>7} {:>10} {:>9} {:>11}",
        "transport", "streams", "req/s", "p50", "cpu us/req"
    );
    let only = std::env::var("TWK_BENCH_ROWS").ok();
    let runs = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let streams_of: Vec<usize> = match std::env::var("TWK_BENCH_STREAMS") {
        Ok(v) => v.split(',').map(|s| s.trim().parse().unwrap()).collect(),
        Err(_) => vec![1, 16, 64],
    };
    for streams in streams_of {
        if runs("HTTP/2 over TCP") {
            let run = drive(over_tcp().await, streams, secs);
            measured("HTTP/2 over TCP", streams, secs, tck, run).await;
        }
        if runs("HTTP/2 over websocket") {
            let run = drive(over_websocket().await, streams, secs);
            measured("HTTP/2 over websocket", streams, secs, tck, run).await;
        }
        if runs("h2 over websocket") {
            let run = drive_h2(over_websocket_h2().await, streams, secs);
            measured("h2 over websocket", streams, secs, tck, run).await;
        }
        if runs("HTTP/1.1 over yamux") {
            let run = drive_yamux(over_yamux().await, streams, secs);
            measured("HTTP/1.1 over yamux", streams, secs, tck, run).await;
        }
    }
    if only.is_none() {
        large_rows(secs, tck).await;
    }
}

/// Runs one small row (its connection already made) and prints it with its CPU per request.
async fn measured(
    name: &str,
    streams: usize,
    secs: u64,
    tck: f64,
    run: impl std::future::Future<Output = (u64, Duration)>,
) {
    let t0 = own_cpu_ticks();
    let (n, p50) = run.await;
    let cpu = (own_cpu_ticks() - t0) as f64 * 1e6 / tck / n.max(1) as f64;
    row(name, streams, n, p50, cpu, secs);
}

fn row(name: &str, streams: usize, n: u64, p50: Duration, cpu: f64, secs: u64) {
    println!(
        "{:<22} {:>7} {:>10.0} {:>9.2?} {:>11.1}",
        name,
        streams,
        n as f64 / secs as f64,
        p50,
        cpu
    );
}
