//! Subcommands of `twk-tunnel` other than running the tunnel itself.

pub mod emulate;
pub mod history;
pub mod trigger;
pub mod verify;
