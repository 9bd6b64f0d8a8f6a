//! Exports of stored exchanges: `log --json` objects, HAR 1.2, curl commands.
//!
//! Every export redacts secret-bearing headers with [`crate::redact`] unless asked to reveal
//! them.

pub mod curl;
pub mod har;
pub mod json;

use crate::exchange::Header;
use base64::Engine as _;

/// Bytes (a body, a header value) as text when they are valid UTF-8, else base64.
pub(crate) enum BodyText {
    Text(String),
    Base64(String),
}

pub(crate) fn body_text(bytes: &[u8]) -> BodyText {
    match std::str::from_utf8(bytes) {
        Ok(s) => BodyText::Text(s.to_owned()),
        Err(_) => BodyText::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

/// The authority (`host[:port]`, without userinfo) of an absolute URL.
pub(crate) fn authority_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!authority.is_empty()).then_some(authority)
}

/// `headers` with every `Host` set to `authority` (in place, so the order stays the
/// captured one). The recorded `Host` is the one the local app saw; an export or a request
/// aimed at another URL must name that URL's host, or the two disagree.
pub(crate) fn with_host(headers: &[Header], authority: &str) -> Vec<Header> {
    headers
        .iter()
        .map(|h| {
            if h.name.eq_ignore_ascii_case("host") {
                Header {
                    name: h.name.clone(),
                    value: authority.as_bytes().to_vec(),
                }
            } else {
                h.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(authority_of("https://a.example/t/x?q"), Some("a.example"));
        assert_eq!(authority_of("http://u:p@h:8080#f"), Some("h:8080"));
        assert_eq!(authority_of("http://[::1]:3000/"), Some("[::1]:3000"));
        assert_eq!(authority_of("/relative"), None);
        assert_eq!(authority_of("http:///x"), None);
    }
}
