//! Public requests: route to a tunnel, forward over HTTP/2, stream the answer back.

use crate::abuse::ClientAddr;
use crate::body::{Capped, FaultCell, RelayBody, SenderFault, UntilDead};
use crate::config::strip_port;
use crate::notices::Notices;
use crate::registry::Lookup;
use crate::server::{State, text};
use crate::tunnel_h2::{MetaForm, TunnelSender};
use crate::window::Reader;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use twk_protocol::now_ms;
use twk_protocol::refused::{Lost, RefusedFor, RefusedRequest};
use twk_protocol::{PATH_ROUTE_PREFIX, limits, meta};

/// Where a public request goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// Tunnel name.
    pub(crate) name: String,
    /// Path and query to forward (prefix removed under path routing).
    pub(crate) path_and_query: String,
    /// `/t/<name>` under path routing.
    pub(crate) prefix: Option<String>,
}

/// Routes a request. The Host decides first: `Host: <name>.<domain>` is that tunnel, and the
/// path goes through untouched (an app behind a subdomain may have its own `/t/…` paths).
/// Any other Host (the bare domain, an IP address) routes by path: `/t/<name>/…`.
pub(crate) fn route(path_and_query: &str, host: Option<&str>, domain_host: &str) -> Option<Route> {
    if let Some(label) = host.and_then(|h| subdomain(h, domain_host)) {
        if twk_protocol::validate_name(&label).is_err() {
            return None;
        }
        return Some(Route {
            name: label,
            path_and_query: path_and_query.to_string(),
            prefix: None,
        });
    }
    let rest = path_and_query.strip_prefix(PATH_ROUTE_PREFIX)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let name = &rest[..end];
    if twk_protocol::validate_name(name).is_err() {
        return None;
    }
    let tail = &rest[end..];
    let path_and_query = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Some(Route {
        name: name.to_string(),
        path_and_query,
        prefix: Some([PATH_ROUTE_PREFIX, name].concat()),
    })
}

/// `abc.relay.test:8443` under `relay.test` → `abc`; a deeper or foreign host → `None`.
/// Names compare without regard to case, as DNS names do; the label comes back lowercased.
fn subdomain(host: &str, domain_host: &str) -> Option<String> {
    let host = strip_port(host);
    let cut = host.len().checked_sub(domain_host.len())?;
    let (label, suffix) = (host.get(..cut)?, host.get(cut..)?);
    if !suffix.eq_ignore_ascii_case(domain_host) {
        return None;
    }
    let label = label.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then(|| label.to_ascii_lowercase())
}

/// Sets `name` to `value`; UTF-8 beyond ASCII goes as is (a path a stranger sent raw must
/// still reach the client as the public URL it was), control characters never.
fn set(h: &mut http::HeaderMap, name: http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
        h.insert(name, v);
    }
}

/// [`set`] for a value made for this request: it becomes the header's bytes, not copied.
fn set_owned(h: &mut http::HeaderMap, name: http::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        h.insert(name, v);
    }
}

/// [`set`] for a value no other request carries: marked so that HPACK sends it as a
/// literal never indexed (RFC 7541 §6.2.3) instead of adding it to both ends' dynamic
/// tables, where each such entry evicts one that later requests would have reused.
fn set_unique(h: &mut http::HeaderMap, name: http::HeaderName, value: &str) {
    if let Ok(mut v) = HeaderValue::from_bytes(value.as_bytes()) {
        v.set_sensitive(true);
        h.insert(name, v);
    }
}

/// A request's metadata in one never-indexed header: all of it changes with the request
/// id, which is unique.
fn set_bundle(h: &mut http::HeaderMap, b: &twk_protocol::bundle::Bundle<'_>) {
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(b.encode())) {
        Ok(mut v) => {
            v.set_sensitive(true);
            h.insert(meta::BUNDLE, v);
        }
        // Each field is valid in a header value, so is their sum; were one not, the others
        // still go, as they would one by one.
        Err(_) => set_each(h, b),
    }
}

/// A request's metadata one header each (but the public URL, set already).
fn set_each(h: &mut http::HeaderMap, b: &twk_protocol::bundle::Bundle<'_>) {
    set_unique(h, meta::REQUEST_ID, b.request_id);
    set(h, meta::REMOTE_ADDR, b.remote_addr);
    set_unique(h, meta::RECEIVED_AT, &b.received_ms.to_string());
    set(h, meta::PROTO, b.proto);
    set(h, meta::HOST, b.host);
    set_owned(h, meta::DEADLINE_MS, b.deadline_ms.to_string());
    if let Some(p) = b.prefix {
        set(h, meta::FORWARDED_PREFIX, p);
    }
}

