//! The failure tracker of every login: a growing delay, then a lockout,
//! per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackwave_core::Clock;

/// Failed logins per client address (SMTP AUTH, the portal's login). Each failure doubles the delay
/// before the 535 reply; after `max_failures` the address is locked out for
/// `lockout`. The count decays: a window of `lockout` without failures
/// forgets the address.
#[derive(Clone)]
pub struct AuthGuard {
    inner: Arc<Mutex<HashMap<IpAddr, Failures>>>,
    clock: Clock,
    max_failures: u32,
    base_delay: Duration,
    lockout_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: i64,
    locked_until_ms: Option<i64>,
}

impl AuthGuard {
    pub fn new(clock: Clock, max_failures: u32, base_delay: Duration, lockout: Duration) -> Self {
        AuthGuard {
            inner: Arc::default(),
            clock,
            max_failures: max_failures.max(1),
            base_delay,
            lockout_ms: lockout.as_millis() as i64,
        }
    }

    /// Whether the address may try to authenticate now.
    pub fn is_locked(&self, ip: IpAddr) -> bool {
        let now = self.clock.now_ms();
        let mut map = self.inner.lock().unwrap();
        match map.get(&ip).copied() {
            Some(f) => match f.locked_until_ms {
                Some(until) if now < until => true,
                Some(_) => {
                    map.remove(&ip);
                    false
                }
                None => {
                    if now - f.last_ms > self.lockout_ms {
                        map.remove(&ip);
                    }
                    false
                }
            },
            None => false,
        }
    }

    /// Records a failure and returns how long to wait before answering.
    pub fn failed(&self, ip: IpAddr) -> Duration {
        let now = self.clock.now_ms();
        let mut map = self.inner.lock().unwrap();
        if map.len() > 100_000 {
            // Bounded memory under a distributed attack: forget the stale.
            let lockout = self.lockout_ms;
            map.retain(|_, f| now - f.last_ms <= lockout);
        }
        let f = map.entry(ip).or_insert(Failures {
            count: 0,
            last_ms: now,
            locked_until_ms: None,
        });
        f.count += 1;
        f.last_ms = now;
        if f.count >= self.max_failures {
            f.locked_until_ms = Some(now + self.lockout_ms);
        }
        let shift = (f.count - 1).min(5);
        self.base_delay * (1u32 << shift)
    }

    /// A success forgets earlier failures of the address.
    pub fn succeeded(&self, ip: IpAddr) {
        self.inner.lock().unwrap().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_delay_grows_then_locks_and_expires() {
        let clock = Clock::manual(1_000_000);
        let g = AuthGuard::new(
            clock.clone(),
            3,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!g.is_locked(ip));
        assert_eq!(g.failed(ip), Duration::from_millis(100));
        assert_eq!(g.failed(ip), Duration::from_millis(200));
        assert!(!g.is_locked(ip));
        assert_eq!(g.failed(ip), Duration::from_millis(400));
        assert!(g.is_locked(ip));
        assert!(!g.is_locked("192.0.2.2".parse().unwrap()));
        clock.advance_ms(60_001);
        assert!(!g.is_locked(ip));
        assert_eq!(g.failed(ip), Duration::from_millis(100));
    }
}
