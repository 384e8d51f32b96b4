//! Rackwave's durable spool: where accepted mail waits until it is delivered
//! or bounced.
//!
//! # Guarantees
//!
//! * **Durable acceptance.** [`Spool::enqueue`] returns only after the body
//!   (appended to a segment file and `fdatasync`ed first) and every record
//!   (the index's journal, synced) are on disk. The SMTP server
//!   answers `250 OK queued as <queue id>` only after that, so a crash can
//!   never lose mail we claimed to have taken responsibility for. (The
//!   converse is at-least-once: if the connection dies between commit and
//!   reply, the client retries and the message may be queued twice.)
//! * **Group commit.** fsync is the expensive part, so one writer thread
//!   batches concurrent mutations into a single atomic batch and a
//!   single sync (see [`SpoolConfig`]).
//! * **Bodies outside the tree.** Bodies are written once, sequentially,
//!   into append-only segment files; the tree holds a small checksummed
//!   reference per body (see `bodies.rs` for why and how crashes are
//!   handled).
//! * **Atomic bookkeeping.** Records, body references, due index, listing indexes,
//!   per-status counters and per-submitter daily counters live in the
//!   spool's index (`index.rs`) and change in the same batch, so they
//!   never disagree, even after a crash. Counters are therefore exact and loaded at open instead of
//!   recomputed by scanning.
//! * **Bounded memory.** Nothing proportional to queue length is held in
//!   RAM: the due queue is an on-disk index scanned in time order, listings
//!   are index scans with cursors. Only leased ids, a few counters and one
//!   small entry per workspace with pending mail (its due lane) are kept in
//!   memory.
//! * **Fair leasing.** The due index has one lane per workspace, and
//!   [`Spool::lease`] takes due messages round-robin across the lanes, so a
//!   workspace with a huge backlog cannot make the others wait behind it
//!   (see [`Spool::lease`] and the key layout in `keys.rs`).
//!
//! # Life of a message
//!
//! One [`Submission`] (one SMTP transaction) gets a queue id and produces
//! one [`MessageRecord`] per recipient, all sharing one stored body. The
//! delivery engine calls [`Spool::lease`] to take due messages, tries them,
//! and settles each lease with [`Spool::settle`] (the attempt's outcome
//! says delivered, deferred until its retry time, or bounced), or gives it
//! back unchanged with [`Spool::release`]. A message waiting for a
//! connection stays leased in memory: capacity waits are never written. Leases are in memory only: a
//! lease that is never settled (crash, restart) simply makes the message
//! leasable again. When the last message of a submission becomes final the
//! body is deleted; the records stay for listing until retention removes
//! them.
//!
//! # History events
//!
//! Each record's `history` is the message timeline shown to API and webhook
//! consumers, in the typed event model of `rackwave-core`
//! ([`EmailEvent`](rackwave_core::event::EmailEvent)): `email.queued` at
//! enqueue, then per settlement optionally `email.sent` (the message data
//! was handed to the remote server, recorded when the attempt's
//! [`DeliveryAttempt::sent_at_ms`] is set, with the status the message had
//! before the settlement), followed by the settlement's own entry, the
//! attempt's outcome (`email.deferred`, `email.delivered` or
//! `email.bounced`, with its data).
//!
//! # Retention
//!
//! A final settlement also writes a retention index entry (by finish
//! time). [`Spool::prune_finished`] deletes the records finished before a
//! cutoff with every index entry naming them, in bounded batches through
//! the writer (checked again there, so counters stay exact), and daily
//! accepted counters of days before the cutoff; [`retention::run`] does
//! that in the background. Records finished before the index existed are
//! added to it once, by [`Spool::index_finished`].
//!
//! # Change feed
//!
//! The webhook emitter promises that no event is ever lost, not even on a
//! crash. Every event it publishes about a message is exactly one history
//! entry, so the spool publishes a durable, ordered change feed: for EVERY
//! history entry it writes, one [`FeedEntry`] is written in the SAME atomic
//! batch. If a history entry is on disk, so is its feed entry, and vice
//! versa; there is no window in which one exists without the other.
//!
//! * **Ordering.** Each entry has a `seq`, strictly increasing in commit
//!   order (within an enqueue in recipient order; within a settlement
//!   `email.sent` before the settlement's entry), so the events of one
//!   message appear in the feed in the order they happened. Seqs are
//!   contiguous as issued and never reused, not even after trimming or a
//!   restart (a durable high-water mark is kept next to the entries).
//! * **Durable before visible.** [`Spool::feed`] returns an entry only once
//!   the commit that wrote it is fsynced, i.e. never before the SMTP `250`
//!   (or the settlement's caller) could have been answered. The writer
//!   applies a batch before it flushes, so `feed` stops at an in-memory
//!   durable high-water mark ([`Spool::last_feed_seq`]) moved after the
//!   flush. (If a flush fails, its entries stay invisible until a later
//!   flush succeeds; the tree shows them by then, exactly like the records.)
//! * **Tailing.** The consumer stores its own cursor (the last seq it
//!   published), reads [`Spool::feed`]`(cursor, limit)` and, when that comes
//!   back empty, waits on [`Spool::feed_notify`], which fires after every
//!   flush that made new entries durable (with a stored permit, so a
//!   notification arriving while the consumer is busy is not lost). Delivery
//!   to the consumer is therefore at-least-once in the consumer's own terms:
//!   it must persist its cursor after publishing.
//! * **Trimming.** The feed grows until the consumer deletes what it has
//!   consumed with [`Spool::trim_feed`]. Nobody else trims it: an emitter
//!   that is down makes the feed grow, it never loses events.
//!
//! Existing records written before the feed existed have no feed entries;
//! the feed starts with the first history entry written by this version.

