//! Per-key rate limits of the platform APIs: a token bucket per bearer key
//! (`[http] rate_limit_per_second`, `rate_limit_burst`), on the injectable
//! clock. Every keyed answer carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the bucket is
//! full again); a request over the limit is `429` with `Retry-After`.
//!
//! Buckets are keyed by a digest of the presented token, before the key
//! is looked up (a request with an unknown key still spends from its
//! bucket, but a guesser trying a new token each time gets a new bucket:
//! this limits keys, not clients). Idle buckets are dropped when there are
//! many.
//!
//! The portal's anonymous calls (sign-up, login, password resets) are
//! limited per client address instead (`[http]
//! portal_rate_limit_per_minute`; IPv6 per /64), so one address cannot
//! create accounts or mail reset links without end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rackwave_core::Clock;
use sha2::{Digest, Sha256};

use crate::extract::bearer;
use crate::ApiError;

/// Buckets kept before full (idle) ones are dropped.
const MAX_BUCKETS: usize = 10_000;

/// The limit of every key.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Requests a second, sustained; 0 turns limiting off.
    pub per_second: u32,
    /// Requests at once after a quiet spell.
    pub burst: u32,
}

#[derive(Clone)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    /// Tokens a second.
    rate: f64,
    clock: Clock,
    buckets: Arc<Mutex<HashMap<[u8; 32], Bucket>>>,
}

/// The limiter of the portal's anonymous calls, per client address.
#[derive(Clone)]
pub(crate) struct AddressLimiter(pub(crate) RateLimiter);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// What one request was allowed.
struct Decision {
    allowed: bool,
    remaining: u32,
    /// Seconds until the bucket is full.
    reset_secs: u64,
    /// Seconds until one request is allowed (when refused).
    retry_secs: u64,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit, clock: Clock) -> RateLimiter {
        RateLimiter {
            rate: f64::from(limit.per_second),
            limit,
            clock,
            buckets: Arc::default(),
        }
    }

    /// `per_minute` requests a minute, as many at once (0: no limit).
    pub(crate) fn per_minute(per_minute: u32, clock: Clock) -> RateLimiter {
        RateLimiter {
            rate: f64::from(per_minute) / 60.0,
            limit: RateLimit {
                per_second: per_minute.div_ceil(60),
                burst: per_minute,
            },
            clock,
            buckets: Arc::default(),
        }
    }

    fn take(&self, id: [u8; 32]) -> Decision {
        let rate = self.rate;
        let burst = f64::from(self.limit.burst.max(1));
        let now = self.clock.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&id) {
            buckets.retain(|_, b| b.tokens + (now - b.at_ms) as f64 / 1000.0 * rate < burst);
        }
        let b = buckets.entry(id).or_insert(Bucket {
            tokens: burst,
            at_ms: now,
        });
        b.tokens = (b.tokens + (now - b.at_ms).max(0) as f64 / 1000.0 * rate).min(burst);
        b.at_ms = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let secs = |tokens: f64| (tokens.max(0.0) / rate).ceil() as u64;
        Decision {
            allowed,
            remaining: b.tokens.floor() as u32,
            reset_secs: secs(burst - b.tokens),
            retry_secs: secs(1.0 - b.tokens).max(1),
        }
    }
}

/// The middleware of the keyed routes.
pub(crate) async fn limit(req: Request, next: Next) -> Response {
    let limiter = req.extensions().get::<RateLimiter>().cloned();
    let Some(limiter) = limiter.filter(|l| l.limit.per_second > 0) else {
        return next.run(req).await;
    };
    let Some(token) = bearer(req.headers()) else {
        return next.run(req).await;
    };
    let decision = limiter.take(Sha256::digest(token.as_bytes()).into());
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        too_many(
            format!(
                "more than {} requests a second with this key; retry after {} s",
                limiter.limit.per_second, decision.retry_secs
            ),
            decision.retry_secs,
        )
    };
    let headers = response.headers_mut();
    set(
        headers,
        "ratelimit-limit",
        u64::from(limiter.limit.burst.max(1)),
    );
    set(
        headers,
        "ratelimit-remaining",
        u64::from(decision.remaining),
    );
    set(headers, "ratelimit-reset", decision.reset_secs);
    response
}

/// The middleware of the portal's anonymous calls (see the module docs).
pub(crate) async fn limit_address(req: Request, next: Next) -> Response {
    let limiter = req.extensions().get::<AddressLimiter>().cloned();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let (Some(AddressLimiter(limiter)), Some(ip)) = (limiter, peer) else {
        return next.run(req).await;
    };
    if limiter.limit.burst == 0 {
        return next.run(req).await;
    }
    // IPv6 per /64: one host has a whole prefix to hop in.
    let key = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
    };
    let decision = limiter.take(Sha256::digest(&key).into());
    if decision.allowed {
        return next.run(req).await;
    }
    too_many(
        format!(
            "too many sign-ups, logins or resets from this address; retry after {} s",
            decision.retry_secs
        ),
        decision.retry_secs,
    )
}

/// `429` saying `message`, with `Retry-After`.
fn too_many(message: String, retry_secs: u64) -> Response {
    let mut r =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    set(r.headers_mut(), "retry-after", retry_secs);
    r
}

fn set(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.insert(name, HeaderValue::from(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_on_the_clock() {
        let clock = Clock::manual(1_000_000);
        let l = RateLimiter::new(
            RateLimit {
                per_second: 2,
                burst: 3,
            },
            clock.clone(),
        );
        let id = [1; 32];
        for left in [2, 1, 0] {
            let d = l.take(id);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = l.take(id);
        assert!(!d.allowed);
        assert_eq!(d.retry_secs, 1);
        assert_eq!(d.reset_secs, 2);
        // Another key has its own bucket.
        assert!(l.take([2; 32]).allowed);
        clock.advance_ms(500);
        assert!(l.take(id).allowed);
        assert!(!l.take(id).allowed);
        clock.advance_ms(10_000);
        assert_eq!(l.take(id).remaining, 2, "refilled to the burst, not beyond");
    }
}
