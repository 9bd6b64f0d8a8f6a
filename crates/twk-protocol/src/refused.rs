//! Requests the relay answered itself, told to the tunnel's client so that the app's owner sees
//! them: a webhook the relay refused (over the tunnel's request rate, a body declared over the
//! cap) never reaches the app, and without this notice nobody but the sender would know.
//!
//! The relay lists what it refused per tunnel session and sends the list at most every
//! [`NOTICE_EVERY`] as one request ([`crate::meta::REFUSED`]) whose body is a [`RefusedBatch`]
//! in JSON: at most [`MAX_LISTED`] requests, each with at most [`MAX_HEAD_BYTES`] of its
//! headers; what does not fit is counted ([`RefusedBatch::unlisted`]), never queued, so a
//! stranger who floods a tunnel past its rate costs the tunnel at most one small batch a
//! second. Notices go only to clients that accept them ([`crate::upgrade::ACCEPTS_REFUSED`]).
//!
//! A notice holds no body: the relay refused the request before reading it.

use crate::kept::pairs_b64;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often a session's relay sends a batch at most.
pub const NOTICE_EVERY: Duration = Duration::from_secs(1);
/// The most requests one batch lists; the rest are counted in [`RefusedBatch::unlisted`].
pub const MAX_LISTED: usize = 16;
/// The most header bytes (names and values) one listed request carries; headers past it are
/// left out ([`RefusedRequest::headers_cut`]).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The largest batch a client reads: [`MAX_LISTED`] heads of [`MAX_HEAD_BYTES`] in base64,
/// with room for the rest of each record.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// How long after listing a request from one sender address the relay lists no other from
/// it that carries no signature header (it counts them instead): a stranger's flood from one
/// address is one row a minute.
pub const RELIST_AFTER: Duration = Duration::from_secs(60);

/// The headers that carry a provider's signature or credentials (every provider twk knows;
/// `twk-providers` checks this list against its own). A refused request with one is listed
/// before one without, and once per batch from its address rather than once a minute: a
/// stranger's flood rarely bothers to carry one, a provider's webhook always does.
pub const SIGNATURE_HEADERS: &[&str] = &[
    "stripe-signature",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-twilio-signature",
    "x-authy-signature",
    "x-slack-signature",
    "x-shopify-hmac-sha256",
    "x-bandwidth-signature-hmac-sha256",
    "webhook-signature",
    "svix-signature",
    "authorization",
];

/// Whether headers named `names` carry a provider's signature or credentials.
pub fn looks_signed<'a>(mut names: impl Iterator<Item = &'a str>) -> bool {
    names.any(|n| SIGNATURE_HEADERS.iter().any(|s| n.eq_ignore_ascii_case(s)))
}

/// Why the relay refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RefusedFor {
    /// Its `Content-Length` is over the relay's body cap: refused before a byte of the body
    /// was read.
    BodyTooLarge {
        /// The relay's cap, bytes.
        cap: u64,
    },
    /// The tunnel is over its request rate (`--tunnel-rate`): the sender was told to retry.
    OverRate {
        /// The `Retry-After` the sender got, seconds.
        retry_after_secs: u64,
    },
}

impl RefusedFor {
    /// The status the sender was answered.
    pub const fn status(self) -> u16 {
        match self {
            RefusedFor::BodyTooLarge { .. } => 413,
            RefusedFor::OverRate { .. } => 429,
        }
    }

    /// Why, in words, for the request's failure line (the declared length, when known).
    pub fn explain(self, declared: Option<u64>) -> String {
        match self {
            RefusedFor::BodyTooLarge { cap } => format!(
                "refused by the relay, never forwarded: its body ({} bytes declared) is over the \
                 relay's cap of {cap} bytes (--max-body: twk-tunnel's with its embedded relay, \
                 twk-relay's on a remote one)",
                declared.map_or_else(|| "?".to_owned(), |n| n.to_string())
            ),
            RefusedFor::OverRate { retry_after_secs } => format!(
                "refused by the relay, never forwarded: the tunnel was over its request rate \
                 (twk-relay --tunnel-rate); the sender was told to retry after {retry_after_secs} s"
            ),
        }
    }
}

/// One request the relay refused, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRequest {
    /// The relay's id for it.
    pub request_id: String,
    /// When the relay received its head, Unix ms.
    pub received_ms: i64,
    /// Method.
    pub method: String,
    /// Path and query as it would have been forwarded (routing prefix removed).
    pub path: String,
    /// The exact public URL the sender used.
    pub public_url: String,
    /// The sender's address as the relay saw it.
    pub remote_addr: String,
    /// Headers in order (hop-by-hop and `x-twk-*` removed), values as bytes (base64 in the
    /// record), within [`MAX_HEAD_BYTES`].
    #[serde(with = "pairs_b64")]
    pub headers: Vec<(String, Vec<u8>)>,
    /// Some headers were left out to stay within [`MAX_HEAD_BYTES`].
    pub headers_cut: bool,
    /// Its `Content-Length`, when it had a valid one; `Some(0)` for a request without a body
    /// (neither a length nor chunked); `None` when chunked (its length unknown).
    pub declared_len: Option<u64>,
    /// Why it was refused.
    pub refused_for: RefusedFor,
    /// The text the sender was answered.
    pub answer: String,
}

/// What a session's relay refused since its last batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedBatch {
    /// Listed requests, oldest first.
    pub refused: Vec<RefusedRequest>,
    /// Requests refused besides those listed (past [`MAX_LISTED`] in one interval).
    pub unlisted: u64,
    /// In the first batch of a session: what the relay could not keep while the tunnel was
    /// offline before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unkept: Option<Unkept>,
}

