//! The accept loop, connection handling and graceful shutdown.

use crate::abuse::Abuse;
use crate::body::{RelayBody, full};
use crate::config::RelayConfig;
use crate::registry::{Registry, Rules};
use crate::reservations::Store;
use crate::window::Reader;
use crate::{connect, ingress};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};
use twk_protocol::{CONNECT_PATH, HEALTH_PATH, RESERVED_PREFIX};
use twk_transport::BoxedIo;

/// Errors that stop the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The configuration is invalid.
    #[error("invalid relay configuration: {0}")]
    Config(String),
    /// The listener failed in a way that cannot be retried.
    #[error("listener failed")]
    Listener(#[source] std::io::Error),
}

/// The ALPN protocol of ACME TLS-ALPN-01 validation.
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// State shared by every connection of one relay.
pub(crate) struct State {
    pub(crate) cfg: RelayConfig,
    pub(crate) registry: Registry,
    pub(crate) abuse: Arc<Abuse>,
    pub(crate) metrics: crate::metrics::Metrics,
    /// Accepted tokens (with `Auth::Tokens`); replaced when the tokens file is reloaded.
    pub(crate) tokens: std::sync::RwLock<crate::tokens::TokenSet>,
    /// Parent of every tunnel session's token; cancelled once ingress has drained.
    pub(crate) sessions: CancellationToken,
    /// Tracks tunnel sessions and connections for the final wait.
    pub(crate) tracker: TaskTracker,
    /// Requests kept while their tunnel's client is offline.
    pub(crate) keep: Option<crate::keep::KeepStore>,
    /// Connections to the other nodes of a cluster.
    pub(crate) peers: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        RelayBody,
    >,
    /// Set when shutdown starts: a cluster node's sessions then end by their clients moving.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// Distinguishes request ids of this relay process from those of a previous one.
    request_prefix: String,
    next_request: AtomicU64,
}

impl State {
    pub(crate) fn next_request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed) + 1;
        [&self.request_prefix, "-", itoa::Buffer::new().format(n)].concat()
    }
}

/// Runs a relay on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// in-flight requests finish for up to `cfg.shutdown_grace`, and closes every tunnel.
pub async fn serve(
    listener: TcpListener,
    cfg: RelayConfig,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    serve_with_metrics(listener, None, cfg, shutdown).await
}

/// [`serve`], plus `/_twk/metrics` (Prometheus text format) on `metrics`, a listener of the
/// operator's choosing that the public port never exposes.
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    cfg: RelayConfig,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    serve_node(listener, metrics, None, cfg, shutdown).await
}

