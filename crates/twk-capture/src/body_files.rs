//! Large bodies kept as files beside the database, named by the SHA-256 of their bytes.
//!
//! A stored body of at least [`FILE_MIN`] bytes is written once to
//! `<data dir>/bodies/<first two hex digits>/<sha256>` (directories 0700, files 0600) and its
//! payload row holds the name instead of the bytes. In the database a 1 MiB body is written
//! twice (into the WAL, then again by the checkpoint), which was a quarter of the client's CPU
//! per request for 1 MiB bodies with capture on; a file is written once.
//!
//! - **Reference counts**: `body_files` has a row per file with the number of payload
//!   columns naming it (the same body twice, a retried webhook or an echo, is one file).
//!   Inserts count up here; retention counts down before it deletes the payload rows. The
//!   writing transaction forgets the files no longer named, and they are unlinked once it
//!   has committed, under the write lock and only if still unnamed (another writer may have
//!   stored the same bytes again meanwhile); if another process holds the lock then, after
//!   the next batch.
//! - **A bound in bytes**: past `StoreOptions::body_files_max_bytes`, the oldest payloads
//!   forget their files (see `crate::file_bound`), which then go like the ones retention
//!   releases.
//! - **Failures and crashes**: a file is written (to a temporary name, then renamed) before
//!   the row that names it commits. When the batch does not commit, the files it wrote are
//!   removed. A file left by a crash is an orphan, removed by the writer at its start once
//!   it is an hour old (another process may still be committing it), again under the write
//!   lock. A power loss (not a process crash) may undo the last transactions that committed
//!   before it (`synchronous=NORMAL`) while their unlinks reached the disk: such a body then
//!   reads as not kept, never as wrong bytes.
//! - **Readers** holding an older snapshot (an export running while retention goes on) may
//!   find the file of a row that has since been deleted already gone: that body reads as not
//!   kept.
//! - **Reading** checks the file against its name: a file lost or cut short (a power loss
//!   before the page cache reached the disk) reads as a body that was not kept
//!   (`truncated`, no bytes), never as wrong bytes.
//!
//! It is not a general blob store: names are checked to be 64 lowercase hex digits, so a
//! row can never make it open another path.

use crate::error::{CaptureError, Result};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Stored bodies at least this long go to files; shorter ones stay in the database, where a
/// webhook-sized body costs less than a file.
pub const FILE_MIN: usize = 64 * 1024;
/// Directory of the body files, inside the data directory.
pub const DIR_NAME: &str = "bodies";
/// A file no row names is removed once it is this old: younger, another process may be
/// about to commit the row that names it.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);
/// Prefix of files being written (renamed to their name when complete).
const TMP_PREFIX: &str = ".tmp-";

/// The directory of body files of one data directory.
#[derive(Debug, Clone)]
pub(crate) struct BodyFiles {
    dir: PathBuf,
}

impl BodyFiles {
    pub(crate) fn new(data_dir: &Path) -> Self {
        BodyFiles {
            dir: data_dir.join(DIR_NAME),
        }
    }

    /// The path of the file called `name`, when `name` is a SHA-256 in lowercase hex.
    pub(crate) fn path_of(&self, name: &str) -> Option<PathBuf> {
        let valid =
            name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let fan = name.get(..2).filter(|_| valid)?;
        Some(self.dir.join(fan).join(name))
    }

