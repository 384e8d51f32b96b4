//! The scheduler: leases due messages from the spool, sorts them into one
//! queue per destination domain, and opens connections within each
//! domain's shaping limits.
//!
//! Fairness comes in two layers: the spool leases round-robin across
//! workspaces, and inside a domain queue messages are taken round-robin
//! across workspaces too, so one workspace's bulk send never holds back
//! another's mail. Each domain has its own connection budget, so a slow
//! domain only slows itself; a domain that piles up more leased messages
//! than it can send soon hands the excess back to the spool (`postpone`),
//! so it cannot hoard the in-flight budget either.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackwave_queue::MessageRecord;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::Instant;

use rackwave_smtp_proto::address::domain_of;

use super::config::Shaping;
use super::worker;
use super::EngineContext;

/// Messages for one destination domain, waiting for a connection.
pub(crate) struct DomainQueue {
    pub domain: String,
    pub shaping: Shaping,
    state: Mutex<DomainState>,
    /// Wakes an idle connection of this domain when a message arrives.
    arrived: tokio::sync::Notify,
}

#[derive(Default)]
struct DomainState {
    lanes: HashMap<String, VecDeque<MessageRecord>>,
    /// Workspaces with waiting messages, in the order they get the next turn.
    rotation: VecDeque<String>,
    pending: usize,
    connections: usize,
    /// Earliest moment the next message may start (messages_per_second).
    next_slot: Option<Instant>,
    /// Start and count of the current minute (messages_per_minute).
    minute: Option<(Instant, u32)>,
}

impl DomainQueue {
    fn new(domain: String, shaping: Shaping) -> DomainQueue {
        DomainQueue {
            domain,
            shaping,
            state: Mutex::default(),
            arrived: tokio::sync::Notify::new(),
        }
    }

    fn push(&self, msg: MessageRecord) {
        let mut st = self.state.lock().unwrap();
        let lane = st.lanes.entry(msg.workspace_id.clone()).or_default();
        let was_empty = lane.is_empty();
        let ws = msg.workspace_id.clone();
        lane.push_back(msg);
        if was_empty {
            st.rotation.push_back(ws);
        }
        st.pending += 1;
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
        let mut st = self.state.lock().unwrap();
        let ws = st.rotation.pop_front()?;
        let lane = st.lanes.get_mut(&ws)?;
        let msg = lane.pop_front();
        let more = !lane.is_empty();
        if more {
            st.rotation.push_back(ws);
        } else {
            st.lanes.remove(&ws);
        }
        if msg.is_some() {
            st.pending -= 1;
        }
        msg
    }

    pub(crate) fn pending(&self) -> usize {
        self.state.lock().unwrap().pending
    }

    /// Waits until the domain's rate limits allow one more message, then
    /// claims it.
    pub(crate) async fn rate_slot(&self) {
        let per_second = self.shaping.messages_per_second;
        let per_minute = self.shaping.messages_per_minute;
        if per_second <= 0.0 && per_minute == 0 {
            return;
        }
        loop {
            let wait = {
                let mut st = self.state.lock().unwrap();
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

pub(crate) struct Scheduler {
    ctx: Arc<EngineContext>,
    domains: HashMap<String, Arc<DomainQueue>>,
    connections: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    wake: Arc<Notify>,
}

impl Scheduler {
    pub(crate) fn new(ctx: Arc<EngineContext>, wake: Arc<Notify>) -> Scheduler {
        let max = ctx.config.max_connections.max(1);
        Scheduler {
            ctx,
            domains: HashMap::new(),
            connections: Arc::new(Semaphore::new(max)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            wake,
        }
    }

    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let poll = Duration::from_millis(self.ctx.config.poll_interval_ms.max(10));
        let mut workers = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.lease_due().await;
            self.start_connections(&done_tx, &mut workers);
            tokio::select! {
                _ = self.wake.notified() => {}
                Some(domain) = done_rx.recv() => {
                    if let Some(q) = self.domains.get(&domain) {
                        q.state.lock().unwrap().connections -= 1;
                    }
                }
                Some(_) = workers.join_next(), if !workers.is_empty() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            self.domains.retain(|_, q| {
                let st = q.state.lock().unwrap();
                st.pending > 0 || st.connections > 0
            });
        }
        // Let deliveries in progress finish their current message; what is
        // still queued in memory stays leased only in memory and returns to
        // the spool's due index on the next start.
        let grace = Duration::from_secs(10);
        let _ = tokio::time::timeout(grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        workers.shutdown().await;
        for q in self.domains.values() {
            while let Some(m) = q.take() {
                self.ctx.spool.release(&m.id);
            }
        }
    }

    async fn lease_due(&mut self) {
        let budget = self
            .ctx
            .config
            .max_in_flight
            .saturating_sub(self.in_flight.load(Ordering::Relaxed));
        if budget == 0 {
            return;
        }
        let now = self.ctx.clock.now_ms();
        let leased = match self.ctx.spool.lease(now, budget.min(2000)) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "leasing due messages failed");
                return;
            }
        };
        for msg in leased {
            let domain = domain_of(&msg.to);
            let queue = self
                .domains
                .entry(domain.clone())
                .or_insert_with(|| {
                    Arc::new(DomainQueue::new(
                        domain.clone(),
                        self.ctx.config.shaping_for(&domain),
                    ))
                })
                .clone();
            // A domain cannot hoard more than a few connections' worth of
            // messages: the rest goes back to the spool for a little while.
            let cap = (queue.shaping.max_connections * queue.shaping.messages_per_connection * 2)
                .max(200);
            if queue.pending() >= cap {
                let id = msg.id.clone();
                if let Err(e) = self.ctx.spool.postpone(&id, now + 5_000).await {
                    tracing::warn!(error = %e, id, "postponing a message failed; releasing it");
                    self.ctx.spool.release(&id);
                }
                continue;
            }
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            queue.push(msg);
        }
    }

    fn start_connections(
        &mut self,
        done_tx: &mpsc::UnboundedSender<String>,
        workers: &mut tokio::task::JoinSet<()>,
    ) {
        for queue in self.domains.values() {
            loop {
                {
                    let st = queue.state.lock().unwrap();
                    // One connection per ten waiting messages, up to the
                    // domain's limit: a backlog is worked in parallel.
                    let wanted = st.pending.div_ceil(10).max(1);
                    if st.pending == 0
                        || st.connections >= queue.shaping.max_connections
                        || st.connections >= wanted
                    {
                        break;
                    }
                }
                let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                    return;
                };
                queue.state.lock().unwrap().connections += 1;
                let ctx = self.ctx.clone();
                let queue = queue.clone();
                let done = done_tx.clone();
                let in_flight = self.in_flight.clone();
                workers.spawn(async move {
                    worker::run(ctx, queue.clone(), in_flight).await;
                    drop(permit);
                    let _ = done.send(queue.domain.clone());
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn domain_queue_round_robins_workspaces() {
        let q = DomainQueue::new("d.e".into(), Shaping::default());
        for i in 0..5 {
            q.push(msg(&format!("bulk{i}"), "ws_bulk"));
        }
        q.push(msg("small", "ws_small"));
        let order: Vec<String> = std::iter::from_fn(|| q.take()).map(|m| m.id).collect();
        assert_eq!(order[..2], ["bulk0".to_string(), "small".to_string()]);
        assert_eq!(order.len(), 6);
        assert_eq!(q.pending(), 0);
    }
}
