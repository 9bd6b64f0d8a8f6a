//! rustls configurations with the ring provider, built without touching global state.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Errors while loading certificates and keys.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file held no certificate or key.
    #[error("{0}")]
    Content(String),
    /// rustls refused the configuration.
    #[error("TLS configuration")]
    Rustls(#[from] rustls::Error),
    /// The certificate verifier could not be built.
    #[error("TLS certificate verifier")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Parses every certificate in a PEM document.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
    let certs = certs.map_err(|e| TlsError::Content(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Content("no certificate found in PEM".into()));
    }
    Ok(certs)
}

/// Parses the first private key in a PEM document.
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| TlsError::Content(format!("bad private key PEM: {e}")))?
        .ok_or_else(|| TlsError::Content("no private key found in PEM".into()))
}

/// A server configuration from PEM certificate chain and key. Offers only HTTP/1.1 in ALPN:
/// the public port never speaks HTTP/2 (no Rapid Reset exposure).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = certs_from_pem(cert_pem)?;
    let key = key_from_pem(key_pem)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A server configuration from PEM files.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_from_pem(&read(cert)?, &read(key)?)
}

/// The DNS names the first certificate of the PEM file `cert` is for: its subjectAltName
/// entries, lowercased, wildcards as written (`*.example.com`).
pub fn certificate_names(cert: &Path) -> Result<Vec<String>, TlsError> {
    use x509_parser::prelude::{FromDer as _, GeneralName};
    let certs = certs_from_pem(&read(cert)?)?;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(certs[0].as_ref())
        .map_err(|e| TlsError::Content(format!("bad certificate: {e}")))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| TlsError::Content(format!("bad subjectAltName: {e}")))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// A client configuration trusting the Mozilla roots plus, optionally, extra certificates
/// (PEM): CAs, or a private relay's self-signed certificate, which is then trusted as itself
/// (see [`PinnedOrWebPki`]).
pub fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let Some(pem) = extra_ca_pem else {
        return Ok(Arc::new(
            builder.with_root_certificates(roots).with_no_client_auth(),
        ));
    };
    let extra = certs_from_pem(pem)?;
    for c in &extra {
        roots.add(c.clone())?;
    }
    let verifier = PinnedOrWebPki {
        webpki: rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()?,
        pinned: extra
            .into_iter()
            .map(Pinned::new)
            .collect::<Result<_, _>>()?,
    };
    let cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A certificate handed over with `--relay-ca`, with its validity.
#[derive(Debug)]
struct Pinned {
    der: CertificateDer<'static>,
    not_before: i64,
    not_after: i64,
}

impl Pinned {
    fn new(der: CertificateDer<'static>) -> Result<Pinned, TlsError> {
        use x509_parser::prelude::FromDer as _;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
            .map_err(|e| TlsError::Content(format!("bad certificate: {e}")))?;
        let validity = cert.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        Ok(Pinned {
            der,
            not_before,
            not_after,
        })
    }
}

/// The default verifier (webpki: Mozilla roots plus the extra certificates as roots), and one
/// exception: a server certificate that is byte for byte one of the extra certificates is
/// trusted as itself, if it is valid now and for the server name.
///
/// Why: webpki never accepts a certificate marked as a CA (`basicConstraints CA:TRUE`) as a
/// server's own certificate (`CaUsedAsEndEntity`), and `openssl req -x509` marks its
/// self-signed certificates so by default. curl and browsers that were told to trust exactly
/// that certificate accept it; so does twk. The handshake signature is still checked against
/// the certificate's key by the default provider's algorithms.
#[derive(Debug)]
struct PinnedOrWebPki {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<Pinned>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let err = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(ok) => return Ok(ok),
            Err(e) => e,
        };
        let Some(pin) = self
            .pinned
            .iter()
            .find(|p| p.der.as_ref() == end_entity.as_ref())
        else {
            return Err(err);
        };
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < pin.not_before {
            return Err(rustls::CertificateError::NotValidYet.into());
        }
        if now > pin.not_after {
            return Err(rustls::CertificateError::Expired.into());
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        tracing::debug!("the relay presented the --relay-ca certificate itself: trusted as pinned");
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Reads a PEM file of extra CA certificates.
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    read(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A self-signed certificate for `localhost` marked as a CA, as `openssl req -x509` makes
    /// them: (cert PEM, key PEM).
    fn ca_flagged_self_signed() -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A complete in-memory handshake; the client's error, if any.
    fn handshake(client_pem: Option<&str>, server: (&str, &str), name: &str) -> Result<(), String> {
        let server_cfg = server_config_from_pem(server.0.as_bytes(), server.1.as_bytes()).unwrap();
        let client_cfg = client_config(client_pem.map(str::as_bytes)).unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut client = rustls::ClientConnection::new(client_cfg, name).unwrap();
        let mut server = rustls::ServerConnection::new(server_cfg).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            // The server's own failures show up as the client's (an alert).
            let _ = server.process_new_packets();
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets().map_err(|e| e.to_string())?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        Err("handshake did not finish".into())
    }

    #[test]
    fn a_ca_flagged_self_signed_certificate_is_trusted_as_itself() {
        let (cert, key) = ca_flagged_self_signed();
        assert_eq!(handshake(Some(&cert), (&cert, &key), "localhost"), Ok(()));
        // Still verified: another name, or no --relay-ca, or another certificate, fails.
        let other_name = handshake(Some(&cert), (&cert, &key), "example.com").unwrap_err();
        assert!(other_name.contains("not valid for name"), "{other_name}");
        // webpki's own verdict on it, the one the pin overrides.
        let untrusted = handshake(None, (&cert, &key), "localhost").unwrap_err();
        assert!(untrusted.contains("CaUsedAsEndEntity"), "{untrusted}");
        let (other, _) = ca_flagged_self_signed();
        let wrong_pin = handshake(Some(&other), (&cert, &key), "localhost").unwrap_err();
        assert!(
            wrong_pin.contains("invalid peer certificate"),
            "{wrong_pin}"
        );
    }

    #[test]
    fn a_plain_self_signed_certificate_and_a_ca_still_work() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let server = (leaf.pem(), leaf_key.serialize_pem());
        assert_eq!(
            handshake(Some(&ca.pem()), (&server.0, &server.1), "localhost"),
            Ok(())
        );
        let plain = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (plain.cert.pem(), plain.signing_key.serialize_pem());
        assert_eq!(handshake(Some(&cert), (&cert, &key), "localhost"), Ok(()));
    }
}
