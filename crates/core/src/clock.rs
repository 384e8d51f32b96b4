//! The injectable clock. Everything that depends on the date or on elapsed
//! time (quota days, lockouts, retries) reads it from here, so tests can move
//! time forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const MS_PER_DAY: i64 = 86_400_000;

#[derive(Clone)]
pub enum Clock {
    System,
    /// A clock that only moves when told to.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Milliseconds since the unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => Utc::now().timestamp_millis(),
            Clock::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Now, as a [`Timestamp`].
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now_ms())
    }

    /// UTC day number (days since the unix epoch): the unit of daily quotas.
    pub fn today(&self) -> i64 {
        self.now_ms().div_euclid(MS_PER_DAY)
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance_ms(&self, ms: i64) {
        if let Clock::Manual(now) = self {
            now.fetch_add(ms, Ordering::SeqCst);
        }
    }

    pub fn set_ms(&self, at: i64) {
        if let Clock::Manual(now) = self {
            now.store(at, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clock::System => f.write_str("Clock::System"),
            Clock::Manual(ms) => write!(f, "Clock::Manual({})", ms.load(Ordering::SeqCst)),
        }
    }
}

/// RFC 3339 UTC with seconds, as the webhook envelope shows times.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A point in time as the APIs and webhooks show it: milliseconds since the
/// Unix epoch inside, RFC 3339 UTC with seconds outside
/// (`"2026-06-07T09:39:00Z"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn ms(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp(t.timestamp_millis()))
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

/// RFC 5322 date, for `Received:` headers.
pub fn rfc5322(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc2822()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_crosses_midnight() {
        let c = Clock::manual(MS_PER_DAY * 20_000 + MS_PER_DAY - 1);
        let day = c.today();
        c.advance_ms(1);
        assert_eq!(c.today(), day + 1);
    }

    #[test]
    fn timestamps_round_trip_as_rfc3339() {
        let t = Timestamp(1_780_825_140_000);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-06-07T09:39:00Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert!(rfc5322(0).starts_with("Thu, 1 Jan 1970"));
    }
}
