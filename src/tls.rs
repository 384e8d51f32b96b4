//! The TLS material of the SMTP listeners: the configured certificate and
//! key, or a self-signed pair generated into the data directory on first
//! start and reused, so STARTTLS works out of the box and the fingerprint
//! stays stable.

use std::path::{Path, PathBuf};

use rackwave_smtp_proto::tls;
use tokio_rustls::TlsAcceptor;

use crate::server::write_secret;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsError {
    path: PathBuf,
    message: String,
}

pub(crate) struct TlsMaterial {
    pub(crate) acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate, hex with colons, for the log.
    pub(crate) fingerprint: String,
    pub(crate) cert_path: PathBuf,
}

/// Loads the configured pair, or the generated one under `data_dir/tls/`
/// (creating it first when missing).
pub(crate) fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    hostname: &str,
) -> Result<TlsMaterial, TlsError> {
    let fail = |path: &Path, message: String| TlsError {
        path: path.to_path_buf(),
        message,
    };
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        _ => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                let (cert_pem, key_pem) =
                    tls::self_signed(hostname).map_err(|e| fail(&dir, e.0))?;
                std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e.to_string()))?;
                write_secret(&k, key_pem.as_bytes()).map_err(|e| fail(&k, e.to_string()))?;
                std::fs::write(&c, cert_pem).map_err(|e| fail(&c, e.to_string()))?;
                tracing::info!(path = %c.display(), "generated a self-signed TLS certificate");
            }
            (c, k)
        }
    };
    let cert_pem = std::fs::read(&cert_path).map_err(|e| fail(&cert_path, e.to_string()))?;
    let key_pem = std::fs::read(&key_path).map_err(|e| fail(&key_path, e.to_string()))?;
    let (acceptor, fingerprint) =
        tls::acceptor(&cert_pem, &key_pem).map_err(|e| fail(&cert_path, e.0))?;
    Ok(TlsMaterial {
        acceptor,
        fingerprint,
        cert_path,
    })
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
