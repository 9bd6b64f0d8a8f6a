//! The certificate resolver: the current certificate for ordinary handshakes, the
//! TLS-ALPN-01 challenge certificate for the CA's validation handshakes.

use crate::AcmeError;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737). A connection that negotiated it
/// carries no HTTP and must be closed after the handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Serves the current certificate, swapped in place on renewal.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// Domain → challenge certificate, while a TLS-ALPN-01 validation is pending.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// Installs `key` for every ordinary handshake from now on.
    pub fn set_current(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    /// True once a certificate is installed.
    pub fn has_current(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Answers TLS-ALPN-01 validation for `domain` with a certificate carrying `digest`
    /// (SHA-256 of the key authorization) in its acmeIdentifier extension.
    pub(crate) fn add_challenge(&self, domain: &str, digest: &[u8]) -> Result<(), AcmeError> {
        let key = challenge_cert(domain, digest)?;
        self.challenges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_ascii_lowercase(), key);
        Ok(())
    }

    pub(crate) fn clear_challenges(&self) {
        self.challenges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protos| protos.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A certified key from PEM chain and PEM private key.
pub(crate) fn certified_key(chain_pem: &str, key_pem: &str) -> Result<CertifiedKey, AcmeError> {
    let chain = rustls_pemfile::certs(&mut chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AcmeError::Cert(format!("certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(AcmeError::Cert("no certificate in the chain".into()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| AcmeError::Cert(format!("private key: {e}")))?
        .ok_or_else(|| AcmeError::Cert("no private key".into()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| AcmeError::Cert(format!("private key: {e}")))?;
    Ok(CertifiedKey::new(chain, signer))
}

/// The self-signed TLS-ALPN-01 certificate (RFC 8737 §3).
fn challenge_cert(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let err = |e: rcgen::Error| AcmeError::Cert(format!("challenge certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(err)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(Arc::new(certified_key(&cert.pem(), &key.serialize_pem())?))
}
