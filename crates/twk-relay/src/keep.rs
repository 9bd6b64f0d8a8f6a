//! Requests kept while a tunnel's client is offline, on disk, sealed to the tunnel's owner
//! (`twk_protocol::kept`): one file per request, `<dir>/<name>/<received_ms>-<id>.sealed`,
//! mode 0600 in 0700 directories, so a relay restart loses none of them and the relay cannot
//! read them back.
//!
//! Bounded per tunnel by count and bytes (the oldest are dropped, and counted) and by age
//! (older than the TTL: dropped when next looked at). Blocking file work: callers run it on
//! the blocking pool.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;
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

/// One kept request on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptFile {
    pub(crate) path: PathBuf,
    pub(crate) received_ms: i64,
    pub(crate) request_id: String,
    pub(crate) len: u64,
}

/// Bodies read into memory at once to be kept, relay-wide: with `max_body` each, this is
/// what keeping can cost in memory however many senders arrive for offline tunnels.
const KEEPING_AT_ONCE: usize = 8;

/// The directory of kept requests.
#[derive(Debug, Clone)]
pub(crate) struct KeepStore {
    dir: PathBuf,
    limits: KeepLimits,
    /// Room for bodies being read to be kept ([`KEEPING_AT_ONCE`]).
    reading: std::sync::Arc<tokio::sync::Semaphore>,
}

impl KeepStore {
    pub(crate) fn new(dir: PathBuf, limits: KeepLimits) -> KeepStore {
        KeepStore {
            dir,
            limits,
            reading: std::sync::Arc::new(tokio::sync::Semaphore::new(KEEPING_AT_ONCE)),
        }
    }

    /// `name` is a validated tunnel name (`[a-z0-9-]`): safe as a path component.
    fn tunnel_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Seals and writes `request` for tunnel `name`; then enforces the bounds. Returns how
    /// many older requests were dropped to make room (or, when it alone is over the byte
    /// bound, `Err`).
    pub(crate) fn keep(
        &self,
        name: &str,
        owner: &OwnerPublic,
        request: &KeptRequest,
        now_ms: i64,
    ) -> std::io::Result<usize> {
        let sealed = owner
            .seal(request)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if sealed.len() as u64 > self.limits.bytes {
            return Err(std::io::Error::other(
                "larger than the per-tunnel keep bound",
            ));
        }
        let dir = self.tunnel_dir(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let id: String = request
            .request_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(64)
            .collect();
        let file = format!("{:013}-{id}.sealed", request.received_ms.max(0));
        let tmp = dir.join(format!(".{file}.tmp"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&sealed)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(&file))?;
        self.enforce(name, now_ms)
    }

    /// Drops expired requests, then the oldest until the count and byte bounds hold;
    /// returns how many were dropped.
    pub(crate) fn enforce(&self, name: &str, now_ms: i64) -> std::io::Result<usize> {
        let mut files = self.list(name)?;
        let ttl_ms = i64::try_from(self.limits.ttl.as_millis()).unwrap_or(i64::MAX);
        let mut dropped = 0;
        files.retain(|f| {
            let fresh = now_ms.saturating_sub(f.received_ms) <= ttl_ms;
            if !fresh && fs::remove_file(&f.path).is_ok() {
                dropped += 1;
            }
            fresh
        });
        let mut bytes: u64 = files.iter().map(|f| f.len).sum();
        let mut count = files.len();
        for f in &files {
            if count <= self.limits.count && bytes <= self.limits.bytes {
                break;
            }
            fs::remove_file(&f.path)?;
            count -= 1;
            bytes -= f.len;
            dropped += 1;
        }
        Ok(dropped)
    }

    /// The tunnels with kept requests here (names only; a directory that is not a valid
    /// tunnel name is skipped).
    pub(crate) fn names(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| twk_protocol::validate_name(n).is_ok())
            .collect()
    }

