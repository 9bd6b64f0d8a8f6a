//! One tunnelled request: rebuild it for the local target, forward, stream the answer back,
//! and report the exchange.

use crate::config::{AgentConfig, HostHeader};
use crate::hasher::BodyHasher;
use crate::now_ms;
use crate::prefetch::{AheadBudget, Arrival, Slots, Turn, read_ahead};
use crate::session::Observer;
use crate::tap::{BodyFault, CaptureBudget, Lease, Tap, TapResult};
use crate::target_pool::{Checkout, PooledBody, SendError, TargetPool};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::debug;
use twk_capture::{
    AuthInfo, CapturedBody, Exchange, Failure, Header, Message, Shortfall, Side, Timings,
};
use twk_protocol::meta;
use twk_transport::gather::Gathered;

/// Body type on the tunnel and towards the target.
pub(crate) use twk_transport::body::{BoxError, TunnelBody as AgentBody};

/// State shared by all requests of one agent.
pub(crate) struct Shared {
    cfg: AgentConfig,
    target: TargetPool,
    observer: Arc<dyn Observer>,
    /// Name granted by the relay on the current session.
    name: Mutex<String>,
    /// Memory all in-flight body captures may hold together.
    budget: CaptureBudget,
    /// The thread analyses of bodies over [`INLINE_ANALYSIS_BYTES`] run on, one after
    /// another (`None` if it could not be started: they then run inline).
    analyst: Option<std::sync::mpsc::Sender<Job>>,
    /// The thread the rest of a body cut short is hashed on.
    hasher: BodyHasher,
    /// Requests the local target may have at once (each one is a connection to it, with
    /// hyper's buffers); the rest wait their turn, within their deadline.
    target_slots: Slots,
    /// Request bodies read ahead before they take a slot, all requests together.
    ahead: AheadBudget,
    /// Bumped when the relay node asks this client to move to another node.
    moves: tokio::sync::watch::Sender<u64>,
    /// Bumped each time a session is up (a moved-from session may then close).
    sessions: tokio::sync::watch::Sender<u64>,
    /// The tasks that finish exchanges: a response is written before its exchange is
    /// analysed and recorded, so the agent waits for these before it returns (twk-tunnel's
    /// forwarding runtime, and any task still on it, ends with the agent).
    reports: tokio_util::task::TaskTracker,
}

impl Shared {
    pub(crate) fn new(cfg: AgentConfig, observer: Arc<dyn Observer>) -> Self {
        // Response bodies move through in chunks of this size; hyper's default (~400 KiB per
        // connection) was 25 MiB of client memory for 64 large answers at once.
        let target = TargetPool::new(&cfg.target.authority, twk_protocol::limits::TARGET_READ_BUF);
        let budget = CaptureBudget::new(cfg.capture_budget);
        let hasher = BodyHasher::new(crate::hasher::QUEUE_BYTES);
        let target_slots = Slots::new(cfg.max_target_requests);
        Shared {
            cfg,
            target,
            observer,
            name: Mutex::new(String::new()),
            budget,
            analyst: start_analyst(),
            hasher,
            target_slots,
            ahead: AheadBudget::default(),
            moves: tokio::sync::watch::channel(0).0,
            sessions: tokio::sync::watch::channel(0).0,
            reports: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Waits, up to `grace`, for the exchanges already answered to be reported; then no
    /// more are waited for.
    pub(crate) async fn drain_reports(&self, grace: Duration) {
        self.reports.close();
        if tokio::time::timeout(grace, self.reports.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.reports.len(),
                "exchanges answered before shutdown were still being analysed; not recorded"
            );
        }
    }

    /// Runs `analyse`, the analysis of a body of `len` bytes, where it belongs: inline up to
    /// [`INLINE_ANALYSIS_BYTES`]; past it on the analysis thread, since parsing and checking a
    /// large body takes milliseconds, and a 1 MiB JSON body parses into ~22 MB of values
    /// (the exchanges waiting their turn hold only their capture leases, which the capture
    /// budget bounds). `None` if the analysis panicked.
    pub(crate) async fn analyse<T: Send + 'static>(
        &self,
        len: usize,
        analyse: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let Some(analyst) = self.analyst.as_ref().filter(|_| !self.analyses_inline(len)) else {
            return Some(analyse());
        };
        let (done, analysed) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(analyse());
        });
        analyst.send(job).ok()?;
        analysed.await.ok()
    }

    /// Whether the analysis of a body of `len` bytes runs where it is asked for.
    pub(crate) fn analyses_inline(&self, len: usize) -> bool {
        self.analyst.is_none() || len <= INLINE_ANALYSIS_BYTES
    }

    /// Sets a tap up as this agent records: the shared budget, and the hash if bodies are
    /// hashed.
    fn tap_options<B>(&self, tap: Tap<B>) -> Tap<B> {
        let tap = tap.with_budget(self.budget.clone());
        if self.cfg.hash_bodies {
            tap.with_hasher(self.hasher.clone())
        } else {
            tap.without_hash()
        }
    }

    /// The relay node asked this client to move ([`meta::MOVE`]).
    pub(crate) fn request_move(&self) {
        self.moves.send_modify(|n| *n += 1);
    }

    /// Changes when the relay node asks this client to move.
    pub(crate) fn moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moves.subscribe()
    }

    /// A session is up.
    pub(crate) fn session_up(&self) {
        self.sessions.send_modify(|n| *n += 1);
    }

    /// Changes when a session is up.
    pub(crate) fn sessions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sessions.subscribe()
    }

    pub(crate) fn cfg(&self) -> &AgentConfig {
        &self.cfg
    }

    pub(crate) fn observer(&self) -> Arc<dyn Observer> {
        self.observer.clone()
    }

    pub(crate) fn set_name(&self, name: &str) {
        let mut n = self.name.lock().unwrap_or_else(|p| p.into_inner());
        *n = name.to_string();
    }

    pub(crate) fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The relay's metadata about one request, taken from the `x-twk-*` headers. What only goes
/// on to the app's headers stays a [`HeaderValue`]: it moves there without a copy.
#[derive(Debug, Default)]
struct Meta {
    request_id: String,
    public_url: String,
    remote_addr: Option<String>,
    received_ms: Option<i64>,
    proto: Option<HeaderValue>,
    host: Option<HeaderValue>,
    prefix: Option<HeaderValue>,
    deadline: Option<Duration>,
}

