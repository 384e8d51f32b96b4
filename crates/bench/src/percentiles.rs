//! Latency percentiles for benchmark reports.

/// The `p`-quantile (0.0 to 1.0) of sorted samples, by the nearest-rank
/// method; 0 when there are none.
pub(crate) fn quantile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The latency figures every load generator reports, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LatencyMs {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// [`LatencyMs`] of samples in microseconds, in any order.
pub(crate) fn latency_ms(mut samples_us: Vec<u64>) -> LatencyMs {
    samples_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    LatencyMs {
        p50: ms(quantile(&samples_us, 0.50)),
        p90: ms(quantile(&samples_us, 0.90)),
        p99: ms(quantile(&samples_us, 0.99)),
        max: ms(samples_us.last().copied().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(super::quantile(&v, 0.5), 50);
        assert_eq!(super::quantile(&v, 0.99), 99);
        assert_eq!(super::quantile(&v, 1.0), 100);
        assert_eq!(super::quantile(&[], 0.5), 0);
    }

    #[test]
    fn latency_in_milliseconds_from_unsorted_microseconds() {
        let l = super::latency_ms((1..=100).rev().map(|v| v * 1000).collect());
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(super::latency_ms(Vec::new()).max, 0.0);
    }
}
