//! twk-protocol (work in progress)
