//! The record of one exchange: what the agent hands to the store, and what the store gives back
//! to `log`, `replay`, `export` and the inspector.
//!
//! This is the contract between the tunnel agent (producer) and everything that reads history.

use serde::{Deserialize, Serialize};

/// A stable exchange id, assigned by the store, that survives restarts.
pub type ExchangeId = i64;

/// Which side of the path a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The sender (the webhook provider): e.g. body over the cap, aborted upload.
    Sender,
    /// The relay or the tunnel between relay and client.
    Tunnel,
    /// The developer's local target (the app on localhost).
    Target,
}

/// A failure that stopped the exchange from completing normally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Which side failed.
    pub side: Side,
    /// A short, human message (already free of secrets).
    pub message: String,
}

/// One header as it travelled: the name as received (lowercased by HTTP/2 on the tunnel leg),
/// and the raw value bytes (usually UTF-8, but not always).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Raw header value bytes.
    pub value: Vec<u8>,
}

/// Why a captured body's stored bytes are not the whole body ([`CapturedBody::shortfall`]);
/// displayed as the words the inspector, `replay` and `export --curl` give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// The capture store kept a prefix: `stored` of the body's `len` bytes.
    Capped {
        /// Bytes stored.
        stored: u64,
        /// The body's length.
        len: u64,
    },
    /// Every byte seen is stored, but the body did not reach its end: cut short on its way,
    /// or the app answered before reading it all.
    NotReadToEnd {
        /// Bytes seen.
        len: u64,
    },
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shortfall::Capped { stored, len } => write!(
                f,
                "truncated by the capture store: {stored} of {len} bytes stored"
            ),
            Shortfall::NotReadToEnd { len } => write!(
                f,
                "not read to its end: the {len} bytes seen are stored, the rest never came"
            ),
        }
    }
}

/// A captured body: the stored bytes (possibly truncated to the store's cap), the true length
/// and the SHA-256 of the complete body as it was forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedBody {
    /// Stored bytes: the whole body unless `truncated`.
    pub bytes: Vec<u8>,
    /// Length of the complete body in bytes.
    pub len: u64,
    /// Hex SHA-256 of the complete body; empty when nothing needed it (`--no-capture`) or
    /// not yet computed ([`CapturedBody::ensure_sha256`]).
    pub sha256: String,
    /// True when `bytes` holds only a prefix of the body.
    pub truncated: bool,
}

impl CapturedBody {
    /// A complete (untruncated) body: the bytes, their length and SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        CapturedBody::capped(bytes, usize::MAX)
    }

    /// A whole body of which at most `cap` bytes are kept; length and SHA-256 are always of
    /// the whole (streamed bodies are captured by the client's tap instead).
    pub fn capped(bytes: &[u8], cap: usize) -> Self {
        use sha2::Digest as _;
        let keep = bytes.len().min(cap);
        CapturedBody {
            bytes: bytes.get(..keep).unwrap_or_default().to_vec(),
            len: bytes.len() as u64,
            sha256: lower_hex(&sha2::Sha256::digest(bytes)),
            truncated: keep < bytes.len(),
        }
    }

    /// Why the stored bytes are not the whole body, or `None` when they are.
    pub fn shortfall(&self) -> Option<Shortfall> {
        let stored = self.bytes.len() as u64;
        if stored < self.len {
            Some(Shortfall::Capped {
                stored,
                len: self.len,
            })
        } else if self.truncated {
            Some(Shortfall::NotReadToEnd { len: self.len })
        } else {
            None
        }
    }

    /// The length of a body nobody read (a request the relay refused before its body), in
    /// words: `none`, `its length unknown (chunked)` or `N bytes declared`.
    pub fn unread_len_words(&self) -> String {
        match self.len {
            0 if !self.truncated => "none".to_owned(),
            0 => "its length unknown (chunked)".to_owned(),
            n => format!("{n} bytes declared"),
        }
    }

    /// Fills in the SHA-256 of a complete body whose producer left it out (the client's tap
    /// leaves it for after forwarding). A body cut short keeps what its producer gave: its
    /// hash can only be taken while it streams.
    pub fn ensure_sha256(&mut self) {
        use sha2::Digest as _;
        if self.sha256.is_empty() && !self.truncated && self.len == self.bytes.len() as u64 {
            self.sha256 = lower_hex(&sha2::Sha256::digest(&self.bytes));
        }
    }
}

/// Lowercase hex of a digest, as every stored hash is written. `hex::encode` builds its
/// string a `char` at a time (1.7k instructions for a SHA-256, twice per exchange);
/// `encode_to_slice` writes the bytes into a buffer of the right size.
pub fn lower_hex(digest: &[u8]) -> String {
    let mut out = vec![0; digest.len() * 2];
    match hex::encode_to_slice(digest, &mut out).map(|()| String::from_utf8(out)) {
        Ok(Ok(s)) => s,
        // Unreachable (the buffer is exactly twice the input; hex digits are ASCII).
        _ => hex::encode(digest),
    }
}