fn with_retry_after(mut r: Response<RelayBody>, secs: u64) -> Response<RelayBody> {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

fn closing(mut r: Response<RelayBody>) -> Response<RelayBody> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn offline(name: &str, why: &str) -> Response<RelayBody> {
    with_retry_after(
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("twk relay: {why} for '{name}' (tunnel side); retry later\n"),
        ),
        u64::from(limits::OFFLINE_RETRY_AFTER_SECS),
    )
}

fn too_large_text(max: u64) -> String {
    format!("twk relay: request body exceeds the cap of {max} bytes (sender side)\n")
}

fn too_large(max: u64) -> Response<RelayBody> {
    closing(text(StatusCode::PAYLOAD_TOO_LARGE, too_large_text(max)))
}

/// Refuses what a webhook never is: proxy requests and targets other than `/…`.
fn refuse_target(req: &Request<Incoming>) -> Option<Response<RelayBody>> {
    if req.method() == Method::CONNECT {
        return Some(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "twk relay: CONNECT is not accepted\n",
        ));
    }
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        return Some(text(
            StatusCode::BAD_REQUEST,
            "twk relay: absolute-form request targets are not accepted\n",
        ));
    }
    // `*` (asterisk-form) and anything else that is not origin-form never reaches a tunnel.
    if !req.uri().path().starts_with('/') {
        return Some(text(
            StatusCode::BAD_REQUEST,
            "twk relay: the request target must start with '/' (sender side)\n",
        ));
    }
    match transfer_coding(req.headers()) {
        TransferCoding::Other => Some(closing(text(
            StatusCode::NOT_IMPLEMENTED,
            "twk relay: only the chunked transfer coding is accepted (sender side)\n",
        ))),
        TransferCoding::ChunkedTwice => Some(closing(text(
            StatusCode::BAD_REQUEST,
            "twk relay: chunked is applied more than once (sender side)\n",
        ))),
        TransferCoding::NoneOrChunked => None,
    }
}

/// What `Transfer-Encoding` asks of the relay.
#[derive(Debug, PartialEq, Eq)]
enum TransferCoding {
    NoneOrChunked,
    /// A coding besides `chunked` (`gzip, chunked`): hyper undoes only `chunked`, and the
    /// header goes (it is hop-by-hop), so the app would get gzip bytes with nothing saying
    /// so. RFC 9112 §6.1: a server answers 501 to a coding it does not understand.
    Other,
    /// `chunked, chunked`: hyper undoes one, and the app would get the other's framing as
    /// its body. RFC 9112 §6.1 forbids applying it twice.
    ChunkedTwice,
}

fn transfer_coding(headers: &http::HeaderMap) -> TransferCoding {
    let mut chunked = 0;
    let codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    for c in codings {
        if !c.eq_ignore_ascii_case(b"chunked") {
            return TransferCoding::Other;
        }
        chunked += 1;
    }
    if chunked > 1 {
        TransferCoding::ChunkedTwice
    } else {
        TransferCoding::NoneOrChunked
    }
}

/// A request let through to a connected tunnel.
struct Admitted {
    route: Route,
    client: ClientAddr,
    host: Option<String>,
    sender: TunnelSender,
    dead: CancellationToken,
    inflight: tokio_util::task::TaskTracker,
    uri: http::Uri,
    /// How long the request waited for its client to come back.
    held: Duration,
}

/// Where a request reached this relay from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// A sender on the public listener: may be sent on to the cluster node holding the tunnel.
    Public,
    /// Another node of the cluster, on the peer listener, after `hops` node-to-node hops: sent
    /// on once more at most (its tunnel moved just before it arrived), then served here or
    /// answered here.
    FromPeer { hops: u8 },
}

impl Hop {
    /// The most node-to-node hops a request makes (a loop between stale tables ends here).
    const MAX_HOPS: u8 = 2;

    /// The hop count the next node sees, if the request may move on.
    pub(crate) fn next(self) -> Option<u8> {
        match self {
            Hop::Public => Some(1),
            Hop::FromPeer { hops } if hops < Hop::MAX_HOPS => Some(hops + 1),
            Hop::FromPeer { .. } => None,
        }
    }
}

/// How long an answer may take to surface once its session ended (see `forward_as`); a
/// request the client never answered fails at once anyway (its stream is reset).
const ANSWER_AFTER_END: Duration = Duration::from_millis(200);

