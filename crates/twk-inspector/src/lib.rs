//! twk-inspector (work in progress)
