//! Builders and handles for relays, agents, local targets and senders.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twk_agent::{AgentConfig, AgentError, ConnState, Observer, RelayUrl, Target};
use twk_capture::Exchange;
use twk_relay::{Auth, RelayConfig, TokenSet, UrlStyle};

/// Installs a test tracing subscriber once (respects `RUST_LOG`).
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A running relay.
pub struct RelayHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancel to shut it down.
    pub shutdown: CancellationToken,
    /// The serve task.
    pub task: JoinHandle<Result<(), twk_relay::RelayError>>,
}

impl RelayHandle {
    /// `http://127.0.0.1:port` (or https with TLS).
    pub fn url(&self, tls: bool) -> String {
        format!("{}://{}", if tls { "https" } else { "http" }, self.addr)
    }

    /// Shuts down and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// A relay config for tests: path-style URLs on the bound address, short deadlines.
pub fn relay_config(auth: Auth) -> RelayConfig {
    let mut c = RelayConfig::new("relay.test", auth);
    c.url_style = UrlStyle::Path;
    c.shutdown_grace = Duration::from_secs(5);
    // Load tests send hundreds of requests at once from one address; the hardening tests
    // turn the limits they check back on.
    c.abuse = twk_relay::AbuseLimits::none();
    c
}

/// A token set of the given plaintext tokens.
pub fn tokens(t: &[&str]) -> Auth {
    Auth::Tokens(TokenSet::from_plaintext(t.iter().copied()))
}

/// Starts a relay on a fresh loopback port. When `cfg.domain` is `relay.test` it is replaced
/// by the bound address, so path-routed public URLs work as given.
pub async fn spawn_relay(cfg: RelayConfig) -> RelayHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_relay_on(listener, cfg)
}

/// Starts a relay on a given listener.
pub fn spawn_relay_on(listener: TcpListener, cfg: RelayConfig) -> RelayHandle {
    serve_on(listener, None, cfg)
}

/// Starts a relay, as [`spawn_relay`], with the operator's metrics listener on a loopback
/// port of its own; returns the relay and the metrics address.
pub async fn spawn_relay_with_metrics(cfg: RelayConfig) -> (RelayHandle, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = metrics.local_addr().unwrap();
    (serve_on(listener, Some(metrics), cfg), maddr)
}

fn serve_on(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    mut cfg: RelayConfig,
) -> RelayHandle {
    let addr = listener.local_addr().unwrap();
    if cfg.domain == "relay.test" {
        cfg.domain = addr.to_string();
    }
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(twk_relay::serve_with_metrics(
        listener,
        metrics,
        cfg,
        shutdown.clone(),
    ));
    RelayHandle {
        addr,
        shutdown,
        task,
    }
}

/// Records everything an agent reports.
struct ChannelObserver {
    states: mpsc::UnboundedSender<ConnState>,
    exchanges: mpsc::UnboundedSender<Exchange>,
    rtts: mpsc::UnboundedSender<Duration>,
    unkept: mpsc::UnboundedSender<twk_protocol::refused::Unkept>,
    unlisted: mpsc::UnboundedSender<u64>,
}

impl Observer for ChannelObserver {
    fn connection(&self, state: &ConnState) {
        let _ = self.states.send(state.clone());
    }
    fn exchange(&self, exchange: Exchange) {
        let _ = self.exchanges.send(exchange);
    }
    fn rtt(&self, rtt: Duration) {
        let _ = self.rtts.send(rtt);
    }
    fn unkept(&self, unkept: &twk_protocol::refused::Unkept) {
        let _ = self.unkept.send(*unkept);
    }
    fn refused_unlisted(&self, count: u64) {
        let _ = self.unlisted.send(count);
    }
}

