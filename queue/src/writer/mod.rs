//! The single writer thread and its group commit.
//!
//! Why one thread: every mutation of the spool is a read-modify-write
//! (counters, a record's history, the pending-recipients count of a body).
//! Funnelling all of them through one thread makes those updates race-free
//! without locks, keeps the durable counters exact, and — most importantly —
//! lets one `fsync` cover many callers: the thread blocks for the first
//! request, drains whatever else queued up meanwhile (at most `max_batch`),
//! appends and syncs the group's bodies, applies everything as ONE atomic
//! batch of the index and hands the group to the sync thread (`sync`),
//! which syncs the index's journal ONCE and then answers every waiter.
//! While a group is written and synced new requests pile up in the channel
//! and form the next group, so under load the number of fsyncs per message
//! drops without adding any artificial delay; and the writer stages the
//! next group while the journal of the last one is synced.
//!
//! Each request is staged separately (see [`Staged`]): it reads through the
//! writes of earlier requests in the same group, and only if it succeeds are
//! its writes merged into the group. A bad request (settling an unknown or
//! final message, say) therefore fails alone. A failure of the batch apply
//! or of the flush fails every request of the group, because none of them
//! can then be promised to be durable.
//!
//! The writer also maintains the per-workspace due lanes (see `keys`): every
//! due-index insert or removal goes through [`Staged::lane_add`] /
//! [`Staged::lane_remove`], which keep the durable lane counter exact, and
//! after each apply the in-memory [`Lanes`] table is updated from the
//! group's final counter values.
//!
//! Change feed: every history entry staged for a record goes through
//! [`Staged::history`], which also stages its feed entry, so the two
//! always land in the same batch (the group's entries as `f/` pages, see
//! `feed_pages`). Seqs are allocated at staging time
//! from the group's base (`feed_applied + 1`) plus the entries staged before
//! in the group; a failed request drops its writes, so its seqs are reused
//! by the next request and the feed stays contiguous. After the apply
//! `feed_applied` moves forward, and only after a successful flush does
//! `feed_durable` (what `Spool::feed` exposes) catch up and the feed's
//! `Notify` fire. Trims of the feed are writer requests like the others but
//! a group made only of trims is applied without a flush (see
//! `Spool::trim_feed`). Retention deletions (`Spool::prune_finished`) are
//! lazy in the same way.
//!
//! The jobs live beside this file, one per kind of request: `enqueue`,
//! `settle` (settlements and later reports), `feed` (trims) and
//! `retention`; `staged` is the staging area they write into and `lanes`
//! the in-memory due lanes.

mod enqueue;
mod feed;
mod lanes;
mod retention;
mod settle;
mod staged;
mod sync;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};
use tracing::{debug, error, warn};

use self::sync::{Applied, Timing};
pub(crate) use self::sync::{Gate, Syncer};

use crate::bodies::BodyWriter;
use crate::error::SpoolError;
use crate::feed_pages;
use crate::keys;
use crate::record::{
    status_index, DeliveryAttempt, Enqueued, FeedEntry, LateReport, MessageRecord, Status,
    StatusCounts, Submission,
};

pub(crate) use lanes::Lanes;
pub(crate) use retention::PruneItem;
use staged::{Group, Staged};

/// Milliseconds per UTC day, for the per-submitter daily counter.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Maximum number of feed entries one trim request deletes; `trim_feed`
/// repeats the request until it reports nothing left, so a large trim never
/// becomes one huge batch.
pub(crate) const FEED_TRIM_CHUNK: usize = 4096;

/// A group of at least this many requests is staged and applied while the
/// last group's journal is synced; a smaller one waits for that sync
/// first, taking in what arrives meanwhile. Batch sends bring hundreds of
/// messages at once, and the overlap keeps the writer busy; a few SMTP
/// clients bring a few each, and waiting turns what would be two syncs
/// into one (measured: overlapping every group made single HTTP sends 15%
/// slower for want of it).
const OVERLAP_FROM: usize = 64;

