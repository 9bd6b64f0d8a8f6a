//! twk-relay (work in progress)
