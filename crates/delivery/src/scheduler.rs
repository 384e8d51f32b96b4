//! The scheduler (the queue manager): leases due messages from the spool
//! into the ready queue of their destination, and opens connections within
//! each destination's limits; a connection takes the next waiting message
//! the moment it is free.
//!
//! Nothing here writes to the spool: a message waiting for a connection
//! stays leased in memory. Memory is bounded twice: `max_in_flight` caps
//! the leases of all destinations together, and `ready_queue_limit` caps
//! one destination's ready queue; the scheduler stops leasing for a full or
//! paused destination (`Spool::lease_where` leaves its mail due in the
//! spool) instead of handing messages back.
//!
//! Fairness comes in three layers: the spool leases round-robin across
//! workspaces; inside a ready queue messages are taken round-robin across
//! workspaces too, so one workspace's bulk send never holds back another's
//! mail; and each destination has its own connection limit, so a slow
//! destination holds at most its own share of the global connection budget
//! and of the lease budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rackwave_smtp_proto::address::domain_of;
use tokio::sync::{watch, Notify};

use super::destination::{Destination, Destinations};
use super::worker;
use super::EngineContext;

/// Messages leased per spool call at most: the scheduler comes back for
/// more as soon as the ready queues drain (see `Destination::take`).
const LEASE_BATCH: usize = 2000;

pub(crate) struct Scheduler {
    ctx: Arc<EngineContext>,
    destinations: Destinations,
    in_flight: Arc<AtomicUsize>,
    wake: Arc<Notify>,
}

impl Scheduler {
    pub(crate) fn new(
        ctx: Arc<EngineContext>,
        destinations: Destinations,
        wake: Arc<Notify>,
    ) -> Scheduler {
        Scheduler {
            ctx,
            destinations,
            in_flight: Arc::new(AtomicUsize::new(0)),
            wake,
        }
    }

    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.ctx.config.poll_interval_ms.max(10));
        let mut workers = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.lease_due();
            self.start_connections(&mut workers);
            tokio::select! {
                _ = self.wake.notified() => {}
                Some(_) = workers.join_next(), if !workers.is_empty() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            self.destinations.drop_idle();
        }
        // Let deliveries in progress finish their current message; what is
        // still waiting in memory is handed back and returns to the spool's
        // due index (as it would after a crash).
        let grace = Duration::from_secs(10);
        let _ = tokio::time::timeout(grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        workers.shutdown().await;
        let mut released = 0;
        for d in self.destinations.all() {
            while let Some(m) = d.take() {
                self.ctx.spool.release(&m.id);
                released += 1;
            }
        }
        self.ctx.metrics.released(released);
    }

    /// Leases due messages into their ready queues, skipping destinations
    /// that are paused or whose ready queue is full.
    fn lease_due(&self) {
        let budget = self
            .ctx
            .config
            .max_in_flight
            .saturating_sub(self.in_flight.load(Ordering::Relaxed));
        if budget == 0 {
            return;
        }
        let now = self.ctx.clock.now_ms();
        // Room left per destination, counted down as this call admits.
        let mut room: HashMap<String, usize> = HashMap::new();
        let admit = |msg: &rackwave_queue::MessageRecord| {
            let domain = domain_of(&msg.to);
            let left = room.entry(domain).or_insert_with_key(|domain| {
                match self.destinations.get(domain) {
                    Some(d) if d.paused(now) => 0,
                    Some(d) => d.room(),
                    None => self.ctx.config.ready_queue_limit,
                }
            });
            if *left == 0 {
                return false;
            }
            *left -= 1;
            true
        };
        let leased = match self
            .ctx
            .spool
            .lease_where(now, budget.min(LEASE_BATCH), admit)
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "leasing due messages failed");
                return;
            }
        };
        self.ctx.metrics.leased(leased.len());
        self.in_flight.fetch_add(leased.len(), Ordering::Relaxed);
        for msg in leased {
            self.destination(&domain_of(&msg.to)).push(msg);
        }
    }

    fn destination(&self, domain: &str) -> Arc<Destination> {
        self.destinations.get_or_insert(domain, || {
            (
                self.ctx.config.shaping_for(domain),
                self.ctx.config.ready_queue_limit,
                self.ctx.metrics.clone(),
            )
        })
    }

    fn start_connections(&self, workers: &mut tokio::task::JoinSet<()>) {
        let now = self.ctx.clock.now_ms();
        for destination in self.destinations.all() {
            loop {
                // Take the global slot first: a destination's claim is only
                // made when a connection can really open.
                let Ok(permit) = self.ctx.slots.clone().try_acquire_owned() else {
                    return;
                };
                if !destination.claim_connection(now) {
                    break;
                }
                let ctx = self.ctx.clone();
                let destination = destination.clone();
                let in_flight = self.in_flight.clone();
                workers.spawn(async move {
                    worker::run(ctx, destination.clone(), in_flight).await;
                    destination.connection_closed();
                    drop(permit);
                });
            }
        }
    }
}
