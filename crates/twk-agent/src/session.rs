//! The tunnel session: dial, handshake, serve HTTP/2, reconnect.

use crate::backoff::Backoff;
use crate::config::{AgentConfig, RelayUrl};
use crate::detached::Detached;
use crate::forward::{self, Shared};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use tungstenite::client::IntoClientRequest;
use tungstenite::error::ProtocolError;
use twk_capture::Exchange;
use twk_protocol::{RefusalCode, limits, upgrade};
use twk_transport::{BoxedIo, WsIo};

/// Connection state, reported on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Dialing the relay (attempt 0 is the first).
    Connecting {
        /// Attempts since the last stable session.
        attempt: u32,
    },
    /// The tunnel is up.
    Connected {
        /// The tunnel name granted by the relay.
        name: String,
        /// The public URL senders use.
        public_url: String,
    },
    /// The tunnel is down; the next attempt comes after `delay`.
    Reconnecting {
        /// Wait before the next attempt.
        delay: Duration,
        /// Why the last attempt or session ended.
        reason: String,
    },
    /// The agent stopped (shutdown or a fatal refusal).
    Stopped,
}

impl ConnState {
    /// A short label: `connecting`, `connected`, `reconnecting`, `stopped`.
    pub fn label(&self) -> &'static str {
        match self {
            ConnState::Connecting { .. } => "connecting",
            ConnState::Connected { .. } => "connected",
            ConnState::Reconnecting { .. } => "reconnecting",
            ConnState::Stopped => "stopped",
        }
    }
}

/// Receives what the agent does. Called from the agent's tasks: implementations must not block.
pub trait Observer: Send + Sync + 'static {
    /// The connection state changed.
    fn connection(&self, state: &ConnState);
    /// A request's head arrived and is being forwarded: `exchange` holds its metadata and
    /// head (no body, no response yet). [`Observer::exchange`] follows with the same
    /// `request_id` when it finishes, however it ends.
    fn started(&self, _exchange: &Exchange) {}
    /// An exchange finished (successfully or not).
    fn exchange(&self, exchange: Exchange);
    /// A round trip to the relay was measured (websocket ping, about every ping interval).
    fn rtt(&self, _rtt: Duration) {}
    /// A request that arrived while this client was offline, kept by the relay and handed
    /// over now (`exchange.missed`; never forwarded to the target). Answer `recorded` with
    /// `true` once it is stored (or was already, from an earlier hand-off of the same
    /// `request_id`): only then does the relay delete its copy. The default reports it as an
    /// exchange and answers at once.
    fn missed(&self, exchange: Exchange, recorded: tokio::sync::oneshot::Sender<bool>) {
        self.exchange(exchange);
        let _ = recorded.send(true);
    }
    /// The relay refused `count` requests for this tunnel that its notice did not list (past
    /// its list, or from a sender listed in the last minute): only their number is known.
    fn refused_unlisted(&self, count: u64) {
        tracing::debug!(
            count,
            "the relay refused requests for this tunnel it did not list"
        );
    }
    /// Requests that arrived while this client was offline and are not among the missed
    /// ones handed over: the relay answered them 503 without keeping them, or dropped kept
    /// ones for newer ones. Told once, at the start of a session. The default logs it.
    fn unkept(&self, unkept: &twk_protocol::refused::Unkept) {
        tracing::warn!(
            not_kept = unkept.not_kept,
            dropped = unkept.dropped,
            "the relay could not keep every request that arrived while this tunnel was offline"
        );
    }
}

