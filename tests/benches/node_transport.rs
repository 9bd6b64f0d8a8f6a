//! Node-to-node transport for a relay cluster, measured for the same job over both
//! candidates: send a body to another node and get the same bytes back.
//!
//! - HTTP/1.1 (what `twk-relay` uses, `crates/twk-relay/src/peer.rs`): a hyper http1 server on
//!   127.0.0.1:0 that reads the whole request body and answers 200 with the same bytes, and a
//!   hyper_util legacy client (`HttpConnector`, TCP_NODELAY, keep-alive pool: up to one
//!   connection per worker) that POSTs the body and reads the whole answer.
//! - NATS request/reply (async-nats): a real `nats-server -js` on a loopback port
//!   (`twk_e2e::nats::Nats`); one connection subscribes to a subject and publishes each
//!   payload back to its reply subject, another connection, shared by all workers as a node
//!   would share its one NATS connection, sends `Client::request` and awaits the reply.
//!
//! Everything but nats-server runs in this process on a multi-threaded tokio runtime. For
//! bodies of 1 KiB, 64 KiB and 512 KiB at 1, 16 and 64 concurrent workers, each row runs for
//! `TWK_BENCH_SECS` seconds (after a 300 ms warm-up) and prints req/s, p50, p99, CPU time per
//! request (this process, which holds both ends of either transport, from `/proc` before and
//! after; for NATS also the nats-server process) and, for the larger bodies, MiB/s of request
//! body (the same amount comes back). NATS's default `max_payload` is 1 MiB (async-nats
//! refuses a larger message), so bodies of 1 MiB or more would need chunking over NATS
//! (several messages per body, reassembled at the other node); HTTP/1.1 streams any size.
//!
//! Run: `cargo bench -p twk-e2e --bench node_transport` (needs `nats-server` on the PATH)
//! Env: `TWK_BENCH_SECS` (seconds per row, default 3).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twk_e2e::bench::Stats;
use twk_e2e::nats::Nats;
use twk_e2e::procfs::{clk_tck, cpu_ticks};

const SUBJECT: &str = "twk.bench.echo";
const WARM_UP: Duration = Duration::from_millis(300);

/// One way to send a body to the other node and get it back (two of them for the whole run).
#[allow(clippy::large_enum_variant)]
enum Transport {
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        uri: http::Uri,
    },
    Nats {
        client: async_nats::Client,
    },
}

impl Transport {
    fn name(&self) -> &'static str {
        match self {
            Transport::Http { .. } => "http/1.1",
            Transport::Nats { .. } => "nats",
        }
    }

    /// One round trip; true when as many bytes came back as were sent.
    async fn call(&self, body: Bytes) -> bool {
        let len = body.len();
        match self {
            Transport::Http { client, uri } => http_call(client, uri, body).await == Some(len),
            Transport::Nats { client } => client
                .request(SUBJECT, body)
                .await
                .is_ok_and(|m| m.payload.len() == len),
        }
    }
}

/// POSTs `body` and reads the whole answer; its length, or `None` on an error or non-200.
async fn http_call(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &http::Uri,
    body: Bytes,
) -> Option<usize> {
    let req = http::Request::post(uri.clone())
        .body(Full::new(body))
        .unwrap();
    let resp = client.request(req).await.ok()?;
    if resp.status() != http::StatusCode::OK {
        return None;
    }
    Some(resp.into_body().collect().await.ok()?.to_bytes().len())
}

/// The HTTP/1.1 echo server: answers 200 with the request body, read whole.
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tcp.set_nodelay(true).unwrap();
            let service = hyper::service::service_fn(echo);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    addr
}

async fn echo(req: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    Ok(http::Response::new(Full::new(body)))
}

/// The client side as `twk-relay`'s peer client builds it (`peer::client`).
fn http_transport(addr: SocketAddr) -> Transport {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let uri = format!("http://{addr}/echo").parse().unwrap();
    Transport::Http { client, uri }
}