/// Forwards one public request through its tunnel.
pub(crate) fn forward(
    state: Arc<State>,
    remote: SocketAddr,
    req: Request<Incoming>,
    reader: Arc<Reader>,
) -> impl Future<Output = Response<RelayBody>> + Send {
    // `forward_as`'s own future, not one more around it holding the request again.
    forward_as(state, remote, req, Hop::Public, Some(reader))
}

/// Forwards a request through its tunnel, here or (from the public side) on the cluster node
/// that holds it.
pub(crate) async fn forward_as(
    state: Arc<State>,
    remote: SocketAddr,
    req: Request<Incoming>,
    hop: Hop,
    reader: Option<Arc<Reader>>,
) -> Response<RelayBody> {
    let received_ms = now_ms();
    let a = match admit(&state, remote, &req, hop, received_ms).await {
        Ok(a) => a,
        Err(Refused::Answer(refusal)) => return *refusal,
        // The cold paths are boxed: an async fn's future is as large as its largest await,
        // and every request in flight carries this one. Inline, keeping (with the cluster
        // store's futures) cost each of 1,000 connections ~10 KiB (docs/performance.md).
        Err(Refused::Elsewhere(peer, hops)) => {
            return Box::pin(crate::peer::forward(&state, peer, hops, remote, req)).await;
        }
        Err(Refused::Offline {
            route,
            client,
            host,
        }) => {
            let origin = Origin {
                client,
                remote,
                host,
                received_ms,
                request_id: state.next_request_id(),
            };
            return Box::pin(offline_keeping(&state, req, &route, &origin)).await;
        }
    };
    let request_id = state.next_request_id();
    let origin = Origin {
        client: a.client,
        remote,
        host: a.host,
        received_ms,
        request_id: request_id.clone(),
    };
    // Time spent held comes off the deadline: the sender's own clock kept running.
    let deadline = state.cfg.request_timeout.saturating_sub(a.held);
    let meta = a.sender.meta_form();
    let (out, fault) = tunnel_request(&state, req, a.uri, &a.route, &origin, deadline, meta);
    let wait = deadline + limits::RELAY_DEADLINE_MARGIN;
    // Held until the answer is through (or this request fails): the session is not over
    // while the client still answers it.
    let inflight = a.inflight.token();
    let mut sender = a.sender;
    // A request the connection never took (its client said GOAWAY just before) comes back
    // whole, to be kept like any request for an offline tunnel.
    let send = tokio::time::timeout(wait, sender.send(out));
    tokio::pin!(send);
    let result = tokio::select! {
        // An answer that arrived before the session ended wins (a client that answers, then
        // closes, on shutdown or when it moves to another node).
        biased;
        r = &mut send => r,
        _ = a.dead.cancelled() => {
            // hyper hands a response over from a task of its own, which may run only after
            // the connection's end was noticed: an answer already received still gets out.
            match tokio::time::timeout(ANSWER_AFTER_END, &mut send).await {
                Ok(r) => r,
                Err(_) => {
                    info!(request_id, "tunnel lost with the request in flight");
                    return tunnel_gone();
                }
            }
        }
    };
    let fault = fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match result {
        Err(_) => {
            info!(request_id, "tunnel client did not answer in time");
            text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "twk relay: the tunnel client did not answer within {} s (tunnel side)\n",
                    wait.as_secs()
                ),
            )
        }
        Ok(Err(e)) => {
            if let Some(unsent) = e.unsent {
                info!(
                    request_id,
                    "the tunnel's client went away before taking the request"
                );
                return Box::pin(keep_returned(&state, unsent, &a.route, &origin)).await;
            }
            failed(
                &request_id,
                fault,
                &e.error,
                &a.route.name,
                state.cfg.max_body,
            )
        }
        Ok(Ok(resp)) => {
            if let Some(SenderFault::Broken(why)) = fault {
                return broken_body(&request_id, &why);
            }
            let (mut parts, mut body) = resp.into_parts();
            body.read_by(reader);
            twk_protocol::strip_hop_by_hop(&mut parts.headers);
            if parts.status.canonical_reason().is_none() {
                // HTTP/2 carries no reason phrase; for a code without a standard one hyper
                // would write `<none>`. An empty one is what an app's own `299` sends.
                parts
                    .extensions
                    .insert(hyper::ext::ReasonPhrase::from_static(b""));
            }
            let bytes = state.metrics.bytes_out.clone();
            Response::from_parts(
                parts,
                UntilDead::new(body, a.dead, bytes)
                    .holding(inflight)
                    .boxed(),
            )
        }
    }
}