/// Request or response head plus body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Headers in the order they travelled; multi-valued headers appear once per value.
    pub headers: Vec<Header>,
    /// The body.
    pub body: CapturedBody,
}

/// Points in time of one exchange, as Unix milliseconds (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// When the relay received the request head.
    pub received_ms: i64,
    /// When the client forwarded the request to the local target.
    pub forwarded_ms: Option<i64>,
    /// When the first response byte (the head) came back from the target.
    pub first_byte_ms: Option<i64>,
    /// When the exchange finished (response body complete, or failure).
    pub done_ms: Option<i64>,
}

/// One request/response pair as seen by the tunnel client (or produced by a replay).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Assigned by the store; `None` before it is recorded.
    pub id: Option<ExchangeId>,
    /// Tunnel name the request arrived on (for replays: the original's name).
    pub tunnel: String,
    /// Relay request id (`x-twk-request-id`), or a local id for replays.
    pub request_id: String,
    /// The exact public URL the sender used: scheme, host, port, path and raw query.
    pub public_url: String,
    /// The sender's address as the relay saw it (`ip:port`).
    pub remote_addr: Option<String>,
    /// Request method.
    pub method: String,
    /// Path and raw query as forwarded to the local target (path prefix removed).
    pub path: String,
    /// Local target the request was forwarded to (e.g. `http://127.0.0.1:3000`).
    pub target: String,
    /// Request as forwarded.
    pub request: Message,
    /// Response status; `None` when no response came back.
    pub status: Option<u16>,
    /// Response as returned to the sender; `None` when no response came back.
    pub response: Option<Message>,
    /// Timings.
    pub timings: Timings,
    /// Set when the exchange failed.
    pub failure: Option<Failure>,
    /// Provider id as named by twk-providers (e.g. `twilio`, `stripe`), if detected.
    pub provider: Option<String>,
    /// Event name (e.g. `challenge.approved`), if known.
    pub event: Option<String>,
    /// One-line event summary.
    pub summary: Option<String>,
    /// Signature verdict (text only at the SQLite boundary).
    pub verdict: Option<twk_providers::Verdict>,
    /// For a `valid` or `stale` verdict: which secret the signature held with (the
    /// analysis's `matched_secret`); `None` otherwise.
    #[serde(default)]
    pub matched_secret: Option<twk_providers::SecretSource>,
    /// The provider crate's full analysis (verdict details, diagnosis), as JSON text.
    pub analysis: Option<crate::AnalysisJson>,
    /// For replays: the id of the exchange this one replays.
    pub replay_of: Option<ExchangeId>,
    /// What twk's own Basic-auth check (`--basic-auth`) saw; `None` when twk did not enforce
    /// Basic auth on this request (the local app may still have run the challenge itself).
    #[serde(default)]
    pub auth: Option<AuthInfo>,
    /// It arrived while this tunnel's client was offline: the relay kept it (sealed) and
    /// answered the sender 503; it was handed over on reconnect, never forwarded to the app.
    #[serde(default)]
    pub missed: bool,
    /// The relay answered it itself and never forwarded it (over the tunnel's rate, a body
    /// declared over the relay's cap): recorded from the relay's notice, head only, the app
    /// never saw it.
    #[serde(default)]
    pub refused: bool,
}

/// The outcome of twk's Basic-auth check on one request (`twk-tunnel --basic-auth`).
///
/// Never holds the password: only the user name the sender presented and whether the
/// credentials matched the configured ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// The user of the request's `Authorization: Basic` credentials, when it sent decodable
    /// ones.
    #[serde(default)]
    pub user: Option<String>,
    /// Whether the credentials matched the configured ones; `None` when the request sent none
    /// (the unauthenticated first leg, answered with the challenge).
    #[serde(default)]
    pub matched: Option<bool>,
}

impl Exchange {
    /// The provider it was recorded as, when that is one twk knows (`provider` holds
    /// [`twk_providers::Provider::as_str`]).
    pub fn known_provider(&self) -> Option<twk_providers::Provider> {
        self.provider.as_deref()?.parse().ok()
    }

    /// The request as the sender sent it, for `twk-providers`: the public URL, the headers as
    /// captured, and `body` (the captured body, or an empty one where only a whole body will
    /// do).
    pub fn request_view<'a>(&'a self, body: &'a [u8]) -> twk_providers::RequestView<'a> {
        twk_providers::RequestView::with_headers(
            &self.method,
            &self.public_url,
            self.request
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_slice()))
                .collect(),
            body,
        )
    }

    /// Duration from relay receipt to done, in milliseconds, when both are known.
    pub fn duration_ms(&self) -> Option<i64> {
        self.timings
            .done_ms
            .map(|done| done.saturating_sub(self.timings.received_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_hex_matches_the_hex_crate() {
        for input in [&[][..], &[0x00, 0x0f, 0xa0, 0xff], &[0xde; 32]] {
            assert_eq!(lower_hex(input), hex::encode(input));
        }
        let body = CapturedBody::capped(b"hello", 2);
        assert_eq!(
            body.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
