//! The delivery engine: from the spool to the recipient's mail server.
//!
//! The path of a message: [`scheduler`] leases it and queues it by
//! destination domain; a connection ([`worker`]) resolves the domain
//! ([`lookup`]), talks SMTP to the first MX host that answers ([`client`]),
//! and settles the message as delivered, deferred ([`retry`]) or bounced
//! ([`classify`]). Envelope senders are VERP addresses ([`verp`]).

pub mod classify;
pub mod client;
pub mod lookup;
pub mod retry;
mod scheduler;
pub mod verp;
mod worker;

use std::sync::Arc;

use rackwave_queue::Spool;
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsConnector;

use crate::clock::Clock;
use crate::config::DeliveryConfig;
use crate::metrics::Metrics;

pub use scheduler::domain_of;

/// Called with a message id after each settlement (the event emitter hooks
/// in here).
pub type SettledHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What every delivery connection shares.
pub struct EngineContext {
    pub config: DeliveryConfig,
    pub spool: Spool,
    pub router: lookup::Router,
    pub clock: Clock,
    pub metrics: Metrics,
    pub retry: retry::RetryPolicy,
    pub tls_verified: TlsConnector,
    pub tls_any: TlsConnector,
    pub on_settled: Option<SettledHook>,
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
    /// the handle and the task to await on shutdown.
    pub fn start(
        config: DeliveryConfig,
        spool: Spool,
        clock: Clock,
        metrics: Metrics,
        on_settled: Option<SettledHook>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(DeliveryEngine, tokio::task::JoinHandle<()>), EngineError> {
        let router =
            lookup::Router::new(&config.nameservers, config.smtp_port).map_err(EngineError)?;
        let (tls_verified, tls_any) = client::tls_connectors();
        let retry =
            retry::RetryPolicy::new(&config.retry_schedule_secs, config.max_queue_lifetime_secs);
        let ctx = Arc::new(EngineContext {
            config,
            spool,
            router,
            clock,
            metrics,
            retry,
            tls_verified,
            tls_any,
            on_settled,
        });
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(scheduler::Scheduler::new(ctx, wake.clone()).run(shutdown));
        Ok((DeliveryEngine { wake }, task))
    }

    /// Wakes the scheduler now (new mail accepted, or a test moved the
    /// clock) instead of at its next poll.
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// The notifier the SMTP server pokes after each accepted message.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
