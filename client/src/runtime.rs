//! The running tunnels' public URLs and emulators' addresses, for `trigger` to find: each
//! `twk-tunnel` writes `tunnel-<pid>.json` (name, public URL, target, pid, data directory)
//! once connected, rewrites it on reconnect, and removes it on exit; a running emulator writes
//! `emulator-<pid>.json` (base URL, control token, pid). Mode 0600 in a 0700 directory: the
//! control token lets whoever reads it fire events. A file whose process is gone (a crash,
//! a kill -9) is ignored and cleaned up by the next reader.
//!
//! Directory: `$TWK_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/twk`, else `run/` in the default
//! data directory.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One live tunnel as its runtime file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTunnel {
    /// Tunnel name granted by the relay.
    pub name: String,
    /// The URL senders use.
    pub public_url: String,
    /// The local target it forwards to.
    pub target: String,
    /// Its process.
    pub pid: u32,
    /// Its data directory, where `trigger` finds the test secrets the tunnel checks (absent
    /// in files of tunnels older than test secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// One running emulator as its runtime file says.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEmulator {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The bearer token of its control endpoint.
    pub control_token: String,
    /// Its process.
    pub pid: u32,
}

impl std::fmt::Debug for LiveEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveEmulator")
            .field("base_url", &self.base_url)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// What a runtime file describes: its name's prefix and its process.
pub trait Kind: Serialize + serde::de::DeserializeOwned {
    /// `tunnel` or `emulator`.
    const PREFIX: &'static str;
    /// The process that wrote it.
    fn pid(&self) -> u32;
}

impl Kind for LiveTunnel {
    const PREFIX: &'static str = "tunnel";
    fn pid(&self) -> u32 {
        self.pid
    }
}

impl Kind for LiveEmulator {
    const PREFIX: &'static str = "emulator";
    fn pid(&self) -> u32 {
        self.pid
    }
}

/// The runtime directory (not created).
pub fn dir() -> anyhow::Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(d) = env("TWK_RUNTIME_DIR") {
        return Ok(d);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        return Ok(d.join("twk"));
    }
    Ok(twk_capture::paths::default_data_dir()
        .context("no runtime directory: set XDG_RUNTIME_DIR or HOME")?
        .join("run"))
}

/// This process's runtime file while it lives; removed on drop.
#[derive(Debug)]
pub struct Published {
    dir: PathBuf,
    path: PathBuf,
}

impl Published {
    /// Writes (or rewrites) this process's file in [`dir`].
    pub fn write<K: Kind>(entry: &K) -> anyhow::Result<Published> {
        Published::write_in(&dir()?, entry)
    }

    /// Rewrites the file (a reconnect granted another name or URL).
    pub fn rewrite<K: Kind>(&self, entry: &K) -> anyhow::Result<()> {
        write_file(&self.dir, entry).map(drop)
    }

    fn write_in<K: Kind>(dir: &Path, entry: &K) -> anyhow::Result<Published> {
        let path = write_file(dir, entry)?;
        Ok(Published {
            dir: dir.to_owned(),
            path,
        })
    }
}

/// Writes `entry`'s file in `dir` (created 0700), atomically; returns its path.
fn write_file<K: Kind>(dir: &Path, entry: &K) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}-{}.json", K::PREFIX, entry.pid()));
    let json = serde_json::to_vec(entry).context("encoding the runtime file")?;
    // Readers see the old file or the new one, never half of one.
    twk_files::replace(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether `pid` is a running process (Linux: `/proc/<pid>`; elsewhere assumed).
fn alive(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    !proc_root.join("self").exists() || proc_root.join(pid.to_string()).exists()
}

/// The live tunnels (or emulators), oldest pid first; stale files are removed.
pub fn live<K: Kind>() -> anyhow::Result<Vec<K>> {
    live_in(&dir()?)
}

fn live_in<K: Kind>(dir: &Path) -> anyhow::Result<Vec<K>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.strip_prefix(K::PREFIX)
                .is_some_and(|r| r.starts_with('-') && r.ends_with(".json"))
        });
        if !is_ours {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        match serde_json::from_slice::<K>(&bytes) {
            Ok(t) if alive(t.pid()) => out.push(t),
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    out.sort_by_key(K::pid);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_tunnel_is_listed_until_dropped_and_stale_ones_are_cleaned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("twk");
        let me = LiveTunnel {
            name: "demo".into(),
            public_url: "http://127.0.0.1:1/t/demo".into(),
            target: "http://localhost:3000".into(),
            pid: std::process::id(),
            data_dir: Some(tmp.path().join("data")),
        };
        let published = Published::write_in(&dir, &me).expect("write");
        let mut gone = me.clone();
        gone.pid = 4_000_000_000;
        let stale = dir.join("tunnel-4000000000.json");
        std::fs::write(&stale, serde_json::to_vec(&gone).expect("json")).expect("stale");
        std::fs::write(dir.join("tunnel-garbage.json"), b"{not json").expect("garbage");
        assert_eq!(live_in::<LiveTunnel>(&dir).expect("live"), vec![me.clone()]);
        assert!(!stale.exists(), "a dead process's file is removed");
        let meta = std::fs::metadata(dir.join(format!("tunnel-{}.json", me.pid))).expect("meta");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        drop(published);
        assert!(live_in::<LiveTunnel>(&dir).expect("live").is_empty());
        let emu = LiveEmulator {
            base_url: "http://127.0.0.1:2".into(),
            control_token: "t".into(),
            pid: std::process::id(),
        };
        let kept = Published::write_in(&dir, &emu).expect("emulator");
        assert!(live_in::<LiveTunnel>(&dir).expect("tunnels").is_empty());
        assert_eq!(live_in::<LiveEmulator>(&dir).expect("emulators"), vec![emu]);
        drop(kept);
    }
}
