//! The failure tracker of every login: a growing delay, then a lockout,
//! per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackwave_core::Clock;

/// Failed logins per client address (SMTP AUTH, the portal's login; each
/// has its own guard). Each failure doubles the delay before the refusal;
/// after `max_failures` the address is locked out for `lockout`. The count
/// only decays: a window of `lockout` without failures forgets the
/// address. A success does not reset it, or a guesser with an account of
/// their own (sign-up is open) could log in between guesses at another's.
/// IPv6 clients are counted per /64, the block one subscriber gets.
#[derive(Clone)]
pub struct AuthGuard {
    inner: Arc<Mutex<HashMap<IpAddr, Failures>>>,
    /// One login at a time per client, for callers that take turns
    /// ([`turn`](AuthGuard::turn)): a burst of parallel guesses would
    /// otherwise all pass the lockout check before the first failure is
    /// counted.
    turns: Arc<Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>>,
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
            turns: Arc::default(),
            clock,
            max_failures: max_failures.max(1),
            base_delay,
            lockout_ms: lockout.as_millis() as i64,
        }
    }

    /// Waits for the client's turn to log in; held until the attempt's
    /// outcome is recorded, so the next attempt sees it.
    pub async fn turn(&self, ip: IpAddr) -> tokio::sync::OwnedMutexGuard<()> {
        let gate = {
            let mut turns = lock(&self.turns);
            if turns.len() > 10_000 {
                // Bounded: forget the gates nobody waits on.
                turns.retain(|_, g| Arc::strong_count(g) > 1);
            }
            turns.entry(client(ip)).or_default().clone()
        };
        gate.lock_owned().await
    }

    /// Whether the address may try to authenticate now.
    pub fn is_locked(&self, ip: IpAddr) -> bool {
        let ip = client(ip);
        let now = self.clock.now_ms();
        let mut map = lock(&self.inner);
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
        let ip = client(ip);
        let now = self.clock.now_ms();
        let mut map = lock(&self.inner);
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
}

/// The unit a client is counted by: an IPv4 address (IPv4-mapped IPv6
/// included), or an IPv6 /64.
fn client(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        // One /64 is one client; a mapped IPv4 address is that address.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        g.failed(a);
        g.failed(b);
        g.failed(a);
        assert!(g.is_locked(b));
        assert!(!g.is_locked("2001:db8:1:3::1".parse().unwrap()));
        assert!(g.is_locked("::ffff:192.0.2.1".parse().unwrap()) == g.is_locked(ip));
    }
}
