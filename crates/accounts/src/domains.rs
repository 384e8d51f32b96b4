//! Sender domains and their DKIM keys.
//!
//! An operator adds a domain to a workspace; the key pair is generated here
//! (RSA-2048 or Ed25519, RFC 8463) and the TXT record to publish is
//! returned. Accepted mail whose `From:` domain has a key is signed with
//! mail-auth before it is spooled, once per submission (the intake calls
//! [`Domains::sign`]). A domain belongs to one workspace only, so no tenant
//! can sign as another's domain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rackwave_core::{rfc3339, Clock};
use rackwave_store::{DkimAlgorithm, RecordCheck, SenderDomain, Store, TrackingSettings};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

use crate::{lock, Accounts, AccountsError};

/// Header fields covered by our signatures (RFC 6376 §5.4.1 recommends
/// these; a field listed but absent is still signed as absent, which stops
/// it being added later).
pub const DKIM_SIGNED_HEADERS: [&str; 13] = [
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
    // RFC 8058 §4: the one-click unsubscribe fields must be signed.
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
];

/// The TXT record to publish for a domain's key: (name, value).
pub fn dkim_record(d: &SenderDomain) -> (String, String) {
    let k = match d.algorithm {
        DkimAlgorithm::Rsa2048 => "rsa",
        DkimAlgorithm::Ed25519 => "ed25519",
    };
    (
        format!("{}._domainkey.{}", d.selector, d.domain),
        format!("v=DKIM1; k={k}; p={}", d.public_key),
    )
}

/// What a sending domain publishes besides its DKIM key: where its SPF
/// record points and where its return path (bounce host) points.
#[derive(Debug, Clone)]
pub struct DnsSetup {
    /// The SPF mechanism senders include, e.g. `include:spf.example.net`
    /// (`[domains] spf_include`), or `a:<delivery host name>` when unset.
    pub spf_mechanism: String,
    /// `[delivery] bounce_domain`: the target of every return-path CNAME.
    pub bounce_domain: String,
}

/// The host under a sending domain that receives its bounces: a CNAME to
/// the bounce domain, so the envelope sender aligns with the domain.
pub const RETURN_PATH_LABEL: &str = "rw-bounces";

/// What a workspace may put in `From:`, read once per submission.
#[derive(Debug, Clone)]
pub struct SenderRules {
    allow_any: bool,
    /// Its verified sending domains (lowercase).
    verified: Vec<String>,
    /// The workspace's tracking defaults, read with the rules so that a
    /// submission reads its workspace once.
    tracking: TrackingSettings,
}

impl SenderRules {
    /// Any domain until the workspace has a verified one (or when it
    /// allows unverified ones), then its verified domains only. `""` (a
    /// From without an address) passes only while nothing restricts.
    pub fn allows(&self, domain: &str) -> bool {
        self.allow_any
            || self.verified.is_empty()
            || self.verified.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// What the workspace's messages carry per recipient by default.
    pub fn tracking(&self) -> TrackingSettings {
        self.tracking
    }

    /// The return-path host of `domain` when it is a verified one.
    pub fn return_path(&self, domain: &str) -> Option<String> {
        self.verified
            .iter()
            .find(|d| d.eq_ignore_ascii_case(domain))
            .map(|d| format!("{RETURN_PATH_LABEL}.{d}"))
    }
}

/// The records to publish for `d`, unverified.
pub fn expected_records(d: &SenderDomain, setup: &DnsSetup) -> Vec<RecordCheck> {
    let (dkim_name, dkim_value) = dkim_record(d);
    let record = |purpose: &str, record_type: &str, name: String, value: String| RecordCheck {
        purpose: purpose.into(),
        record_type: record_type.into(),
        name,
        value,
        verified: false,
        found: Vec::new(),
    };
    vec![
        record("dkim", "TXT", dkim_name, dkim_value),
        record(
            "spf",
            "TXT",
            d.domain.clone(),
            format!("v=spf1 {} ~all", setup.spf_mechanism),
        ),
        record(
            "return_path",
            "CNAME",
            format!("{RETURN_PATH_LABEL}.{}", d.domain),
            setup.bounce_domain.clone(),
        ),
        record(
            "dmarc",
            "TXT",
            format!("_dmarc.{}", d.domain),
            format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{}", d.domain),
        ),
    ]
}

/// Whether what was found at a record's name satisfies it: the DKIM key
/// itself (`p=`, whitespace ignored), an SPF record that includes our
/// mechanism, the CNAME target, any DMARC record.
pub fn satisfies(check: &RecordCheck, setup: &DnsSetup, found: &[String]) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    match check.purpose.as_str() {
        "dkim" => {
            let key = |s: &str| {
                squeeze(s)
                    .split(';')
                    .find_map(|t| t.strip_prefix("p=").map(str::to_string))
            };
            let want = key(&check.value);
            found.iter().any(|f| want.is_some() && key(f) == want)
        }
        "spf" => found.iter().any(|f| {
            let f = f.to_ascii_lowercase();
            f.starts_with("v=spf1")
                && f.split_whitespace().any(|t| {
                    t.trim_start_matches(['+', '~', '?'])
                        == setup.spf_mechanism.to_ascii_lowercase()
                })
        }),
        "return_path" => found.iter().any(|f| {
            f.trim_end_matches('.')
                .eq_ignore_ascii_case(&setup.bounce_domain)
        }),
        "dmarc" => found
            .iter()
            .any(|f| f.to_ascii_uppercase().starts_with("V=DMARC1")),
        _ => false,
    }
}

