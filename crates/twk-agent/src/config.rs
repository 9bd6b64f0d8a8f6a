//! Agent configuration: the relay to dial, the local target, forwarding options.

use std::fmt;
use std::time::Duration;
use twk_protocol::limits;

/// How the `Host` header reaches the local target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostHeader {
    /// `Host` is the target's `host:port` (what most local servers expect).
    #[default]
    Rewrite,
    /// `Host` is the public host the sender used.
    Preserve,
}

/// Why a target could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a port, `host:port` or URL.
    #[error(
        "invalid target {0:?}: expected a port (3000), host:port (localhost:3000) or a URL (http://localhost:3000)"
    )]
    Invalid(String),
    /// A URL scheme other than http.
    #[error("unsupported target scheme in {0:?}: only http:// local targets are supported")]
    Scheme(String),
    /// A port without a host (`:3000`, `http://:3000`): refused rather than guessed.
    #[error(
        "invalid target {target:?}: there is no host before the port; write `{port}` or `localhost:{port}`"
    )]
    NoHost {
        /// The target as given.
        target: String,
        /// The port as given.
        port: String,
    },
    /// A query or fragment: each request's own path and query are appended to the target's
    /// base path, so a query there would end up in the middle of the forwarded path.
    #[error(
        "invalid target {0:?}: remove the query or fragment (`?…`, `#…`); each webhook's own path and query are appended to the target"
    )]
    QueryOrFragment(String),
    /// A base path without the URL form.
    #[error("invalid target {0:?}: a base path needs the URL form, e.g. http://{0}")]
    PathNeedsScheme(String),
}

/// The local target requests are forwarded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, e.g. `localhost:3000`.
    pub authority: String,
    /// Path prefix from a URL target (`http://localhost:3000/api` → `/api`), without a
    /// trailing slash; empty when none.
    pub base_path: String,
}