    /// The kept requests of `name`, oldest first.
    pub(crate) fn list(&self, name: &str) -> std::io::Result<Vec<KeptFile>> {
        let entries = match fs::read_dir(self.tunnel_dir(name)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".sealed"))
            else {
                continue;
            };
            let Some((ms, id)) = stem.split_once('-') else {
                continue;
            };
            let (Ok(received_ms), Ok(meta)) = (ms.parse::<i64>(), entry.metadata()) else {
                continue;
            };
            let request_id = id.to_owned();
            out.push(KeptFile {
                path,
                received_ms,
                request_id,
                len: meta.len(),
            });
        }
        // Arrival order: the millisecond, then the relay's request counter (`<prefix>-<n>`,
        // compared as a number: "-10" comes after "-9").
        let seq = |f: &KeptFile| {
            f.request_id
                .rsplit('-')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.sort_by(|a, b| {
            (a.received_ms, seq(a), &a.request_id).cmp(&(b.received_ms, seq(b), &b.request_id))
        });
        Ok(out)
    }

    /// Reads one kept request's sealed bytes.
    pub(crate) fn read(path: &Path) -> std::io::Result<Vec<u8>> {
        fs::read(path)
    }
}

/// Hands tunnel `name`'s kept requests to its client that just connected, oldest first, one
/// at a time. Each is deleted only once the client answered 2xx (it is recorded). One the
/// client cannot open (422: sealed to another key of the owner) is skipped and stays for
/// that key, within the TTL; any other answer, or the session ending, leaves the rest for
/// the next connect.
pub(crate) async fn hand_off(
    state: std::sync::Arc<crate::server::State>,
    name: String,
    sender: hyper::client::conn::http2::SendRequest<crate::body::RelayBody>,
) {
    hand_over(state, name, Recipient::Session(sender)).await;
}

/// Where kept requests go: the tunnel's session on this node, or (in a cluster) the node
/// whose session holds the tunnel now, through its peer listener.
pub(crate) enum Recipient {
    Session(hyper::client::conn::http2::SendRequest<crate::body::RelayBody>),
    Peer(twk_cluster::Peer),
}

impl Recipient {
    /// Sends one kept request; the client's answer status.
    pub(crate) async fn deliver(
        &mut self,
        state: &crate::server::State,
        name: &str,
        request: http::Request<crate::body::RelayBody>,
    ) -> Result<http::StatusCode, String> {
        match self {
            Recipient::Session(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                let r = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(r.status())
            }
            Recipient::Peer(peer) => {
                let (mut parts, body) = request.into_parts();
                let path = format!("{}{name}", crate::peer::KEPT_PATH);
                crate::peer::address(&mut parts, peer, &path)?;
                let r = state
                    .peers
                    .request(http::Request::from_parts(parts, body))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(r.status())
            }
        }
    }
}

/// [`hand_off`] to any [`Recipient`].
pub(crate) async fn hand_over(
    state: std::sync::Arc<crate::server::State>,
    name: String,
    mut to: Recipient,
) {
    let Some(store) = state.keep.clone() else {
        return;
    };
    let (s, n) = (store.clone(), name.clone());
    let files = match tokio::task::spawn_blocking(move || s.list(&n)).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return tracing::warn!(error = %e, "cannot list kept requests"),
        Err(_) => return,
    };
    if !files.is_empty() {
        tracing::info!(count = files.len(), "handing kept requests to the client");
    }
    for f in files {
        let path = f.path.clone();
        let Ok(Ok(sealed)) = tokio::task::spawn_blocking(move || KeepStore::read(&path)).await
        else {
            continue;
        };
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://{name}.tunnel/"))
            .header(twk_protocol::meta::KEPT, f.request_id.as_str())
            .header(twk_protocol::meta::RECEIVED_AT, f.received_ms)
            .body(crate::body::full(sealed));
        let Ok(request) = request else { continue };
        match to.deliver(&state, &name, request).await {
            Ok(status) if status.is_success() => {
                let path = f.path.clone();
                let _ = tokio::task::spawn_blocking(move || fs::remove_file(path)).await;
                state.metrics.kept_handed_off();
            }
            // Sealed to another key (the owner's other machine, or a key since replaced):
            // this client cannot read it, the other one still may. It stays, within the TTL.
            Ok(http::StatusCode::UNPROCESSABLE_ENTITY) => {
                state.metrics.kept_skipped();
                tracing::info!(request_id = %f.request_id, "kept request sealed to another key of the owner: left for it");
            }
            Ok(status) => {
                return tracing::warn!(
                    status = status.as_u16(),
                    "the client did not take a kept request; it stays kept"
                );
            }
            Err(e) => {
                return tracing::info!(error = %e, "tunnel ended during the hand-off; the rest stays kept");
            }
        }
    }
}

