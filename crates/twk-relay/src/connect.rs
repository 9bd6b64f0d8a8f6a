//! The tunnel upgrade: authenticate, claim a name, switch to websocket, run HTTP/2 over it.

use crate::Auth;
use crate::abuse::{ClientAddr, Refusal};
use crate::body::RelayBody;
use crate::registry::Claim;
use crate::server::{State, text};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, info, info_span, warn};
use tungstenite::protocol::Role;
use twk_protocol::now_ms;
use twk_protocol::{RefusalCode, limits, upgrade};
use twk_transport::WsIo;

fn refuse(status: StatusCode, code: RefusalCode, msg: &str) -> Response<RelayBody> {
    let mut r = text(status, format!("twk relay: {msg}\n"));
    r.headers_mut()
        .insert(upgrade::ERROR, HeaderValue::from_static(code.as_str()));
    match status {
        // Nothing about the relay (its protocol version) is told to an unauthenticated caller.
        StatusCode::UNAUTHORIZED => {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"twk\""),
            );
        }
        StatusCode::TOO_MANY_REQUESTS => {}
        _ => {
            r.headers_mut().insert(
                upgrade::PROTOCOL,
                HeaderValue::from(twk_protocol::PROTOCOL_VERSION),
            );
        }
    }
    r
}

fn header_str(req: &Request<Incoming>, name: impl http::header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    req.method() == http::Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && header_str(req, header::SEC_WEBSOCKET_VERSION) == Some("13")
}

fn rate_limited(r: Refusal) -> Response<RelayBody> {
    let (wait, msg) = match r {
        Refusal::Upgrades(w) => (w, "too many tunnel connection attempts from your address"),
        Refusal::AuthFailures(w) => (w, "too many wrong tokens from your address"),
    };
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        RefusalCode::RateLimited,
        &format!("{msg}; retry in {secs} s"),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The owner id for the presented token, or `None` when it is missing or wrong.
fn authenticate(state: &State, req: &Request<Incoming>) -> Option<String> {
    match &state.cfg.auth {
        Auth::Open => Some("anonymous".to_string()),
        Auth::Tokens(_) => {
            let presented = header_str(req, header::AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)?;
            let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
            tokens.verify(presented)
        }
    }
}

/// A client id as sent (letters, digits, `-`, `_`; 1 to 64), or a fresh one for a client
/// that sends none (each of its connections is then a new client).
fn client_id(req: &Request<Incoming>) -> String {
    header_str(req, upgrade::CLIENT_ID)
        .filter(|c| {
            (1..=64).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(twk_protocol::random_name)
}

fn until(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    format!(
        "{} (in {}h {:02}m)",
        humantime::format_rfc3339_seconds(at),
        left / 3600,
        left % 3600 / 60
    )
}

/// Handles `GET /_twk/connect`; every refusal is counted and logged once (reason and source
/// address, never the token).
pub(crate) async fn upgrade(
    state: Arc<State>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<RelayBody> {
    let client = state.abuse.client_addr(remote.ip(), req.headers());
    let peer = client.ip;
    let resp = upgrade_inner(state.clone(), client, req).await;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let reason = resp
            .headers()
            .get(upgrade::ERROR)
            .and_then(|v| v.to_str().ok())
            .and_then(RefusalCode::parse)
            .map_or("not-websocket", RefusalCode::as_str);
        state.metrics.refused(reason);
        info!(%peer, reason, status = resp.status().as_u16(), "tunnel upgrade refused");
    }
    resp
}

async fn upgrade_inner(
    state: Arc<State>,
    client: ClientAddr,
    req: Request<Incoming>,
) -> Response<RelayBody> {
    let now = Instant::now();
    if let Err(r) = state.abuse.upgrade_attempt(client.ip, now) {
        return rate_limited(r);
    }
    if !is_websocket_upgrade(&req) {
        return text(
            StatusCode::BAD_REQUEST,
            "twk relay: expected a websocket upgrade\n",
        );
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "twk relay: missing Sec-WebSocket-Key\n",
        );
    };
    let Some(owner) = authenticate(&state, &req) else {
        state.abuse.auth_failed(client.ip, now);
        return refuse(
            StatusCode::UNAUTHORIZED,
            RefusalCode::Unauthorized,
            "missing or wrong tunnel token",
        );
    };
    if let Err(msg) = twk_protocol::check_version(header_str(&req, upgrade::PROTOCOL)) {
        return refuse(StatusCode::BAD_REQUEST, RefusalCode::ProtocolVersion, &msg);
    }
    let name = match header_str(&req, upgrade::NAME).filter(|n| !n.is_empty()) {
        Some(n) => {
            if let Err(e) = twk_protocol::validate_name(n) {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    RefusalCode::InvalidName,
                    &e.to_string(),
                );
            }
            n.to_string()
        }
        None => loop {
            let n = twk_protocol::random_name();
            if state.registry.is_free(&n, now_ms()) {
                break n;
            }
        },
    };
    let client_id = client_id(&req);
    let claim = state
        .registry
        .claim(&name, &owner, &client_id, &state.sessions, now_ms());
    let (session, cancel, dead, inflight) = match claim {
        Claim::Granted {
            session,
            cancel,
            dead,
            inflight,
            reconnect,
        } => {
            state.metrics.connected(reconnect);
            // A malformed key is ignored: that client only misses out on kept requests.
            if let Some(k) = header_str(&req, upgrade::OWNER_KEY)
                .and_then(|k| twk_protocol::kept::OwnerPublic::parse(k).ok())
            {
                state.registry.set_owner_key(&name, session, k);
                share_owner_key(&state, &name, &owner, &k);
            }
            (session, cancel, dead, inflight)
        }
        refused => return refuse_claim(&name, refused),
    };
    let lease = match cluster_claim(&state, &name, &owner, &client_id, session).await {
        Ok(lease) => lease,
        Err(refusal) => return refusal,
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let public_url = state.cfg.public_url(&name);
    let accepts = header_str(&req, upgrade::ACCEPTS);
    let notices = upgrade::accepts(accepts, upgrade::ACCEPTS_REFUSED).then(Arc::default);
    let bundled_meta = upgrade::accepts(accepts, upgrade::ACCEPTS_BUNDLED_META);
    let on_upgrade = hyper::upgrade::on(req);
    let span = info_span!("tunnel", name = %name, session, peer = %client.ip);
    if let Some(lease) = &lease {
        // Another node's session of the same owner took the name: this one closes, unless
        // this node is draining (its client moved as asked and closes this session itself
        // once its requests in flight are done).
        let (lost, cancel, st) = (lease.lost(), cancel.clone(), state.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = lost.cancelled() => {
                    if !st.draining.load(std::sync::atomic::Ordering::Relaxed) {
                        cancel.cancel();
                    }
                }
                _ = cancel.cancelled() => {}
            }
        });
    }
    let s = Session {
        name: name.clone(),
        session,
        notices,
        bundled_meta,
        cancel,
        dead,
        inflight,
        _lease: lease,
    };
    state
        .tracker
        .spawn(run_session(state.clone(), s, on_upgrade).instrument(span));
    switching_protocols(&accept, &name, &public_url)
}