/// A group commit taking longer than this is logged with its breakdown at
/// debug level (on a spinning disk two fsyncs alone take about this long)...
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(20);
/// ...and longer than this as a warning: every SMTP client of the group
/// waited that long for its 250.
const VERY_SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A mutation request plus the channel on which its caller awaits the
/// (durable) result.
pub(crate) enum Request {
    /// One or more submissions, all queued or none.
    Enqueue {
        submissions: Vec<Submission>,
        reply: oneshot::Sender<Result<Vec<Enqueued>, SpoolError>>,
    },
    /// Settles a lease as its attempt's outcome says.
    Settle {
        id: String,
        attempt: DeliveryAttempt,
        reply: oneshot::Sender<Result<MessageRecord, SpoolError>>,
    },
    /// Records a later report about a delivered message.
    Report {
        id: String,
        report: LateReport,
        reply: oneshot::Sender<Result<MessageRecord, SpoolError>>,
    },
    /// Deletes up to [`FEED_TRIM_CHUNK`] feed entries with seq <=
    /// `up_to_seq` (clamped to the durable high-water mark); answers
    /// whether more such entries remain.
    TrimFeed {
        up_to_seq: u64,
        reply: oneshot::Sender<Result<bool, SpoolError>>,
    },
    /// Deletes the records and index entries of finished messages past
    /// retention (read and listed by the caller, checked again here);
    /// answers how many records went.
    Prune {
        items: Vec<PruneItem>,
        reply: oneshot::Sender<Result<u64, SpoolError>>,
    },
}

/// State shared between the public handle and the writer thread. Only
/// small, bounded things live here: the set of leased ids and counters.
pub(crate) struct Shared {
    /// Ids handed out by `lease` and not yet settled or released. In memory
    /// only on purpose: after a crash nobody is delivering them any more,
    /// so they must become leasable again.
    pub leased: Mutex<HashSet<String>>,
    /// Mirror of the durable `s/<status>` counters, updated by the writer
    /// right after each successful apply.
    pub counts: Mutex<StatusCounts>,
    /// The due lanes (one entry per workspace with pending mail), kept in
    /// step with the durable `l/<ws>` counters like `counts`.
    pub lanes: Mutex<Lanes>,
    pub flushes: AtomicU64,
    pub commits: AtomicU64,
    pub records_enqueued: AtomicU64,
    pub submissions: AtomicU64,
    pub settlements: AtomicU64,
    /// Finished records deleted by retention.
    pub records_pruned: AtomicU64,
    pub last_flush_nanos: AtomicU64,
    pub total_flush_nanos: AtomicU64,
    /// Highest feed seq applied to the tree (written by the writer only).
    /// The next group's entries start right after it.
    pub feed_applied: AtomicU64,
    /// Highest feed seq known to be fsynced: `Spool::feed` never returns
    /// entries past it. Set to `feed_applied` after every successful flush.
    pub feed_durable: AtomicU64,
    /// Feed entries up to this seq are trimmed: a page partly trimmed
    /// stays until all of its entries are, and `Spool::feed` skips the
    /// trimmed ones (durable as `ft`, as lazily as the trims).
    pub feed_trimmed: AtomicU64,
    /// Fired after every flush that made new feed entries durable.
    pub feed_notify: Arc<Notify>,
}

