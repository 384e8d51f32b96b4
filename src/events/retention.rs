//! Retention: the event log and the webhook delivery records are kept for
//! `[webhooks] retention_days`, then deleted, so they do not grow without
//! bound. A delivery still retrying is never deleted, whatever its age.
//!
//! Both stores are ordered the same way: one group of keys per workspace
//! (events, `e/<ws>\0<seq>`) or per endpoint (deliveries,
//! `l/<endpoint>\0<seq>`), oldest first within a group. Pruning walks each
//! group from its start and stops at the first entry young enough to keep,
//! so it reads only what it deletes plus one entry per group.

use std::time::Duration;

use tokio::sync::watch;

use super::{EventsError, Inner};

/// Days as milliseconds.
const DAY_MS: i64 = 86_400_000;

/// How often the pruning runs (real time; what it deletes is decided on
/// the injectable clock).
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes staged in one batch at most.
pub(super) const BATCH: usize = 1000;

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub deliveries: u64,
}

/// What a walk does with one entry.
pub(super) enum Visit<T> {
    /// Delete it (`T` says what to delete) and go on.
    Delete(T),
    /// Keep it and go on with the group.
    Keep,
    /// Keep it and everything after it in the group.
    Stop,
}

/// Walks every group under `prefix` (keys `prefix<group>\0<seq>`) in key
/// order. `visit` sees each entry's key and value; what it marks for
/// deletion is handed to `delete` in batches of at most [`BATCH`], which
/// deletes (it may check again, under whatever lock its store needs, and
/// spare some) and returns how many it deleted. Returns the total.
///
/// The walk itself holds no lock: a store's writers wait at most for one
/// batch, not for the whole pass.
pub(super) fn walk_groups<T>(
    tree: &sled::Tree,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<Visit<T>, EventsError>,
    mut delete: impl FnMut(Vec<T>) -> Result<u64, EventsError>,
) -> Result<u64, EventsError> {
    let mut deleted = 0;
    let mut marked = Vec::new();
    let mut from = prefix.to_vec();
    let end = [&prefix[..prefix.len() - 1], &[prefix[prefix.len() - 1] + 1]].concat();
    loop {
        let Some(first) = tree.range(from.clone()..end.clone()).next() else {
            break;
        };
        let (key, _) = first?;
        let Some(nul) = key[prefix.len()..].iter().position(|b| *b == 0) else {
            // Not of the group shape: step over it.
            from = [&key[..], &[0]].concat();
            continue;
        };
        let group = key[..prefix.len() + nul].to_vec();
        let group_end = [&group[..], &[1]].concat();
        for item in tree.range(key.to_vec()..group_end.clone()) {
            let (k, v) = item?;
            match visit(&k, &v)? {
                Visit::Delete(what) => {
                    marked.push(what);
                    if marked.len() >= BATCH {
                        deleted += delete(std::mem::take(&mut marked))?;
                    }
                }
                Visit::Keep => {}
                Visit::Stop => break,
            }
        }
        from = group_end;
    }
    if !marked.is_empty() {
        deleted += delete(marked)?;
    }
    Ok(deleted)
}

/// Deletes every key of every entry in one batch; returns the number of
/// entries.
pub(super) fn remove_entries(
    tree: &sled::Tree,
    entries: Vec<Vec<Vec<u8>>>,
) -> Result<u64, EventsError> {
    let mut batch = sled::Batch::default();
    let n = entries.len() as u64;
    for key in entries.into_iter().flatten() {
        batch.remove(key);
    }
    tree.apply_batch(batch)?;
    Ok(n)
}

/// Deletes events and finished deliveries older than the retention.
pub(super) fn prune(inner: &Inner) -> Result<Pruned, EventsError> {
    let days = inner.config.retention_days;
    if days == 0 {
        return Ok(Pruned::default());
    }
    let cutoff = inner
        .clock
        .now_ms()
        .saturating_sub((days as i64).saturating_mul(DAY_MS));
    // Deliveries first: a delivery whose event is gone could not be resent.
    let deliveries = inner.emitter.prune(cutoff)?;
    let events = super::log::prune(&inner.tree, cutoff)?;
    if events + deliveries > 0 {
        tracing::info!(
            events,
            deliveries,
            "pruned events and webhook deliveries past retention"
        );
    }
    Ok(Pruned { events, deliveries })
}

/// Prunes once an hour until `shutdown` turns true.
pub(super) async fn run(inner: std::sync::Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let pass = inner.clone();
        match tokio::task::spawn_blocking(move || prune(&pass)).await {
            Ok(Err(e)) => tracing::error!(error = %e, "pruning the event log failed"),
            Err(e) => tracing::error!(error = %e, "pruning task failed"),
            Ok(Ok(_)) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