/// In a cluster, every node may have to keep a request for this tunnel while its client is
/// offline: the owner's public key is shared (in the background; a failure only means fewer
/// nodes can keep).
fn share_owner_key(
    state: &Arc<State>,
    name: &str,
    owner: &str,
    key: &twk_protocol::kept::OwnerPublic,
) {
    let Some(cluster) = state.cfg.cluster.clone() else {
        return;
    };
    let (name, owner, key) = (name.to_owned(), owner.to_owned(), key.to_base64());
    tokio::spawn(async move {
        if let Err(e) = cluster.set_owner_key(&name, &owner, &key).await {
            warn!(name, error = %e, "cluster: could not share the owner key");
        }
    });
}

/// With a cluster, the name must also be granted cluster-wide (after the local rules passed);
/// a refusal there releases the local claim.
async fn cluster_claim(
    state: &State,
    name: &str,
    owner: &str,
    client_id: &str,
    session: u64,
) -> Result<Option<twk_cluster::Lease>, Response<RelayBody>> {
    let Some(cluster) = &state.cfg.cluster else {
        return Ok(None);
    };
    let refusal = match cluster.claim(name, owner, client_id).await {
        Ok(lease) => return Ok(Some(lease)),
        Err(twk_cluster::ClaimError::Taken) => refuse_claim(name, Claim::Taken),
        Err(twk_cluster::ClaimError::TakenOver) => refuse_claim(name, Claim::TakenOver),
        Err(e @ twk_cluster::ClaimError::Unavailable(_)) => {
            warn!(name, error = %e, "cluster claim failed");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                RefusalCode::Capacity,
                "the relay cluster cannot grant tunnel names right now (its NATS is unreachable); retry shortly",
            )
        }
    };
    state.registry.release(name, session, now_ms());
    Err(refusal)
}

fn refuse_claim(name: &str, claim: Claim) -> Response<RelayBody> {
    let (status, code, msg) = match claim {
        Claim::Taken => (
            StatusCode::CONFLICT,
            RefusalCode::NameTaken,
            format!("tunnel name '{name}' is held by another token"),
        ),
        Claim::Reserved { until_ms } => (
            StatusCode::CONFLICT,
            RefusalCode::NameReserved,
            format!(
                "tunnel name '{name}' is reserved for the token that last used it until {}",
                until(until_ms)
            ),
        ),
        Claim::TakenOver => (
            StatusCode::CONFLICT,
            RefusalCode::TakenOver,
            format!(
                "tunnel '{name}' was taken over by another twk-tunnel using the same token; \
                 stop it or pick another --name"
            ),
        ),
        Claim::TooManyTunnels(max) => (
            StatusCode::TOO_MANY_REQUESTS,
            RefusalCode::TooManyTunnels,
            format!("this token already has {max} tunnels connected, the most this relay allows"),
        ),
        Claim::Full | Claim::Granted { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            RefusalCode::Capacity,
            "the relay has reached its tunnel limit".to_string(),
        ),
    };
    refuse(status, code, &msg)
}