/// Errors that stop the agent: retrying cannot fix them.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Missing or wrong token.
    #[error("the relay refused the tunnel token (HTTP 401): {0}")]
    Unauthorized(String),
    /// The name is held by another token.
    #[error("the tunnel name is taken (HTTP 409): {0}")]
    NameTaken(String),
    /// Another twk-tunnel using the same token took this tunnel over (HTTP 409).
    #[error(
        "this tunnel was taken over by another twk-tunnel using the same token; stop it or pick another --name"
    )]
    TakenOver,
    /// The token has as many tunnels open as the relay allows (HTTP 429).
    #[error("the relay refused another tunnel for this token (HTTP 429): {0}")]
    TooManyTunnels(String),
    /// Invalid name, protocol mismatch, or another permanent refusal.
    #[error("the relay refused the tunnel: {0}")]
    Refused(String),
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS for the relay")]
    Tls(#[from] twk_transport::tls::TlsError),
    /// The server at the relay URL answered the upgrade with an HTTP response that is not a
    /// twk relay's (e.g. 200 from an app, 404 from another server).
    #[error(
        "the relay at {relay} answered HTTP {status} without upgrading: it is not a twk relay (check --relay)"
    )]
    NotARelay {
        /// The relay URL dialled.
        relay: String,
        /// The status it answered.
        status: u16,
    },
    /// The server at the relay URL answered in HTTP, but not as a websocket server would
    /// (HTTP/1.0, or a 101 without the websocket's headers).
    #[error("the server at {relay} is not a twk relay ({why}): check --relay")]
    NotAWebsocket {
        /// The relay URL dialled.
        relay: String,
        /// tungstenite's words.
        why: String,
    },
    /// The server at the relay URL did not answer the upgrade in HTTP.
    #[error("the server at {relay} does not answer in HTTP{}", not_http_hint(*.tls))]
    NotHttp {
        /// The relay URL dialled.
        relay: String,
        /// Whether TLS was spoken.
        tls: bool,
    },
    /// TLS was spoken to a server that answered in plain HTTP.
    #[error("TLS to {relay} failed: the server speaks plain HTTP; use ws:// or http:// in --relay")]
    TlsToPlainHttp {
        /// The relay URL dialled.
        relay: String,
    },
    /// The relay's certificate does not chain to a trusted root.
    #[error(
        "the certificate of {relay} is not trusted ({detail}): pass the relay's certificate or its CA with --relay-ca FILE"
    )]
    CertificateNotTrusted {
        /// The relay URL dialled.
        relay: String,
        /// rustls's words.
        detail: String,
    },
    /// The relay's certificate is for other names.
    #[error(
        "the certificate of {relay} is not valid for that name ({detail}): check the host in --relay"
    )]
    CertificateName {
        /// The relay URL dialled.
        relay: String,
        /// rustls's words.
        detail: String,
    },
    /// Another TLS failure that retrying will not fix (an expired certificate, no common
    /// protocol version or cipher suite, a server that does not speak TLS).
    #[error("TLS to {relay} failed: {detail}")]
    TlsHandshake {
        /// The relay URL dialled.
        relay: String,
        /// rustls's words.
        detail: String,
    },
}

fn not_http_hint(tls: bool) -> &'static str {
    if tls {
        " over TLS: it is not a twk relay (check --relay)"
    } else {
        "; if it speaks TLS, use wss:// or https:// in --relay"
    }
}

enum ConnectError {
    /// Retrying cannot fix it, ever (the relay refused this token or name).
    Fatal(AgentError),
    /// A wrong --relay or TLS setup: fatal before the first session; after one, the relay
    /// worked, so it is retried like any outage (a certificate being renewed, a proxy
    /// restarting in front of the relay).
    Config(AgentError),
    /// An outage: retried forever, also on the first attempt (connection refused or timed
    /// out: the relay may be starting, or the network not up yet).
    Transient(String),
}

struct Session {
    ws: tokio_tungstenite::WebSocketStream<BoxedIo>,
    name: String,
    public_url: String,
}

