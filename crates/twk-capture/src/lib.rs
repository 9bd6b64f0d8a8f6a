//! twk-capture: the capture store of twk — every exchange the tunnel forwards, kept on the
//! developer's own disk in an embedded SQLite database, queryable and exportable.
//!
//! What it is:
//! - [`Recorder`]: a non-blocking handle the tunnel agent uses to record [`Exchange`]s; a
//!   dedicated writer thread stores them in batched transactions and announces each new row
//!   ([`Recorder::subscribe`]) for the live inspector.
//! - [`Store`]: one SQLite connection for reading (and synchronous writes): [`Store::get`],
//!   [`Store::list`] (cheap [`Summary`] rows), [`Store::query`], [`Store::count`] with a
//!   [`Filter`].
//! - Exports: `log --json` objects ([`export::json`]), HAR 1.2 ([`export::har`]) and curl
//!   commands ([`export::curl`]), all redacted by the one shared rule in [`redact`].
//! - Time bounds for `--since`/`--until` ([`time`]).
//! - The Basic-auth challenge as one handshake, and its lints ([`handshake`]): pairing on
//!   insert, lints stored per exchange (`retry-never-came` judged at read time).
//!
//! What it is NOT: it does not forward, replay or sign anything (that is `twk-agent` and
//! `twk-providers`), does not analyse payloads (it stores the provider crate's verdict), and
//! never truncates forwarded traffic — only the stored copy of a body is capped.
//!
//! Storage: `$XDG_DATA_HOME/twk/captures.sqlite3` (or `~/.local/share/twk/`), directory 0700,
//! file 0600, WAL mode, schema versioned with `PRAGMA user_version`. Stored bodies of 64 KiB
//! and more are files in `bodies/` beside it, named by their SHA-256 (`body_files`). What is
//! kept is bounded: rows per tunnel name, in all and by the bytes of their heads and bodies
//! in the database (`retention`), each body by the body
//! cap, the files in all by a byte bound past which the oldest exchanges lose their large
//! bodies (`file_bound`).
#![warn(missing_docs)]

mod analysis_json;
mod answer_markup;
mod answer_time;
mod body_files;
pub mod error;
pub mod exchange;
pub mod export;
mod file_bound;
mod filter_sql;
mod grep;
pub mod grouping;
pub mod handshake;
mod insert;
pub mod paths;
pub mod query;
pub mod recorder;
pub mod redact;
mod retention;
mod rows;
mod schema;
mod store;
pub mod time;

pub use analysis_json::AnalysisJson;
pub use error::{CaptureError, Result};
pub use exchange::*;
pub use handshake::{
    ChallengeSender, HANDSHAKE_WINDOW_MS, Handshake, Leg, Lint, LintCode, Severity, UnknownLint,
    challenge_sender, lints_of,
};
pub use query::{Filter, Order, StatusFilter, StoredExchange, Summary};
pub use recorder::{Alerts, Health, NewExchange, PendingId, Recorder, RecorderStatus, SHED_KEEP};
pub use schema::SCHEMA_VERSION;
pub use store::{
    DEFAULT_BODY_CAP, DEFAULT_BODY_FILES_MAX_BYTES, DEFAULT_PAYLOADS_MAX_BYTES,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_RETENTION, DEFAULT_RETENTION_TOTAL, Store, StoreOptions,
};
