//! Requests kept while a tunnel's client is offline, sealed to the tunnel's owner
//! (`twk_protocol::kept`), so the relay cannot read them back, and handed to the client when
//! it connects again.
//!
//! Where they are kept: on this node's disk ([`disk`]) when the relay runs alone; in a
//! cluster, in JetStream ([`cluster`]), so whichever node the client reconnects to hands them
//! over, with this node's disk as the fallback while NATS cannot take them (moved to
//! JetStream once it can, or carried to the node that holds the tunnel).
//!
//! Bounded per tunnel by count and bytes (the oldest are dropped, and counted) and by age
//! (older than the TTL: dropped when next looked at).

pub(crate) mod cluster;
pub(crate) mod disk;
mod handoff;

pub(crate) use handoff::{Recipient, hand_off, hand_over};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use twk_protocol::kept::{KeptRequest, OwnerPublic};

/// Limits of the keep store.
#[derive(Debug, Clone)]
pub struct KeepLimits {
    /// Requests per tunnel.
    pub count: usize,
    /// Sealed bytes per tunnel.
    pub bytes: u64,
    /// Age after which a kept request is dropped.
    pub ttl: Duration,
}

impl Default for KeepLimits {
    fn default() -> Self {
        KeepLimits {
            count: twk_protocol::limits::DEFAULT_KEEP_COUNT,
            bytes: twk_protocol::limits::DEFAULT_KEEP_BYTES,
            ttl: twk_protocol::limits::DEFAULT_KEEP_TTL,
        }
    }
}

/// Where one kept request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// A file on this node's disk.
    Disk(PathBuf),
    /// An object in the cluster's store, named by [`stem`].
    Cluster,
}

/// One kept request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kept {
    pub(crate) place: Place,
    pub(crate) received_ms: i64,
    pub(crate) request_id: String,
    /// Sealed length in bytes.
    pub(crate) len: u64,
}

impl Kept {
    /// Its name in either store (file stem or object name).
    pub(crate) fn stem(&self) -> String {
        stem(self.received_ms, &self.request_id)
    }
}

/// A kept request's name: `<received_ms, 13 digits>-<request id>` (the id reduced to
/// `[A-Za-z0-9-]`, 64 characters at most), so names sort by arrival.
pub(crate) fn stem(received_ms: i64, request_id: &str) -> String {
    let id: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    format!("{:013}-{id}", received_ms.max(0))
}

/// The arrival time and request id in a [`stem`].
pub(crate) fn parse_stem(stem: &str) -> Option<(i64, String)> {
    let (ms, id) = stem.split_once('-')?;
    Some((ms.parse().ok()?, id.to_owned()))
}

/// Sorts by arrival: the millisecond, then the relay's request counter (`<prefix>-<n>`,
/// compared as a number: "-10" comes after "-9").
pub(crate) fn arrival_order(kept: &mut [Kept]) {
    let seq = |k: &Kept| {
        k.request_id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    kept.sort_by(|a, b| {
        (a.received_ms, seq(a), &a.request_id).cmp(&(b.received_ms, seq(b), &b.request_id))
    });
}

/// Of `kept` (in arrival order), those to drop: every one past the TTL, then the oldest
/// until the count and byte bounds hold.
pub(crate) fn excess<'a>(kept: &'a [Kept], limits: &KeepLimits, now_ms: i64) -> Vec<&'a Kept> {
    let ttl_ms = i64::try_from(limits.ttl.as_millis()).unwrap_or(i64::MAX);
    let (fresh, expired): (Vec<&Kept>, Vec<&Kept>) = kept
        .iter()
        .partition(|k| now_ms.saturating_sub(k.received_ms) <= ttl_ms);
    let mut out = expired;
    let mut bytes: u64 = fresh.iter().map(|k| k.len).sum();
    let mut count = fresh.len();
    for k in fresh {
        if count <= limits.count && bytes <= limits.bytes {
            break;
        }
        count -= 1;
        bytes -= k.len;
        out.push(k);
    }
    out
}

