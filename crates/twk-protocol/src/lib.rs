//! twk-protocol: what the twk relay and the twk tunnel client agree on.
//!
//! The tunnel is an HTTP/2 connection carried inside one websocket: the relay is the HTTP/2
//! client, the tunnel client is the HTTP/2 server. This crate holds the few things both ends must
//! agree on beyond HTTP/2 itself: the websocket upgrade path and handshake headers, the protocol
//! version, the `x-twk-*` metadata headers that travel with every forwarded request, tunnel-name
//! rules, and every limit and timeout as a named constant.
//!
//! It is sans-IO: no sockets, no async runtime. It is not the multiplexer (HTTP/2 is) and not
//! the transport (see `twk-relay` and `twk-agent`).
#![warn(missing_docs)]

use std::time::Duration;

pub mod bundle;
pub mod kept;
pub mod names;
pub mod refused;

pub use names::{NameError, random_name, validate_name};

/// Version of the tunnel protocol. Bumped on any incompatible change to the handshake, the
/// metadata headers or their meaning. Checked during the websocket upgrade.
pub const PROTOCOL_VERSION: u32 = 1;

/// Path of the websocket upgrade on the relay's ordinary HTTP listener.
pub const CONNECT_PATH: &str = "/_twk/connect";
/// Health endpoint of the relay.
pub const HEALTH_PATH: &str = "/_twk/health";
/// Metrics of the relay (Prometheus text format), only on its `--metrics-listen` address.
pub const METRICS_PATH: &str = "/_twk/metrics";
/// Prefix of the relay's own endpoints; never forwarded to a tunnel.
pub const RESERVED_PREFIX: &str = "/_twk/";
/// Path-routing prefix: `/t/<name>/…` reaches tunnel `<name>`, with `/t/<name>` removed.
pub const PATH_ROUTE_PREFIX: &str = "/t/";

/// Request and response headers of the tunnel upgrade (`GET /_twk/connect`). Named `upgrade`,
/// not handshake: in twk a "handshake" is the Basic-auth challenge and retry.
pub mod upgrade {
    /// Request: protocol version the client speaks. Response: version the relay speaks.
    pub const PROTOCOL: &str = "x-twk-protocol";
    /// Request: tunnel name the client asks for (optional). Response: the name granted.
    pub const NAME: &str = "x-twk-name";
    /// Response: public URL of the tunnel (path-routing or subdomain form).
    pub const PUBLIC_URL: &str = "x-twk-public-url";
    /// Response on a refused upgrade: a machine-readable reason (see [`super::RefusalCode`]).
    pub const ERROR: &str = "x-twk-error";
    /// Request: a random id of the client process, the same across its reconnects. The relay
    /// tells a reconnect of the same process (which replaces its own stale session) from a
    /// second process using the same token (a takeover).
    pub const CLIENT_ID: &str = "x-twk-client-id";
    /// Request: the client's public key ([`crate::kept::OwnerPublic`], base64): requests that
    /// arrive while it is offline are kept sealed to it.
    pub const OWNER_KEY: &str = "x-twk-owner-key";
    /// Request: what the client takes besides forwarded requests, comma-separated
    /// ([`ACCEPTS_REFUSED`]). A relay sends nothing of a kind the client did not name: an
    /// older client would forward it to its app as if a sender had.
    pub const ACCEPTS: &str = "x-twk-accepts";
    /// In [`ACCEPTS`]: notices of requests the relay refused itself ([`crate::refused`]).
    pub const ACCEPTS_REFUSED: &str = "refused";
    /// In [`ACCEPTS`]: a forwarded request's metadata in one header ([`crate::bundle`]), not
    /// one header each (what a relay sends a client that does not name this).
    pub const ACCEPTS_BUNDLED_META: &str = "bundled-meta";

    /// True when an [`ACCEPTS`] value names `what`.
    pub fn accepts(value: Option<&str>, what: &str) -> bool {
        value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(what)))
    }
}

