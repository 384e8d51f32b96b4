//! What the delivery engine counts: attempts by outcome, and the queue
//! manager's work (leases, messages waiting and connections open per
//! destination, time waited for a connection, throttling pauses).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rackwave_core::event::EmailEvent;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabel {
    destination: String,
}

#[derive(Clone)]
pub(crate) struct DeliveryMetrics {
    outcomes: Family<OutcomeLabel, Counter>,
    leases: Counter,
    releases: Counter,
    waiting: Family<DestinationLabel, Gauge>,
    connections: Family<DestinationLabel, Gauge>,
    paused: Family<DestinationLabel, Gauge>,
    pauses: Family<DestinationLabel, Counter>,
    wait: Histogram,
}

impl DeliveryMetrics {
    pub(crate) fn register(registry: &mut Registry) -> DeliveryMetrics {
        let m = DeliveryMetrics {
            outcomes: Family::default(),
            leases: Counter::default(),
            releases: Counter::default(),
            waiting: Family::default(),
            connections: Family::default(),
            paused: Family::default(),
            pauses: Family::default(),
            // 1 ms to about 65 s.
            wait: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
        };
        registry.register(
            "delivery_attempts",
            "Delivery attempts by outcome (delivered, deferred, bounced)",
            m.outcomes.clone(),
        );
        registry.register(
            "delivery_leases",
            "Messages leased from the spool into a ready queue",
            m.leases.clone(),
        );
        registry.register(
            "delivery_releases",
            "Leases handed back to the spool untried (shutdown)",
            m.releases.clone(),
        );
        registry.register(
            "delivery_ready_messages",
            "Messages waiting in a destination's ready queue for a connection",
            m.waiting.clone(),
        );
        registry.register(
            "delivery_connections",
            "Delivery connections open per destination",
            m.connections.clone(),
        );
        registry.register(
            "delivery_destination_paused",
            "1 while a destination is paused after a throttling reply",
            m.paused.clone(),
        );
        registry.register(
            "delivery_throttle_pauses",
            "Pauses of a destination after a throttling reply",
            m.pauses.clone(),
        );
        registry.register(
            "delivery_ready_wait_seconds",
            "Time a leased message waited in its ready queue for a connection",
            m.wait.clone(),
        );
        m
    }

    /// One attempt settled with this outcome.
    pub(crate) fn outcome(&self, event: &EmailEvent) {
        let outcome = match event.settles_as() {
            Some(status) => status.as_str(),
            None => return,
        };
        self.outcomes.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub(crate) fn leased(&self, n: usize) {
        self.leases.inc_by(n as u64);
    }

    pub(crate) fn released(&self, n: usize) {
        self.releases.inc_by(n as u64);
    }

    pub(crate) fn waited(&self, d: Duration) {
        self.wait.observe(d.as_secs_f64());
    }

    /// The gauges of a new destination (waiting, connections, paused):
    /// handles kept by the destination, so updating them costs no lookup.
    pub(crate) fn destination(&self, domain: &str) -> (Gauge, Gauge, Gauge) {
        let label = DestinationLabel {
            destination: domain.to_string(),
        };
        (
            self.waiting.get_or_create(&label).clone(),
            self.connections.get_or_create(&label).clone(),
            self.paused.get_or_create(&label).clone(),
        )
    }

    /// A destination is gone: its gauges go too (one series per domain
    /// ever seen would grow without bound). Its pause counter stays.
    pub(crate) fn forget_destination(&self, domain: &str) {
        let label = DestinationLabel {
            destination: domain.to_string(),
        };
        self.waiting.remove(&label);
        self.connections.remove(&label);
        self.paused.remove(&label);
    }

    pub(crate) fn paused(&self, domain: &str) {
        let label = DestinationLabel {
            destination: domain.to_string(),
        };
        self.pauses.get_or_create(&label).inc();
    }
}
