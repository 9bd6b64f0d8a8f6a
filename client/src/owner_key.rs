//! `owner.key` in the capture directory: this client's key for the requests the relay keeps
//! while it is offline. Made on first use and never overwritten or moved: requests kept while
//! offline were sealed to the key the file holds, so losing it loses them.

use anyhow::Context as _;
use std::path::Path;
use twk_files::Created;
use twk_protocol::kept::OwnerKey;

/// The key in `path`, made (0600, whole, synced) if there is none. Clients starting at once on
/// one data directory all get the key the first of them made. A file that does not hold a key
/// is an error that says what to do. twk does not move it itself: of two clients starting at
/// once, one could move away the good key the other had just made in its place.
pub(crate) fn load_or_make(path: &Path) -> anyhow::Result<OwnerKey> {
    // Twice at most: a key another client made after this one looked is read the second time.
    for _ in 0..2 {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return OwnerKey::from_base64(&text).with_context(|| {
                    format!(
                        "{} holds no key: move it away and twk makes a new one (requests kept \
                         for the old key cannot be opened)",
                        path.display()
                    )
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let key = OwnerKey::generate();
        let made = twk_files::create(path, key.to_base64().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        if made == Created::New {
            return Ok(key);
        }
    }
    anyhow::bail!(
        "{} is there but cannot be read (a dangling link, or another process replacing it)",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_key_is_made_once_then_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data/owner.key");
        let made = load_or_make(&path).expect("made");
        let read = load_or_make(&path).expect("read");
        assert_eq!(made.public().to_base64(), read.public().to_base64());
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn clients_starting_at_once_share_one_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("owner.key");
        let barrier = std::sync::Barrier::new(6);
        let keys: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        load_or_make(&path).expect("key").public().to_base64()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .collect()
        });
        let on_disk = load_or_make(&path).expect("read").public().to_base64();
        assert!(keys.iter().all(|k| *k == on_disk), "{keys:?} vs {on_disk}");
    }

    #[test]
    fn a_dangling_link_is_an_error_not_a_loop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("owner.key");
        std::os::unix::fs::symlink(dir.path().join("gone"), &path).expect("symlink");
        let err = load_or_make(&path).expect_err("no key");
        assert!(err.to_string().contains("cannot be read"), "{err:#}");
        assert!(
            !dir.path().join("gone").exists(),
            "the link is not followed to write"
        );
    }

    #[test]
    fn a_file_without_a_key_is_an_error_and_stays_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("owner.key");
        std::fs::write(&path, "not a key\n").expect("write");
        let err = load_or_make(&path).expect_err("no key");
        assert!(format!("{err:#}").contains("move it away"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), "not a key\n");
        std::fs::remove_file(&path).expect("moved away");
        load_or_make(&path).expect("a new key");
    }
}
