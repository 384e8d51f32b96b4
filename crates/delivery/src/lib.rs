//! The delivery engine: from the spool to the recipient's mail server.
//!
//! The path of a message: `scheduler` leases it into the ready queue of
//! its destination (`destination`, one per recipient domain, in memory);
//! the next free connection (`worker`) takes it, resolves the domain
//! (`lookup`), talks SMTP to the first MX host that answers (`client`, on
//! `rackwave-smtp-proto`), and settles the message in the spool as
//! delivered, deferred (`retry`) or bounced ([`classify`]), as a typed
//! event of the history. A destination that throttles us is paused for a
//! growing interval ([`Destinations`] shows and lifts pauses). Envelope
//! senders are signed VERP addresses.

pub mod classify;
mod client;
mod config;
mod destination;
mod lookup;
mod metrics;
mod retry;
mod scheduler;
mod worker;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use rackwave_core::Clock;
use rackwave_queue::Spool;
use rackwave_smtp_proto::tls::Connectors;
use tokio::sync::{watch, Notify, Semaphore};

pub use config::{DeliveryConfig, Shaping, ShapingOverride, TlsPolicy};
pub use destination::{DestinationStatus, Destinations};
pub use lookup::DnsLookup;
use metrics::DeliveryMetrics;

/// What every delivery connection shares.
struct EngineContext {
    config: DeliveryConfig,
    spool: Spool,
    router: lookup::Router,
    clock: Clock,
    metrics: DeliveryMetrics,
    retry: retry::RetryPolicy,
    tls: Connectors,
    /// Outbound connections, all destinations together
    /// (`[delivery] max_connections`).
    slots: Arc<Semaphore>,
    /// Signs the VERP tag of each envelope sender, so the inbound MX can
    /// tell the bounces of our messages from forgeries.
    return_paths: rackwave_tracking::TrackingKey,
}

#[derive(Debug, thiserror::Error)]
#[error("delivery engine: {0}")]
pub struct EngineError(String);

/// Handle of the running engine.
pub struct DeliveryEngine {
    wake: Arc<Notify>,
    destinations: Destinations,
}

impl DeliveryEngine {
    /// Starts the scheduler; it runs until `shutdown` turns true. Returns
    /// the handle and the task to await on shutdown. `wake` is the
    /// notifier the intake pokes after each accepted message.
    pub fn start(
        config: DeliveryConfig,
        spool: Spool,
        clock: Clock,
        return_paths: rackwave_tracking::TrackingKey,
        wake: Arc<Notify>,
        registry: &mut Registry,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(DeliveryEngine, tokio::task::JoinHandle<()>), EngineError> {
        let router =
            lookup::Router::new(&config.nameservers, config.smtp_port).map_err(EngineError)?;
        let retry =
            retry::RetryPolicy::new(&config.retry_schedule_secs, config.max_queue_lifetime_secs);
        let ctx = Arc::new(EngineContext {
            spool,
            router,
            clock,
            metrics: DeliveryMetrics::register(registry),
            retry,
            tls: rackwave_smtp_proto::tls::connectors(),
            slots: Arc::new(Semaphore::new(config.max_connections.max(1))),
            return_paths,
            config,
        });
        let destinations = Destinations::new(ctx.clock.clone(), wake.clone());
        let scheduler = scheduler::Scheduler::new(ctx, destinations.clone(), wake.clone());
        let task = tokio::spawn(scheduler.run(shutdown));
        Ok((DeliveryEngine { wake, destinations }, task))
    }

    /// Wakes the scheduler now (new mail accepted, or a test moved the
    /// clock) instead of at its next poll.
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// The destinations being worked: ready queues, connections, pauses.
    pub fn destinations(&self) -> &Destinations {
        &self.destinations
    }
}