/// The key of a parsed signer in the cache.
fn signer_key(workspace_id: &str, domain: &str) -> String {
    format!("{workspace_id}\0{domain}")
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
    store: Store,
    accounts: Accounts,
    clock: Clock,
    /// Parsed signers by workspace and domain, so keys are decoded once,
    /// not per message.
    signers: Mutex<HashMap<String, Arc<Signer>>>,
}

impl Domains {
    pub fn new(store: Store, accounts: Accounts, clock: Clock) -> Domains {
        Domains {
            inner: Arc::new(Inner {
                store,
                accounts,
                clock,
                signers: Mutex::default(),
            }),
        }
    }

    /// Adds a domain to a workspace with a fresh key.
    pub async fn add(
        &self,
        workspace_id: &str,
        domain: &str,
        algorithm: DkimAlgorithm,
        selector: Option<&str>,
    ) -> Result<SenderDomain, AccountsError> {
        self.inner.accounts.require_workspace(workspace_id).await?;
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !rackwave_smtp_proto::address::is_domain(&domain)
            || domain.starts_with('[')
            || !domain.contains('.')
        {
            return Err(AccountsError::Invalid(format!(
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
            return Err(AccountsError::Invalid(
                "selector must be letters, digits, '-' or '.' (at most 63)".into(),
            ));
        }
        if self.inner.store.sender_domain(&domain).await?.is_some() {
            return Err(AccountsError::Conflict(format!(
                "domain {domain} is already registered"
            )));
        }
        let (private_key, public_key) = tokio::task::spawn_blocking(move || generate(algorithm))
            .await
            .map_err(|e| AccountsError::Crypto(e.to_string()))??;
        let record = SenderDomain {
            workspace_id: workspace_id.to_string(),
            domain,
            selector,
            algorithm,
            private_key: BASE64.encode(private_key),
            public_key: BASE64.encode(public_key),
            created_at: rfc3339(self.inner.clock.now_ms()),
            checks: Vec::new(),
            verified_at_ms: None,
        };
        let mut tx = self.inner.store.begin().await?;
        tx.insert_sender_domain(&record).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn get(&self, domain: &str) -> Result<Option<SenderDomain>, AccountsError> {
        Ok(self
            .inner
            .store
            .sender_domain(&domain.to_ascii_lowercase())
            .await?)
    }

    /// Deletes a workspace's sender domain and its key; `false` when the
    /// workspace has no such domain.
    pub async fn delete(&self, workspace_id: &str, domain: &str) -> Result<bool, AccountsError> {
        let domain = domain.to_ascii_lowercase();
        match self.inner.store.sender_domain(&domain).await? {
            Some(d) if d.workspace_id == workspace_id => {
                let mut tx = self.inner.store.begin().await?;
                let gone = tx.delete_sender_domain(&domain).await?;
                tx.commit().await?;
                lock(&self.inner.signers).remove(&signer_key(workspace_id, &domain));
                Ok(gone)
            }
            _ => Ok(false),
        }
    }

    /// Records what a verification found: the domain is verified when its
    /// DKIM key, its SPF record and its return path all check out (DMARC
    /// is recommended, not required).
    pub async fn record_checks(
        &self,
        mut domain: SenderDomain,
        checks: Vec<RecordCheck>,
    ) -> Result<SenderDomain, AccountsError> {
        let required = ["dkim", "spf", "return_path"];
        let verified = required
            .iter()
            .all(|p| checks.iter().any(|c| c.purpose == *p && c.verified));
        domain.verified_at_ms = verified.then(|| self.inner.clock.now_ms());
        domain.checks = checks;
        let mut tx = self.inner.store.begin().await?;
        // Deleted (and perhaps added by another workspace) while the DNS
        // answered: this verification is no longer about that record.
        let current = tx.sender_domain(&domain.domain).await?;
        if current.is_none_or(|c| {
            c.workspace_id != domain.workspace_id || c.created_at != domain.created_at
        }) {
            return Err(AccountsError::NotFound(format!(
                "domain {} changed while it was verified",
                domain.domain
            )));
        }
        tx.put_sender_domain(&domain).await?;
        tx.commit().await?;
        Ok(domain)
    }

    /// What `workspace_id` may put in `From:` (see [`SenderRules`]).
    pub async fn sender_rules(&self, workspace_id: &str) -> Result<SenderRules, AccountsError> {
        let ws = self.inner.accounts.workspace(workspace_id).await?;
        // No such workspace has no verified domain either.
        let allow_any = ws.as_ref().is_none_or(|w| w.allow_unverified_senders);
        let tracking = ws.map(|w| w.tracking).unwrap_or_default();
        let verified = self
            .inner
            .store
            .sender_domains_of(workspace_id)
            .await?
            .into_iter()
            .filter(|d| d.verified_at_ms.is_some())
            .map(|d| d.domain)
            .collect();
        Ok(SenderRules {
            allow_any,
            verified,
            tracking,
        })
    }

    /// A workspace's sender domains (`NotFound` for an unknown workspace).
    pub async fn list(&self, workspace_id: &str) -> Result<Vec<SenderDomain>, AccountsError> {
        self.inner.accounts.require_workspace(workspace_id).await?;
        Ok(self.inner.store.sender_domains_of(workspace_id).await?)
    }

    /// The `DKIM-Signature:` header for a message from `from_domain` sent by
    /// `workspace_id`, or `None` when that workspace has no key for it.
    /// Signing is CPU work, so it runs off the I/O threads.
    pub async fn sign(
        &self,
        workspace_id: &str,
        from_domain: &str,
        message: Arc<Vec<u8>>,
    ) -> Result<Option<String>, AccountsError> {
        let Some(signer) = self.signer(workspace_id, from_domain).await? else {
            return Ok(None);
        };
        tokio::task::spawn_blocking(move || {
            match signer.as_ref() {
                Signer::Rsa(s) => s.sign(&message),
                Signer::Ed25519(s) => s.sign(&message),
            }
            .map(|signature| Some(signature.to_header()))
            .map_err(|e| AccountsError::Crypto(e.to_string()))
        })
        .await
        .map_err(|e| AccountsError::Crypto(format!("signing task: {e}")))?
    }

    async fn signer(
        &self,
        workspace_id: &str,
        domain: &str,
    ) -> Result<Option<Arc<Signer>>, AccountsError> {
        let domain = domain.to_ascii_lowercase();
        let cache_key = signer_key(workspace_id, &domain);
        if let Some(s) = lock(&self.inner.signers).get(&cache_key) {
            return Ok(Some(s.clone()));
        }
        let Some(record) = self.get(&domain).await? else {
            return Ok(None);
        };
        if record.workspace_id != workspace_id {
            return Ok(None);
        }
        let der = BASE64
            .decode(&record.private_key)
            .map_err(|e| AccountsError::Crypto(format!("stored key of {domain}: {e}")))?;
        let crypto = |e: mail_auth::Error| AccountsError::Crypto(e.to_string());
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
                        .headers(DKIM_SIGNED_HEADERS),
                )
            }
            DkimAlgorithm::Ed25519 => {
                let key = Ed25519Key::from_pkcs8_der(&der).map_err(crypto)?;
                Signer::Ed25519(
                    DkimSigner::from_key(key)
                        .domain(record.domain.clone())
                        .selector(record.selector.clone())
                        .headers(DKIM_SIGNED_HEADERS),
                )
            }
        };
        let signer = Arc::new(signer);
        lock(&self.inner.signers).insert(cache_key, signer.clone());
        Ok(Some(signer))
    }
}

/// A new key pair: (private DER, public key as published in `p=`).
fn generate(algorithm: DkimAlgorithm) -> Result<(Vec<u8>, Vec<u8>), AccountsError> {
    use mail_auth::dkim::generate::DkimKeyPair;
    let crypto = |e: mail_auth::Error| AccountsError::Crypto(e.to_string());
    match algorithm {
        DkimAlgorithm::Rsa2048 => {
            let pair = DkimKeyPair::generate_rsa(2048).map_err(crypto)?;
            let (private, public_pkcs1) = pair.into_inner();
            // Publish SubjectPublicKeyInfo, the form DKIM verifiers expect
            // (RFC 6376 §3.6.1 and every published example).
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::pkcs8::EncodePublicKey;
            let public = rsa::RsaPublicKey::from_pkcs1_der(&public_pkcs1)
                .map_err(|e| AccountsError::Crypto(e.to_string()))?;
            let spki = public
                .to_public_key_der()
                .map_err(|e| AccountsError::Crypto(e.to_string()))?;
            Ok((private, spki.as_bytes().to_vec()))
        }
        DkimAlgorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519().map_err(crypto)?;
            Ok(pair.into_inner())
        }
    }
}
