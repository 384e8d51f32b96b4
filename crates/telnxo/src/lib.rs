//! Telnxo, the messaging platform: SMS, voice calls and WhatsApp, each
//! through a carrier connector chosen per channel in `config.toml`.
//!
//! # The life of a message
//!
//! 1. **Accepted** (`send.rs`): checked (E.164 numbers, a sender the
//!    workspace owns, the SMS's parts, WhatsApp's 24-hour window), counted
//!    against the workspace's daily quota and stored in its channel's
//!    queue (`due_at_ms` set), with `sms.queued`, in one transaction: once
//!    the API answers `202` the message survives a crash.
//! 2. **Sent** (`dispatch.rs`): each channel's worker takes what is due,
//!    within the route's rate and concurrency, and hands it to the
//!    connector. The outcome is recorded with its event in one
//!    transaction: taken (`sms.sent`, `whatsapp.sent`, `voice.initiated`,
//!    with the carrier's ids indexed), back to the head of the queue when
//!    the carrier throttles (the route pauses), retried later after a
//!    temporary failure (backoff, up to `max_attempts`, never past
//!    `validity_secs`), or failed for good.
//! 3. **Reported** (`reports.rs`): what carriers say later — SMS receipts
//!    (matched by carrier id, hex or decimal; the parts of one message
//!    combined into one `sms.delivered`/`sms.failed`), WhatsApp statuses
//!    (never moving a message backwards, each once), call progress, and
//!    inbound messages routed to the workspace owning the number — is
//!    applied in batches, each batch one durable transaction. A report
//!    about a message whose sending is not recorded yet waits and is tried
//!    again for a while.
//!
//! A crash between a carrier taking a message and its outcome being
//! recorded sends it again after the restart: delivery is at least once,
//! as with every SMPP gateway; nothing accepted is lost.

pub mod config;
pub mod connectors;
mod dispatch;
mod error;
pub mod numbers;
mod reports;
mod send;

use std::sync::Arc;

use rackwave_core::Clock;
use rackwave_events::Events;
use rackwave_store::{Channel, Store};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

pub use config::{Allowances, ConnectorKind, TelnxoConfig};
pub use error::TelnxoError;
pub use send::{NewCall, MAX_SMS_PARTS, WINDOW_MS};

use connectors::simulator::Simulator;
use connectors::{Reports, SmsConnector, VoiceConnector, WhatsappConnector};

/// The Telnxo service (cheap to clone).
#[derive(Clone)]
pub struct Telnxo {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    events: Events,
    clock: Clock,
    config: TelnxoConfig,
    /// Each Telnxo plan's allowances, by plan id.
    plans: std::collections::HashMap<String, Allowances>,
    sms: SmsConnector,
    whatsapp: WhatsappConnector,
    voice: VoiceConnector,
    /// The simulator, for inbound messages on demand.
    simulator: Simulator,
    /// Wakes a channel's worker (indexed like [`Channel::ALL`]).
    wake: [Notify; 3],
    /// Wakes the report loop: reports were parked outside it.
    parked: Notify,
    /// Which rendering of carrier ids the SMS carrier writes receipts in:
    /// above 0 the other base than its `submit_sm_resp` (learnt from the
    /// receipts that matched).
    other_base_score: std::sync::atomic::AtomicI64,
    /// Whether a workspace may not send now (suspended): its queued
    /// messages and calls wait.
    held: HeldWorkspaces,
}

/// Tells which workspaces may not send (the server's suspensions).
pub type HeldWorkspaces = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Reports waiting to be applied, at most.
const REPORT_BACKLOG: usize = 4096;
/// How long connectors have to unbind and hand over their last reports
/// at a shutdown.
const CONNECTORS_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// What Telnxo runs on.
pub struct Parts {
    pub store: Store,
    pub events: Events,
    pub clock: Clock,
    pub config: TelnxoConfig,
    /// Each Telnxo plan's allowances, by plan id.
    pub plans: std::collections::HashMap<String, Allowances>,
    /// Which workspaces may not send now.
    pub held: HeldWorkspaces,
}