impl Target {
    /// Parses `3000`, `host:port` or `http://host:port[/base]`.
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        let s = s.trim();
        let invalid = || TargetError::Invalid(s.to_string());
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let port: u16 = s.parse().map_err(|_| invalid())?;
            if port == 0 {
                return Err(invalid());
            }
            return Ok(Target {
                authority: format!("localhost:{port}"),
                base_path: String::new(),
            });
        }
        let (rest, had_scheme) = match s.split_once("://") {
            Some(("http", rest)) => (rest, true),
            Some(_) => return Err(TargetError::Scheme(s.to_string())),
            None => (s, false),
        };
        // No user info, query or fragment: a target is a host, a port and a base path.
        if rest.contains(['?', '#']) {
            return Err(TargetError::QueryOrFragment(s.to_string()));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if let Some(port) = authority.strip_prefix(':')
            && !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(TargetError::NoHost {
                target: s.to_string(),
                port: port.to_string(),
            });
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid());
        }
        if !had_scheme && !path.is_empty() {
            return Err(TargetError::PathNeedsScheme(s.to_string()));
        }
        let uri: http::uri::Authority = authority.parse().map_err(|_| invalid())?;
        if uri.host().is_empty() {
            return Err(invalid());
        }
        let authority = match uri.port_u16() {
            Some(0) => return Err(invalid()),
            Some(_) => uri.as_str().to_string(),
            None if had_scheme => format!("{}:80", uri.host()),
            None => return Err(invalid()),
        };
        Ok(Target {
            authority,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The local URL for a request whose target (path and query) was `path_and_query`.
    ///
    /// The URL is built from parts: scheme and authority are always the target's, and the
    /// path is parsed only as a path, so no byte of it (`*`, `//evil/x`, `@x`, `\x`, `:80`)
    /// can ever change the host or port that is contacted.
    ///
    /// ```
    /// let t = twk_agent::Target::parse("3000").unwrap();
    /// let u = t.local_uri("//evil.example:80/x").unwrap();
    /// assert_eq!(u.authority().unwrap().as_str(), "localhost:3000");
    /// assert_eq!(u.path(), "//evil.example:80/x");
    /// ```
    pub fn local_uri(&self, path_and_query: &str) -> Result<http::Uri, http::Error> {
        http::Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(self.authority.as_str())
            .path_and_query(self.local_path(path_and_query)?)
            .build()
    }

    /// The path and query of [`Target::local_uri`]: the base path, then `path_and_query`,
    /// parsed only as a path. As an origin-form URI it is what the request line to the
    /// target carries, without building and parsing the authority for each request.
    pub fn local_path(
        &self,
        path_and_query: &str,
    ) -> Result<http::uri::PathAndQuery, http::uri::InvalidUri> {
        let mut pq = String::with_capacity(self.base_path.len() + path_and_query.len() + 1);
        pq.push_str(&self.base_path);
        if !path_and_query.starts_with('/') {
            pq.push('/');
        }
        pq.push_str(path_and_query);
        pq.parse()
    }

    /// `http://host:port[/base]`.
    pub fn url(&self) -> String {
        // Joined, not `format!`ted: every exchange's record names its target.
        ["http://", &self.authority, &self.base_path].concat()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// Where the relay is: `ws://`, `wss://`, `http://` or `https://` plus host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl {
    /// True for `wss://` / `https://`.
    pub tls: bool,
    /// Host name (for TLS server name and `Host`).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl RelayUrl {
    /// Parses a relay URL.
    pub fn parse(s: &str) -> Result<RelayUrl, String> {
        let uri: http::Uri = s
            .trim()
            .parse()
            .map_err(|e| format!("invalid relay URL {s:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("wss" | "https") => true,
            Some("ws" | "http") => false,
            _ => {
                return Err(format!(
                    "invalid relay URL {s:?}: expected wss://, ws://, https:// or http://"
                ));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("invalid relay URL {s:?}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(RelayUrl { tls, host, port })
    }

    /// `ws://host:port` or `wss://host:port`, for messages.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// The websocket URL of the tunnel endpoint.
    pub fn connect_url(&self) -> String {
        format!("{}{}", self.origin(), twk_protocol::CONNECT_PATH)
    }
}

/// Agent settings.
#[derive(Clone)]
pub struct AgentConfig {
    /// The relay to dial.
    pub relay: RelayUrl,
    /// Other nodes of the same relay cluster (they serve the same public URLs): when the
    /// relay in use cannot be reached or its session ends, the next one is dialed, in turn.
    pub fallback_relays: Vec<RelayUrl>,
    /// Bearer token for the relay (never printed).
    pub token: Option<String>,
    /// Tunnel name to claim; the relay assigns one when `None`.
    pub name: Option<String>,
    /// Local target.
    pub target: Target,
    /// Host header handling.
    pub host_header: HostHeader,
    /// Extra CA certificates (PEM) to trust for `wss://`.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Dial this address instead of resolving the relay's host (like curl's `--connect-to`;
    /// TLS still verifies the host name). For a relay whose DNS is not there yet.
    pub connect_to: Option<std::net::SocketAddr>,
    /// Deadline for the target's response head when the relay does not send one.
    pub request_timeout: Duration,
    /// How many body bytes of each request and response are kept for the observer.
    pub capture_cap: usize,
    /// Whether each body's SHA-256 is computed (reported exchanges carry it). The capture
    /// store needs it (retries grouped by body, handshakes paired, exports); without a store
    /// nothing reads it, and for large bodies it was the client's largest cost: `false`
    /// leaves `sha256` empty.
    pub hash_bodies: bool,
    /// How many captured body bytes the exchanges between tap and hand-off may hold together
    /// (default 16 MiB: sixteen 1 MiB bodies at once; beyond it copies are truncated, never
    /// forwarding slowed).
    pub capture_budget: usize,
    /// Requests the local target may have at once (each is a connection); more wait in order.
    pub max_target_requests: usize,
    /// How long in-flight requests may finish on shutdown.
    pub shutdown_grace: Duration,
    /// Provider secrets for signature checks (masked in Debug).
    pub secrets: std::sync::Arc<twk_providers::Secrets>,
    /// twk's test secrets as they are now (they appear while the tunnel runs: `trigger`
    /// makes one the first time a provider needs it), tried for a provider `secrets` has
    /// none for. `None`: no test secrets.
    pub test_secrets: Option<TestSecretLookup>,
    /// Basic-auth credentials twk enforces itself (the 401 challenge), if any.
    pub basic_auth: Option<crate::BasicAuth>,
    /// HTTP/2 PING interval on the tunnel.
    pub ping_interval: Duration,
    /// The relay is dead when silent this long after a PING.
    pub ping_timeout: Duration,
    /// This client's key: its public half goes to the relay, which keeps requests that
    /// arrive while the client is offline sealed to it and hands them over on reconnect
    /// ([`crate::Observer::missed`]). `None`: nothing is kept for this client.
    pub owner_key: Option<twk_protocol::kept::OwnerKey>,
}

/// The test secret of a provider now, if it has one (see [`AgentConfig::test_secrets`]).
pub type TestSecretLookup =
    std::sync::Arc<dyn Fn(twk_providers::Provider) -> Option<twk_providers::Secret> + Send + Sync>;

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("relay", &self.relay)
            .field("fallback_relays", &self.fallback_relays)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("name", &self.name)
            .field("target", &self.target)
            .field("host_header", &self.host_header)
            .field("request_timeout", &self.request_timeout)
            .field("capture_cap", &self.capture_cap)
            .field("basic_auth", &self.basic_auth)
            .field("test_secrets", &self.test_secrets.is_some())
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// A configuration with defaults for everything but relay and target.
    pub fn new(relay: RelayUrl, target: Target) -> Self {
        AgentConfig {
            relay,
            fallback_relays: Vec::new(),
            token: None,
            name: None,
            target,
            host_header: HostHeader::Rewrite,
            extra_ca_pem: None,
            connect_to: None,
            request_timeout: limits::DEFAULT_REQUEST_TIMEOUT,
            capture_cap: 1024 * 1024,
            hash_bodies: true,
            capture_budget: 8 * 1024 * 1024,
            max_target_requests: limits::MAX_TARGET_REQUESTS,
            shutdown_grace: limits::SHUTDOWN_GRACE,
            secrets: Default::default(),
            test_secrets: None,
            basic_auth: None,
            ping_interval: limits::PING_INTERVAL,
            ping_timeout: limits::PING_TIMEOUT,
            owner_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("3000").unwrap().url(),
            "http://localhost:3000"
        );
        assert_eq!(
            Target::parse("127.0.0.1:8080").unwrap().url(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            Target::parse("http://localhost:3000/api/").unwrap().url(),
            "http://localhost:3000/api"
        );
        assert_eq!(
            Target::parse("http://example").unwrap().url(),
            "http://example:80"
        );
        assert_eq!(Target::parse("[::1]:9").unwrap().authority, "[::1]:9");
        for bad in [
            "",
            "0",
            "99999",
            "localhost",
            "host:port",
            "ftp://x:1",
            "https://x:1",
            "a b:1",
            "x:1/path",
            "http://user@h:1",
            "http://h:1/a?b",
            "http://h:1/#x",
            "http://:3000",
            ":3000",
            "localhost:3000?x=1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
        // The mistakes of issue 12 item 6 are named, with what to write instead.
        for no_host in [":3000", "http://:3000/base"] {
            let e = Target::parse(no_host).unwrap_err().to_string();
            assert!(e.contains("`3000` or `localhost:3000`"), "{e}");
        }
        for query in ["http://localhost:3000/base?x=1", "localhost:3000#top"] {
            assert!(
                matches!(Target::parse(query), Err(TargetError::QueryOrFragment(_))),
                "{query}"
            );
        }
        assert!(matches!(
            Target::parse("localhost:3000/base"),
            Err(TargetError::PathNeedsScheme(_))
        ));
    }

    #[test]
    fn relay_urls() {
        let r = RelayUrl::parse("wss://relay.example.com").unwrap();
        assert!(r.tls);
        assert_eq!(r.port, 443);
        assert_eq!(r.connect_url(), "wss://relay.example.com:443/_twk/connect");
        let r = RelayUrl::parse("http://127.0.0.1:8787").unwrap();
        assert!(!r.tls);
        assert_eq!(r.connect_url(), "ws://127.0.0.1:8787/_twk/connect");
        assert!(RelayUrl::parse("ftp://x").is_err());
        assert!(RelayUrl::parse("nonsense").is_err());
    }

    #[test]
    fn debug_masks_the_token() {
        let mut c = AgentConfig::new(
            RelayUrl::parse("ws://a:1").unwrap(),
            Target::parse("1").unwrap(),
        );
        c.token = Some("supersecret".into());
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
