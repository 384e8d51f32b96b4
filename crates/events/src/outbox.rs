//! The webhook emitter: a durable outbox of deliveries (one per event and
//! endpoint, stored in the same batch as the event), sent by a scheduler
//! that runs on stored state and the injectable clock.
//!
//! Schedule (the seed's, exactly): attempt 1 at once; then 5 min, 30 min,
//! 2 h and 8 h after the previous attempt; a final attempt 24 h after the
//! first; if that fails too the delivery is permanently failed. Every
//! attempt is logged (time, status code, latency, the first KiB of the
//! response, the error). A retry carries the same event id with a fresh
//! `webhook-timestamp` and signature. An attempt is made on a lease of
//! its delivery (the request's timeout and 30 s): however many nodes share
//! the outbox, one of them makes it. A crash in the middle of an attempt
//! leaves the delivery leased, so it is sent again when the lease ends (by
//! this node after a restart, or by another): delivery is at least once,
//! and receivers deduplicate on `webhook-id`.
//!
//! Concurrency is bounded per endpoint and overall, and the scheduler only
//! takes from an endpoint what that endpoint has room for, so one slow or
//! dead endpoint never delays the others.
//!
//! Deliveries and their due index live in the store; every change of a
//! delivery is one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rackwave_core::{random_hex, Clock};
use rackwave_store::{Attempt, Delivery, DeliveryState, Endpoint, Store, StoredEvent};
use tokio::sync::{watch, Notify};

use crate::config::WebhooksConfig;
use crate::metrics::EventsMetrics;
use crate::signing::signature_header;
use crate::targets::{self, GuardedResolver};
use crate::EventsError;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// Delays after attempts 1 to 4.
pub const RETRY_DELAYS_MS: [i64; 4] = [5 * MINUTE, 30 * MINUTE, 2 * HOUR, 8 * HOUR];
/// The final attempt, after the first.
pub const FINAL_ATTEMPT_AFTER_MS: i64 = 24 * HOUR;
/// The most of a response body kept in the attempt log.
pub(crate) const RESPONSE_LOG_BYTES: usize = 1024;
/// Attempts kept per delivery (6 scheduled, the rest manual resends).
const MAX_ATTEMPTS_KEPT: usize = 30;
/// A delivery lease outlasts the attempt's timeout by this much.
const LEASE_MARGIN_SECS: i64 = 30;

/// When the next attempt is due after a failed scheduled attempt, or
/// `None` when that was the final one. `done` counts the scheduled attempts
/// made so far (including this one), `first_ms` is when the first was made
/// and `at_ms` when this one was.
pub fn next_attempt(done: u32, first_ms: i64, at_ms: i64) -> Option<i64> {
    let final_at = first_ms + FINAL_ATTEMPT_AFTER_MS;
    if at_ms >= final_at || done == 0 {
        return None;
    }
    let next = match RETRY_DELAYS_MS.get(done as usize - 1) {
        Some(delay) => at_ms + delay,
        None => final_at,
    };
    Some(next.min(final_at))
}

/// A new delivery of a stored event to an endpoint, due now.
pub(crate) fn new_delivery(endpoint: &Endpoint, stored: &StoredEvent, now_ms: i64) -> Delivery {
    Delivery {
        id: format!("whd_{}", random_hex(10)),
        endpoint_id: endpoint.id.clone(),
        workspace_id: endpoint.workspace_id.clone(),
        event_id: stored.id.clone(),
        event_type: stored
            .event_type
            .unwrap_or(rackwave_core::event::EventType::Ping),
        event_seq: stored.seq,
        state: DeliveryState::Pending,
        created_at_ms: now_ms,
        first_attempt_at_ms: None,
        next_attempt_at_ms: Some(now_ms),
        due_at_ms: Some(now_ms),
        resend: false,
        attempts: Vec::new(),
        seq: 0,
        leased_by: None,
    }
}