fn switching_protocols(accept: &str, name: &str, public_url: &str) -> Response<RelayBody> {
    let mut r = Response::new(crate::body::full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        upgrade::PROTOCOL,
        HeaderValue::from(twk_protocol::PROTOCOL_VERSION),
    );
    if let Ok(v) = HeaderValue::from_str(name) {
        h.insert(upgrade::NAME, v);
    }
    if let Ok(v) = HeaderValue::from_str(public_url) {
        h.insert(upgrade::PUBLIC_URL, v);
    }
    r
}

/// One granted session, until it ends.
struct Session {
    name: String,
    session: u64,
    cancel: CancellationToken,
    dead: CancellationToken,
    /// Requests in flight on the session.
    inflight: tokio_util::task::TaskTracker,
    /// The cluster-wide lease of the name, ended when the session is (dropped with it).
    _lease: Option<twk_cluster::Lease>,
    /// Requests the relay refuses itself, listed for the client (when it takes them).
    notices: Option<Arc<crate::notices::Notices>>,
    /// The client reads a request's metadata in one header.
    bundled_meta: bool,
}

async fn run_session(state: Arc<State>, s: Session, on_upgrade: hyper::upgrade::OnUpgrade) {
    // However the session ends, requests in flight on it fail at once, and the name is
    // released (it stays reserved for its owner).
    let _dead = s.dead.clone().drop_guard();
    let ended = run_session_inner(&state, &s, on_upgrade).await;
    state.registry.release(&s.name, s.session, now_ms());
    if ended == Ended::Gracefully {
        // The client said goodbye (GOAWAY: shutting down, or moving to another node) and
        // still answers what it accepted: hyper's connection future ends at the GOAWAY while
        // those answers travel on, so the session is dead only once they are through.
        s.inflight.close();
        let wait = state.cfg.request_timeout + limits::RELAY_DEADLINE_MARGIN;
        let _ = tokio::time::timeout(wait, s.inflight.wait()).await;
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client closed it with GOAWAY: requests it accepted are still answered.
    Gracefully,
    /// Lost, refused, or closed by this relay.
    Abruptly,
}

async fn run_session_inner(
    state: &Arc<State>,
    s: &Session,
    on_upgrade: hyper::upgrade::OnUpgrade,
) -> Ended {
    let upgraded = tokio::select! {
        r = tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, on_upgrade) => match r {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => { warn!(error = %e, "upgrade failed"); return Ended::Abruptly; }
            Err(_) => { warn!("upgrade timed out"); return Ended::Abruptly; }
        },
        _ = s.cancel.cancelled() => return Ended::Abruptly,
    };
    let ws = WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Server,
        Some(twk_transport::ws_config()),
    )
    .await;
    let io = WsIo::new(ws).coalescing(s.inflight.clone());
    let (mut sender, conn) = match crate::tunnel_h2::handshake(io).await {
        Ok(pair) => pair,
        Err(e) => {
            warn!(error = %e, "http/2 handshake over the tunnel failed");
            return Ended::Abruptly;
        }
    };
    if s.bundled_meta {
        sender.bundle_meta();
    }
    if !state
        .registry
        .activate(&s.name, s.session, sender.clone(), s.notices.clone())
    {
        // Replaced before it became ready.
        return Ended::Abruptly;
    }
    info!("tunnel connected");
    if let Some(notices) = &s.notices {
        let told = crate::notices::run(
            notices.clone(),
            sender.clone(),
            s.name.clone(),
            s.dead.clone(),
            state.clone(),
        );
        state.tracker.spawn(told.in_current_span());
    }
    if state.keep.is_some() {
        let hand_off = crate::keep::hand_off(state.clone(), s.name.clone());
        state.tracker.spawn(hand_off.in_current_span());
    }
    // The connection is its own task, outside this session's span: it is polled at every
    // frame of every request, and here each poll entered and left the span and polled the
    // cancellation (~0.8k instructions a request; docs/performance.md, twenty-eighth
    // round). It logs nothing of its own: how it ended is said below. Dropping the
    // handle ends it, as dropping the future did.
    let conn = crate::tunnel_h2::drive(conn, state.cfg.ping_interval, state.cfg.ping_timeout);
    let conn = AbortOnDropHandle::new(state.tracker.spawn(conn));
    tokio::select! {
        r = conn => match r {
            Ok(Ok(())) => {
                info!("tunnel closed by the client");
                Ended::Gracefully
            }
            Ok(Err(e)) => {
                info!(error = %e, "tunnel lost");
                Ended::Abruptly
            }
            Err(e) => {
                warn!(error = %e, "tunnel connection task failed");
                Ended::Abruptly
            }
        },
        _ = s.cancel.cancelled() => {
            info!("tunnel session closed by the relay (replaced, taken over or shutting down)");
            Ended::Abruptly
        }
    }
}
