//! What the delivery engine counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rackwave_core::event::EmailEvent;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Default)]
pub(crate) struct DeliveryMetrics {
    outcomes: Family<OutcomeLabel, Counter>,
}

impl DeliveryMetrics {
    pub(crate) fn register(registry: &mut Registry) -> DeliveryMetrics {
        let m = DeliveryMetrics::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts by outcome (delivered, deferred, bounced)",
            m.outcomes.clone(),
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
}
