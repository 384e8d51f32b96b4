//! Events and webhooks: a durable event log per workspace and a signed,
//! retrying webhook emitter.
//!
//! - [`model`]: the event types of the seed (one enum for every product),
//!   products and platform ids, the envelope.
//! - [`log`]: event storage and listing.
//! - [`endpoints`]: webhook endpoints, their secrets and rotation.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`targets`]: which URLs and addresses webhooks may go to.
//! - [`emitter`]: the outbox, the retry schedule, the attempt log.
//! - [`feed`]: email events from the spool's change feed.
//!
//! Email events come from the spool's feed; other products call
//! [`Events::emit`]. Either way the event and one delivery per matching
//! endpoint are written in one batch before anything is sent.
//!
//! Routing: MigoSMTP endpoints receive `email.*` events, Telnxo endpoints
//! receive `sms.*`, `voice.*` and `whatsapp.*`, and portal events
//! (`trial_activated`, `invoice_paid`, …) go to every enabled endpoint of
//! the workspace, either platform, that subscribed to them or to all.

pub mod emitter;
pub mod endpoints;
pub mod feed;
pub mod log;
pub mod model;
pub mod retention;
pub mod signing;
pub mod targets;

use std::sync::Arc;

use rackwave_queue::Spool;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::accounts::Platform;
use crate::clock::{rfc3339, Clock};
use crate::config::WebhooksConfig;
use crate::ids::random_hex;
use crate::metrics::Metrics;

pub use emitter::{Attempt, Delivery, DeliveryState};
pub use endpoints::{Endpoint, EndpointPatch, Endpoints, NewEndpoint};
pub use log::{EventFilter, EventPage};
pub use model::{Event, EventType, Product};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("spool: {0}")]
    Spool(#[from] rackwave_queue::SpoolError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
}

impl EventsError {
    fn encode(e: serde_json::Error) -> EventsError {
        EventsError::Corrupt(format!("encoding: {e}"))
    }
}

fn decode<T: DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, EventsError> {
    serde_json::from_slice(raw).map_err(|e| EventsError::Corrupt(format!("{what}: {e}")))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The events and webhooks service (cheap to clone).
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    spool: Spool,
    clock: Clock,
    config: WebhooksConfig,
    endpoints: Endpoints,
    emitter: emitter::Emitter,
}

impl Inner {
    /// Stages an event and one delivery per target in `batch`.
    #[allow(clippy::too_many_arguments)]
    fn stage_event(
        &self,
        batch: &mut sled::Batch,
        workspace_id: &str,
        product: Product,
        event_type: EventType,
        data: serde_json::Value,
        at_ms: i64,
        now_ms: i64,
        targets: &[&Endpoint],
    ) -> Result<(log::StoredEvent, Vec<Delivery>), EventsError> {
        let stored = log::StoredEvent {
            seq: self.db.generate_id()?,
            at_ms,
            event: Event {
                id: format!("evt_{}", random_hex(10)),
                event: event_type,
                product,
                platform_id: product.platform_id().to_string(),
                workspace_id: workspace_id.to_string(),
                timestamp: rfc3339(at_ms),
                data,
            },
        };
        log::stage(batch, &stored)?;
        let mut deliveries = Vec::with_capacity(targets.len());
        for ep in targets {
            let d = Delivery::new(ep, &stored, self.db.generate_id()?, now_ms);
            emitter::stage_new(batch, &d)?;
            deliveries.push(d);
        }
        Ok((stored, deliveries))
    }

    /// Writes an event and its deliveries durably, then wakes the emitter.
    async fn record(
        &self,
        workspace_id: &str,
        product: Product,
        event_type: EventType,
        data: serde_json::Value,
        targets: &[&Endpoint],
    ) -> Result<(Event, Vec<Delivery>), EventsError> {
        let now = self.clock.now_ms();
        let mut batch = sled::Batch::default();
        let (stored, deliveries) = self.stage_event(
            &mut batch,
            workspace_id,
            product,
            event_type,
            data,
            now,
            now,
            targets,
        )?;
        self.tree.apply_batch(batch)?;
        crate::storage::flush(&self.db).await?;
        if !deliveries.is_empty() {
            self.emitter.kick();
        }
        Ok((stored.event, deliveries))
    }
}

