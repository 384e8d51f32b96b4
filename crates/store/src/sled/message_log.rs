//! The shared message log on sled (see `keys` for the layout). A single
//! node's spool answers for its messages, so `serve` never fills this on
//! sled; it is here so the backends answer alike (the conformance suite,
//! `storage migrate`).

use super::keys::{self, cat, component, group};
use super::kv::{encode, Kv};
use super::listing::{newest_first, suffix, time, Window};
use super::SledTxn;
use crate::message_log::{MessageLogEntry, MessageLogQuery};
use crate::{Page, Result};

fn entry_key(id: &str) -> Vec<u8> {
    cat(&[keys::MESSAGE_LOG, id.as_bytes()])
}

/// The recipient index's prefix of one address.
fn recipient_prefix(workspace_id: &str, to_key: &str) -> Vec<u8> {
    cat(&[
        &group(keys::MESSAGE_LOG_TO, workspace_id),
        to_key.as_bytes(),
        b"\0",
    ])
}

/// Every index key of an entry.
fn index_keys(e: &MessageLogEntry) -> Vec<Vec<u8>> {
    let listed = suffix(e.created_at_ms, &e.id);
    let mut out = vec![
        cat(&[&group(keys::MESSAGE_LOG_OF, &e.workspace_id), &listed]),
        cat(&[
            &recipient_prefix(&e.workspace_id, &e.recipient_key()),
            &listed,
        ]),
        cat(&[
            &group(keys::MESSAGE_LOG_QUEUE, &e.queue_id),
            e.id.as_bytes(),
        ]),
    ];
    match e.finished_at_ms {
        Some(at) => out.push(cat(&[keys::MESSAGE_LOG_FINISHED, &suffix(at, &e.id)])),
        None => out.push(cat(&[
            &group(keys::MESSAGE_LOG_PENDING, &e.workspace_id),
            e.id.as_bytes(),
        ])),
    }
    out
}

pub(super) fn entry(kv: &impl Kv, id: &str) -> Result<Option<MessageLogEntry>> {
    if component("message id", id).is_err() {
        return Ok(None);
    }
    kv.get_json(&entry_key(id))
}

pub(super) fn listing(
    kv: &impl Kv,
    workspace_id: &str,
    query: &MessageLogQuery,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<MessageLogEntry>> {
    let prefix = match &query.to {
        Some(to) => recipient_prefix(workspace_id, &to.to_lowercase()),
        None => group(keys::MESSAGE_LOG_OF, workspace_id),
    };
    let window = Window {
        since_ms: query.since_ms,
        until_ms: query.until_ms,
    };
    newest_first(
        kv,
        prefix,
        window,
        cursor,
        limit,
        |id| entry(kv, id),
        |e| e.workspace_id == workspace_id && query.keeps(e),
    )
}

pub(super) fn of_queue(kv: &impl Kv, queue_id: &str) -> Result<Vec<MessageLogEntry>> {
    if component("queue id", queue_id).is_err() {
        return Ok(Vec::new());
    }
    let prefix = group(keys::MESSAGE_LOG_QUEUE, queue_id);
    let mut out = Vec::new();
    for (key, _) in kv.scan_prefix(&prefix)? {
        if let Some(e) = entry(kv, &String::from_utf8_lossy(&key[prefix.len()..]))? {
            out.push(e);
        }
    }
    Ok(out)
}

pub(super) fn pending(kv: &impl Kv, workspace_id: &str) -> Result<u64> {
    if component("workspace id", workspace_id).is_err() {
        return Ok(0);
    }
    let prefix = group(keys::MESSAGE_LOG_PENDING, workspace_id);
    Ok(kv.scan_prefix(&prefix)?.len() as u64)
}

impl SledTxn {
    pub(super) fn put_log_entries(&mut self, entries: &[MessageLogEntry]) -> Result<()> {
        for e in entries {
            e.check()?;
        }
        for e in entries {
            // The old entry's index keys go first: its status (and so its
            // finished time) may have changed.
            if let Some(old) = entry(self, &e.id)? {
                for key in index_keys(&old) {
                    self.remove(key);
                }
            }
            for key in index_keys(e) {
                self.put(key, Vec::new());
            }
            self.put(entry_key(&e.id), encode(e));
        }
        Ok(())
    }

    pub(super) fn prune_log(
        &mut self,
        cutoff_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> Result<(u64, bool)> {
        let start = keys::MESSAGE_LOG_FINISHED.to_vec();
        let end = cat(&[keys::MESSAGE_LOG_FINISHED, &time(cutoff_ms)]);
        let mut old: Vec<String> = self
            .scan(&start, &end, false, limit)?
            .iter()
            .map(|(key, _)| {
                String::from_utf8_lossy(&key[keys::MESSAGE_LOG_FINISHED.len() + 9..]).into_owned()
            })
            .collect();
        // The never-final: every pending entry read (sled's log is never
        // filled by `serve`, so this stays small).
        for (key, _) in self.scan_prefix(keys::MESSAGE_LOG_PENDING)? {
            if old.len() >= limit {
                break;
            }
            let rest = &key[keys::MESSAGE_LOG_PENDING.len()..];
            let id = rest.iter().position(|b| *b == 0).map(|at| &rest[at + 1..]);
            let Some(id) = id.map(|id| String::from_utf8_lossy(id).into_owned()) else {
                continue;
            };
            if entry(self, &id)?.is_some_and(|e| e.created_at_ms < stale_before_ms) {
                old.push(id);
            }
        }
        let mut n = 0;
        for id in &old {
            if let Some(e) = entry(self, id)? {
                for index in index_keys(&e) {
                    self.remove(index);
                }
                self.remove(entry_key(&e.id));
                n += 1;
            }
        }
        Ok((n, old.len() >= limit))
    }
}
