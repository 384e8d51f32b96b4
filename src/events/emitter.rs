//! The webhook emitter: a durable outbox of deliveries (one per event and
//! endpoint, stored in the same batch as the event), sent by a scheduler
//! that runs on stored state and the injectable clock.
//!
//! Schedule (the seed's, exactly): attempt 1 at once; then 5 min, 30 min,
//! 2 h and 8 h after the previous attempt; a final attempt 24 h after the
//! first; if that fails too the delivery is permanently failed. Every
//! attempt is logged (time, status code, latency, the first KiB of the
//! response, the error). A retry carries the same event id with a fresh
//! `webhook-timestamp` and signature. A crash in the middle of an attempt
//! leaves the delivery due, so it is sent again after the restart: delivery
//! is at least once, and receivers deduplicate on `webhook-id`.
//!
//! Concurrency is bounded per endpoint and overall, and the scheduler only
//! takes from an endpoint what that endpoint has room for, so one slow or
//! dead endpoint never delays the others.
//!
//! Keys (in the events tree):
//! - `d/<delivery id>` → [`Delivery`]
//! - `q/<endpoint id>\0<due ms>\0<delivery id>` → empty: the due index,
//!   one entry per delivery that has an attempt to make
//! - `l/<endpoint id>\0<seq>` → delivery id: deliveries of an endpoint

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use super::endpoints::{Endpoint, Endpoints};
use super::model::EventType;
use super::signing::signature_header;
use super::targets::{self, GuardedResolver};
use super::{cat, decode, log, EventsError};
use crate::clock::{rfc3339, Clock};
use crate::config::WebhooksConfig;
use crate::ids::random_hex;
use crate::metrics::Metrics;

const DELIVERY: &[u8] = b"d/";
const DUE: &[u8] = b"q/";
const OF_ENDPOINT: &[u8] = b"l/";

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// Delays after attempts 1 to 4.
pub const RETRY_DELAYS_MS: [i64; 4] = [5 * MINUTE, 30 * MINUTE, 2 * HOUR, 8 * HOUR];
/// The final attempt, after the first.
pub const FINAL_ATTEMPT_AFTER_MS: i64 = 24 * HOUR;
/// The most of a response body kept in the attempt log.
pub const RESPONSE_LOG_BYTES: usize = 1024;
/// Attempts kept per delivery (6 scheduled, the rest manual resends).
const MAX_ATTEMPTS_KEPT: usize = 30;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Pending,
    /// Failed so far; the next attempt is scheduled.
    Retrying,
    Succeeded,
    /// The final attempt failed (or the event is gone); only a manual
    /// resend tries again.
    Failed,
}

impl DeliveryState {
    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "retrying" => Some(DeliveryState::Retrying),
            "succeeded" => Some(DeliveryState::Succeeded),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One HTTP attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// Injected-clock time the attempt started.
    pub at_ms: i64,
    /// The response status, if a response came.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The first KiB of the response body (lossy UTF-8).
    pub response_body: Option<String>,
    /// What went wrong, if anything (connection refused, timeout, non-2xx…).
    pub error: Option<String>,
    pub success: bool,
    /// A resend asked for by hand (outside the schedule).
    pub manual: bool,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub workspace_id: String,
    pub event_id: String,
    pub event_type: EventType,
    /// Where the event sits in the log.
    pub event_seq: u64,
    pub state: DeliveryState,
    pub created_at_ms: i64,
    pub first_attempt_at_ms: Option<i64>,
    /// When the schedule makes the next attempt.
    pub next_attempt_at_ms: Option<i64>,
    /// The due-index entry that exists for it (the schedule's, or now for a
    /// resend); `None` when nothing is due.
    pub due_at_ms: Option<i64>,
    /// A manual resend is waiting.
    pub resend: bool,
    pub attempts: Vec<Attempt>,
    /// Order of creation (for listing).
    pub seq: u64,
}

impl Delivery {
    pub fn new(endpoint: &Endpoint, stored: &log::StoredEvent, seq: u64, now_ms: i64) -> Self {
        Delivery {
            id: format!("whd_{}", random_hex(10)),
            endpoint_id: endpoint.id.clone(),
            workspace_id: endpoint.workspace_id.clone(),
            event_id: stored.event.id.clone(),
            event_type: stored.event.event,
            event_seq: stored.seq,
            state: DeliveryState::Pending,
            created_at_ms: now_ms,
            first_attempt_at_ms: None,
            next_attempt_at_ms: Some(now_ms),
            due_at_ms: Some(now_ms),
            resend: false,
            attempts: Vec::new(),
            seq,
        }
    }

    pub fn created_at(&self) -> String {
        rfc3339(self.created_at_ms)
    }

    fn scheduled_attempts(&self) -> u32 {
        self.attempts.iter().filter(|a| !a.manual).count() as u32
    }
}

