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
}