/// Why a request was not kept.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeepError {
    #[error("sealing failed: {0}")]
    Seal(String),
    #[error("larger than the per-tunnel keep bound")]
    TooLarge,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Seals `request` to `owner`, in its [stored](stored) form; refused when it alone is over
/// the byte bound.
pub(crate) fn seal(
    owner: &OwnerPublic,
    request: &KeptRequest,
    limits: &KeepLimits,
) -> Result<Vec<u8>, KeepError> {
    let sealed = owner
        .seal(request)
        .map_err(|e| KeepError::Seal(e.to_string()))?;
    let stored = stored::wrap(owner, sealed);
    if stored.len() as u64 > limits.bytes {
        return Err(KeepError::TooLarge);
    }
    Ok(stored)
}

/// What the relay stores of a kept request: a head naming the public key it was sealed to,
/// then the sealed box, which alone goes to a client.
///
/// The head lets the relay hand a client only what its key opens. Without it, every new
/// client process of the owner (another machine, a fresh data directory) was sent each
/// request sealed to the owner's other keys, opened it (an x25519 each), and refused it. A
/// record without the head (kept by an older relay) is offered to every client, as before.
pub(crate) mod stored {
    use twk_protocol::kept::OwnerPublic;

    /// The head's first bytes; a sealed box starts with a random public key instead.
    const MAGIC: &[u8; 8] = b"twk-kpt1";

    /// `sealed` behind a head naming `owner`. In place: a record is as large as the keep
    /// bound allows, and a copy beside it would double what sealing one holds at its peak.
    pub(crate) fn wrap(owner: &OwnerPublic, mut sealed: Vec<u8>) -> Vec<u8> {
        let head = MAGIC.iter().chain(owner.as_bytes()).copied();
        sealed.splice(0..0, head);
        sealed
    }

    /// The key a stored record was sealed to, when it names one, and its sealed box.
    pub(crate) fn unwrap(stored: &[u8]) -> (Option<OwnerPublic>, &[u8]) {
        let Some(rest) = stored.strip_prefix(MAGIC) else {
            return (None, stored);
        };
        match rest.split_first_chunk::<32>() {
            Some((key, sealed)) => (Some(OwnerPublic::from_bytes(*key)), sealed),
            None => (None, stored),
        }
    }
}

/// Bodies sealed at once to be kept, relay-wide: with their copies (the record's base64,
/// the sealed box), each costs up to three times its size while it is sealed, and each
/// blocking thread that seals keeps an allocator arena. Sealing is CPU work: two at once
/// keep up with a flood (512 bodies of 256 KiB kept in ~2.6 s, debug build), and took its
/// relay peak from +37 to +24–28 MiB against eight.
const KEEPING_AT_ONCE: usize = 2;

/// Kept requests read at once to be handed over, relay-wide: a draining node's clients all
/// reconnect to the others at once.
const HANDING_AT_ONCE: usize = 8;

/// Body bytes read into memory at once to be kept, relay-wide, in KiB: what keeping can
/// hold of senders' bodies however many arrive for offline tunnels, those waiting to be
/// sealed included. A body holds room for what it has sent, grown as more comes, so slow
/// senders hold next to none; one larger than the room takes all of it.
const KEEPING_KIB_AT_ONCE: usize = 8 * 1024;

/// The largest body that, with `meta`'s head, a sealed record within `limits.bytes` can
/// hold: the record carries the body and header values in base64 (4 bytes for 3), in JSON.
fn keepable_body(limits: &KeepLimits, meta: &KeptRequest) -> u64 {
    let head: usize = meta
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.len() * 4 / 3 + 16)
        .sum::<usize>()
        + meta.path.len()
        + meta.public_url.len()
        + meta.remote_addr.len()
        + meta.method.len()
        + 1024;
    limits.bytes.saturating_sub(head as u64) / 4 * 3
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Why a body was not read whole to be kept.
#[derive(Debug, PartialEq, Eq)]
enum NotRead {
    /// The relay is holding as many bodies' bytes as it holds at once.
    NoRoom,
    /// More than could be kept, broken, or cut short: nothing trustworthy to keep.
    Unkeepable,
}

