//! twk-agent (work in progress)
