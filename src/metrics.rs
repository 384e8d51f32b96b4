//! The spool's own figures at every scrape: depth, messages by status,
//! fsyncs and commits (read from the spool, so they cannot drift). Every
//! other part registers its metrics itself.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use rackwave_queue::{Spool, Status};

pub(crate) struct SpoolCollector(pub(crate) Spool);

impl std::fmt::Debug for SpoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpoolCollector")
    }
}

impl Collector for SpoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.0.counts();
        let depth = ConstGauge::new(counts.pending() as i64);
        depth.encode(encoder.encode_descriptor(
            "spool_depth",
            "Messages waiting for delivery (queued and deferred)",
            None,
            depth.metric_type(),
        )?)?;
        let mut by_status = encoder.encode_descriptor(
            "spool_messages",
            "Messages in the spool by status (finished ones until retention removes them)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for status in Status::ALL {
            let gauge = ConstGauge::new(counts.get(status) as i64);
            gauge.encode(by_status.encode_family(&[("status", status.as_str())])?)?;
        }
        let stats = self.0.stats();
        for (name, help, value) in [
            (
                "spool_flushes",
                "fsyncs of the spool (shared by group commit)",
                stats.flushes,
            ),
            (
                "spool_commits",
                "Spool write batches committed",
                stats.commits,
            ),
            (
                "spool_pruned",
                "Records of finished messages deleted by retention ([spool] retention_days)",
                stats.records_pruned,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let seconds = ConstCounter::new(stats.total_flush_nanos as f64 / 1e9);
        seconds.encode(encoder.encode_descriptor(
            "spool_flush_seconds",
            "Time spent in spool fsyncs (body segment and database); divide by spool_flushes_total for the mean per group commit",
            None,
            seconds.metric_type(),
        )?)?;
        Ok(())
    }
}
