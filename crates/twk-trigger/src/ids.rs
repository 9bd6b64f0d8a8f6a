//! Identifiers in each provider's own shape (`evt_…`, `YF` + 32 hex, a GUID, …), the
//! timestamps they print, and generated secrets for when none is configured.

use base64::Engine as _;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use twk_providers::Provider;

/// `prefix` followed by `n` random ASCII letters and digits (`evt_1Qx…`, `msg_…`).
pub fn alnum(prefix: &str, n: usize) -> String {
    let tail: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// A Twilio SID: two letters and 32 lowercase hex digits (`YF0123…`).
pub fn twilio_sid(prefix: &str) -> String {
    let raw: [u8; 16] = rand::random();
    format!("{prefix}{}", hex::encode(raw))
}

/// A random version-4 GUID, as GitHub's `X-GitHub-Delivery` and Shopify's webhook ids.
pub fn guid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A number with `n` random decimal digits (phone numbers, Slack trigger ids).
pub fn digits(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// RFC 3339 UTC with milliseconds, as Bandwidth and Standard Webhooks print time.
pub fn rfc3339_ms(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// RFC 3339 UTC in whole seconds (Shopify, GitHub, Twilio CloudEvents).
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A fresh secret in the shape `provider` issues (what a user would paste from its
/// dashboard), for a trigger with none configured.
pub fn generated_secret(provider: Provider) -> String {
    let raw: [u8; 24] = rand::random();
    match provider {
        Provider::Stripe => alnum("whsec_", 32),
        Provider::StandardWebhooks | Provider::Svix => format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ),
        Provider::AuthyWebhook => alnum("WSK_", 40),
        Provider::Bandwidth => format!("twk:{}", alnum("", 20)),
        Provider::Twilio | Provider::Slack | Provider::Shopify => hex::encode(&raw[..16]),
        Provider::AuthyOnetouch | Provider::Github => alnum("", 32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_providers_shapes() {
        let sid = twilio_sid("YF");
        assert_eq!(sid.len(), 34);
        assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        let g = guid();
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
        assert_eq!(alnum("evt_", 24).len(), 28);
        assert_eq!(digits(10).len(), 10);
        assert_eq!(rfc3339_ms(1_700_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn generated_secrets_are_accepted_by_their_schemes() {
        for p in Provider::ALL {
            let s = generated_secret(p);
            assert!(!s.is_empty(), "{p:?}");
            if p == Provider::Bandwidth {
                assert!(s.contains(':'));
            }
        }
    }
}
