//! A deliberately literal URL splitter. Signatures cover URLs byte for byte, so nothing here
//! normalises: parts are slices of the original string and rebuilding with no change gives the
//! original back.

/// The parts of `scheme://[userinfo@]host[:port]path[?query][#fragment]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    pub scheme: &'a str,
    pub userinfo: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub fragment: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// Splits an absolute URL; `None` when there is no `scheme://`.
    pub fn parse(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return None;
        }
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport);
        let (before_frag, fragment) = match tail.split_once('#') {
            Some((a, f)) => (a, Some(f)),
            None => (tail, None),
        };
        let (path, query) = match before_frag.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (before_frag, None),
        };
        Some(UrlParts {
            scheme,
            userinfo,
            host,
            port,
            path,
            query,
            fragment,
        })
    }

    /// Rebuilds the URL (identical to the input when nothing was changed).
    pub fn build(&self) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(self.scheme);
        s.push_str("://");
        if let Some(u) = self.userinfo {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(self.host);
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(p);
        }
        s.push_str(self.path);
        if let Some(q) = self.query {
            s.push('?');
            s.push_str(q);
        }
        if let Some(f) = self.fragment {
            s.push('#');
            s.push_str(f);
        }
        s
    }

    /// `scheme://[userinfo@]host[:port]`.
    pub fn origin(&self) -> String {
        UrlParts {
            path: "",
            query: None,
            fragment: None,
            ..*self
        }
        .build()
    }

    /// The default port of the scheme (443 for https/wss, 80 otherwise).
    pub fn default_port(&self) -> &'static str {
        if self.scheme.eq_ignore_ascii_case("https") || self.scheme.eq_ignore_ascii_case("wss") {
            "443"
        } else {
            "80"
        }
    }

    /// Whether the host is a loopback / unspecified / `.localhost` name.
    pub fn is_local(&self) -> bool {
        is_local_host(self.host)
    }

    /// The decoded query parameters (form rules: `+` is a space).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .map(|q| crate::form::decode_pairs(q.as_bytes()))
            .unwrap_or_default()
    }

    /// The raw value of the first query parameter named `name` (not percent-decoded).
    pub fn raw_query_param(&self, name: &str) -> Option<&'a str> {
        self.query?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        })
    }
}

/// Whether a host names this machine.
pub(crate) fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let lower = h.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || lower.starts_with("127.")
        || lower == "0.0.0.0"
        || lower == "::1"
        || lower == "::"
        || lower == "host.docker.internal"
}

/// `host[:port]` split into the host (IPv6 literals keep their brackets) and the port text.
pub(crate) fn split_host_port(hostport: &str) -> (&str, Option<&str>) {
    if hostport.starts_with('[') {
        // IPv6 literal: [::1]:8080
        if let Some(end) = hostport.find(']') {
            let host = &hostport[..=end];
            let rest = &hostport[end + 1..];
            return match rest.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => (host, None),
            };
        }
        return (hostport, None);
    }
    match hostport.rfind(':') {
        Some(i) if hostport[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            (&hostport[..i], Some(&hostport[i + 1..]))
        }
        _ => (hostport, None),
    }
}

/// The URL with any explicit port removed.
pub(crate) fn strip_port(url: &str) -> Option<String> {
    let p = UrlParts::parse(url)?;
    p.port?;
    Some(UrlParts { port: None, ..p }.build())
}

/// The URL with the scheme's default port added, if it has no port.
pub(crate) fn add_default_port(url: &str) -> Option<String> {
    let p = UrlParts::parse(url)?;
    if p.port.is_some() {
        return None;
    }
    let port = p.default_port();
    Some(
        UrlParts {
            port: Some(port),
            ..p
        }
        .build(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_and_splits() {
        for u in [
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            "http://username:password@MyCompany.com:1234/myapp.php?foo=1&bar=2#ct=1",
            "https://[::1]:8443/x",
            "https://example.com",
            "HTTP://a@b.c:443//p?q#f",
        ] {
            assert_eq!(UrlParts::parse(u).unwrap().build(), u);
        }
        let p = UrlParts::parse("https://u:p@h.com:99/a/b?x=1#f").unwrap();
        assert_eq!(p.userinfo, Some("u:p"));
        assert_eq!(p.host, "h.com");
        assert_eq!(p.port, Some("99"));
        assert_eq!(p.path, "/a/b");
        assert_eq!(p.query, Some("x=1"));
        assert_eq!(p.fragment, Some("f"));
        assert!(UrlParts::parse("/relative").is_none());
    }

    #[test]
    fn port_variants() {
        assert_eq!(
            strip_port("https://x.com:1234/a").as_deref(),
            Some("https://x.com/a")
        );
        assert_eq!(
            add_default_port("http://u@x.com/a").as_deref(),
            Some("http://u@x.com:80/a")
        );
        assert_eq!(add_default_port("https://x.com:1/a"), None);
        assert!(
            UrlParts::parse("http://127.0.0.1:3000/")
                .unwrap()
                .is_local()
        );
    }
}