impl Shared {
    /// `feed_seq` is the highest feed seq found on disk at open,
    /// `feed_trimmed` the seq up to which the feed was trimmed.
    pub(crate) fn new(
        counts: StatusCounts,
        lanes: Lanes,
        feed_seq: u64,
        feed_trimmed: u64,
    ) -> Shared {
        Shared {
            leased: Mutex::new(HashSet::new()),
            counts: Mutex::new(counts),
            lanes: Mutex::new(lanes),
            feed_applied: AtomicU64::new(feed_seq),
            feed_durable: AtomicU64::new(feed_seq),
            feed_trimmed: AtomicU64::new(feed_trimmed),
            feed_notify: Arc::new(Notify::new()),
            flushes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            records_enqueued: AtomicU64::new(0),
            submissions: AtomicU64::new(0),
            settlements: AtomicU64::new(0),
            records_pruned: AtomicU64::new(0),
            last_flush_nanos: AtomicU64::new(0),
            total_flush_nanos: AtomicU64::new(0),
        }
    }
}

/// Locks a mutex, ignoring poisoning: the protected data (a set of ids,
/// plain counters) stays consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decodes a stored record (one written by an earlier version too).
pub(crate) fn decode_record(key: &[u8], raw: &[u8]) -> Result<MessageRecord, SpoolError> {
    serde_json::from_slice(raw).or_else(|e| decode_legacy_record(key, raw, e))
}

/// Decodes a record that is not in the current shape (`e` said why) as
/// one of an earlier version.
pub(crate) fn decode_legacy_record(
    key: &[u8],
    raw: &[u8],
    e: serde_json::Error,
) -> Result<MessageRecord, SpoolError> {
    crate::legacy::record(raw).map_err(|_| {
        SpoolError::encoding(
            format!("decoding record {}", String::from_utf8_lossy(key)),
            e,
        )
    })
}

/// Decodes one stored feed entry; its place in the feed (key and page)
/// is authoritative for `seq`.
pub(crate) fn decode_feed(seq: u64, raw: &[u8]) -> Result<FeedEntry, SpoolError> {
    let mut entry: FeedEntry = match serde_json::from_slice(raw) {
        Ok(entry) => entry,
        Err(e) => crate::legacy::feed_entry(seq, raw)
            .map_err(|_| SpoolError::encoding(format!("decoding feed entry {seq}"), e))?,
    };
    entry.seq = seq;
    Ok(entry)
}

/// Decodes a stored counter value.
pub(crate) fn decode_counter(key: &[u8], raw: &[u8]) -> Result<u64, SpoolError> {
    keys::decode_u64(raw).ok_or_else(|| {
        SpoolError::Corrupt(format!(
            "counter {} has {} bytes, expected 8",
            String::from_utf8_lossy(key),
            raw.len()
        ))
    })
}

/// A staged request's outcome, held until the group is durable.
enum Done {
    Enqueue(
        oneshot::Sender<Result<Vec<Enqueued>, SpoolError>>,
        Result<Vec<Enqueued>, SpoolError>,
    ),
    Settle(
        oneshot::Sender<Result<MessageRecord, SpoolError>>,
        // Boxed: a record is several times larger than the other outcomes.
        Box<Result<MessageRecord, SpoolError>>,
    ),
    TrimFeed(
        oneshot::Sender<Result<bool, SpoolError>>,
        Result<bool, SpoolError>,
    ),
    Prune(
        oneshot::Sender<Result<u64, SpoolError>>,
        Result<u64, SpoolError>,
    ),
}

impl Done {
    /// Replaces a success with `err` (the group could not be made durable).
    fn fail(&mut self, err: &SpoolError) {
        let clone = || err.for_another_waiter();
        match self {
            Done::Enqueue(_, r) if r.is_ok() => *r = Err(clone()),
            Done::Settle(_, r) if r.is_ok() => **r = Err(clone()),
            Done::TrimFeed(_, r) if r.is_ok() => *r = Err(clone()),
            Done::Prune(_, r) if r.is_ok() => *r = Err(clone()),
            _ => {}
        }
    }

    fn send(self) {
        // A dropped receiver means the caller gave up waiting; the
        // outcome is durable regardless, so there is nothing to undo.
        match self {
            Done::Enqueue(tx, r) => drop(tx.send(r)),
            Done::Settle(tx, r) => drop(tx.send(*r)),
            Done::TrimFeed(tx, r) => drop(tx.send(r)),
            Done::Prune(tx, r) => drop(tx.send(r)),
        }
    }
}