/// Adds an attempt to a delivery's history, which keeps the latest
/// [`MAX_ATTEMPTS_KEPT`].
fn keep_attempt(d: &mut Delivery, attempt: Attempt) {
    d.attempts.push(attempt);
    if d.attempts.len() > MAX_ATTEMPTS_KEPT {
        let excess = d.attempts.len() - MAX_ATTEMPTS_KEPT;
        d.attempts.drain(..excess);
    }
}

fn scheduled_attempts(d: &Delivery) -> u32 {
    d.attempts.iter().filter(|a| !a.manual).count() as u32
}

#[derive(Default)]
struct InFlight {
    ids: HashSet<String>,
    per_endpoint: HashMap<String, usize>,
    total: usize,
}

/// The running emitter (cheap to clone).
#[derive(Clone)]
pub(crate) struct Emitter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Clock,
    metrics: EventsMetrics,
    config: WebhooksConfig,
    client: reqwest::Client,
    wake: Arc<Notify>,
    in_flight: Mutex<InFlight>,
    /// The endpoint where the last scan stopped (round robin).
    resume: Mutex<Option<String>>,
    /// This node's id: the holder of its delivery leases.
    node_id: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The one HTTP client of the emitter: no redirects, no proxies, the
/// configured timeout, names resolved through the address guard.
fn http_client(config: &WebhooksConfig) -> reqwest::Client {
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(format!("rackwave/{} (webhooks)", env!("CARGO_PKG_VERSION")))
        .dns_resolver(GuardedResolver::shared(config.allow_private_targets))
        .no_proxy()
        .pool_max_idle_per_host(config.per_endpoint_concurrency.max(1))
        .build()
        .expect("the webhook HTTP client builds")
}

/// Releases an in-flight slot however the attempt ends (even by a panic).
struct Slot {
    inner: Arc<Inner>,
    id: String,
    endpoint: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut f = lock(&self.inner.in_flight);
        if f.ids.remove(&self.id) {
            f.total -= 1;
            if let Some(n) = f.per_endpoint.get_mut(&self.endpoint) {
                *n -= 1;
                if *n == 0 {
                    f.per_endpoint.remove(&self.endpoint);
                }
            }
        }
        drop(f);
        self.inner.wake.notify_one();
    }
}

impl Emitter {
    pub(crate) fn new(
        store: Store,
        clock: Clock,
        config: WebhooksConfig,
        metrics: EventsMetrics,
        node_id: &str,
    ) -> Emitter {
        let client = http_client(&config);
        Emitter {
            inner: Arc::new(Inner {
                store,
                clock,
                metrics,
                config,
                client,
                wake: Arc::new(Notify::new()),
                in_flight: Mutex::new(InFlight::default()),
                resume: Mutex::new(None),
                node_id: node_id.to_string(),
            }),
        }
    }

    async fn release_own_leases(&self) -> Result<(), EventsError> {
        let inner = &self.inner;
        let mut tx = inner.store.begin().await?;
        let released = tx
            .release_leases(&inner.node_id, inner.clock.now_ms())
            .await?;
        tx.commit().await?;
        if released > 0 {
            tracing::info!(
                released,
                "webhook emitter: deliveries this node had leased before it stopped are due again"
            );
        }
        Ok(())
    }

    /// Looks for due deliveries now.
    pub(crate) fn kick(&self) {
        self.inner.wake.notify_one();
    }

    fn is_in_flight(&self, id: &str) -> bool {
        lock(&self.inner.in_flight).ids.contains(id)
    }

