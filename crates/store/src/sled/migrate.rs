//! The trees of earlier versions: workspaces, SMTP accounts, API keys and
//! sender domains each had a tree of their own (and two had an index tree
//! beside them). At open their records move into the store's tree under
//! today's keys, in one batch; the old trees are dropped only after that
//! batch is flushed, so a crash in between repeats the move (it is
//! idempotent) and loses nothing. The event log and the outbox were
//! already in the store's tree, in today's layout.

use serde::Deserialize;

use super::keys::{self, cat, pair};
use super::storage;
use crate::{Result, StoreError};

/// (tree, its index tree if any)
const LEGACY: [(&str, Option<&str>); 4] = [
    ("workspaces", None),
    ("smtp_accounts", Some("smtp_accounts_by_workspace")),
    ("api_keys", None),
    ("sender_domains", Some("sender_domains_by_workspace")),
];

/// The fields the move needs (a workspace record has neither).
#[derive(Deserialize)]
struct Owned {
    #[serde(default)]
    workspace_id: String,
    #[serde(default)]
    id: String,
}

pub(super) fn legacy_trees(db: &::sled::Db, tree: &::sled::Tree) -> Result<()> {
    let names: Vec<Vec<u8>> = db.tree_names().into_iter().map(|n| n.to_vec()).collect();
    let present = |name: &str| names.iter().any(|n| n == name.as_bytes());
    if !LEGACY.iter().any(|(name, _)| present(name)) {
        return Ok(());
    }
    let mut batch = ::sled::Batch::default();
    let mut moved = 0u64;
    for (name, _) in LEGACY.iter().filter(|(name, _)| present(name)) {
        let old = db.open_tree(name).map_err(storage)?;
        for item in old.iter() {
            let (key, value) = item.map_err(storage)?;
            let owner: Owned = serde_json::from_slice(&value).map_err(|e| {
                StoreError::Corrupt(format!("{name}/{}: {e}", String::from_utf8_lossy(&key)))
            })?;
            let ws = owner.workspace_id.as_str();
            match *name {
                "workspaces" => batch.insert(cat(&[keys::WORKSPACE, &key]), value),
                "smtp_accounts" => {
                    batch.insert(cat(&[keys::ACCOUNT, &key]), value);
                    batch.insert(pair(keys::ACCOUNTS_OF, ws, &key), Vec::<u8>::new());
                }
                "api_keys" => {
                    // The key was the digest; the record now carries it.
                    let mut record: serde_json::Value = serde_json::from_slice(&value)
                        .map_err(|e| StoreError::Corrupt(format!("api_keys: {e}")))?;
                    record["digest"] = String::from_utf8_lossy(&key).into_owned().into();
                    batch.insert(
                        cat(&[keys::API_KEY, &key]),
                        serde_json::to_vec(&record).expect("a JSON value serializes"),
                    );
                    batch.insert(pair(keys::KEYS_OF, ws, owner.id.as_bytes()), key.to_vec());
                }
                _ => {
                    batch.insert(cat(&[keys::DOMAIN, &key]), value);
                    batch.insert(pair(keys::DOMAINS_OF, ws, &key), Vec::<u8>::new());
                }
            }
            moved += 1;
        }
    }
    tree.apply_batch(batch).map_err(storage)?;
    db.flush().map_err(storage)?;
    for (name, index) in LEGACY {
        for drop in [Some(name), index].into_iter().flatten() {
            if present(drop) {
                db.drop_tree(drop).map_err(storage)?;
            }
        }
    }
    db.flush().map_err(storage)?;
    tracing::info!(
        records = moved,
        "moved records of an earlier version into the store"
    );
    Ok(())
}