/// The NATS echo side: its own connection, replying to each request with its payload.
async fn nats_echo(url: &str) -> async_nats::Client {
    let replier = async_nats::connect(url).await.unwrap();
    let mut sub = replier.subscribe(SUBJECT).await.unwrap();
    let out = replier.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = out.publish(reply, msg.payload).await;
            }
        }
    });
    // The server has the subscription once it answers a PING sent after it.
    replier.flush().await.unwrap();
    replier
}

/// The `nats-server` this process started (`Nats` keeps its child private): the process
/// named `nats-server` whose parent is this one, from `/proc/<pid>/stat`.
fn nats_server_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let ppid = rest.split_whitespace().nth(1)?;
        (head.ends_with("(nats-server") && ppid == me).then_some(pid)
    })
}

/// `conns` workers each sending `body` one request after another until `run` is over.
async fn load(t: &Arc<Transport>, body: &Bytes, conns: usize, run: Duration) -> Stats {
    let deadline = Instant::now() + run;
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(worker(t.clone(), body.clone(), deadline)))
        .collect();
    Stats::gather(tasks, started).await
}

async fn worker(t: Arc<Transport>, body: Bytes, deadline: Instant) -> (Vec<Duration>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        if t.call(body.clone()).await {
            lat.push(t0.elapsed());
        } else {
            errors += 1;
        }
    }
    (lat, errors)
}

/// CPU ticks so far of this process and of `server` (0 without one).
fn ticks(server: Option<u32>) -> (u64, u64) {
    let own = cpu_ticks(std::process::id()).unwrap_or(0);
    (own, server.and_then(cpu_ticks).unwrap_or(0))
}

fn print_header() {
    println!(
        "{:<9} {:>7} {:>5} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8} {:>6}",
        "transport",
        "body",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "proc us",
        "nats us",
        "total us",
        "MiB/s",
        "errors"
    );
}

/// Measures one row and prints it; `server` is nats-server's pid, for the NATS rows.
async fn row(t: &Arc<Transport>, kib: usize, conns: usize, secs: u64, server: Option<u32>) {
    let body = Bytes::from(vec![b'x'; kib * 1024]);
    load(t, &body, conns, WARM_UP).await;
    let server = matches!(**t, Transport::Nats { .. })
        .then_some(server)
        .flatten();
    let before = ticks(server);
    let s = load(t, &body, conns, Duration::from_secs(secs)).await;
    let after = ticks(server);
    let per_req =
        |a: u64, b: u64| a.saturating_sub(b) as f64 * 1e6 / clk_tck() / s.requests.max(1) as f64;
    let own = per_req(after.0, before.0);
    let srv = per_req(after.1, before.1);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let nats_us = server.map_or("-".into(), |_| format!("{srv:.1}"));
    let mibs = if kib > 1 {
        format!("{:.1}", s.rps * kib as f64 / 1024.0)
    } else {
        "-".into()
    };
    println!(
        "{:<9} {:>4} KiB {:>5} {:>9.0} {:>8.3} {:>8.3} {:>9.1} {:>9} {:>9.1} {:>8} {:>6}",
        t.name(),
        kib,
        conns,
        s.rps,
        ms(s.p50),
        ms(s.p99),
        own,
        nats_us,
        own + srv,
        mibs,
        s.errors
    );
}

#[tokio::main]
async fn main() {
    let secs = std::env::var("TWK_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let Ok(nats) = Nats::start().await else {
        eprintln!("benchmark needs nats-server (apt-get install nats-server)");
        std::process::exit(2);
    };
    let server = nats_server_pid();
    let http = Arc::new(http_transport(echo_server().await));
    let _replier = nats_echo(&nats.url).await;
    let requester = async_nats::connect(&nats.url).await.unwrap();
    println!(
        "twk node transport benchmark: {secs} s per row, echo of the body; nats-server pid {}, \
         max_payload {} bytes (1 MiB+ bodies would need chunking over NATS); {} CPUs",
        server.map_or("unknown".into(), |p| p.to_string()),
        requester.server_info().max_payload,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let nats_t = Arc::new(Transport::Nats { client: requester });
    print_header();
    for kib in [1, 64, 512] {
        for conns in [1, 16, 64] {
            for t in [&http, &nats_t] {
                row(t, kib, conns, secs, server).await;
            }
        }
    }
    nats.stop().await;
}