/// HTTP/2 error codes the relay resets a request's stream with, beside the standard ones.
/// A peer that does not know a code takes it as `INTERNAL_ERROR` (RFC 9113 §7), so an older
/// client reads it as any broken body.
pub mod reset {
    /// The sender's body passed the relay's cap (`twk-relay --max-body`) while it streamed;
    /// the relay answered the sender 413. (A body broken otherwise: `INTERNAL_ERROR`.)
    pub const BODY_OVER_CAP: u32 = 0x7477_6b01;
}

/// Metadata headers that the relay adds to every request it forwards over the tunnel.
/// The client reads them and strips every `x-twk-*` header before forwarding to the target.
/// Names, not strings: made at compile time, where a `&str` name is parsed again on every
/// use, several times a request on both sides (issue 14).
pub mod meta {
    use http::HeaderName;

    /// The relay's id for this request (unique per relay process).
    pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-twk-request-id");
    /// The exact public URL the sender used: scheme, host (with port as sent), path, raw query.
    pub const PUBLIC_URL: HeaderName = HeaderName::from_static("x-twk-public-url");
    /// The sender's address as the relay saw it (`ip:port`).
    pub const REMOTE_ADDR: HeaderName = HeaderName::from_static("x-twk-remote-addr");
    /// When the relay received the request head, Unix milliseconds.
    pub const RECEIVED_AT: HeaderName = HeaderName::from_static("x-twk-received-at");
    /// Present under path routing: the prefix the relay removed (`/t/<name>`).
    pub const FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-twk-forwarded-prefix");
    /// Scheme of the public URL (`http` or `https`).
    pub const PROTO: HeaderName = HeaderName::from_static("x-twk-proto");
    /// Host the sender addressed (the `Host` header as sent).
    pub const HOST: HeaderName = HeaderName::from_static("x-twk-host");
    /// Deadline for the local target, in milliseconds (the relay's per-request deadline).
    pub const DEADLINE_MS: HeaderName = HeaderName::from_static("x-twk-deadline-ms");
    /// Everything above but the public URL, in one value ([`crate::bundle`]), to a client
    /// that accepts it ([`crate::upgrade::ACCEPTS_BUNDLED_META`]).
    pub const BUNDLE: HeaderName = HeaderName::from_static("x-twk-meta");
    /// On a request the relay hands over on reconnect: it is not a live request but one kept
    /// while the client was offline (the value is its request id); the body is the sealed
    /// [`crate::kept::KeptRequest`]. The client answers 2xx once it is recorded.
    pub const KEPT: HeaderName = HeaderName::from_static("x-twk-kept");
    /// On a request from the relay (no sender behind it): this relay node is going away;
    /// connect to another node of the cluster, then close this session once the new one is
    /// up (requests in flight on it finish). The client answers 204.
    pub const MOVE: HeaderName = HeaderName::from_static("x-twk-move");
    /// On a request from the relay (no sender behind it): the body is a
    /// [`crate::refused::RefusedBatch`], requests for this tunnel the relay answered itself
    /// (over the tunnel's rate, a body declared over the cap) that the app never saw. The
    /// value is how many the batch lists. Sent only to clients that accept them
    /// ([`crate::upgrade::ACCEPTS_REFUSED`]); the client answers 204.
    pub const REFUSED: HeaderName = HeaderName::from_static("x-twk-refused");
    /// Prefix shared by all metadata headers.
    pub const PREFIX: &str = "x-twk-";

    /// Removes every `x-twk-*` header: the relay drops forged ones from senders, the client
    /// drops the relay's once it has read them.
    pub fn strip_all(headers: &mut http::HeaderMap) {
        let ours: Vec<http::HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with(PREFIX))
            .cloned()
            .collect();
        for k in ours {
            headers.remove(k);
        }
    }
}