/// Query limits of the listings.
pub const MAX_PAGE: usize = 500;

impl Events {
    /// Opens the event store (tree `events` of `db`). Nothing runs until
    /// [`start`](Self::start).
    pub fn open(
        db: &sled::Db,
        spool: Spool,
        clock: Clock,
        config: WebhooksConfig,
        metrics: Metrics,
    ) -> Result<Events, EventsError> {
        let tree = db.open_tree("events")?;
        let endpoints = Endpoints::new(tree.clone(), clock.clone(), config.allow_private_targets);
        let emitter = emitter::Emitter::new(
            tree.clone(),
            endpoints.clone(),
            clock.clone(),
            config.clone(),
            metrics,
        );
        Ok(Events {
            inner: Arc::new(Inner {
                db: db.clone(),
                tree,
                spool,
                clock,
                config,
                endpoints,
                emitter,
            }),
        })
    }

    /// Starts the feed consumer and the emitter; both stop when `shutdown`
    /// turns true. Await the handle to know they have.
    pub fn start(&self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let feed = tokio::spawn(feed::run(self.inner.clone(), shutdown.clone()));
        let pruning = tokio::spawn(retention::run(self.inner.clone(), shutdown.clone()));
        let emitter = tokio::spawn(self.inner.emitter.clone().run(shutdown));
        tokio::spawn(async move {
            let _ = feed.await;
            let _ = pruning.await;
            let _ = emitter.await;
        })
    }

