//! The delivery engine: from the spool to the recipient's mail server.
//!
//! The path of a message: [`scheduler`] leases it and queues it by
//! destination domain; a connection (`worker`) resolves the domain
//! (`lookup`), talks SMTP to the first MX host that answers (`client`, on
//! `rackwave-smtp-proto`), and settles the message in the spool as
//! delivered, deferred (`retry`) or bounced ([`classify`]), as a typed
//! event of the history. Envelope senders are VERP addresses.

pub mod classify;
mod client;
mod config;
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
use tokio::sync::{watch, Notify};

pub use config::{DeliveryConfig, Shaping, ShapingOverride, TlsPolicy};
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
}

#[derive(Debug, thiserror::Error)]
#[error("delivery engine: {0}")]
pub struct EngineError(String);

/// Handle of the running engine.
pub struct DeliveryEngine {
    wake: Arc<Notify>,
}

impl DeliveryEngine {
    /// Starts the scheduler; it runs until `shutdown` turns true. Returns
    /// the handle and the task to await on shutdown. `wake` is the
    /// notifier the intake pokes after each accepted message.
    pub fn start(
        config: DeliveryConfig,
        spool: Spool,
        clock: Clock,
        wake: Arc<Notify>,
        registry: &mut Registry,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(DeliveryEngine, tokio::task::JoinHandle<()>), EngineError> {
        let router =
            lookup::Router::new(&config.nameservers, config.smtp_port).map_err(EngineError)?;
        let retry =
            retry::RetryPolicy::new(&config.retry_schedule_secs, config.max_queue_lifetime_secs);
        let ctx = Arc::new(EngineContext {
            config,
            spool,
            router,
            clock,
            metrics: DeliveryMetrics::register(registry),
            retry,
            tls: rackwave_smtp_proto::tls::connectors(),
        });
        let task = tokio::spawn(scheduler::Scheduler::new(ctx, wake.clone()).run(shutdown));
        Ok((DeliveryEngine { wake }, task))
    }

    /// Wakes the scheduler now (new mail accepted, or a test moved the
    /// clock) instead of at its next poll.
    pub fn kick(&self) {
        self.wake.notify_one();
    }
}