    /// The name `bytes` are stored under: `sha256` when it is the hash of exactly these bytes
    /// (the caller knows), else computed.
    pub(crate) fn name_of(bytes: &[u8], known_sha256: Option<&str>) -> String {
        match known_sha256 {
            Some(s)
                if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                s.to_owned()
            }
            _ => crate::exchange::lower_hex(&Sha256::digest(bytes)),
        }
    }

    /// Makes sure the file `name` holds `bytes`: written to a temporary file and renamed,
    /// unless a file of that name and length is there already. True when it wrote the file
    /// (then it is this transaction's to remove if the transaction does not commit).
    pub(crate) fn put(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.path_of(name).ok_or_else(|| CaptureError::Corrupt {
            id: 0,
            what: format!("invalid body file name {name:?}"),
        })?;
        if fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(false);
        }
        let fan = path.parent().unwrap_or(&self.dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(fan)
            .map_err(|e| CaptureError::io("creating body directory", fan, e))?;
        let tmp = fan.join(tmp_name(name));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            fs::rename(&tmp, &path)
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CaptureError::io("writing body file", &path, e)
        })?;
        Ok(true)
    }

    /// The bytes of file `name` if they hash to its name; `None` when it is missing, cut
    /// short or altered (logged).
    pub(crate) fn get(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.path_of(name)?;
        let bytes = match open_regular(&path).and_then(|mut f| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut bytes).map(|_| bytes)
        }) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "stored body file cannot be read; shown as not kept");
                return None;
            }
        };
        if !is_name_of(name, &Sha256::digest(&bytes)) {
            tracing::warn!(file = %path.display(), "stored body file does not match its name; shown as not kept");
            return None;
        }
        Some(bytes)
    }

    /// Counts one more reference to file `name` of `len` bytes. Returns the bytes this adds
    /// to the files rows name: `len` when no row named the file before, else 0.
    pub(crate) fn add_ref(conn: &Connection, name: &str, len: usize) -> Result<u64> {
        let refs: i64 = conn
            .prepare_cached(
                "INSERT INTO body_files (name, refs, bytes) VALUES (?1, 1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET refs = refs + 1 RETURNING refs",
            )?
            .query_row(rusqlite::params![name, len as i64], |r| r.get(0))?;
        Ok(if refs == 1 { len as u64 } else { 0 })
    }

    /// Forgets the files no payload names any more and returns their names, for
    /// [`BodyFiles::unlink_unnamed`] once the transaction has committed: unlinked inside it, a
    /// commit that then failed (disk full, a crash) would bring back rows whose files are gone.
    /// Also returns the bytes of those files.
    ///
    /// Read first, deleted only when there is something: run after every batch, and there
    /// usually is nothing, while `DELETE … RETURNING` builds a temporary table on each run
    /// (34k instructions a batch, as much as its commit).
    pub(crate) fn release_unused(conn: &Connection) -> Result<(Vec<String>, u64)> {
        let released = conn
            .prepare_cached("SELECT name, bytes FROM body_files WHERE refs <= 0")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if !released.is_empty() {
            conn.prepare_cached("DELETE FROM body_files WHERE refs <= 0")?
                .execute([])?;
        }
        let bytes = released.iter().map(|(_, b)| (*b).max(0) as u64).sum();
        Ok((released.into_iter().map(|(n, _)| n).collect(), bytes))
    }

    /// Unlinks those of `names` that no row names, holding the write lock (`BEGIN
    /// IMMEDIATE`): no writer, in this process or another, can be reusing one meanwhile. Run
    /// outside a transaction. After an error (the lock is taken) it may be called again with
    /// the same names. Returns how many files it removed.
    pub(crate) fn unlink_unnamed(&self, conn: &mut Connection, names: &[String]) -> Result<usize> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut removed = 0;
        {
            let mut named = tx.prepare_cached("SELECT 1 FROM body_files WHERE name = ?1")?;
            for name in names {
                if !named.exists([name])? && self.path_of(name).is_some_and(|p| remove(&p)) {
                    removed += 1;
                }
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Removes files older than an hour that no row names (a crash between writing a file
    /// and committing its row) and temporary files left by a crash. Returns how many.
    pub(crate) fn sweep_orphans(&self, conn: &mut Connection) -> Result<usize> {
        self.sweep_orphans_older_than(conn, SystemTime::now() - ORPHAN_AGE)
    }

    /// Candidates are found without the write lock (the walk may be long on a cold disk, and
    /// other processes' writers would wait for it), then checked again and removed under it
    /// by [`BodyFiles::unlink_unnamed`]: a writer may have stored the same bytes meanwhile.
    /// Temporary files, and anything else that is not where a body file of its name would be,
    /// need no lock: no writer will ever use them.
    pub(crate) fn sweep_orphans_older_than(
        &self,
        conn: &mut Connection,
        cutoff: SystemTime,
    ) -> Result<usize> {
        let (strays, unnamed) = self.unnamed_older_than(conn, cutoff)?;
        let mut removed = strays.iter().filter(|p| remove(p)).count();
        if !unnamed.is_empty() {
            removed += self.unlink_unnamed(conn, &unnamed)?;
        }
        if removed > 0 {
            tracing::info!(removed, "removed body files that no capture row names");
        }
        Ok(removed)
    }

    /// Files older than `cutoff`: the paths of temporary and stray ones, and the names of body
    /// files no row names now.
    fn unnamed_older_than(
        &self,
        conn: &Connection,
        cutoff: SystemTime,
    ) -> Result<(Vec<PathBuf>, Vec<String>)> {
        let (mut strays, mut unnamed) = (Vec::new(), Vec::new());
        let Ok(fans) = fs::read_dir(&self.dir) else {
            return Ok((strays, unnamed));
        };
        let mut known = conn.prepare_cached("SELECT 1 FROM body_files WHERE name = ?1")?;
        for fan in fans.flatten() {
            let Ok(files) = fs::read_dir(fan.path()) else {
                continue;
            };
            for file in files.flatten() {
                let old = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if !old {
                    continue;
                }
                let name = file.file_name().to_string_lossy().into_owned();
                let path = file.path();
                if self.path_of(&name).as_ref() != Some(&path) {
                    strays.push(path);
                } else if !known.exists([&name])? {
                    unnamed.push(name);
                }
            }
        }
        Ok((strays, unnamed))
    }

    /// The body file `name`, open for reading; `None` for a name that is not a body file's
    /// or a file that is gone.
    pub(crate) fn open(&self, name: &str) -> Option<fs::File> {
        open_regular(&self.path_of(name)?).ok()
    }
}

/// True when `name` is the name of bytes whose SHA-256 is `digest`: a body file is named by
/// its hash, so one that hashes otherwise was altered (or cut short) on disk.
pub(crate) fn is_name_of(name: &str, digest: &[u8]) -> bool {
    crate::exchange::lower_hex(digest) == name
}

/// Removes the file at `path`; true when it did. A file already gone is no error.
fn remove(path: &Path) -> bool {
    match fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove unused body file");
            false
        }
    }
}

