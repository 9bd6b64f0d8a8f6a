//! Errors of the capture store.

use std::path::PathBuf;

/// Anything that can go wrong while opening, writing or querying the capture store.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Neither `$XDG_DATA_HOME` nor `$HOME` is set, so there is no default location.
    #[error("cannot find a data directory: set $XDG_DATA_HOME or $HOME, or pass --data-dir")]
    NoDataDir,
    /// A filesystem operation on the data directory or database file failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("capture database")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer twk with a schema this version does not know.
    #[error(
        "capture database schema version {found} is newer than this twk understands ({known}); upgrade twk"
    )]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// A stored row could not be decoded (corrupt or hand-edited database).
    #[error("capture database row {id} is corrupt: {what}")]
    Corrupt {
        /// Row id.
        id: i64,
        /// What was wrong.
        what: String,
    },
    /// A time bound (`--since`/`--until`) could not be parsed.
    #[error(
        "invalid time {input:?}: expected RFC 3339 (2018-01-31T23:59:59Z), a date (2018-01-31) or a relative age (30m, 2h, 3d, 1w)"
    )]
    BadTime {
        /// The text given.
        input: String,
    },
    /// A status filter could not be parsed.
    #[error("invalid status filter {input:?}: expected a code (404), a class (4xx, 5xx) or `none`")]
    BadStatus {
        /// The text given.
        input: String,
    },
    /// Serialising an export failed.
    #[error("export")]
    Json(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;

impl CaptureError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        CaptureError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
