//! What the tunnel's transport costs on its own: HTTP/2 over the websocket (`WsIo`, as twk
//! runs it) against HTTP/2 straight over TCP, in one process on loopback, with the same
//! HTTP/2 settings as the relay and client. No HTTP/1, routing, capture or analysis: the
//! difference between the two rows is what any change of framing under HTTP/2 could win.
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
    println!("HTTP/2 transport, one process, POST 1 KiB -> 200, {secs} s per row");
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
            println!(
                "{:<22} {:>7} {:>10.0} {:>9.2?} {:>11.1}",
                name,
                streams,
                n as f64 / secs as f64,
                p50,
                cpu
            );
        }
    }
}
