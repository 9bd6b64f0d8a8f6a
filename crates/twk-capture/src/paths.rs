//! Where the capture database lives, and making sure nobody else can read it.
//!
//! Default: `$XDG_DATA_HOME/twk/` (when `$XDG_DATA_HOME` is an absolute path), else
//! `$HOME/.local/share/twk/`. The directory is created with mode 0700 and the database file
//! (plus SQLite's `-wal`/`-shm` companions) with mode 0600.

use crate::error::{CaptureError, Result};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the database inside the data directory.
pub const DB_FILE_NAME: &str = "captures.sqlite3";

/// The default data directory: `$XDG_DATA_HOME/twk` or `$HOME/.local/share/twk`.
pub fn default_data_dir() -> Result<PathBuf> {
    data_dir_from(
        std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`default_data_dir`] with the environment passed in (for tests).
pub fn data_dir_from(xdg_data_home: Option<PathBuf>, home: Option<PathBuf>) -> Result<PathBuf> {
    // The XDG spec says relative values must be ignored.
    if let Some(x) = xdg_data_home.filter(|p| p.is_absolute()) {
        return Ok(x.join("twk"));
    }
    match home.filter(|p| !p.as_os_str().is_empty()) {
        Some(h) => Ok(h.join(".local").join("share").join("twk")),
        None => Err(CaptureError::NoDataDir),
    }
}

/// Creates `dir` (and parents) if needed; a directory created here gets mode 0700.
/// An existing directory readable by group/others is tightened to 0700 with a warning.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CaptureError::io("creating data directory", dir, e))?;
        // `recursive` applies the mode to every created level, but the umask may have
        // cleared bits we want: set it explicitly on the leaf.
        set_mode(dir, 0o700)?;
        return Ok(());
    }
    let meta = fs::metadata(dir).map_err(|e| CaptureError::io("reading data directory", dir, e))?;
    if !meta.is_dir() {
        // Never tighten (or write into) a file that was named by mistake.
        let e = std::io::Error::from(std::io::ErrorKind::NotADirectory);
        return Err(CaptureError::io("opening data directory", dir, e));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format_args!("{mode:o}"),
            "capture directory is accessible to other users; tightening to 0700"
        );
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

/// Creates the database file with mode 0600 before SQLite opens it (SQLite would use 0644),
/// and tightens an existing file and its WAL companions to 0600.
pub(crate) fn ensure_private_file(file: &Path) -> Result<()> {
    if !file.exists() {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(file)
            .map_err(|e| CaptureError::io("creating database file", file, e))?;
    }
    for f in [
        file.to_path_buf(),
        sibling(file, "-wal"),
        sibling(file, "-shm"),
    ] {
        if let Ok(meta) = fs::metadata(&f)
            && meta.permissions().mode() & 0o777 != 0o600
        {
            set_mode(&f, 0o600)?;
        }
    }
    Ok(())
}

fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| CaptureError::io("setting permissions of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_wins_when_absolute() {
        let d = data_dir_from(Some("/x/data".into()), Some("/home/u".into())).ok();
        assert_eq!(d, Some(PathBuf::from("/x/data/twk")));
    }

    #[test]
    fn relative_xdg_is_ignored() {
        let d = data_dir_from(Some("rel".into()), Some("/home/u".into())).ok();
        assert_eq!(d, Some(PathBuf::from("/home/u/.local/share/twk")));
    }

    #[test]
    fn nothing_set_is_an_error() {
        assert!(matches!(
            data_dir_from(None, None),
            Err(CaptureError::NoDataDir)
        ));
    }
}
