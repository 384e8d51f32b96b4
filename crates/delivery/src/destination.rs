//! Destinations: one per recipient domain, each with its ready queue (the
//! leased messages waiting in memory for a connection), its connections,
//! its rate limits and its throttling pause; and [`Destinations`], the
//! table the scheduler works from and the admin API reads.
//!
//! A message waits in memory only: the spool still holds it as due, the
//! lease just keeps other callers away, so a crash loses nothing (the
//! message is leasable again after a restart) and a capacity wait costs no
//! write. The ready queue is bounded (`[delivery] ready_queue_limit`): a
//! destination at its limit is simply not leased for until it drains.
//!
//! Inside a ready queue messages are taken round-robin across workspaces,
//! so one workspace's bulk send never holds back another's mail to the same
//! destination.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use rackwave_core::Clock;
use rackwave_queue::MessageRecord;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::Shaping;
use super::metrics::DeliveryMetrics;

/// One destination domain.
pub(crate) struct Destination {
    pub domain: String,
    pub shaping: Shaping,
    /// Messages at which the ready queue is full (`ready_queue_limit`).
    limit: usize,
    state: Mutex<State>,
    /// Wakes an idle connection of this destination when a message arrives.
    arrived: Notify,
    /// Wakes the scheduler when the ready queue has drained to half its
    /// limit, so it leases more before the connections run dry.
    scheduler: Arc<Notify>,
    metrics: DeliveryMetrics,
    waiting_gauge: Gauge,
    connections_gauge: Gauge,
    paused_gauge: Gauge,
}

#[derive(Default)]
struct State {
    lanes: HashMap<String, VecDeque<Waiting>>,
    /// Workspaces with waiting messages, in the order they get the next turn.
    rotation: VecDeque<String>,
    waiting: usize,
    connections: usize,
    /// Earliest moment the next message may start (messages_per_second).
    next_slot: Option<Instant>,
    /// Start and count of the current minute (messages_per_minute).
    minute: Option<(Instant, u32)>,
    pause: Option<Pause>,
    /// Throttling replies in a row (reset by a delivery or a resume): how
    /// long the next pause is.
    throttles: u32,
}

struct Waiting {
    msg: MessageRecord,
    since: Instant,
}

/// A pause after a throttling reply, on the injectable clock.
#[derive(Debug, Clone)]
struct Pause {
    until_ms: i64,
    reason: String,
}

/// What the admin API shows of a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStatus {
    pub domain: String,
    /// Messages in the ready queue.
    pub waiting: usize,
    /// Connections open now.
    pub connections: usize,
    /// While paused: until when (ms since the epoch) and why.
    pub paused_until_ms: Option<i64>,
    pub pause_reason: Option<String>,
    /// Throttling replies in a row.
    pub throttles: u32,
}

