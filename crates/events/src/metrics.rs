//! What the events service counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookResult {
    result: &'static str,
}

#[derive(Clone)]
pub(crate) struct EventsMetrics {
    attempts: Family<WebhookResult, Counter>,
    attempt_seconds: Histogram,
    deliveries_failed: Counter,
    feed_unreadable: Counter,
}

impl EventsMetrics {
    pub(crate) fn register(registry: &mut Registry) -> EventsMetrics {
        let m = EventsMetrics {
            attempts: Family::default(),
            // 5 ms to ~20 s: a local receiver answers in milliseconds, the
            // configured timeout ends the slowest.
            attempt_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            deliveries_failed: Counter::default(),
            feed_unreadable: Counter::default(),
        };
        registry.register(
            "webhook_attempts",
            "Webhook POSTs by result (succeeded: a 2xx answer; failed: anything else, timeouts and refused addresses included)",
            m.attempts.clone(),
        );
        registry.register(
            "webhook_attempt_seconds",
            "Time from sending a webhook POST to its answer or failure",
            m.attempt_seconds.clone(),
        );
        registry.register(
            "webhook_deliveries_failed",
            "Webhook deliveries given up after the last scheduled retry (a manual resend is still possible)",
            m.deliveries_failed.clone(),
        );
        registry.register(
            "events_feed_unreadable",
            "Spool feed entries that could not be read (their events were not sent; see the log)",
            m.feed_unreadable.clone(),
        );
        m
    }

    /// One webhook POST ended (answered or not) after `seconds`.
    pub(crate) fn webhook_attempt(&self, succeeded: bool, seconds: f64) {
        let result = if succeeded { "succeeded" } else { "failed" };
        self.attempts.get_or_create(&WebhookResult { result }).inc();
        self.attempt_seconds.observe(seconds);
    }

    /// A webhook delivery ran out of scheduled attempts.
    pub(crate) fn webhook_delivery_failed(&self) {
        self.deliveries_failed.inc();
    }

    pub(crate) fn feed_unreadable(&self) {
        self.feed_unreadable.inc();
    }
}
