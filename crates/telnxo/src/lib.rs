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
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

pub use config::{Allowances, ConnectorKind, TelnxoConfig};
pub use error::TelnxoError;
pub use send::{NewCall, MAX_SMS_PARTS, WINDOW_MS};

use connectors::simulator::Simulator;
use connectors::{Report, SmsConnector, VoiceConnector, WhatsappConnector};

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
    /// Reports that must wait (their message's sending is not recorded
    /// yet) go back through here.
    reports: mpsc::Sender<Report>,
}

/// Reports waiting to be applied, at most.
const REPORT_BACKLOG: usize = 4096;

impl Telnxo {
    /// Starts the connectors, and the channels' workers and the report
    /// loop in `tasks` (they end when `shutdown` turns true).
    pub fn start(
        store: Store,
        events: Events,
        clock: Clock,
        config: TelnxoConfig,
        plans: std::collections::HashMap<String, Allowances>,
        shutdown: watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) -> Telnxo {
        let (reports, incoming) = mpsc::channel(REPORT_BACKLOG);
        let simulator = Simulator::start(clock.clone(), reports.clone(), shutdown.clone());
        let sms = match config.sms.connector {
            ConnectorKind::Smpp => SmsConnector::Smpp(connectors::smpp::SmppConnector::start(
                config.sms.smpp.clone(),
                reports.clone(),
                shutdown.clone(),
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
                    shutdown.clone(),
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
                reports,
            }),
        };
        for channel in Channel::ALL {
            tasks.spawn(dispatch::run(telnxo.clone(), channel, shutdown.clone()));
        }
        tasks.spawn(reports::run(telnxo.clone(), incoming, shutdown));
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
