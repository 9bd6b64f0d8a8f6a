//! Subcommands of `twk-tunnel` other than running the tunnel itself.

pub mod history;
pub mod trigger;
pub mod verify;
