//! Name reservations on disk, so a relay restart does not free every name.
//!
//! One small JSON file, mode 0600, replaced atomically and durably (`twk_files::replace`), so
//! a crash leaves either the old or the new version. It holds token fingerprints, never
//! tokens.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::warn;

/// One reserved (or held) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub(crate) name: String,
    /// Fingerprint of the owning token.
    pub(crate) owner: String,
    /// Unix ms of the release; `None` while connected.
    pub(crate) released_ms: Option<i64>,
    /// The owner client's public key (base64): requests kept while it is offline are sealed
    /// to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    names: Vec<Reservation>,
    /// Token fingerprint → Unix ms of its last tunnel connect (for `twk-relay token list`).
    #[serde(default)]
    last_used: BTreeMap<String, i64>,
}

/// What the state file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) names: Vec<Reservation>,
    pub(crate) last_used: BTreeMap<String, i64>,
}

/// Token fingerprint → Unix ms of its last tunnel connect, from a relay's state file (empty
/// when the file is missing or unreadable).
pub fn last_used(path: &Path) -> BTreeMap<String, i64> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<File>(&t).ok())
        .map(|f| f.last_used)
        .unwrap_or_default()
}

/// The state file. Saves are serialised and the newest snapshot always lands last.
#[derive(Clone)]
pub(crate) struct Store {
    path: PathBuf,
    /// Generation of the newest snapshot handed to `save`, and of the one on disk.
    generation: Arc<Mutex<(u64, u64)>>,
    /// The newest generation whose write is over (written, superseded or failed).
    handled: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Store {
    /// A store at `path`; its directory is created (0700) if missing.
    pub(crate) fn open(path: &Path) -> std::io::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Store {
            path: path.to_path_buf(),
            generation: Arc::new(Mutex::new((0, 0))),
            handled: Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// Reads the reservations; a missing file is empty, an unreadable one is reported and
    /// treated as empty (the relay still starts).
    pub(crate) fn load(&self) -> Snapshot {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Snapshot::default(),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot read the name reservations");
                return Snapshot::default();
            }
        };
        match serde_json::from_str::<File>(&text) {
            Ok(f) => Snapshot {
                names: f
                    .names
                    .into_iter()
                    .filter(|r| twk_protocol::validate_name(&r.name).is_ok())
                    .collect(),
                last_used: f.last_used,
            },
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "name reservations file is corrupt; starting empty");
                Snapshot::default()
            }
        }
    }

    /// Saves `names` in the background; a later snapshot supersedes an earlier one.
    pub(crate) fn save(&self, snapshot: Snapshot) {
        let generation = {
            let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
            g.0 += 1;
            g.0
        };
        let store = self.clone();
        let write = move || store.write(generation, &snapshot);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }

    fn write(&self, generation: u64, snapshot: &Snapshot) {
        // Holding the lock across the write keeps older snapshots from landing after newer.
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        if g.1 < generation {
            match self.write_file(snapshot) {
                Ok(()) => g.1 = generation,
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "cannot save the name reservations")
                }
            }
        }
        self.handled.send_if_modified(|h| {
            let newer = generation > *h;
            if newer {
                *h = generation;
            }
            newer
        });
    }

    fn write_file(&self, snapshot: &Snapshot) -> std::io::Result<()> {
        let body = serde_json::to_vec_pretty(&File {
            version: 1,
            names: snapshot.names.clone(),
            last_used: snapshot.last_used.clone(),
        })
        .map_err(std::io::Error::other)?;
        twk_files::replace(&self.path, &body)
    }

    /// Waits until every snapshot handed to `save` so far has been written (or its write
    /// failed and was logged): at shutdown.
    pub(crate) async fn flush(&self) {
        let target = self.generation.lock().unwrap_or_else(|p| p.into_inner()).0;
        let mut handled = self.handled.subscribe();
        let _ = handled.wait_for(|h| *h >= target).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_0600_and_ignores_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("names.json");
        let s = Store::open(&path).unwrap();
        let names = vec![
            Reservation {
                name: "shop".into(),
                owner: "abcd".into(),
                released_ms: Some(5),
                owner_key: Some(
                    twk_protocol::kept::OwnerKey::generate()
                        .public()
                        .to_base64(),
                ),
            },
            Reservation {
                name: "../etc".into(),
                owner: "x".into(),
                released_ms: None,
                owner_key: None,
            },
        ];
        let snap = Snapshot {
            names: names.clone(),
            last_used: BTreeMap::from([("abcd".to_string(), 7)]),
        };
        s.write(1, &snap);
        assert_eq!(s.load().names, names[..1].to_vec());
        assert_eq!(last_used(&path)["abcd"], 7);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "{not json").unwrap();
        assert!(s.load().names.is_empty());
    }
}
