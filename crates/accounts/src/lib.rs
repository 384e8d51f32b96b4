//! Tenants and their credentials: workspaces, SMTP accounts and API keys
//! ([`Accounts`]), sender domains with their DKIM keys ([`Domains`]) and
//! suppression lists ([`Suppressions`]).
//!
//! Everything is scoped to a workspace. Passwords are stored as argon2
//! hashes; API keys are shown once and stored as their SHA-256 (they are
//! long random strings, so a fast hash is enough and lookups stay O(1)).
//! The records live in the [`Store`]; every creation is durable before it
//! is reported.

mod domains;
mod guard;
mod passwords;
mod suppressions;

pub use domains::{
    dkim_record, expected_records, satisfies, DnsSetup, DomainPatch, Domains, SenderRules,
    DKIM_SIGNED_HEADERS, RETURN_PATH_LABEL,
};
pub use guard::AuthGuard;
pub use passwords::{hash_password, verify_password};
pub use rackwave_store::{
    ApiKey, DkimAlgorithm, RecordCheck, SenderDomain, SmtpAccount, Suppression, SuppressionReason,
    TrackingSettings, Workspace,
};
pub use suppressions::{
    normalize as normalize_address, ImportReport, Suppressions, MAX_IMPORT_LINES,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use rackwave_core::{random_hex, rfc3339, Classify, Clock, ErrorKind, Platform};
use rackwave_store::{Store, StoreError};

/// Settings of a workspace to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceChanges {
    /// The daily cap; `Some(None)` removes it.
    pub daily_quota: Option<Option<u64>>,
    /// Send from any domain even once it has verified sending domains.
    pub allow_unverified_senders: Option<bool>,
    /// The open pixel, tracked links and one-click unsubscribe headers in
    /// its messages by default.
    pub opens: Option<bool>,
    pub clicks: Option<bool>,
    pub unsubscribe: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("key generation failed: {0}")]
    Crypto(String),
}

impl Classify for AccountsError {
    fn kind(&self) -> ErrorKind {
        match self {
            AccountsError::Store(StoreError::Conflict(_)) | AccountsError::Conflict(_) => {
                ErrorKind::Conflict
            }
            AccountsError::Store(e) => e.kind(),
            AccountsError::Invalid(_) => ErrorKind::Invalid,
            AccountsError::NotFound(_) => ErrorKind::NotFound,
            AccountsError::Hash(_) | AccountsError::Crypto(_) => ErrorKind::Internal,
        }
    }
}

/// A freshly created key: the only time the secret exists in clear.
pub struct NewApiKey {
    pub key: String,
    pub record: ApiKey,
}

const MAX_NAME: usize = 200;
const MAX_USERNAME: usize = 254;
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Clock,
    /// Verified credentials, as HMAC(process secret, password), so a client
    /// that authenticates on every connection costs one argon2 run, not one
    /// per connection; the password itself is never kept.
    auth_cache: Mutex<HashMap<String, [u8; 32]>>,
    cache_key: [u8; 32],
    /// One argon2 check at a time per username: fifty connections of one
    /// app logging in together cost one hash, not fifty (the others then
    /// find the cache filled).
    verifying: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// argon2 verifications run so far.
    password_checks: std::sync::atomic::AtomicU64,
    /// SMTP accounts deleted while this process runs, by username and
    /// creation time (a new account with the same name is not revoked);
    /// sessions they authenticated are refused at their next command.
    revoked: Mutex<std::collections::HashSet<(String, String)>>,
    /// Workspaces that may not send (a mirror of their records' `suspended`,
    /// read on every SMTP command and API call, so open sessions stop at
    /// once).
    suspended: Mutex<std::collections::HashSet<String>>,
    /// Refreshes of the mirror, one at a time: each reads the stored
    /// state and applies it before the next reads, so the mirror ends as
    /// the store does whatever order commits finish in.
    refreshing: tokio::sync::Mutex<()>,
}

