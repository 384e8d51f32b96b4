//! Workspaces and what each holds: SMTP accounts, API keys, sender
//! domains, suppressions and idempotency keys.
//!
//! Workspaces, API keys and idempotency keys serve both platforms, so they
//! live in the portal's database with the other shared records; SMTP
//! accounts, sender domains and suppressions are MigoSMTP's own.

use super::txn::{json, Conn, Part, PgTxn};
use super::{storable, Scope};
use crate::sled::keys::component;
use crate::*;

async fn shared<'t>(t: &'t PgTxn, scope: Scope<'_>) -> Result<&'t Conn> {
    t.on(Part::Portal, scope).await
}

async fn migosmtp<'t>(t: &'t PgTxn, scope: Scope<'_>) -> Result<&'t Conn> {
    t.on(Part::Migosmtp, scope).await
}

/// Whether a statement changed a row; `Conflict` with `taken` if not (an
/// `INSERT … ON CONFLICT DO NOTHING` that found the key taken: checked
/// this way rather than by a failing statement, which would abort the
/// whole transaction where sled's caller may go on).
fn inserted(rows: u64, taken: impl FnOnce() -> String) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::Conflict(taken()));
    }
    Ok(())
}

/// Whether a replacement found its record; `Invalid` naming it if not.
fn replaced(rows: u64, what: impl FnOnce() -> String) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::Invalid(format!("{} does not exist", what())));
    }
    Ok(())
}

pub(super) async fn workspace(t: &PgTxn, id: &str) -> Result<Option<Workspace>> {
    if !storable(id) {
        return Ok(None);
    }
    t.cached(format!("workspace:{id}"), async {
        shared(t, Scope::Service)
            .await?
            .record("SELECT record FROM workspaces WHERE id = $1", &[&id])
            .await
    })
    .await
}

pub(super) async fn workspaces(t: &PgTxn) -> Result<Vec<Workspace>> {
    shared(t, Scope::Service)
        .await?
        .records(
            "SELECT record FROM workspaces ORDER BY id COLLATE \"C\"",
            &[],
        )
        .await
}

/// Every node asks every 2 s: the partial index of `0008_suspended.sql`
/// holds only the suspended.
pub(super) async fn suspended_workspaces(t: &PgTxn) -> Result<Vec<String>> {
    shared(t, Scope::Service)
        .await?
        .query(
            "SELECT id FROM workspaces WHERE (record ->> 'suspended') IS NOT NULL ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            row.try_get(0)
                .map_err(|e| StoreError::Corrupt(format!("a suspended workspace: {e}")))
        })
        .collect()
}

pub(super) async fn smtp_account(t: &PgTxn, username: &str) -> Result<Option<SmtpAccount>> {
    if !storable(username) {
        return Ok(None);
    }
    migosmtp(t, Scope::Service)
        .await?
        .record(
            "SELECT record FROM smtp_accounts WHERE username = $1",
            &[&username],
        )
        .await
}

pub(super) async fn smtp_accounts_of(t: &PgTxn, workspace_id: &str) -> Result<Vec<SmtpAccount>> {
    migosmtp(t, Scope::Workspace(workspace_id))
        .await?
        .records(
            "SELECT record FROM smtp_accounts WHERE workspace_id = $1 ORDER BY username COLLATE \"C\"",
            &[&workspace_id],
        )
        .await
}

pub(super) async fn api_key(t: &PgTxn, digest: &str) -> Result<Option<ApiKey>> {
    if !storable(digest) {
        return Ok(None);
    }
    shared(t, Scope::Service)
        .await?
        .record("SELECT record FROM api_keys WHERE digest = $1", &[&digest])
        .await
}

pub(super) async fn api_keys_of(t: &PgTxn, workspace_id: &str) -> Result<Vec<ApiKey>> {
    shared(t, Scope::Workspace(workspace_id))
        .await?
        .records(
            "SELECT record FROM api_keys WHERE workspace_id = $1 ORDER BY (record->>'id') COLLATE \"C\"",
            &[&workspace_id],
        )
        .await
}

pub(super) async fn sender_domain(t: &PgTxn, domain: &str) -> Result<Option<SenderDomain>> {
    if !storable(domain) {
        return Ok(None);
    }
    t.cached(format!("domain:{domain}"), async {
        migosmtp(t, Scope::Service)
            .await?
            .record(
                "SELECT record FROM sender_domains WHERE domain = $1",
                &[&domain],
            )
            .await
    })
    .await
}

pub(super) async fn sender_domains_of(t: &PgTxn, workspace_id: &str) -> Result<Vec<SenderDomain>> {
    t.cached(format!("domains:{workspace_id}"), async {
        migosmtp(t, Scope::Workspace(workspace_id))
            .await?
            .records(
                "SELECT record FROM sender_domains WHERE workspace_id = $1 ORDER BY domain COLLATE \"C\"",
                &[&workspace_id],
            )
            .await
    })
    .await
}

