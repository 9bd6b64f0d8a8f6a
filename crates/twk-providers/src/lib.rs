//! twk-providers (work in progress)