impl Accounts {
    pub fn new(store: Store, clock: Clock) -> Accounts {
        let mut cache_key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut cache_key);
        Accounts {
            inner: Arc::new(Inner {
                store,
                clock,
                auth_cache: Mutex::new(HashMap::new()),
                cache_key,
                verifying: Mutex::new(HashMap::new()),
                password_checks: Default::default(),
                revoked: Mutex::default(),
                suspended: Mutex::default(),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub async fn create_workspace(
        &self,
        name: &str,
        daily_quota: Option<u64>,
    ) -> Result<Workspace, AccountsError> {
        let mut tx = self.inner.store.begin().await?;
        let ws = self.create_workspace_in(&mut tx, name, daily_quota).await?;
        tx.commit().await?;
        Ok(ws)
    }

    /// [`create_workspace`](Self::create_workspace) in the caller's
    /// transaction (the portal provisions a workspace with the
    /// subscription that pays for it, and its event, in one commit).
    pub async fn create_workspace_in(
        &self,
        tx: &mut rackwave_store::Txn,
        name: &str,
        daily_quota: Option<u64>,
    ) -> Result<Workspace, AccountsError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(AccountsError::Invalid(format!(
                "name must be 1 to {MAX_NAME} characters without control characters"
            )));
        }
        let ws = Workspace {
            id: format!("ws_{}", random_hex(8)),
            name: name.to_string(),
            daily_quota,
            created_at: rfc3339(self.inner.clock.now_ms()),
            allow_unverified_senders: false,
            tracking: Default::default(),
            suspended: None,
        };
        tx.insert_workspace(&ws).await?;
        Ok(ws)
    }

    /// Reads which workspaces are suspended (at start, and every few
    /// seconds where several nodes share the store). In turn with
    /// [`refresh_suspended`](Self::refresh_suspended): a suspension made
    /// here while this reads is never undone by an older snapshot.
    pub async fn load_suspended(&self) -> Result<(), AccountsError> {
        let _turn = self.inner.refreshing.lock().await;
        let suspended = self.inner.store.suspended_workspaces().await?;
        let mut set = lock(&self.inner.suspended);
        set.clear();
        set.extend(suspended);
        Ok(())
    }

    /// Whether a workspace may not send now.
    pub fn is_suspended(&self, workspace_id: &str) -> bool {
        lock(&self.inner.suspended).contains(workspace_id)
    }

    /// Suspends a workspace (`Some(reason)`) or lets it send again, in the
    /// caller's transaction; [`refresh_suspended`](Self::refresh_suspended)
    /// after the commit (whether it succeeded or not).
    pub async fn set_suspended_in(
        &self,
        tx: &mut rackwave_store::Txn,
        workspace_id: &str,
        reason: Option<String>,
    ) -> Result<(), AccountsError> {
        let mut ws = tx
            .workspace(workspace_id)
            .await?
            .ok_or_else(|| AccountsError::NotFound(format!("workspace {workspace_id}")))?;
        ws.suspended = reason;
        tx.put_workspace(&ws).await?;
        Ok(())
    }

    /// Makes the stored suspension of a workspace (or its end) take effect
    /// at once. Called after every commit that may have changed it, also a
    /// failed one (its write may have landed).
    pub async fn refresh_suspended(&self, workspace_id: &str) -> Result<(), AccountsError> {
        let _turn = self.inner.refreshing.lock().await;
        let suspended = match self.inner.store.workspace(workspace_id).await {
            Ok(w) => w.is_some_and(|w| w.suspended.is_some()),
            Err(e) => {
                // Unknown: fail closed (it sends again at the next refresh
                // that can read it, or at the next start).
                lock(&self.inner.suspended).insert(workspace_id.to_string());
                return Err(e.into());
            }
        };
        let mut set = lock(&self.inner.suspended);
        if suspended {
            set.insert(workspace_id.to_string());
        } else {
            set.remove(workspace_id);
        }
        Ok(())
    }

    /// Changes a workspace's settings (what `changes` names).
    pub async fn update_workspace(
        &self,
        id: &str,
        changes: WorkspaceChanges,
    ) -> Result<Workspace, AccountsError> {
        let mut tx = self.inner.store.begin().await?;
        let mut ws = tx
            .workspace(id)
            .await?
            .ok_or_else(|| AccountsError::NotFound(format!("workspace {id} not found")))?;
        if let Some(q) = changes.daily_quota {
            ws.daily_quota = q;
        }
        if let Some(allow) = changes.allow_unverified_senders {
            ws.allow_unverified_senders = allow;
        }
        if let Some(on) = changes.opens {
            ws.tracking.opens = on;
        }
        if let Some(on) = changes.clicks {
            ws.tracking.clicks = on;
        }
        if let Some(on) = changes.unsubscribe {
            ws.tracking.unsubscribe = on;
        }
        tx.put_workspace(&ws).await?;
        tx.commit().await?;
        Ok(ws)
    }

    pub async fn workspace(&self, id: &str) -> Result<Option<Workspace>, AccountsError> {
        Ok(self.inner.store.workspace(id).await?)
    }

    /// The workspace, or `NotFound` (the one check every workspace-scoped
    /// operation starts with).
    pub async fn require_workspace(&self, id: &str) -> Result<Workspace, AccountsError> {
        self.workspace(id)
            .await?
            .ok_or_else(|| AccountsError::NotFound(format!("workspace {id}")))
    }

    pub async fn workspaces(&self) -> Result<Vec<Workspace>, AccountsError> {
        Ok(self.inner.store.workspaces().await?)
    }

    /// Creates an SMTP account; usernames are global because SMTP AUTH
    /// carries no workspace.
    pub async fn create_smtp_account(
        &self,
        workspace_id: &str,
        username: &str,
        password: &str,
        daily_quota: u64,
    ) -> Result<SmtpAccount, AccountsError> {
        self.require_workspace(workspace_id).await?;
        if username.is_empty()
            || username.len() > MAX_USERNAME
            || username
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(AccountsError::Invalid(format!(
                "username must be 1 to {MAX_USERNAME} characters without spaces or control characters"
            )));
        }
        if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
            return Err(AccountsError::Invalid(format!(
                "password must be {MIN_PASSWORD} to {MAX_PASSWORD} octets"
            )));
        }
        let hash = hash_password(password).await?;
        let account = SmtpAccount {
            workspace_id: workspace_id.to_string(),
            username: username.to_string(),
            password_hash: hash,
            daily_quota,
            created_at: rfc3339(self.inner.clock.now_ms()),
        };
        let mut tx = self.inner.store.begin().await?;
        tx.insert_smtp_account(&account).await?;
        tx.commit().await?;
        Ok(account)
    }

    pub async fn smtp_account(&self, username: &str) -> Result<Option<SmtpAccount>, AccountsError> {
        Ok(self.inner.store.smtp_account(username).await?)
    }

    /// A workspace's SMTP accounts (`NotFound` for an unknown workspace).
    pub async fn smtp_accounts_of(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<SmtpAccount>, AccountsError> {
        self.require_workspace(workspace_id).await?;
        Ok(self.inner.store.smtp_accounts_of(workspace_id).await?)
    }

    /// Checks SMTP credentials. Unknown users cost the same argon2 run as
    /// known ones, so timing does not tell which usernames exist.
    pub async fn verify_smtp(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<SmtpAccount>, AccountsError> {
        let account = self.smtp_account(username).await?;
        let tag = self.cache_tag(username, password);
        if self.cached(account.as_ref(), username, &tag) {
            return Ok(account);
        }
        // Only existing accounts are gated (so the map is bounded by the
        // number of accounts, whatever usernames a guesser tries).
        let gate = account.as_ref().map(|_| {
            lock(&self.inner.verifying)
                .entry(username.to_string())
                .or_default()
                .clone()
        });
        let _turn = match &gate {
            Some(g) => Some(g.lock().await),
            None => None,
        };
        if self.cached(account.as_ref(), username, &tag) {
            return Ok(account);
        }
        let hash = account.as_ref().map(|a| a.password_hash.clone());
        self.inner
            .password_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = verify_password(hash, password).await?;
        match account {
            Some(account) if ok => {
                let mut cache = lock(&self.inner.auth_cache);
                if cache.len() > 100_000 {
                    cache.clear();
                }
                cache.insert(username.to_string(), tag);
                Ok(Some(account))
            }
            _ => Ok(None),
        }
    }

    /// argon2 verifications run so far (the expensive path of AUTH).
    pub fn password_checks(&self) -> u64 {
        self.inner
            .password_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether these credentials were verified before (and the account
    /// still exists).
    fn cached(&self, account: Option<&SmtpAccount>, username: &str, tag: &[u8; 32]) -> bool {
        if account.is_none() {
            return false;
        }
        lock(&self.inner.auth_cache)
            .get(username)
            .is_some_and(|cached| bool::from(cached.ct_eq(tag)))
    }

    fn cache_tag(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.cache_key)
            .expect("hmac takes any key length");
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub async fn create_api_key(
        &self,
        workspace_id: &str,
        platform: Platform,
    ) -> Result<NewApiKey, AccountsError> {
        self.require_workspace(workspace_id).await?;
        let mut tx = self.inner.store.begin().await?;
        let key = self
            .create_api_key_in(&mut tx, workspace_id, platform)
            .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// A new API key of a workspace in the caller's transaction (the
    /// workspace may be new in it too).
    pub async fn create_api_key_in(
        &self,
        tx: &mut rackwave_store::Txn,
        workspace_id: &str,
        platform: Platform,
    ) -> Result<NewApiKey, AccountsError> {
        let key = format!("rw_{}_{}", platform.as_str(), random_hex(24));
        let record = ApiKey {
            id: format!("key_{}", random_hex(8)),
            digest: token_digest(&key),
            workspace_id: workspace_id.to_string(),
            platform,
            prefix: key[..key.len().min(16)].to_string(),
            created_at: rfc3339(self.inner.clock.now_ms()),
            last_used_at_ms: None,
        };
        tx.insert_api_key(&record).await?;
        Ok(NewApiKey { key, record })
    }

    /// Finds the key presented by a client. The lookup is by digest, so the
    /// stored value is never compared byte by byte with the secret. Records
    /// the key's last use, at most once a minute (a write per request would
    /// cost more than the request).
    pub async fn api_key(&self, presented: &str) -> Result<Option<ApiKey>, AccountsError> {
        let Some(mut key) = self.inner.store.api_key(&token_digest(presented)).await? else {
            return Ok(None);
        };
        let now = self.inner.clock.now_ms();
        if key.last_used_at_ms.is_none_or(|t| now - t >= 60_000) {
            key.last_used_at_ms = Some(now);
            // Bookkeeping: its failure is logged, never the request's.
            let recorded = async {
                let mut tx = self.inner.store.begin().await?;
                // Revoked meanwhile: nothing to record.
                if tx.api_key(&key.digest).await?.is_none() {
                    return Ok::<_, rackwave_store::StoreError>(false);
                }
                tx.put_api_key(&key).await?;
                tx.commit_eventually().await?;
                Ok(true)
            };
            match recorded.await {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    tracing::warn!(error = %e, key = %key.id, "recording a key's last use failed")
                }
            }
        }
        Ok(Some(key))
    }

    /// A workspace's API keys (`NotFound` for an unknown workspace).
    pub async fn api_keys_of(&self, workspace_id: &str) -> Result<Vec<ApiKey>, AccountsError> {
        self.require_workspace(workspace_id).await?;
        Ok(self.inner.store.api_keys_of(workspace_id).await?)
    }

    /// Revokes a workspace's API key; the next request with it is refused.
    /// `false` when the workspace has no such key.
    pub async fn revoke_api_key(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<bool, AccountsError> {
        let keys = self.inner.store.api_keys_of(workspace_id).await?;
        let Some(key) = keys.into_iter().find(|k| k.id == id) else {
            return Ok(false);
        };
        let mut tx = self.inner.store.begin().await?;
        let gone = tx.delete_api_key(&key.digest).await?;
        tx.commit().await?;
        Ok(gone)
    }

    /// Deletes a workspace's SMTP account. Sessions it authenticated are
    /// refused at their next command ([`Accounts::revoked`]). `false` when
    /// the workspace has no such account.
    pub async fn delete_smtp_account(
        &self,
        workspace_id: &str,
        username: &str,
    ) -> Result<bool, AccountsError> {
        let Some(account) = self.smtp_account(username).await? else {
            return Ok(false);
        };
        if account.workspace_id != workspace_id {
            return Ok(false);
        }
        let mut tx = self.inner.store.begin().await?;
        let gone = tx.delete_smtp_account(username).await?;
        tx.commit().await?;
        lock(&self.inner.auth_cache).remove(username);
        lock(&self.inner.revoked).insert((account.username, account.created_at));
        Ok(gone)
    }

    /// Whether this account was deleted since a session authenticated it
    /// (checked at every command of the session, so without a store read).
    pub fn revoked(&self, account: &SmtpAccount) -> bool {
        let revoked = lock(&self.inner.revoked);
        !revoked.is_empty()
            && revoked.contains(&(account.username.clone(), account.created_at.clone()))
    }
}

/// Locks a mutex, ignoring poisoning: the maps stay consistent even if a
/// holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The hex SHA-256 of a secret token: what is stored of API keys, portal
/// sessions and reset links (a lookup by digest leaks nothing through its
/// timing).
pub fn token_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let store = rackwave_store::Database::open(&dir.path().join("db"), 8)
            .and_then(|d| d.store())
            .unwrap();
        (dir, Accounts::new(store, Clock::manual(0)))
    }

    #[tokio::test]
    async fn password_is_hashed_and_verified() {
        let (_d, a) = accounts();
        let ws = a.create_workspace("Acme", None).await.unwrap();
        let acct = a
            .create_smtp_account(&ws.id, "app1", "correct horse", 100)
            .await
            .unwrap();
        assert!(acct.password_hash.starts_with("$argon2"));
        assert!(!acct.password_hash.contains("correct horse"));
        assert!(a
            .verify_smtp("app1", "correct horse")
            .await
            .unwrap()
            .is_some());
        // second time from the cache
        assert!(a
            .verify_smtp("app1", "correct horse")
            .await
            .unwrap()
            .is_some());
        assert!(a
            .verify_smtp("app1", "wrong horse!")
            .await
            .unwrap()
            .is_none());
        assert!(a
            .verify_smtp("nobody", "correct horse")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_logins_of_one_account_share_one_hash() {
        let (_d, a) = accounts();
        let ws = a.create_workspace("Acme", None).await.unwrap();
        a.create_smtp_account(&ws.id, "busy", "busy password", 1)
            .await
            .unwrap();
        let logins: Vec<_> = (0..20)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.verify_smtp("busy", "busy password").await })
            })
            .collect();
        for l in logins {
            assert!(l.await.unwrap().unwrap().is_some());
        }
        assert_eq!(a.password_checks(), 1);
        // A wrong password is still checked (and refused), every time.
        assert!(a
            .verify_smtp("busy", "wrong password")
            .await
            .unwrap()
            .is_none());
        assert_eq!(a.password_checks(), 2);
    }

    #[tokio::test]
    async fn duplicate_username_and_unknown_workspace_are_refused() {
        let (_d, a) = accounts();
        let ws = a.create_workspace("Acme", None).await.unwrap();
        a.create_smtp_account(&ws.id, "app1", "password1", 1)
            .await
            .unwrap();
        assert!(matches!(
            a.create_smtp_account(&ws.id, "app1", "password2", 1).await,
            Err(AccountsError::Store(StoreError::Conflict(_)))
        ));
        assert!(matches!(
            a.create_smtp_account("ws_nope", "app2", "password2", 1)
                .await,
            Err(AccountsError::NotFound(_))
        ));
        assert!(matches!(
            a.create_smtp_account(&ws.id, "a b", "password2", 1).await,
            Err(AccountsError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn api_keys_are_stored_hashed_and_scoped() {
        let (_d, a) = accounts();
        let ws = a.create_workspace("Acme", None).await.unwrap();
        let k = a.create_api_key(&ws.id, Platform::Telnxo).await.unwrap();
        assert!(k.key.starts_with("rw_telnxo_"));
        let found = a.api_key(&k.key).await.unwrap().unwrap();
        assert_eq!(found.workspace_id, ws.id);
        assert_eq!(found.platform, Platform::Telnxo);
        assert!(a.api_key("rw_telnxo_guess").await.unwrap().is_none());
        for stored in a.inner.store.api_keys_of(&ws.id).await.unwrap() {
            assert!(!format!("{stored:?}").contains(&k.key));
        }
    }
}
