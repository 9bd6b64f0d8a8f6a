//! End-to-end scenarios: one test binary, one module per behaviour.

mod failures;
mod forward;
mod sessions;
