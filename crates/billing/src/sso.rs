//! Single sign-on from the portal into a platform, as the seed describes
//! it: the portal issues a random one-use token bound to the client, the
//! workspace and the platform (stored only as its SHA-256, expiring after
//! `[sso] token_ttl_secs`); the browser carries it to the platform; the
//! platform validates it with a server-to-server call to the portal,
//! authenticated by the platform's own secret, and the portal marks it
//! used in the same transaction that checks it, so a token works once
//! even when two validations race. The platform then opens its own
//! session. Every refusal leaves an audit entry.

use std::collections::HashMap;

use rackwave_accounts::token_digest;
use rackwave_core::{random_hex, time_ordered_id, Clock, Platform};
use rackwave_store::{AuditEntry, PlatformSession, SsoToken, Store, SubscriptionStatus};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::BillingError;

/// Sign-on tokens start with this (a token pasted elsewhere is known for
/// what it is).
const TOKEN_PREFIX: &str = "rwsso_";
/// A platform session's token.
const SESSION_PREFIX: &str = "rwps_";
/// How long a platform session lasts.
pub const PLATFORM_SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// `[sso]` in `config.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsoConfig {
    /// How long a sign-on token works (the seed: 5 minutes).
    pub token_ttl_secs: u64,
    /// Where the platforms reach the portal's validation endpoint (unset:
    /// `[http] public_url`).
    pub portal_url: Option<String>,
    /// Where the browser goes for each platform (unset: `[http]
    /// public_url`: one host serves all).
    pub migosmtp_url: Option<String>,
    pub telnxo_url: Option<String>,
    /// The secret each platform proves itself with to the portal (unset:
    /// generated once into the data directory).
    pub migosmtp_secret: Option<String>,
    pub telnxo_secret: Option<String>,
}

impl Default for SsoConfig {
    fn default() -> Self {
        SsoConfig {
            token_ttl_secs: 300,
            portal_url: None,
            migosmtp_url: None,
            telnxo_url: None,
            migosmtp_secret: None,
            telnxo_secret: None,
        }
    }
}

impl SsoConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(10..=3600).contains(&self.token_ttl_secs) {
            return Err("[sso] token_ttl_secs must be between 10 and 3600".into());
        }
        for (key, secret) in [
            ("migosmtp_secret", &self.migosmtp_secret),
            ("telnxo_secret", &self.telnxo_secret),
        ] {
            if secret.as_ref().is_some_and(|s| s.len() < 16) {
                return Err(format!("[sso] {key} must be at least 16 characters"));
            }
        }
        Ok(())
    }
}

/// Why a sign-on token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsoRefusal {
    #[error("the platform did not prove itself with its secret")]
    Unauthenticated,
    #[error("no such sign-on link")]
    Unknown,
    #[error("this sign-on link was used already")]
    Used,
    #[error("this sign-on link has expired")]
    Expired,
    #[error("this sign-on link is for another platform")]
    OtherPlatform,
}

/// Who a validated token signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOn {
    pub client_id: String,
    pub workspace_id: String,
}

/// The single sign-on service (cheap to clone).
#[derive(Clone)]
pub struct Sso {
    store: Store,
    clock: Clock,
    ttl_ms: i64,
    /// SHA-256 of each platform's secret, compared in constant time.
    secrets: HashMap<Platform, [u8; 32]>,
}

impl Sso {
    /// `secrets`: each platform's secret as configured or generated.
    pub fn new(
        store: Store,
        clock: Clock,
        config: &SsoConfig,
        secrets: HashMap<Platform, String>,
    ) -> Sso {
        Sso {
            store,
            clock,
            ttl_ms: config.token_ttl_secs as i64 * 1000,
            secrets: secrets
                .into_iter()
                .map(|(p, s)| (p, Sha256::digest(s.as_bytes()).into()))
                .collect(),
        }
    }