/// A running agent.
pub struct AgentHandle {
    /// Cancel to shut it down.
    pub shutdown: CancellationToken,
    /// State changes, in order.
    pub states: mpsc::UnboundedReceiver<ConnState>,
    /// Finished exchanges.
    pub exchanges: mpsc::UnboundedReceiver<Exchange>,
    /// Measured relay round trips.
    pub rtts: mpsc::UnboundedReceiver<Duration>,
    /// What the relay could not keep while the agent was offline, as each session told it.
    pub unkept: mpsc::UnboundedReceiver<twk_protocol::refused::Unkept>,
    /// Refused requests the relay only counted, as each notice told them.
    pub unlisted: mpsc::UnboundedReceiver<u64>,
    /// The run task.
    pub task: JoinHandle<Result<(), AgentError>>,
}

impl AgentHandle {
    /// Waits (up to 10 s) for the next `Connected` state; returns (name, public URL).
    pub async fn connected(&mut self) -> (String, String) {
        let fut = async {
            while let Some(s) = self.states.recv().await {
                if let ConnState::Connected { name, public_url } = s {
                    return (name, public_url);
                }
            }
            panic!("agent stopped before connecting");
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("agent did not connect within 10 s")
    }

    /// Waits (up to 10 s) for a state matching `pred`.
    pub async fn state(&mut self, pred: impl Fn(&ConnState) -> bool) -> ConnState {
        let fut = async {
            while let Some(s) = self.states.recv().await {
                if pred(&s) {
                    return s;
                }
            }
            panic!("agent state stream ended");
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("state not reached within 10 s")
    }

    /// Waits (up to 10 s) for the next finished exchange.
    pub async fn exchange(&mut self) -> Exchange {
        tokio::time::timeout(Duration::from_secs(10), self.exchanges.recv())
            .await
            .expect("no exchange within 10 s")
            .expect("agent gone")
    }

    /// Shuts down and returns the run result.
    pub async fn stop(self) -> Result<(), AgentError> {
        self.shutdown.cancel();
        self.task.await.unwrap()
    }
}

/// An agent config for `relay` forwarding to `target`.
pub fn agent_config(relay: &RelayHandle, target: SocketAddr) -> AgentConfig {
    let mut c = AgentConfig::new(
        RelayUrl::parse(&relay.url(false)).unwrap(),
        Target::parse(&target.to_string()).unwrap(),
    );
    c.shutdown_grace = Duration::from_secs(5);
    c
}

/// Starts an agent.
pub fn spawn_agent(cfg: AgentConfig) -> AgentHandle {
    let (stx, states) = mpsc::unbounded_channel();
    let (etx, exchanges) = mpsc::unbounded_channel();
    let (rtx, rtts) = mpsc::unbounded_channel();
    let (utx, unkept) = mpsc::unbounded_channel();
    let (ltx, unlisted) = mpsc::unbounded_channel();
    let observer = Arc::new(ChannelObserver {
        states: stx,
        exchanges: etx,
        rtts: rtx,
        unkept: utx,
        unlisted: ltx,
    });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(twk_agent::run(cfg, observer, shutdown.clone()));
    AgentHandle {
        shutdown,
        states,
        exchanges,
        rtts,
        unkept,
        unlisted,
        task,
    }
}

/// An agent run as twk-tunnel runs it: on a thread of its own, whose single-threaded runtime
/// ends when the agent returns (tasks still on it end with it). Returns once it is connected,
/// with the thread and the tunnel's name; `observer` must send its states on `states`.
pub async fn agent_on_own_thread(
    cfg: AgentConfig,
    observer: Arc<dyn Observer>,
    states: &mut mpsc::UnboundedReceiver<ConnState>,
    shutdown: CancellationToken,
) -> (std::thread::JoinHandle<Result<(), AgentError>>, String) {
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(twk_agent::run(cfg, observer, shutdown))
    });
    let connected = async {
        loop {
            match states.recv().await.expect("agent stopped") {
                ConnState::Connected { name, .. } => break name,
                _ => continue,
            }
        }
    };
    let name = tokio::time::timeout(Duration::from_secs(10), connected)
        .await
        .expect("agent did not connect within 10 s");
    (thread, name)
}

/// What a local target received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and raw query.
    pub path_and_query: String,
    /// Headers in order, one entry per value.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Bytes,
}

