//! Events and webhooks: the durable event log of each workspace and the
//! signed, retrying webhook emitter.
//!
//! - `feed`: email events from the spool's change feed.
//! - `endpoints`: webhook endpoints, their secrets and rotation.
//! - `outbox`: the retry schedule, the attempts and their log.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`targets`]: which URLs and addresses webhooks may go to.
//! - `retention`: the log and finished deliveries are kept for a while.
//!
//! Events are typed (`rackwave_core::event`): email events come from the
//! spool's feed, other products call [`Events::emit`] with their data
//! struct. Either way the event is serialized once, and the event and one
//! delivery per matching endpoint are committed in one transaction before
//! anything is sent; the webhook POSTs exactly the stored bytes.
//!
//! Routing: MigoSMTP endpoints receive `email.*` events, Telnxo endpoints
//! receive `sms.*`, `voice.*` and `whatsapp.*`, and portal events
//! (`trial_activated`, `invoice_paid`, …) go to every enabled endpoint of
//! the workspace, either platform, that subscribed to them or to all.

mod config;
mod endpoints;
mod feed;
mod hits;
mod metrics;
mod outbox;
mod retention;
pub mod signing;
pub mod targets;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use rackwave_core::event::{Event, EventData, EventType, Ping};
use rackwave_core::{Classify, Clock, ErrorKind, Product};
use rackwave_queue::Spool;
use rackwave_store::{
    Delivery, DeliveryState, Endpoint, EventQuery, Page, Store, StoreError, StoredEvent,
    Suppression, Txn,
};
use tokio::sync::watch;

pub use config::WebhooksConfig;
pub use endpoints::{EndpointPatch, NewEndpoint, MAX_ENDPOINTS, ROTATION_GRACE_MS};
pub use feed::log_entry as message_log_entry;
pub use outbox::{next_attempt, FINAL_ATTEMPT_AFTER_MS, RETRY_DELAYS_MS};
pub use retention::Pruned;

use metrics::EventsMetrics;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("spool: {0}")]
    Spool(#[from] rackwave_queue::SpoolError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
}

impl Classify for EventsError {
    fn kind(&self) -> ErrorKind {
        match self {
            EventsError::Store(e) => e.kind(),
            EventsError::Spool(_) => ErrorKind::Unavailable,
            EventsError::Invalid(_) => ErrorKind::Invalid,
            EventsError::Conflict(_) => ErrorKind::Conflict,
            EventsError::NotFound(_) => ErrorKind::NotFound,
        }
    }
}

/// The events and webhooks service (cheap to clone).
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    spool: Spool,
    clock: Clock,
    config: WebhooksConfig,
    emitter: outbox::Emitter,
    metrics: EventsMetrics,
    /// The group-committing recorder of [`Events::emit_first`], and its
    /// receiving end until [`Events::start`] runs it.
    hits: tokio::sync::mpsc::Sender<hits::Hit>,
    hits_rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<hits::Hit>>>,
    /// The store's name for the position in this node's spool feed
    /// consumed so far (each node's spool has its own feed).
    feed_cursor: String,
    /// `[node] id`: whose spool holds a message of the shared log.
    node: String,
    /// How long the shared message log keeps a finished message (0: ever).
    keep_messages_ms: i64,
    /// How much longer a message may stay not final ([`Node`]).
    keep_pending_ms: i64,
    /// The feed position committed so far (see [`Events::caught_up`]).
    consumed: watch::Sender<u64>,
}

/// Stores one delivery of a stored event per target in `tx`; the caller
/// commits.
async fn deliver(
    tx: &mut Txn,
    stored: &StoredEvent,
    targets: &[&Endpoint],
    now_ms: i64,
) -> Result<Vec<Delivery>, EventsError> {
    let mut deliveries = Vec::with_capacity(targets.len());
    for ep in targets {
        let mut d = outbox::new_delivery(ep, stored, now_ms);
        tx.insert_delivery(&mut d).await?;
        deliveries.push(d);
    }
    Ok(deliveries)
}

