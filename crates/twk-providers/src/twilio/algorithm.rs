//! Which HMAC a Twilio signature uses. Twilio signs with HMAC-SHA1 and the auth token, unless
//! the webhook is signed with a SharedKey (Webhooks configuration API, public beta): then the
//! request carries `X-Twilio-Webhooks-Signature-Settings: key=KS…,algorithm=HMAC_SHA256` and the
//! SDKs validate with the algorithm it names.

use crate::request::RequestView;
use crate::util::{hmac_sha1, hmac_sha256};

/// The header that names the algorithm (and the SharedKey id).
pub(crate) const SETTINGS: &str = "X-Twilio-Webhooks-Signature-Settings";

/// The HMAC of an `X-Twilio-Signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// The legacy auth-token signature (no settings header, or `algorithm=HMAC_SHA1`).
    Sha1,
    /// `algorithm=HMAC_SHA256` (a SharedKey signature).
    Sha256,
}

impl Algorithm {
    /// The MAC over `msg`.
    pub(crate) fn mac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => hmac_sha1(key, msg),
            Algorithm::Sha256 => hmac_sha256(key, msg),
        }
    }

    /// The name Twilio uses in the settings header.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "HMAC_SHA1",
            Algorithm::Sha256 => "HMAC_SHA256",
        }
    }

    /// The other one, to explain a signature made with the wrong algorithm.
    pub(crate) const fn other(self) -> Self {
        match self {
            Algorithm::Sha1 => Algorithm::Sha256,
            Algorithm::Sha256 => Algorithm::Sha1,
        }
    }
}

/// What the settings header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub algorithm: Algorithm,
    /// The SharedKey id (`key=KS…`), when the header names one.
    pub key_id: Option<String>,
    /// Whether the request carries the header at all.
    pub present: bool,
}

/// Reads the settings header the way twilio-python's `get_signature_algorithm` does: items
/// separated by `,`, each `name=value` split at the first `=`, names and values trimmed, the
/// algorithm name compared case-insensitively; no header, an empty one or one without an
/// `algorithm` item means HMAC_SHA1. `Err` carries an algorithm twk does not know (the SDKs
/// reject the request then, so twk must not fall back to SHA-1).
pub(crate) fn settings(req: &RequestView<'_>) -> Result<Settings, String> {
    let Some(raw) = req.header(SETTINGS) else {
        return Ok(Settings {
            algorithm: Algorithm::Sha1,
            key_id: None,
            present: false,
        });
    };
    let text = std::str::from_utf8(raw).map_err(|_| "(not text)".to_owned())?;
    let mut algorithm = Algorithm::Sha1;
    let mut key_id = None;
    for item in text.split(',') {
        let Some((name, value)) = item.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match name.trim() {
            // The first non-empty algorithm wins, as in the SDK's loop.
            "algorithm" if !value.is_empty() => {
                algorithm = match value.to_ascii_uppercase().as_str() {
                    "HMAC_SHA1" => Algorithm::Sha1,
                    "HMAC_SHA256" => Algorithm::Sha256,
                    _ => return Err(value.to_owned()),
                };
                break;
            }
            "key" if key_id.is_none() && !value.is_empty() => key_id = Some(value.to_owned()),
            _ => {}
        }
    }
    Ok(Settings {
        algorithm,
        key_id,
        present: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str) -> Result<Settings, String> {
        settings(
            &RequestView::new("POST", "https://e.com/", b"")
                .with_header(SETTINGS, value.as_bytes()),
        )
    }

    #[test]
    fn reads_the_algorithm_like_the_sdk() {
        let s = read("key=KS1,algorithm=HMAC_SHA256").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.algorithm, Algorithm::Sha256);
        assert_eq!(s.key_id.as_deref(), Some("KS1"));
        assert_eq!(
            read(" algorithm = hmac_sha256 ").map(|s| s.algorithm),
            Ok(Algorithm::Sha256)
        );
        assert_eq!(
            read("algorithm=HMAC_SHA1").map(|s| s.algorithm),
            Ok(Algorithm::Sha1)
        );
        // No algorithm item, or an empty one: the legacy SHA-1.
        assert_eq!(read("key=KS1").map(|s| s.algorithm), Ok(Algorithm::Sha1));
        assert_eq!(
            read("algorithm=,key=KS1").map(|s| s.algorithm),
            Ok(Algorithm::Sha1)
        );
        assert_eq!(read("").map(|s| s.algorithm), Ok(Algorithm::Sha1));
        assert_eq!(read("algorithm=HMAC_SHA512"), Err("HMAC_SHA512".to_owned()));
        let none = settings(&RequestView::new("POST", "https://e.com/", b""));
        assert_eq!(none.map(|s| s.present), Ok(false));
    }
}