/// Runs the tunnel client until `shutdown` is cancelled (returns `Ok`) or the relay refuses it
/// for good (returns the reason). Transient failures are retried forever with backoff. Until
/// the first session, a relay URL that does not lead to a twk relay (another server, TLS to a
/// plain-HTTP port, an untrusted certificate) ends the run too: retrying would loop forever
/// on a configuration mistake.
pub async fn run(
    cfg: AgentConfig,
    observer: Arc<dyn Observer>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    // The relay in use first, then the other nodes in turn (see `AgentConfig::fallback_relays`).
    let relays: Vec<crate::RelayUrl> = std::iter::once(cfg.relay.clone())
        .chain(cfg.fallback_relays.iter().cloned())
        .collect();
    let mut current = 0usize;
    let tls = if relays.iter().any(|r| r.tls) {
        Some(tokio_rustls::TlsConnector::from(
            twk_transport::tls::client_config(cfg.extra_ca_pem.as_deref())?,
        ))
    } else {
        None
    };
    let shared = Arc::new(Shared::new(cfg.clone(), observer.clone()));
    let mut backoff = Backoff::default();
    let mut attempt = 0u32;
    // After the first session, ask for the granted name again so the public URL stays the same
    // across reconnects, even when the relay picked it.
    let mut name = cfg.name.clone();
    // The same id on every reconnect: the relay tells our own reconnect (which replaces our
    // stale session) from another process using the same token (a takeover).
    let client_id = twk_protocol::random_name();
    let mut worked_once = false;
    loop {
        observer.connection(&ConnState::Connecting { attempt });
        let leg = on_relay(&cfg, &relays[current]);
        let leg_tls = tls.as_ref().filter(|_| leg.relay.tls);
        let connected = tokio::select! {
            r = connect(&leg, name.as_deref(), &client_id, leg_tls) => r,
            _ = shutdown.cancelled() => break,
        };
        let reason = match connected {
            Ok(session) => {
                worked_once = true;
                shared.set_name(&session.name);
                if !session.name.is_empty() {
                    name = Some(session.name.clone());
                }
                observer.connection(&ConnState::Connected {
                    name: session.name.clone(),
                    public_url: session.public_url.clone(),
                });
                info!(name = %session.name, public_url = %session.public_url, "tunnel connected");
                shared.session_up();
                let started = Instant::now();
                let (reason, moving) = serve(session, shared.clone(), &leg, &shutdown).await;
                if shutdown.is_cancelled() {
                    break;
                }
                if moving {
                    // Make before break: the next node at once; this session drains behind.
                    current = (current + 1) % relays.len();
                    observer.connection(&ConnState::Reconnecting {
                        delay: Duration::ZERO,
                        reason,
                    });
                    continue;
                }
                if started.elapsed() >= limits::BACKOFF_RESET_AFTER {
                    backoff.reset();
                    attempt = 0;
                }
                reason
            }
            Err(ConnectError::Fatal(e)) => {
                shared.drain_reports(cfg.shutdown_grace).await;
                observer.connection(&ConnState::Stopped);
                return Err(e);
            }
            Err(ConnectError::Config(e)) if !worked_once => {
                observer.connection(&ConnState::Stopped);
                return Err(e);
            }
            Err(ConnectError::Config(e)) => twk_sanitize::error_chain(&e),
            Err(ConnectError::Transient(reason)) => reason,
        };
        // A node that failed or went away is probably going down: try the next one.
        current = (current + 1) % relays.len();
        let delay = backoff.next_delay();
        // The observer tells the user; at WARN this would print every reconnect twice.
        info!(%reason, ?delay, "tunnel down; reconnecting");
        observer.connection(&ConnState::Reconnecting { delay, reason });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
        attempt = attempt.saturating_add(1);
    }
    shared.drain_reports(cfg.shutdown_grace).await;
    observer.connection(&ConnState::Stopped);
    Ok(())
}

async fn serve(
    session: Session,
    shared: Arc<Shared>,
    cfg: &AgentConfig,
    shutdown: &CancellationToken,
) -> (String, bool) {
    let observer = shared.observer();
    let mut moves = shared.moves();
    moves.borrow_and_update();
    let drain = (shared.sessions(), cfg.shutdown_grace);
    let io = TokioIo::new(
        WsIo::new(session.ws).with_rtt_probe(cfg.ping_interval, Arc::new(move |d| observer.rtt(d))),
    );
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move {
            // When the relay resets the stream (the sender went away, or sent a broken body),
            // hyper drops this future; `Detached` then finishes the handling in a task of its
            // own, so the exchange is still recorded with the side that failed.
            let handling = match forward::arrive(shared, req) {
                forward::Arrived::Live(live) => Box::pin(live.forward()),
                forward::Arrived::Other(other) => other,
                forward::Arrived::Answered(answer) => return Ok::<_, Infallible>(answer),
            };
            Ok::<_, Infallible>(Detached::new(handling).await)
        }
    });
    let conn = twk_transport::h2_server_builder(cfg.ping_interval, cfg.ping_timeout)
        .serve_connection(io, svc);
    let mut conn = Box::pin(conn);
    tokio::select! {
        r = conn.as_mut() => match r {
            Ok(()) => ("the relay closed the tunnel".to_string(), false),
            Err(e) => (format!("tunnel lost: {e}"), false),
        },
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(cfg.shutdown_grace, conn).await.is_err() {
                warn!("in-flight requests did not finish within the grace period");
            }
            ("shutting down".to_string(), false)
        }
        _ = moves.changed() => {
            // The old session keeps serving what is in flight (and what the node still sends)
            // until the new session is up, then closes gracefully (GOAWAY).
            let (mut up, grace) = drain;
            up.borrow_and_update();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = up.changed() => {}
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(MOVE_WAIT) => {}
                }
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(grace, conn).await;
            });
            ("the relay node is going away; moving to another node".to_string(), true)
        }
    }
}