impl Meta {
    /// Reads and removes every `x-twk-*` header: those it reads as it reads them, the rest
    /// in one pass, which finds none unless a relay sends a name this client does not know.
    /// A relay sends the metadata in one header ([`meta::BUNDLE`]) when the client asked for
    /// it, one header each otherwise (a relay before the bundle).
    fn take(headers: &mut HeaderMap) -> Meta {
        let public_url = headers.remove(meta::PUBLIC_URL).and_then(text);
        let mut m = match headers.remove(meta::BUNDLE) {
            Some(v) => Meta::unbundle(&v),
            None => Meta::one_by_one(headers),
        };
        m.public_url = public_url.unwrap_or_default();
        meta::strip_all(headers);
        m
    }

    fn unbundle(v: &HeaderValue) -> Meta {
        let b = match twk_protocol::bundle::Bundle::decode(v.as_bytes()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "the relay's metadata of a request is unreadable");
                return Meta::default();
            }
        };
        // As sent: UTF-8 beyond ASCII too, as the one-by-one headers carry it.
        let value = |s: &str| HeaderValue::from_bytes(s.as_bytes()).ok();
        Meta {
            request_id: b.request_id.to_owned(),
            public_url: String::new(),
            remote_addr: Some(b.remote_addr.to_owned()),
            received_ms: Some(b.received_ms),
            proto: value(b.proto),
            host: value(b.host),
            prefix: b.prefix.and_then(value),
            deadline: Some(Duration::from_millis(b.deadline_ms)).filter(|d| !d.is_zero()),
        }
    }

    fn one_by_one(headers: &mut HeaderMap) -> Meta {
        // Each value is checked once: as it is read, or before it goes on as a header.
        let mut take = |n: &HeaderName| headers.remove(n);
        let utf8 = |v: &HeaderValue| std::str::from_utf8(v.as_bytes()).is_ok();
        fn number<T: std::str::FromStr>(v: HeaderValue) -> Option<T> {
            std::str::from_utf8(v.as_bytes()).ok()?.parse().ok()
        }
        Meta {
            request_id: take(&meta::REQUEST_ID).and_then(text).unwrap_or_default(),
            public_url: String::new(),
            remote_addr: take(&meta::REMOTE_ADDR).and_then(text),
            received_ms: take(&meta::RECEIVED_AT).and_then(number),
            proto: take(&meta::PROTO).filter(utf8),
            host: take(&meta::HOST).filter(utf8),
            prefix: take(&meta::FORWARDED_PREFIX).filter(utf8),
            deadline: take(&meta::DEADLINE_MS)
                .and_then(number)
                .filter(|&ms: &u64| ms > 0)
                .map(Duration::from_millis),
        }
    }

    /// The sender's IP address: the relay sends `ip:port` (`[v6]:port`), or an IP alone
    /// when a trusted proxy reported it. Sliced out of the text, not formatted again.
    fn remote_ip(&self) -> Option<&str> {
        let addr = self.remote_addr.as_deref()?;
        if addr.parse::<std::net::IpAddr>().is_ok() {
            return Some(addr);
        }
        let ip = match addr.rsplit_once(':') {
            Some((ip, port)) if port.parse::<u16>().is_ok() => ip
                .strip_prefix('[')
                .and_then(|v6| v6.strip_suffix(']'))
                .unwrap_or(ip),
            _ => addr,
        };
        Some(if ip.parse::<std::net::IpAddr>().is_ok() {
            ip
        } else {
            addr
        })
    }
}

/// A metadata value as text: UTF-8, not just ASCII (the relay sends the public URL as the
/// sender wrote it).
fn text(v: HeaderValue) -> Option<String> {
    String::from_utf8(v.as_bytes().to_vec()).ok()
}

