//! What the tunnel's transport costs on its own: HTTP/2 over the websocket (`WsIo`, as twk
//! runs it) against HTTP/2 straight over TCP, in one process on loopback, with the same
//! HTTP/2 settings as the relay and client. No HTTP/1, routing, capture or analysis: the
//! difference between the two rows is what any change of framing under HTTP/2 could win.
//!
//! The third row is the alternative design: a kept multiplexer (yamux) carrying each public
//! connection as a stream of raw HTTP/1.1 bytes (keep-alive), parsed by hyper at the far
//! end, as a relay that passed connections through without re-encoding them would.
//!
//! Run: `cargo bench -p twk-e2e --bench transport` (`TWK_BENCH_SECS`, default 3).
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

/// Serves 200 "ok" over HTTP/2 on `io`, and returns a client for it over `io`'s peer.
async fn connect<C, S>(client_io: C, server_io: S) -> Sender
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use twk_protocol::limits::{PING_INTERVAL, PING_TIMEOUT};
    // The body is read, as the client's forwarding reads it into the app.
    let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async {
        let _ = req.into_body().collect().await;
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
            b"{\"ok\":true}",
        ))))
    });
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
    let c = WebSocketStream::from_raw_socket(c, Role::Client, Some(cfg)).await;
    let s = WebSocketStream::from_raw_socket(s, Role::Server, Some(cfg)).await;
    connect(WsIo::new(c), WsIo::new(s)).await
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
    let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async {
        let _ = req.into_body().collect().await;
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
            b"{\"ok\":true}",
        ))))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream.compat()), svc)
        .await;
}

/// `streams` loops, each over its own yamux stream with HTTP/1.1 keep-alive.
async fn drive_yamux(
    opener: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<yamux::Stream>>,
    streams: usize,
    secs: u64,
) -> (u64, Duration) {
    use tokio_util::compat::FuturesAsyncReadCompatExt as _;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (tx, rx) = tokio::sync::oneshot::channel();
        opener.send(tx).await.unwrap();
        let stream = rx.await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream.compat()))
                .await
                .unwrap();
        tokio::spawn(conn);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let req = http::Request::post("/hook")
                    .header("host", "t")
                    .body(Full::new(Bytes::from_static(&[b'x'; 1024])))
                    .unwrap();
                let t0 = Instant::now();
                let resp = sender.send_request(req).await.unwrap();
                let _ = resp.into_body().collect().await.unwrap();
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (
        all.len() as u64,
        all.get(all.len() / 2).copied().unwrap_or_default(),
    )
}

/// `streams` loops of requests for `secs`: (requests, p50).
async fn drive(sender: Sender, streams: usize, secs: u64) -> (u64, Duration) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let mut sender = sender.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let req = http::Request::post("http://t/hook")
                        .body(Full::new(Bytes::from_static(&[b'x'; 1024])))
                        .unwrap();
                    let t0 = Instant::now();
                    let resp = sender.send_request(req).await.unwrap();
                    let _ = resp.into_body().collect().await.unwrap();
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (
        all.len() as u64,
        all.get(all.len() / 2).copied().unwrap_or_default(),
    )
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
    for streams in [1usize, 16, 64] {
        for (name, sender) in [
            ("HTTP/2 over TCP", over_tcp().await),
            ("HTTP/2 over websocket", over_websocket().await),
        ] {
            let t0 = own_cpu_ticks();
            let (n, p50) = drive(sender, streams, secs).await;
            let cpu = (own_cpu_ticks() - t0) as f64 * 1e6 / tck / n.max(1) as f64;
            row(name, streams, n, p50, cpu, secs);
        }
        let opener = over_yamux().await;
        let t0 = own_cpu_ticks();
        let (n, p50) = drive_yamux(opener, streams, secs).await;
        let cpu = (own_cpu_ticks() - t0) as f64 * 1e6 / tck / n.max(1) as f64;
        row("HTTP/1.1 over yamux", streams, n, p50, cpu, secs);
    }
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