impl Received {
    /// All values of a header, in order, as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }
}

type Responder = Arc<dyn Fn(&Received) -> Response<Full<Bytes>> + Send + Sync>;

/// A local HTTP/1.1 server that records requests and answers through a closure.
pub struct FakeTarget {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request received, in order of arrival (recorded before the answer is sent).
    pub received: mpsc::UnboundedReceiver<Received>,
    /// Cancel to stop accepting.
    pub shutdown: CancellationToken,
}

/// The usual start of a scenario: tracing, an open relay (no tokens) and an echo target.
pub async fn open_relay_and_echo() -> (RelayHandle, FakeTarget) {
    trace_init();
    let relay = spawn_relay(relay_config(Auth::Open)).await;
    (relay, FakeTarget::echo().await)
}

impl FakeTarget {
    /// A target that answers 200 with the request body echoed and `x-echo-*` headers.
    pub async fn echo() -> FakeTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeTarget::echo_on(listener)
    }

    /// [`FakeTarget::echo`] on a given listener (e.g. an address a relay used to have).
    pub fn echo_on(listener: TcpListener) -> FakeTarget {
        FakeTarget::start_on(
            listener,
            Arc::new(|r: &Received| {
                let mut resp = Response::new(Full::new(r.body.clone()));
                let h = resp.headers_mut();
                h.insert("x-echo-method", r.method.parse().unwrap());
                if let Ok(v) = r.path_and_query.parse() {
                    h.insert("x-echo-path", v);
                }
                resp
            }),
            Duration::ZERO,
        )
    }

    /// A target answering with `f`.
    pub async fn with(
        f: impl Fn(&Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> FakeTarget {
        FakeTarget::start(Arc::new(f), Duration::ZERO).await
    }

    /// A target that waits `delay` before answering 200 `ok` to paths starting with `/slow`
    /// (for deadline and concurrency tests), and answers other paths at once.
    pub async fn slow(delay: Duration) -> FakeTarget {
        let ok: Responder = Arc::new(|_| Response::new(Full::new(Bytes::from_static(b"ok"))));
        FakeTarget::start(ok, delay).await
    }

    async fn start(f: Responder, slow_delay: Duration) -> FakeTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeTarget::start_on(listener, f, slow_delay)
    }

    fn start_on(listener: TcpListener, f: Responder, slow_delay: Duration) -> FakeTarget {
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => r.unwrap(),
                    _ = stop.cancelled() => return,
                };
                let tx = tx.clone();
                let f = f.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let tx = tx.clone();
                        let f = f.clone();
                        async move {
                            let r = read_request(req).await;
                            let resp = f(&r);
                            let slow = r.path_and_query.starts_with("/slow");
                            let _ = tx.send(r);
                            if slow && !slow_delay.is_zero() {
                                tokio::time::sleep(slow_delay).await;
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        FakeTarget {
            addr,
            received,
            shutdown,
        }
    }

    /// The next received request (waits up to 10 s).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("target received nothing within 10 s")
            .expect("target gone")
    }
}

async fn read_request(req: Request<Incoming>) -> Received {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Received {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
        body,
    }
}

/// A reply as the sender saw it.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// Body as lossy text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request on a fresh connection to `addr`. `headers` go out in order.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Reply> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path);
    let mut has_host = false;
    for (n, v) in headers {
        has_host |= n.eq_ignore_ascii_case("host");
        req = req.header(*n, *v);
    }
    if !has_host {
        req = req.header("host", addr.to_string());
    }
    let resp = sender
        .send_request(req.body(Full::new(body.into()))?)
        .await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A shared pooled client for load.
pub fn pooled_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A self-signed certificate for `localhost` and 127.0.0.1: (cert PEM, key PEM).
pub fn self_signed() -> (String, String) {
    self_signed_for(&["localhost", "127.0.0.1"])
}