/// The one clock: the current time as Unix milliseconds (relay metadata, capture timestamps,
/// reservations all agree).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Response header set by whichever twk component produced an error response (`relay` or
/// `client`), so that senders, tests and the inspector can tell twk's answers from the app's.
pub const ERROR_SOURCE_HEADER: &str = "x-twk-error-source";

/// Why the relay refused a websocket upgrade. Sent in [`upgrade::ERROR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// Missing or wrong token (HTTP 401).
    Unauthorized,
    /// Name held by another token (HTTP 409).
    NameTaken,
    /// Name fails validation or is reserved (HTTP 400).
    InvalidName,
    /// Protocol version mismatch (HTTP 400).
    ProtocolVersion,
    /// The relay is at its tunnel limit (HTTP 503).
    Capacity,
    /// Another client process using the same token took this tunnel over (HTTP 409).
    TakenOver,
    /// The name is reserved for another token for a while after it was last used (HTTP 409).
    NameReserved,
    /// This token already has as many tunnels open as the relay allows (HTTP 429).
    TooManyTunnels,
    /// Too many upgrade attempts or failed tokens from this address (HTTP 429).
    RateLimited,
}

impl RefusalCode {
    /// Wire form of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Unauthorized => "unauthorized",
            RefusalCode::NameTaken => "name-taken",
            RefusalCode::InvalidName => "invalid-name",
            RefusalCode::ProtocolVersion => "protocol-version",
            RefusalCode::Capacity => "capacity",
            RefusalCode::TakenOver => "taken-over",
            RefusalCode::NameReserved => "name-reserved",
            RefusalCode::TooManyTunnels => "too-many-tunnels",
            RefusalCode::RateLimited => "rate-limited",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unauthorized" => RefusalCode::Unauthorized,
            "name-taken" => RefusalCode::NameTaken,
            "invalid-name" => RefusalCode::InvalidName,
            "protocol-version" => RefusalCode::ProtocolVersion,
            "capacity" => RefusalCode::Capacity,
            "taken-over" => RefusalCode::TakenOver,
            "name-reserved" => RefusalCode::NameReserved,
            "too-many-tunnels" => RefusalCode::TooManyTunnels,
            "rate-limited" => RefusalCode::RateLimited,
            _ => return None,
        })
    }
}