/// The answer to a request the tunnel failed: the sender's fault first, then 503 when the
/// client provably never processed it (it may be retried), else 502.
fn failed(
    request_id: &str,
    fault: Option<SenderFault>,
    e: &h2::Error,
    name: &str,
    max_body: u64,
) -> Response<RelayBody> {
    match fault {
        Some(SenderFault::TooLarge) => too_large(max_body),
        Some(SenderFault::Broken(why)) => broken_body(request_id, &why),
        None if never_processed(e) => {
            debug!(request_id, error = %e, "tunnel refused the request unprocessed");
            offline(name, "the tunnel client is going away")
        }
        None => {
            debug!(request_id, error = %e, "tunnel request failed");
            tunnel_gone()
        }
    }
}

fn tunnel_gone() -> Response<RelayBody> {
    text(
        StatusCode::BAD_GATEWAY,
        "twk relay: the tunnel client disconnected before answering (tunnel side)\n",
    )
}

/// Why a request does not go to a tunnel now.
enum Refused {
    /// Answered as is.
    Answer(Box<Response<RelayBody>>),
    /// Another node of the cluster holds the tunnel: send it there as hop number `.1`.
    Elsewhere(twk_cluster::Peer, u8),
    /// No client connected (after any hold): 503, and the request may be kept.
    Offline {
        route: Route,
        client: ClientAddr,
        host: Option<String>,
    },
}

impl From<Box<Response<RelayBody>>> for Refused {
    fn from(r: Box<Response<RelayBody>>) -> Refused {
        Refused::Answer(r)
    }
}

/// 503 for an offline tunnel; the request is kept first when the relay keeps requests and
/// the tunnel's owner has a key (the sender's answer is the same either way: the relay
/// never acknowledges a webhook the app has not).
async fn offline_keeping(
    state: &State,
    req: Request<Incoming>,
    route: &Route,
    origin: &Origin,
) -> Response<RelayBody> {
    let public_url = public_url(state, origin, &req);
    // Capped as a forwarded body is, counted apart: a kept body is not forwarded bytes.
    let req = req.map(|b| {
        let (capped, _) = Capped::new(b, state.cfg.max_body, Default::default());
        capped.boxed()
    });
    keep_and_answer(state, req, route, origin, public_url).await
}

/// [`offline_keeping`] for a request the tunnel's connection gave back unsent (its client
/// was going away): as the relay rewrote it, its public URL in twk's metadata.
async fn keep_returned(
    state: &State,
    req: Request<RelayBody>,
    route: &Route,
    origin: &Origin,
) -> Response<RelayBody> {
    let public_url = req
        .headers()
        .get(meta::PUBLIC_URL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    keep_and_answer(state, req, route, origin, public_url).await
}

/// Keeps `req` when the relay keeps requests and the tunnel's owner has a key; the 503.
async fn keep_and_answer(
    state: &State,
    req: Request<RelayBody>,
    route: &Route,
    origin: &Origin,
    public_url: String,
) -> Response<RelayBody> {
    // In a cluster the client may have connected to another node only: its key is shared.
    let owner = state.registry.owner_key(&route.name).or_else(|| {
        let key = state.cfg.cluster.as_ref()?.owner_key(&route.name)?;
        twk_protocol::kept::OwnerPublic::parse(&key).ok()
    });
    let (Some(store), Some(owner)) = (&state.keep, owner) else {
        state.registry.note_unkept(&route.name, Lost::NotKept);
        return offline(&route.name, "no tunnel client is connected");
    };
    if declared_len(req.headers()).is_some_and(|n| n > state.cfg.max_body) {
        state.registry.note_unkept(&route.name, Lost::TooLarge);
        return too_large(state.cfg.max_body);
    }
    let mut headers = req.headers().clone();
    strip_ours(&mut headers);
    let meta = twk_protocol::kept::KeptRequest {
        request_id: origin.request_id.clone(),
        received_ms: origin.received_ms,
        method: req.method().to_string(),
        path: route.path_and_query.clone(),
        public_url,
        remote_addr: remote_addr(origin),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: Vec::new(),
        answered: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
    };
    let why = match crate::keep::keep_offline(state, store, owner, &route.name, req, meta).await {
        true => "no tunnel client is connected (the request is kept for it)",
        false => {
            state.registry.note_unkept(&route.name, Lost::NotKept);
            "no tunnel client is connected"
        }
    };
    offline(&route.name, why)
}

/// The request's `Content-Length`, when it has a valid one.
pub(crate) fn declared_len(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Removes what a sender's headers must not carry on: hop-by-hop headers, and any `x-twk-*`
/// (a sender must not be able to forge twk's own metadata). The same for a forwarded, a kept
/// and a refused request.
fn strip_ours(headers: &mut http::HeaderMap) {
    twk_protocol::strip_hop_by_hop(headers);
    meta::strip_all(headers);
}

/// The host the sender addressed: its `Host`, else the relay's domain.
fn public_host<'a>(state: &'a State, origin: &'a Origin) -> &'a str {
    origin.host.as_deref().unwrap_or(&state.cfg.domain)
}

/// The exact public URL the sender used.
fn public_url(state: &State, origin: &Origin, req: &Request<Incoming>) -> String {
    let scheme = state.cfg.scheme().as_str();
    let host = public_host(state, origin);
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    [scheme, "://", host, target].concat()
}

/// The sender's address: behind a trusted proxy, the one it reported.
fn remote_addr(origin: &Origin) -> String {
    if origin.client.via_proxy {
        ip_text(origin.client.ip)
    } else {
        socket_text(origin.remote)
    }
}

/// `ip:port` as `SocketAddr`'s `Display` writes it. An IPv4 address, the usual sender's, is
/// written a number at a time: the formatter's padding logic for each octet cost ~1.7k
/// instructions a request (docs/performance.md, twenty-eighth round).
fn socket_text(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => {
            let mut text = String::with_capacity(21);
            push_ipv4(&mut text, *a.ip());
            text.push(':');
            text.push_str(itoa::Buffer::new().format(a.port()));
            text
        }
        SocketAddr::V6(_) => addr.to_string(),
    }
}

/// An IP as its `Display` writes it; IPv4 as in [`socket_text`].
fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            push_ipv4(&mut text, v4);
            text
        }
        std::net::IpAddr::V6(_) => ip.to_string(),
    }
}