fn delivery_key(id: &str) -> Vec<u8> {
    cat(&[DELIVERY, id.as_bytes()])
}

fn due_key(endpoint: &str, due_ms: i64, id: &str) -> Vec<u8> {
    cat(&[
        DUE,
        endpoint.as_bytes(),
        b"\0",
        &(due_ms.max(0) as u64).to_be_bytes(),
        b"\0",
        id.as_bytes(),
    ])
}

fn listing_key(endpoint: &str, seq: u64) -> Vec<u8> {
    cat(&[OF_ENDPOINT, endpoint.as_bytes(), b"\0", &seq.to_be_bytes()])
}

/// Stages a new delivery: its record, its due entry and its listing entry.
pub fn stage_new(batch: &mut sled::Batch, d: &Delivery) -> Result<(), EventsError> {
    batch.insert(
        delivery_key(&d.id),
        serde_json::to_vec(d).map_err(EventsError::encode)?,
    );
    if let Some(due) = d.due_at_ms {
        batch.insert(due_key(&d.endpoint_id, due, &d.id), Vec::<u8>::new());
    }
    batch.insert(listing_key(&d.endpoint_id, d.seq), d.id.as_bytes());
    Ok(())
}

/// Stages the removal of every delivery of an endpoint (it is being
/// deleted).
pub fn stage_purge(
    tree: &sled::Tree,
    batch: &mut sled::Batch,
    endpoint: &str,
) -> Result<(), EventsError> {
    for prefix in [
        cat(&[DUE, endpoint.as_bytes(), b"\0"]),
        cat(&[OF_ENDPOINT, endpoint.as_bytes(), b"\0"]),
    ] {
        for item in tree.scan_prefix(&prefix) {
            let (key, value) = item?;
            if prefix.starts_with(OF_ENDPOINT) {
                batch.remove(delivery_key(&String::from_utf8_lossy(&value)));
            }
            batch.remove(key);
        }
    }
    Ok(())
}

pub fn get(tree: &sled::Tree, id: &str) -> Result<Option<Delivery>, EventsError> {
    match tree.get(delivery_key(id))? {
        Some(raw) => decode(&raw, "delivery").map(Some),
        None => Ok(None),
    }
}

/// One page of an endpoint's deliveries, newest first.
pub fn list(
    tree: &sled::Tree,
    endpoint: &str,
    state: Option<DeliveryState>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Delivery>, Option<String>), EventsError> {
    let prefix = cat(&[OF_ENDPOINT, endpoint.as_bytes(), b"\0"]);
    let end = match cursor {
        Some(c) => {
            let seq = u64::from_str_radix(c, 16)
                .ok()
                .filter(|_| c.len() == 16)
                .ok_or_else(|| EventsError::Invalid("cursor is not one we issued".into()))?;
            cat(&[&prefix, &seq.to_be_bytes()])
        }
        None => cat(&[&prefix, &[0xff]]),
    };
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    for (scanned, item) in tree.range(prefix.clone()..end).rev().enumerate() {
        let (key, id) = item?;
        if out.len() == limit || scanned >= 20_000 {
            more = true;
            break;
        }
        last = key
            .get(prefix.len()..)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes);
        if let Some(d) = get(tree, &String::from_utf8_lossy(&id))? {
            if state.is_none_or(|s| s == d.state) {
                out.push(d);
            }
        }
    }
    Ok((
        out,
        if more {
            last.map(|s| format!("{s:016x}"))
        } else {
            None
        },
    ))
}

#[derive(Default)]
struct InFlight {
    ids: HashSet<String>,
    per_endpoint: HashMap<String, usize>,
    total: usize,
}

/// The running emitter (cheap to clone).
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Inner>,
}