/// How long a session whose node asked the client to move keeps serving while no new session
/// comes up.
const MOVE_WAIT: Duration = Duration::from_secs(30);

fn header<'a>(resp: &'a http::Response<Option<Vec<u8>>>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The configuration for one connection attempt to `relay` (the one in use, or a fallback).
fn on_relay(cfg: &AgentConfig, relay: &crate::RelayUrl) -> AgentConfig {
    AgentConfig {
        relay: relay.clone(),
        ..cfg.clone()
    }
}

/// TCP, then TLS for `wss://`, to the relay.
async fn dial(
    cfg: &AgentConfig,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<BoxedIo, ConnectError> {
    let relay = &cfg.relay;
    let dial = async {
        match cfg.connect_to {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((relay.host.as_str(), relay.port)).await,
        }
    };
    let tcp = tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, dial)
        .await
        .map_err(|_| ConnectError::Transient("relay unreachable: connect timed out".into()))?
        .map_err(|e| ConnectError::Transient(format!("relay unreachable: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let Some(connector) = tls else {
        return Ok(Box::new(tcp));
    };
    let server_name = rustls::pki_types::ServerName::try_from(relay.host.clone()).map_err(|e| {
        ConnectError::Fatal(AgentError::Refused(format!(
            "invalid relay host name {:?}: {e}",
            relay.host
        )))
    })?;
    let tls = tokio::time::timeout(
        limits::HANDSHAKE_TIMEOUT,
        connector.connect(server_name, tcp),
    )
    .await
    .map_err(|_| ConnectError::Transient("tls handshake with the relay timed out".into()))?
    .map_err(|e| tls_failure(&e, relay))?;
    Ok(Box::new(tls))
}

/// The websocket upgrade request: protocol version, client id, name and token.
fn upgrade_request(
    cfg: &AgentConfig,
    name: Option<&str>,
    client_id: &str,
) -> Result<http::Request<()>, ConnectError> {
    let mut request = cfg
        .relay
        .connect_url()
        .into_client_request()
        .map_err(|e| ConnectError::Fatal(AgentError::Refused(format!("bad relay URL: {e}"))))?;
    let h = request.headers_mut();
    h.insert(
        upgrade::PROTOCOL,
        http::HeaderValue::from(twk_protocol::PROTOCOL_VERSION),
    );
    if let Ok(v) = http::HeaderValue::from_str(client_id) {
        h.insert(upgrade::CLIENT_ID, v);
    }
    let accepts = [upgrade::ACCEPTS_REFUSED, upgrade::ACCEPTS_BUNDLED_META].join(", ");
    if let Ok(v) = http::HeaderValue::from_str(&accepts) {
        h.insert(upgrade::ACCEPTS, v);
    }
    if let Some(k) = &cfg.owner_key
        && let Ok(v) = http::HeaderValue::from_str(&k.public().to_base64())
    {
        h.insert(upgrade::OWNER_KEY, v);
    }
    if let Some(name) = name {
        let v = http::HeaderValue::from_str(name).map_err(|_| {
            ConnectError::Fatal(AgentError::Refused(format!("invalid tunnel name {name:?}")))
        })?;
        h.insert(upgrade::NAME, v);
    }
    if let Some(token) = &cfg.token {
        let mut v = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ConnectError::Fatal(AgentError::Unauthorized(
                "the token contains characters that cannot be sent in a header".into(),
            ))
        })?;
        v.set_sensitive(true);
        h.insert(http::header::AUTHORIZATION, v);
    }
    Ok(request)
}