fn push_ipv4(text: &mut String, ip: std::net::Ipv4Addr) {
    let mut digits = itoa::Buffer::new();
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(digits.format(octet));
    }
}

/// Decides whether a request may go to a tunnel: its target, its route, the tunnel's
/// presence and rate, its declared size. Refusals are boxed (the rare path).
async fn admit(
    state: &State,
    remote: SocketAddr,
    req: &Request<Incoming>,
    hop: Hop,
    received_ms: i64,
) -> Result<Admitted, Refused> {
    if let Some(refusal) = refuse_target(req) {
        return Err(Box::new(refusal).into());
    }
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let domain_host = strip_port(&state.cfg.domain);
    let Some(route) = route(path_and_query, host.as_deref(), domain_host) else {
        return Err(Box::new(text(
            StatusCode::NOT_FOUND,
            "twk relay: no tunnel at this address; use https://<name>.<domain>/… or /t/<name>/…\n",
        ))
        .into());
    };
    if let Some(moved) = held_elsewhere(state, &route.name, hop) {
        return Err(moved);
    }
    let client = state.abuse.client_addr(remote.ip(), req.headers());
    let limited = !state.abuse.exempt(client.ip);
    let (sender, dead, inflight, held) = match session_for(state, &route.name, limited).await {
        Ok(s) => s,
        Err(NoSession::OverRate(wait, notices)) => {
            let (answer, retry_after_secs) = (over_rate_text(&route.name), retry_after(wait));
            let why = RefusedFor::OverRate { retry_after_secs };
            Refusal::new(remote, client, host, received_ms, why).tell(
                notices.as_deref(),
                state,
                req,
                &route,
                &answer,
            );
            return Err(Box::new(over_rate(answer, retry_after_secs)).into());
        }
        Err(NoSession::Offline) => {
            if let Some(moved) = coming_up_elsewhere(state, &route.name, hop).await {
                return Err(moved);
            }
            return Err(Refused::Offline {
                route,
                client,
                host,
            });
        }
    };
    let max = state.cfg.max_body;
    if declared_len(req.headers()).is_some_and(|n| n > max) {
        // Answered before a byte of the body is read (no 100 Continue is sent).
        let notices = state.registry.notices(&route.name);
        Refusal::new(
            remote,
            client,
            host,
            received_ms,
            RefusedFor::BodyTooLarge { cap: max },
        )
        .tell(notices.as_deref(), state, req, &route, &too_large_text(max));
        return Err(Box::new(too_large(max)).into());
    }
    let uri = http::Uri::builder()
        .scheme("http")
        .authority([&route.name, ".tunnel"].concat().as_str())
        .path_and_query(route.path_and_query.as_str())
        .build()
        .map_err(|_| {
            Refused::Answer(Box::new(text(
                StatusCode::BAD_REQUEST,
                "twk relay: invalid request target (sender side)\n",
            )))
        })?;
    Ok(Admitted {
        route,
        client,
        host,
        sender,
        dead,
        inflight,
        uri,
        held,
    })
}