/// The endpoints of each workspace an event of one transaction belongs
/// to, read once per workspace.
#[derive(Default)]
pub(crate) struct Targets(std::collections::HashMap<String, Vec<Endpoint>>);

impl Targets {
    /// Stores `event` in `tx` with a delivery to each endpoint of its
    /// workspace that wants its type.
    pub(crate) async fn record(
        &mut self,
        tx: &mut Txn,
        event: &Event,
        now_ms: i64,
    ) -> Result<(StoredEvent, Vec<Delivery>), EventsError> {
        let stored = tx.append_event(event).await?;
        let deliveries = self.deliver(tx, &stored, now_ms).await?;
        Ok((stored, deliveries))
    }

    /// [`record`](Self::record) for a batch: the events appended at once,
    /// then their deliveries; how many deliveries.
    pub(crate) async fn record_all(
        &mut self,
        tx: &mut Txn,
        events: &[Event],
        now_ms: i64,
    ) -> Result<usize, EventsError> {
        let mut queued = 0;
        for stored in tx.append_events(events).await? {
            queued += self.deliver(tx, &stored, now_ms).await?.len();
        }
        Ok(queued)
    }

    /// One delivery of a stored event to each endpoint of its workspace
    /// that wants its type.
    async fn deliver(
        &mut self,
        tx: &mut Txn,
        stored: &StoredEvent,
        now_ms: i64,
    ) -> Result<Vec<Delivery>, EventsError> {
        let ws = &stored.workspace_id;
        if !self.0.contains_key(ws) {
            let endpoints = tx.endpoints_of(ws).await?;
            self.0.insert(ws.clone(), endpoints);
        }
        let targets: Vec<&Endpoint> = self.0[ws]
            .iter()
            .filter(|e| stored.event_type.is_some_and(|t| e.wants(t)))
            .collect();
        deliver(tx, stored, &targets, now_ms).await
    }
}

/// This node among those that may share the store.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// `[node] id`: whose webhook leases are whose.
    pub id: &'a str,
    /// The store's name for the position in this node's spool feed
    /// consumed so far (each node's spool has its own feed).
    pub feed: &'a str,
    /// `[spool] retention`: how long a shared store's message log keeps a
    /// finished message, as the spool does (0: forever).
    pub keep_messages_ms: i64,
    /// `[delivery] max_queue_lifetime`: how long a message may stay
    /// queued; one the log still has as not final that long past the
    /// retention is dropped from it.
    pub keep_pending_ms: i64,
}

impl Events {
    /// The service; nothing runs until [`start`](Self::start).
    pub fn open(
        store: Store,
        spool: Spool,
        clock: Clock,
        config: WebhooksConfig,
        node: Node<'_>,
        registry: &mut Registry,
    ) -> Events {
        let metrics = EventsMetrics::register(registry);
        let emitter = outbox::Emitter::new(
            store.clone(),
            clock.clone(),
            config.clone(),
            metrics.clone(),
            node.id,
        );
        let (hits, hits_rx) = hits::channel();
        Events {
            inner: Arc::new(Inner {
                store,
                spool,
                clock,
                config,
                emitter,
                metrics,
                hits,
                hits_rx: std::sync::Mutex::new(Some(hits_rx)),
                feed_cursor: node.feed.to_string(),
                node: node.id.to_string(),
                keep_messages_ms: node.keep_messages_ms,
                keep_pending_ms: node.keep_pending_ms,
                consumed: watch::Sender::new(0),
            }),
        }
    }

    /// Starts the feed consumer, the emitter and the retention; they stop
    /// when `shutdown` turns true. Await the handle to know they have.
    pub fn start(&self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let feed = tokio::spawn(feed::run(self.clone(), shutdown.clone()));
        let pruning = tokio::spawn(retention::run(self.clone(), shutdown.clone()));
        let hits_rx = self
            .inner
            .hits_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let recorder = hits_rx.map(|rx| {
            tokio::spawn(hits::run(
                rx,
                self.inner.store.clone(),
                self.inner.clock.clone(),
                self.inner.emitter.clone(),
                shutdown.clone(),
            ))
        });
        let emitter = tokio::spawn(self.inner.emitter.clone().run(shutdown));
        tokio::spawn(async move {
            let _ = feed.await;
            let _ = pruning.await;
            let _ = emitter.await;
            if let Some(recorder) = recorder {
                let _ = recorder.await;
            }
        })
    }

