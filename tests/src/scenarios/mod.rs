//! End-to-end scenarios: one test binary, one module per behaviour.

mod acme;
mod basic_auth;
mod cluster;
mod failures;
mod forward;
mod hardening;
mod hold;
mod keep;
mod metrics;
mod refused;
mod sessions;
mod test_secret;