impl Destination {
    fn new(
        domain: String,
        shaping: Shaping,
        limit: usize,
        scheduler: Arc<Notify>,
        metrics: DeliveryMetrics,
    ) -> Destination {
        let (waiting_gauge, connections_gauge, paused_gauge) = metrics.destination(&domain);
        Destination {
            domain,
            shaping,
            limit,
            state: Mutex::default(),
            arrived: Notify::new(),
            scheduler,
            metrics,
            waiting_gauge,
            connections_gauge,
            paused_gauge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: the
        // state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a leased message at the back of its workspace's lane.
    pub(crate) fn push(&self, msg: MessageRecord) {
        self.insert(msg, false);
    }

    /// Puts a message back at the front of its lane: it was taken but not
    /// tried (its reused connection broke before the transaction began).
    pub(crate) fn put_back(&self, msg: MessageRecord) {
        self.insert(msg, true);
    }

    fn insert(&self, msg: MessageRecord, front: bool) {
        let mut st = self.lock();
        let ws = msg.workspace_id.clone();
        let lane = st.lanes.entry(ws.clone()).or_default();
        let was_empty = lane.is_empty();
        let entry = Waiting {
            msg,
            since: Instant::now(),
        };
        if front {
            lane.push_front(entry);
        } else {
            lane.push_back(entry);
        }
        if front {
            // It was this workspace's turn: it gets the next one again.
            if let Some(at) = st.rotation.iter().position(|w| *w == ws) {
                st.rotation.remove(at);
            }
            st.rotation.push_front(ws);
        } else if was_empty {
            st.rotation.push_back(ws);
        }
        st.waiting += 1;
        self.waiting_gauge.set(st.waiting as i64);
        drop(st);
        self.arrived.notify_one();
    }

    /// The next message, waiting up to `idle` for one to arrive: an open
    /// connection is worth keeping for a moment rather than reopening.
    pub(crate) async fn take_or_wait(&self, idle: Duration) -> Option<MessageRecord> {
        if let Some(m) = self.take() {
            return Some(m);
        }
        let _ = tokio::time::timeout(idle, self.arrived.notified()).await;
        self.take()
    }

    /// The next message, round-robin across workspaces.
    pub(crate) fn take(&self) -> Option<MessageRecord> {
        let mut st = self.lock();
        let ws = st.rotation.pop_front()?;
        let lane = st.lanes.get_mut(&ws)?;
        let entry = lane.pop_front();
        if lane.is_empty() {
            st.lanes.remove(&ws);
        } else {
            st.rotation.push_back(ws);
        }
        let entry = entry?;
        st.waiting -= 1;
        self.waiting_gauge.set(st.waiting as i64);
        let refill = st.waiting == self.limit / 2;
        drop(st);
        self.metrics.waited(entry.since.elapsed());
        if refill {
            self.scheduler.notify_one();
        }
        Some(entry.msg)
    }

    /// Takes every waiting message `pred` picks, wherever it waits.
    pub(crate) fn take_where(&self, pred: impl Fn(&MessageRecord) -> bool) -> Vec<MessageRecord> {
        let mut st = self.lock();
        let mut taken = Vec::new();
        for lane in st.lanes.values_mut() {
            let (out, keep): (VecDeque<Waiting>, VecDeque<Waiting>) =
                std::mem::take(lane).into_iter().partition(|w| pred(&w.msg));
            *lane = keep;
            taken.extend(out.into_iter().map(|w| w.msg));
        }
        if !taken.is_empty() {
            st.lanes.retain(|_, lane| !lane.is_empty());
            let State {
                lanes, rotation, ..
            } = &mut *st;
            rotation.retain(|ws| lanes.contains_key(ws));
            st.waiting -= taken.len();
            self.waiting_gauge.set(st.waiting as i64);
        }
        taken
    }

    /// Room left in the ready queue.
    pub(crate) fn room(&self) -> usize {
        self.limit.saturating_sub(self.lock().waiting)
    }

    /// Claims a connection slot if the destination wants another
    /// connection: it is not paused, has waiting messages, is under its
    /// connection limit, and has ten waiting messages per open connection
    /// (a backlog is worked in parallel, a trickle on one connection).
    pub(crate) fn claim_connection(&self, now_ms: i64) -> bool {
        let mut st = self.lock();
        let wanted = st.waiting.div_ceil(10).max(1);
        if st.waiting == 0
            || st.connections >= self.shaping.max_connections
            || st.connections >= wanted
            || self.paused_in(&mut st, now_ms)
        {
            return false;
        }
        st.connections += 1;
        self.connections_gauge.set(st.connections as i64);
        true
    }

    /// A connection claimed with [`claim_connection`](Self::claim_connection) closed.
    pub(crate) fn connection_closed(&self) {
        let mut st = self.lock();
        st.connections -= 1;
        self.connections_gauge.set(st.connections as i64);
    }

    /// Whether nothing keeps the destination: no message, no connection,
    /// no pause in force (a throttling streak is forgotten with it).
    pub(crate) fn idle(&self, now_ms: i64) -> bool {
        let mut st = self.lock();
        st.waiting == 0 && st.connections == 0 && !self.paused_in(&mut st, now_ms)
    }

    pub(crate) fn paused(&self, now_ms: i64) -> bool {
        let mut st = self.lock();
        self.paused_in(&mut st, now_ms)
    }

    /// Whether a pause is in force; one that has ended is cleared.
    fn paused_in(&self, st: &mut State, now_ms: i64) -> bool {
        match &st.pause {
            Some(p) if p.until_ms > now_ms => true,
            Some(_) => {
                st.pause = None;
                self.paused_gauge.set(0);
                false
            }
            None => false,
        }
    }

    /// A throttling reply: pauses the destination for `pause_for(n)` where
    /// `n` counts the throttling replies in a row. Replies that arrive
    /// while a pause is already in force (other connections that were
    /// mid-transaction) neither lengthen it nor count. Returns the end of
    /// the pause in force.
    pub(crate) fn throttled(
        &self,
        now_ms: i64,
        reason: &str,
        pause_for: impl Fn(u32) -> Option<i64>,
    ) -> Option<i64> {
        let mut st = self.lock();
        if self.paused_in(&mut st, now_ms) {
            return st.pause.as_ref().map(|p| p.until_ms);
        }
        let n = st.throttles + 1;
        let until_ms = now_ms + pause_for(n)?;
        st.throttles = n;
        st.pause = Some(Pause {
            until_ms,
            reason: reason.to_string(),
        });
        self.paused_gauge.set(1);
        drop(st);
        self.metrics.paused(&self.domain);
        tracing::warn!(destination = %self.domain, until_ms, reason, throttles = n,
            "destination throttles us: paused");
        Some(until_ms)
    }

    /// A message was delivered: the throttling streak is over.
    pub(crate) fn delivered(&self) {
        let mut st = self.lock();
        if st.pause.is_none() {
            st.throttles = 0;
        }
    }

    /// Lifts a pause now (an operator's decision) and forgets the streak.
    fn resume(&self) -> bool {
        let mut st = self.lock();
        let was = st.pause.take().is_some();
        st.throttles = 0;
        self.paused_gauge.set(0);
        was
    }

    fn status(&self, now_ms: i64) -> DestinationStatus {
        let mut st = self.lock();
        let paused = self.paused_in(&mut st, now_ms);
        let pause = st.pause.clone().filter(|_| paused);
        DestinationStatus {
            domain: self.domain.clone(),
            waiting: st.waiting,
            connections: st.connections,
            paused_until_ms: pause.as_ref().map(|p| p.until_ms),
            pause_reason: pause.map(|p| p.reason),
            throttles: st.throttles,
        }
    }

    /// Waits until the destination's rate limits allow one more message,
    /// then claims it.
    pub(crate) async fn rate_slot(&self) {
        let per_second = self.shaping.messages_per_second;
        let per_minute = self.shaping.messages_per_minute;
        if per_second <= 0.0 && per_minute == 0 {
            return;
        }
        loop {
            let wait = {
                let mut st = self.lock();
                let now = Instant::now();
                if let Some((start, count)) = &mut st.minute {
                    if now >= *start + Duration::from_secs(60) {
                        *start = now;
                        *count = 0;
                    }
                }
                let second_wait = st.next_slot.filter(|t| *t > now);
                let minute_wait = match st.minute {
                    Some((start, count)) if per_minute > 0 && count >= per_minute => {
                        Some(start + Duration::from_secs(60))
                    }
                    _ => None,
                };
                match second_wait.max(minute_wait) {
                    Some(t) => Some(t),
                    None => {
                        if per_second > 0.0 {
                            st.next_slot = Some(now + Duration::from_secs_f64(1.0 / per_second));
                        }
                        if per_minute > 0 {
                            st.minute.get_or_insert((now, 0)).1 += 1;
                        }
                        None
                    }
                }
            };
            match wait {
                Some(t) => tokio::time::sleep_until(t).await,
                None => return,
            }
        }
    }
}

/// Every destination with something going on, by domain. Shared by the
/// scheduler (which adds, works and drops them) and the admin API.
#[derive(Clone)]
pub struct Destinations {
    map: Arc<Mutex<HashMap<String, Arc<Destination>>>>,
    clock: Clock,
    wake: Arc<Notify>,
}

impl Destinations {
    pub(crate) fn new(clock: Clock, wake: Arc<Notify>) -> Destinations {
        Destinations {
            map: Arc::default(),
            clock,
            wake,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Destination>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The destination of `domain`, created with `make` if it has none.
    pub(crate) fn get_or_insert(
        &self,
        domain: &str,
        make: impl FnOnce() -> (Shaping, usize, DeliveryMetrics),
    ) -> Arc<Destination> {
        let mut map = self.lock();
        if let Some(d) = map.get(domain) {
            return d.clone();
        }
        let (shaping, limit, metrics) = make();
        let d = Arc::new(Destination::new(
            domain.to_string(),
            shaping,
            limit,
            self.wake.clone(),
            metrics,
        ));
        map.insert(domain.to_string(), d.clone());
        d
    }

    pub(crate) fn get(&self, domain: &str) -> Option<Arc<Destination>> {
        self.lock().get(domain).cloned()
    }

    /// A snapshot of every destination, for one pass of the scheduler.
    pub(crate) fn all(&self) -> Vec<Arc<Destination>> {
        self.lock().values().cloned().collect()
    }

    /// Drops the destinations nothing keeps any more, with their gauges
    /// (under the table's lock, so a destination created again for the
    /// same domain keeps its own).
    pub(crate) fn drop_idle(&self) {
        let now = self.clock.now_ms();
        self.lock().retain(|_, d| {
            let idle = d.idle(now);
            if idle {
                d.metrics.forget_destination(&d.domain);
            }
            !idle
        });
    }

    /// Every destination's state, by domain.
    pub fn status(&self) -> Vec<DestinationStatus> {
        let now = self.clock.now_ms();
        let mut all: Vec<_> = self.all().iter().map(|d| d.status(now)).collect();
        all.sort_by(|a, b| a.domain.cmp(&b.domain));
        all
    }

    /// Lifts the pause of `domain`'s destination now; its connections start
    /// at once. `None` when the destination is not paused.
    pub fn resume(&self, domain: &str) -> Option<DestinationStatus> {
        let d = self.get(&domain.to_ascii_lowercase())?;
        if !d.paused(self.clock.now_ms()) || !d.resume() {
            return None;
        }
        tracing::info!(destination = %d.domain, "pause lifted by an operator");
        self.wake.notify_one();
        Some(d.status(self.clock.now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn msg(id: &str, ws: &str) -> MessageRecord {
        MessageRecord {
            id: id.into(),
            queue_id: "Q".into(),
            workspace_id: ws.into(),
            submitter: "s".into(),
            from: "a@b.c".into(),
            to: "x@d.e".into(),
            subject: None,
            status: rackwave_queue::Status::Queued,
            created_at_ms: 0,
            next_attempt_at_ms: None,
            attempts: 0,
            history: vec![],
            delivery_attempts: vec![],
            tags: Vec::new(),
            metadata: Default::default(),
            return_path: None,
        }
    }

    fn destination(limit: usize) -> (Destination, Arc<Notify>) {
        let wake = Arc::new(Notify::new());
        let metrics = DeliveryMetrics::register(&mut Registry::default());
        let d = Destination::new(
            "d.e".into(),
            Shaping::default(),
            limit,
            wake.clone(),
            metrics,
        );
        (d, wake)
    }

    #[test]
    fn ready_queue_round_robins_workspaces_and_puts_back_in_front() {
        let (q, _) = destination(100);
        for i in 0..5 {
            q.push(msg(&format!("bulk{i}"), "ws_bulk"));
        }
        q.push(msg("small", "ws_small"));
        let first = q.take().unwrap();
        assert_eq!(first.id, "bulk0");
        q.put_back(first);
        let order: Vec<String> = std::iter::from_fn(|| q.take()).map(|m| m.id).collect();
        assert_eq!(order[..3], ["bulk0", "small", "bulk1"].map(String::from));
        assert_eq!(order.len(), 6);
        assert_eq!(q.room(), 100);

        for i in 0..4 {
            q.push(msg(
                &format!("a{i}"),
                if i % 2 == 0 { "ws1" } else { "ws2" },
            ));
        }
        let odd: Vec<String> = q
            .take_where(|m| m.workspace_id == "ws2")
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(odd, ["a1", "a3"].map(String::from));
        let rest: Vec<String> = std::iter::from_fn(|| q.take()).map(|m| m.id).collect();
        assert_eq!(rest, ["a0", "a2"].map(String::from));
        assert_eq!(q.room(), 100);
    }

    #[tokio::test]
    async fn draining_to_half_the_limit_wakes_the_scheduler() {
        let (q, wake) = destination(4);
        for i in 0..4 {
            q.push(msg(&format!("m{i}"), "ws"));
        }
        assert_eq!(q.room(), 0);
        q.take();
        let early = tokio::time::timeout(Duration::from_millis(20), wake.notified()).await;
        assert!(early.is_err(), "woken before half the queue drained");
        q.take();
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("not woken at half the limit");
    }

    #[test]
    fn a_pause_grows_with_the_streak_and_ends_on_the_clock() {
        let (q, _) = destination(10);
        q.push(msg("m", "ws"));
        let steps = |n: u32| Some([60_000, 120_000][(n as usize - 1).min(1)]);
        assert_eq!(
            q.throttled(1_000, "421 4.7.0 slow down", steps),
            Some(61_000)
        );
        assert!(
            !q.claim_connection(60_999),
            "connection opened while paused"
        );
        // A second reply during the pause neither lengthens nor counts.
        assert_eq!(q.throttled(2_000, "421 again", steps), Some(61_000));
        assert_eq!(q.status(2_000).throttles, 1);
        assert!(q.claim_connection(61_000));
        q.connection_closed();
        assert_eq!(q.throttled(70_000, "421", steps), Some(190_000));
        let st = q.status(70_000);
        assert_eq!((st.throttles, st.paused_until_ms), (2, Some(190_000)));
        assert_eq!(st.pause_reason.as_deref(), Some("421"));
        assert!(q.resume());
        assert!(q.claim_connection(70_001));
        q.connection_closed();
        q.delivered();
        assert_eq!(q.status(70_001).throttles, 0);
        // Pauses off: nothing changes.
        assert_eq!(q.throttled(80_000, "421", |_| None), None);
        assert!(!q.paused(80_000));
    }
}
