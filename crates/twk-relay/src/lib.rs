//! twk-relay: the public side of a twk tunnel, as a library.
//!
//! [`serve`] takes a bound listener, a [`RelayConfig`] and a shutdown token. On that one
//! listener it answers
//! - `GET /_twk/health` with JSON (`ok`; version, protocol and tunnels connected only with
//!   `health_detail`);
//! - `GET /_twk/connect`, a websocket upgrade authenticated with a bearer token, which becomes a
//!   tunnel: an HTTP/2 connection over the websocket on which the relay is the HTTP/2 client;
//! - every other request, routed by subdomain (`<name>.<domain>`) or path (`/t/<name>/…`) to
//!   the tunnel that holds the name, streamed both ways, with explicit answers when the tunnel
//!   is offline (503 + `Retry-After`), the body is too large (413), the tunnel is lost (502) or
//!   too slow (504).
//!
//! With a `keep_dir`, a request that arrives while a tunnel's client is offline is answered
//! 503 as always, and also kept on disk sealed to the tunnel's owner (the relay cannot read
//! it back) until the client reconnects and takes it.
//!
//! It never needs webhook secrets, never buffers a whole body of a live request, and never
//! acknowledges a webhook on the developer's behalf. It is not the tunnel client (`twk-agent`) and has no
//! command line (`relay-server`).
#![warn(missing_docs)]

mod abuse;
mod body;
mod config;
mod connect;
mod ingress;
mod keep;
mod metrics;
mod notices;
mod peer;
mod registry;
mod reservations;
mod server;
mod stall;
mod tokens;
mod tunnel_h2;
mod window;

pub use config::{AbuseLimits, Auth, RelayConfig, Scheme, UrlStyle};
pub use keep::KeepLimits;
pub use reservations::last_used;
pub use server::{RelayError, serve, serve_node, serve_with_metrics};
pub use tokens::{TokenEntry, TokenFileError, TokenSet, file_add, file_revoke};
