//! TLS for SMTP with rustls and ring: the server side of STARTTLS and
//! implicit TLS (a configured certificate or a self-signed one), and the
//! client side (verified against the web PKI, or opportunistic: any
//! certificate, RFC 7435).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What went wrong building TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A new self-signed certificate for `hostname`: (certificate PEM, key PEM).
pub fn self_signed(hostname: &str) -> Result<(String, String), TlsError> {
    let pair = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| TlsError(format!("generating a self-signed certificate: {e}")))?;
    Ok((pair.cert.pem(), pair.signing_key.serialize_pem()))
}

/// A server (acceptor) for a PEM certificate chain and key, and the
/// SHA-256 fingerprint of the leaf certificate (hex with colons, for logs).
pub fn acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<(TlsAcceptor, String), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError("no certificate found".into()));
    };
    let fingerprint = Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError(format!("not a PEM private key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("TLS configuration: {e}")))?;
    Ok((TlsAcceptor::from(Arc::new(config)), fingerprint))
}

/// An acceptor with a fresh self-signed certificate (test and benchmark
/// servers).
pub fn self_signed_acceptor(hostname: &str) -> Result<TlsAcceptor, TlsError> {
    let (cert, key) = self_signed(hostname)?;
    acceptor(cert.as_bytes(), key.as_bytes()).map(|(a, _)| a)
}

/// The two client configurations a sender needs.
#[derive(Clone)]
pub struct Connectors {
    /// Certificates checked against the web PKI and the host name.
    pub verified: TlsConnector,
    /// Any certificate accepted: opportunistic TLS (RFC 7435 §3), where an
    /// unauthenticated encrypted channel beats clear text.
    pub any: TlsConnector,
}

/// Both client configurations.
pub fn connectors() -> Connectors {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let verified = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let any = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
        .with_no_client_auth();
    Connectors {
        verified: TlsConnector::from(Arc::new(verified)),
        any: TlsConnector::from(Arc::new(any)),
    }
}

/// The name to present in SNI and check the certificate against: the host
/// name when it is one, else the address.
pub fn server_name(host: &str, ip: std::net::IpAddr) -> ServerName<'static> {
    ServerName::try_from(host.trim_end_matches('.').to_string())
        .unwrap_or_else(|_| ServerName::from(ip))
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_material_loads_with_a_stable_fingerprint() {
        let (cert, key) = self_signed("mx.test").unwrap();
        let (_, a) = acceptor(cert.as_bytes(), key.as_bytes()).unwrap();
        let (_, b) = acceptor(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32 * 3 - 1);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = acceptor(b"not pem", b"not pem").err().unwrap();
        assert!(err.0.contains("certificate"), "{err}");
    }
}
