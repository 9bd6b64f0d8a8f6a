//! twk-e2e: the end-to-end harness for twk, and (under `cfg(test)`) its scenarios.
//!
//! Everything runs for real on loopback: relays and agents bind `127.0.0.1:0`, targets are
//! hyper servers, TLS uses certificates generated per test. Readiness is awaited through
//! channels (a connection state, a bound address), never through sleeps.
//!
//! This crate is test support: it is not shipped and has no binary.
#![allow(clippy::unwrap_used)]

pub mod bench;
pub mod harness;
pub mod nats;
pub mod pebble;
pub mod procfs;
pub use harness::*;

#[cfg(test)]
mod scenarios;