/// A sending domain's writes make its cached reads stale.
fn domain_written(t: &PgTxn, domain: &str, workspace_id: &str) {
    t.stale(format!("domain:{domain}"));
    t.stale(format!("domains:{workspace_id}"));
}

pub(super) async fn idempotency(
    t: &PgTxn,
    workspace_id: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>> {
    if !storable(key) {
        return Ok(None);
    }
    shared(t, Scope::Workspace(workspace_id))
        .await?
        .record(
            "SELECT record FROM idempotency_keys WHERE workspace_id = $1 AND key = $2",
            &[&workspace_id, &key],
        )
        .await
}

pub(super) async fn suppression(
    t: &PgTxn,
    workspace_id: &str,
    address: &str,
) -> Result<Option<Suppression>> {
    if !storable(address) || !storable(workspace_id) {
        return Ok(None);
    }
    if let Some(store) = t.view_of() {
        return store.suppression_together(workspace_id, address).await;
    }
    migosmtp(t, Scope::Workspace(workspace_id))
        .await?
        .record(
            "SELECT record FROM suppressions WHERE workspace_id = $1 AND address = $2",
            &[&workspace_id, &address],
        )
        .await
}

pub(super) async fn suppressions(
    t: &PgTxn,
    workspace_id: &str,
    reason: Option<SuppressionReason>,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Suppression>> {
    let reason = reason.map(|r| super::label(&r));
    let after = after.unwrap_or("");
    let rows = migosmtp(t, Scope::Workspace(workspace_id))
        .await?
        .records::<Suppression>(
            "SELECT record FROM suppressions
              WHERE workspace_id = $1 AND address > $2
                AND ($3::text IS NULL OR record->>'reason' = $3)
              ORDER BY address COLLATE \"C\" LIMIT $4",
            &[&workspace_id, &after, &reason, &super::fetch_limit(limit)],
        )
        .await?;
    Ok(super::page(rows, limit, |s| s.address.clone()))
}

pub(super) async fn insert_workspace(t: &PgTxn, workspace: &Workspace) -> Result<()> {
    component("workspace id", &workspace.id)?;
    t.stale(format!("workspace:{}", workspace.id));
    let rows = shared(t, Scope::Workspace(&workspace.id))
        .await?
        .execute(
            "INSERT INTO workspaces (id, record) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&workspace.id, &json(workspace)],
        )
        .await?;
    inserted(rows, || {
        format!("workspace {} already exists", workspace.id)
    })
}

pub(super) async fn put_workspace(t: &PgTxn, workspace: &Workspace) -> Result<()> {
    t.stale(format!("workspace:{}", workspace.id));
    let rows = shared(t, Scope::Workspace(&workspace.id))
        .await?
        .execute(
            "UPDATE workspaces SET record = $2 WHERE id = $1",
            &[&workspace.id, &json(workspace)],
        )
        .await?;
    replaced(rows, || format!("workspace {}", workspace.id))
}

pub(super) async fn insert_smtp_account(t: &PgTxn, account: &SmtpAccount) -> Result<()> {
    component("username", &account.username)?;
    component("workspace id", &account.workspace_id)?;
    // The username is global: the check must see every workspace's.
    let rows = migosmtp(t, Scope::Service)
        .await?
        .execute(
            "INSERT INTO smtp_accounts (username, workspace_id, record) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&account.username, &account.workspace_id, &json(account)],
        )
        .await?;
    inserted(rows, || {
        format!("smtp account {} already exists", account.username)
    })
}

pub(super) async fn insert_api_key(t: &PgTxn, key: &ApiKey) -> Result<()> {
    component("key digest", &key.digest)?;
    component("workspace id", &key.workspace_id)?;
    let rows = shared(t, Scope::Service)
        .await?
        .execute(
            "INSERT INTO api_keys (digest, workspace_id, record) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&key.digest, &key.workspace_id, &json(key)],
        )
        .await?;
    inserted(rows, || "an API key with this digest exists".into())
}

pub(super) async fn put_api_key(t: &PgTxn, key: &ApiKey) -> Result<()> {
    let rows = shared(t, Scope::Service)
        .await?
        .execute(
            "UPDATE api_keys SET record = $2 WHERE digest = $1",
            &[&key.digest, &json(key)],
        )
        .await?;
    replaced(rows, || format!("API key {}", key.id))
}

pub(super) async fn delete_api_key(t: &PgTxn, digest: &str) -> Result<bool> {
    if !storable(digest) {
        return Ok(false);
    }
    let rows = shared(t, Scope::Service)
        .await?
        .execute("DELETE FROM api_keys WHERE digest = $1", &[&digest])
        .await?;
    Ok(rows > 0)
}

pub(super) async fn delete_smtp_account(t: &PgTxn, username: &str) -> Result<bool> {
    if !storable(username) {
        return Ok(false);
    }
    let rows = migosmtp(t, Scope::Service)
        .await?
        .execute(
            "DELETE FROM smtp_accounts WHERE username = $1",
            &[&username],
        )
        .await?;
    Ok(rows > 0)
}

pub(super) async fn insert_sender_domain(t: &PgTxn, domain: &SenderDomain) -> Result<()> {
    component("domain", &domain.domain)?;
    component("workspace id", &domain.workspace_id)?;
    domain_written(t, &domain.domain, &domain.workspace_id);
    let rows = migosmtp(t, Scope::Service)
        .await?
        .execute(
            "INSERT INTO sender_domains (domain, workspace_id, record) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&domain.domain, &domain.workspace_id, &json(domain)],
        )
        .await?;
    inserted(rows, || {
        format!("domain {} is already registered", domain.domain)
    })
}

pub(super) async fn put_sender_domain(t: &PgTxn, domain: &SenderDomain) -> Result<()> {
    domain_written(t, &domain.domain, &domain.workspace_id);
    let rows = migosmtp(t, Scope::Service)
        .await?
        .execute(
            "UPDATE sender_domains SET record = $2 WHERE domain = $1",
            &[&domain.domain, &json(domain)],
        )
        .await?;
    replaced(rows, || format!("domain {}", domain.domain))
}

pub(super) async fn delete_sender_domain(t: &PgTxn, domain: &str) -> Result<bool> {
    if !storable(domain) {
        return Ok(false);
    }
    let gone = migosmtp(t, Scope::Service)
        .await?
        .query(
            "DELETE FROM sender_domains WHERE domain = $1 RETURNING workspace_id",
            &[&domain],
        )
        .await?;
    for row in &gone {
        let workspace_id: String = row
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(format!("a sending domain: {e}")))?;
        domain_written(t, domain, &workspace_id);
    }
    Ok(!gone.is_empty())
}

pub(super) async fn put_idempotency(t: &PgTxn, record: &IdempotencyRecord) -> Result<()> {
    component("workspace id", &record.workspace_id)?;
    component("idempotency key", &record.key)?;
    shared(t, Scope::Workspace(&record.workspace_id))
        .await?
        .execute(
            "INSERT INTO idempotency_keys (workspace_id, key, created_at_ms, record)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (workspace_id, key)
             DO UPDATE SET created_at_ms = EXCLUDED.created_at_ms, record = EXCLUDED.record",
            &[
                &record.workspace_id,
                &record.key,
                &record.created_at_ms,
                &json(record),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn delete_idempotency(t: &PgTxn, workspace_id: &str, key: &str) -> Result<()> {
    shared(t, Scope::Workspace(workspace_id))
        .await?
        .execute(
            "DELETE FROM idempotency_keys WHERE workspace_id = $1 AND key = $2",
            &[&workspace_id, &key],
        )
        .await?;
    Ok(())
}

pub(super) async fn prune_idempotency(
    t: &PgTxn,
    cutoff_ms: i64,
    limit: usize,
) -> Result<(u64, bool)> {
    let n = shared(t, Scope::Service)
        .await?
        .execute(
            "DELETE FROM idempotency_keys WHERE (workspace_id, key) IN (
                 SELECT workspace_id, key FROM idempotency_keys
                  WHERE created_at_ms < $1 ORDER BY created_at_ms LIMIT $2)",
            &[&cutoff_ms, &super::limit_of(limit)],
        )
        .await?;
    Ok((n, n as usize == limit))
}

pub(super) async fn put_suppression(t: &PgTxn, suppression: &Suppression) -> Result<()> {
    component("workspace id", &suppression.workspace_id)?;
    component("address", &suppression.address)?;
    migosmtp(t, Scope::Workspace(&suppression.workspace_id))
        .await?
        .execute(
            "INSERT INTO suppressions (workspace_id, address, record) VALUES ($1, $2, $3)
             ON CONFLICT (workspace_id, address) DO UPDATE SET record = EXCLUDED.record",
            &[
                &suppression.workspace_id,
                &suppression.address,
                &json(suppression),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn delete_suppression(
    t: &PgTxn,
    workspace_id: &str,
    address: &str,
) -> Result<bool> {
    if workspace_id.is_empty() {
        return Ok(false);
    }
    let rows = migosmtp(t, Scope::Workspace(workspace_id))
        .await?
        .execute(
            "DELETE FROM suppressions WHERE workspace_id = $1 AND address = $2",
            &[&workspace_id, &address],
        )
        .await?;
    Ok(rows > 0)
}