/// A self-signed certificate for `names` (wildcards as `*.localhost`): (cert PEM, key PEM).
pub fn self_signed_for(names: &[&str]) -> (String, String) {
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A self-signed certificate for `localhost` marked as a CA (`basicConstraints CA:TRUE`), as
/// `openssl req -x509` makes them by default: (cert PEM, key PEM).
pub fn self_signed_ca_flagged() -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A relay speaking TLS with `cert`/`key` (PEM) on a fresh loopback port.
pub async fn spawn_tls_relay(mut cfg: RelayConfig, cert: &str, key: &str) -> RelayHandle {
    cfg.tls =
        Some(twk_transport::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap());
    spawn_relay(cfg).await
}

/// A TCP proxy that can be told to go silent without closing anything: a half-open link, as
/// when a NAT forgets the connection or a laptop sleeps. A cut silences the connections open
/// at that moment; later connections pass (the network came back).
pub struct Blackhole {
    /// Where it listens.
    pub addr: SocketAddr,
    cuts: Arc<std::sync::atomic::AtomicU64>,
}

impl Blackhole {
    /// Proxies every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cuts2 = cuts.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let born = cuts2.load(std::sync::atomic::Ordering::SeqCst);
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pipe_until_cut(dr, uw, cuts2.clone(), born));
                tokio::spawn(pipe_until_cut(ur, dw, cuts2.clone(), born));
            }
        });
        Blackhole { addr, cuts }
    }

    /// From now on, bytes on the connections open now are swallowed in both directions;
    /// their sockets stay open.
    pub fn cut(&self) {
        self.cuts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pipe_until_cut(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cuts: Arc<std::sync::atomic::AtomicU64>,
    born: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let cut = cuts.load(std::sync::atomic::Ordering::SeqCst) > born;
        if !cut && to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Hold the other half open: silence, not a close.
    std::future::pending::<()>().await;
    drop(to);
}

/// A hand-made tunnel client for hostile tests: upgrades with the given headers and serves
/// HTTP/2 over the websocket with `svc`, as any program could (not `twk-agent`).
pub async fn raw_agent<F>(
    relay: SocketAddr,
    headers: &[(&str, &str)],
    respond: F,
) -> anyhow::Result<JoinHandle<()>>
where
    F: Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    use tungstenite::client::IntoClientRequest;
    let tcp = tokio::net::TcpStream::connect(relay).await?;
    let mut req = format!("ws://{relay}{}", twk_protocol::CONNECT_PATH).into_client_request()?;
    req.headers_mut().insert(
        twk_protocol::upgrade::PROTOCOL,
        http::HeaderValue::from(twk_protocol::PROTOCOL_VERSION),
    );
    for (n, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(n.as_bytes())?,
            http::HeaderValue::from_str(v)?,
        );
    }
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(req, tcp, Some(twk_transport::ws_config()))
            .await?;
    let respond = Arc::new(respond);
    let io = TokioIo::new(twk_transport::WsIo::new(ws));
    let svc = service_fn(move |req| {
        let respond = respond.clone();
        async move { Ok::<_, Infallible>(respond(req)) }
    });
    Ok(tokio::spawn(async move {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .max_send_buf_size(4 * 1024 * 1024)
            .serve_connection(io, svc)
            .await;
    }))
}

/// A tunnel client named `big` answering `/…/big` with `size` bytes (each such request said
/// on the receiver) and anything else with `ok`.
pub async fn big_answers(
    relay: std::net::SocketAddr,
    size: usize,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let (asked_tx, asked) = tokio::sync::mpsc::unbounded_channel::<()>();
    let large = bytes::Bytes::from(vec![b'b'; size]);
    let client = raw_agent(relay, &[("x-twk-name", "big")], move |req| {
        let body = if req.uri().path().ends_with("/big") {
            let _ = asked_tx.send(());
            large.clone()
        } else {
            bytes::Bytes::from_static(b"ok")
        };
        http::Response::new(http_body_util::Full::new(body))
    })
    .await
    .unwrap();
    (client, asked)
}

/// `n` connections to `entry`, each asking `GET path` and never reading the answer; their
/// receive buffers are small, so the kernel takes little of the answers off the relay's hands.
pub async fn unread_answers(entry: SocketAddr, path: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt as _;
    let mut out = Vec::new();
    for _ in 0..n {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(entry).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: relay\r\n\r\n").as_bytes())
            .await
            .unwrap();
        out.push(s);
    }
    out
}