/// Keeps a request that found its tunnel offline, sealed to `owner`: reads the body (bounded
/// by `max_body` and the request timeout), seals and writes it. Returns whether it was kept;
/// the sender is answered 503 either way.
pub(crate) async fn keep_offline(
    state: &crate::server::State,
    store: &KeepStore,
    owner: OwnerPublic,
    name: &str,
    request: hyper::Request<hyper::body::Incoming>,
    meta: KeptRequest,
) -> bool {
    use http_body_util::BodyExt as _;
    let store = store.clone();
    // Memory stays bounded under a flood: past the bound the sender gets its 503 unkept
    // (counted), never a queue of bodies.
    let Ok(_reading) = store.reading.clone().try_acquire_owned() else {
        state.metrics.kept_refused();
        tracing::warn!(
            name,
            "too many requests being kept at once: this one is not kept"
        );
        return false;
    };
    let limited = http_body_util::Limited::new(
        request.into_body(),
        usize::try_from(state.cfg.max_body).unwrap_or(usize::MAX),
    );
    let body = match tokio::time::timeout(state.cfg.request_timeout, limited.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        // Too large, cut short or too slow: nothing trustworthy to keep.
        _ => return false,
    };
    let mut kept = meta;
    kept.body = body.to_vec();
    let name = name.to_owned();
    let id = kept.request_id.clone();
    let now = twk_protocol::now_ms();
    let result = tokio::task::spawn_blocking(move || store.keep(&name, &owner, &kept, now)).await;
    match result {
        Ok(Ok(dropped)) => {
            state.metrics.kept(dropped);
            tracing::info!(request_id = %id, dropped, "kept for the offline tunnel, sealed to its owner");
            true
        }
        Ok(Err(e)) => {
            state.metrics.kept_refused();
            tracing::warn!(request_id = %id, error = %e, "cannot keep the request");
            false
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twk_protocol::kept::OwnerKey;

    fn req(id: &str, ms: i64, body: &[u8]) -> KeptRequest {
        KeptRequest {
            request_id: id.into(),
            received_ms: ms,
            method: "POST".into(),
            path: "/".into(),
            public_url: "http://relay.test/t/a/".into(),
            remote_addr: "127.0.0.1:1".into(),
            headers: Vec::new(),
            body: body.to_vec(),
            answered: 503,
        }
    }

    #[test]
    fn kept_files_are_private_sealed_ordered_and_bounded() {
        let tmp = tempfile::tempdir().expect("tmp");
        let limits = KeepLimits {
            count: 3,
            bytes: 1 << 20,
            ttl: Duration::from_secs(3600),
        };
        let store = KeepStore::new(tmp.path().join("kept"), limits);
        let owner = OwnerKey::generate();
        let now = 1_700_000_000_000;
        // Ids compare by their counter: r-9 arrives before r-10.
        for i in 0..5 {
            let dropped = store
                .keep(
                    "a",
                    &owner.public(),
                    &req(&format!("r-{}", 8 + i), now, b"MARKER"),
                    now,
                )
                .expect("keep");
            assert_eq!(dropped, usize::from(i >= 3));
        }
        let files = store.list("a").expect("list");
        let ids: Vec<&str> = files.iter().map(|f| f.request_id.as_str()).collect();
        assert_eq!(ids, ["r-10", "r-11", "r-12"], "the oldest were dropped");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&files[0].path), 0o600);
        assert_eq!(mode(&tmp.path().join("kept/a")), 0o700);
        let sealed = KeepStore::read(&files[0].path).expect("read");
        assert!(!sealed.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(owner.open(&sealed).expect("open").request_id, "r-10");
        // Past the TTL: dropped when next enforced.
        let later = now + 3_600_001;
        assert_eq!(store.enforce("a", later).expect("enforce"), 3);
        assert!(store.list("a").expect("list").is_empty());
        // Another tunnel's directory is its own.
        assert!(store.list("b").expect("list").is_empty());
    }

    #[test]
    fn a_request_larger_than_the_bound_is_refused_not_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let limits = KeepLimits {
            count: 3,
            bytes: 100,
            ttl: Duration::from_secs(3600),
        };
        let store = KeepStore::new(tmp.path().to_owned(), limits);
        let owner = OwnerKey::generate();
        assert!(
            store
                .keep("a", &owner.public(), &req("r", 1, &[7; 200]), 1)
                .is_err()
        );
        assert!(store.list("a").expect("list").is_empty());
    }
}
