//! twk-files: how twk writes a small private file (a key, a token list, a certificate, a
//! kept request, a runtime file). Each is written whole into a temporary file beside it
//! (0600), synced, renamed into place, and its directory synced: a reader, or a restart after a
//! crash or a power cut, sees the old file or the new one, never a torn or empty one. Missing
//! directories are made 0700.
//!
//! It is not a store: formats, locking between writers of one file and where files go are the
//! callers'. Large bodies (`twk-capture`'s body files) do not come through here: they are not
//! worth a sync each.
//!
//! - [`replace`]: the file now holds these bytes, whatever it held before.
//! - [`create`]: the file holds these bytes unless it already existed; then it is left as it
//!   is, so two processes making the same file at once agree on one content.
//! - [`private_dir`]: a directory (and its missing parents) made 0700.
#![forbid(unsafe_code)]

use std::fs::{DirBuilder, File};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::Path;

/// What [`create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The file is new and holds the bytes given.
    New,
    /// The file was already there (another writer made it first); it is unchanged.
    Existed,
}

/// Makes `dir` and its missing parents, each new one 0700. An existing directory keeps its
/// mode.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Replaces `path` with `bytes`, mode 0600. An existing file keeps its owner where the
/// process may give it (root editing a relay's file must not lock the unprivileged relay out
/// of it).
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, tmp) = written(path, bytes)?;
    if let Ok(old) = std::fs::metadata(path) {
        // Only root may give a file away; anyone else keeps the file theirs.
        let _ = std::os::unix::fs::chown(tmp.path(), Some(old.uid()), Some(old.gid()));
    }
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Creates `path` holding `bytes`, mode 0600, unless it exists: then it is left untouched and
/// this returns [`Created::Existed`]. Never a moment when `path` exists but is incomplete.
pub fn create(path: &Path, bytes: &[u8]) -> io::Result<Created> {
    let (dir, tmp) = written(path, bytes)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => sync_dir(dir).map(|()| Created::New),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(Created::Existed),
        Err(e) => Err(e.error),
    }
}

/// `bytes` in a synced temporary file (0600) in `path`'s directory, made if missing.
fn written<'p>(path: &'p Path, bytes: &[u8]) -> io::Result<(&'p Path, tempfile::NamedTempFile)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    private_dir(dir)?;
    // tempfile makes the file 0600, with a name no other writer has, in the same directory
    // (so the rename cannot cross filesystems).
    let mut tmp = tempfile::Builder::new()
        .prefix(".twk-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok((dir, tmp))
}

/// Syncs a directory, so a rename in it survives a power cut.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