/// Requests for a tunnel that arrived while its client was offline and are not among those
/// handed over: answered 503 without being kept, or kept and later dropped by the tunnel's
/// bounds. Counted by the relay node that answered them, in memory only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unkept {
    /// Answered 503 and not kept (keeping off, no owner key yet, too large to keep, no room).
    pub not_kept: u64,
    /// Answered 413: its `Content-Length` was over the relay's body cap (not retried).
    #[serde(default)]
    pub too_large: u64,
    /// Kept, then dropped to make room for newer ones (`--keep-max`, `--keep-bytes`).
    pub dropped: u64,
    /// When the first and the last of them arrived or were dropped, Unix ms.
    pub first_ms: i64,
    /// See `first_ms`.
    pub last_ms: i64,
}

/// What became of requests for an offline tunnel that are not handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Answered 503 and not kept.
    NotKept,
    /// Answered 413 (body over the cap).
    TooLarge,
    /// This many kept ones dropped for newer ones.
    Dropped(u64),
}

impl Unkept {
    /// Counts `lost` at `now_ms`.
    pub fn add(&mut self, lost: Lost, now_ms: i64) {
        if self.is_empty() {
            self.first_ms = now_ms;
        }
        match lost {
            Lost::NotKept => self.not_kept = self.not_kept.saturating_add(1),
            Lost::TooLarge => self.too_large = self.too_large.saturating_add(1),
            Lost::Dropped(n) => self.dropped = self.dropped.saturating_add(n),
        }
        self.last_ms = now_ms;
    }

    /// How many in all.
    pub fn total(&self) -> u64 {
        self.not_kept
            .saturating_add(self.too_large)
            .saturating_add(self.dropped)
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

/// The headers a notice carries: in order, while names and values together fit
/// [`MAX_HEAD_BYTES`]; true when some were left out. A header that does not fit is skipped,
/// so a later, smaller one (a signature after a huge cookie) still may.
pub fn head_within<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> (Vec<(String, Vec<u8>)>, bool) {
    let (mut kept, mut used, mut cut) = (Vec::new(), 0usize, false);
    for (name, value) in headers {
        let size = name.len() + value.len();
        if used + size > MAX_HEAD_BYTES {
            cut = true;
            continue;
        }
        used += size;
        kept.push((name.to_owned(), value.to_vec()));
    }
    (kept, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_through_json_with_raw_header_bytes() {
        let batch = RefusedBatch {
            refused: vec![RefusedRequest {
                request_id: "r-9".into(),
                received_ms: 1_700_000_000_000,
                method: "POST".into(),
                path: "/hook".into(),
                public_url: "https://relay.test/t/demo/hook".into(),
                remote_addr: "203.0.113.9:4711".into(),
                headers: vec![("x-raw".into(), b"\xff\x01".to_vec())],
                headers_cut: false,
                declared_len: Some(30_000_000),
                refused_for: RefusedFor::BodyTooLarge { cap: 26_214_400 },
                answer: "twk relay: too large\n".into(),
            }],
            unlisted: 3,
            unkept: None,
        };
        let json = serde_json::to_vec(&batch).expect("json");
        assert!(
            String::from_utf8_lossy(&json).contains(r#""kind":"body_too_large""#),
            "the cause is tagged by name"
        );
        assert_eq!(
            serde_json::from_slice::<RefusedBatch>(&json).expect("parse"),
            batch
        );
    }

    #[test]
    fn an_unkept_tally_counts_from_its_first_to_its_last() {
        let mut u = Unkept::default();
        assert!(u.is_empty());
        u.add(Lost::NotKept, 100);
        u.add(Lost::Dropped(3), 200);
        u.add(Lost::TooLarge, 250);
        assert_eq!(
            (u.not_kept, u.too_large, u.dropped, u.first_ms, u.last_ms),
            (1, 1, 3, 100, 250)
        );
        assert_eq!(u.total(), 5);
        let old: RefusedBatch =
            serde_json::from_str(r#"{"refused":[],"unlisted":0}"#).expect("old");
        assert_eq!(old.unkept, None, "a batch without the field still parses");
    }

    #[test]
    fn heads_are_cut_at_the_bound_and_later_small_headers_still_fit() {
        let huge = vec![b'c'; MAX_HEAD_BYTES];
        let headers = [
            ("content-type", &b"application/json"[..]),
            ("cookie", &huge[..]),
            ("stripe-signature", &b"t=1,v1=ab"[..]),
        ];
        let (kept, cut) = head_within(headers);
        assert!(cut);
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "stripe-signature"]);
        let (all, cut) = head_within([("a", &b"b"[..])]);
        assert!(!cut);
        assert_eq!(all, vec![("a".to_owned(), b"b".to_vec())]);
    }

    #[test]
    fn the_status_and_the_words_follow_the_cause() {
        let big = RefusedFor::BodyTooLarge { cap: 10 };
        assert_eq!(big.status(), 413);
        assert!(big.explain(Some(11)).contains("11 bytes declared"));
        let rate = RefusedFor::OverRate {
            retry_after_secs: 2,
        };
        assert_eq!(rate.status(), 429);
        assert!(rate.explain(None).contains("retry after 2 s"));
    }

    #[test]
    fn accepts_reads_a_comma_separated_list() {
        use crate::upgrade::{ACCEPTS_REFUSED, accepts};
        assert!(accepts(Some("refused"), ACCEPTS_REFUSED));
        assert!(accepts(Some("other, Refused"), ACCEPTS_REFUSED));
        assert!(!accepts(Some("refusedx"), ACCEPTS_REFUSED));
        assert!(!accepts(None, ACCEPTS_REFUSED));
    }
}
