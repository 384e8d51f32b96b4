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
    /// The host of `[tracking] base_url`: the target of a sending domain's
    /// tracking host CNAME.
    pub tracking_target: String,
}

/// The host under a sending domain that receives its bounces: a CNAME to
/// the bounce domain, so the envelope sender aligns with the domain.
pub const RETURN_PATH_LABEL: &str = "rw-bounces";

/// What a workspace may put in `From:` and what its mail carries, read
/// once per submission.
#[derive(Debug, Clone)]
pub struct SenderRules {
    allow_any: bool,
    /// Its sending domains.
    domains: Vec<DomainRule>,
    /// The workspace's tracking defaults, read with the rules so that a
    /// submission reads its workspace once.
    tracking: TrackingSettings,
}

/// What the rules need of one sending domain.
#[derive(Debug, Clone)]
struct DomainRule {
    /// Lowercase.
    domain: String,
    verified: bool,
    /// Its tracking host, once its CNAME checked out.
    tracking_host: Option<String>,
    tracking: Option<TrackingSettings>,
}

impl SenderRules {
    fn domain(&self, domain: &str) -> Option<&DomainRule> {
        self.domains
            .iter()
            .find(|d| d.domain.eq_ignore_ascii_case(domain))
    }

    /// Any domain until the workspace has a verified one (or when it
    /// allows unverified ones), then its verified domains only. `""` (a
    /// From without an address) passes only while nothing restricts.
    pub fn allows(&self, domain: &str) -> bool {
        self.allow_any
            || !self.domains.iter().any(|d| d.verified)
            || self.domain(domain).is_some_and(|d| d.verified)
    }

    /// What mail from `domain` carries per recipient by default: the
    /// domain's settings when it has its own, else the workspace's.
    pub fn tracking(&self, domain: Option<&str>) -> TrackingSettings {
        domain
            .and_then(|d| self.domain(d))
            .and_then(|d| d.tracking)
            .unwrap_or(self.tracking)
    }

    /// The host the tracking links of mail from `domain` point at, when
    /// the domain has one that checked out.
    pub fn tracking_host(&self, domain: &str) -> Option<&str> {
        self.domain(domain)?.tracking_host.as_deref()
    }

    /// Whether `domain` is one of the workspace's sending domains (added,
    /// verified or not): only those have a DKIM key of the workspace.
    pub fn owns(&self, domain: &str) -> bool {
        self.domain(domain).is_some()
    }

    /// The return-path host of `domain` when it is a verified one.
    pub fn return_path(&self, domain: &str) -> Option<String> {
        self.domain(domain)
            .filter(|d| d.verified)
            .map(|d| format!("{RETURN_PATH_LABEL}.{}", d.domain))
    }
}

/// A change to a sending domain's tracking (`None`: leave as it is;
/// `Some(None)`: remove).
#[derive(Debug, Clone, Default)]
pub struct DomainPatch {
    pub tracking_host: Option<Option<String>>,
    pub tracking: Option<Option<TrackingSettings>>,
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
    .into_iter()
    .chain(d.tracking_host.as_ref().map(|host| {
        record(
            "tracking",
            "CNAME",
            host.clone(),
            setup.tracking_target.clone(),
        )
    }))
    .collect()
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
        "return_path" | "tracking" => found
            .iter()
            .any(|f| f.trim_end_matches('.').eq_ignore_ascii_case(&check.value)),
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
            tracking_host: None,
            tracking: None,
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
        domain: SenderDomain,
        checks: Vec<RecordCheck>,
    ) -> Result<SenderDomain, AccountsError> {
        let required = ["dkim", "spf", "return_path"];
        let verified = required
            .iter()
            .all(|p| checks.iter().any(|c| c.purpose == *p && c.verified));
        let mut tx = self.inner.store.begin().await?;
        // Deleted (and perhaps added by another workspace) while the DNS
        // answered: this verification is no longer about that record.
        let current = tx
            .sender_domain(&domain.domain)
            .await?
            .filter(|c| c.workspace_id == domain.workspace_id && c.created_at == domain.created_at);
        let Some(mut current) = current else {
            return Err(AccountsError::NotFound(format!(
                "domain {} changed while it was verified",
                domain.domain
            )));
        };
        // Its tracking host may have changed meanwhile: a check of the
        // old one says nothing about the new one.
        current.checks = checks
            .into_iter()
            .filter(|c| c.purpose != "tracking" || Some(&c.name) == current.tracking_host.as_ref())
            .collect();
        current.verified_at_ms = verified.then(|| self.inner.clock.now_ms());
        tx.put_sender_domain(&current).await?;
        tx.commit().await?;
        Ok(current)
    }

    /// Changes a workspace's sending domain's tracking host or settings.
    /// A new tracking host must be under the domain and is used once its
    /// CNAME is verified again (the domain's own verification stands).
    pub async fn update(
        &self,
        workspace_id: &str,
        domain: &str,
        patch: DomainPatch,
    ) -> Result<SenderDomain, AccountsError> {
        let domain = domain.to_ascii_lowercase();
        let mut tx = self.inner.store.begin().await?;
        let mut d = tx
            .sender_domain(&domain)
            .await?
            .filter(|d| d.workspace_id == workspace_id)
            .ok_or_else(|| AccountsError::NotFound(format!("no sending domain {domain}")))?;
        if let Some(host) = patch.tracking_host {
            let host = host.map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase());
            if let Some(h) = &host {
                let under = h
                    .strip_suffix(&d.domain)
                    .is_some_and(|label| label.ends_with('.') && label.len() > 1);
                if !under || !rackwave_smtp_proto::address::is_domain(h) {
                    return Err(AccountsError::Invalid(format!(
                        "tracking_host must be a host name under {} (like click.{})",
                        d.domain, d.domain
                    )));
                }
            }
            if host != d.tracking_host {
                d.checks.retain(|c| c.purpose != "tracking");
                d.tracking_host = host;
            }
        }
        if let Some(tracking) = patch.tracking {
            d.tracking = tracking;
        }
        tx.put_sender_domain(&d).await?;
        tx.commit().await?;
        Ok(d)
    }

    /// What `workspace_id` may put in `From:` (see [`SenderRules`]).
    pub async fn sender_rules(&self, workspace_id: &str) -> Result<SenderRules, AccountsError> {
        let ws = self.inner.accounts.workspace(workspace_id).await?;
        // No such workspace has no verified domain either.
        let allow_any = ws.as_ref().is_none_or(|w| w.allow_unverified_senders);
        let tracking = ws.map(|w| w.tracking).unwrap_or_default();
        let domains = self
            .inner
            .store
            .sender_domains_of(workspace_id)
            .await?
            .into_iter()
            .map(|d| {
                let host_checked = d
                    .checks
                    .iter()
                    .any(|c| c.purpose == "tracking" && c.verified);
                DomainRule {
                    verified: d.verified_at_ms.is_some(),
                    tracking_host: d.tracking_host.filter(|_| host_checked),
                    tracking: d.tracking,
                    domain: d.domain,
                }
            })
            .collect();
        Ok(SenderRules {
            allow_any,
            domains,
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