impl Telnxo {
    /// Starts the connectors, and the channels' workers and the report
    /// loop in `tasks` (they end when `shutdown` turns true).
    pub fn start(parts: Parts, shutdown: watch::Receiver<bool>, tasks: &mut JoinSet<()>) -> Telnxo {
        let Parts {
            store,
            events,
            clock,
            config,
            plans,
            held,
        } = parts;
        let (reports, incoming) = Reports::channel(REPORT_BACKLOG);
        // Connectors stop after the workers, so a send in flight gets its
        // carrier's answer; the report loop stops last, so what the
        // connectors handed over is recorded.
        let (stop_connectors, connectors_stop) = watch::channel(false);
        let (stop_reports, reports_stop) = watch::channel(false);
        let shutdown_connectors = connectors_stop;
        let simulator =
            Simulator::start(clock.clone(), reports.clone(), shutdown_connectors.clone());
        let sms = match config.sms.connector {
            ConnectorKind::Smpp => SmsConnector::Smpp(connectors::smpp::SmppConnector::start(
                config.sms.smpp.clone(),
                reports.clone(),
                shutdown_connectors.clone(),
            )),
            _ => SmsConnector::Simulator(simulator.clone()),
        };
        let whatsapp = match config.whatsapp.connector {
            ConnectorKind::CloudApi => {
                match connectors::whatsapp_cloud::CloudApiConnector::new(
                    config.whatsapp.cloud_api.clone(),
                ) {
                    Ok(c) => WhatsappConnector::CloudApi(c),
                    Err(e) => {
                        // `check()` at start-up refuses such a config.
                        tracing::error!(error = %e, "WhatsApp Cloud API connector; using the simulator");
                        WhatsappConnector::Simulator(simulator.clone())
                    }
                }
            }
            _ => WhatsappConnector::Simulator(simulator.clone()),
        };
        let voice = match config.voice.connector {
            ConnectorKind::Freeswitch => {
                VoiceConnector::Freeswitch(connectors::freeswitch::FreeswitchConnector::start(
                    config.voice.freeswitch.clone(),
                    reports.clone(),
                    shutdown_connectors.clone(),
                ))
            }
            _ => VoiceConnector::Simulator(simulator.clone()),
        };
        let telnxo = Telnxo {
            inner: Arc::new(Inner {
                store,
                events,
                clock,
                config,
                plans,
                sms,
                whatsapp,
                voice,
                simulator,
                wake: [Notify::new(), Notify::new(), Notify::new()],
                parked: Notify::new(),
                other_base_score: std::sync::atomic::AtomicI64::new(0),
                held,
            }),
        };
        drop(reports);
        let mut workers = JoinSet::new();
        for channel in Channel::ALL {
            workers.spawn(dispatch::run(telnxo.clone(), channel, shutdown.clone()));
        }
        let report_loop = tokio::spawn(reports::run(telnxo.clone(), incoming, reports_stop));
        tasks.spawn(async move {
            // A shutdown ends the workers once their sends in flight are
            // answered and recorded; then the connectors unbind; then the
            // report loop records what they handed over, and ends.
            while workers.join_next().await.is_some() {}
            let _ = stop_connectors.send(true);
            tokio::time::sleep(CONNECTORS_GRACE).await;
            let _ = stop_reports.send(true);
            let _ = report_loop.await;
        });
        telnxo
    }

    fn wake(&self, channel: Channel) {
        self.inner.wake[channel as usize].notify_one();
    }

    /// Sends in flight at most on a channel: the route's `concurrency`, or
    /// for SMPP the bind's window when larger (fewer would leave it part
    /// empty).
    fn concurrency(&self, channel: Channel) -> usize {
        let configured = self.inner.config.limits(channel).concurrency;
        match (&self.inner.sms, channel) {
            (SmsConnector::Smpp(_), Channel::Sms) => {
                configured.max(self.inner.config.sms.smpp.window)
            }
            _ => configured,
        }
    }

    /// Looks at every queue now (after a test moved the clock).
    pub fn kick(&self) {
        for channel in Channel::ALL {
            self.wake(channel);
        }
    }

    pub fn config(&self) -> &TelnxoConfig {
        &self.inner.config
    }

    /// The simulator, when `channel` uses it: it makes inbound messages on
    /// demand.
    pub fn simulator(&self, channel: Channel) -> Option<&Simulator> {
        let simulated = match channel {
            Channel::Sms => matches!(self.inner.sms, SmsConnector::Simulator(_)),
            Channel::Whatsapp => matches!(self.inner.whatsapp, WhatsappConnector::Simulator(_)),
            Channel::Voice => matches!(self.inner.voice, VoiceConnector::Simulator(_)),
        };
        simulated.then_some(&self.inner.simulator)
    }
}
