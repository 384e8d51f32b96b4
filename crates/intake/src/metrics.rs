//! What the intake counts, by source.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    source: &'static str,
    reason: &'static str,
}

#[derive(Clone, Default)]
pub(crate) struct IntakeMetrics {
    messages: Family<SourceLabel, Counter>,
    recipients: Family<SourceLabel, Counter>,
    refused: Family<RefusalLabel, Counter>,
}

impl IntakeMetrics {
    pub(crate) fn register(registry: &mut Registry) -> IntakeMetrics {
        let m = IntakeMetrics::default();
        registry.register(
            "messages_accepted",
            "Submissions durably queued, by source (smtp, http, notification)",
            m.messages.clone(),
        );
        registry.register(
            "recipients_accepted",
            "Recipients durably queued (each becomes one message), by source",
            m.recipients.clone(),
        );
        registry.register(
            "intake_refused",
            "Submissions the intake refused after they were received, by source and reason",
            m.refused.clone(),
        );
        m
    }

    pub(crate) fn accepted(&self, source: &'static str, recipients: u64) {
        self.messages.get_or_create(&SourceLabel { source }).inc();
        self.recipients
            .get_or_create(&SourceLabel { source })
            .inc_by(recipients);
    }

    pub(crate) fn refused(&self, source: &'static str, reason: &'static str) {
        self.refused
            .get_or_create(&RefusalLabel { source, reason })
            .inc();
    }
}
