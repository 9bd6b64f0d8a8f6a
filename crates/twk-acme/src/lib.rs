//! twk-acme: automatic TLS for `twk-relay`, the way Caddy does it.
//!
//! [`Acme`] obtains a certificate for the relay's domain from an ACME CA (RFC 8555; Let's
//! Encrypt by default, any directory URL, e.g. Pebble in tests), caches account, certificate
//! and key on disk (mode 0600), serves it through a rustls certificate resolver, and renews it
//! at 2/3 of its lifetime by swapping the resolver's certificate: live connections and tunnels
//! are never dropped.
//!
//! Challenges: TLS-ALPN-01 (RFC 8737) on the relay's own TLS port, answered by the same
//! resolver; or, with a DNS hook, DNS-01 for the domain and `*.<domain>` (the wildcard that
//! subdomain URLs need).
//!
//! The ACME protocol itself is `instant-acme`; certificates are `rcgen` and `x509-parser`.
//! This crate is not the relay (it does not accept connections) and keeps no tunnel state.
#![warn(missing_docs)]

mod cache;
mod manager;
mod resolver;

pub use manager::{Acme, AcmeConfig, CertInfo, LETS_ENCRYPT, LETS_ENCRYPT_STAGING};
pub use resolver::{ACME_TLS_ALPN, CertResolver};

/// Why obtaining or serving a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server refused or failed (account, order, challenge, finalization).
    #[error("ACME request failed")]
    Protocol(#[from] instant_acme::Error),
    /// A challenge did not validate.
    #[error("ACME order for {domain} ended {status}: {detail}")]
    Order {
        /// The domain ordered.
        domain: String,
        /// The order's final status.
        status: String,
        /// What the CA said, if anything.
        detail: String,
    },
    /// The DNS hook failed.
    #[error("DNS hook {hook} failed: {detail}")]
    DnsHook {
        /// The hook's path.
        hook: String,
        /// Exit status or error.
        detail: String,
    },
    /// A certificate or key could not be built or read.
    #[error("certificate: {0}")]
    Cert(String),
    /// The CA root file (`ca_root`) cannot be read: a configuration error, found at start
    /// rather than on every retry of the first order.
    #[error("ACME CA root {path}")]
    CaRootUnreadable {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA root file holds no PEM certificate.
    #[error("ACME CA root {path} holds no PEM certificate")]
    CaRootEmpty {
        /// The file.
        path: String,
    },
    /// The cache directory could not be used.
    #[error("ACME cache {path}")]
    Cache {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