    /// Waits (up to `within`) until everything this node's spool had
    /// written when called is in the store: its events, and with a shared
    /// store its messages in the shared log, so a listing made right after
    /// a send on this node shows it. Whether it got there.
    pub async fn caught_up(&self, within: std::time::Duration) -> bool {
        let target = self.inner.spool.last_feed_seq();
        let mut consumed = self.inner.consumed.subscribe();
        self.inner.spool.feed_notify().notify_one();
        tokio::time::timeout(within, consumed.wait_for(|seq| *seq >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Looks for due deliveries now (after a test moved the clock, say).
    pub fn kick(&self) {
        self.inner.emitter.kick();
    }

    /// Deletes events and finished webhook deliveries older than
    /// `[webhooks] retention_days` (also done once an hour by the running
    /// service).
    pub async fn prune_expired(&self) -> Result<Pruned, EventsError> {
        retention::prune(self).await
    }

    /// Records an event of any product and queues it to every matching
    /// endpoint of the workspace; durable when it returns.
    pub async fn emit(
        &self,
        workspace_id: &str,
        data: impl Into<EventData>,
    ) -> Result<StoredEvent, EventsError> {
        let data = data.into();
        if data.event_type() == EventType::Ping {
            return Err(EventsError::Invalid(
                "webhook.ping is sent with Events::ping".into(),
            ));
        }
        let tx = self.inner.store.begin().await?;
        self.record_in(tx, workspace_id, data).await
    }

    /// Records an event in the caller's transaction (a state change and
    /// its event commit together: a subscription and `trial_activated`).
    /// Its webhooks go out once the caller has committed and called
    /// [`kick`](Self::kick).
    pub async fn emit_in(
        &self,
        tx: &mut Txn,
        workspace_id: &str,
        data: impl Into<EventData>,
    ) -> Result<StoredEvent, EventsError> {
        let now = self.inner.clock.now_ms();
        let event = Event::new(workspace_id, rackwave_core::Timestamp(now), data.into());
        let (stored, _) = Targets::default().record(tx, &event, now).await?;
        Ok(stored)
    }

    /// [`emit`](Self::emit), putting `suppression` on the workspace's list
    /// in the same transaction (an unsubscribe, a complaint): the event
    /// and the entry exist together or not at all. When the address is
    /// already listed for the same reason nothing is recorded (`None`): a
    /// provider repeating its request makes no second event. Listed for
    /// another reason, the entry takes the new one.
    pub async fn emit_suppressing(
        &self,
        workspace_id: &str,
        data: impl Into<EventData>,
        suppression: &Suppression,
    ) -> Result<Option<StoredEvent>, EventsError> {
        let data = data.into();
        let mut tx = self.inner.store.begin().await?;
        let existing = tx
            .suppression(&suppression.workspace_id, &suppression.address)
            .await?;
        if existing.is_some_and(|e| e.reason == suppression.reason) {
            return Ok(None);
        }
        tx.put_suppression(suppression).await?;
        let stored = self.record_in(tx, workspace_id, data).await?;
        Ok(Some(stored))
    }

    /// Records an event about a message made by `make`, told whether it is
    /// the message's first of its type (decided in the transaction that
    /// records it, so two at once cannot both be first). Durable when it
    /// returns; the events of concurrent callers share one commit (see
    /// `hits`). Needs the service running ([`start`](Self::start)).
    pub async fn emit_first(
        &self,
        workspace_id: &str,
        message_id: &str,
        event_type: EventType,
        make: impl FnOnce(bool) -> EventData + Send + 'static,
    ) -> Result<StoredEvent, EventsError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let hit = hits::Hit {
            workspace_id: workspace_id.to_string(),
            message_id: message_id.to_string(),
            event_type,
            make: Box::new(make),
            reply,
        };
        let closed = || EventsError::Invalid("the event recorder has stopped".into());
        self.inner.hits.send(hit).await.map_err(|_| closed())?;
        answer
            .await
            .map_err(|_| closed())?
            .map_err(|e| EventsError::Store(StoreError::Unavailable(e)))
    }

    /// Records an event in `tx` with a delivery per matching endpoint, and
    /// commits.
    async fn record_in(
        &self,
        mut tx: Txn,
        workspace_id: &str,
        data: EventData,
    ) -> Result<StoredEvent, EventsError> {
        let stored = self.emit_in(&mut tx, workspace_id, data).await?;
        tx.commit().await?;
        self.kick();
        Ok(stored)
    }

    /// Sends a `webhook.ping` to one endpoint only.
    pub async fn ping(
        &self,
        workspace_id: &str,
        product: Product,
        endpoint_id: &str,
    ) -> Result<(StoredEvent, Delivery), EventsError> {
        let ep = self.endpoint(workspace_id, product, endpoint_id).await?;
        if !ep.enabled {
            return Err(EventsError::Conflict(
                "the endpoint is disabled; enable it first".into(),
            ));
        }
        let now = self.inner.clock.now();
        let event = Event::new(
            workspace_id,
            now,
            Ping {
                endpoint_id: ep.id.clone(),
                sent_at: now,
            },
        );
        let mut tx = self.inner.store.begin().await?;
        let stored = tx.append_event(&event).await?;
        let mut deliveries = deliver(&mut tx, &stored, &[&ep], now.ms()).await?;
        tx.commit().await?;
        self.kick();
        let delivery = deliveries.pop().expect("one delivery for one target");
        Ok((stored, delivery))
    }

    /// One page of a workspace's events.
    pub async fn list(
        &self,
        workspace_id: &str,
        query: &EventQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredEvent>, EventsError> {
        Ok(self
            .inner
            .store
            .events(workspace_id, query, cursor, limit)
            .await?)
    }

    /// One event of a workspace by id.
    pub async fn event(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<StoredEvent>, EventsError> {
        Ok(self
            .inner
            .store
            .event_by_id(id)
            .await?
            .filter(|e| e.workspace_id == workspace_id))
    }

    /// One page of an endpoint's deliveries, newest first.
    pub async fn deliveries(
        &self,
        workspace_id: &str,
        product: Product,
        endpoint_id: &str,
        state: Option<DeliveryState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Delivery>, EventsError> {
        self.endpoint(workspace_id, product, endpoint_id).await?;
        Ok(self
            .inner
            .store
            .deliveries_of(endpoint_id, state, cursor, limit)
            .await?)
    }

    /// One delivery of an endpoint.
    pub async fn delivery(
        &self,
        workspace_id: &str,
        product: Product,
        endpoint_id: &str,
        delivery_id: &str,
    ) -> Result<Delivery, EventsError> {
        self.endpoint(workspace_id, product, endpoint_id).await?;
        self.inner
            .store
            .delivery(delivery_id)
            .await?
            .filter(|d| d.endpoint_id == endpoint_id)
            .ok_or_else(|| EventsError::NotFound(format!("delivery {delivery_id}")))
    }

    /// Sends a retrying or failed delivery again now, outside the schedule.
    pub async fn resend(
        &self,
        workspace_id: &str,
        product: Product,
        endpoint_id: &str,
        delivery_id: &str,
    ) -> Result<Delivery, EventsError> {
        self.delivery(workspace_id, product, endpoint_id, delivery_id)
            .await?;
        self.inner.emitter.resend(delivery_id).await
    }

    /// The spool feed position consumed so far (diagnostics, tests).
    pub async fn feed_cursor(&self) -> Result<u64, EventsError> {
        Ok(self.inner.store.cursor(&self.inner.feed_cursor).await?)
    }
}
