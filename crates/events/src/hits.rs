//! Events that arrive many at a time from outside the spool (the opens and
//! clicks of the tracking endpoints), recorded with a group commit: each
//! caller waits until its event is durable, but the events of all callers
//! waiting at that moment share one transaction and one flush, as the
//! spool's writer does for messages. One commit per open would cap the
//! endpoints at the disk's flush rate (about 165 a second here).
//!
//! Whether an event is the message's first of its type is decided inside
//! that transaction (earlier events in the log, and earlier ones of the
//! same batch), so two at once cannot both be first. The recorder runs
//! while the service runs (`Events::start`), like the feed consumer.

use std::collections::HashSet;

use rackwave_core::event::{Event, EventData, EventType};
use rackwave_core::Clock;
use rackwave_store::{EventQuery, Store, StoredEvent};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{outbox, EventsError, Targets};

/// Events one transaction takes at most.
const BATCH: usize = 512;

/// Makes an event's data, told whether it is the message's first of its
/// type.
pub(crate) type Make = Box<dyn FnOnce(bool) -> EventData + Send>;

/// One event waiting to be recorded.
pub(crate) struct Hit {
    pub(crate) workspace_id: String,
    /// `""` when the message is no longer known (then it counts as first).
    pub(crate) message_id: String,
    pub(crate) event_type: EventType,
    pub(crate) make: Make,
    pub(crate) reply: oneshot::Sender<Result<StoredEvent, String>>,
}

/// The recorder's channel: the sender for callers, the receiver for
/// [`run`].
pub(crate) fn channel() -> (mpsc::Sender<Hit>, mpsc::Receiver<Hit>) {
    mpsc::channel(4 * BATCH)
}

/// Records what arrives until `shutdown` turns true (what is still queued
/// then is answered with an error: its callers are being stopped too).
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Hit>,
    store: Store,
    clock: Clock,
    emitter: outbox::Emitter,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            hit = rx.recv() => match hit {
                Some(hit) => hit,
                None => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(hit) => batch.push(hit),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let mut makes = Vec::with_capacity(batch.len());
        for hit in batch {
            replies.push(hit.reply);
            makes.push((hit.workspace_id, hit.message_id, hit.event_type, hit.make));
        }
        match record_batch(&store, &clock, makes).await {
            Ok((stored, queued)) => {
                if queued {
                    emitter.kick();
                }
                for (reply, s) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(s));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "recording tracking events failed");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Records a batch in one durable transaction; the stored events in
/// order, and whether any delivery was queued.
async fn record_batch(
    store: &Store,
    clock: &Clock,
    hits: Vec<(String, String, EventType, Make)>,
) -> Result<(Vec<StoredEvent>, bool), EventsError> {
    let now = clock.now_ms();
    let mut tx = store.begin().await?;
    let mut seen: HashSet<(String, String, EventType)> = HashSet::new();
    let mut targets = Targets::default();
    let mut stored = Vec::with_capacity(hits.len());
    let mut queued = false;
    for (ws, message_id, event_type, make) in hits {
        let first = if message_id.is_empty() {
            true
        } else if !seen.insert((ws.clone(), message_id.clone(), event_type)) {
            false
        } else {
            let query = EventQuery {
                types: vec![event_type],
                message_id: Some(message_id.clone()),
                ..EventQuery::default()
            };
            tx.events(&ws, &query, None, 1).await?.items.is_empty()
        };
        let event = Event::new(&ws, rackwave_core::Timestamp(now), make(first));
        let (s, deliveries) = targets.record(&mut tx, &event, now).await?;
        queued |= !deliveries.is_empty();
        stored.push(s);
    }
    tx.commit().await?;
    Ok((stored, queued))
}
