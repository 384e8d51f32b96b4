//! What the MX counts: received messages by what became of them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Default)]
pub(crate) struct InboundMetrics {
    received: Family<Outcome, Counter>,
}

impl InboundMetrics {
    pub(crate) fn register(registry: &mut Registry) -> InboundMetrics {
        let m = InboundMetrics::default();
        registry.register(
            "inbound_reports",
            "Messages received by the inbound MX, by what became of them (bounced, deferred, complained, or why they were dropped)",
            m.received.clone(),
        );
        m
    }

    pub(crate) fn received(&self, outcome: &'static str) {
        self.received.get_or_create(&Outcome { outcome }).inc();
    }
}