/// Checks the version a peer announced. Returns a human error naming both versions.
pub fn check_version(announced: Option<&str>) -> Result<(), String> {
    match announced.map(str::trim) {
        None => Err(format!(
            "the peer did not announce a twk protocol version (this side speaks {PROTOCOL_VERSION}); \
             is it a twk relay, and is it up to date?"
        )),
        Some(v) if v == PROTOCOL_VERSION.to_string() => Ok(()),
        Some(v) => Err(format!(
            "twk protocol version mismatch: this side speaks {PROTOCOL_VERSION}, the peer speaks {v}; \
             upgrade the older of twk-relay and twk-tunnel"
        )),
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and framing headers that are never forwarded: the
/// receiving HTTP stack re-frames the message itself. Headers named in `Connection` are removed
/// too (see [`strip_hop_by_hop`]). `Trailer` is not among them: it is end to end (RFC 9110
/// §6.6.2), and hyper sends only the trailer fields it names.
pub const HOP_BY_HOP: [http::HeaderName; HOP_BY_HOP_LEN] = [
    http::header::CONNECTION,
    http::HeaderName::from_static("keep-alive"),
    http::HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

const HOP_BY_HOP_LEN: usize = 8;

/// [`HOP_BY_HOP`] in one place: a `const` array used by reference is built anew each time.
static HOP_BY_HOP_NAMES: [http::HeaderName; HOP_BY_HOP_LEN] = HOP_BY_HOP;

/// `X-Forwarded-For`, which the relay passes on from trusted proxies and the client appends
/// the sender's address to: one name for both ends, made once.
pub const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// Removes hop-by-hop headers, and every header listed in `Connection`, from `headers`.
pub fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    // One walk over the head's distinct names finds what goes. A lookup for each of the eight
    // names hashed every one of them, found or not: 18 lookups and ~3k instructions per
    // request at the client (docs/performance.md, twenty-third round). Most heads hold at
    // most `Connection`.
    let mut found = [false; HOP_BY_HOP_LEN];
    for name in headers.keys().filter(|n| is_hop_by_hop(n)) {
        if let Some(i) = HOP_BY_HOP_NAMES.iter().position(|h| h == name) {
            found[i] = true;
        }
    }
    if !found.contains(&true) {
        return;
    }
    // What `Connection` lists beyond the hop-by-hop names (its usual `keep-alive`, removed
    // below when present): most heads list nothing else, and then nothing is copied or
    // looked up (twenty-eighth round).
    let listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Never let a sender strip the forwarding headers twk adds (Traefik CVE-2024-45410).
        .filter(|n| !n.is_empty() && !is_hop_by_hop_text(n) && !is_forwarding_name(n))
        .map(str::to_owned)
        .collect();
    for name in listed {
        headers.remove(name.as_str());
    }
    for (name, _) in HOP_BY_HOP_NAMES.iter().zip(found).filter(|(_, f)| *f) {
        headers.remove(name);
    }
}

/// A forwarding header, or twk's metadata, in any case: `Connection` may not name them,
/// and no trailer field may carry them.
fn is_forwarding_name(name: &str) -> bool {
    let starts = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    starts("x-forwarded-") || name.eq_ignore_ascii_case("forwarded") || starts(meta::PREFIX)
}

/// One of [`HOP_BY_HOP`]. Compared in place: a standard name is its tag, and the two others
/// are told apart by length before their bytes.
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    use http::header;
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// Whether `name`, in any case, is one of [`HOP_BY_HOP`].
fn is_hop_by_hop_text(name: &str) -> bool {
    HOP_BY_HOP_NAMES
        .iter()
        .any(|h| h.as_str().eq_ignore_ascii_case(name))
}

/// Whether a request's `TE` names `trailers`: the sender takes trailer fields in the answer.
/// `TE` is hop-by-hop, so each leg says it again (HTTP/2 allows exactly `te: trailers`).
pub fn accepts_trailers(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.split(';').next().unwrap_or_default();
            t.trim().eq_ignore_ascii_case("trailers")
        })
}

/// Removes from trailer fields what may not travel there: hop-by-hop and framing names (h2
/// refuses some and resets the stream), twk's metadata and the forwarding headers, which a
/// sender must not forge (the relay strips them from headers too). `Trailer` passes, so
/// trailer fields do; these never reach the app or the sender.
pub fn strip_trailer_fields(trailers: &mut http::HeaderMap) {
    let banned: Vec<http::HeaderName> = trailers
        .keys()
        .filter(|k| {
            let n = k.as_str();
            is_hop_by_hop(k) || is_forwarding_name(n) || n.starts_with("proxy-")
        })
        .cloned()
        .collect();
    for k in banned {
        trailers.remove(k);
    }
}

/// Header names (lowercase) whose values are always secret.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-twk-token",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// Parts of a header name that mark it secret (see [`is_secret_header`]).
const SECRET_FRAGMENTS: &[&str] = &[
    "signature",
    "hmac",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api-key",
    "access-key",
    "private-key",
];

/// Whether a header with this name (lowercase, as `http::HeaderName` keeps it) carries a
/// secret: the fixed list (`authorization`, cookies…), any name containing `signature`,
/// `hmac`, `secret`, `password`, `passwd`, `apikey`, `api-key`, `access-key` or
/// `private-key`, and any ending in `token` but an idempotency token (which names a
/// delivery). A bare `-key` is not enough: `Idempotency-Key` is worth seeing. The capture's
/// redaction adds every provider's signature headers to this.
pub fn is_secret_header(lowercase_name: &str) -> bool {
    // One automaton for the fragments: nine `str::contains` searches cost each header the
    // relay forwards ~2,000 instructions (docs/performance.md, twenty-first round).
    static FRAGMENTS: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::LazyLock::new(|| aho_corasick::AhoCorasick::new(SECRET_FRAGMENTS).ok());
    let n = lowercase_name;
    let has_fragment = match FRAGMENTS.as_ref() {
        Some(ac) => ac.is_match(n),
        None => SECRET_FRAGMENTS.iter().any(|frag| n.contains(frag)),
    };
    SECRET_HEADERS.contains(&n)
        || has_fragment
        || (n.ends_with("token") && !n.contains("idempotency"))
}

