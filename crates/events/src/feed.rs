//! The spool's change feed turned into events. Each entry the spool writes
//! (in the same atomic batch as the message's history) is read after a
//! durable cursor; its event, one delivery per matching endpoint (the
//! outbox) and the new cursor are committed in ONE transaction, durably,
//! and only then is the spool's feed trimmed. A crash at any point
//! therefore neither loses an event nor stores one twice.
//!
//! The entry carries the typed history event of `rackwave-core`; it
//! becomes the webhook data through [`EmailEvent::data`], the one place a
//! history entry turns into an event. An entry that cannot be read is
//! logged and counted (`rackwave_events_feed_unreadable_total`) and the
//! feed goes on past it: it never stops the other events, and never goes
//! missing without a word.
//!
//! A bounce that says the address does not exist (see
//! [`BounceType::suppresses`]) also puts the address on the workspace's
//! suppression list, in the same transaction as its event, unless it is
//! there already (the first cause is kept).
//!
//! [`EmailEvent::data`]: rackwave_core::event::EmailEvent::data
//! [`BounceType::suppresses`]: rackwave_core::event::BounceType::suppresses

use std::time::Duration;

use rackwave_core::event::{EmailEvent, Event};
use rackwave_core::Timestamp;
use rackwave_queue::{FeedEntry, MessageRecord};
use rackwave_store::{MessageLogEntry, StoreError, Suppression, SuppressionReason, Txn};
use tokio::sync::watch;

use crate::{Events, EventsError, Targets};

/// Feed entries consumed per batch.
const BATCH: usize = 512;

/// Consumes what the feed has; returns how many entries it handled.
async fn consume(events: &Events) -> Result<usize, EventsError> {
    let inner = &events.inner;
    let after = inner.store.cursor(&inner.feed_cursor).await?;
    let entries = inner.spool.feed(after, BATCH)?;
    let Some(last) = entries.last().map(|e| match e {
        Ok(entry) => entry.seq,
        Err(unreadable) => unreadable.seq,
    }) else {
        inner.consumed.send_replace(after);
        return Ok(0);
    };
    // Read before the transaction (which holds every node's write turn on
    // a shared store): the records as they stand now, after the entries.
    let shared_log = if inner.store.is_shared() {
        messages_to_share(inner, &entries)
    } else {
        Vec::new()
    };
    let now = inner.clock.now_ms();
    let mut tx = inner.store.begin().await?;
    let mut batch = Vec::with_capacity(entries.len());
    for entry in &entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(unreadable) => {
                inner.metrics.feed_unreadable();
                tracing::error!(
                    seq = unreadable.seq,
                    reason = %unreadable.reason,
                    "webhook events: a spool feed entry cannot be read; its event is not sent"
                );
                continue;
            }
        };
        let data = entry.event.data(
            entry.message.clone(),
            Timestamp(entry.at_ms),
            entry.attempt_number,
            entry.reply.clone(),
        );
        batch.push(Event::new(
            &entry.workspace_id,
            Timestamp(entry.at_ms),
            data,
        ));
        suppress_on_hard_bounce(&mut tx, entry).await?;
    }
    tx.put_message_log(&shared_log).await?;
    // The batch's events in one append (a few statements on PostgreSQL,
    // whatever its size), then their deliveries.
    let queued = Targets::default().record_all(&mut tx, &batch, now).await?;
    tx.set_cursor(&inner.feed_cursor, last).await?;
    tx.commit().await?;
    inner.consumed.send_replace(last);
    inner.spool.trim_feed(last).await?;
    if queued > 0 {
        events.kick();
    }
    Ok(entries.len())
}

/// The shared message log's entry of each message the batch changed, as
/// the spool has it now (a later change comes with a later feed entry, so
/// the log never goes back). What cannot be read or kept is logged and
/// left out: it never stops the feed.
fn messages_to_share(
    inner: &crate::Inner,
    entries: &[Result<FeedEntry, rackwave_queue::UnreadableEntry>],
) -> Vec<MessageLogEntry> {
    let mut seen = std::collections::HashSet::new();
    let mut log = Vec::new();
    for entry in entries.iter().flatten() {
        let id = &entry.message.message_id;
        if !seen.insert(id.as_str()) {
            continue;
        }
        let (record, json) = match inner.spool.get_with_json(id) {
            Ok(Some(found)) => found,
            // Gone already: retention deleted a message finished long ago.
            Ok(None) => continue,
            Err(e) => {
                inner.metrics.feed_unreadable();
                tracing::error!(error = %e, message_id = %id, "a spool record cannot be read; the shared message log keeps its last state");
                continue;
            }
        };
        let entry = log_entry(&record, json, &inner.node);
        match entry.check() {
            Ok(()) => log.push(entry),
            Err(reason) => {
                tracing::warn!(%reason, message_id = %id, "a message the shared log cannot key: not listed from other nodes")
            }
        }
    }
    log
}

/// A spool record (`json`: as stored) as the shared message log keeps
/// it, held by `node`.
pub fn log_entry(record: &MessageRecord, json: String, node: &str) -> MessageLogEntry {
    MessageLogEntry {
        id: record.id.clone(),
        workspace_id: record.workspace_id.clone(),
        queue_id: record.queue_id.clone(),
        from: record.from.clone(),
        to: record.to.clone(),
        status: record.status.as_str().to_string(),
        tags: record.tags.clone(),
        created_at_ms: record.created_at_ms,
        finished_at_ms: record.status.is_final().then(|| {
            record
                .history
                .last()
                .map_or(record.created_at_ms, |h| h.at_ms)
        }),
        node: node.to_string(),
        record: json,
    }
}

/// Suppresses the recipient of a bounce that says the address is bad.
async fn suppress_on_hard_bounce(tx: &mut Txn, entry: &FeedEntry) -> Result<(), EventsError> {
    let EmailEvent::Bounced(detail) = &entry.event else {
        return Ok(());
    };
    if !detail.bounce_type.suppresses() {
        return Ok(());
    }
    let address = Suppression::address_key(&entry.message.to);
    if address.is_empty()
        || tx
            .suppression(&entry.workspace_id, &address)
            .await?
            .is_some()
    {
        return Ok(());
    }
    let put = tx
        .put_suppression(&Suppression {
            workspace_id: entry.workspace_id.clone(),
            address,
            reason: SuppressionReason::HardBounce,
            message_id: Some(entry.message.message_id.clone()),
            // A remote server's words, as text every store holds.
            detail: Some(
                format!("{} {}", detail.bounce_code, detail.bounce_reason).replace('\0', ""),
            ),
            created_at_ms: entry.at_ms,
        })
        .await;
    match put {
        // An address the store cannot key (a control byte) must not stop
        // the feed: its event is recorded all the same.
        Err(StoreError::Invalid(reason)) => {
            tracing::warn!(%reason, message_id = %entry.message.message_id, "not suppressing a bounced address");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Follows the feed until `shutdown` turns true.
pub(crate) async fn run(events: Events, mut shutdown: watch::Receiver<bool>) {
    let notify = events.inner.spool.feed_notify();
    let poll = Duration::from_millis(events.inner.config.poll_interval_ms.max(1));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let notified = notify.notified();
        match consume(&events).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "webhook events: reading the spool feed failed"),
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
    }
}