/// Dials the relay and upgrades to the tunnel's websocket.
async fn connect(
    cfg: &AgentConfig,
    name: Option<&str>,
    client_id: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<Session, ConnectError> {
    let relay = &cfg.relay;
    let io = dial(cfg, tls).await?;
    let request = upgrade_request(cfg, name, client_id)?;
    let handshake = tokio::time::timeout(
        limits::HANDSHAKE_TIMEOUT,
        tokio_tungstenite::client_async_with_config(request, io, Some(twk_transport::ws_config())),
    )
    .await
    .map_err(|_| ConnectError::Transient("websocket handshake with the relay timed out".into()))?;
    let (ws, response) = match handshake {
        Ok(pair) => pair,
        Err(tungstenite::Error::Http(resp)) => return Err(refusal(&resp, relay)),
        // Not HTTP at all: typically a TLS server's alert in answer to plain text.
        Err(tungstenite::Error::Protocol(ProtocolError::HttparseError(_))) => {
            return Err(ConnectError::Config(AgentError::NotHttp {
                relay: relay.origin(),
                tls: relay.tls,
            }));
        }
        // An HTTP server that is no websocket server (python's http.server answers in
        // HTTP/1.0): retrying forever would never fix it.
        Err(tungstenite::Error::Protocol(
            why @ (ProtocolError::WrongHttpVersion
            | ProtocolError::MissingConnectionUpgradeHeader
            | ProtocolError::MissingUpgradeWebSocketHeader
            | ProtocolError::SecWebSocketAcceptKeyMismatch),
        )) => {
            return Err(ConnectError::Config(AgentError::NotAWebsocket {
                relay: relay.origin(),
                why: why.to_string(),
            }));
        }
        Err(e) => {
            return Err(ConnectError::Transient(format!(
                "websocket handshake with the relay failed: {}",
                twk_sanitize::error_chain(&e)
            )));
        }
    };
    let get = |n: &str| {
        response
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Err(msg) = twk_protocol::check_version(get(upgrade::PROTOCOL).as_deref()) {
        return Err(ConnectError::Fatal(AgentError::Refused(msg)));
    }
    let name = get(upgrade::NAME).unwrap_or_default();
    let public_url = get(upgrade::PUBLIC_URL).unwrap_or_default();
    debug!(%name, "websocket established");
    Ok(Session {
        ws,
        name,
        public_url,
    })
}

/// Sorts a failed TLS handshake: what rustls rejected is a configuration mistake (see
/// [`ConnectError::Config`]); a connection that broke off is an outage.
fn tls_failure(e: &std::io::Error, relay: &RelayUrl) -> ConnectError {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return ConnectError::Transient(format!(
            "tls handshake with the relay failed: {}",
            twk_sanitize::error_chain(e)
        ));
    };
    let relay = relay.origin();
    let detail = tls.to_string();
    let e = match tls {
        // A plain-HTTP server answers the ClientHello with `HTTP/1.1 400 …`: `H` is no TLS
        // record type.
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            AgentError::TlsToPlainHttp { relay }
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => AgentError::CertificateName { relay, detail },
        rustls::Error::InvalidCertificate(
            C::UnknownIssuer
            | C::BadSignature
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::Other(_),
        ) => AgentError::CertificateNotTrusted { relay, detail },
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::InvalidMessage(_)
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::NoCertificatesPresented => AgentError::TlsHandshake { relay, detail },
        // An alert is the server's decision, which may change: a relay still obtaining its
        // first ACME certificate refuses handshakes until it has one.
        _ => {
            return ConnectError::Transient(format!(
                "tls handshake with the relay failed: {detail}"
            ));
        }
    };
    ConnectError::Config(e)
}

fn refusal(resp: &http::Response<Option<Vec<u8>>>, relay: &RelayUrl) -> ConnectError {
    let body = resp
        .body()
        .as_deref()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            resp.status()
                .canonical_reason()
                .unwrap_or("refused")
                .to_string()
        });
    let code = header(resp, upgrade::ERROR).and_then(RefusalCode::parse);
    match (resp.status().as_u16(), code) {
        (401, _) | (_, Some(RefusalCode::Unauthorized)) => {
            ConnectError::Fatal(AgentError::Unauthorized(body))
        }
        (_, Some(RefusalCode::TakenOver)) => ConnectError::Fatal(AgentError::TakenOver),
        (_, Some(RefusalCode::TooManyTunnels)) => {
            ConnectError::Fatal(AgentError::TooManyTunnels(body))
        }
        (409, _) | (_, Some(RefusalCode::NameTaken | RefusalCode::NameReserved)) => {
            ConnectError::Fatal(AgentError::NameTaken(body))
        }
        (_, Some(RefusalCode::InvalidName | RefusalCode::ProtocolVersion)) => {
            ConnectError::Fatal(AgentError::Refused(body))
        }
        // A twk relay that is full or limiting, or a proxy in front of one that is restarting.
        (status @ (429 | 502 | 503 | 504), _) | (status, Some(_)) => {
            ConnectError::Transient(format!("relay answered HTTP {status}: {body}"))
        }
        // The relay's own words without a refusal code: the upgrade did not reach it intact
        // (a proxy in front of it dropped the Upgrade header).
        _ if body.starts_with("twk relay:") => ConnectError::Config(AgentError::Refused(format!(
            "{body} (is a proxy in front of the relay dropping the websocket upgrade?)"
        ))),
        (status, None) => ConnectError::Config(AgentError::NotARelay {
            relay: relay.origin(),
            status,
        }),
    }
}