    /// Runs until `shutdown` turns true; attempts in flight then are
    /// abandoned (their deliveries stay due and go out after a restart).
    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.inner.config.poll_interval_ms.max(1));
        // Leases this node held before it stopped: their attempts died
        // with it, so they are due again now rather than when the leases
        // end. (Until that succeeds, they wait for the leases' end.)
        if let Err(e) = self.release_own_leases().await {
            tracing::warn!(error = %e, "webhook emitter: this node's earlier leases wait for their end");
        }
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            if let Err(e) = self.scan(&mut tasks).await {
                tracing::error!(error = %e, "webhook emitter: scanning the outbox failed");
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Starts an attempt for every due delivery whose endpoint has room.
    /// Endpoints are visited round robin: a scan that hits the overall
    /// limit resumes at the endpoint it could not serve, so with more busy
    /// endpoints than the limit allows none of them starves.
    async fn scan(&self, tasks: &mut tokio::task::JoinSet<()>) -> Result<(), EventsError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let max = inner.config.max_concurrency.max(1);
        let resume = lock(&inner.resume).take();
        // The endpoints from the resume point on, then those before it.
        let mut order = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = inner
                .store
                .due_endpoints(after.as_deref(), now, 100)
                .await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            order.extend(page);
            after = Some(last);
        }
        if let Some(r) = &resume {
            let split = order.partition_point(|e| e < r);
            order.rotate_left(split);
        }
        for endpoint_id in order {
            if lock(&inner.in_flight).total >= max {
                *lock(&inner.resume) = Some(endpoint_id);
                return Ok(());
            }
            self.start_attempts(tasks, &endpoint_id, now, max).await?;
        }
        Ok(())
    }

    /// Starts attempts for an endpoint's due deliveries while it has room.
    async fn start_attempts(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        endpoint_id: &str,
        now: i64,
        max: usize,
    ) -> Result<(), EventsError> {
        let inner = &self.inner;
        let per_endpoint = inner.config.per_endpoint_concurrency.max(1);
        let Some(endpoint) = inner.store.endpoint(endpoint_id).await? else {
            return Ok(());
        };
        if !endpoint.enabled {
            return Ok(());
        }
        let busy = lock(&inner.in_flight)
            .per_endpoint
            .get(endpoint_id)
            .copied()
            .unwrap_or(0);
        let room = per_endpoint.saturating_sub(busy);
        if room == 0 {
            return Ok(());
        }
        let room = room.min(max.saturating_sub(lock(&inner.in_flight).total));
        if room == 0 {
            return Ok(());
        }
        // Leased, not just read: until the lease ends no node (this one
        // included) takes them again, so each attempt is made once however
        // many nodes share the outbox; if this node dies mid-attempt they
        // are due again when it ends. Losing the lease in a crash only
        // makes them due again at once, so it does not wait for the disk.
        let mut tx = inner.store.begin().await?;
        let leased = tx
            .lease_deliveries(
                endpoint_id,
                &inner.node_id,
                now,
                now + self.lease_ms(),
                room,
            )
            .await?;
        tx.commit_eventually().await?;
        for d in leased {
            let mut f = lock(&inner.in_flight);
            if !f.ids.insert(d.id.clone()) {
                continue;
            }
            f.total += 1;
            *f.per_endpoint.entry(endpoint_id.to_string()).or_default() += 1;
            drop(f);
            let slot = Slot {
                inner: inner.clone(),
                id: d.id.clone(),
                endpoint: endpoint_id.to_string(),
            };
            tasks.spawn(async move {
                let this = Emitter {
                    inner: slot.inner.clone(),
                };
                if let Err(e) = this.attempt(d).await {
                    tracing::error!(error = %e, delivery = %slot.id, "webhook attempt failed to record");
                }
                drop(slot);
            });
        }
        Ok(())
    }

    /// How long a leased delivery is this node's: longer than an attempt
    /// can take (the request's timeout) with room to record it.
    fn lease_ms(&self) -> i64 {
        (self.inner.config.timeout_secs.max(1) as i64 + LEASE_MARGIN_SECS) * 1000
    }

    /// One attempt at one leased delivery, recorded.
    async fn attempt(&self, d: Delivery) -> Result<(), EventsError> {
        let inner = &self.inner;
        let id = d.id.as_str();
        let at_ms = inner.clock.now_ms();
        let Some(endpoint) = inner.store.endpoint(&d.endpoint_id).await? else {
            return Ok(());
        };
        let Some(stored) = inner.store.event(&d.workspace_id, d.event_seq).await? else {
            let attempt = Attempt {
                at_ms,
                status_code: None,
                latency_ms: 0,
                response_body: None,
                error: Some("the event is no longer in the log".into()),
                success: false,
                manual: d.resend,
            };
            return self.record_until_kept(id, attempt, true, &d).await;
        };
        // The stored envelope, byte for byte: what was serialized when the
        // event happened is what is signed and sent.
        let body = stored.body().to_vec();
        let timestamp = at_ms.div_euclid(1000);
        let signature = signature_header(
            endpoint.signing_secrets(at_ms),
            &stored.id,
            timestamp,
            &body,
        );
        let started = Instant::now();
        let (status_code, response_body, error) = self
            .post(&endpoint.url, &stored.id, timestamp, &signature, body)
            .await;
        let success = status_code.is_some_and(|c| (200..300).contains(&c));
        let latency = started.elapsed();
        inner
            .metrics
            .webhook_attempt(success, latency.as_secs_f64());
        let attempt = Attempt {
            at_ms,
            status_code,
            latency_ms: latency.as_millis() as u64,
            response_body,
            error,
            success,
            manual: d.resend,
        };
        if !success {
            tracing::info!(delivery = %id, endpoint = %endpoint.id, status = ?attempt.status_code, error = ?attempt.error, "webhook attempt failed");
        }
        self.record_until_kept(id, attempt, false, &d).await
    }

    async fn post(
        &self,
        url: &str,
        id: &str,
        timestamp: i64,
        signature: &str,
        body: Vec<u8>,
    ) -> (Option<u16>, Option<String>, Option<String>) {
        let allow_private = self.inner.config.allow_private_targets;
        let url = match targets::parse_url(url) {
            Ok(u) => u,
            Err(e) => return (None, None, Some(e.to_string())),
        };
        // Literal addresses are checked here; names by the client's
        // resolver at connect time.
        if let Err(e) = targets::check_host_literal(&url, allow_private) {
            return (None, None, Some(e.to_string()));
        }
        let sent = self
            .inner
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return (None, None, Some(error_chain(&e))),
        };
        let status = resp.status();
        let mut kept = Vec::new();
        while kept.len() < RESPONSE_LOG_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_LOG_BYTES - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let text = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(format!("HTTP {status} (redirects are not followed)"))
        } else {
            Some(format!("HTTP {status}"))
        };
        (Some(status.as_u16()), text, error)
    }

    /// [`record`](Self::record), retried while the store is unavailable
    /// and the lease lasts: an attempt made (the receiver may have taken
    /// it) and then forgotten would be made again when the lease ends, by
    /// this node or another. Past the lease that is what happens anyway.
    async fn record_until_kept(
        &self,
        id: &str,
        attempt: Attempt,
        give_up: bool,
        leased: &Delivery,
    ) -> Result<(), EventsError> {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.record(id, attempt.clone(), give_up).await {
                Err(e)
                    if leased
                        .due_at_ms
                        .is_some_and(|end| self.inner.clock.now_ms() < end) =>
                {
                    tracing::warn!(error = %e, delivery = %id, "webhook attempt made, its record waits for the store");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                done => return done,
            }
        }
    }

    /// Records an attempt and moves the delivery on: succeeded, retrying at
    /// the schedule's next time, or failed. Losing this record in a crash
    /// only repeats the attempt, so it does not wait for the disk.
    async fn record(&self, id: &str, attempt: Attempt, give_up: bool) -> Result<(), EventsError> {
        let inner = &self.inner;
        let mut tx = inner.store.begin().await?;
        let Some(mut d) = tx.delivery(id).await? else {
            return Ok(());
        };
        if d.leased_by.as_deref().is_some_and(|h| h != inner.node_id) {
            // This node's lease ended before its record, and another node
            // has taken the delivery since: the attempt is kept in the
            // history, the schedule is the new holder's to move on.
            keep_attempt(&mut d, attempt);
            tx.put_delivery(&d).await?;
            tx.commit_eventually().await?;
            return Ok(());
        }
        d.due_at_ms = None;
        d.leased_by = None;
        let was = d.state;
        let manual = attempt.manual;
        let at_ms = attempt.at_ms;
        let success = attempt.success;
        keep_attempt(&mut d, attempt);
        d.resend = false;
        if success {
            d.state = DeliveryState::Succeeded;
            d.next_attempt_at_ms = None;
        } else if give_up {
            d.state = DeliveryState::Failed;
            d.next_attempt_at_ms = None;
        } else if manual {
            // Outside the schedule: a retrying delivery keeps its next
            // scheduled attempt, a failed one stays failed.
            if d.state == DeliveryState::Retrying {
                d.due_at_ms = d.next_attempt_at_ms;
            }
        } else {
            let first = *d.first_attempt_at_ms.get_or_insert(at_ms);
            match next_attempt(scheduled_attempts(&d), first, at_ms) {
                Some(next) => {
                    d.state = DeliveryState::Retrying;
                    d.next_attempt_at_ms = Some(next);
                    d.due_at_ms = Some(next);
                }
                None => {
                    d.state = DeliveryState::Failed;
                    d.next_attempt_at_ms = None;
                }
            }
        }
        if !manual && d.first_attempt_at_ms.is_none() {
            d.first_attempt_at_ms = Some(at_ms);
        }
        tx.put_delivery(&d).await?;
        tx.commit_eventually().await?;
        if d.state == DeliveryState::Failed && was != DeliveryState::Failed {
            inner.metrics.webhook_delivery_failed();
        }
        Ok(())
    }

    /// Queues a manual resend of a retrying or failed delivery.
    pub(crate) async fn resend(&self, id: &str) -> Result<Delivery, EventsError> {
        let inner = &self.inner;
        let mut tx = inner.store.begin().await?;
        let mut d = tx
            .delivery(id)
            .await?
            .ok_or_else(|| EventsError::NotFound(format!("delivery {id}")))?;
        if !matches!(d.state, DeliveryState::Retrying | DeliveryState::Failed) {
            return Err(EventsError::Conflict(format!(
                "only a retrying or failed delivery can be resent; this one is {}",
                d.state.as_str()
            )));
        }
        let now = inner.clock.now_ms();
        // In flight here, or leased by another node whose lease lasts.
        let leased = d.leased_by.is_some() && d.due_at_ms.is_some_and(|end| end > now);
        if d.resend || self.is_in_flight(id) || leased {
            return Err(EventsError::Conflict(
                "an attempt at this delivery is already on its way".into(),
            ));
        }
        d.resend = true;
        d.due_at_ms = Some(now);
        tx.put_delivery(&d).await?;
        tx.commit().await?;
        self.kick();
        Ok(d)
    }
}

/// An error with its causes, e.g. "error sending request: … : connection
/// refused".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    if out.len() > 500 {
        let mut cut = 500;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_schedule_exactly() {
        let t0 = 1_000_000;
        let mut at = t0;
        let mut times = vec![at];
        for done in 1.. {
            match next_attempt(done, t0, at) {
                Some(next) => {
                    at = next;
                    times.push(at);
                }
                None => break,
            }
        }
        let offsets: Vec<i64> = times.iter().map(|t| (t - t0) / MINUTE).collect();
        // 0, +5 min, +30 min, +2 h, +8 h, then 24 h after the first.
        assert_eq!(offsets, [0, 5, 35, 155, 635, 1440]);
    }

    #[test]
    fn late_attempts_never_go_past_the_final_time() {
        let t0 = 0;
        // A long outage: attempt 2 only at 23 h 50 min.
        let late = 23 * HOUR + 50 * MINUTE;
        assert_eq!(next_attempt(2, t0, late), Some(24 * HOUR));
        assert_eq!(next_attempt(3, t0, 24 * HOUR), None);
        assert_eq!(next_attempt(6, t0, 24 * HOUR + 1), None);
    }
}
