//! Prometheus metrics served at `GET /metrics`.
//!
//! Hot paths bump atomics; figures owned by other parts (spool depth, flush
//! counts) are read from them when scraped, so they cannot drift.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rackwave_queue::Spool;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

pub struct Inner {
    registry: Registry,
    pub smtp_connections: Counter,
    pub smtp_connections_active: Gauge,
    pub smtp_connections_refused: Family<Reason, Counter>,
    pub smtp_auth_failures: Counter,
    pub smtp_messages_accepted: Counter,
    pub smtp_recipients_accepted: Counter,
    pub smtp_refused: Family<Reason, Counter>,
    delivery_outcomes: Family<OutcomeLabel, Counter>,
    spool_depth: Gauge,
    spool_messages: Family<StatusLabel, Gauge>,
    spool_flushes: Counter,
    spool_commits: Counter,
    spool_flush_seconds: Counter<f64, AtomicU64>,
    last_spool: Mutex<(u64, u64, f64)>,
    webhook_attempts: Family<WebhookResult, Counter>,
    webhook_attempt_seconds: Histogram,
    webhook_deliveries_failed: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookResult {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

impl std::ops::Deref for Metrics {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rackwave");
        let inner = Inner {
            smtp_connections: Counter::default(),
            smtp_connections_active: Gauge::default(),
            smtp_connections_refused: Family::default(),
            smtp_auth_failures: Counter::default(),
            smtp_messages_accepted: Counter::default(),
            smtp_recipients_accepted: Counter::default(),
            smtp_refused: Family::default(),
            delivery_outcomes: Family::default(),
            spool_depth: Gauge::default(),
            spool_messages: Family::default(),
            spool_flushes: Counter::default(),
            spool_commits: Counter::default(),
            spool_flush_seconds: Counter::default(),
            last_spool: Mutex::new((0, 0, 0.0)),
            webhook_attempts: Family::default(),
            // 5 ms to ~20 s: a local receiver answers in milliseconds, the
            // configured timeout ends the slowest.
            webhook_attempt_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            webhook_deliveries_failed: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "smtp_connections",
            "SMTP connections accepted",
            inner.smtp_connections.clone(),
        );
        registry.register(
            "smtp_connections_active",
            "SMTP sessions open now",
            inner.smtp_connections_active.clone(),
        );
        registry.register(
            "smtp_connections_refused",
            "SMTP connections refused at connect, by reason",
            inner.smtp_connections_refused.clone(),
        );
        registry.register(
            "smtp_auth_failures",
            "Failed SMTP AUTH attempts",
            inner.smtp_auth_failures.clone(),
        );
        registry.register(
            "smtp_messages_accepted",
            "Messages accepted (durably queued) over SMTP",
            inner.smtp_messages_accepted.clone(),
        );
        registry.register(
            "smtp_recipients_accepted",
            "Recipients accepted over SMTP (each becomes one queued message)",
            inner.smtp_recipients_accepted.clone(),
        );
        registry.register(
            "smtp_refused",
            "SMTP commands or messages refused, by reason",
            inner.smtp_refused.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts by outcome (delivered, deferred, bounced)",
            inner.delivery_outcomes.clone(),
        );
        registry.register(
            "spool_depth",
            "Messages waiting for delivery (queued and deferred)",
            inner.spool_depth.clone(),
        );
        registry.register(
            "spool_messages",
            "Messages in the spool by status",
            inner.spool_messages.clone(),
        );
        registry.register(
            "spool_flushes",
            "fsyncs of the spool (shared by group commit)",
            inner.spool_flushes.clone(),
        );
        registry.register(
            "spool_commits",
            "Spool write batches committed",
            inner.spool_commits.clone(),
        );
        registry.register(
            "spool_flush_seconds",
            "Time spent in spool fsyncs (body segment and database); divide by spool_flushes_total for the mean per group commit",
            inner.spool_flush_seconds.clone(),
        );
        registry.register(
            "webhook_attempts",
            "Webhook POSTs by result (succeeded: a 2xx answer; failed: anything else, timeouts and refused addresses included)",
            inner.webhook_attempts.clone(),
        );
        registry.register(
            "webhook_attempt_seconds",
            "Time from sending a webhook POST to its answer or failure",
            inner.webhook_attempt_seconds.clone(),
        );
        registry.register(
            "webhook_deliveries_failed",
            "Webhook deliveries given up after the last scheduled retry (a manual resend is still possible)",
            inner.webhook_deliveries_failed.clone(),
        );
        let mut inner = inner;
        inner.registry = registry;
        Metrics {
            inner: Arc::new(inner),
        }
    }

    pub fn delivered(&self) {
        self.outcome("delivered");
    }
    pub fn deferred(&self) {
        self.outcome("deferred");
    }
    pub fn bounced(&self) {
        self.outcome("bounced");
    }
    fn outcome(&self, outcome: &'static str) {
        self.delivery_outcomes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// One webhook POST ended (answered or not) after `seconds`.
    pub fn webhook_attempt(&self, succeeded: bool, seconds: f64) {
        let result = if succeeded { "succeeded" } else { "failed" };
        self.webhook_attempts
            .get_or_create(&WebhookResult { result })
            .inc();
        self.webhook_attempt_seconds.observe(seconds);
    }

    /// A webhook delivery ran out of scheduled attempts.
    pub fn webhook_delivery_failed(&self) {
        self.webhook_deliveries_failed.inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.smtp_refused.get_or_create(&Reason { reason }).inc();
    }

    /// Renders the text exposition, reading the spool's own figures first.
    pub fn render(&self, spool: &Spool) -> String {
        let counts = spool.counts();
        self.spool_depth
            .set((counts.queued + counts.deferred) as i64);
        for (status, n) in [
            ("queued", counts.queued),
            ("deferred", counts.deferred),
            ("delivered", counts.delivered),
            ("bounced", counts.bounced),
        ] {
            self.spool_messages
                .get_or_create(&StatusLabel { status })
                .set(n as i64);
        }
        let stats = spool.stats();
        {
            let mut last = self.last_spool.lock().unwrap();
            let secs = stats.total_flush_nanos as f64 / 1e9;
            self.spool_flushes
                .inc_by(stats.flushes.saturating_sub(last.0));
            self.spool_commits
                .inc_by(stats.commits.saturating_sub(last.1));
            if secs > last.2 {
                self.spool_flush_seconds.inc_by(secs - last.2);
            }
            *last = (stats.flushes, stats.commits, secs.max(last.2));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
