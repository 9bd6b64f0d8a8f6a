//! The one redaction rule shared by `log --json`, HAR and curl exports (and the inspector).
//!
//! Secret-bearing headers keep their name (and for `Authorization`-style headers the scheme,
//! e.g. `Basic`) but their value is replaced by [`REDACTED`]. So do secret-bearing query
//! parameters of a URL or request target ([`redact_query`]): a receiver that takes its
//! shared secret as `?token=…` or `?key=…` would otherwise give it away in every export.
//! Bodies are not redacted.

use crate::exchange::Header;
use std::borrow::Cow;

/// The text that replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// Whether a header with this name carries a secret (case-insensitive).
///
/// The relay's rule ([`twk_protocol::is_secret_header`], which it uses to keep credentials
/// out of HPACK's tables) and every provider's signature headers: the fixed list, any name
/// containing `signature`, `hmac`, `secret`, `password`, `passwd`, `apikey`, `api-key`,
/// `access-key` or `private-key`, and any ending in `token` (GitLab sends its webhook secret
/// as `X-Gitlab-Token`, Google Channels `X-Goog-Channel-Token`) but an idempotency token
/// (Twilio's `I-Twilio-Idempotency-Token` names a delivery). A bare `-key` is not enough:
/// `Idempotency-Key` is worth seeing.
pub fn is_secret_header(name: &str) -> bool {
    is_secret_lowercase(&name.trim().to_ascii_lowercase())
}

/// [`is_secret_header`] for a name already trimmed and lowercased.
fn is_secret_lowercase(lower: &str) -> bool {
    twk_protocol::is_secret_header(lower)
        || twk_providers::Provider::ALL
            .iter()
            .any(|p| p.signature_headers().contains(&lower))
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

/// Query parameter names (lowercase, `_` read as `-`) whose values are secret, besides
/// those [`is_secret_header`] matches (`access_token`, `client_secret`, `api_key`…).
const SECRET_PARAMS: &[&str] = &[
    "key",
    "sig",
    "auth",
    "pass",
    "pwd",
    "code",
    "jwt",
    "credential",
    "credentials",
];

/// Whether a query parameter with this (percent-decoded) name carries a secret: what
/// [`is_secret_header`] matches (`token`, `*_token`, `*secret*`, `*signature*`, `api_key`…),
/// and `key`, `sig`, `auth`, `pass`, `pwd`, `code` (an OAuth code), `jwt`, `credential(s)`.
pub fn is_secret_param(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase().replace('_', "-");
    SECRET_PARAMS.contains(&name.as_str()) || is_secret_lowercase(&name)
}

/// `target` (a URL, or a path with its query) with the value of each secret query
/// parameter ([`is_secret_param`]) replaced by `%5BREDACTED%5D`, which decodes to
/// [`REDACTED`]; unchanged if `reveal` is set or nothing is secret. Names, order, separators
/// and the fragment stay as they came.
pub fn redact_query(target: &str, reveal: bool) -> Cow<'_, str> {
    let Some((head, rest)) = target.split_once('?').filter(|_| !reveal) else {
        return Cow::Borrowed(target);
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    // Each name is decoded and looked up once, on one pass that writes as it goes.
    let secret =
        |name: &str| is_secret_param(&String::from_utf8_lossy(&form_decode(name.as_bytes())));
    let mut out = String::with_capacity(target.len());
    let mut redacted = false;
    out.push_str(head);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if secret(name) => {
                redacted = true;
                out.push_str(name);
                out.push_str("=%5BREDACTED%5D");
            }
            _ => out.push_str(pair),
        }
    }
    if !redacted {
        return Cow::Borrowed(target);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// Decodes a query's `%XX` escapes and `+` (form encoding). Invalid escapes are kept
/// literally.
pub(crate) fn form_decode(s: &[u8]) -> Vec<u8> {
    let plus: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus).collect()
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
    fn secret_query_values_are_redacted_and_the_rest_kept_byte_for_byte() {
        let url = "https://h.example/hook?id=7&token=s3cr3t&API_KEY=k&x=a%3Db&access%5Ftoken=t\
                   &sig=ab&flag&code=xyz&key&empty=#frag?token=no";
        assert_eq!(
            redact_query(url, false),
            "https://h.example/hook?id=7&token=%5BREDACTED%5D&API_KEY=%5BREDACTED%5D&x=a%3Db\
             &access%5Ftoken=%5BREDACTED%5D&sig=%5BREDACTED%5D&flag&code=%5BREDACTED%5D&key\
             &empty=#frag?token=no"
        );
        assert_eq!(redact_query(url, true), url);
        for plain in [
            "/hook",
            "/hook?",
            "/hook?a=1&b=2",
            "/hook?tokens_left=3&keyword=x",
        ] {
            assert!(
                matches!(redact_query(plain, false), Cow::Borrowed(_)),
                "{plain}"
            );
        }
        // Hostile: separators only, a name that decodes to nothing valid, a huge query.
        assert_eq!(redact_query("/?&&=&%ff=1&%=2", false), "/?&&=&%ff=1&%=2");
        let long = format!("/h?{}token=1", "a=1&".repeat(50_000));
        assert!(redact_query(&long, false).ends_with("&token=%5BREDACTED%5D"));
    }

    #[test]
    fn secret_params_are_the_secret_headers_and_a_few_query_words() {
        for n in [
            "token",
            "access_token",
            "Client_Secret",
            "api_key",
            "apikey",
            "key",
            "sig",
            "signature",
            "password",
            "pwd",
            "code",
            "hub.verify_token",
            "X-Goog-Channel-Token",
        ] {
            assert!(is_secret_param(n), "{n}");
        }
        for n in [
            "id",
            "event",
            "keyword",
            "page",
            "idempotency_token",
            "hub.mode",
            "state",
        ] {
            assert!(!is_secret_param(n), "{n}");
        }
    }

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
