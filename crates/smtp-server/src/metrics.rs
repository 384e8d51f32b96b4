//! What the SMTP server counts. Accepted messages and recipients are the
//! intake's (by source).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub(crate) reason: &'static str,
}

#[derive(Clone, Default)]
pub(crate) struct SmtpMetrics {
    pub(crate) connections: Counter,
    pub(crate) active: Gauge,
    pub(crate) connections_refused: Family<Reason, Counter>,
    pub(crate) auth_failures: Counter,
    refused: Family<Reason, Counter>,
}

impl SmtpMetrics {
    pub(crate) fn register(registry: &mut Registry) -> SmtpMetrics {
        let m = SmtpMetrics::default();
        registry.register(
            "smtp_connections",
            "SMTP connections accepted",
            m.connections.clone(),
        );
        registry.register(
            "smtp_connections_active",
            "SMTP sessions open now",
            m.active.clone(),
        );
        registry.register(
            "smtp_connections_refused",
            "SMTP connections refused at connect, by reason",
            m.connections_refused.clone(),
        );
        registry.register(
            "smtp_auth_failures",
            "Failed SMTP AUTH attempts",
            m.auth_failures.clone(),
        );
        registry.register(
            "smtp_refused",
            "SMTP commands or messages refused, by reason",
            m.refused.clone(),
        );
        m
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }
}
