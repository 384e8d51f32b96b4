//! Sender domains and their DKIM keys.
//!
//! An operator adds a domain to a workspace through the admin API; the key
//! pair is generated here (RSA-2048 or Ed25519, RFC 8463) and the TXT record
//! to publish is returned. Accepted mail whose `From:` domain has a key is
//! signed with mail-auth before it is spooled, once per submission. A domain
//! belongs to one workspace only, so no tenant can sign as another's domain.
//!
//! Private keys are stored in the database in DER form: they must be
//! usable to sign, so they cannot be hashed; the data directory is the
//! secret (as OpenDKIM's key files are).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};
use serde::{Deserialize, Serialize};

use crate::clock::{rfc3339, Clock};

/// Header fields covered by our signatures (RFC 6376 §5.4.1 recommends
/// these; a field listed but absent is still signed as absent, which stops
/// it being added later).
const SIGNED_HEADERS: [&str; 10] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

#[derive(Debug, thiserror::Error)]
pub enum DomainsError {
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("key generation failed: {0}")]
    Crypto(String),
    #[error("corrupt domain record: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DkimAlgorithm {
    /// rsa-sha256 with a 2048-bit key: what every verifier understands.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "ed25519")]
    /// ed25519-sha256 (RFC 8463): small keys, not yet verified everywhere.
    Ed25519,
}

/// A sender domain as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SenderDomain {
    pub workspace_id: String,
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// RSA: PKCS#1 DER; Ed25519: PKCS#8 DER; base64.
    private_key: String,
    /// The `p=` value of the DNS record.
    pub public_key: String,
    pub created_at: String,
}

impl SenderDomain {
    /// Name of the TXT record to publish.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// Value of the TXT record to publish.
    pub fn dns_value(&self) -> String {
        let k = match self.algorithm {
            DkimAlgorithm::Rsa2048 => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        };
        format!("v=DKIM1; k={k}; p={}", self.public_key)
    }
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, mail_auth::dkim::Done>),
    Ed25519(DkimSigner<Ed25519Key, mail_auth::dkim::Done>),
}

#[derive(Clone)]
pub struct Domains {
    inner: Arc<Inner>,
}

struct Inner {
    /// For making a new domain durable before it is reported.
    db: sled::Db,
    /// By domain name, indexed by workspace.
    tree: crate::storage::ByWorkspace,
    clock: Clock,
    /// Parsed signers by domain, so keys are decoded once, not per message.
    signers: Mutex<HashMap<String, Arc<Signer>>>,
}

impl Domains {
    pub fn open(db: &sled::Db, clock: Clock) -> Result<Domains, DomainsError> {
        Ok(Domains {
            inner: Arc::new(Inner {
                db: db.clone(),
                tree: crate::storage::ByWorkspace::open(db, "sender_domains")?,
                clock,
                signers: Mutex::default(),
            }),
        })
    }