    /// Deletes events and finished webhook deliveries older than
    /// `[webhooks] retention_days` (also done once an hour by the running
    /// server).
    pub async fn prune_expired(&self) -> Result<retention::Pruned, EventsError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || retention::prune(&inner))
            .await
            .map_err(|e| EventsError::Corrupt(format!("pruning task: {e}")))?
    }

    /// Looks for due deliveries now (after a test moved the clock, say).
    pub fn kick(&self) {
        self.inner.emitter.kick();
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// Records an event of any product and queues it to every matching
    /// endpoint of the workspace; durable when it returns. `data` must be
    /// an object with the type's fields ([`EventType::fields`]).
    pub async fn emit(
        &self,
        workspace_id: &str,
        product: Product,
        event_type: EventType,
        data: serde_json::Value,
    ) -> Result<Event, EventsError> {
        if event_type == EventType::Ping {
            return Err(EventsError::Invalid(
                "webhook.ping is sent with Events::ping".into(),
            ));
        }
        if product != event_type.product() {
            return Err(EventsError::Invalid(format!(
                "{event_type} is an event of {}, not {}",
                event_type.product().as_str(),
                product.as_str()
            )));
        }
        if !data.is_object() {
            return Err(EventsError::Invalid("event data must be an object".into()));
        }
        let missing = event_type.missing_fields(&data);
        if !missing.is_empty() {
            return Err(EventsError::Invalid(format!(
                "{event_type} data lacks {}",
                missing.join(", ")
            )));
        }
        let endpoints = self.inner.endpoints.of_workspace(workspace_id)?;
        let targets: Vec<&Endpoint> = endpoints.iter().filter(|e| e.wants(event_type)).collect();
        let (event, _) = self
            .inner
            .record(workspace_id, product, event_type, data, &targets)
            .await?;
        Ok(event)
    }

    /// Sends a `webhook.ping` to one endpoint only.
    pub async fn ping(
        &self,
        workspace_id: &str,
        platform: Platform,
        endpoint_id: &str,
    ) -> Result<(Event, Delivery), EventsError> {
        let ep = self
            .inner
            .endpoints
            .get(workspace_id, platform, endpoint_id)?
            .ok_or_else(|| EventsError::NotFound(format!("webhook endpoint {endpoint_id}")))?;
        if !ep.enabled {
            return Err(EventsError::Conflict(
                "the endpoint is disabled; enable it first".into(),
            ));
        }
        let data = serde_json::json!({
            "endpoint_id": ep.id,
            "sent_at": rfc3339(self.inner.clock.now_ms()),
        });
        let (event, mut deliveries) = self
            .inner
            .record(
                workspace_id,
                Product::of_platform(platform),
                EventType::Ping,
                data,
                &[&ep],
            )
            .await?;
        let delivery = deliveries.pop().expect("one delivery for one target");
        Ok((event, delivery))
    }

    /// One page of a workspace's events.
    pub fn list(
        &self,
        workspace_id: &str,
        filter: &EventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, EventsError> {
        log::list(
            &self.inner.tree,
            workspace_id,
            filter,
            cursor,
            limit.clamp(1, MAX_PAGE),
        )
    }

    /// One event of a workspace by id.
    pub fn event(&self, workspace_id: &str, id: &str) -> Result<Option<Event>, EventsError> {
        Ok(log::by_id(&self.inner.tree, id)?
            .map(|s| s.event)
            .filter(|e| e.workspace_id == workspace_id))
    }

    fn endpoint(
        &self,
        workspace_id: &str,
        platform: Platform,
        endpoint_id: &str,
    ) -> Result<Endpoint, EventsError> {
        self.inner
            .endpoints
            .get(workspace_id, platform, endpoint_id)?
            .ok_or_else(|| EventsError::NotFound(format!("webhook endpoint {endpoint_id}")))
    }

    /// Deletes an endpoint and its deliveries (pending ones are dropped).
    pub fn delete_endpoint(
        &self,
        workspace_id: &str,
        platform: Platform,
        endpoint_id: &str,
    ) -> Result<(), EventsError> {
        let mut batch = sled::Batch::default();
        self.inner
            .endpoints
            .stage_delete(&mut batch, workspace_id, platform, endpoint_id)?;
        emitter::stage_purge(&self.inner.tree, &mut batch, endpoint_id)?;
        self.inner.tree.apply_batch(batch)?;
        Ok(())
    }

    /// One page of an endpoint's deliveries, newest first.
    pub fn deliveries(
        &self,
        workspace_id: &str,
        platform: Platform,
        endpoint_id: &str,
        state: Option<DeliveryState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<String>), EventsError> {
        self.endpoint(workspace_id, platform, endpoint_id)?;
        emitter::list(
            &self.inner.tree,
            endpoint_id,
            state,
            cursor,
            limit.clamp(1, MAX_PAGE),
        )
    }

    /// One delivery of an endpoint.
    pub fn delivery(
        &self,
        workspace_id: &str,
        platform: Platform,
        endpoint_id: &str,
        delivery_id: &str,
    ) -> Result<Delivery, EventsError> {
        self.endpoint(workspace_id, platform, endpoint_id)?;
        emitter::get(&self.inner.tree, delivery_id)?
            .filter(|d| d.endpoint_id == endpoint_id)
            .ok_or_else(|| EventsError::NotFound(format!("delivery {delivery_id}")))
    }

    /// Sends a retrying or failed delivery again now, outside the schedule.
    pub fn resend(
        &self,
        workspace_id: &str,
        platform: Platform,
        endpoint_id: &str,
        delivery_id: &str,
    ) -> Result<Delivery, EventsError> {
        self.delivery(workspace_id, platform, endpoint_id, delivery_id)?;
        self.inner.emitter.resend(delivery_id)
    }

    /// The spool feed position consumed so far (diagnostics, tests).
    pub fn feed_cursor(&self) -> Result<u64, EventsError> {
        feed::cursor(&self.inner.tree)
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }
}