mod bodies;
mod error;
mod feed_pages;
mod ids;
mod index;
mod keys;
mod legacy;
mod record;
pub mod retention;
mod writer;

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tracing::warn;

pub use error::SpoolError;
pub use ids::{is_message_id, is_queue_id, new_queue_id};
#[doc(hidden)]
pub use index::RawIndex;
pub use record::{
    DeliveryAttempt, Enqueued, FeedEntry, LateReport, ListFilter, MessageRecord, Page, SpoolStats,
    Status, StatusChange, StatusCounts, Submission, UnreadableEntry,
};

use writer::{
    decode_counter, decode_feed, decode_legacy_record, decode_record, lock, Gate, Lanes, PruneItem,
    Request, Shared, Syncer, Writer,
};

/// The directory, inside the spool's directory, holding its index
/// (records, indexes, counters: see `keys.rs`); the body segments are
/// beside it.
pub const INDEX_DIR: &str = "index";

/// Maximum number of index entries one [`Spool::list`] call examines.
/// The fields of a stored record a listing's filter compares, read
/// without the rest (borrowed where the JSON has no escapes).
#[derive(serde::Deserialize)]
struct FilterFields<'a> {
    #[serde(borrow)]
    from: std::borrow::Cow<'a, str>,
    status: Status,
    #[serde(default, borrow)]
    tags: Vec<std::borrow::Cow<'a, str>>,
}

/// Bounds the cost of a listing whose status filter matches rarely; the
/// caller gets a cursor to continue instead of an unbounded scan.
pub const LIST_SCAN_BUDGET: usize = 10_000;

/// Tuning of the write path.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// Share one fsync among all mutations waiting at the same time
    /// (default `true`). `false` flushes after every single operation; it
    /// exists to measure what group commit buys, not for production.
    pub group_commit: bool,
    /// Maximum number of operations per commit (default 2048). Caps the
    /// size of one index batch and the latency a large group adds to its
    /// last waiter. (512 while the index was sled's, whose batch cost grew
    /// with it; batch sends, a message an operation, fill groups past 512.)
    pub max_batch: usize,
    /// A body segment file stops taking new bodies at this size (default
    /// 32 MiB). A segment is deleted when its last body is released, so
    /// smaller segments give space back sooner; larger ones mean fewer
    /// files.
    pub body_segment_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            group_commit: true,
            max_batch: 2048,
            body_segment_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Handle to the spool. Cheap to clone; all clones share one writer thread,
/// which stops (after finishing its current group) when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

/// Whether a workspace's mail is held (see [`Spool::hold_lanes`]).
pub type HeldLanes = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct Inner {
    tree: index::Index,
    bodies: Arc<bodies::BodyFiles>,
    shared: Arc<Shared>,
    /// The lane that got the most recent message from `lease`; the next
    /// call starts with the lane after it. Locked only while `leased` is.
    last_lane: Mutex<Option<String>>,
    /// Which workspaces may not send now (suspended): their lanes are
    /// not leased ([`Spool::hold_lanes`]).
    held: Mutex<Option<HeldLanes>>,
    /// Where the walk adding old finished records to the retention index
    /// goes on (see [`Spool::index_finished`]).
    index_cursor: Mutex<Option<Vec<u8>>>,
    /// `Option` so `Drop` can close the channel before joining the thread.
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining makes sure its
        // clones of the Db are gone, so the database can be reopened.
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                warn!("spool writer thread panicked");
            }
        }
    }
}

/// Starts one of the spool's threads. Named without a `rackwave-` prefix:
/// Linux keeps 15 bytes of a thread's name, and `top -H` or a profile
/// should tell the writer from its sync thread.
fn spawn(
    name: &str,
    run: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, SpoolError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(run)
        .map_err(|e| SpoolError::Io {
            context: format!("starting the spool's thread {name}"),
            source: e,
        })
}

impl Spool {
    /// The spool of a data directory's node: [`open`](Self::open) with the
    /// store's sled database as the place an earlier version may have
    /// kept it.
    pub fn open_in(
        database: &rackwave_store::Database,
        dir: &Path,
        config: SpoolConfig,
    ) -> Result<Spool, SpoolError> {
        Spool::open(database.sled(), dir, config)
    }