/// The cluster node holding `name`, when it is not connected here and the request may still
/// move.
fn held_elsewhere(state: &State, name: &str, hop: Hop) -> Option<Refused> {
    let cluster = state.cfg.cluster.as_ref()?;
    let hops = hop.next()?;
    if state.registry.is_live(name) {
        return None;
    }
    Some(Refused::Elsewhere(cluster.locate(name)?, hops))
}

/// How long a request for a tunnel the cluster knew of waits for a node to hold it again
/// before its sender is told it is offline: the moment a client moves between nodes, or the
/// claim on its new node reaches this one's tables.
const MOVE_SETTLE: Duration = Duration::from_secs(1);

/// For a name the cluster held recently but nobody holds live now: the node that holds it
/// within [`MOVE_SETTLE`], if one does.
async fn coming_up_elsewhere(state: &State, name: &str, hop: Hop) -> Option<Refused> {
    let cluster = state.cfg.cluster.as_ref()?;
    let hops = hop.next()?;
    if !cluster.knows(name) {
        return None;
    }
    let peer = cluster.await_holder(name, MOVE_SETTLE).await?;
    Some(Refused::Elsewhere(peer, hops))
}

/// A session to send a request on: its sender, its end, its in-flight count, and how long the
/// request was held for it.
type Session = (
    TunnelSender,
    CancellationToken,
    tokio_util::task::TaskTracker,
    Duration,
);

/// The session to send a request for `name` to, waiting for one that is finishing its
/// handshake, or (the hold) for a client that was connected within the last minute to come
/// back; also how long the request was held.
async fn session_for(state: &State, name: &str, limited: bool) -> Result<Session, NoSession> {
    // Only time spent held counts (and comes off the deadline), not a lookup's microseconds.
    let mut held = Duration::ZERO;
    let gone = || NoSession::Offline;
    loop {
        match state.registry.lookup(name, Instant::now(), limited) {
            Lookup::Ready {
                sender,
                dead,
                inflight,
            } => return Ok((sender, dead, inflight, held)),
            Lookup::Offline => return Err(gone()),
            Lookup::RateLimited(wait, notices) => return Err(NoSession::OverRate(wait, notices)),
            // The client has its name and finishes the HTTP/2 handshake within milliseconds:
            // a webhook arriving now waits for it rather than being told "offline".
            Lookup::Connecting(mut ready) => {
                let up = tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, ready.wait_for(|r| *r));
                if !matches!(up.await, Ok(Ok(_))) {
                    return Err(gone());
                }
            }
            Lookup::Reconnecting {
                mut back,
                slots,
                owner,
            } => {
                let hold = state.cfg.hold.min(state.cfg.request_timeout / 2);
                let left = hold.saturating_sub(held);
                let start = Instant::now();
                // Bounded: past `hold_max` held requests, the sender is told at once.
                let Ok(_slot) = slots.try_acquire_owned() else {
                    return Err(gone());
                };
                state.metrics.held.inc();
                let came_back = tokio::time::timeout(left, back.changed()).await;
                state.metrics.held.dec();
                held += start.elapsed();
                if !matches!(came_back, Ok(Ok(()))) || !state.registry.owned_by(name, &owner) {
                    debug!(name, held_ms = held.as_millis(), "hold ended offline");
                    state.metrics.hold_ended("offline");
                    return Err(gone());
                }
                state.metrics.hold_ended("delivered");
            }
        }
    }
}

/// Why [`session_for`] has no session to send on.
enum NoSession {
    /// The tunnel is offline (or stayed so while the request was held).
    Offline,
    /// The tunnel is over its request rate: retry after this long; the session's notices,
    /// when its client takes them.
    OverRate(Duration, Option<Arc<Notices>>),
}

fn retry_after(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

fn over_rate_text(name: &str) -> String {
    format!("twk relay: tunnel '{name}' is over its request rate (sender side); retry later\n")
}

fn over_rate(answer: String, retry_after_secs: u64) -> Response<RelayBody> {
    with_retry_after(
        text(StatusCode::TOO_MANY_REQUESTS, answer),
        retry_after_secs,
    )
}

fn broken_body(request_id: &str, why: &str) -> Response<RelayBody> {
    info!(request_id, error = %why, "sender's request body was malformed or cut short");
    closing(text(
        StatusCode::BAD_REQUEST,
        "twk relay: the request body is malformed or incomplete (sender side)\n",
    ))
}

/// True when the tunnel client provably never processed the request (RFC 9113 §8.7:
/// REFUSED_STREAM, or a stream above a GOAWAY's last id), so telling the sender to retry is
/// safe. A request the connection never took comes back whole instead (`SendError::unsent`).
fn never_processed(e: &h2::Error) -> bool {
    e.reason() == Some(h2::Reason::REFUSED_STREAM)
        || (e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR))
}

