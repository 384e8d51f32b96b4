//! Retention: the event log and the webhook delivery records are kept for
//! `[webhooks] retention_days`, then deleted, so they do not grow without
//! bound. A delivery still retrying is never deleted, whatever its age.
//! Deletions go in small transactions, so writers wait at most for one.

use std::time::Duration;

use tokio::sync::watch;

use rackwave_store::Store;

use crate::{Events, EventsError};

/// Days as milliseconds.
const DAY_MS: i64 = 86_400_000;

/// How often the pruning runs (real time; what it deletes is decided on
/// the injectable clock).
const EVERY: Duration = Duration::from_secs(3600);

/// Records deleted per transaction at most.
const BATCH: usize = 1000;

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub deliveries: u64,
    /// Entries of a shared store's message log.
    pub messages: u64,
}

/// Deletes events and finished deliveries older than the retention.
pub(crate) async fn prune(events: &Events) -> Result<Pruned, EventsError> {
    let inner = &events.inner;
    let store = &inner.store;
    let mut pruned = Pruned::default();
    let keep = inner.keep_messages_ms;
    if keep > 0 && store.is_shared() {
        let cutoff = inner.clock.now_ms().saturating_sub(keep);
        // Never final a long while after the longest a message stays
        // queued: its node never said (gone, or its spool lost it).
        let stale = cutoff.saturating_sub(inner.keep_pending_ms);
        pruned.messages = in_batches(store, Past::MessageLog { cutoff, stale }).await?;
    }
    let days = inner.config.retention_days;
    if days == 0 {
        return Ok(pruned);
    }
    let cutoff = inner
        .clock
        .now_ms()
        .saturating_sub((days as i64).saturating_mul(DAY_MS));
    // Deliveries first: a delivery whose event is gone could not be resent.
    pruned.deliveries = in_batches(store, Past::Deliveries(cutoff)).await?;
    pruned.events = in_batches(store, Past::Events(cutoff)).await?;
    if pruned != Pruned::default() {
        tracing::info!(
            events = pruned.events,
            deliveries = pruned.deliveries,
            messages = pruned.messages,
            "pruned events and webhook deliveries past retention"
        );
    }
    Ok(pruned)
}

/// What one kind of pruning deletes: records from before a cutoff.
#[derive(Clone, Copy)]
enum Past {
    /// Final entries of the shared message log, and those never made
    /// final created before `stale`.
    MessageLog {
        cutoff: i64,
        stale: i64,
    },
    /// Finished webhook deliveries.
    Deliveries(i64),
    Events(i64),
}

/// Deletes what `past` names in transactions of at most [`BATCH`]
/// records each, so writers wait at most for one; the total deleted.
async fn in_batches(store: &Store, past: Past) -> Result<u64, EventsError> {
    let mut total = 0;
    loop {
        let mut tx = store.begin().await?;
        let (n, more) = match past {
            Past::MessageLog { cutoff, stale } => {
                tx.prune_message_log(cutoff, stale, BATCH).await?
            }
            Past::Deliveries(cutoff) => tx.prune_deliveries(cutoff, BATCH).await?,
            Past::Events(cutoff) => tx.prune_events(cutoff, BATCH).await?,
        };
        tx.commit_eventually().await?;
        total += n;
        if !more {
            return Ok(total);
        }
    }
}

/// Prunes once an hour until `shutdown` turns true.
pub(crate) async fn run(events: Events, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = prune(&events).await {
            tracing::error!(error = %e, "pruning the event log failed");
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
