//! Relay configuration, validated before the listener is used.

use crate::tokens::TokenSet;
use std::sync::Arc;
use std::time::Duration;
use twk_protocol::limits;

/// Scheme of the public URLs the relay hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (loopback, or behind a TLS-terminating proxy that does not say so).
    Http,
    /// HTTPS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Which form of public URL the relay reports to clients. Both forms are always routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStyle {
    /// `https://<name>.<domain>` (needs wildcard DNS).
    Subdomain,
    /// `https://<domain>/t/<name>` (works with any DNS, and on loopback).
    Path,
}

/// Who may open tunnels.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A bearer token from this set is required.
    Tokens(TokenSet),
    /// Anyone may connect (the client's embedded loopback relay only).
    Open,
}

/// Limits against abuse from the open internet. Each has a default in
/// [`twk_protocol::limits`]; [`AbuseLimits::none`] turns them all off (the embedded loopback
/// relay, benchmarks).
#[derive(Debug, Clone, PartialEq)]
pub struct AbuseLimits {
    /// Tunnel upgrade attempts per source address and second (sustained); beyond: 429.
    pub upgrade_rate: f64,
    /// Burst of `upgrade_rate`.
    pub upgrade_burst: f64,
    /// Failed tokens per source address before 429; one comes back every `auth_failure_refill`.
    pub auth_failure_burst: f64,
    /// Time in which one failed-token allowance comes back.
    pub auth_failure_refill: Duration,
    /// Open connections per source address (trusted proxies exempt); 0: unlimited.
    pub max_conns_per_ip: usize,
    /// Tunnels one token may have connected at once; 0: unlimited.
    pub max_tunnels_per_token: usize,
    /// Requests per second into one tunnel (sustained); 0: unlimited.
    pub tunnel_rate: f64,
    /// Burst of `tunnel_rate`.
    pub tunnel_burst: f64,
    /// Senders on the relay's own machine (loopback) are not limited: they are the operator
    /// (benchmarks, health checks) or a local proxy not named in `trust_proxy`, which would
    /// otherwise make every sender one address.
    pub exempt_loopback: bool,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        AbuseLimits {
            upgrade_rate: limits::UPGRADE_RATE,
            upgrade_burst: limits::UPGRADE_BURST,
            auth_failure_burst: limits::AUTH_FAILURE_BURST,
            auth_failure_refill: limits::AUTH_FAILURE_REFILL,
            max_conns_per_ip: limits::MAX_CONNS_PER_IP,
            max_tunnels_per_token: limits::MAX_TUNNELS_PER_TOKEN,
            tunnel_rate: limits::TUNNEL_RATE,
            tunnel_burst: limits::TUNNEL_BURST,
            exempt_loopback: true,
        }
    }
}

impl AbuseLimits {
    /// No limits at all: for a relay only this machine can reach.
    pub fn none() -> Self {
        AbuseLimits {
            upgrade_rate: 0.0,
            upgrade_burst: 0.0,
            auth_failure_burst: 0.0,
            auth_failure_refill: Duration::ZERO,
            max_conns_per_ip: 0,
            max_tunnels_per_token: 0,
            tunnel_rate: 0.0,
            tunnel_burst: 0.0,
            exempt_loopback: true,
        }
    }
}

/// Relay settings. Every limit is explicit.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Public host (and port, if not the scheme's default) as senders address it, e.g.
    /// `relay.example.com` or `127.0.0.1:8787`.
    pub domain: String,
    /// Scheme of public URLs when the listener itself is plain HTTP (a TLS listener is https).
    pub public_scheme: Scheme,
    /// Form of the public URL reported to clients.
    pub url_style: UrlStyle,
    /// Authentication of tunnel clients.
    pub auth: Auth,
    /// TLS for the listener (then public URLs are https).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Cap on a request body; larger: 413.
    pub max_body: u64,
    /// Deadline for the local target's response head; the relay answers 504 a margin later.
    pub request_timeout: Duration,
    /// Time a sender has to send its request head.
    pub header_read_timeout: Duration,
    /// Time a public connection may read nothing of what the relay writes to it before it
    /// is closed (its answer's share of the tunnel's window comes back).
    pub send_stall_timeout: Duration,
    /// Maximum number of request headers.
    pub max_headers: usize,
    /// Maximum request head size in bytes.
    pub max_head_bytes: usize,
    /// Maximum number of connected tunnels.
    pub max_tunnels: usize,
    /// How long in-flight requests may drain on shutdown.
    pub shutdown_grace: Duration,
    /// HTTP/2 PING interval on each tunnel.
    pub ping_interval: Duration,
    /// A tunnel silent this long after a PING is dead.
    pub ping_timeout: Duration,
    /// How long a released name stays reserved for the token that last held it.
    pub name_hold: Duration,
    /// How long a request waits for a client that was connected within the last minute to
    /// come back (0: no hold; at most [`limits::MAX_HOLD`], and never more than half the
    /// request timeout). The time held is taken off the request's deadline, so the sender's
    /// own deadline is never passed.
    pub hold: Duration,
    /// Requests held at once per tunnel; more get 503 at once.
    pub hold_max: usize,
    /// Where requests that arrive while a tunnel's client is offline are kept, sealed to the
    /// tunnel's owner, until it reconnects (`None`: not kept, 503 only).
    pub keep_dir: Option<std::path::PathBuf>,
    /// Bounds of what is kept per tunnel.
    pub keep: crate::keep::KeepLimits,
    /// Names one token may keep reserved while unused (oldest released first to go).
    pub max_reserved_per_token: usize,
    /// Where name reservations are kept across restarts (JSON, 0600, written atomically);
    /// `None`: in memory only.
    pub state_file: Option<std::path::PathBuf>,
    /// Limits against abuse.
    pub abuse: AbuseLimits,
    /// New token sets to switch to while running (a reloaded tokens file): tunnels of tokens
    /// no longer in the set are closed, and their names freed.
    pub token_updates: Option<tokio::sync::watch::Receiver<TokenSet>>,
    /// Proxies in front of the relay whose `X-Forwarded-For` is believed (addresses or CIDR
    /// ranges). Everyone else's `X-Forwarded-For` is only passed on, never used.
    pub trust_proxy: Vec<ipnet::IpNet>,
    /// `/_twk/health` reports version, protocol and tunnel count (default: only `ok`).
    pub health_detail: bool,
    /// Membership of a relay cluster (names leased through NATS; requests for tunnels held
    /// by other nodes sent there). `None`: the relay runs alone.
    pub cluster: Option<Arc<twk_cluster::Cluster>>,
}