    /// Opens (creating if needed) the spool in `dir`: its index in
    /// `dir/index` (see [`INDEX_DIR`]) and its body segments in `dir`
    /// itself (deleting segments left unreferenced by a crash), loads the
    /// status counters and the due lanes (one small counter per workspace
    /// with pending mail) and starts the writer thread.
    ///
    /// Earlier versions kept the index in the store's sled database (the
    /// tree `spool`); what `legacy` holds there is moved into the index,
    /// once, before anything else happens.
    ///
    /// Call it once per process and directory: the spool relies on being
    /// the only writer of its index for exact counters and race-free
    /// updates.
    pub fn open(legacy: &sled::Db, dir: &Path, config: SpoolConfig) -> Result<Spool, SpoolError> {
        // The index creates `dir` with its own directory.
        let tree = index::Index::open(&dir.join(INDEX_DIR), legacy)?;
        let body_writer = bodies::BodyWriter::open(dir, &tree, config.body_segment_bytes)?;
        let body_files = body_writer.files();
        let mut counts = StatusCounts::default();
        for status in Status::ALL {
            let key = keys::status_count(status.as_str());
            if let Some(raw) = tree.get(&key)? {
                *counts.get_mut(status) = decode_counter(&key, &raw)?;
            }
        }
        let mut lane_counts = Vec::new();
        for item in tree.scan_prefix(keys::LANE_COUNT) {
            let (key, raw) = item?;
            let ws = std::str::from_utf8(&key[keys::LANE_COUNT.len()..])
                .map_err(|_| {
                    SpoolError::Corrupt(format!(
                        "lane counter key {} is not UTF-8",
                        String::from_utf8_lossy(&key)
                    ))
                })?
                .to_string();
            lane_counts.push((ws, decode_counter(&key, &raw)?));
        }
        // Next feed seq: the durable high-water mark survives trimming
        // everything; the last entry covers a missing mark.
        let mut feed_seq = match tree.get(keys::FEED_HIGH)? {
            Some(raw) => decode_counter(keys::FEED_HIGH, &raw)?,
            None => 0,
        };
        if let Some(item) = tree
            .range(keys::FEED.to_vec()..keys::feed_end())
            .next_back()
        {
            let (key, raw) = item?;
            let first = keys::feed_seq_of(&key).ok_or_else(|| {
                SpoolError::Corrupt(format!(
                    "feed key {} is malformed",
                    String::from_utf8_lossy(&key)
                ))
            })?;
            feed_seq = feed_seq.max(feed_pages::last_seq(first, &raw));
        }
        let feed_trimmed = match tree.get(keys::FEED_TRIMMED)? {
            Some(raw) => decode_counter(keys::FEED_TRIMMED, &raw)?,
            None => 0,
        };
        // A spool without records has no record to add to the retention
        // index.
        if tree.get(keys::FINISHED_INDEXED)?.is_none()
            && tree.scan_prefix(keys::RECORD).next().is_none()
        {
            tree.insert(keys::FINISHED_INDEXED, &[])?;
        }
        let fresh_ids = ids_follow_stored(&tree)?;
        let shared = Arc::new(Shared::new(
            counts,
            Lanes::from_counts(lane_counts),
            feed_seq,
            feed_trimmed,
        ));
        let (tx, rx) = mpsc::channel();
        // One applied group waits at most while another is synced: the
        // writer runs no further ahead (its next apply waits for the
        // journal's sync anyway).
        let (sync, applied) = mpsc::sync_channel(1);
        let gate = Arc::new(Gate::default());
        let syncer = Syncer {
            gate: gate.clone(),
            tree: tree.clone(),
            shared: shared.clone(),
            rx: applied,
            bodies: body_writer.files(),
            unreleased: Vec::new(),
        };
        let syncer = spawn("spool-sync", move || syncer.run())?;
        let writer = Writer {
            tree: tree.clone(),
            shared: shared.clone(),
            rx,
            bodies: body_writer,
            group_commit: config.group_commit,
            max_batch: config.max_batch,
            fresh_ids,
            feed_trim_from: keys::FEED.to_vec(),
            sync,
            gate,
            applied_group: 0,
            syncer: Some(syncer),
        };
        let handle = spawn("spool-writer", move || writer.run())?;
        Ok(Spool {
            inner: Arc::new(Inner {
                tree,
                bodies: body_files,
                shared,
                last_lane: Mutex::new(None),
                held: Mutex::new(None),
                index_cursor: Mutex::new(None),
                tx: Some(tx),
                writer: Some(handle),
            }),
        })
    }

    fn send(&self, request: Request) -> Result<(), SpoolError> {
        self.inner
            .tx
            .as_ref()
            .ok_or(SpoolError::Closed)?
            .send(request)
            .map_err(|_| SpoolError::Closed)
    }

    /// Durably queues a submission: stores the body once and one record per
    /// recipient (status `Queued`, due at `received_at_ms`), bumps the
    /// status and per-submitter daily counters, all in one atomic commit.
    ///
    /// Returns only after that commit is fsynced, so the caller may then
    /// promise delivery (SMTP `250`). On error nothing is promised: the
    /// caller should answer with a temporary failure.
    pub async fn enqueue(&self, submission: Submission) -> Result<Enqueued, SpoolError> {
        let mut enqueued = self.enqueue_all(vec![submission]).await?;
        Ok(enqueued.pop().expect("one submission, one answer"))
    }

