//! A workspace's suppression list: addresses it no longer sends to,
//! each with the reason and the message that caused it.
//!
//! Entries come from the workspace (the API, a CSV import), from hard
//! bounces that say the mailbox or domain does not exist (never from
//! blocks, full mailboxes or deferrals: those say nothing about the
//! address, and suppressing on them loses good recipients), from spam
//! complaints and from unsubscribes. Addresses are compared without case,
//! as every large mailbox provider does, so they are stored lowercase.

use rackwave_core::page;
use rackwave_core::Clock;
use rackwave_smtp_proto::address::is_mailbox;
use rackwave_store::{Page, Store, Suppression, SuppressionReason};

use crate::AccountsError;

/// The most lines one CSV import takes.
pub const MAX_IMPORT_LINES: usize = 100_000;

/// Suppression lists (cheap to clone).
#[derive(Clone)]
pub struct Suppressions {
    store: Store,
    clock: Clock,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Addresses added (or whose entry was replaced).
    pub imported: u64,
    /// Lines not taken, with their number (1-based) and why.
    pub skipped: Vec<(usize, String)>,
}

/// The stored form of an address: trimmed and lowercase; an error names
/// what is wrong.
pub fn normalize(address: &str) -> Result<String, String> {
    let a = address.trim();
    if a.is_empty() {
        return Err("address is empty".into());
    }
    if a.len() > 254 || !is_mailbox(a) {
        return Err(format!("{a:?} is not a mailbox (local-part@domain)"));
    }
    Ok(Suppression::address_key(a))
}

impl Suppressions {
    pub fn new(store: Store, clock: Clock) -> Suppressions {
        Suppressions { store, clock }
    }

    /// The entry that stops mail to `address`, if any (one read).
    pub async fn find(
        &self,
        workspace_id: &str,
        address: &str,
    ) -> Result<Option<Suppression>, AccountsError> {
        let key = Suppression::address_key(address);
        if key.is_empty() {
            return Ok(None);
        }
        Ok(self.store.suppression(workspace_id, &key).await?)
    }

    /// Adds `address` (or replaces its entry).
    pub async fn add(
        &self,
        workspace_id: &str,
        address: &str,
        reason: SuppressionReason,
        message_id: Option<String>,
        detail: Option<String>,
    ) -> Result<Suppression, AccountsError> {
        let s = Suppression {
            workspace_id: workspace_id.to_string(),
            address: normalize(address).map_err(AccountsError::Invalid)?,
            reason,
            message_id,
            detail,
            created_at_ms: self.clock.now_ms(),
        };
        let mut tx = self.store.begin().await?;
        tx.put_suppression(&s).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Removes `address`; whether it was listed.
    pub async fn remove(&self, workspace_id: &str, address: &str) -> Result<bool, AccountsError> {
        let key = Suppression::address_key(address);
        if key.is_empty() {
            return Ok(false);
        }
        let mut tx = self.store.begin().await?;
        let removed = tx.delete_suppression(workspace_id, &key).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// One page, by address, after the cursor (an address).
    pub async fn list(
        &self,
        workspace_id: &str,
        reason: Option<SuppressionReason>,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<Suppression>, AccountsError> {
        let limit = page::limit(limit).map_err(AccountsError::Invalid)?;
        Ok(self
            .store
            .suppressions(workspace_id, reason, cursor, limit)
            .await?)
    }

    /// Adds every address of a CSV text: one per line, an optional second
    /// column with the reason (`manual` when absent), an optional header
    /// line (`address[,reason]`), blank lines ignored. Lines that are not
    /// an address or name an unknown reason are skipped and reported; the
    /// others are added in one transaction (all or none).
    pub async fn import(
        &self,
        workspace_id: &str,
        csv: &str,
    ) -> Result<ImportReport, AccountsError> {
        let mut report = ImportReport::default();
        let mut entries = Vec::new();
        let now = self.clock.now_ms();
        for (i, line) in csv.lines().enumerate() {
            let n = i + 1;
            if n > MAX_IMPORT_LINES {
                return Err(AccountsError::Invalid(format!(
                    "an import takes at most {MAX_IMPORT_LINES} lines"
                )));
            }
            let mut cols = line.split(',').map(|c| c.trim().trim_matches('"').trim());
            let address = cols.next().unwrap_or("");
            let reason = cols.next().unwrap_or("");
            if address.is_empty() && reason.is_empty() {
                continue;
            }
            if n == 1 && address.eq_ignore_ascii_case("address") {
                continue;
            }
            let reason = if reason.is_empty() {
                SuppressionReason::Manual
            } else if let Some(r) = SuppressionReason::parse(&reason.to_ascii_lowercase()) {
                r
            } else {
                report
                    .skipped
                    .push((n, format!("unknown reason {:?}", truncate(reason))));
                continue;
            };
            match normalize(address) {
                Ok(address) => entries.push(Suppression {
                    workspace_id: workspace_id.to_string(),
                    address,
                    reason,
                    message_id: None,
                    detail: Some("imported".into()),
                    created_at_ms: now,
                }),
                Err(e) => report.skipped.push((n, truncate(&e).to_string())),
            }
        }
        let mut tx = self.store.begin().await?;
        for s in &entries {
            tx.put_suppression(s).await?;
        }
        tx.commit().await?;
        report.imported = entries.len() as u64;
        Ok(report)
    }
}

/// At most 200 characters of what a caller sent, for an error message.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
