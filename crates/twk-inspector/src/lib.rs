//! twk-inspector: the terminal inspector of twk, as a library — every webhook live, its
//! signature verdict, its details, and replay with one key.
//!
//! It follows the Elm Architecture: one [`Model`], one [`Msg`] enum, [`update`] (pure: no I/O,
//! no clock, no store) and [`view`] (draws the model into a ratatui frame). `update` answers
//! with [`Cmd`]s: [`Load`]s, which [`Loader`] executes against the capture store (a local SQLite
//! file) and feeds back as messages, and [`Intent`]s (replay, edit-and-replay, copy, quit),
//! which the host carries out.
//!
//! Layout:
//! - [`model`]: Model, Msg, update, intents; [`layout`]: the screen regions.
//! - [`view`]: drawing; [`detail`]: the detail tabs (one file each); [`style`]: the shared
//!   colours, marks, wrap and time formats; [`body`]: pretty bodies (JSON, form
//!   table, XML, JWT decoded, hex).
//! - [`loader`]: paging rows from the store by window (never loading all of them), so a frame
//!   costs the same with 100,000 stored exchanges.
//! - [`filter`]: the `/` filter language; [`keymap`]: the keys; [`picker`]: the `t` trigger
//!   picker.
//! - [`sanitize`]: THE sanitizer for untrusted text (views, log lines, clipboard);
//!   [`clipboard`]: OSC 52; [`edit`]: the request as an editable HTTP message.
//! - [`input`]: terminal events from the host's crossterm `EventStream` as messages.
//!
//! What it is NOT: it never touches the network and never sends anything (the host replays
//! through `twk-agent`); it does not own the terminal (the host enters raw mode, owns the
//! event stream and writes OSC 52); it does not verify signatures (it shows the verdict
//! `twk-providers` stored; a JWT body is decoded for reading, never verified here).
#![warn(missing_docs)]

pub mod body;
pub mod clipboard;
pub mod detail;
pub mod edit;
pub mod filter;
pub mod help;
pub mod input;
pub mod keymap;
pub mod layout;
pub mod loader;
pub mod model;
pub mod notices;
pub mod picker;
pub mod style;
pub mod topbar;
/// The one sanitizer (its own crate, shared with every plain output).
pub use twk_sanitize as sanitize;
pub mod view;

pub use detail::{Detail, Tab};
pub use loader::Loader;
pub use model::{
    Cmd, Conn, CopyWhat, Counts, Focus, InFlight, Intent, Level, Load, Model, Msg, StaleEdit,
    Start, update,
};
pub use picker::{Picker, TriggerChoice};
pub use view::view;

/// Errors of the inspector library.
#[derive(Debug, thiserror::Error)]
pub enum InspectorError {
    /// Reading the capture store failed.
    #[error("cannot read the capture store")]
    Capture(#[from] twk_capture::CaptureError),
}