/// A request the relay refuses itself, to be listed for its tunnel's client (`notices.rs`).
struct Refusal {
    remote: SocketAddr,
    client: ClientAddr,
    host: Option<String>,
    received_ms: i64,
    refused_for: RefusedFor,
}

impl Refusal {
    fn new(
        remote: SocketAddr,
        client: ClientAddr,
        host: Option<String>,
        received_ms: i64,
        refused_for: RefusedFor,
    ) -> Self {
        Refusal {
            remote,
            client,
            host,
            received_ms,
            refused_for,
        }
    }

    /// Lists it for the tunnel's client, when its session takes notices.
    fn tell(
        self,
        notices: Option<&Notices>,
        state: &State,
        req: &Request<Incoming>,
        route: &Route,
        answer: &str,
    ) {
        if let Some(n) = notices {
            let signed =
                || twk_protocol::refused::looks_signed(req.headers().keys().map(|k| k.as_str()));
            n.refused(self.client.ip, signed, || {
                self.describe(state, req, route, answer)
            });
        }
    }

    /// The notice of it: the request's head as a forwarded one would carry it (no hop-by-hop
    /// or forged `x-twk-*` headers), within the notice's bound.
    fn describe(
        self,
        state: &State,
        req: &Request<Incoming>,
        route: &Route,
        answer: &str,
    ) -> RefusedRequest {
        let origin = Origin {
            client: self.client,
            remote: self.remote,
            host: self.host,
            received_ms: self.received_ms,
            request_id: state.next_request_id(),
        };
        let mut headers = req.headers().clone();
        strip_ours(&mut headers);
        let (headers, headers_cut) = twk_protocol::refused::head_within(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
        );
        debug!(
            request_id = origin.request_id,
            status = self.refused_for.status(),
            "refused a request; listed for the tunnel's client"
        );
        RefusedRequest {
            public_url: public_url(state, &origin, req),
            remote_addr: remote_addr(&origin),
            request_id: origin.request_id,
            received_ms: origin.received_ms,
            method: req.method().to_string(),
            path: route.path_and_query.clone(),
            headers,
            headers_cut,
            declared_len: declared_len(req.headers()).or_else(|| {
                // Neither length nor chunked: the request has no body.
                (!req.headers().contains_key(header::TRANSFER_ENCODING)).then_some(0)
            }),
            refused_for: self.refused_for,
            answer: answer.to_owned(),
        }
    }
}

/// Where a request came from, as the relay saw it.
struct Origin {
    client: ClientAddr,
    remote: SocketAddr,
    host: Option<String>,
    received_ms: i64,
    request_id: String,
}

/// Builds the request that goes over the tunnel to `uri`: twk's metadata, no hop-by-hop
/// headers, the body streamed through the cap.
fn tunnel_request(
    state: &State,
    req: Request<Incoming>,
    uri: http::Uri,
    route: &Route,
    origin: &Origin,
    deadline: Duration,
    form: MetaForm,
) -> (Request<RelayBody>, FaultCell) {
    let scheme = state.cfg.scheme().as_str();
    let public_url = public_url(state, origin, &req);
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    let trailers = twk_protocol::accepts_trailers(&headers);
    strip_ours(&mut headers);
    headers.remove(header::EXPECT);
    if trailers {
        headers.insert(header::TE, http::HeaderValue::from_static("trailers"));
    }
    let client = &origin.client;
    if client.via_proxy {
        // The trusted proxies' own entries end here; the sender's claims travel on.
        headers.remove(twk_protocol::X_FORWARDED_FOR);
        if let Some(rest) = client.forwarded_rest.as_deref().filter(|r| !r.is_empty()) {
            set(&mut headers, twk_protocol::X_FORWARDED_FOR, rest);
        }
    }
    // The sender's headers only: twk's own below are never secret (those unique to this
    // request are marked as they are set).
    twk_protocol::mark_secret_headers(&mut headers);
    set_owned(&mut headers, meta::PUBLIC_URL, public_url);
    let remote_addr = remote_addr(origin);
    let bundle = twk_protocol::bundle::Bundle {
        request_id: &origin.request_id,
        received_ms: origin.received_ms,
        deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        remote_addr: &remote_addr,
        proto: scheme,
        host: public_host(state, origin),
        prefix: route.prefix.as_deref(),
    };
    match form {
        MetaForm::Bundle => set_bundle(&mut headers, &bundle),
        MetaForm::Headers => set_each(&mut headers, &bundle),
    }
    let (capped, fault) = Capped::new(body, state.cfg.max_body, state.metrics.bytes_in.clone());
    let mut out = Request::new(capped.boxed());
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    (out, fault)
}