/// [`serve_with_metrics`], plus the peer listener of a cluster node (`cfg.cluster`): where
/// other nodes send requests for the tunnels this node holds. Only requests that present
/// this node's secret are taken; it belongs on a private network between the nodes.
pub async fn serve_node(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    peer: Option<TcpListener>,
    cfg: RelayConfig,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    if peer.is_some() != cfg.cluster.is_some() {
        return Err(RelayError::Config(
            "a cluster node needs both the cluster and a peer listener".into(),
        ));
    }
    cfg.validate().map_err(RelayError::Config)?;
    let grace = cfg.shutdown_grace;
    let tls = cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let store = match &cfg.state_file {
        Some(path) => Some(
            Store::open(path)
                .map_err(|e| RelayError::Config(format!("state file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let rules = Rules {
        max_tunnels: cfg.max_tunnels,
        max_per_token: cfg.abuse.max_tunnels_per_token,
        max_reserved_per_token: cfg.max_reserved_per_token,
        name_hold: cfg.name_hold,
        hold: cfg.hold,
        hold_max: cfg.hold_max,
        tunnel_rate: cfg.abuse.tunnel_rate,
        tunnel_burst: cfg.abuse.tunnel_burst,
    };
    let abuse = Arc::new(Abuse::new(cfg.abuse.clone(), cfg.trust_proxy.clone()));
    let tokens = match &cfg.auth {
        crate::Auth::Tokens(set) => set.clone(),
        crate::Auth::Open => Default::default(),
    };
    let updates = cfg.token_updates.clone();
    let keep_store = cfg
        .keep_dir
        .clone()
        .map(|d| crate::keep::KeepStore::new(d, cfg.keep.clone()));
    let state = Arc::new(State {
        metrics: crate::metrics::Metrics::default(),
        tokens: std::sync::RwLock::new(tokens),
        cfg,
        registry: Registry::new(rules, store.clone(), twk_protocol::now_ms()),
        abuse,
        sessions: CancellationToken::new(),
        tracker: TaskTracker::new(),
        keep: keep_store,
        peers: crate::peer::client(),
        draining: std::sync::atomic::AtomicBool::new(false),
        request_prefix: twk_protocol::random_name()[..6].to_string(),
        next_request: AtomicU64::new(0),
    });
    if let Some(rx) = updates {
        tokio::spawn(follow_tokens(state.clone(), rx, shutdown.clone()));
    }
    if let Some(m) = metrics {
        tokio::spawn(serve_metrics(m, state.clone(), shutdown.clone()));
    }
    // Ingress connections (public, and other nodes' on the peer listener), drained on
    // shutdown; tunnel sessions live in `state.tracker`.
    let conns = TaskTracker::new();
    let drain = CancellationToken::new();
    if state.cfg.cluster.is_some() && state.keep.is_some() {
        tokio::spawn(crate::peer::carry_kept(state.clone(), shutdown.clone()));
        let announced = crate::keep::cluster::deliver_announced(state.clone(), shutdown.clone());
        tokio::spawn(announced);
    }
    if let Some(p) = peer {
        // Other nodes keep reaching this one's tunnels while it drains, until its clients moved.
        tokio::spawn(serve_peers(p, state.clone(), conns.clone(), drain.clone()));
    }
    let mut accept_errors = 0u32;
    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => { accept_errors = 0; c }
                Err(e) => {
                    // EMFILE and friends: back off and keep serving.
                    accept_errors = accept_errors.saturating_add(1);
                    warn!(error = %e, "accept failed");
                    let backoff = Duration::from_millis(10u64 << accept_errors.min(6));
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let slot = state.abuse.open_conn(remote.ip());
        let (state2, tls, drain) = (state.clone(), tls.clone(), drain.clone());
        conns.spawn(
            serve_conn(state2, tcp, remote, slot, tls, drain)
                .instrument(info_span!("conn", peer = %remote)),
        );
    }
    drop(listener);
    state.draining.store(true, Ordering::Relaxed);
    if state.cfg.cluster.is_some() {
        crate::peer::ask_clients_to_move(&state).await;
        // They close their sessions here once their new one is up and what is in flight is
        // answered; requests from other nodes keep coming in until then.
        let moved = async {
            while state.registry.connected() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(grace, moved).await.is_err() {
            warn!("some tunnel clients did not move within the grace period");
        }
    }
    info!("shutting down: draining in-flight requests");
    drain.cancel();
    conns.close();
    if tokio::time::timeout(grace, conns.wait()).await.is_err() {
        warn!(?grace, "grace period over; closing remaining connections");
    }
    state.sessions.cancel();
    state.tracker.close();
    if let Some(store) = &store {
        let _ = tokio::time::timeout(Duration::from_secs(5), store.flush()).await;
    }
    if tokio::time::timeout(Duration::from_secs(5), state.tracker.wait())
        .await
        .is_err()
    {
        warn!("some tasks did not stop within 5 s of shutdown");
    }
    Ok(())
}

/// The TLS handshake of a public connection (bounded by the handshake timeout); `None` when
/// it failed, timed out, or was an ACME TLS-ALPN-01 validation (which carries no HTTP).
async fn tls_accept(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> Option<BoxedIo> {
    match tokio::time::timeout(
        twk_protocol::limits::HANDSHAKE_TIMEOUT,
        acceptor.accept(tcp),
    )
    .await
    {
        // TLS-ALPN-01 validation (RFC 8737): the handshake was the whole answer.
        Ok(Ok(s)) if s.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {
            debug!("answered an ACME TLS-ALPN-01 validation");
            None
        }
        Ok(Ok(s)) => Some(Box::new(s)),
        Ok(Err(e)) => {
            debug!(error = %e, "tls handshake failed");
            None
        }
        Err(_) => {
            debug!("tls handshake timed out");
            None
        }
    }
}

/// One public connection: TLS, the per-address slot (refused politely without one), then
/// HTTP/1.1 with the configured limits until it ends or the relay drains.
async fn serve_conn(
    state: Arc<State>,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    slot: Option<crate::abuse::ConnSlot>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    drain: CancellationToken,
) {
    let io: BoxedIo = match tls {
        None => Box::new(tcp),
        Some(acceptor) => match tls_accept(acceptor, tcp).await {
            Some(io) => io,
            None => return,
        },
    };
    let Some(_slot) = slot else {
        refuse_connection(io, state.cfg.header_read_timeout).await;
        return;
    };
    let svc_state = state.clone();
    let reader = Reader::new();
    let svc_reader = reader.clone();
    let svc = service_fn(move |req| handle(svc_state.clone(), remote, req, svc_reader.clone()));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.cfg.header_read_timeout)
        .max_headers(state.cfg.max_headers)
        .max_header_size(state.cfg.max_head_bytes)
        .max_buf_size(state.cfg.max_head_bytes.max(8192) * 2)
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(
                crate::stall::Stalling::new(io, state.cfg.send_stall_timeout)
                    .telling(reader.clone()),
            ),
            svc,
        )
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        // Dropped: its answer's stream is reset, and the window it held comes back.
        () = reader.evicted().cancelled() => {
            state.metrics.readers_evicted.inc();
            info!(%remote, "a slow reader's connection closed: readers like it held the window its tunnel's other answers needed");
            return;
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}

/// The next connection on an operator's listener (peer, metrics), until `shutdown`; accept
/// errors (EMFILE) are retried after a pause.
async fn accept_until(
    listener: &TcpListener,
    what: &str,
    shutdown: &CancellationToken,
) -> Option<tokio::net::TcpStream> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => return Some(tcp),
                Err(e) => {
                    warn!(error = %e, "{what} accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.cancelled() => return None,
        }
    }
}

/// Serves the peer listener: requests other nodes send for tunnels held here.
async fn serve_peers(
    listener: TcpListener,
    state: Arc<State>,
    conns: TaskTracker,
    shutdown: CancellationToken,
) {
    while let Some(tcp) = accept_until(&listener, "peer", &shutdown).await {
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            // The node sending on a request streams its answer to a sender there: a slow
            // sender slows this connection, and its answer holds this tunnel's window as a
            // public reader here would. It is watched and evicted alike (`window.rs`).
            let reader = Reader::new();
            let (svc_state, svc_reader) = (state.clone(), reader.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                let (state, reader) = (svc_state.clone(), svc_reader.clone());
                async move {
                    let resp = if !crate::peer::vouched(&state, &req) {
                        text(
                            StatusCode::FORBIDDEN,
                            "twk relay: not a node of this cluster\n",
                        )
                    } else if req.uri().path().starts_with(crate::peer::KEPT_PATH) {
                        crate::peer::receive_kept(&state, req).await
                    } else if let Some((sender, hop)) = crate::peer::sender_of(&req) {
                        ingress::forward_as(state, sender, req, hop, Some(reader)).await
                    } else {
                        text(
                            StatusCode::BAD_REQUEST,
                            "twk relay: a peer request names no sender\n",
                        )
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let io = crate::stall::Stalling::new(tcp, state.cfg.send_stall_timeout)
                .telling(reader.clone());
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                () = reader.evicted().cancelled() => {
                    state.metrics.readers_evicted.inc();
                    info!("a peer node's connection closed: its slow senders held the window this tunnel's other answers needed");
                }
            }
        });
    }
}

/// Answers `GET /_twk/metrics` on the operator's metrics listener.
async fn serve_metrics(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    while let Some(tcp) = accept_until(&listener, "metrics", &shutdown).await {
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    let resp = if req.uri().path() == twk_protocol::METRICS_PATH {
                        let mut r = Response::new(full(
                            state
                                .metrics
                                .encode(state.registry.connected(), state.cfg.cluster.as_deref()),
                        ));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        text(
                            StatusCode::NOT_FOUND,
                            "twk relay: metrics are at /_twk/metrics\n",
                        )
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Switches to each new token set; tunnels of tokens no longer in it are closed.
async fn follow_tokens(
    state: Arc<State>,
    mut rx: tokio::sync::watch::Receiver<crate::tokens::TokenSet>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        let new = rx.borrow_and_update().clone();
        let kept = new.owners();
        let old = {
            let mut tokens = state.tokens.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *tokens, new)
        };
        info!(tokens = kept.len(), "tokens reloaded");
        for entry in old.entries() {
            let owner = entry.owner();
            if !kept.contains(&owner) {
                let closed = state.registry.revoke_owner(&owner);
                info!(label = ?entry.label, tunnels_closed = closed, "token revoked");
            }
        }
    }
}

/// Answers one request with 429 and closes: the address has too many connections open.
async fn refuse_connection(io: BoxedIo, header_read_timeout: Duration) {
    let svc = service_fn(|_req: Request<Incoming>| async {
        let mut r = text(
            StatusCode::TOO_MANY_REQUESTS,
            "twk relay: too many open connections from your address (sender side)\n",
        );
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1u32));
        Ok::<_, Infallible>(r)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), svc);
    let _ = tokio::time::timeout(header_read_timeout, conn).await;
}

fn handle(
    state: Arc<State>,
    remote: SocketAddr,
    req: Request<Incoming>,
    reader: Arc<Reader>,
) -> impl Future<Output = Result<Response<RelayBody>, Infallible>> + Send {
    use futures_util::future::{Either, FutureExt, ready};
    // Not an `async fn`: hyper moves each request's future whole into place, and an
    // `async fn` wrapping the webhook's would hold the request twice more and the tunnel's
    // upgrade inline (rust-lang/rust#62958). A webhook's future is `forward_as`'s, mapped.
    let answer = |resp| Either::Left(ready(Ok(resp)));
    // RFC 9112 §3.2: an HTTP/1.1 request with no Host, or more than one, is refused.
    if req.version() == http::Version::HTTP_11
        && req.headers().get_all(http::header::HOST).iter().count() != 1
    {
        return answer(text(
            StatusCode::BAD_REQUEST,
            "twk relay: an HTTP/1.1 request needs exactly one Host header (sender side)\n",
        ));
    }
    let path = req.uri().path();
    if path == HEALTH_PATH {
        return answer(health(&state));
    }
    if path == CONNECT_PATH {
        let upgrade: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(connect::upgrade(state, remote, req).map(Ok));
        return Either::Right(Either::Left(upgrade));
    }
    if path.starts_with(RESERVED_PREFIX) {
        return answer(text(
            StatusCode::NOT_FOUND,
            "twk relay: no such relay endpoint\n",
        ));
    }
    let t0 = std::time::Instant::now();
    let metrics = state.clone();
    let forwarded = ingress::forward(state, remote, req, reader).map(move |resp| {
        let source = resp
            .headers()
            .get(twk_protocol::ERROR_SOURCE_HEADER)
            .and_then(|v| v.to_str().ok());
        metrics
            .metrics
            .request(resp.status().as_u16(), source, t0.elapsed());
        Ok(resp)
    });
    Either::Right(Either::Right(forwarded))
}

fn health(state: &State) -> Response<RelayBody> {
    // Version and tunnel count help an attacker more than a load balancer: only on request.
    let body = if state.cfg.health_detail {
        serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": twk_protocol::PROTOCOL_VERSION,
            "tunnels": state.registry.connected(),
        })
    } else {
        serde_json::json!({ "status": "ok" })
    };
    let mut r = Response::new(full(format!("{body}\n")));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A short plain-text answer produced by the relay itself.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response<RelayBody> {
    twk_transport::body::text_response(status, body, "relay")
}
