//! The second half of a group commit, on a thread of its own: the sync of
//! the index's journal, then the answers.
//!
//! Why apart from the writer: a group's two syncs (its bodies, then the
//! journal holding its batch) took about half of the writer's time under
//! batch sends, time in which it could stage nothing. Now the writer
//! stages, appends and syncs the bodies and applies the batch of group
//! N+1 while this thread syncs the journal of group N. Nothing is
//! answered earlier than before: a caller hears back only once the
//! journal holding its group is synced, and a group's batch is still
//! applied only after its bodies are durable (so a durable reference
//! never points at bytes that are not).
//!
//! Groups arrive here in the order they were applied, and the journal is
//! one file appended in that order, so the sync of group N makes every
//! group before it durable too; only then are the body segments they
//! emptied deleted (`BodyFiles::durable`).

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, error, warn};

use super::{lock, Done, Shared, SLOW_COMMIT, VERY_SLOW_COMMIT};
use crate::bodies::BodyFiles;
use crate::error::SpoolError;
use crate::index::Index;

/// A group the writer has staged and applied (or failed to), waiting for
/// its sync and answers.
pub(crate) struct Applied {
    /// The group's number among applied groups (0: nothing was applied).
    pub(super) group: u64,
    pub(super) done: Vec<Done>,
    /// Why the group's bodies or batch could not be written: every
    /// request of it fails.
    pub(super) error: Option<SpoolError>,
    /// The group must be durable before its callers are answered (all but
    /// feed trims and retention).
    pub(super) sync: bool,
    /// The highest feed seq applied once this group was.
    pub(super) feed_applied: u64,
    /// Segments whose last live body the group released.
    pub(super) emptied: Vec<u64>,
    pub(super) timing: Timing,
}

/// Where a group's time went before it reached this thread.
pub(crate) struct Timing {
    pub(super) began: Instant,
    pub(super) bodies: Duration,
    pub(super) apply: Duration,
    pub(super) body_count: usize,
    pub(super) writes: usize,
}

/// Counts the groups handed to the sync thread and not yet finished, so
/// the writer can wait for it to be idle.
#[derive(Default)]
pub(crate) struct Gate {
    in_flight: Mutex<u64>,
    idle: Condvar,
}

impl Gate {
    pub(super) fn handed_over(&self) {
        *lock(&self.in_flight) += 1;
    }

    pub(super) fn finished(&self) {
        let mut n = lock(&self.in_flight);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.idle.notify_all();
        }
    }

    /// The sync thread is gone (stopping, or it panicked): nothing is in
    /// flight any more, and a waiting writer must not wait for it.
    fn close(&self) {
        *lock(&self.in_flight) = 0;
        self.idle.notify_all();
    }

    pub(super) fn wait_idle(&self) {
        let mut n = lock(&self.in_flight);
        while *n > 0 {
            n = self.idle.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub(crate) struct Syncer {
    pub tree: Index,
    pub shared: Arc<Shared>,
    pub rx: Receiver<Applied>,
    pub bodies: Arc<BodyFiles>,
    pub gate: Arc<Gate>,
    /// Segments emptied by groups that were not synced themselves (trims,
    /// retention): released with the next group that is.
    pub unreleased: Vec<u64>,
}

impl Syncer {
    /// Runs until the writer is gone.
    pub(crate) fn run(mut self) {
        struct Closing(Arc<Gate>);
        impl Drop for Closing {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _closing = Closing(self.gate.clone());
        while let Ok(applied) = self.rx.recv() {
            self.finish(applied);
        }
        debug!("spool sync thread stopping");
    }

    fn finish(&mut self, mut g: Applied) {
        let mut failure = g.error.take();
        if failure.is_none() {
            // Applied: the tree shows them empty, and the next sync that
            // succeeds makes that durable.
            self.unreleased.append(&mut g.emptied);
        }
        if failure.is_none() && g.sync {
            let began = Instant::now();
            let synced = self.tree.persist();
            let took = began.elapsed();
            self.record(&g.timing, took);
            match synced {
                Ok(()) => self.durable(&g),
                Err(err) => failure = Some(err),
            }
        }
        if let Some(err) = &failure {
            error!(error = %err, requests = g.done.len(), "spool commit failed");
            for d in &mut g.done {
                d.fail(err);
            }
        }
        for d in g.done {
            d.send();
        }
        self.gate.finished();
    }

    /// The group's journal is synced: everything applied up to it is on
    /// disk, including entries of an earlier group whose own sync failed.
    fn durable(&mut self, g: &Applied) {
        let s = &self.shared;
        if s.feed_durable.fetch_max(g.feed_applied, Ordering::AcqRel) < g.feed_applied {
            // notify_waiters wakes every task waiting right now; the stored
            // permit of notify_one wakes a consumer that was busy (not
            // waiting) when the entries arrived, so none is ever missed.
            s.feed_notify.notify_waiters();
            s.feed_notify.notify_one();
        }
        self.bodies.durable(g.group, &self.unreleased);
        self.unreleased.clear();
    }

    /// Counts the group's flush (both of its syncs) and says where a slow
    /// one's time went.
    fn record(&self, t: &Timing, index_sync: Duration) {
        let s = &self.shared;
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let fsync = nanos(t.bodies + index_sync);
        s.flushes.fetch_add(1, Ordering::Relaxed);
        s.last_flush_nanos.store(fsync, Ordering::Relaxed);
        s.total_flush_nanos.fetch_add(fsync, Ordering::Relaxed);
        // Every waiter of the group waited this long, the wait for the
        // previous group's sync included.
        let took = t.began.elapsed();
        if took >= SLOW_COMMIT {
            let (total_ms, bodies_ms, apply_ms, index_sync_ms) = (
                took.as_millis() as u64,
                t.bodies.as_millis() as u64,
                t.apply.as_millis() as u64,
                index_sync.as_millis() as u64,
            );
            let (bodies, writes) = (t.body_count, t.writes);
            if took >= VERY_SLOW_COMMIT {
                warn!(
                    total_ms,
                    bodies_ms, apply_ms, index_sync_ms, bodies, writes, "slow spool commit"
                );
            } else {
                debug!(
                    total_ms,
                    bodies_ms, apply_ms, index_sync_ms, bodies, writes, "slow spool commit"
                );
            }
        }
    }
}
