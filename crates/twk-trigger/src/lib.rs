//! twk-trigger: fires the webhooks providers send, without a provider account.
//!
//! For every provider twk knows it holds a catalog of events ([`catalog`]) built with the
//! fields, headers and body encoding that provider's sender uses, fresh ids and the current
//! time; `--set` overrides ([`Set`]); and each sender's behaviour ([`Sender`]): its
//! deadline, the Basic-auth challenge (Bandwidth, and Twilio with credentials in the URL),
//! and its retry schedule. [`fire`] signs every attempt afresh with `twk-providers`, sends
//! it over HTTP/1.1 (plain or TLS) on a fresh connection as senders do, and reports each
//! attempt and what the provider would make of it ("delivered", "Stripe will retry in
//! ~1 h", "Bandwidth gives up: this callback is lost").
//!
//! It also keeps twk's test secrets ([`test_secrets`]): one signing secret per provider,
//! which `trigger` signs with when none is configured and the tunnel checks such webhooks
//! with.
//!
//! What it is **not**: it does not verify signatures (that is `twk-providers`), run a
//! tunnel, or record anything: what it sends is recorded by the tunnel it goes through.
//! Retry schedules that providers do not publish are approximations, marked as such in
//! docs/trigger.md.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod catalog;
mod draft;
mod fire;
mod http;
pub mod ids;
mod sender;
pub mod test_secrets;

pub use catalog::{EventSpec, build, events, find};
pub use draft::{Body, Draft, Set};
pub use fire::{AttemptReport, Fate, FireOptions, Leg, fire};
pub use http::{KEPT_BODY, Reply, shown_url};

/// Checks a destination URL as `--to` takes it (http:// or https://, a host), saying why not.
pub fn check_destination(url: &str) -> Result<(), String> {
    http::Destination::parse(url)
        .map(drop)
        .map_err(|e| match e {
            TriggerError::BadUrl { why, .. } => why,
            other => other.to_string(),
        })
}
pub use ids::generated_secret;
pub use sender::{Answer, Next, Retry, RetryOn, RetryReason, Sender, human};
pub use test_secrets::{LiveTestSecrets, TestSecret, TestSecrets, TestSecretsError};

/// The Verify Push event types of the seed, in its order.
pub const VERIFY_PUSH_EVENTS: [&str; 5] = catalog::VERIFY_PUSH_EVENTS;
pub use catalog::VERIFY_PUSH_V1_FIELDS;

/// What can go wrong before or while firing.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// No such event for the provider.
    #[error("{} has no event {event:?}: {hint}", provider.display_name())]
    UnknownEvent {
        /// The provider.
        provider: twk_providers::Provider,
        /// What was asked for.
        event: String,
        /// What there is.
        hint: String,
    },
    /// A `--set` that cannot apply.
    #[error("cannot set {field:?}: {why}")]
    BadSet {
        /// The field as given.
        field: String,
        /// Why not.
        why: String,
    },
    /// A destination that is not an http(s) URL.
    #[error("bad destination {url:?}: {why}")]
    BadUrl {
        /// As given.
        url: String,
        /// Why not.
        why: String,
    },
    /// Signing needs a secret and there is none.
    #[error("no {} secret to sign with", .0.display_name())]
    NoSecret(twk_providers::Provider),
    /// The provider's scheme refused to sign.
    #[error("cannot sign: {0}")]
    Sign(String),
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The TLS configuration for an https destination.
    #[error("TLS: {0}")]
    Tls(String),
}
