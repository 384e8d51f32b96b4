//! TLS for STARTTLS and the implicit-TLS listener (rustls with ring).
//!
//! Operators configure a certificate and key; without them the server makes
//! a self-signed pair in the data directory on first start and reuses it, so
//! STARTTLS works out of the box and the fingerprint stays stable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

pub struct TlsMaterial {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate, hex with colons, for the log.
    pub fingerprint: String,
    pub cert_path: PathBuf,
}

/// Loads the configured pair, or the generated one under `data_dir/tls/`
/// (creating it first when missing).
pub fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    hostname: &str,
) -> Result<TlsMaterial, TlsError> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        _ => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                generate(&dir, &c, &k, hostname)?;
            }
            (c, k)
        }
    };
    let file_err = |path: &Path, message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    let cert_pem = std::fs::read(&cert_path).map_err(|e| file_err(&cert_path, e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&cert_path, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(file_err(&cert_path, "no certificate found".into()));
    }
    let key_pem = std::fs::read(&key_path).map_err(|e| file_err(&key_path, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_err(&key_path, format!("not a PEM private key: {e}")))?;
    let fingerprint = Sha256::digest(chain[0].as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    Ok(TlsMaterial {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        cert_path,
    })
}

fn generate(dir: &Path, cert: &Path, key: &Path, hostname: &str) -> Result<(), TlsError> {
    let pair = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| TlsError::File {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    crate::storage::write_secret(key, pair.signing_key.serialize_pem().as_bytes()).map_err(
        |e| TlsError::File {
            path: key.to_path_buf(),
            message: e.to_string(),
        },
    )?;
    std::fs::write(cert, pair.cert.pem()).map_err(|e| TlsError::File {
        path: cert.to_path_buf(),
        message: e.to_string(),
    })?;
    tracing::info!(path = %cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(None, None, dir.path(), "mx.test").unwrap();
        let b = load_or_generate(None, None, dir.path(), "mx.test").unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
    }

    #[test]
    fn garbage_files_are_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.pem");
        let k = dir.path().join("k.pem");
        std::fs::write(&c, "not pem").unwrap();
        std::fs::write(&k, "not pem").unwrap();
        let err = load_or_generate(Some(&c), Some(&k), dir.path(), "x")
            .err()
            .unwrap();
        assert!(err.to_string().contains("c.pem"), "{err}");
    }
}