    /// Queues several submissions atomically: all of them durably, or
    /// none (a message personalized per recipient is one submission per
    /// recipient, and its sender gets one answer for all).
    pub async fn enqueue_all(
        &self,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Enqueued>, SpoolError> {
        if submissions.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Enqueue { submissions, reply })?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Takes up to `limit` messages that are due (`next_attempt_at_ms <=
    /// now_ms`) and not already leased, and marks them leased.
    ///
    /// Fairness: every workspace has its own due lane, ordered by due time.
    /// Messages are taken round-robin across the lanes with something due,
    /// one per lane in turn (oldest due first within a lane), and the
    /// rotation continues across calls: a call starts with the lane after
    /// the one that got the previous call's last message. So a workspace
    /// with one due message gets it leased in the next call even while
    /// another has 100,000 due, and `limit` is shared evenly among the
    /// workspaces that have due mail. Lanes known to have nothing due yet
    /// are skipped without touching the disk.
    ///
    /// The lease lives in memory only. This is deliberate: after a restart
    /// no one is working on those messages, so they must be leasable again
    /// without any recovery step. Each lease must end in exactly one of
    /// [`settle`](Self::settle) or [`release`](Self::release).
    /// Sets which workspaces may not send now: their mail stays queued and
    /// due, untouched, and is leased again as soon as `held` says no (a
    /// suspended account sends nothing, not even what it queued before).
    /// The check is per lane, so a held workspace costs the others
    /// nothing.
    pub fn hold_lanes(&self, held: HeldLanes) {
        *lock(&self.inner.held) = Some(held);
    }

    pub fn lease(&self, now_ms: i64, limit: usize) -> Result<Vec<MessageRecord>, SpoolError> {
        self.lease_where(now_ms, limit, |_| true)
    }

    /// [`lease`](Self::lease), taking only the due messages `admit`
    /// accepts: the delivery engine refuses those whose destination already
    /// holds its share of leases or is paused. A refused message stays due,
    /// untouched (nothing is written), and is offered again by later calls.
    ///
    /// A lane's cursor never passes a refused message, so later calls read
    /// it again: to bound that work, a lane stops for the call after
    /// [`REFUSALS_PER_LANE`] refusals. Messages of that workspace behind
    /// them wait until their turn comes (the refused destination drains).
    pub fn lease_where(
        &self,
        now_ms: i64,
        limit: usize,
        mut admit: impl FnMut(&MessageRecord) -> bool,
    ) -> Result<Vec<MessageRecord>, SpoolError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let tree = &self.inner.tree;
        let shared = &self.inner.shared;
        // Held for the whole scan so two concurrent callers never lease the
        // same message.
        let mut leased = lock(&shared.leased);
        let mut last_lane = lock(&self.inner.last_lane);
        let held = lock(&self.inner.held).clone();
        let open = |ws: &str| held.as_ref().is_none_or(|h| !h(ws));

        // Snapshot of the lanes that may have something due, in workspace
        // order rotated to start after the last lane served.
        let mut lanes: Vec<LaneScan> = {
            let mut table = lock(&shared.lanes);
            table.begin_lease();
            table
                .map
                .iter()
                .filter(|(ws, lane)| lane.next_due_hint <= now_ms && open(ws))
                .map(|(ws, lane)| LaneScan {
                    ws: ws.clone(),
                    version: lane.version,
                    start_after: lane.leased_through.clone(),
                    iter: None,
                    // Keys behind the cursor are due (and leased).
                    saw_due: lane.leased_through.is_some(),
                    last_key: None,
                    refused: 0,
                })
                .collect()
        };
        if let Some(last) = last_lane.as_deref() {
            let start = lanes.partition_point(|l| l.ws.as_str() <= last);
            lanes.rotate_left(start);
        }
        let mut queue: VecDeque<usize> = (0..lanes.len()).collect();

        let result = (|| {
            while out.len() < limit {
                let Some(i) = queue.pop_front() else {
                    break;
                };
                let lane = &mut lanes[i];
                match next_due_in_lane(tree, lane, now_ms, &leased, &mut admit)? {
                    Some(rec) => {
                        leased.insert(rec.id.clone());
                        out.push(rec);
                        queue.push_back(i);
                    }
                    None if !lane.saw_due => {
                        // Nothing due at all: remember when the lane's earliest
                        // entry becomes due, so later calls skip it until then.
                        let upper = keys::due_upper_bound(&lane.ws, now_ms);
                        let next = match tree.range(upper..keys::due_lane_end(&lane.ws)).next() {
                            Some(item) => keys::due_time_of(&item?.0).unwrap_or(i64::MIN),
                            None => i64::MAX,
                        };
                        lock(&shared.lanes).raise_hint(&lane.ws, lane.version, next);
                    }
                    None => {}
                }
            }
            Ok::<_, SpoolError>(())
        })();
        if let Err(e) = result {
            // Nobody gets the messages leased so far: hand them back, and
            // leave the cursors where they were (they are behind none of
            // these messages, since every scan started after its cursor).
            for rec in &out {
                leased.remove(&rec.id);
            }
            return Err(e);
        }
        // Everything up to the last key each scan decided on is leased now
        // (or unleasable): the next call can start after it.
        {
            let mut table = lock(&shared.lanes);
            for lane in lanes {
                if let Some(key) = lane.last_key {
                    table.advance_cursor(&lane.ws, key.to_vec());
                }
            }
        }
        // The lane served last is now at the back of the queue (a lane is
        // requeued right after it yields a message).
        if let Some(rec) = out.last() {
            *last_lane = Some(rec.workspace_id.clone());
        }
        Ok(out)
    }

    /// Gives a lease back unchanged (e.g. the delivery engine is shutting
    /// down before trying it). The message is immediately leasable again.
    pub fn release(&self, id: &str) {
        let mut leased = lock(&self.inner.shared.leased);
        if leased.remove(id) {
            // It may sit behind a lane's lease cursor.
            lock(&self.inner.shared.lanes).clear_cursors();
        }
    }

    /// Whether `id` is currently leased.
    pub fn is_leased(&self, id: &str) -> bool {
        lock(&self.inner.shared.leased).contains(id)
    }

    /// Number of currently leased messages (in-flight deliveries).
    pub fn leased_count(&self) -> usize {
        lock(&self.inner.shared.leased).len()
    }

    /// Settles a leased message as its attempt's outcome says, and records
    /// the attempt: `Delivered` or `Bounced` (final: out of the due index,
    /// the body freed after the submission's last pending message) or
    /// `Deferred` (due again at its `next_retry_at`; the retry schedule is
    /// the caller's policy, the spool stores the decision). Returns the
    /// updated record once durable; the lease is cleared.
    ///
    /// Fails with [`SpoolError::NotLeased`] if `id` is not leased, and with
    /// [`SpoolError::Invalid`] if the outcome is not a settlement.
    pub async fn settle(
        &self,
        id: &str,
        attempt: DeliveryAttempt,
    ) -> Result<MessageRecord, SpoolError> {
        // Fast path; the writer checks again authoritatively.
        if !self.is_leased(id) {
            return Err(SpoolError::NotLeased(id.to_string()));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Settle {
            id: id.to_string(),
            attempt,
            reply,
        })?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Records what the receiving side reported about a delivered message
    /// later (see [`LateReport`]): a history entry, with its feed entry,
    /// and for a bounce the new status. Returns the updated record once
    /// durable.
    ///
    /// Fails with [`SpoolError::NotFound`] for an unknown id and with
    /// [`SpoolError::Invalid`] unless the message is delivered (a bounced
    /// message takes no second bounce) and the outcome is a bounce or a
    /// deferral.
    pub async fn report(&self, id: &str, report: LateReport) -> Result<MessageRecord, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Report {
            id: id.to_string(),
            report,
            reply,
        })?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Reads one message record.
    pub fn get(&self, id: &str) -> Result<Option<MessageRecord>, SpoolError> {
        let key = keys::record(id);
        self.inner
            .tree
            .get(&key)?
            .map(|raw| decode_record(&key, &raw))
            .transpose()
    }

