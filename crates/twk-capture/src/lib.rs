//! twk-capture: the capture store (work in progress: the SQLite store lands with the capture issue).
#![warn(missing_docs)]

pub mod model;
pub use model::*;