/// Opens `path` for reading if it is a regular file itself: the writer only ever makes
/// those, and a FIFO or a symbolic link (to `/dev/zero`, say) put there would hang or exhaust
/// a reader. Not following links and not blocking on open, then checking the open file, leave
/// no moment in which the path could be swapped.
fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.file_type().is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "not a regular file",
        ))
    }
}

/// A temporary name unique to this process and call.
fn tmp_name(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{TMP_PREFIX}{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sha256_in_lowercase_hex_names_a_file() {
        let files = BodyFiles::new(Path::new("/data"));
        let good = "ab".repeat(32);
        assert_eq!(
            files.path_of(&good),
            Some(PathBuf::from(format!("/data/bodies/ab/{good}")))
        );
        for bad in [
            "",
            "../../../../etc/passwd",
            &"AB".repeat(32),
            &"ab".repeat(31),
            &format!("{}/x", "ab".repeat(31)),
            &format!("..{}", "a".repeat(62)),
            &"é".repeat(32),
        ] {
            assert_eq!(files.path_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_hostile_name_in_a_row_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::new(dir.path());
        std::fs::write(dir.path().join("secret"), b"not a body").unwrap();
        assert_eq!(files.get("../secret"), None);
        assert!(files.open("../secret").is_none());
    }

    #[test]
    fn put_writes_once_and_names_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::new(dir.path());
        let bytes = b"a body".repeat(20_000);
        let name = BodyFiles::name_of(&bytes, None);
        assert_eq!(BodyFiles::name_of(&bytes, Some(&name)), name);
        assert_eq!(BodyFiles::name_of(&bytes, Some("not-a-hash")), name);
        assert!(files.put(&name, &bytes).unwrap(), "written");
        assert!(!files.put(&name, &bytes).unwrap(), "reused");
        assert_eq!(files.get(&name).as_deref(), Some(&bytes[..]));
        let fan = dir.path().join(DIR_NAME).join(&name[..2]);
        assert_eq!(
            std::fs::read_dir(fan).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_released_file_is_unlinked_only_while_no_row_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::new(dir.path());
        let mut conn = Connection::open(dir.path().join("db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE body_files (name TEXT PRIMARY KEY, refs INTEGER NOT NULL, \
             bytes INTEGER NOT NULL) WITHOUT ROWID",
        )
        .unwrap();
        let bytes = b"stored again".repeat(10_000);
        let name = BodyFiles::name_of(&bytes, None);
        files.put(&name, &bytes).unwrap();
        let path = files.path_of(&name).unwrap();
        // Released by one batch, stored again by another writer before the unlink.
        BodyFiles::add_ref(&conn, &name, bytes.len()).unwrap();
        files
            .unlink_unnamed(&mut conn, std::slice::from_ref(&name))
            .unwrap();
        assert!(path.exists(), "a file a row names stays");
        conn.execute("DELETE FROM body_files", []).unwrap();
        files
            .unlink_unnamed(&mut conn, &[name, "../db".to_owned()])
            .unwrap();
        assert!(!path.exists());
        assert!(
            dir.path().join("db").exists(),
            "a hostile name unlinks nothing"
        );
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::new(dir.path());
        let bytes = b"linked".repeat(20_000);
        let name = BodyFiles::name_of(&bytes, None);
        let path = files.path_of(&name).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let real = dir.path().join("elsewhere");
        std::fs::write(&real, &bytes).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert_eq!(files.get(&name), None, "a symbolic link is not followed");
        assert!(files.open(&name).is_none());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(files.get(&name).as_deref(), Some(&bytes[..]));
    }
}
