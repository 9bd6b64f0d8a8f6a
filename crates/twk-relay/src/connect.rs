//! The tunnel upgrade: authenticate, claim a name, switch to websocket, run HTTP/2 over it.

use crate::Auth;
use crate::body::RelayBody;
use crate::registry::Claim;
use crate::server::{State, text};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use tungstenite::protocol::Role;
use twk_protocol::{RefusalCode, handshake, limits};
use twk_transport::WsIo;

fn refuse(status: StatusCode, code: RefusalCode, msg: &str) -> Response<RelayBody> {
    let mut r = text(status, format!("twk relay: {msg}\n"));
    r.headers_mut()
        .insert(handshake::ERROR, HeaderValue::from_static(code.as_str()));
    r.headers_mut().insert(
        handshake::PROTOCOL,
        HeaderValue::from(twk_protocol::PROTOCOL_VERSION),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"twk\""),
        );
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

/// Handles `GET /_twk/connect`.
pub(crate) async fn upgrade(
    state: Arc<State>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<RelayBody> {
    if let Err(msg) = twk_protocol::check_version(header_str(&req, handshake::PROTOCOL)) {
        return refuse(StatusCode::BAD_REQUEST, RefusalCode::ProtocolVersion, &msg);
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
    let owner = match &state.cfg.auth {
        Auth::Open => "anonymous".to_string(),
        Auth::Tokens(set) => {
            let presented = header_str(&req, header::AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            match presented.and_then(|t| set.verify(t)) {
                Some(owner) => owner,
                None => {
                    warn!(peer = %remote, "tunnel refused: missing or wrong token");
                    return refuse(
                        StatusCode::UNAUTHORIZED,
                        RefusalCode::Unauthorized,
                        "missing or wrong tunnel token",
                    );
                }
            }
        }
    };
    let name = match header_str(&req, handshake::NAME).filter(|n| !n.is_empty()) {
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
            if !state.registry.is_held(&n) {
                break n;
            }
        },
    };
    let (session, cancel) =
        match state
            .registry
            .claim(&name, &owner, state.cfg.max_tunnels, &state.sessions)
        {
            Claim::Granted { session, cancel } => (session, cancel),
            Claim::Taken => {
                return refuse(
                    StatusCode::CONFLICT,
                    RefusalCode::NameTaken,
                    &format!("tunnel name '{name}' is held by another token"),
                );
            }
            Claim::Full => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    RefusalCode::Capacity,
                    "the relay has reached its tunnel limit",
                );
            }
        };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let public_url = state.cfg.public_url(&name);
    let on_upgrade = hyper::upgrade::on(req);
    let span = info_span!("tunnel", name = %name, session, peer = %remote);
    state.tracker.spawn(
        run_session(state.clone(), name.clone(), session, cancel, on_upgrade).instrument(span),
    );

    let mut r = Response::new(crate::body::full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        handshake::PROTOCOL,
        HeaderValue::from(twk_protocol::PROTOCOL_VERSION),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(handshake::NAME, v);
    }
    if let Ok(v) = HeaderValue::from_str(&public_url) {
        h.insert(handshake::PUBLIC_URL, v);
    }
    r
}

async fn run_session(
    state: Arc<State>,
    name: String,
    session: u64,
    cancel: CancellationToken,
    on_upgrade: hyper::upgrade::OnUpgrade,
) {
    let upgraded = tokio::select! {
        r = tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, on_upgrade) => match r {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => { warn!(error = %e, "upgrade failed"); state.registry.release(&name, session); return; }
            Err(_) => { warn!("upgrade timed out"); state.registry.release(&name, session); return; }
        },
        _ = cancel.cancelled() => { state.registry.release(&name, session); return; }
    };
    let ws = WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Server,
        Some(twk_transport::ws_config()),
    )
    .await;
    let io = TokioIo::new(WsIo::new(ws));
    let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(state.cfg.ping_interval)
        .keep_alive_timeout(state.cfg.ping_timeout)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(limits::H2_STREAM_WINDOW)
        .initial_connection_window_size(limits::H2_CONN_WINDOW)
        .max_send_buf_size(1024 * 1024)
        .max_header_list_size(256 * 1024)
        .handshake::<_, RelayBody>(io)
        .await;
    let (sender, conn) = match handshake {
        Ok(pair) => pair,
        Err(e) => {
            warn!(error = %e, "http/2 handshake over the tunnel failed");
            state.registry.release(&name, session);
            return;
        }
    };
    if !state.registry.activate(&name, session, sender) {
        // Replaced before it became ready.
        return;
    }
    info!("tunnel connected");
    tokio::select! {
        r = conn => match r {
            Ok(()) => info!("tunnel closed by the client"),
            Err(e) => info!(error = %e, "tunnel lost"),
        },
        _ = cancel.cancelled() => info!("tunnel session closed by the relay (replaced or shutting down)"),
    }
    state.registry.release(&name, session);
}