/// Copies headers in order, one entry per value.
pub(crate) fn headers_to_vec(h: &HeaderMap) -> Vec<Header> {
    h.iter()
        .map(|(n, v)| Header {
            name: n.as_str().to_string(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

/// Forwarding headers' names, made once (a `&str` name is parsed again on every insert).
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

fn put(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Appends `mine` to a list-valued header (`X-Forwarded-For`, `Forwarded`), keeping what
/// proxies before twk put there, as one comma-separated value.
fn append_list(h: &mut HeaderMap, name: header::HeaderName, mine: String) {
    let mut values = h.get_all(&name).iter().filter_map(|v| v.to_str().ok());
    // Most requests come straight from their sender: nothing to keep, nothing to join.
    let Some(first) = values.next() else {
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(mine)) {
            h.insert(name, v);
        }
        return;
    };
    let mut list = first.to_owned();
    for v in values.chain(std::iter::once(mine.as_str())) {
        list.push_str(", ");
        list.push_str(v);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(list)) {
        h.insert(name, v);
    }
}

/// The `Host` the app gets (`--host-header`) and the forwarding headers that let it
/// rebuild the public URL: what every request to the app carries, live or kept.
fn for_the_target(cfg: &AgentConfig, headers: &mut HeaderMap, m: &Meta) {
    match (cfg.host_header, &m.host) {
        (HostHeader::Preserve, Some(host)) => {
            headers.insert(header::HOST, host.clone());
        }
        _ => put(headers, header::HOST, &cfg.target.authority),
    }
    add_forwarding_headers(headers, m);
}

/// `headers` of a request the relay kept (as the sender sent them) as a live one would have
/// reached the app: a kept request delivered later is a replay of this, and an app that
/// rebuilds the public URL or checks `Host` must see the same as for a live one.
pub(crate) fn kept_for_the_target(
    cfg: &AgentConfig,
    headers: &mut HeaderMap,
    public_url: &str,
    path: &str,
    remote_addr: &str,
) {
    let uri = public_url.parse::<http::Uri>().ok();
    let public_path = uri.as_ref().map_or("", |u| u.path());
    let local_path = path.split('?').next().unwrap_or("");
    let prefix = public_path
        .strip_suffix(local_path)
        .filter(|p| !p.is_empty());
    let m = Meta {
        remote_addr: Some(remote_addr.to_owned()),
        proto: uri
            .as_ref()
            .and_then(|u| u.scheme_str())
            .and_then(|s| HeaderValue::from_str(s).ok()),
        host: uri
            .as_ref()
            .and_then(|u| u.authority())
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
        prefix: prefix.and_then(|p| HeaderValue::from_str(p).ok()),
        ..Meta::default()
    };
    for_the_target(cfg, headers, &m);
}

/// Adds `X-Forwarded-*` and `Forwarded` so the app can rebuild the public URL.
fn add_forwarding_headers(h: &mut HeaderMap, m: &Meta) {
    let ip = m.remote_ip();
    if let Some(ip) = ip {
        append_list(h, twk_protocol::X_FORWARDED_FOR, ip.to_owned());
    }
    for (name, value) in [
        (X_FORWARDED_PROTO, &m.proto),
        (X_FORWARDED_HOST, &m.host),
        (X_FORWARDED_PREFIX, &m.prefix),
    ] {
        if let Some(v) = value {
            h.insert(name, v.clone());
        }
    }
    let mut forwarded = String::with_capacity(64);
    if let Some(ip) = ip {
        // RFC 7239 §6: IPv6 addresses are bracketed and quoted.
        let v6 = ip.contains(':');
        for piece in [
            "for=",
            if v6 { "\"[" } else { "" },
            ip,
            if v6 { "]\"" } else { "" },
        ] {
            forwarded.push_str(piece);
        }
    }
    fn text(v: &Option<HeaderValue>) -> Option<&str> {
        v.as_ref()
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
    }
    let mut part = |pieces: &[&str]| {
        if !forwarded.is_empty() {
            forwarded.push(';');
        }
        pieces.iter().for_each(|p| forwarded.push_str(p));
    };
    if let Some(host) = text(&m.host) {
        // A quoted-string: the host's own quotes and backslashes left out.
        let host: std::borrow::Cow<'_, str> = if host.contains(['"', '\\']) {
            host.replace(['"', '\\'], "").into()
        } else {
            host.into()
        };
        part(&["host=\"", &host, "\""]);
    }
    if let Some(p) = text(&m.proto) {
        part(&["proto=", p]);
    }
    if !forwarded.is_empty() {
        append_list(h, header::FORWARDED, forwarded);
    }
}

fn twk_text(status: StatusCode, body: String) -> Response<AgentBody> {
    twk_transport::body::text_response(status, body, "client")
}

/// The innermost cause of an error, for a one-line message.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The outcome of the Basic-auth check twk enforces itself (`--basic-auth`).
enum Gate {
    /// No check configured, or the credentials passed: forward.
    Open,
    /// Answer 401 with this `WWW-Authenticate` challenge; the app never sees the request.
    Challenge {
        missing: bool,
        www_authenticate: String,
    },
}

/// Runs the Basic-auth check on `headers` (stripping the credentials when asked), and says
/// what to record: the user presented, never the password.
fn basic_auth_gate(cfg: &AgentConfig, headers: &mut HeaderMap) -> (Gate, Option<AuthInfo>) {
    use crate::basic_auth::Check;
    let Some(auth) = &cfg.basic_auth else {
        return (Gate::Open, None);
    };
    let presented = headers.get_all(header::AUTHORIZATION);
    let check = auth.check(presented.iter().map(|v| v.as_bytes()));
    let info = AuthInfo {
        user: presented
            .iter()
            .find_map(|v| crate::basic_auth::decode(v.as_bytes()))
            .map(|(user, _password)| user),
        matched: match check {
            Check::Missing => None,
            Check::Pass => Some(true),
            Check::Wrong => Some(false),
        },
    };
    let gate = match check {
        Check::Pass => {
            if auth.strip {
                headers.remove(header::AUTHORIZATION);
            }
            Gate::Open
        }
        other => Gate::Challenge {
            missing: matches!(other, Check::Missing),
            www_authenticate: auth.challenge(),
        },
    };
    (gate, Some(info))
}

/// The exchange as recorded from the moment the request is forwarded.
fn new_exchange(
    shared: &Shared,
    m: Meta,
    method: &str,
    path: String,
    headers: &HeaderMap,
) -> Exchange {
    Exchange {
        tunnel: shared.name(),
        request_id: m.request_id,
        public_url: m.public_url,
        remote_addr: m.remote_addr,
        method: method.to_string(),
        path,
        target: shared.cfg.target.url(),
        request: Message {
            headers: headers_to_vec(headers),
            body: CapturedBody::default(),
        },
        timings: Timings {
            received_ms: m.received_ms.unwrap_or_else(now_ms),
            forwarded_ms: Some(now_ms()),
            ..Timings::default()
        },
        ..Exchange::default()
    }
}

/// What a request arriving over the tunnel needs, decided before its task is spawned.
// Consumed as soon as it is made; boxing `Live` would cost each request an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Arrived {
    /// A webhook for the local target, with its record started: [`Live::forward`].
    Live(Live),
    /// Answered at once.
    Answered(Response<AgentBody>),
    /// A request of the relay's own (a kept or refused request, a move), boxed as every
    /// handling is ([`crate::detached`]).
    Other(crate::detached::Handling),
}

/// Sorts one request arriving over the tunnel and, for a webhook, readies it.
pub(crate) fn arrive(shared: Arc<Shared>, req: Request<Incoming>) -> Arrived {
    if req.headers().contains_key(meta::KEPT) {
        return Arrived::Other(Box::pin(crate::kept::receive(shared, req)));
    }
    if req.headers().contains_key(meta::REFUSED) {
        return Arrived::Other(Box::pin(crate::refused::receive(shared, req)));
    }
    if req.headers().contains_key(meta::MOVE) {
        tracing::info!("the relay node is going away: moving to another node");
        shared.request_move();
        return Arrived::Answered(twk_transport::body::text_response(
            StatusCode::NO_CONTENT,
            "",
            "client",
        ));
    }
    match Live::start(&shared, req) {
        Ok(live) => Arrived::Live(live),
        Err(answer) => Arrived::Answered(*answer),
    }
}

/// A request from the tunnel made ready for the local target, with its record started.
/// Built by a plain function, so that what it takes to build lives on the stack, not in
/// the request's future.
pub(crate) struct Live {
    out: Request<AgentBody>,
    record: Pending,
    gate: Gate,
    deadline: Duration,
    unread: oneshot::Receiver<crate::unread::Rest>,
}

impl Live {
    fn start(
        shared: &Arc<Shared>,
        req: Request<Incoming>,
    ) -> Result<Live, Box<Response<AgentBody>>> {
        let cfg = &shared.cfg;
        let (mut parts, body) = req.into_parts();
        let m = Meta::take(&mut parts.headers);
        let trailers = twk_protocol::accepts_trailers(&parts.headers);
        twk_protocol::strip_hop_by_hop(&mut parts.headers);
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        // Origin form: the target pool writes only the path and query on the request line.
        let uri = cfg
            .target
            .local_path(&path)
            .map(http::Uri::from)
            .map_err(|e| {
                Box::new(twk_text(
                    StatusCode::BAD_REQUEST,
                    format!("twk: cannot forward this request target: {e} (sender side)\n"),
                ))
            })?;
        for_the_target(cfg, &mut parts.headers, &m);
        let (gate, auth) = basic_auth_gate(cfg, &mut parts.headers);
        let deadline = m.deadline.unwrap_or(cfg.request_timeout);
        let mut exchange = new_exchange(shared, m, parts.method.as_str(), path, &parts.headers);
        exchange.auth = auth;
        shared.observer.started(&exchange);
        let (tap, req_rx) = Tap::new(body, cfg.capture_cap);
        let tap = shared.tap_options(tap);
        let (body, unread) = crate::unread::Unread::new(tap.map_err(BoxError::from));
        if trailers {
            // The sender takes trailer fields: an app (hyper's server among them) sends some
            // only when asked, and `TE` is hop-by-hop, so it is asked again here.
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("te"));
        }
        if parts.headers.contains_key(header::TRAILER) {
            // Trailer fields go only with a chunked body; one read ahead whole has an exact
            // size, and hyper would send Content-Length and leave them out (or, for a GET,
            // no body).
            parts.headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        let mut out = Request::new(body.boxed());
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = parts.headers;
        let record = Pending {
            shared: shared.clone(),
            exchange,
            req_rx: Some(req_rx),
            req_complete: false,
            leases: Vec::new(),
            slot: None,
            timed_out_after: None,
        };
        Ok(Live {
            out,
            record,
            gate,
            deadline,
            unread,
        })
    }

    /// Forwards the request to the local target and answers with what it answered. Not an
    /// `async fn`: the block uses `self`'s fields where they are, where an `async fn` would
    /// hold its argument twice (rust-lang/rust#62958).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn forward(mut self) -> impl Future<Output = Response<AgentBody>> + Send {
        async move {
            if let Gate::Challenge {
                missing,
                www_authenticate,
            } = std::mem::replace(&mut self.gate, Gate::Open)
            {
                return Box::pin(challenge(self.record, self.out, missing, &www_authenticate))
                    .await;
            }
            let shared = self.record.shared.clone();
            let deadline = self.deadline;
            let started = tokio::time::Instant::now();
            let record = &mut self.record;
            let out = self.out;
            let sent = tokio::time::timeout(deadline, async {
                let (parts, body) = out.into_parts();
                let (body, arrival) = read_ahead(body, &shared.ahead).await;
                if arrival == Arrival::Broken {
                    return None;
                }
                // The turn is held until the response body has ended, when the exchange is
                // reported.
                record.slot = shared.target_slots.turn(arrival).await;
                Some(shared.target.send(Request::from_parts(parts, body)).await)
            });
            match sent.await {
                Ok(None) => {
                    let fault = self.record.sender_body_error().await;
                    self.record.never_forwarded(
                        fault.unwrap_or_else(|| {
                            BodyFault::Broken("the relay reset its stream".into())
                        }),
                    )
                }
                Ok(Some((Ok(resp), _))) => respond(&shared, self.record, resp),
                Ok(Some((Err(e), checkout))) => {
                    let left = deadline.saturating_sub(started.elapsed());
                    let (record, mut unread) = (self.record, self.unread);
                    Box::pin(async move {
                        if let Ok(rest) = unread.try_recv() {
                            read_into_capture(rest, left).await;
                        }
                        failed(&shared, record, e, checkout, left, deadline).await
                    })
                    .await
                }
                Err(_) => too_late(&shared.cfg, self.record, deadline),
            }
        }
    }
}

/// Answers the Basic-auth challenge ourselves; the local app never sees this leg. The body
/// is read (and hashed) first so the two legs of the handshake can be paired by body hash.
/// One the relay cut off got the relay's 413 or 400, not this 401.
async fn challenge(
    mut record: Pending,
    out: Request<AgentBody>,
    missing: bool,
    www_authenticate: &str,
) -> Response<AgentBody> {
    let _ = out.into_body().collect().await;
    if let Some(fault) = record.sender_body_error().await {
        return record.never_forwarded(fault);
    }
    let msg = if missing {
        "twk: authentication required\n"
    } else {
        "twk: wrong credentials\n"
    };
    record.answer(StatusCode::UNAUTHORIZED, None, msg, Some(www_authenticate))
}

/// Reads the rest of a request body the target's connection dropped unread (the app was
/// not running), so the capture holds the whole body to replay once it is: read within
/// `left`, the tap copies and hashes it as it would have streamed to the app.
async fn read_into_capture(mut rest: crate::unread::Rest, left: Duration) {
    let read = async {
        while let Some(frame) = rest.frame().await {
            if frame.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(left, read).await;
}

/// Answers a request the target failed: a 400 when the sender's body broke, the target's
/// answer when the request could be sent again (within `left` of `deadline`), a 502 else.
async fn failed(
    shared: &Arc<Shared>,
    mut record: Pending,
    e: SendError,
    checkout: Option<Checkout>,
    left: Duration,
    deadline: Duration,
) -> Response<AgentBody> {
    let cfg = &shared.cfg;
    // The relay cuts the request body off when the sender's was malformed or cut short:
    // that is the sender's failure, not the target's.
    if let Some(fault) = record.sender_body_error().await {
        return record.blame_sender(fault);
    }
    let request_id = record.exchange.request_id.clone();
    let e = match resend_request(cfg, checkout.as_ref(), &record) {
        Some(again) => {
            tracing::info!(%request_id, error = %root_cause(&e), "the local app closed a reused connection as the request arrived; sending it again");
            match tokio::time::timeout(left, shared.target.send(again)).await {
                Ok((Ok(resp), _)) => return respond(shared, record, resp),
                Ok((Err(e), _)) => e,
                Err(_) => return too_late(cfg, record, deadline),
            }
        }
        None => e,
    };
    let cause = root_cause(&e);
    let target = &cfg.target;
    let msg = if e.is_connect() {
        format!("twk: local target {target} is unreachable: {cause} (target side)\n")
    } else {
        format!("twk: local target {target} failed: {cause} (target side)\n")
    };
    debug!(%request_id, error = %cause, "target failed");
    record.answer(StatusCode::BAD_GATEWAY, Some(Side::Target), &msg, None)
}

/// How long an answer's small pieces wait for more before they go to the relay.
const ANSWER_GATHER: Duration = Duration::from_millis(50);

/// Streams the target's answer back, recording it as it goes.
fn respond(
    shared: &Arc<Shared>,
    mut record: Pending,
    resp: Response<PooledBody>,
) -> Response<AgentBody> {
    let cfg = &shared.cfg;
    record.exchange.timings.first_byte_ms = Some(now_ms());
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // HTTP/2 has no 101 (RFC 9113 §8.6): it reset the stream, and the relay told the
        // sender the tunnel had gone. The app asked to switch protocols, which twk does not.
        let msg = format!(
            "twk: local target {} answered 101 Switching Protocols: upgrades (websockets) are \
             not tunnelled (target side)\n",
            cfg.target
        );
        return record.answer(StatusCode::BAD_GATEWAY, Some(Side::Target), &msg, None);
    }
    let (mut parts, body) = resp.into_parts();
    twk_protocol::strip_hop_by_hop(&mut parts.headers);
    twk_protocol::mark_secret_headers(&mut parts.headers);
    record.exchange.status = Some(parts.status.as_u16());
    let headers = headers_to_vec(&parts.headers);
    let (tap, resp_rx) = Tap::new(body, cfg.capture_cap);
    let tap = shared.tap_options(tap);
    shared
        .reports
        .spawn(record.finish(Some((headers, resp_rx))));
    // The app's small pieces gathered (a stream of events goes within 50 ms): one HTTP/2
    // DATA frame each, held unread by a sender who does not read, ended the relay's side of
    // the session.
    let tap = tap
        .map_err(BoxError::from)
        .map_frame(|f| match f.into_trailers() {
            Ok(mut trailers) => {
                twk_protocol::strip_trailer_fields(&mut trailers);
                http_body::Frame::trailers(trailers)
            }
            Err(f) => f,
        });
    let body = Gathered::new(tap, Some(ANSWER_GATHER));
    Response::from_parts(parts, body.boxed())
}

/// The 504 of a target that did not answer within `deadline`.
fn too_late(cfg: &AgentConfig, mut record: Pending, deadline: Duration) -> Response<AgentBody> {
    record.timed_out_after = Some(deadline);
    let msg = format!(
        "twk: local target {} did not respond within {} ms (target side)\n",
        cfg.target,
        deadline.as_millis()
    );
    record.answer(StatusCode::GATEWAY_TIMEOUT, Some(Side::Target), &msg, None)
}

/// The request again, as it was sent, when it failed on a connection the app's server
/// closed as it arrived ([`Checkout::unanswered`]: an idle connection timing out,
/// not an app that took the request and died) and its whole body is at hand (captured, so
/// not with `--no-capture` unless it had none). `None` otherwise.
fn resend_request(
    cfg: &AgentConfig,
    checkout: Option<&Checkout>,
    record: &Pending,
) -> Option<Request<AgentBody>> {
    let reused = checkout.is_some_and(Checkout::unanswered);
    let ex = &record.exchange;
    if !reused || !record.req_complete || ex.request.body.truncated {
        return None;
    }
    let mut headers = HeaderMap::with_capacity(ex.request.headers.len());
    for h in &ex.request.headers {
        let name = header::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_bytes(&h.value).ok()?);
    }
    let mut req = Request::new(twk_transport::body::full(ex.request.body.bytes.clone()));
    *req.method_mut() = http::Method::from_bytes(ex.method.as_bytes()).ok()?;
    *req.uri_mut() = cfg.target.local_uri(&ex.path).ok()?;
    *req.headers_mut() = headers;
    Some(req)
}

/// An analysis waiting for the analysis thread.
type Job = Box<dyn FnOnce() + Send>;

/// Starts the thread large analyses run on. One thread, not the blocking pool with a turn
/// each: the allocator keeps the memory a thread freed for that thread, so analyses taking
/// turns on different pool threads each left ~22 MB resident behind them (the client's peak
/// then varied from 70 to 130 MiB in `client/tests/memory_bound.rs`).
fn start_analyst() -> Option<std::sync::mpsc::Sender<Job>> {
    let (analyst, jobs) = std::sync::mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("twk-analysis".into())
        .spawn(move || {
            for job in jobs {
                // A panicking analysis loses its exchange (its result channel is dropped),
                // not the thread.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        });
    match started {
        Ok(_) => Some(analyst),
        Err(e) => {
            tracing::warn!(error = %e, "no analysis thread: large bodies are analysed inline");
            None
        }
    }
}

/// Request bodies up to this size are analysed on the runtime thread that finished them (a
/// hand-off to another thread costs more than checking a webhook of a few KiB).
const INLINE_ANALYSIS_BYTES: usize = 64 * 1024;

fn text_body(s: &str) -> CapturedBody {
    CapturedBody::from_bytes(s.as_bytes())
}

/// An exchange waiting for its bodies to finish.
struct Pending {
    shared: Arc<Shared>,
    exchange: Exchange,
    /// The request body's tap result; taken early when a failure needs it.
    req_rx: Option<oneshot::Receiver<TapResult>>,
    /// The request body reached its end (known once `req_rx` is taken).
    req_complete: bool,
    /// The captured copies' share of the capture budget, held until the exchange is handed on.
    leases: Vec<Lease>,
    /// This request's turn at the local target.
    slot: Option<Turn>,
    /// twk answered 504 after this deadline (the target was too slow).
    timed_out_after: Option<Duration>,
}

impl Pending {
    /// When the request body failed on the way in (an error from the relay's side, not the
    /// target hanging up), that error. Records the request body either way.
    async fn sender_body_error(&mut self) -> Option<BodyFault> {
        // The client has dropped or finished the body when `request` returned: no wait but,
        // for a body whose copy was cut short, the hashing thread's for its digest (at most
        // its bounded backlog).
        let r = self.req_rx.take()?.await.ok()?;
        let (complete, error) = self.keep_request_body(r);
        self.req_complete = complete;
        error.filter(|_| !complete)
    }

    /// Keeps the request body's tap result (its copy, and its lease until the exchange is
    /// handed on) and returns whether the body reached its end, and what ended it. A body
    /// that did not reach its end is kept as cut short, however it was cut: neither a replay
    /// nor the signature check may take it for the whole.
    fn keep_request_body(&mut self, mut r: TapResult) -> (bool, Option<BodyFault>) {
        self.leases.push(std::mem::take(&mut r.lease));
        self.exchange.request.body = r.body;
        self.exchange.request.body.truncated |= !r.complete;
        (r.complete, r.error)
    }

    /// Answers for a sender whose body failed on its way (the relay cut it off, or it was
    /// malformed or cut short): the sender's fault, as the relay told the sender.
    /// What came of the body is kept as cut short, so that neither a replay nor a signature
    /// check takes it for the whole body.
    fn blame_sender(mut self, fault: BodyFault) -> Response<AgentBody> {
        self.exchange.request.body.truncated = true;
        let status = match fault {
            BodyFault::OverRelayCap => StatusCode::PAYLOAD_TOO_LARGE,
            BodyFault::Broken(_) => StatusCode::BAD_REQUEST,
        };
        let msg =
            format!("twk: the sender's request body did not come whole: {fault} (sender side)\n");
        self.answer(status, Some(Side::Sender), &msg, None)
    }

    /// [`Self::blame_sender`] for a request whose body failed before the app saw it: not
    /// forwarded, and a body over the relay's cap was the relay's refusal.
    fn never_forwarded(mut self, fault: BodyFault) -> Response<AgentBody> {
        self.exchange.refused = fault == BodyFault::OverRelayCap;
        self.exchange.timings.forwarded_ms = None;
        self.blame_sender(fault)
    }

    /// twk answers the sender itself (`status`, `msg`, and a `WWW-Authenticate` challenge if
    /// given), records that answer, blames `side` when it is a failure, and finishes.
    fn answer(
        mut self,
        status: StatusCode,
        side: Option<Side>,
        msg: &str,
        www_authenticate: Option<&str>,
    ) -> Response<AgentBody> {
        let mut resp = twk_text(status, msg.to_string());
        if let Some(v) = www_authenticate.and_then(|c| HeaderValue::from_str(c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        self.exchange.status = Some(status.as_u16());
        if side.is_none() {
            // An answer on the app's behalf (the 401 challenge) has a first byte; a failure
            // means nothing answered.
            self.exchange.timings.first_byte_ms = Some(now_ms());
        }
        self.exchange.failure = side.map(|side| Failure {
            side,
            message: msg.trim_end().to_string(),
        });
        self.exchange.response = Some(Message {
            headers: headers_to_vec(resp.headers()),
            body: text_body(msg),
        });
        let reports = self.shared.reports.clone();
        reports.spawn(self.finish(None));
        resp
    }

    /// Waits for the copies of both bodies, then reports the exchange. Spawned for each
    /// request, so not an `async fn` (see [`Live::forward`]).
    #[allow(clippy::manual_async_fn)]
    fn finish(
        mut self,
        response: Option<(Vec<Header>, oneshot::Receiver<TapResult>)>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            if let Some((headers, rx)) = response {
                let mut r = rx.await.ok();
                if let Some(r) = &mut r {
                    self.leases.push(std::mem::take(&mut r.lease));
                }
                self.exchange.timings.done_ms = Some(now_ms());
                if let Some(r) = &r
                    && !r.complete
                    && self.exchange.failure.is_none()
                {
                    // An error inside the body came from the target's connection; a body dropped
                    // unfinished means the relay stopped reading (the sender or tunnel went away).
                    self.exchange.failure = Some(match &r.error {
                        Some(e) => Failure {
                            side: Side::Target,
                            message: format!("the local target broke off its response: {e}"),
                        },
                        None => Failure {
                            side: Side::Tunnel,
                            message:
                                "response body not delivered: the sender or the tunnel went away"
                                    .into(),
                        },
                    });
                }
                self.exchange.response = Some(Message {
                    headers,
                    body: r.map(|r| r.body).unwrap_or_default(),
                });
            } else {
                self.exchange.timings.done_ms = Some(now_ms());
            }
            let req = match self.req_rx.take() {
                Some(rx) => rx.await.ok(),
                None => None,
            };
            if let Some(r) = req {
                let (complete, _) = self.keep_request_body(r);
                if !complete && self.exchange.failure.is_none() && self.exchange.status.is_some() {
                    // The target answered without reading the whole body; that is its right.
                    debug!("target answered before reading the whole request body");
                }
            }
            // The target is done with this request: its turn there is not held while a large
            // analysis waits for its own.
            drop(self.slot.take());
            // Both copies count: the report hashes them (a 1 MiB response is no work for the
            // forwarding thread either).
            let ex = &self.exchange;
            let len = ex.request.body.bytes.len()
                + ex.response.as_ref().map_or(0, |r| r.body.bytes.len());
            if self.shared.analyses_inline(len) {
                // The tap wakes this task when it passes the response's last bytes on, and
                // only then does HTTP/2 queue them for the tunnel's connection task: reporting
                // now would analyse and record ahead of that task's write, on the response's
                // time. Yielding puts the report behind it.
                tokio::task::yield_now().await;
                self.report();
            } else {
                let shared = self.shared.clone();
                Box::pin(shared.analyse(len, move || self.report())).await;
            }
        }
    }

    /// Analyses the finished exchange and hands it to the observer.
    fn report(mut self) {
        let cfg = &self.shared.cfg;
        if cfg.hash_bodies {
            // The tap hashed only copies that fell short of their body; a complete copy is
            // hashed here, where a large one is off the forwarding thread.
            self.exchange.request.body.ensure_sha256();
            if let Some(r) = &mut self.exchange.response {
                r.body.ensure_sha256();
            }
        }
        let now = self.exchange.timings.received_ms / 1000;
        let opts = twk_providers::VerifyOptions::at(now);
        let mut analysis = analyze_live(&self.exchange, cfg, opts);
        credit_stripped_credentials(&mut analysis, &self.exchange, cfg);
        record_analysis(&mut self.exchange, analysis);
        if let Some(deadline) = self.timed_out_after {
            waited_less_than_the_provider(&mut self.exchange, deadline);
        }
        self.shared.observer.exchange(self.exchange);
    }
}

/// A 504 twk gave before the provider would have stopped waiting (GitHub waits 10 s, twk 9
/// by default): the failure says so, and which deadline to raise.
fn waited_less_than_the_provider(ex: &mut Exchange, deadline: Duration) {
    let Some(p) = ex.known_provider() else {
        return;
    };
    // A rare path (a 504): the request says which wait applies (Bandwidth voice or messaging).
    let limit = twk_providers::answer::answer_limit(p, &ex.request_view(&ex.request.body.bytes));
    let (Some(limit), Some(f)) = (limit, ex.failure.as_mut()) else {
        return;
    };
    if limit.within > deadline {
        f.message.push_str(&format!(
            "; {} waits {} s, so the app had time left: raise --request-timeout \
             (twk-tunnel's with its embedded relay, twk-relay's on a remote one)",
            p.display_name(),
            limit.within.as_secs()
        ));
    }
}

/// The tunnel's analysis of an exchange: with `cfg.secrets`, then, when that found no secret
/// for the provider, with twk's test secret for it as it is now. Test secrets are looked up
/// only then: other requests (most of them) cost no look-up.
pub(crate) fn analyze_live(
    ex: &Exchange,
    cfg: &crate::AgentConfig,
    opts: twk_providers::VerifyOptions,
) -> twk_providers::Analysis {
    let analysis = analyze_exchange(ex, &cfg.secrets, opts.clone());
    let (twk_providers::Verdict::NoSecret, Some(p), Some(lookup)) =
        (analysis.verdict, analysis.provider, &cfg.test_secrets)
    else {
        return analysis;
    };
    match lookup(p) {
        Some(test) => {
            let secrets = (*cfg.secrets).clone().with_test_secret(p, test);
            analyze_exchange(ex, &secrets, opts.with_provider(Some(p)))
        }
        None => analysis,
    }
}

/// [`annotate`] as the tunnel analyses ([`analyze_live`]).
pub(crate) fn annotate_live(ex: &mut Exchange, cfg: &crate::AgentConfig, now_unix: i64) {
    let analysis = analyze_live(ex, cfg, twk_providers::VerifyOptions::at(now_unix));
    record_analysis(ex, analysis);
}

/// Names the provider and event of an exchange and checks its signature against `secrets`,
/// using the public URL the sender signed, at time `now_unix` (seconds), as `provider` when
/// given (else detected), and records the outcome on the exchange. See [`analyze_exchange`].
pub fn annotate(
    ex: &mut Exchange,
    secrets: &twk_providers::Secrets,
    now_unix: i64,
    provider: Option<twk_providers::Provider>,
) {
    let opts = twk_providers::VerifyOptions::at(now_unix).with_provider(provider);
    let analysis = analyze_exchange(ex, secrets, opts);
    record_analysis(ex, analysis);
}

/// Puts an analysis on its exchange: provider, event, summary, verdict (none when the body
/// was cut and the check did not pass: it could not have), and the whole analysis as JSON.
fn record_analysis(ex: &mut Exchange, analysis: twk_providers::Analysis) {
    ex.provider = analysis.provider.map(|p| p.as_str().to_string());
    ex.event = analysis.event.as_ref().map(|e| e.name.clone());
    ex.summary = analysis.event.as_ref().map(|e| e.summary.clone());
    let unreliable = ex.request.body.truncated && !analysis.verdict.is_valid();
    ex.verdict = analysis
        .provider
        .filter(|_| !unreliable)
        .map(|_| analysis.verdict);
    ex.matched_secret = ex.verdict.and(analysis.matched_secret);
    // Not kept when it says only that no provider was recognised: the provider, `None`,
    // says so, and the note was ~300 bytes of every such row (and 3.6k instructions to
    // write out per request).
    ex.analysis = if analysis.is_unrecognised() {
        None
    } else {
        twk_capture::AnalysisJson::of(&analysis)
    };
}

/// With `--strip-auth` the captured retry no longer carries the credentials twk checked, so
/// the Bandwidth check finds none (`unsigned`) although twk's own check passed (the Auth tab
/// says so). When the Bandwidth secret is those same credentials, the callback did carry
/// them: `valid`, saying how it is known.
fn credit_stripped_credentials(
    a: &mut twk_providers::Analysis,
    ex: &Exchange,
    cfg: &crate::AgentConfig,
) {
    use twk_providers::{Provider, Verdict};
    let stripped = cfg.basic_auth.as_ref().filter(|b| b.strip);
    let passed = ex.auth.as_ref().and_then(|a| a.matched) == Some(true);
    let same = stripped
        .zip(cfg.secrets.get(Provider::Bandwidth))
        .is_some_and(|(b, secret)| b.is(secret));
    if a.provider == Some(Provider::Bandwidth) && a.verdict == Verdict::Unsigned && passed && same {
        a.verdict = Verdict::Valid;
        a.matched_secret = Some(twk_providers::SecretSource::Configured);
        a.matched_variant = Some(
            "twk's --basic-auth check (Authorization removed by --strip-auth before capture)"
                .to_owned(),
        );
        a.diagnosis = None;
    }
}

/// Checks the signature of a recorded exchange: the request as the sender sent it (the
/// public URL, the headers and body as captured). The local URL the app sees is added to
/// `opts.alternate_urls` so a failure can be explained ("your app used the localhost URL").
/// A body longer than the capture cap gets a note: the check ran on a prefix.
pub fn analyze_exchange(
    ex: &Exchange,
    secrets: &twk_providers::Secrets,
    mut opts: twk_providers::VerifyOptions,
) -> twk_providers::Analysis {
    let req = ex.request_view(&ex.request.body.bytes);
    opts.alternate_urls.push([&*ex.target, &ex.path].concat());
    let mut analysis = twk_providers::analyze(&req, secrets, &opts);
    if ex.refused {
        analysis.notes.push(
            "the relay refused this request before reading its body: a signature over the body \
             cannot be checked"
                .to_owned(),
        );
    } else if let Some(short) = ex
        .request
        .body
        .shortfall()
        .filter(|_| ex.request.body.truncated)
    {
        analysis.notes.push(match short {
            // The stored body is a prefix: a body signature cannot be checked from it.
            Shortfall::Capped { len, .. } => format!(
                "the body ({len} bytes) is larger than the capture cap; the signature was \
                 checked against a truncated copy and is not reliable"
            ),
            Shortfall::NotReadToEnd { len } => format!(
                "the body was not read to its end ({len} bytes seen: cut short on its way, or \
                 the app answered before reading it all); the signature was checked against \
                 what came and is not reliable"
            ),
        });
    }
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_504_before_the_provider_stops_waiting_says_which_deadline_to_raise() {
        let timed_out = |provider: &str| {
            let mut ex = Exchange {
                provider: Some(provider.into()),
                failure: Some(Failure {
                    side: Side::Target,
                    message: "twk: local target did not respond within 9000 ms".into(),
                }),
                ..Exchange::default()
            };
            waited_less_than_the_provider(&mut ex, Duration::from_secs(9));
            ex.failure.map(|f| f.message).unwrap_or_default()
        };
        let github = timed_out("github");
        assert!(
            github.contains("GitHub waits 10 s") && github.contains("raise --request-timeout"),
            "{github}"
        );
        assert!(
            !timed_out("slack").contains("waits"),
            "Slack gave up before twk"
        );
        assert!(
            !timed_out("stripe").contains("waits"),
            "no figure for Stripe"
        );
    }

    #[test]
    fn forwarding_headers_append_to_what_earlier_proxies_set() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.append("forwarded", HeaderValue::from_static("for=10.0.0.1"));
        let m = Meta {
            remote_addr: Some("[2001:db8::1]:443".into()),
            proto: Some(HeaderValue::from_static("https")),
            host: Some(HeaderValue::from_static("a.relay.example")),
            prefix: Some(HeaderValue::from_static("/t/a")),
            ..Meta::default()
        };
        add_forwarding_headers(&mut h, &m);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 2001:db8::1");
        assert_eq!(
            h["forwarded"],
            "for=10.0.0.1, for=\"[2001:db8::1]\";host=\"a.relay.example\";proto=https"
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "a.relay.example");
        assert_eq!(h["x-forwarded-prefix"], "/t/a");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn metadata_reads_the_same_bundled_or_one_header_each() {
        use twk_protocol::bundle::Bundle;
        let b = Bundle {
            request_id: "r-7",
            received_ms: 1_765_000_000_123,
            deadline_ms: 4_000,
            remote_addr: "203.0.113.7:5100",
            proto: "https",
            host: "a.relay.example",
            prefix: Some("/t/a"),
        };
        let url = HeaderValue::from_static("https://a.relay.example/t/a/x");
        let mut bundled = HeaderMap::new();
        bundled.insert(meta::PUBLIC_URL, url.clone());
        bundled.insert(meta::BUNDLE, HeaderValue::from_bytes(&b.encode()).unwrap());
        bundled.insert("x-app", HeaderValue::from_static("1"));
        let mut each = HeaderMap::new();
        for (name, value) in [
            (meta::PUBLIC_URL, "https://a.relay.example/t/a/x"),
            (meta::REQUEST_ID, "r-7"),
            (meta::RECEIVED_AT, "1765000000123"),
            (meta::DEADLINE_MS, "4000"),
            (meta::REMOTE_ADDR, "203.0.113.7:5100"),
            (meta::PROTO, "https"),
            (meta::HOST, "a.relay.example"),
            (meta::FORWARDED_PREFIX, "/t/a"),
        ] {
            each.insert(name, HeaderValue::from_static(value));
        }
        each.insert("x-app", HeaderValue::from_static("1"));
        let (one, other) = (Meta::take(&mut bundled), Meta::take(&mut each));
        assert_eq!(format!("{one:?}"), format!("{other:?}"));
        assert_eq!(one.request_id, "r-7");
        assert_eq!(one.public_url, "https://a.relay.example/t/a/x");
        assert_eq!(one.deadline, Some(Duration::from_secs(4)));
        // Only the app's own header is left.
        assert_eq!((bundled.len(), each.len()), (1, 1));
        // An unreadable bundle is no metadata, and still goes no further.
        let mut broken = HeaderMap::new();
        broken.insert(meta::PUBLIC_URL, url);
        broken.insert(meta::BUNDLE, HeaderValue::from_static("1:1x"));
        let m = Meta::take(&mut broken);
        assert_eq!((m.request_id.as_str(), m.received_ms), ("", None));
        assert_eq!(m.public_url, "https://a.relay.example/t/a/x");
        assert!(broken.is_empty());
    }

    #[test]
    fn the_senders_ip_is_read_from_every_form_the_relay_sends() {
        let ip = |addr: &str| {
            let m = Meta {
                remote_addr: Some(addr.into()),
                ..Meta::default()
            };
            m.remote_ip().map(str::to_owned)
        };
        assert_eq!(ip("203.0.113.7:51000").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("[2001:db8::1]:443").as_deref(), Some("2001:db8::1"));
        // An address a trusted proxy reported comes without a port.
        assert_eq!(ip("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("::1").as_deref(), Some("::1"));
        // Anything else goes on as it came (it was a header value already).
        assert_eq!(ip("not-an-ip:80").as_deref(), Some("not-an-ip:80"));
        assert_eq!(ip("[::1]:99999").as_deref(), Some("[::1]:99999"));
        let mut h = HeaderMap::new();
        let m = Meta {
            remote_addr: Some("203.0.113.7:51000".into()),
            host: Some(HeaderValue::from_static("a\"b\\c.example")),
            ..Meta::default()
        };
        add_forwarding_headers(&mut h, &m);
        assert_eq!(h["x-forwarded-for"], "203.0.113.7");
        assert_eq!(h["forwarded"], "for=203.0.113.7;host=\"abc.example\"");
    }
}