/// Marks secret header values ([`is_secret_header`]) so HPACK sends them as literals never
/// indexed (RFC 7541 §7.1.3). One tunnel's HTTP/2 connection carries every sender's
/// requests: an indexed credential would let a sender who sees the tunnel's encrypted record
/// sizes test guesses of another sender's (the compression attacks of RFC 7541 §7.1.1), and
/// values that change on every request (signatures) would only churn the table.
pub fn mark_secret_headers(headers: &mut http::HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if is_secret_header(name.as_str()) {
            value.set_sensitive(true);
        }
    }
}

/// Limits and timeouts. Every one is set explicitly on the library that enforces it.
pub mod limits {
    use super::Duration;

    /// Default cap on a request body (GitHub's own payload cap).
    pub const DEFAULT_MAX_BODY: u64 = 25 * 1024 * 1024;
    /// Default deadline for the local target's response head (below GitHub's and Bandwidth's 10 s).
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(9);
    /// How much longer than the deadline the relay waits for the client before it answers 504 itself.
    pub const RELAY_DEADLINE_MARGIN: Duration = Duration::from_secs(2);
    /// Time a sender has to send a complete request head.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Time a public connection may read nothing the relay writes to it before it is closed:
    /// an answer nobody reads holds its share of the tunnel's HTTP/2 window until then.
    pub const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(10);
    /// Maximum number of request headers (beyond: 431).
    pub const MAX_HEADERS: usize = 100;
    /// Maximum size of the HTTP/1 read buffer, bounding a request head (64 KiB).
    pub const MAX_HEAD_BYTES: usize = 64 * 1024;
    /// Largest header list either end of the tunnel accepts (HTTP/2 `MAX_HEADER_LIST_SIZE`):
    /// four times the public port's 64 KiB head, for twk's own metadata and forwarding
    /// headers; a larger response head from a client is its fault and answered 502 at once.
    pub const H2_MAX_HEADER_LIST: u32 = 256 * 1024;
    /// Bytes HTTP/2 buffers per stream before back-pressure reaches the body. A quarter of
    /// the stream window: what is buffered pins the reading side's buffers, and sixteen
    /// concurrent 1 MiB bodies held 23 MiB here at a full window (measured,
    /// docs/performance.md) without moving them any faster.
    pub const H2_MAX_SEND_BUF: usize = 256 * 1024;
    /// Maximum websocket message and frame size. HTTP/2 frames are far smaller.
    pub const WS_MAX_MESSAGE: usize = 1024 * 1024;
    /// Largest chunk gathered into one websocket message.
    pub const WS_WRITE_CHUNK: usize = 256 * 1024;
    /// Largest HTTP/2 frame payload either end accepts (`SETTINGS_MAX_FRAME_SIZE`). Four
    /// times the 16 KiB default: a quarter of the frames for a large body, while a small
    /// response behind a large one still waits for 64 KiB at most, not a whole window.
    pub const H2_MAX_FRAME: u32 = 64 * 1024;
    /// Most bytes one websocket read asks the socket for. tungstenite zeroes this much of its
    /// buffer before every read, so its 128 KiB default cost each small message a 128 KiB
    /// memset; 32 KiB measured 5 % more requests/s at 16 connections and no slower 1 MiB
    /// bodies (docs/performance.md, fifth round).
    pub const WS_READ_BUFFER: usize = 32 * 1024;
    /// Websocket write buffer hint.
    pub const WS_WRITE_BUFFER: usize = 128 * 1024;
    /// Hard cap on the websocket write buffer: a stuck peer errors out instead of growing memory.
    pub const WS_MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;
    /// HTTP/2 PING interval on the tunnel.
    pub const PING_INTERVAL: Duration = Duration::from_secs(10);
    /// A peer silent this long after a PING is dead (10 s + 15 s = 25 s of silence).
    pub const PING_TIMEOUT: Duration = Duration::from_secs(15);
    /// Maximum concurrent in-flight requests on one tunnel (HTTP/2 streams).
    pub const MAX_CONCURRENT_STREAMS: u32 = 1024;
    /// Streams the relay may cancel before the tunnel has taken them up, at once, before the
    /// tunnel closes the connection (HTTP/2's rapid-reset guard; h2's default is 20).
    ///
    /// The relay cancels a stream whenever its public sender goes away, so a burst of
    /// departing senders (or a stranger opening and dropping requests) becomes a burst of
    /// resets: with h2's default, 21 of them took the whole tunnel down for every sender.
    /// Every stream the relay may have open, four times over; each costs the tunnel a few
    /// hundred bytes until it is taken up and dropped.
    pub const H2_MAX_PENDING_RESETS: usize = 4 * MAX_CONCURRENT_STREAMS as usize;
    /// HTTP/2 per-stream flow-control window.
    pub const H2_STREAM_WINDOW: u32 = 1024 * 1024;
    /// HTTP/2 connection flow-control window: what one tunnel may have in flight in each
    /// direction, all streams together, and so what a receiver may have to buffer.
    pub const H2_CONN_WINDOW: u32 = 4 * 1024 * 1024;
    /// The relay's allowance for small DATA frames (under 256 bytes) held unread, in h2's
    /// units (256 minus each frame's size): ~65,000 frames, 8 times h2's default for this
    /// window. The client gathers an answer's small frames (after four, at most one each
    /// 50 ms per stream), but strangers who ask an app for a stream of small events and never
    /// read it hold them unread until the relay gives up on them (10 s): with the default,
    /// 40 of them ended the tunnel's session for everyone. Each frame held costs the relay
    /// ~100 bytes, so this is ~6 MiB at most per tunnel.
    pub const H2_SMALL_FRAME_BUDGET: usize = 16 * 1024 * 1024;
    /// Time the client allows for connecting to the local target (a local app that does not
    /// accept within this is down, and the sender gets 502 well inside its own deadline).
    pub const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Requests the client has at the local target at once; more wait, in order, within
    /// their deadline. Each is a connection with its buffers: 1000 concurrent senders held
    /// 679 connections and 32 MiB of them (measured, docs/performance.md).
    pub const MAX_TARGET_REQUESTS: usize = 128;
    /// Largest read buffer of a connection to the local target (bounds a response head too).
    pub const TARGET_READ_BUF: usize = 64 * 1024;
    /// Idle connections to the local target are kept this long for reuse: less than the
    /// idle timeouts of the servers apps run on (gunicorn 2 s, Node and uvicorn 5 s, Puma
    /// 20 s). A server closes an idle connection on its own clock, and a request sent on it
    /// at that moment fails with no answer (a 502 that was not the app's); a sender on a
    /// 5 s cadence against Node comes close to that moment every time. A new connection to
    /// the local app costs ~0.1 ms; under load none is idle this long.
    pub const TARGET_POOL_IDLE: Duration = Duration::from_secs(1);
    /// Time allowed for the TLS and websocket handshakes.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a request for a tunnel whose client is reconnecting waits for it to come back
    /// (the hold), by default. Kept well below Bandwidth's and GitHub's 10 s deadlines minus
    /// the app's own time. Slack (3 s) and Shopify (5 s) may give up on a held request sooner;
    /// they send it again, as they would after the 503 it would otherwise get at once.
    pub const DEFAULT_HOLD: Duration = Duration::from_secs(5);
    /// The longest hold the relay accepts.
    pub const MAX_HOLD: Duration = Duration::from_secs(8);
    /// A client that was connected this recently is "reconnecting": requests for it are held.
    pub const RECONNECT_WINDOW: Duration = Duration::from_secs(60);
    /// Requests kept per tunnel while its client is offline, by default (oldest dropped).
    pub const DEFAULT_KEEP_COUNT: usize = 100;
    /// Bytes of sealed requests kept per tunnel, by default (oldest dropped).
    pub const DEFAULT_KEEP_BYTES: u64 = 16 * 1024 * 1024;
    /// How long a kept request is kept, by default.
    pub const DEFAULT_KEEP_TTL: Duration = Duration::from_secs(24 * 3600);
    /// Requests held at once per tunnel, by default; more are told 503 at once.
    pub const DEFAULT_HOLD_MAX: usize = 64;
    /// `Retry-After` sent with 503 when no client is connected.
    pub const OFFLINE_RETRY_AFTER_SECS: u32 = 30;
    /// Reconnect backoff: first delay cap.
    pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
    /// Reconnect backoff: largest delay.
    pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
    /// A session that lived this long resets the backoff.
    pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
    /// Graceful shutdown: how long in-flight requests may drain.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    /// How long a released name stays reserved for the token that last held it (ngrok's
    /// reserved names, for self-hosting): a sender's retries within a day reach the same owner.
    pub const NAME_HOLD: Duration = Duration::from_secs(24 * 3600);
    /// Names one token may keep reserved while they are not in use; the oldest goes first.
    pub const MAX_RESERVED_PER_TOKEN: usize = 64;
    /// Tunnels one token may have connected at once.
    pub const MAX_TUNNELS_PER_TOKEN: usize = 16;
    /// Tunnel upgrade attempts per source address: sustained rate per second and burst.
    pub const UPGRADE_RATE: f64 = 2.0;
    /// Burst of [`UPGRADE_RATE`].
    pub const UPGRADE_BURST: f64 = 20.0;
    /// Failed tokens per source address: burst, then one more every [`AUTH_FAILURE_REFILL`].
    /// A token-guessing loop gets 429 after a handful of tries.
    pub const AUTH_FAILURE_BURST: f64 = 5.0;
    /// Time in which one failed-token allowance comes back.
    pub const AUTH_FAILURE_REFILL: Duration = Duration::from_secs(12);
    /// Open connections per source address (a trusted proxy is exempt).
    pub const MAX_CONNS_PER_IP: usize = 256;
    /// Requests per second into one tunnel (sustained); 0 means unlimited.
    pub const TUNNEL_RATE: f64 = 100.0;
    /// Burst of [`TUNNEL_RATE`].
    pub const TUNNEL_BURST: f64 = 200.0;
    /// Source addresses whose rate-limit state is kept; the least recently seen is dropped.
    pub const MAX_TRACKED_ADDRS: usize = 65_536;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_static(n),
                http::HeaderValue::from_static(v),
            );
        }
        h
    }

    #[test]
    fn secret_headers_are_never_indexed_and_the_rest_are() {
        let mut h = headers(&[
            ("authorization", "Basic dTpw"),
            ("stripe-signature", "t=1,v1=ab"),
            ("x-shopify-hmac-sha256", "ab"),
            ("x-gitlab-token", "t"),
            ("cookie", "a=b"),
            ("content-type", "application/json"),
            ("idempotency-key", "k"),
            ("i-twilio-idempotency-token", "t"),
        ]);
        mark_secret_headers(&mut h);
        let sensitive: Vec<&str> = h
            .iter()
            .filter(|(_, v)| v.is_sensitive())
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            sensitive,
            [
                "authorization",
                "stripe-signature",
                "x-shopify-hmac-sha256",
                "x-gitlab-token",
                "cookie"
            ]
        );
    }

    #[test]
    fn version_check_is_human() {
        assert!(check_version(Some("1")).is_ok());
        let e = check_version(Some("7")).unwrap_err();
        assert!(e.contains("speaks 1") && e.contains("speaks 7"), "{e}");
        assert!(check_version(None).is_err());
    }

    #[test]
    fn te_trailers_is_read_among_other_codings() {
        let te = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::TE, v.parse().unwrap());
            accepts_trailers(&h)
        };
        assert!(te("trailers"));
        assert!(te("gzip, Trailers"));
        assert!(te("deflate;q=0.5, trailers;q=1"));
        assert!(!te("gzip"));
        assert!(!te("trailersx"));
        assert!(!accepts_trailers(&http::HeaderMap::new()));
    }

    #[test]
    fn trailer_fields_keep_only_what_may_travel_there() {
        let mut t = headers(&[
            ("x-sum", "5d41"),
            ("grpc-status", "0"),
            ("x-twk-remote-addr", "6.6.6.6:1"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("proxy-authorization", "Basic eA=="),
            ("keep-alive", "5"),
            ("connection", "close"),
            ("te", "gzip"),
            ("transfer-encoding", "chunked"),
        ]);
        strip_trailer_fields(&mut t);
        let left: Vec<&str> = t.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(left, ["x-sum", "grpc-status"]);
    }

    #[test]
    fn strips_hop_by_hop_and_connection_listed_but_not_forwarding_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "connection",
            "close, X-Secret, X-Forwarded-For, X-TWK-Host,, Forwarded, x-{bad}"
                .parse()
                .unwrap(),
        );
        h.append("connection", "\t x-other ".parse().unwrap());
        h.insert("x-other", "1".parse().unwrap());
        h.insert("forwarded", "for=1.2.3.4".parse().unwrap());
        h.insert(meta::HOST, "h.example".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(
            h.get("x-other").is_none(),
            "a second Connection value counts too"
        );
        assert_eq!(h.get("forwarded").unwrap(), "for=1.2.3.4");
        assert_eq!(h.get(meta::HOST).unwrap(), "h.example");
        assert!(h.get("transfer-encoding").is_none());
        assert!(h.get("upgrade").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(h.get("x-forwarded-for").unwrap(), "1.2.3.4");
        assert_eq!(h.get("content-type").unwrap(), "text/plain");
    }

    #[test]
    fn every_hop_by_hop_name_and_only_those_is_one() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
            assert!(is_hop_by_hop_text(&name.as_str().to_ascii_uppercase()));
        }
        for name in [
            "content-type",
            "trailer",
            "keep-alivex",
            "proxy-connectio",
            "x-twk-host",
        ] {
            assert!(!is_hop_by_hop(&name.parse().unwrap()), "{name}");
            assert!(!is_hop_by_hop_text(name), "{name}");
        }
        // Stripping: each of them, however it was written, with other names around it.
        let mut h = http::HeaderMap::new();
        for name in &HOP_BY_HOP {
            h.append(
                name.as_str()
                    .to_uppercase()
                    .as_str()
                    .parse::<http::HeaderName>()
                    .unwrap(),
                "1".parse().unwrap(),
            );
        }
        h.insert("trailer", "x-sum".parse().unwrap());
        h.insert("date", "now".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["date", "trailer"]);
    }

    #[test]
    fn refusal_codes_round_trip() {
        for c in [
            RefusalCode::Unauthorized,
            RefusalCode::NameTaken,
            RefusalCode::InvalidName,
            RefusalCode::ProtocolVersion,
            RefusalCode::Capacity,
            RefusalCode::TakenOver,
            RefusalCode::NameReserved,
            RefusalCode::TooManyTunnels,
            RefusalCode::RateLimited,
        ] {
            assert_eq!(RefusalCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(RefusalCode::parse("nope"), None);
    }
}