/// Answers every request of a group that could not even start with `err`.
fn fail_all(requests: Vec<Request>, err: &SpoolError) {
    for request in requests {
        let e = err.for_another_waiter();
        match request {
            Request::Enqueue { reply, .. } => drop(reply.send(Err(e))),
            Request::Settle { reply, .. } | Request::Report { reply, .. } => {
                drop(reply.send(Err(e)))
            }
            Request::TrimFeed { reply, .. } => drop(reply.send(Err(e))),
            Request::Prune { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub tree: crate::index::Index,
    pub shared: Arc<Shared>,
    pub rx: Receiver<Request>,
    pub bodies: BodyWriter,
    pub group_commit: bool,
    pub max_batch: usize,
    /// Ids drawn in this process are newer than every stored one (see
    /// `ids_follow_stored`), so fresh ids need no lookup in the tree.
    pub fresh_ids: bool,
    /// Every feed page before this key is trimmed (see
    /// `feed::stage_trim_feed`); the feed's first key at open.
    pub feed_trim_from: Vec<u8>,
    /// Applied groups go to the sync thread, which answers them.
    pub sync: SyncSender<Applied>,
    /// Whether the sync thread still has a group to finish.
    pub gate: Arc<Gate>,
    /// Groups applied so far (the last one's number).
    pub applied_group: u64,
    /// The sync thread, joined when the writer stops.
    pub syncer: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Runs until every sender is dropped (the last `Spool` clone is gone).
    pub(crate) fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let mut requests = vec![first];
            self.drain(&mut requests);
            if requests.len() < OVERLAP_FROM {
                // Few waiting: let them and whoever arrives meanwhile wait
                // for the last group's sync and form one group, rather
                // than one sync each for two small groups.
                self.gate.wait_idle();
                self.drain(&mut requests);
            }
            self.commit_group(requests);
        }
        debug!("spool writer stopping");
        // Closing the channel lets the sync thread answer what it holds
        // and stop; the spool is closed once both are gone.
        let Writer { sync, syncer, .. } = self;
        drop(sync);
        if let Some(handle) = syncer {
            if handle.join().is_err() {
                warn!("spool sync thread panicked");
            }
        }
    }

    /// Adds what waits in the channel to the group (up to `max_batch`).
    fn drain(&self, requests: &mut Vec<Request>) {
        if !self.group_commit {
            return;
        }
        while requests.len() < self.max_batch.max(1) {
            match self.rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
    }

    fn commit_group(&mut self, requests: Vec<Request>) {
        let began = Instant::now();
        let segment = match self.bodies.prepare(&self.tree, self.applied_group) {
            Ok(segment) => segment,
            Err(err) => {
                error!(error = %err, requests = requests.len(), "no body segment to write to");
                return fail_all(requests, &err);
            }
        };
        let feed_base = self.shared.feed_applied.load(Ordering::Acquire) + 1;
        let mut group = Group::new(feed_base, segment);
        let mut done = Vec::with_capacity(requests.len());
        for request in requests {
            match request {
                Request::Enqueue { submissions, reply } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let result: Result<Vec<Enqueued>, SpoolError> = submissions
                        .into_iter()
                        .map(|s| enqueue::stage_enqueue(&mut st, s, self.fresh_ids))
                        .collect();
                    if let Ok(enqueued) = &result {
                        let changes = st.finish();
                        group.absorb(changes);
                        group.submissions += enqueued.len() as u64;
                        group.records += enqueued
                            .iter()
                            .map(|e| e.message_ids.len() as u64)
                            .sum::<u64>();
                    }
                    done.push(Done::Enqueue(reply, result));
                }
                Request::Settle { id, attempt, reply } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let result = settle::stage_settle(&mut st, &self.shared, &id, attempt);
                    if result.is_ok() {
                        let changes = st.finish();
                        group.absorb(changes);
                        group.settled.insert(id);
                        group.settlements += 1;
                    }
                    done.push(Done::Settle(reply, Box::new(result)));
                }
                Request::Report { id, report, reply } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let result = settle::stage_report(&mut st, &id, report);
                    if result.is_ok() {
                        let changes = st.finish();
                        group.absorb(changes);
                    }
                    done.push(Done::Settle(reply, Box::new(result)));
                }
                Request::TrimFeed { up_to_seq, reply } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let durable = self.shared.feed_durable.load(Ordering::Acquire);
                    let up_to = up_to_seq.min(durable);
                    let from = group
                        .feed_trim_from
                        .clone()
                        .unwrap_or_else(|| self.feed_trim_from.clone());
                    let result = feed::stage_trim_feed(&mut st, up_to, &from);
                    if let Ok((_, next_from)) = &result {
                        let changes = st.finish();
                        group.feed_trim_from = Some(next_from.clone());
                        group.absorb_lazy(changes);
                        let floor = self.shared.feed_trimmed.load(Ordering::Acquire);
                        if up_to > floor.max(group.feed_trimmed.unwrap_or(0)) {
                            group.feed_trimmed = Some(up_to);
                        }
                    }
                    done.push(Done::TrimFeed(reply, result.map(|(more, _)| more)));
                }
                Request::Prune { items, reply } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let result = retention::stage_prune(&mut st, items);
                    if result.is_ok() {
                        let changes = st.finish();
                        group.absorb_lazy(changes);
                    }
                    done.push(Done::Prune(reply, result));
                }
            }
        }

        let mut applied = Applied {
            group: 0,
            done,
            error: None,
            sync: false,
            feed_applied: 0,
            emptied: Vec::new(),
            timing: Timing {
                began,
                bodies: Duration::ZERO,
                apply: Duration::ZERO,
                body_count: group.changes.bodies.len(),
                writes: group.changes.writes.len(),
            },
        };
        if !group.changes.writes.is_empty()
            || !group.changes.feed.is_empty()
            || group.feed_trimmed.is_some()
        {
            match self.apply(&group) {
                Ok((bodies, apply)) => {
                    if let Some(from) = group.feed_trim_from.take() {
                        self.feed_trim_from = from;
                    }
                    self.applied_group += 1;
                    applied.group = self.applied_group;
                    applied.sync = group.needs_flush;
                    applied.feed_applied = self.shared.feed_applied.load(Ordering::Acquire);
                    applied.emptied = std::mem::take(&mut group.changes.emptied);
                    applied.timing.bodies = bodies;
                    applied.timing.apply = apply;
                }
                Err(err) => applied.error = Some(err),
            }
        }
        if !group.settled.is_empty() {
            self.end_leases(&group, applied.error.is_some());
        }
        self.gate.handed_over();
        if let Err(std::sync::mpsc::SendError(mut applied)) = self.sync.send(applied) {
            self.gate.finished();
            // Only if the sync thread died: nobody can make the group
            // durable.
            let err = SpoolError::Corrupt("the spool's sync thread stopped".into());
            error!(requests = applied.done.len(), "{err}");
            for mut d in applied.done.drain(..) {
                d.fail(&err);
                d.send();
            }
        }
    }

    /// Ends the leases of the messages the group settled, once its batch is
    /// applied (or failed to be): a later settlement of one of them fails,
    /// and the tree shows where each went.
    fn end_leases(&self, group: &Group, failed: bool) {
        let mut leased = lock(&self.shared.leased);
        {
            // Under the leased lock, so no lease call sets a cursor past
            // these messages between this and their release.
            let mut lanes = lock(&self.shared.lanes);
            if failed {
                // The settled messages are still in the due index and
                // become leasable again, possibly behind a cursor.
                lanes.clear_cursors();
            } else {
                for (ws, change) in &group.changes.lanes {
                    if let Some(t) = change.min_requeued {
                        lanes.requeued_leases_end(ws, t);
                    }
                }
            }
        }
        for id in &group.settled {
            leased.remove(id);
        }
    }

    /// Appends and syncs the group's bodies, then applies its batch
    /// atomically and updates the in-memory mirrors; answers how long the
    /// two took. The leases of settled ids end whatever the outcome: if
    /// the apply failed the messages are unchanged and simply become
    /// leasable again; if only the journal's sync fails (in the sync
    /// thread) the tree already shows the new state.
    ///
    /// Feed: the group's entries and the `fh` high-water mark go into the
    /// same batch; `feed_applied` moves after the apply, `feed_durable` (and
    /// the notification) only after a successful sync.
    fn apply(&mut self, group: &Group) -> Result<(Duration, Duration), SpoolError> {
        // Bodies first: once the batch below is durable its references
        // must point at durable bytes.
        let began = Instant::now();
        self.bodies.append(&group.changes.bodies)?;
        let bodies_done = Instant::now();
        // The group's own writes and the counters and feed pages computed
        // from them go in one atomic batch. A key may appear in it once
        // (all of a batch's writes share one sequence number), so these
        // computed ones replace any of the group's writes to the same key.
        let mut batch: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            std::collections::BTreeMap::new();
        let mut counts = *lock(&self.shared.counts);
        for status in Status::ALL {
            let d = group.changes.delta[status_index(status)];
            if d != 0 {
                let c = counts.get_mut(status);
                let next = (*c as i128 + d as i128).max(0) as u64;
                if (*c as i128 + d as i128) < 0 {
                    warn!(status = %status, "status counter would go negative; clamping");
                }
                *c = next;
                batch.insert(
                    keys::status_count(status.as_str()),
                    Some(keys::encode_u64(next).to_vec()),
                );
            }
        }
        // Highest seq of the group's entries, if it staged any.
        let feed_count = group.changes.feed_count();
        let feed_last = (feed_count > 0).then(|| group.feed_base + feed_count - 1);
        if let Some(last) = feed_last {
            for (first, page) in feed_pages::pages(group.feed_base, &group.changes.feed) {
                batch.insert(keys::feed(first), Some(page));
            }
            batch.insert(
                keys::FEED_HIGH.to_vec(),
                Some(keys::encode_u64(last).to_vec()),
            );
        }
        if let Some(floor) = group.feed_trimmed {
            batch.insert(
                keys::FEED_TRIMMED.to_vec(),
                Some(keys::encode_u64(floor).to_vec()),
            );
        }
        let writes = group
            .changes
            .writes
            .iter()
            .filter(|(k, _)| !batch.contains_key(*k))
            .chain(&batch);
        self.tree
            .apply(writes.map(|(k, v)| (k.as_slice(), v.as_deref())))?;
        if let Some(last) = feed_last {
            self.shared.feed_applied.store(last, Ordering::Release);
        }
        if let Some(floor) = group.feed_trimmed {
            self.shared.feed_trimmed.fetch_max(floor, Ordering::AcqRel);
        }
        *lock(&self.shared.counts) = counts;
        if !group.changes.lanes.is_empty() {
            let mut lanes = lock(&self.shared.lanes);
            for (ws, change) in &group.changes.lanes {
                lanes.apply(ws, *change);
            }
        }
        let s = &self.shared;
        s.commits.fetch_add(1, Ordering::Relaxed);
        s.submissions
            .fetch_add(group.submissions, Ordering::Relaxed);
        s.records_enqueued
            .fetch_add(group.records, Ordering::Relaxed);
        s.settlements
            .fetch_add(group.settlements, Ordering::Relaxed);
        Ok((bodies_done - began, bodies_done.elapsed()))
    }
}