    /// One message record with its JSON as stored (what a copy of the
    /// record elsewhere keeps without encoding it again; a record of an
    /// older stored shape comes encoded afresh).
    pub fn get_with_json(&self, id: &str) -> Result<Option<(MessageRecord, String)>, SpoolError> {
        let key = keys::record(id);
        let Some(raw) = self.inner.tree.get(&key)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<MessageRecord>(&raw) {
            Ok(record) => Ok(Some((record, String::from_utf8_lossy(&raw).into_owned()))),
            Err(e) => {
                let record = decode_legacy_record(&key, &raw, e)?;
                let json = serde_json::to_string(&record).expect("records serialize");
                Ok(Some((record, json)))
            }
        }
    }

    /// The stored message of a submission; `None` once all its messages are
    /// final (the body is freed then) or if the queue id is unknown.
    pub fn body(&self, queue_id: &str) -> Result<Option<Vec<u8>>, SpoolError> {
        let Some(raw) = self.inner.tree.get(keys::body(queue_id))? else {
            return Ok(None);
        };
        match bodies::BodyRef::decode(&raw) {
            Some(r) => match self.inner.bodies.read(r) {
                Ok(body) => Ok(Some(body)),
                // The last message became final meanwhile and its segment
                // was deleted: the body is gone, as asked.
                Err(SpoolError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && self.inner.tree.get(keys::body(queue_id))?.is_none() =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            // Stored inline by an earlier version.
            None => Ok(Some(raw.to_vec())),
        }
    }

    /// Message ids of one submission, in recipient order.
    pub fn by_queue_id(&self, queue_id: &str) -> Result<Vec<String>, SpoolError> {
        if !is_queue_id(queue_id) {
            return Ok(Vec::new());
        }
        let mut ids = Vec::new();
        for item in self.inner.tree.scan_prefix(keys::queue_prefix(queue_id)) {
            let (key, _) = item?;
            if let Some(id) = keys::trailing_msg_id(&key) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// Lists a workspace's messages newest first, optionally only those to
    /// one recipient (case-insensitive) and/or in one status.
    ///
    /// Pagination is by opaque cursor (a position in the index), so pages
    /// stay stable while new mail arrives and cost does not grow with the
    /// page number. The recipient filter uses its own index; the status
    /// filter is applied while scanning, and at most [`LIST_SCAN_BUDGET`]
    /// entries are examined per call, so a page may come back short (even
    /// empty) with a `next_cursor` to continue.
    pub fn list(
        &self,
        filter: &ListFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, SpoolError> {
        self.list_scanning(filter, cursor, limit, LIST_SCAN_BUDGET)
    }

    /// [`list`](Self::list), examining at most `budget` index entries
    /// (a page that must answer fast takes a smaller stretch at a time).
    pub fn list_scanning(
        &self,
        filter: &ListFilter,
        cursor: Option<&str>,
        limit: usize,
        budget: usize,
    ) -> Result<Page, SpoolError> {
        let ws = &filter.workspace_id;
        if ws.is_empty() || ws.contains('\0') {
            return Err(SpoolError::Invalid(
                "list needs a workspace id without NUL bytes".into(),
            ));
        }
        let prefix = match &filter.to {
            Some(to) if to.contains('\0') => {
                return Err(SpoolError::Invalid("recipient contains a NUL byte".into()))
            }
            Some(to) => keys::recipient_prefix(ws, &to.to_lowercase()),
            None => keys::workspace_prefix(ws),
        };
        let limit = limit.max(1);
        // The index suffix starts with the creation time: a time window is
        // a key range.
        let start = match filter.since_ms {
            Some(since) => keys::cat(&[&prefix, &keys::time_key(since)]),
            None => prefix.clone(),
        };
        let end = match cursor {
            Some(c) => {
                let suffix = keys::from_hex(c)
                    .filter(|s| s.len() == 8 + keys::MSG_ID_LEN)
                    .ok_or_else(|| SpoolError::Invalid(format!("malformed cursor {c:?}")))?;
                let mut end = prefix.clone();
                end.extend_from_slice(&suffix);
                end
            }
            // The prefix ends with NUL, so bumping that byte gives the first
            // key past every key with this prefix.
            None => {
                let mut end = prefix.clone();
                *end.last_mut().expect("prefix is not empty") += 1;
                end
            }
        };

        let end = match filter.until_ms {
            Some(until) => end.min(keys::cat(&[&prefix, &keys::time_key(until)])),
            None => end,
        };
        if start >= end {
            return Ok(Page {
                messages: Vec::new(),
                next_cursor: None,
            });
        }

        let tree = &self.inner.tree;
        let filtering = filter.status.is_some() || filter.from.is_some() || filter.tag.is_some();
        let mut messages = Vec::new();
        let mut next_cursor = None;
        let mut last_suffix: Option<Vec<u8>> = None;
        for (scanned, item) in tree.range(start..end).rev().enumerate() {
            let (key, _) = item?;
            if messages.len() >= limit || scanned >= budget.max(1) {
                // More entries exist; continue after the last one examined.
                next_cursor = last_suffix.as_deref().map(keys::to_hex);
                break;
            }
            last_suffix = Some(key[prefix.len()..].to_vec());
            let Some(id) = keys::trailing_msg_id(&key) else {
                continue;
            };
            let rkey = keys::record(id);
            let Some(raw) = tree.get(&rkey)? else {
                warn!(message_id = id, "listing index points at missing record");
                continue;
            };
            // A filter that matches rarely reads many records: it looks at
            // their three fields first (no history, no attempts decoded,
            // nothing allocated but what it compares), and decodes only
            // the records it keeps. A record of an older shape is decided
            // on in full.
            if filtering {
                if let Ok(f) = serde_json::from_slice::<FilterFields<'_>>(&raw) {
                    if !filter.admits(f.status, &f.from, &f.tags) {
                        continue;
                    }
                }
            }
            let rec = decode_record(&rkey, &raw)?;
            if !filter.admits(rec.status, &rec.from, &rec.tags) {
                continue;
            }
            messages.push(rec);
        }
        Ok(Page {
            messages,
            next_cursor,
        })
    }

    /// Number of entries in the due index, i.e. pending (queued + deferred)
    /// messages whether due now or later, leased ones included. Served from
    /// the in-memory lane table (one entry per workspace); always equals
    /// `counts().pending()`.
    pub fn due_count(&self) -> u64 {
        lock(&self.inner.shared.lanes).total()
    }

    /// How many messages of `workspace` are pending (its due lane), from
    /// memory.
    pub fn due_count_of(&self, workspace: &str) -> u64 {
        lock(&self.inner.shared.lanes)
            .map
            .get(workspace)
            .map_or(0, |lane| lane.count)
    }

    /// The workspaces with pending mail and how many pending messages each
    /// has (their due lanes), in workspace id order. One entry per
    /// workspace; for metrics and diagnostics.
    pub fn due_lanes(&self) -> Vec<(String, u64)> {
        lock(&self.inner.shared.lanes)
            .map
            .iter()
            .map(|(ws, lane)| (ws.clone(), lane.count))
            .collect()
    }

    /// Exact number of messages per status. Served from memory: the writer
    /// keeps this mirror in step with the durable counters it commits.
    pub fn counts(&self) -> StatusCounts {
        *lock(&self.inner.shared.counts)
    }

    /// Recipients accepted for `submitter` on UTC day `day` (days since the
    /// Unix epoch, i.e. `received_at_ms.div_euclid(86_400_000)`), e.g. for
    /// daily sending limits. Maintained in the enqueue's own commit, so it
    /// survives restarts and always agrees with what was queued.
    pub fn accepted_on_day(&self, submitter: &str, day: i64) -> Result<u64, SpoolError> {
        let key = keys::accepted(submitter, day);
        match self.inner.tree.get(&key)? {
            Some(raw) => decode_counter(&key, &raw),
            None => Ok(0),
        }
    }

    /// Write-path statistics since [`open`](Self::open), e.g. for flushes
    /// per message and flush latency metrics.
    pub fn stats(&self) -> SpoolStats {
        let s = &self.inner.shared;
        SpoolStats {
            flushes: s.flushes.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            records_enqueued: s.records_enqueued.load(Ordering::Relaxed),
            submissions: s.submissions.load(Ordering::Relaxed),
            settlements: s.settlements.load(Ordering::Relaxed),
            records_pruned: s.records_pruned.load(Ordering::Relaxed),
            last_flush_nanos: s.last_flush_nanos.load(Ordering::Relaxed),
            total_flush_nanos: s.total_flush_nanos.load(Ordering::Relaxed),
        }
    }

    /// Up to `limit` change-feed entries with `seq > after_seq`, in seq
    /// order (`after_seq` 0 = from the oldest entry not trimmed yet). Only
    /// durable entries are returned (seq <= [`last_feed_seq`]
    /// (Self::last_feed_seq)); an empty result means the consumer is caught
    /// up and should wait on [`feed_notify`](Self::feed_notify). Seqs are
    /// contiguous except where entries were trimmed.
    ///
    /// An entry that cannot be decoded comes back as an
    /// [`UnreadableEntry`] in its place, so the consumer can report it and
    /// go on: one damaged entry never stops the feed, and is never skipped
    /// without a word.
    pub fn feed(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Result<FeedEntry, UnreadableEntry>>, SpoolError> {
        let durable = self.last_feed_seq();
        let mut out = Vec::new();
        // Entries are stored in pages (see `feed_pages`): start at the page
        // holding the first wanted seq, which may begin before it.
        let after = after_seq.max(self.inner.shared.feed_trimmed.load(Ordering::Acquire));
        if limit == 0 || after >= durable {
            return Ok(out);
        }
        let wanted = keys::feed(after + 1);
        let tree = &self.inner.tree;
        let start = match tree.range(keys::FEED.to_vec()..=wanted.clone()).next_back() {
            Some(item) => item?.0.to_vec(),
            None => wanted,
        };
        for item in tree.range(start..=keys::feed(durable)) {
            let (key, raw) = item?;
            let first = keys::feed_seq_of(&key).unwrap_or(0);
            let entries = match feed_pages::entries(&raw) {
                Ok(entries) => entries,
                Err(reason) => {
                    if first > after {
                        out.push(Err(UnreadableEntry {
                            seq: first,
                            reason: format!("feed page {first}: {reason}"),
                        }));
                    }
                    if out.len() == limit {
                        break;
                    }
                    continue;
                }
            };
            for (seq, json) in (first..).zip(entries) {
                if seq <= after || seq > durable {
                    continue;
                }
                out.push(decode_feed(seq, json).map_err(|e| UnreadableEntry {
                    seq,
                    reason: e.to_string(),
                }));
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Deletes the feed entries with `seq <= up_to_seq` (the consumer has
    /// published them). Clamped to [`last_feed_seq`](Self::last_feed_seq),
    /// so entries the consumer cannot have seen are never deleted. Seqs are
    /// not reused afterwards, even if everything was trimmed.
    ///
    /// Goes through the writer (in chunks, so a large trim never becomes one
    /// huge batch) and is visible once this returns, but it is NOT fsynced
    /// on its own: a group holding only trims is applied without a flush,
    /// and the deletions become durable with the next group commit (any
    /// enqueue or settlement) or a clean shutdown (the index syncs its
    /// journal when closed). After a crash
    /// some trimmed entries may therefore reappear; they are below the
    /// consumer's stored cursor, so it skips them and trims them again.
    pub async fn trim_feed(&self, up_to_seq: u64) -> Result<(), SpoolError> {
        loop {
            let (reply, rx) = oneshot::channel();
            self.send(Request::TrimFeed { up_to_seq, reply })?;
            let more = rx.await.map_err(|_| SpoolError::Closed)??;
            if !more {
                return Ok(());
            }
        }
    }

    /// Notified after every commit that added feed entries, once they are
    /// durable (after the fsync). Both `notify_waiters` (every task waiting
    /// now) and `notify_one` (a stored permit, so a consumer that was not
    /// waiting at that moment still wakes on its next `notified().await`)
    /// are used. A wake-up can be spurious or cover several commits: always
    /// re-read with [`feed`](Self::feed) from the stored cursor.
    pub fn feed_notify(&self) -> Arc<tokio::sync::Notify> {
        self.inner.shared.feed_notify.clone()
    }

    /// The highest durable feed seq issued so far (0 if none ever was),
    /// i.e. the last seq [`feed`](Self::feed) can return. It never goes
    /// down, not even when everything is trimmed or the spool is reopened.
    pub fn last_feed_seq(&self) -> u64 {
        self.inner.shared.feed_durable.load(Ordering::Acquire)
    }

    /// Deletes up to `limit` finished messages that finished before
    /// `cutoff_ms`: each record with its listing, recipient and submission
    /// index entries and its retention entry, its status counter going
    /// down by one; and the daily accepted counters of days before the
    /// cutoff's. Returns how many records went and whether more are due.
    ///
    /// Reads outside the writer (so acceptance and delivery never wait for
    /// the reading) and sends the deletions as one request, checked again
    /// there. Not fsynced on its own: see the crate docs, "Retention".
    pub async fn prune_finished(
        &self,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<(u64, bool), SpoolError> {
        let tree = &self.inner.tree;
        let mut items = Vec::new();
        let end = keys::finished_before(cutoff_ms);
        let mut more = false;
        for item in tree.range(keys::FINISHED.to_vec()..end) {
            let (key, _) = item?;
            if items.len() >= limit.max(1) {
                more = true;
                break;
            }
            let Some(id) = keys::trailing_msg_id(&key).map(str::to_string) else {
                items.push(PruneItem::Forget(key.to_vec()));
                continue;
            };
            let rkey = keys::record(&id);
            let Some(raw) = tree.get(&rkey)? else {
                items.push(PruneItem::Forget(key.to_vec()));
                continue;
            };
            let rec = decode_record(&rkey, &raw)?;
            if !rec.status.is_final() {
                // Cannot happen (a record is final once); keep the record.
                warn!(message_id = %id, "retention index names a pending message");
                items.push(PruneItem::Forget(key.to_vec()));
                continue;
            }
            let suffix = keys::listing_suffix(rec.created_at_ms, &id);
            let mut by_ws = keys::workspace_prefix(&rec.workspace_id);
            by_ws.extend_from_slice(&suffix);
            let mut by_rcpt = keys::recipient_prefix(&rec.workspace_id, &rec.to.to_lowercase());
            by_rcpt.extend_from_slice(&suffix);
            let mut names = vec![key.to_vec(), by_ws, by_rcpt];
            for member in tree.scan_prefix(keys::queue_prefix(&rec.queue_id)) {
                let (mkey, _) = member?;
                if keys::trailing_msg_id(&mkey) == Some(id.as_str()) {
                    names.push(mkey.to_vec());
                }
            }
            items.push(PruneItem::Message {
                id,
                status: rec.status,
                keys: names,
            });
        }
        // Daily counters only matter for today's quota.
        let cutoff_day = utc_day(cutoff_ms);
        for item in tree.scan_prefix(keys::ACCEPTED) {
            let (key, _) = item?;
            if keys::accepted_day_of(&key).is_some_and(|day| day < cutoff_day) {
                items.push(PruneItem::Forget(key.to_vec()));
            }
        }
        if items.is_empty() {
            return Ok((0, false));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Prune { items, reply })?;
        let removed = rx.await.map_err(|_| SpoolError::Closed)??;
        self.inner
            .shared
            .records_pruned
            .fetch_add(removed, Ordering::Relaxed);
        Ok((removed, more))
    }

    /// Adds up to `limit` records finished before the retention index
    /// existed to it (by their last history entry's time); returns whether
    /// more remain. Once the walk is through, a durable marker makes every
    /// later call (and reopen) return `false` at once.
    pub async fn index_finished(&self, limit: usize) -> Result<bool, SpoolError> {
        let tree = &self.inner.tree;
        if tree.get(keys::FINISHED_INDEXED)?.is_some() {
            return Ok(false);
        }
        let start = lock(&self.inner.index_cursor)
            .clone()
            .unwrap_or_else(|| keys::RECORD.to_vec());
        let mut end = keys::RECORD.to_vec();
        *end.last_mut().expect("prefix is not empty") += 1;
        let mut items = Vec::new();
        let mut last = None;
        let mut seen = 0;
        for item in tree.range(start..end) {
            let (key, raw) = item?;
            if seen >= limit.max(1) {
                break;
            }
            seen += 1;
            last = Some(key.to_vec());
            let rec = decode_record(&key, &raw)?;
            if rec.status.is_final() {
                let at = rec.history.last().map_or(rec.created_at_ms, |h| h.at_ms);
                items.push(PruneItem::Index(keys::finished(at, &rec.id)));
            }
        }
        let done = seen < limit.max(1);
        if done {
            items.push(PruneItem::Index(keys::FINISHED_INDEXED.to_vec()));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Prune { items, reply })?;
        rx.await.map_err(|_| SpoolError::Closed)??;
        *lock(&self.inner.index_cursor) = last.map(|k| [k.as_slice(), &[0]].concat());
        Ok(!done)
    }

    /// The stored keys themselves, for tests of what the spool does with
    /// damaged or earlier versions' data.
    #[doc(hidden)]
    pub fn raw(&self) -> index::RawIndex {
        index::RawIndex(self.inner.tree.clone())
    }

    /// The ids currently leased (diagnostics).
    pub fn leased_ids(&self) -> HashSet<String> {
        lock(&self.inner.shared.leased).clone()
    }
}

/// Progress of one `lease` call through one workspace's lane.
struct LaneScan {
    ws: String,
    /// The lane's version when the call took its snapshot.
    version: u64,
    /// The lane's lease cursor at the snapshot: the scan starts after it.
    start_after: Option<Vec<u8>>,
    /// Opened on first use: the lane's keys due at `now_ms`, in order.
    iter: Option<index::Iter>,
    /// Whether any due key (leased or not) was seen in the lane.
    saw_due: bool,
    /// The last key the scan passed (leased, or not leasable at all) with
    /// no refused message before it: where the lane's cursor may move.
    last_key: Option<fjall::Slice>,
    /// Messages `admit` refused in this call.
    refused: usize,
}

/// Raises the process's id floor above the newest queue and message id
/// stored (the last key of the records and of the submissions, ids being
/// fixed-length hex), so the writer need not look every fresh id up in
/// the tree: ids drawn from now on are newer than anything stored and
/// never repeat in this process (see `rackwave_core::ids`). `false` when
/// a stored id is not one of ours: then the writer checks every id.
fn ids_follow_stored(tree: &index::Index) -> Result<bool, SpoolError> {
    let mut newest = 0;
    // Record keys end with the message id; submission keys continue after
    // the queue id (`iq/<queueid>/...`); body keys end with it.
    for (prefix, id_len) in [
        (keys::RECORD, None),
        (keys::BY_QUEUE, Some(ids::QUEUE_ID_LEN)),
        (keys::BODY, None),
    ] {
        let Some((key, _)) = tree.scan_prefix(prefix).next_back().transpose()? else {
            continue;
        };
        let rest = &key[prefix.len()..];
        let id = match id_len {
            Some(n) => rest.get(..n),
            None => Some(rest),
        };
        match id
            .and_then(|id| std::str::from_utf8(id).ok())
            .and_then(ids::value_of)
        {
            Some(v) => newest = newest.max(v),
            None => return Ok(false),
        }
    }
    Ok(rackwave_core::time_ordered_ids_after(newest))
}

/// Refused messages after which a lane stops for the rest of a lease call
/// (see [`Spool::lease_where`]).
pub const REFUSALS_PER_LANE: usize = 512;

/// The next leasable due message of a lane that `admit` accepts,
/// advancing its iterator.
fn next_due_in_lane(
    tree: &index::Index,
    lane: &mut LaneScan,
    now_ms: i64,
    leased: &HashSet<String>,
    admit: &mut impl FnMut(&MessageRecord) -> bool,
) -> Result<Option<MessageRecord>, SpoolError> {
    let iter = lane.iter.get_or_insert_with(|| {
        let start = match &lane.start_after {
            // The smallest key after the cursor.
            Some(cursor) => [cursor.as_slice(), &[0]].concat(),
            None => keys::due_lane(&lane.ws),
        };
        tree.range(start..keys::due_upper_bound(&lane.ws, now_ms))
    });
    // A failed read ends the call with an error, and then no cursor moves
    // (see `lease`), so `last_key` may be set before the key is decided.
    for item in iter.by_ref() {
        let (key, _) = item?;
        lane.saw_due = true;
        // Once a message was refused, the cursor stays before it.
        let passed = lane.refused == 0;
        let before = if passed {
            lane.last_key.replace(key.clone())
        } else {
            None
        };
        let Some(id) = keys::trailing_msg_id(&key) else {
            warn!(key = %String::from_utf8_lossy(&key), "malformed due index key");
            continue;
        };
        if leased.contains(id) {
            continue;
        }
        let rkey = keys::record(id);
        let Some(raw) = tree.get(&rkey)? else {
            warn!(message_id = id, "due index points at missing record");
            continue;
        };
        let rec = decode_record(&rkey, &raw)?;
        if rec.status.is_final() {
            warn!(message_id = id, "due index points at final record");
            continue;
        }
        if !admit(&rec) {
            if passed {
                // Not passed after all: the cursor stays before it.
                lane.last_key = before;
            }
            lane.refused += 1;
            if lane.refused >= REFUSALS_PER_LANE {
                return Ok(None);
            }
            continue;
        }
        return Ok(Some(rec));
    }
    Ok(None)
}

/// The UTC day (days since the Unix epoch) of a millisecond timestamp, as
/// used by [`Spool::accepted_on_day`].
pub fn utc_day(ms: i64) -> i64 {
    ms.div_euclid(writer::DAY_MS)
}
