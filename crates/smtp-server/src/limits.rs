//! Per-address protections: connection caps (in total and per client IP).
//! The AUTH failure tracker is `rackwave_accounts::AuthGuard`, shared with
//! the portal's login.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections; a [`ConnectionSlot`] gives its place back when
/// the session ends, however it ends.
#[derive(Clone)]
pub(crate) struct ConnectionLimits {
    inner: Arc<Mutex<ConnCounts>>,
    max_total: usize,
    max_per_ip: usize,
}

#[derive(Default)]
struct ConnCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

pub(crate) struct ConnectionSlot {
    limits: ConnectionLimits,
    ip: IpAddr,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    PerIp,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            inner: Arc::default(),
            max_total,
            max_per_ip,
        }
    }

    pub(crate) fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut c = self.inner.lock().unwrap();
        if c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.limits.inner.lock().unwrap();
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_total_and_per_ip() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = limits.admit(a).unwrap();
        let _s2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::PerIp));
        let _s3 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refusal::Total));
        drop(s1);
        assert!(limits.admit(a).is_ok());
    }
}