    /// Adds a domain to a workspace with a fresh key. The caller has checked
    /// that the workspace exists.
    pub async fn add(
        &self,
        workspace_id: &str,
        domain: &str,
        algorithm: DkimAlgorithm,
        selector: Option<&str>,
    ) -> Result<SenderDomain, DomainsError> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !crate::smtp::command::is_mailbox(&format!("x@{domain}"))
            || domain.starts_with('[')
            || !domain.contains('.')
        {
            return Err(DomainsError::Invalid(format!(
                "`{domain}` is not a domain name"
            )));
        }
        let selector = selector.map(str::to_string).unwrap_or_else(|| {
            let date = rfc3339(self.inner.clock.now_ms());
            format!("rw{}", &date[..7].replace('-', ""))
        });
        if selector.is_empty()
            || selector.len() > 63
            || !selector
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(DomainsError::Invalid(
                "selector must be letters, digits, '-' or '.' (at most 63)".into(),
            ));
        }
        if self.inner.tree.contains(&domain)? {
            return Err(DomainsError::Conflict(format!(
                "domain {domain} is already registered"
            )));
        }
        let (private_key, public_key) = tokio::task::spawn_blocking(move || generate(algorithm))
            .await
            .map_err(|e| DomainsError::Crypto(e.to_string()))??;
        let record = SenderDomain {
            workspace_id: workspace_id.to_string(),
            domain: domain.clone(),
            selector,
            algorithm,
            private_key: BASE64.encode(private_key),
            public_key: BASE64.encode(public_key),
            created_at: rfc3339(self.inner.clock.now_ms()),
        };
        let bytes = serde_json::to_vec(&record).expect("record serializes");
        if !self.inner.tree.insert_new(workspace_id, &domain, bytes)? {
            return Err(DomainsError::Conflict(format!(
                "domain {domain} is already registered"
            )));
        }
        crate::storage::flush(&self.inner.db).await?;
        Ok(record)
    }

    pub fn get(&self, domain: &str) -> Result<Option<SenderDomain>, DomainsError> {
        self.inner
            .tree
            .get(&domain.to_ascii_lowercase())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| DomainsError::Corrupt(e.to_string())))
            .transpose()
    }

    pub fn list(&self, workspace_id: &str) -> Result<Vec<SenderDomain>, DomainsError> {
        self.inner
            .tree
            .of_workspace(workspace_id)?
            .iter()
            .map(|(_, v)| {
                serde_json::from_slice(v).map_err(|e| DomainsError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// The `DKIM-Signature:` header for a message from `from_domain` sent by
    /// `workspace_id`, or `None` when that workspace has no key for it.
    pub fn sign(
        &self,
        workspace_id: &str,
        from_domain: &str,
        message: &[u8],
    ) -> Result<Option<String>, DomainsError> {
        let Some(signer) = self.signer(workspace_id, from_domain)? else {
            return Ok(None);
        };
        let signature = match signer.as_ref() {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        }
        .map_err(|e| DomainsError::Crypto(e.to_string()))?;
        Ok(Some(signature.to_header()))
    }

    fn signer(
        &self,
        workspace_id: &str,
        domain: &str,
    ) -> Result<Option<Arc<Signer>>, DomainsError> {
        let domain = domain.to_ascii_lowercase();
        if let Some(s) = self
            .inner
            .signers
            .lock()
            .unwrap()
            .get(&format!("{workspace_id}\0{domain}"))
        {
            return Ok(Some(s.clone()));
        }
        let Some(record) = self.get(&domain)? else {
            return Ok(None);
        };
        if record.workspace_id != workspace_id {
            return Ok(None);
        }
        let der = BASE64
            .decode(&record.private_key)
            .map_err(|e| DomainsError::Corrupt(e.to_string()))?;
        let crypto = |e: mail_auth::Error| DomainsError::Crypto(e.to_string());
        let signer = match record.algorithm {
            DkimAlgorithm::Rsa2048 => {
                let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(
                    PrivatePkcs1KeyDer::from(der),
                ))
                .map_err(crypto)?;
                Signer::Rsa(
                    DkimSigner::from_key(key)
                        .domain(record.domain.clone())
                        .selector(record.selector.clone())
                        .headers(SIGNED_HEADERS),
                )
            }
            DkimAlgorithm::Ed25519 => {
                let key = Ed25519Key::from_pkcs8_der(&der).map_err(crypto)?;
                Signer::Ed25519(
                    DkimSigner::from_key(key)
                        .domain(record.domain.clone())
                        .selector(record.selector.clone())
                        .headers(SIGNED_HEADERS),
                )
            }
        };
        let signer = Arc::new(signer);
        self.inner
            .signers
            .lock()
            .unwrap()
            .insert(format!("{workspace_id}\0{domain}"), signer.clone());
        Ok(Some(signer))
    }
}

/// A new key pair: (private DER, public key as published in `p=`).
fn generate(algorithm: DkimAlgorithm) -> Result<(Vec<u8>, Vec<u8>), DomainsError> {
    use mail_auth::dkim::generate::DkimKeyPair;
    let crypto = |e: mail_auth::Error| DomainsError::Crypto(e.to_string());
    match algorithm {
        DkimAlgorithm::Rsa2048 => {
            let pair = DkimKeyPair::generate_rsa(2048).map_err(crypto)?;
            let (private, public_pkcs1) = pair.into_inner();
            // Publish SubjectPublicKeyInfo, the form DKIM verifiers expect
            // (RFC 6376 §3.6.1 and every published example).
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::pkcs8::EncodePublicKey;
            let public = rsa::RsaPublicKey::from_pkcs1_der(&public_pkcs1)
                .map_err(|e| DomainsError::Crypto(e.to_string()))?;
            let spki = public
                .to_public_key_der()
                .map_err(|e| DomainsError::Crypto(e.to_string()))?;
            Ok((private, spki.as_bytes().to_vec()))
        }
        DkimAlgorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519().map_err(crypto)?;
            Ok(pair.into_inner())
        }
    }
}