impl RelayConfig {
    /// Defaults from [`twk_protocol::limits`] for a relay at `domain`.
    pub fn new(domain: impl Into<String>, auth: Auth) -> Self {
        RelayConfig {
            domain: domain.into(),
            public_scheme: Scheme::Http,
            url_style: UrlStyle::Subdomain,
            auth,
            tls: None,
            max_body: limits::DEFAULT_MAX_BODY,
            request_timeout: limits::DEFAULT_REQUEST_TIMEOUT,
            header_read_timeout: limits::HEADER_READ_TIMEOUT,
            send_stall_timeout: limits::SEND_STALL_TIMEOUT,
            max_headers: limits::MAX_HEADERS,
            max_head_bytes: limits::MAX_HEAD_BYTES,
            max_tunnels: 10_000,
            shutdown_grace: limits::SHUTDOWN_GRACE,
            ping_interval: limits::PING_INTERVAL,
            ping_timeout: limits::PING_TIMEOUT,
            name_hold: limits::NAME_HOLD,
            hold: limits::DEFAULT_HOLD,
            hold_max: limits::DEFAULT_HOLD_MAX,
            keep_dir: None,
            keep: crate::keep::KeepLimits::default(),
            max_reserved_per_token: limits::MAX_RESERVED_PER_TOKEN,
            state_file: None,
            abuse: AbuseLimits::default(),
            token_updates: None,
            trust_proxy: Vec::new(),
            health_detail: false,
            cluster: None,
        }
    }

    /// Checks the configuration before anything is bound.
    pub fn validate(&self) -> Result<(), String> {
        let host = self.domain_host();
        if host.is_empty()
            || self
                .domain
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c.is_control())
        {
            return Err(format!("invalid domain {:?}", self.domain));
        }
        if self.max_body == 0 {
            return Err("max body must be at least 1 byte".into());
        }
        if self.request_timeout.is_zero() {
            return Err("request timeout must be positive".into());
        }
        if self.hold > limits::MAX_HOLD {
            return Err(format!(
                "hold must be at most {} s: a held request must still be answered within \
                 GitHub's and Bandwidth's 10 s deadlines",
                limits::MAX_HOLD.as_secs()
            ));
        }
        if self.max_head_bytes < 8192 {
            return Err("max head size must be at least 8192 bytes".into());
        }
        let a = &self.abuse;
        for (what, v) in [
            ("upgrade rate", a.upgrade_rate),
            ("upgrade burst", a.upgrade_burst),
            ("auth failure burst", a.auth_failure_burst),
            ("tunnel rate", a.tunnel_rate),
            ("tunnel burst", a.tunnel_burst),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{what} must be a number >= 0, not {v}"));
            }
        }
        if a.tunnel_rate > 0.0 && a.tunnel_burst < 1.0 {
            return Err("tunnel burst must be at least 1 when a tunnel rate is set".into());
        }
        if a.upgrade_rate > 0.0 && a.upgrade_burst < 1.0 {
            return Err("upgrade burst must be at least 1 when an upgrade rate is set".into());
        }
        if let Auth::Tokens(t) = &self.auth
            && t.is_empty()
        {
            return Err("no tunnel tokens configured".into());
        }
        Ok(())
    }

    /// The scheme of public URLs.
    pub fn scheme(&self) -> Scheme {
        if self.tls.is_some() {
            Scheme::Https
        } else {
            self.public_scheme
        }
    }

    /// The domain without its port, lowercased.
    pub fn domain_host(&self) -> String {
        strip_port(&self.domain).to_ascii_lowercase()
    }

    /// The public URL of tunnel `name`.
    pub fn public_url(&self, name: &str) -> String {
        let scheme = self.scheme().as_str();
        match self.url_style {
            UrlStyle::Subdomain => format!("{scheme}://{name}.{}", self.domain),
            UrlStyle::Path => format!("{scheme}://{}/t/{name}", self.domain),
        }
    }
}

/// `host:port` → `host`; `[::1]:80` → `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls() {
        let mut c = RelayConfig::new("relay.example.com", Auth::Open);
        c.public_scheme = Scheme::Https;
        assert_eq!(c.public_url("abc"), "https://abc.relay.example.com");
        c.url_style = UrlStyle::Path;
        assert_eq!(c.public_url("abc"), "https://relay.example.com/t/abc");
    }

    #[test]
    fn strip_port_handles_ipv6_and_names() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("127.0.0.1:1"), "127.0.0.1");
    }

    #[test]
    fn validation_catches_bad_configs() {
        assert!(RelayConfig::new("", Auth::Open).validate().is_err());
        assert!(RelayConfig::new("a b", Auth::Open).validate().is_err());
        assert!(
            RelayConfig::new("x.y", Auth::Tokens(TokenSet::default()))
                .validate()
                .is_err()
        );
        assert!(RelayConfig::new("x.y", Auth::Open).validate().is_ok());
    }
}
