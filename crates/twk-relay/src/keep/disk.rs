//! Kept requests on this node's disk: one file per request,
//! `<dir>/<name>/<received_ms>-<id>.sealed`, mode 0600 in 0700 directories, so a relay
//! restart loses none of them and the relay cannot read them back. Blocking file work:
//! callers run it on the blocking pool.

use super::{KeepLimits, Kept, Place};
use std::fs;
use std::path::{Path, PathBuf};

/// The directory of kept requests.
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    dir: PathBuf,
}

impl Disk {
    pub(crate) fn new(dir: PathBuf) -> Disk {
        Disk { dir }
    }

    /// `name` is a validated tunnel name (`[a-z0-9-]`): safe as a path component.
    fn tunnel_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes one sealed request of tunnel `name` under `stem` (see [`super::stem`]); then
    /// enforces the bounds. Returns how many older requests were dropped to make room.
    pub(crate) fn write(
        &self,
        name: &str,
        stem: &str,
        sealed: &[u8],
        limits: &KeepLimits,
        now_ms: i64,
    ) -> std::io::Result<usize> {
        // Synced, file and directory: a kept request outlives a power cut, not only a restart.
        let path = self.tunnel_dir(name).join(format!("{stem}.sealed"));
        twk_files::replace(&path, sealed)?;
        self.enforce(name, limits, now_ms).inspect_err(|_| {
            // Not kept after all: the bounds could not be enforced with it there.
            let _ = fs::remove_file(&path);
        })
    }

    /// Drops expired requests, then the oldest until the count and byte bounds hold;
    /// returns how many were dropped.
    pub(crate) fn enforce(
        &self,
        name: &str,
        limits: &KeepLimits,
        now_ms: i64,
    ) -> std::io::Result<usize> {
        let files = self.list(name)?;
        let mut dropped = 0;
        for k in super::excess(&files, limits, now_ms) {
            if let Place::Disk(path) = &k.place {
                match fs::remove_file(path) {
                    Ok(()) => dropped += 1,
                    // Another writer enforcing at the same time dropped it first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
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
    pub(crate) fn list(&self, name: &str) -> std::io::Result<Vec<Kept>> {
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
            let (Some((received_ms, request_id)), Ok(meta)) =
                (super::parse_stem(stem), entry.metadata())
            else {
                continue;
            };
            out.push(Kept {
                place: Place::Disk(path),
                received_ms,
                request_id,
                len: meta.len(),
            });
        }
        super::arrival_order(&mut out);
        Ok(out)
    }

    /// Removes tunnel `name`'s directory if it is empty (nothing to look at any more).
    pub(crate) fn remove_empty(&self, name: &str) -> std::io::Result<()> {
        fs::remove_dir(self.tunnel_dir(name))
    }

    /// Reads one kept request's sealed bytes.
    pub(crate) fn read(path: &Path) -> std::io::Result<Vec<u8>> {
        fs::read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use twk_protocol::kept::{KeptRequest, OwnerKey};

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
        let store = Disk::new(tmp.path().join("kept"));
        let owner = OwnerKey::generate();
        let now = 1_700_000_000_000;
        // Ids compare by their counter: r-9 arrives before r-10.
        for i in 0..5 {
            let r = req(&format!("r-{}", 8 + i), now, b"MARKER");
            let sealed = owner.public().seal(&r).expect("seal");
            let stem = crate::keep::stem(r.received_ms, &r.request_id);
            let dropped = store
                .write("a", &stem, &sealed, &limits, now)
                .expect("keep");
            assert_eq!(dropped, usize::from(i >= 3));
        }
        let files = store.list("a").expect("list");
        let ids: Vec<&str> = files.iter().map(|f| f.request_id.as_str()).collect();
        assert_eq!(ids, ["r-10", "r-11", "r-12"], "the oldest were dropped");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let Place::Disk(first) = &files[0].place else {
            panic!("a disk listing names files");
        };
        assert_eq!(mode(first), 0o600);
        assert_eq!(mode(&tmp.path().join("kept/a")), 0o700);
        let sealed = Disk::read(first).expect("read");
        assert!(!sealed.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(owner.open(&sealed).expect("open").request_id, "r-10");
        // Past the TTL: dropped when next enforced.
        let later = now + 3_600_001;
        assert_eq!(store.enforce("a", &limits, later).expect("enforce"), 3);
        assert!(store.list("a").expect("list").is_empty());
        // Another tunnel's directory is its own.
        assert!(store.list("b").expect("list").is_empty());
    }

    #[test]
    fn writers_at_once_all_keep_and_the_bounds_hold() {
        // A flood for an offline tunnel keeps on several blocking threads at once: each
        // enforces the bounds after its write, and may find that another already dropped an
        // old request it meant to drop. Before that was allowed for, such a writer failed
        // half-way: its request was kept but reported as not kept, and the bounds broke.
        let tmp = tempfile::tempdir().expect("tmp");
        let limits = KeepLimits {
            count: 5,
            bytes: 1 << 20,
            ttl: Duration::from_secs(3600),
        };
        let store = Disk::new(tmp.path().join("kept"));
        let now = 1_700_000_000_000;
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (store, limits) = (store.clone(), limits.clone());
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let stem = crate::keep::stem(now, &format!("r-{}", w * 1000 + i));
                        store
                            .write("a", &stem, b"sealed", &limits, now)
                            .expect("every write keeps its request");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let kept = store.list("a").expect("list");
        assert!(kept.len() <= 5, "{} kept, over the bound of 5", kept.len());
        assert!(
            kept.iter().any(|k| k.request_id == "r-7039"),
            "the newest was dropped"
        );
    }
}