    /// A sign-on token of `client` for the workspace of its subscription,
    /// which must be theirs and live (trial, active or suspended: a
    /// suspended workspace can still be looked at).
    pub async fn issue(
        &self,
        client_id: &str,
        subscription_id: &str,
    ) -> Result<(String, Platform), BillingError> {
        let sub = self
            .store
            .subscription(subscription_id)
            .await?
            .filter(|s| s.client_id == client_id)
            .ok_or_else(|| BillingError::NotFound(format!("no subscription {subscription_id}")))?;
        if matches!(
            sub.status,
            SubscriptionStatus::Cancelled | SubscriptionStatus::Pending
        ) {
            return Err(BillingError::Conflict(format!(
                "subscription {subscription_id} has no platform access ({:?})",
                sub.status
            )));
        }
        let platform = Platform::parse(&sub.platform)
            .ok_or_else(|| BillingError::Conflict("unknown platform".into()))?;
        let token = format!("{TOKEN_PREFIX}{}", random_hex(32));
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        tx.put_sso_token(&SsoToken {
            digest: token_digest(&token),
            client_id: client_id.into(),
            workspace_id: sub.workspace_id,
            platform: platform.as_str().into(),
            created_at_ms: now,
            expires_at_ms: now + self.ttl_ms,
            used_at_ms: None,
        })
        .await?;
        tx.commit().await?;
        Ok((token, platform))
    }

    /// Whether `presented` is `platform`'s secret.
    pub fn platform_proven(&self, platform: Platform, presented: &str) -> bool {
        let Some(want) = self.secrets.get(&platform) else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(got.ct_eq(want))
    }

    /// Validates a token for `platform` and uses it up, in one transaction;
    /// a refusal is audited.
    pub async fn redeem(&self, token: &str, platform: Platform) -> Result<SignedOn, SsoRefusal> {
        let refused = |r: SsoRefusal, client: Option<String>| async move {
            self.audit(
                "sso.refused",
                &format!("{} ({})", r, platform.as_str()),
                client,
            )
            .await;
            Err(r)
        };
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return refused(SsoRefusal::Unknown, None).await;
        }
        let unavailable = |_| SsoRefusal::Unknown;
        let mut tx = self.store.begin().await.map_err(unavailable)?;
        let Some(mut t) = tx
            .sso_token(&token_digest(token))
            .await
            .map_err(unavailable)?
        else {
            drop(tx);
            return refused(SsoRefusal::Unknown, None).await;
        };
        let now = self.clock.now_ms();
        let refusal = if t.used_at_ms.is_some() {
            Some(SsoRefusal::Used)
        } else if t.platform != platform.as_str() {
            Some(SsoRefusal::OtherPlatform)
        } else if now >= t.expires_at_ms {
            Some(SsoRefusal::Expired)
        } else {
            None
        };
        if let Some(r) = refusal {
            drop(tx);
            return refused(r, Some(t.client_id)).await;
        }
        t.used_at_ms = Some(now);
        tx.put_sso_token(&t).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(SignedOn {
            client_id: t.client_id,
            workspace_id: t.workspace_id,
        })
    }

    /// Records a refusal (best effort: the refusal stands either way).
    pub async fn audit(&self, kind: &str, detail: &str, client_id: Option<String>) {
        tracing::warn!(kind, detail, client_id = ?client_id, "audit");
        let entry = AuditEntry {
            id: format!("{:016x}", time_ordered_id()),
            at_ms: self.clock.now_ms(),
            kind: kind.into(),
            detail: detail.into(),
            client_id,
        };
        if let Ok(mut tx) = self.store.begin().await {
            if tx.append_audit(&entry).await.is_ok() {
                let _ = tx.commit().await;
            }
        }
    }

    /// A platform's own session for whom a token signed on; its token.
    pub async fn open_platform_session(
        &self,
        platform: Platform,
        who: &SignedOn,
    ) -> Result<String, BillingError> {
        let token = format!("{SESSION_PREFIX}{}", random_hex(32));
        let mut tx = self.store.begin().await?;
        tx.put_platform_session(&PlatformSession {
            digest: token_digest(&token),
            platform: platform.as_str().into(),
            workspace_id: who.workspace_id.clone(),
            client_id: who.client_id.clone(),
            expires_at_ms: self.clock.now_ms() + PLATFORM_SESSION_TTL_MS,
        })
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The session a platform's cookie names, while it lasts (only that
    /// platform's: a MigoSMTP session opens nothing of Telnxo's).
    pub async fn platform_session(
        &self,
        platform: Platform,
        token: &str,
    ) -> Result<Option<PlatformSession>, BillingError> {
        if !token.starts_with(SESSION_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .store
            .platform_session(&token_digest(token))
            .await?
            .filter(|s| s.platform == platform.as_str() && s.expires_at_ms > self.clock.now_ms()))
    }

    /// Ends a platform session.
    pub async fn close_platform_session(&self, token: &str) -> Result<(), BillingError> {
        let mut tx = self.store.begin().await?;
        tx.delete_platform_session(&token_digest(token)).await?;
        tx.commit().await?;
        Ok(())
    }
}