/// Until three probes in a row through `entry` get no answer within 100 ms (at most 300
/// tries): readers who do not read hold the tunnel's window. A webhook sent before that got
/// through on what was left of it; one slow answer alone may be a busy machine.
pub async fn until_answers_wait(entry: SocketAddr, probe: &str) {
    let mut waited = 0;
    for _ in 0..300 {
        let r = send(entry, "POST", probe, &[], "x");
        match tokio::time::timeout(Duration::from_millis(100), r).await {
            Ok(r) => {
                assert_eq!(r.unwrap().status, 200);
                waited = 0;
            }
            Err(_) if waited == 2 => return,
            Err(_) => waited += 1,
        }
    }
}

/// An app on a raw socket, for answers hyper would not write (a 101, trailer fields, an
/// answer before the body): reads each connection until `done` says the request is in,
/// sends what it read on the returned channel, writes `answer` and closes.
pub async fn raw_app(
    answer: &'static [u8],
    done: fn(&[u8]) -> bool,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                while !done(&got) {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = seen_tx.send(got);
                let _ = conn.write_all(answer).await;
            });
        }
    });
    (addr, seen)
}

/// For [`raw_app`]: the request's head is in.
pub fn head_in(got: &[u8]) -> bool {
    got.windows(4).any(|w| w == b"\r\n\r\n")
}

/// Up to `tries` times: [`until_answers_wait`], then a webhook (`POST path` through `entry`),
/// which must be answered 200 "ok" within 60 s; stops once the relay serving `metrics` counts
/// an evicted reader, and returns that count. The probes only time the window's hold: on a
/// loaded machine three slow answers can pass for a held window, and a webhook sent then gets
/// through on what is left of it, with nobody waiting behind the readers to evict them.
/// Readers who never read fill the window in the end, so a later webhook waits behind them.
pub async fn webhooks_until_evicted(
    entry: SocketAddr,
    path: &str,
    metrics: SocketAddr,
    tries: usize,
) -> f64 {
    let mut evicted = 0.0;
    for _ in 0..tries {
        until_answers_wait(entry, "/t/big/probe").await;
        let r = tokio::time::timeout(Duration::from_secs(60), send(entry, "POST", path, &[], "x"))
            .await
            .expect("the webhook's answer came through")
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "ok");
        evicted = scrape_metric(metrics, "twk_relay_readers_evicted_total").await;
        if evicted > 0.0 {
            break;
        }
    }
    evicted
}

/// Sends raw bytes on a fresh connection from `from` (any 127.0.0.0/8 address) and returns
/// what came back until the relay closed or 5 s passed.
pub async fn raw_from(from: std::net::IpAddr, addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    // One complete answer is enough: stop at the end of a known-length body.
                    if answer_complete(&out) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends raw bytes from 127.0.0.1.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    raw_from([127, 0, 0, 1].into(), addr, bytes).await
}

fn answer_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some(head_end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..head_end].to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(n) => out.len() >= head_end + 4 + n,
        None => head.starts_with("http/1.1 101"),
    }
}

/// Reads a child process's stderr to the end in the background (a full pipe would stall a
/// chatty process, e.g. one logging at trace level), returning it as text.
pub fn drain_stderr(child: &mut tokio::process::Child) -> JoinHandle<String> {
    use tokio::io::AsyncReadExt;
    let mut err = child.stderr.take().expect("stderr piped");
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The value of one series (name and labels, e.g. `twk_relay_holds_total{reason="offline"}`)
/// in a Prometheus text exposition; 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Scrapes the relay's metrics listener at `addr` and returns one series' value.
pub async fn scrape_metric(addr: SocketAddr, series: &str) -> f64 {
    let text = send(addr, "GET", "/_twk/metrics", &[], "")
        .await
        .unwrap()
        .text();
    metric_value(&text, series)
}