/// `body` whole, read into one buffer holding `room` for its bytes as they come.
async fn read_at_most(
    mut body: crate::body::RelayBody,
    declared: Option<u64>,
    cap: u64,
    room: &mut Room,
) -> Result<Vec<u8>, NotRead> {
    use http_body_util::BodyExt as _;
    // Allocated once at the declared length, which costs address space, not memory: pages
    // are resident only as the body fills them (allocated as it came, reallocations took a
    // flood of 256 KiB bodies from +21 to +47 MiB of relay peak).
    let mut out = Vec::with_capacity(usize_of(declared.unwrap_or(0).min(cap)));
    let most = declared.unwrap_or(cap).min(cap);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(NotRead::Unkeepable);
        };
        if let Ok(data) = frame.into_data() {
            let len = (out.len() + data.len()) as u64;
            if len > cap {
                return Err(NotRead::Unkeepable);
            }
            // Grown by at least doubling, to no more than it declared: a few semaphore calls
            // per body, not one per frame.
            let ahead = len.max(room.held_bytes().saturating_mul(2)).min(most);
            if !room.hold(ahead) && !room.hold(len) {
                return Err(NotRead::NoRoom);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// One body being read to be kept, counted in a gauge while it lasts.
struct Reading(prometheus_client::metrics::gauge::Gauge);

impl Reading {
    fn counted(gauge: &prometheus_client::metrics::gauge::Gauge) -> Reading {
        gauge.inc();
        Reading(gauge.clone())
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The body to keep, and the room it holds until it is kept. Memory stays bounded under a
/// flood: past the room the sender gets its 503 unkept (counted), never a queue of bodies.
/// Room is held for what a body has sent so far, not what it declares, so slow senders
/// hold next to none (8 of them once held every keeping turn).
async fn read_to_keep(
    store: &KeepStore,
    request: hyper::Request<crate::body::RelayBody>,
    declared: Option<u64>,
    cap: u64,
) -> Result<(Vec<u8>, Room), NotRead> {
    let mut room = store.room();
    // Capped at `max_body` by the caller (`Capped`), and here at what can be kept.
    let body = read_at_most(request.into_body(), declared, cap, &mut room).await?;
    Ok((body, room))
}

/// A body's room among [`KEEPING_KIB_AT_ONCE`], held until it is kept or given up.
struct Room {
    kib: Arc<tokio::sync::Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Room {
    fn held_bytes(&self) -> u64 {
        self.held
            .as_ref()
            .map_or(0, |p| p.num_permits() as u64 * 1024)
    }

    /// Holds room for `bytes` in all (more if needed, never less); false when there is not
    /// that much left. One body larger than the whole room takes all of it.
    fn hold(&mut self, bytes: u64) -> bool {
        let want = usize_of(bytes.div_ceil(1024)).clamp(1, KEEPING_KIB_AT_ONCE);
        let have = self
            .held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        let Some(more) = want.checked_sub(have).filter(|&m| m > 0) else {
            return true;
        };
        let more = u32::try_from(more).unwrap_or(u32::MAX);
        match self.kib.clone().try_acquire_many_owned(more) {
            Ok(p) => {
                match &mut self.held {
                    Some(h) => h.merge(p),
                    None => self.held = Some(p),
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// The relay's keeping: this node's directory, its limits, and the hand-offs running.
#[derive(Debug, Clone)]
pub(crate) struct KeepStore {
    pub(crate) disk: disk::Disk,
    pub(crate) limits: KeepLimits,
    /// Turns to seal bodies read to be kept ([`KEEPING_AT_ONCE`]).
    sealing: Arc<tokio::sync::Semaphore>,
    /// Room for their bytes while they are read and kept ([`KEEPING_KIB_AT_ONCE`]).
    reading_kib: Arc<tokio::sync::Semaphore>,
    /// Room for kept requests being read to be handed over ([`HANDING_AT_ONCE`]).
    handing: Arc<tokio::sync::Semaphore>,
    turns: Arc<handoff::Turns>,
    refused: Arc<handoff::Refused>,
}

impl KeepStore {
    pub(crate) fn new(dir: PathBuf, limits: KeepLimits) -> KeepStore {
        KeepStore {
            disk: disk::Disk::new(dir),
            limits,
            sealing: Arc::new(tokio::sync::Semaphore::new(KEEPING_AT_ONCE)),
            reading_kib: Arc::new(tokio::sync::Semaphore::new(KEEPING_KIB_AT_ONCE)),
            handing: Arc::new(tokio::sync::Semaphore::new(HANDING_AT_ONCE)),
            turns: Arc::default(),
            refused: Arc::default(),
        }
    }

    /// Room to read a body to keep it, holding none yet.
    fn room(&self) -> Room {
        Room {
            kib: self.reading_kib.clone(),
            held: None,
        }
    }
}

/// Keeps a request that found its tunnel offline, sealed to `owner`: reads the body (bounded
/// by `max_body` and the request timeout), seals and stores it. Returns whether it was kept;
/// the sender is answered 503 either way.
pub(crate) async fn keep_offline(
    state: &crate::server::State,
    store: &KeepStore,
    owner: OwnerPublic,
    name: &str,
    request: hyper::Request<crate::body::RelayBody>,
    meta: KeptRequest,
) -> bool {
    // A body the per-tunnel bound could not hold once sealed is not read at all, nor more
    // of a chunked one than it could hold: 8 senders of 25 MB bodies once took the relay to
    // 1 GB to keep nothing.
    let cap = keepable_body(&store.limits, &meta);
    let declared = crate::ingress::declared_len(request.headers());
    if declared.is_some_and(|n| n > cap) {
        state.metrics.kept_refused();
        tracing::warn!(name, cap, "larger than the per-tunnel keep bound: not kept");
        return false;
    }
    let reading = Reading::counted(&state.metrics.kept_reading);
    let read = read_to_keep(store, request, declared, cap);
    let (body, _room) = match tokio::time::timeout(state.cfg.request_timeout, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(NotRead::NoRoom)) => {
            state.metrics.kept_refused();
            tracing::warn!(
                name,
                "too many bodies being kept at once: this one is not kept"
            );
            return false;
        }
        // Too large, cut short or too slow: nothing trustworthy to keep.
        Ok(Err(NotRead::Unkeepable)) | Err(_) => return false,
    };
    drop(reading);
    // Sealing copies the body twice more: a few at a time, within the sender's deadline.
    let turn = store.sealing.clone().acquire_owned();
    let Ok(Ok(_turn)) = tokio::time::timeout(state.cfg.request_timeout, turn).await else {
        state.metrics.kept_refused();
        return false;
    };
    let mut kept = meta;
    kept.body = body;
    let id = kept.request_id.clone();
    let stem = stem(kept.received_ms, &kept.request_id);
    let result = match &state.cfg.cluster {
        Some(c) => cluster::keep(c, store, name, &stem, owner, kept).await,
        None => keep_on_disk(store, name, stem, owner, kept).await,
    };
    match result {
        Ok(dropped) => {
            state.metrics.kept(dropped);
            state
                .registry
                .note_unkept(name, twk_protocol::refused::Lost::Dropped(dropped as u64));
            tracing::info!(request_id = %id, dropped, "kept for the offline tunnel, sealed to its owner");
            true
        }
        Err(e) => {
            state.metrics.kept_refused();
            tracing::warn!(request_id = %id, error = %e, "cannot keep the request");
            false
        }
    }
}

/// Seals and writes one request to this node's disk (on the blocking pool); how many older
/// ones were dropped.
pub(crate) async fn keep_on_disk(
    store: &KeepStore,
    name: &str,
    stem: String,
    owner: OwnerPublic,
    request: KeptRequest,
) -> Result<usize, KeepError> {
    let limits = store.limits.clone();
    let sealed = blocking(move || seal(&owner, &request, &limits)).await??;
    write_on_disk(store, name, stem, sealed).await
}

/// Writes one sealed request to this node's disk and enforces the bounds there.
pub(crate) async fn write_on_disk(
    store: &KeepStore,
    name: &str,
    stem: String,
    sealed: Vec<u8>,
) -> Result<usize, KeepError> {
    let (store, name) = (store.clone(), name.to_owned());
    let now = twk_protocol::now_ms();
    Ok(blocking(move || store.disk.write(&name, &stem, &sealed, &store.limits, now)).await??)
}

/// Runs blocking work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KeepError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KeepError::Io(std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use twk_protocol::kept::OwnerKey;

    fn kept(id: &str, ms: i64, len: u64) -> Kept {
        Kept {
            place: Place::Cluster,
            received_ms: ms,
            request_id: id.into(),
            len,
        }
    }

    #[test]
    fn names_sort_by_arrival_and_read_back() {
        let s = stem(1_700_000_000_000, "ab12-9/../x");
        assert_eq!(s, "1700000000000-ab12-9x");
        assert_eq!(parse_stem(&s), Some((1_700_000_000_000, "ab12-9x".into())));
        assert_eq!(parse_stem("nodash"), None);
        assert_eq!(parse_stem("12x-a"), None);
        let mut ks = vec![kept("p-10", 5, 1), kept("p-9", 5, 1), kept("p-1", 4, 1)];
        arrival_order(&mut ks);
        let ids: Vec<&str> = ks.iter().map(|k| k.request_id.as_str()).collect();
        assert_eq!(ids, ["p-1", "p-9", "p-10"]);
    }

    #[test]
    fn the_expired_then_the_oldest_go_first() {
        let limits = KeepLimits {
            count: 2,
            bytes: 100,
            ttl: Duration::from_millis(1000),
        };
        let ks = vec![
            kept("p-1", 0, 10),
            kept("p-2", 5_000, 60),
            kept("p-3", 5_001, 30),
            kept("p-4", 5_002, 30),
        ];
        let ids =
            |v: Vec<&Kept>| -> Vec<String> { v.iter().map(|k| k.request_id.clone()).collect() };
        // p-1 expired; of the rest, 3 > count 2 and 120 > 100 bytes: p-2 goes.
        assert_eq!(ids(excess(&ks, &limits, 5_500)), ["p-1", "p-2"]);
        assert!(excess(&ks[1..3], &limits, 5_500).is_empty());
    }

    #[test]
    fn a_request_larger_than_the_bound_is_refused_not_sealed_away() {
        let limits = KeepLimits {
            count: 3,
            bytes: 100,
            ttl: Duration::from_secs(3600),
        };
        let owner = OwnerKey::generate();
        let r = KeptRequest {
            request_id: "r".into(),
            received_ms: 1,
            method: "POST".into(),
            path: "/".into(),
            public_url: "http://relay.test/t/a/".into(),
            remote_addr: "127.0.0.1:1".into(),
            headers: Vec::new(),
            body: vec![7; 200],
            answered: 503,
        };
        assert!(matches!(
            seal(&owner.public(), &r, &limits),
            Err(KeepError::TooLarge)
        ));
        let small = KeptRequest {
            body: vec![7; 2],
            ..r
        };
        let big_bound = KeepLimits {
            bytes: 1 << 20,
            ..limits
        };
        let kept = seal(&owner.public(), &small, &big_bound).expect("seal");
        let (key, sealed) = stored::unwrap(&kept);
        assert_eq!(key, Some(owner.public()));
        assert_eq!(owner.open(sealed).expect("open").body, vec![7; 2]);
    }

    #[test]
    fn a_stored_record_names_its_key_and_an_older_one_is_a_bare_box() {
        let owner = OwnerKey::generate();
        let wrapped = stored::wrap(&owner.public(), b"box".to_vec());
        assert_eq!(
            stored::unwrap(&wrapped),
            (Some(owner.public()), &b"box"[..])
        );
        // An older relay stored the box alone; a head cut short is not one.
        for bare in [&b"a sealed box of any length"[..], b"", b"twk-kpt1 short"] {
            assert_eq!(stored::unwrap(bare), (None, bare));
        }
    }
}