#[cfg(test)]
mod tests {

    #[test]
    fn addresses_read_as_their_display_writes_them() {
        let sockets = [
            "0.0.0.0:0",
            "1.2.3.4:5",
            "10.0.0.1:80",
            "127.0.0.1:65535",
            "255.255.255.255:443",
            "192.168.100.9:8080",
            "[::1]:443",
            "[2001:db8::8:800:200c:417a]:1",
            "[::ffff:10.0.0.1]:9",
        ];
        for text in sockets {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(socket_text(addr), addr.to_string());
            assert_eq!(ip_text(addr.ip()), addr.ip().to_string());
        }
        for o in 0..=255u8 {
            let ip = std::net::Ipv4Addr::new(o, o.wrapping_mul(7), 255 - o, o / 3);
            let addr = SocketAddr::from((ip, u16::from(o) * 257));
            assert_eq!(socket_text(addr), addr.to_string());
        }
    }

    /// The size of a future returned by `f`, without calling it.
    fn future_size<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request in flight carries the handler's future: a path it rarely takes, awaited
    /// inline, once made it ~10 KiB larger (the cluster store's futures in keeping). The cold
    /// paths are boxed; this keeps it so, with room for the debug build's larger futures.
    #[test]
    fn the_request_handlers_future_stays_small() {
        let size = future_size(super::forward);
        println!("forward's future: {size} bytes");
        assert!(size < 4096, "forward's future is {size} bytes");
    }
    use super::*;

    #[test]
    fn path_routing_strips_the_prefix() {
        let r = route("/t/abc/hook?x=1", Some("relay.test"), "relay.test").unwrap();
        assert_eq!(r.name, "abc");
        assert_eq!(r.path_and_query, "/hook?x=1");
        assert_eq!(r.prefix.as_deref(), Some("/t/abc"));
        let r = route("/t/abc?x=1", None, "relay.test").unwrap();
        assert_eq!(r.path_and_query, "/?x=1");
        let r = route("/t/abc", None, "relay.test").unwrap();
        assert_eq!(r.path_and_query, "/");
        assert!(route("/t/ABC/x", None, "relay.test").is_none());
        assert!(route("/t//x", None, "relay.test").is_none());
    }

    #[test]
    fn subdomain_routing() {
        let r = route("/hook?a=b", Some("abc.relay.test:8443"), "relay.test").unwrap();
        assert_eq!(r.name, "abc");
        assert_eq!(r.path_and_query, "/hook?a=b");
        assert!(r.prefix.is_none());
        assert!(route("/", Some("relay.test"), "relay.test").is_none());
        assert!(route("/", Some("a.b.relay.test"), "relay.test").is_none());
        assert!(route("/", Some("abcrelay.test"), "relay.test").is_none());
        assert!(route("/", Some("evil.test"), "relay.test").is_none());
        // DNS names compare without regard to case, on either side.
        let r = route("/", Some("ABC.Relay.Test"), "relay.test").unwrap();
        assert_eq!(r.name, "abc");
        let r = route("/", Some("abc.relay.test"), "Relay.TEST").unwrap();
        assert_eq!(r.name, "abc");
        assert!(route("/", Some("é.relay.test"), "relay.test").is_none());
        assert!(route("/", Some("relay.tesé"), "relay.test").is_none());
        assert!(route("/", None, "relay.test").is_none());
    }

    #[test]
    fn the_host_decides_before_the_path() {
        // A subdomain tunnel's app may have its own /t/ paths: they are not re-routed.
        let r = route("/t/abc/x", Some("other.relay.test"), "relay.test").unwrap();
        assert_eq!(r.name, "other");
        assert_eq!(r.path_and_query, "/t/abc/x");
        assert!(r.prefix.is_none());
        // The bare domain or an address routes by path.
        let r = route("/t/abc/x", Some("relay.test:443"), "relay.test").unwrap();
        assert_eq!(r.name, "abc");
        let r = route("/t/abc/x", Some("127.0.0.1:9"), "relay.test").unwrap();
        assert_eq!(r.name, "abc");
        // An invalid subdomain label is not a tunnel, whatever the path says.
        assert!(route("/t/abc/x", Some("www.relay.test"), "relay.test").is_none());
    }
}