struct Inner {
    tree: sled::Tree,
    endpoints: Endpoints,
    clock: Clock,
    metrics: Metrics,
    config: WebhooksConfig,
    client: reqwest::Client,
    wake: Arc<Notify>,
    in_flight: Mutex<InFlight>,
    /// Where the next scan of the due index starts (round robin).
    resume: Mutex<Vec<u8>>,
    /// Serialises read-modify-write of delivery records.
    write: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The one HTTP client of the emitter: no redirects, no proxies, the
/// configured timeout, names resolved through the address guard.
pub fn http_client(config: &WebhooksConfig) -> reqwest::Client {
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
    pub fn new(
        tree: sled::Tree,
        endpoints: Endpoints,
        clock: Clock,
        config: WebhooksConfig,
        metrics: Metrics,
    ) -> Emitter {
        let client = http_client(&config);
        Emitter {
            inner: Arc::new(Inner {
                tree,
                endpoints,
                clock,
                metrics,
                config,
                client,
                wake: Arc::new(Notify::new()),
                in_flight: Mutex::new(InFlight::default()),
                resume: Mutex::new(DUE.to_vec()),
                write: Mutex::new(()),
            }),
        }
    }

    /// Looks for due deliveries now.
    pub fn kick(&self) {
        self.inner.wake.notify_one();
    }

    pub fn is_in_flight(&self, id: &str) -> bool {
        lock(&self.inner.in_flight).ids.contains(id)
    }

    /// Runs until `shutdown` turns true; attempts in flight then are
    /// abandoned (their deliveries stay due and go out after a restart).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.inner.config.poll_interval_ms.max(1));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            if let Err(e) = self.scan(&mut tasks) {
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
    /// limit resumes after the last endpoint it served, so with more busy
    /// endpoints than the limit allows none of them starves.
    fn scan(&self, tasks: &mut tokio::task::JoinSet<()>) -> Result<(), EventsError> {
        let start = lock(&self.inner.resume).clone();
        let stopped = match self.scan_range(tasks, start.clone(), None)? {
            Some(at) => Some(at),
            None => self.scan_range(tasks, DUE.to_vec(), Some(&start))?,
        };
        if let Some(at) = stopped {
            *lock(&self.inner.resume) = at;
        }
        Ok(())
    }

    /// Scans the due index from `from` (to `until`, or the end); returns
    /// where to resume when the overall limit stopped it.
    fn scan_range(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        mut from: Vec<u8>,
        until: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, EventsError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let per_endpoint = inner.config.per_endpoint_concurrency.max(1);
        let max = inner.config.max_concurrency.max(1);
        loop {
            if lock(&inner.in_flight).total >= max {
                return Ok(Some(from));
            }
            let Some(item) = inner.tree.range(from.clone()..).next() else {
                return Ok(None);
            };
            let (key, _) = item?;
            if !key.starts_with(DUE) || until.is_some_and(|u| key.as_ref() >= u) {
                return Ok(None);
            }
            let rest = &key[DUE.len()..];
            let Some(nul) = rest.iter().position(|b| *b == 0) else {
                return Err(EventsError::Corrupt("due key without an endpoint".into()));
            };
            let endpoint_id = String::from_utf8_lossy(&rest[..nul]).into_owned();
            let group = cat(&[DUE, endpoint_id.as_bytes(), b"\0"]);
            from = cat(&[&group, &[0xff]]);
            let Some(endpoint) = inner.endpoints.get_any(&endpoint_id)? else {
                continue;
            };
            if !endpoint.enabled {
                continue;
            }
            let upper = cat(&[&group, &((now.max(0) as u64) + 1).to_be_bytes()]);
            for item in inner.tree.range(group.clone()..upper) {
                let (key, _) = item?;
                let id = String::from_utf8_lossy(&key[group.len() + 9..]).into_owned();
                let mut f = lock(&inner.in_flight);
                if f.total >= max
                    || f.per_endpoint.get(&endpoint_id).copied().unwrap_or(0) >= per_endpoint
                {
                    break;
                }
                if !f.ids.insert(id.clone()) {
                    continue;
                }
                f.total += 1;
                *f.per_endpoint.entry(endpoint_id.clone()).or_default() += 1;
                drop(f);
                let slot = Slot {
                    inner: inner.clone(),
                    id,
                    endpoint: endpoint_id.clone(),
                };
                tasks.spawn(async move {
                    let this = Emitter {
                        inner: slot.inner.clone(),
                    };
                    if let Err(e) = this.attempt(&slot.id).await {
                        tracing::error!(error = %e, delivery = %slot.id, "webhook attempt failed to record");
                    }
                    drop(slot);
                });
            }
        }
    }

    /// One attempt at one delivery, recorded.
    async fn attempt(&self, id: &str) -> Result<(), EventsError> {
        let inner = &self.inner;
        let Some(d) = get(&inner.tree, id)? else {
            return Ok(());
        };
        let at_ms = inner.clock.now_ms();
        // The scan's view of the due index may be older than the record (an
        // attempt that just finished): only a delivery still due goes out.
        if d.due_at_ms.is_none_or(|due| due > at_ms) {
            return Ok(());
        }
        let Some(endpoint) = inner.endpoints.get_any(&d.endpoint_id)? else {
            return Ok(());
        };
        let Some(stored) = log::get(&inner.tree, &d.workspace_id, d.event_seq)? else {
            let attempt = Attempt {
                at_ms,
                status_code: None,
                latency_ms: 0,
                response_body: None,
                error: Some("the event is no longer in the log".into()),
                success: false,
                manual: d.resend,
            };
            return self.record(id, attempt, true);
        };
        let body = serde_json::to_vec(&stored.event).map_err(EventsError::encode)?;
        let timestamp = at_ms.div_euclid(1000);
        let signature = signature_header(
            endpoint.signing_secrets(at_ms),
            &stored.event.id,
            timestamp,
            &body,
        );
        let started = Instant::now();
        let (status_code, response_body, error) = self
            .post(&endpoint.url, &stored.event.id, timestamp, &signature, body)
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
        self.record(id, attempt, false)
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

    /// Records an attempt and moves the delivery on: succeeded, retrying at
    /// the schedule's next time, or failed.
    fn record(&self, id: &str, attempt: Attempt, give_up: bool) -> Result<(), EventsError> {
        let inner = &self.inner;
        let _w = lock(&inner.write);
        let Some(mut d) = get(&inner.tree, id)? else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        if let Some(due) = d.due_at_ms.take() {
            batch.remove(due_key(&d.endpoint_id, due, &d.id));
        }
        let was = d.state;
        let manual = attempt.manual;
        let at_ms = attempt.at_ms;
        let success = attempt.success;
        d.attempts.push(attempt);
        if d.attempts.len() > MAX_ATTEMPTS_KEPT {
            let excess = d.attempts.len() - MAX_ATTEMPTS_KEPT;
            d.attempts.drain(..excess);
        }
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
            match next_attempt(d.scheduled_attempts(), first, at_ms) {
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
        if let Some(due) = d.due_at_ms {
            batch.insert(due_key(&d.endpoint_id, due, &d.id), Vec::<u8>::new());
        }
        batch.insert(
            delivery_key(&d.id),
            serde_json::to_vec(&d).map_err(EventsError::encode)?,
        );
        inner.tree.apply_batch(batch)?;
        if d.state == DeliveryState::Failed && was != DeliveryState::Failed {
            inner.metrics.webhook_delivery_failed();
        }
        Ok(())
    }

    /// Deletes finished (succeeded or failed) deliveries created before
    /// `cutoff_ms`; one still retrying is kept whatever its age. Returns
    /// how many were deleted.
    pub fn prune(&self, cutoff_ms: i64) -> Result<u64, EventsError> {
        use super::retention::{remove_entries, walk_groups, Visit};
        let inner = &self.inner;
        walk_groups(
            &inner.tree,
            OF_ENDPOINT,
            |key, id| {
                let id = String::from_utf8_lossy(id).into_owned();
                Ok(match get(&inner.tree, &id)? {
                    Some(d) if d.created_at_ms >= cutoff_ms => Visit::Stop,
                    Some(d) if !past_retention(&d, cutoff_ms) => Visit::Keep,
                    _ => Visit::Delete((key.to_vec(), id)),
                })
            },
            |marked| {
                // Checked again under the write lock: a resend may have
                // revived a failed delivery since the walk saw it. The
                // lock is held for one batch, so attempts in progress
                // wait that long at most.
                let _w = lock(&inner.write);
                let mut doomed = Vec::with_capacity(marked.len());
                for (index_key, id) in marked {
                    match get(&inner.tree, &id)? {
                        None => doomed.push(vec![index_key]),
                        Some(d) if past_retention(&d, cutoff_ms) => {
                            doomed.push(vec![index_key, delivery_key(&d.id)])
                        }
                        Some(_) => {}
                    }
                }
                remove_entries(&inner.tree, doomed)
            },
        )
    }

    /// Queues a manual resend of a retrying or failed delivery.
    pub fn resend(&self, id: &str) -> Result<Delivery, EventsError> {
        let inner = &self.inner;
        let _w = lock(&inner.write);
        let mut d =
            get(&inner.tree, id)?.ok_or_else(|| EventsError::NotFound(format!("delivery {id}")))?;
        if !matches!(d.state, DeliveryState::Retrying | DeliveryState::Failed) {
            return Err(EventsError::Conflict(format!(
                "only a retrying or failed delivery can be resent; this one is {}",
                serde_json::to_value(d.state)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            )));
        }
        if d.resend || self.is_in_flight(id) {
            return Err(EventsError::Conflict(
                "an attempt at this delivery is already on its way".into(),
            ));
        }
        let now = inner.clock.now_ms();
        let mut batch = sled::Batch::default();
        if let Some(due) = d.due_at_ms {
            batch.remove(due_key(&d.endpoint_id, due, &d.id));
        }
        d.resend = true;
        d.due_at_ms = Some(now);
        batch.insert(due_key(&d.endpoint_id, now, &d.id), Vec::<u8>::new());
        batch.insert(
            delivery_key(&d.id),
            serde_json::to_vec(&d).map_err(EventsError::encode)?,
        );
        inner.tree.apply_batch(batch)?;
        drop(_w);
        self.kick();
        Ok(d)
    }
}

/// Whether the retention may delete a delivery: created before the
/// cutoff and finished (no attempt due, not retrying).
fn past_retention(d: &Delivery, cutoff_ms: i64) -> bool {
    d.created_at_ms < cutoff_ms && d.due_at_ms.is_none() && d.state != DeliveryState::Retrying
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
