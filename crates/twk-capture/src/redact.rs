//! The one redaction rule shared by `log --json`, HAR and curl exports (and the inspector).
//!
//! Secret-bearing headers keep their name (and for `Authorization`-style headers the scheme,
//! e.g. `Basic`) but their value is replaced by [`REDACTED`]. Bodies are not redacted.

use crate::exchange::Header;
use std::borrow::Cow;

/// The text that replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// Header names (lowercase) whose values are always secret, besides every provider's
/// signature headers ([`twk_providers::Provider::signature_headers`]).
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-twk-token",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// Parts of a header name that mark it secret (see [`is_secret_header`]).
const SECRET_FRAGMENTS: &[&str] = &[
    "signature",
    "hmac",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api-key",
    "access-key",
    "private-key",
];

/// Whether a header with this name carries a secret (case-insensitive).
///
/// Besides the fixed list and the providers' signature headers, this matches any name
/// containing `signature`, `hmac`, `secret`, `password`, `passwd`, `apikey`, `api-key`,
/// `access-key` or `private-key`, and any ending in `token` (GitLab sends its webhook secret
/// as `X-Gitlab-Token`, Google Channels `X-Goog-Channel-Token`) but an idempotency token
/// (Twilio's `I-Twilio-Idempotency-Token` names a delivery). A bare `-key` is not enough:
/// `Idempotency-Key` is worth seeing.
pub fn is_secret_header(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    SECRET_HEADERS.contains(&lower.as_str())
        || twk_providers::Provider::ALL
            .iter()
            .any(|p| p.signature_headers().contains(&lower.as_str()))
        || SECRET_FRAGMENTS.iter().any(|frag| lower.contains(frag))
        || (lower.ends_with("token") && !lower.contains("idempotency"))
}

/// The value to show for header `name`: unchanged unless secret; a secret
/// `Authorization`/`Proxy-Authorization` value keeps its scheme (`Basic [REDACTED]`).
pub fn redact_value<'a>(name: &str, value: &'a [u8]) -> Cow<'a, [u8]> {
    if !is_secret_header(name) {
        return Cow::Borrowed(value);
    }
    let lower = name.trim().to_ascii_lowercase();
    if lower == "authorization" || lower == "proxy-authorization" {
        let scheme: Vec<u8> = value
            .iter()
            .copied()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .collect();
        let rest_starts_with_space = value.get(scheme.len()) == Some(&b' ');
        if !scheme.is_empty() && rest_starts_with_space && scheme.len() <= 32 {
            let mut out = scheme;
            out.push(b' ');
            out.extend_from_slice(REDACTED.as_bytes());
            return Cow::Owned(out);
        }
    }
    Cow::Owned(REDACTED.as_bytes().to_vec())
}

/// Redacts a header list, unless `reveal` is set (then it is returned unchanged).
pub fn redact_headers<'a>(headers: &'a [Header], reveal: bool) -> Cow<'a, [Header]> {
    if reveal || !headers.iter().any(|h| is_secret_header(&h.name)) {
        return Cow::Borrowed(headers);
    }
    Cow::Owned(
        headers
            .iter()
            .map(|h| Header {
                name: h.name.clone(),
                value: redact_value(&h.name, &h.value).into_owned(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_providers_signature_headers_are_secret() {
        for p in twk_providers::Provider::ALL {
            for h in p.signature_headers() {
                assert!(is_secret_header(h), "{p:?}: {h}");
                assert!(is_secret_header(&h.to_ascii_uppercase()), "{p:?}: {h}");
            }
        }
    }

    #[test]
    fn known_and_pattern_headers_are_secret() {
        for n in [
            "Authorization",
            "cookie",
            "Set-Cookie",
            "Proxy-Authorization",
            "X-Twilio-Signature",
            "x-authy-signature",
            "Stripe-Signature",
            "X-Hub-Signature",
            "X-Hub-Signature-256",
            "X-Slack-Signature",
            "X-Shopify-Hmac-Sha256",
            "webhook-signature",
            "svix-signature",
            "X-Custom-Signature-V2",
            "X-Webhook-Secret",
            "X-Gitlab-Token",
            "X-Goog-Channel-Token",
            "X-Vault-Token",
            "X-Apikey",
            "X-Access-Key",
        ] {
            assert!(is_secret_header(n), "{n}");
        }
        for n in [
            "Content-Type",
            "X-GitHub-Delivery",
            "I-Twilio-Idempotency-Token",
            "Idempotency-Key",
            "X-Token-Count",
            "webhook-id",
            "X-Slack-Request-Timestamp",
        ] {
            assert!(!is_secret_header(n), "{n}");
        }
    }

    #[test]
    fn authorization_keeps_scheme() {
        assert_eq!(
            redact_value("Authorization", b"Basic dXNlcjpwYXNz").as_ref(),
            b"Basic [REDACTED]"
        );
        assert_eq!(
            redact_value("authorization", b"dXNlcjpwYXNz").as_ref(),
            REDACTED.as_bytes()
        );
        assert_eq!(
            redact_value("Stripe-Signature", b"t=1,v1=abc").as_ref(),
            REDACTED.as_bytes()
        );
        assert_eq!(
            redact_value("Content-Type", b"text/plain").as_ref(),
            b"text/plain"
        );
    }
}
