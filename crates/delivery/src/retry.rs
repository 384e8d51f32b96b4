//! When to try again: the configured backoff schedule, and the maximum
//! queue lifetime after which a message bounces as expired.

/// The retry policy, all in milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    schedule_ms: Vec<i64>,
    lifetime_ms: i64,
}

impl RetryPolicy {
    pub(crate) fn new(schedule_secs: &[u64], lifetime_secs: u64) -> RetryPolicy {
        RetryPolicy {
            schedule_ms: schedule_secs.iter().map(|s| *s as i64 * 1000).collect(),
            lifetime_ms: lifetime_secs as i64 * 1000,
        }
    }

    /// After the `attempt`-th failure (1-based) at `now`: the next try,
    /// never later than the end of the message's lifetime, so the last
    /// attempt happens right at expiry.
    pub(crate) fn next_attempt(&self, created_ms: i64, attempt: u32, now: i64) -> i64 {
        let i = (attempt.max(1) as usize - 1).min(self.schedule_ms.len().saturating_sub(1));
        let delay = self.schedule_ms.get(i).copied().unwrap_or(300_000);
        (now + delay).min(self.expires_at(created_ms)).max(now)
    }

    pub(crate) fn expires_at(&self, created_ms: i64) -> i64 {
        created_ms + self.lifetime_ms
    }

    /// Whether a message created at `created_ms` has reached its lifetime.
    pub(crate) fn expired(&self, created_ms: i64, now: i64) -> bool {
        now >= self.expires_at(created_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_repeats_last_and_stops_at_lifetime() {
        let p = RetryPolicy::new(&[60, 300], 3600);
        assert_eq!(p.next_attempt(0, 1, 1000), 61_000);
        assert_eq!(p.next_attempt(0, 2, 61_000), 361_000);
        assert_eq!(p.next_attempt(0, 9, 361_000), 661_000);
        assert_eq!(p.next_attempt(0, 9, 3_500_000), 3_600_000);
        assert!(!p.expired(0, 3_599_999));
        assert!(p.expired(0, 3_600_000));
    }
}
