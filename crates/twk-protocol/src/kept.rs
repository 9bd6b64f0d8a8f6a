//! Requests the relay keeps while a tunnel's client is offline, sealed to the tunnel's owner.
//!
//! The client holds an X25519 key pair ([`OwnerKey`], its secret never leaves the client) and
//! sends the public half at every connect ([`crate::upgrade::OWNER_KEY`]). A request that
//! arrives while no client is connected (and is answered 503) is kept by the relay as a
//! [`KeptRequest`] sealed to that public key ([`OwnerPublic::seal`]: libsodium's sealed box,
//! X25519 + XSalsa20-Poly1305, from `crypto_box`): the relay can write it but never read it
//! back, so bodies at rest are unreadable to the relay's operator. On reconnect the relay
//! sends each one to the client ([`crate::meta::KEPT`]), which opens it and records it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_box::aead::OsRng;
use serde::{Deserialize, Serialize};

/// Why a kept request cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    /// An owner key header or file that is not 32 bytes of base64.
    #[error("not an owner key (32 bytes, base64)")]
    BadKey,
    /// The box does not open with this key (sealed to another key, or altered).
    #[error("the kept request does not open with this tunnel's key")]
    Open,
    /// Sealing failed.
    #[error("cannot seal the kept request")]
    Seal,
    /// The opened record is not a kept request.
    #[error("the kept request is malformed")]
    Malformed(#[source] serde_json::Error),
}

/// The client's secret key. Its `Debug` never shows it.
pub struct OwnerKey(crypto_box::SecretKey);

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerKey(***)")
    }
}

impl Clone for OwnerKey {
    fn clone(&self) -> Self {
        OwnerKey(crypto_box::SecretKey::from(self.0.to_bytes()))
    }
}

impl OwnerKey {
    /// A fresh random key.
    pub fn generate() -> OwnerKey {
        OwnerKey(crypto_box::SecretKey::generate(&mut OsRng))
    }

    /// The key from its 32 bytes, base64 (how it is stored).
    pub fn from_base64(s: &str) -> Result<OwnerKey, KeptError> {
        let bytes: [u8; 32] = B64
            .decode(s.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(KeptError::BadKey)?;
        Ok(OwnerKey(crypto_box::SecretKey::from(bytes)))
    }

    /// The key's 32 bytes, base64, for storing (0600).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    /// The public half, sent to the relay.
    pub fn public(&self) -> OwnerPublic {
        OwnerPublic(*self.0.public_key().as_bytes())
    }

    /// Opens a request sealed to this key.
    pub fn open(&self, sealed: &[u8]) -> Result<KeptRequest, KeptError> {
        let plain = self.0.unseal(sealed).map_err(|_| KeptError::Open)?;
        serde_json::from_slice(&plain).map_err(KeptError::Malformed)
    }
}

/// A tunnel owner's public key, as the relay knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerPublic([u8; 32]);

impl OwnerPublic {
    /// From the upgrade header or the relay's state file (32 bytes, base64).
    pub fn parse(s: &str) -> Result<OwnerPublic, KeptError> {
        let bytes: [u8; 32] = B64
            .decode(s.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(KeptError::BadKey)?;
        Ok(OwnerPublic(bytes))
    }

    /// Base64, for the header and the state file.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> OwnerPublic {
        OwnerPublic(bytes)
    }

    /// Seals `request` so that only the owner's secret key opens it.
    pub fn seal(&self, request: &KeptRequest) -> Result<Vec<u8>, KeptError> {
        let plain = serde_json::to_vec(request).map_err(KeptError::Malformed)?;
        crypto_box::PublicKey::from(self.0)
            .seal(&mut OsRng, &plain)
            .map_err(|_| KeptError::Seal)
    }
}

/// A request as the relay received it while the tunnel was offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRequest {
    /// The relay's id for it (de-duplication across hand-offs).
    pub request_id: String,
    /// When the relay received its head, Unix ms.
    pub received_ms: i64,
    /// Method.
    pub method: String,
    /// Path and query as it would have been forwarded (routing prefix removed).
    pub path: String,
    /// The exact public URL the sender used.
    pub public_url: String,
    /// The sender's address as the relay saw it.
    pub remote_addr: String,
    /// Headers in order, values as bytes (base64 in the record).
    #[serde(with = "pairs_b64")]
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (base64 in the record).
    #[serde(with = "bytes_b64")]
    pub body: Vec<u8>,
    /// The status the sender was answered (503).
    pub answered: u16,
}

mod bytes_b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(b))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod pairs_b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        h: &[(String, Vec<u8>)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let v: Vec<(&str, String)> = h.iter().map(|(k, v)| (k.as_str(), B64.encode(v))).collect();
        v.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        let v: Vec<(String, String)> = Vec::deserialize(d)?;
        v.into_iter()
            .map(|(k, v)| Ok((k, B64.decode(v).map_err(serde::de::Error::custom)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> KeptRequest {
        KeptRequest {
            request_id: "r-1".into(),
            received_ms: 1_700_000_000_000,
            method: "POST".into(),
            path: "/hook?x=1".into(),
            public_url: "https://relay.test/t/demo/hook?x=1".into(),
            remote_addr: "203.0.113.9:4711".into(),
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: b"{\"marker\":\"PLAINTEXT-MARKER\"}\xff".to_vec(),
            answered: 503,
        }
    }

    #[test]
    fn only_the_owner_opens_what_was_sealed_to_it() {
        let owner = OwnerKey::generate();
        let sealed = owner.public().seal(&request()).expect("seal");
        assert!(
            !sealed.windows(16).any(|w| w == b"PLAINTEXT-MARKER"),
            "sealed bytes hold no plaintext"
        );
        assert_eq!(owner.open(&sealed).expect("open"), request());
        let other = OwnerKey::generate();
        assert!(matches!(other.open(&sealed), Err(KeptError::Open)));
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(owner.open(&altered).is_err());
    }

    #[test]
    fn keys_round_trip_and_hostile_ones_are_refused() {
        let k = OwnerKey::generate();
        let again = OwnerKey::from_base64(&k.to_base64()).expect("key");
        assert_eq!(again.public(), k.public());
        assert_eq!(
            OwnerPublic::parse(&k.public().to_base64()).expect("pub"),
            k.public()
        );
        for bad in [
            "",
            "x",
            "AAAA",
            &B64.encode([0u8; 31]),
            &B64.encode([0u8; 33]),
        ] {
            assert!(OwnerPublic::parse(bad).is_err(), "{bad}");
            assert!(OwnerKey::from_base64(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{k:?}"), "OwnerKey(***)");
    }
}
