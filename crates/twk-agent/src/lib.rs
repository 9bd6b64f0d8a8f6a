//! twk-agent: the tunnel client, as a library (headless).
//!
//! [`run`] dials the relay (`ws://` or `wss://`), authenticates, claims a tunnel name and then
//! serves HTTP/2 over the websocket: every stream is one webhook, forwarded to the local target
//! over HTTP/1.1 connections it keeps for reuse, its response streamed back. It reconnects
//! forever with full-jitter backoff, reports connection states and finished exchanges to an
//! [`Observer`], and stops gracefully on its shutdown token.
//!
//! It does not draw anything (see `twk-inspector`), does not store anything itself (the
//! observer does, e.g. into `twk-capture`), and never contacts any host but the relay and the
//! configured local target.
#![warn(missing_docs)]

mod backoff;
pub mod basic_auth;
mod config;
mod detached;
mod forward;
mod hasher;
mod kept;
mod prefetch;
mod refused;
pub mod replay;
mod session;
mod tap;
mod target_io;
mod target_pool;
mod unread;

pub use backoff::Backoff;
pub use basic_auth::BasicAuth;
pub use config::{AgentConfig, HostHeader, RelayUrl, Target, TargetError, TestSecretLookup};
pub use forward::{analyze_exchange, annotate};
pub use hasher::BodyHasher;
pub use session::{AgentError, ConnState, Observer, run};
pub use tap::{CaptureBudget, Lease, Tap, TapResult};

/// Current time as Unix milliseconds (the capture store's clock).
pub use twk_capture::time::now_ms;
