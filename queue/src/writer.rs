//! The single writer thread and its group commit.
//!
//! Why one thread: every mutation of the spool is a read-modify-write
//! (counters, a record's history, the remaining-recipients count of a body).
//! Funnelling all of them through one thread makes those updates race-free
//! without locks, keeps the durable counters exact, and — most importantly —
//! lets one `fsync` cover many callers: the thread blocks for the first
//! request, drains whatever else queued up meanwhile (at most `max_batch`),
//! applies everything as ONE atomic `Tree::apply_batch`, flushes ONCE and
//! then answers every waiter. While a flush is in progress new requests pile
//! up in the channel and form the next group, so under load the number of
//! fsyncs per message drops without adding any artificial delay.
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
//! [`Staged::history`], which also stages a `f/<seq>` feed entry, so the
//! two always land in the same batch. Seqs are allocated at staging time
//! from the group's base (`feed_applied + 1`) plus the entries staged before
//! in the group; a failed request drops its writes, so its seqs are reused
//! by the next request and the feed stays contiguous. After the apply
//! `feed_applied` moves forward, and only after a successful flush does
//! `feed_durable` (what `Spool::feed` exposes) catch up and the feed's
//! `Notify` fire. Trims of the feed are writer requests like the others but
//! a group made only of trims is applied without a flush (see
//! `Spool::trim_feed`).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{oneshot, Notify};
use tracing::{debug, error, warn};

use crate::bodies::{BodyRef, BodyWriter};
use crate::error::SpoolError;
use crate::ids;
use crate::keys;
use crate::record::{
    DeliveryAttempt, Enqueued, FeedEntry, MessageRecord, Status, StatusChange, StatusCounts,
    Submission, SENT_EVENT,
};

/// Milliseconds per UTC day, for the per-submitter daily counter.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Maximum number of feed entries one trim request deletes; `trim_feed`
/// repeats the request until it reports nothing left, so a large trim never
/// becomes one huge batch.
pub(crate) const FEED_TRIM_CHUNK: usize = 4096;

/// A group commit taking longer than this is logged with its breakdown at
/// debug level (on a spinning disk two fsyncs alone take about this long)...
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(20);
/// ...and longer than this as a warning: every SMTP client of the group
/// waited that long for its 250.
const VERY_SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// How a leased message is settled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Delivered,
    Deferred { retry_at_ms: i64 },
    Bounced,
}

impl Outcome {
    fn status(self) -> Status {
        match self {
            Outcome::Delivered => Status::Delivered,
            Outcome::Deferred { .. } => Status::Deferred,
            Outcome::Bounced => Status::Bounced,
        }
    }
}

/// A mutation request plus the channel on which its caller awaits the
/// (durable) result.
pub(crate) enum Request {
    Enqueue {
        submission: Submission,
        reply: oneshot::Sender<Result<Enqueued, SpoolError>>,
    },
    Settle {
        id: String,
        outcome: Outcome,
        attempt: DeliveryAttempt,
        reply: oneshot::Sender<Result<MessageRecord, SpoolError>>,
    },
    Postpone {
        id: String,
        until_ms: i64,
        reply: oneshot::Sender<Result<(), SpoolError>>,
    },
    /// Deletes up to [`FEED_TRIM_CHUNK`] feed entries with seq <=
    /// `up_to_seq` (clamped to the durable high-water mark); answers
    /// whether more such entries remain.
    TrimFeed {
        up_to_seq: u64,
        reply: oneshot::Sender<Result<bool, SpoolError>>,
    },
}

/// In-memory view of one workspace's due lane.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    /// Entries in the lane (mirror of the durable `l/<ws>` counter).
    pub count: u64,
    /// A lower bound of the earliest due time in the lane: `lease` skips
    /// the lane without touching sled while `now < next_due_hint`. The
    /// writer lowers it whenever it adds an entry; `lease` raises it after
    /// finding nothing due (see [`Lanes::raise_hint`]). `i64::MIN` means
    /// unknown (always scan).
    pub next_due_hint: i64,
    /// Changes whenever the writer commits a change to the lane (in
    /// particular every added entry); values are unique across lanes and
    /// lane re-creations, so a lease can tell whether the lane changed
    /// since its snapshot.
    pub version: u64,
    /// Lease cursor: every due-index key of the lane up to and including
    /// this one is leased (or unleasable), so `lease` resumes after it
    /// instead of stepping over thousands of leased keys from the front of
    /// the lane on every call. Cleared whenever that stops being true: an
    /// entry added at or before it, a release, a failed commit.
    pub leased_through: Option<Vec<u8>>,
    /// Earliest due time added to the lane since the current (or last)
    /// `lease` call began; `lease` only sets a cursor that lies before it,
    /// so an entry added while it was scanning is never skipped.
    pub min_added_since_lease: i64,
}

impl Lane {
    /// Clears the lease cursor if an entry due at `t` may lie at or before
    /// it (and so is not leased, as the cursor claims).
    fn forget_cursor_from(&mut self, t: i64) {
        let behind = self
            .leased_through
            .as_deref()
            .and_then(keys::due_time_of)
            .is_none_or(|due| t <= due);
        if behind {
            self.leased_through = None;
        }
    }
}

/// The lane table: one entry per workspace with pending mail, nothing per
/// message.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    pub map: BTreeMap<String, Lane>,
    next_version: u64,
}

impl Lanes {
    /// Builds the table from the durable lane counters read at open. Hints
    /// are unknown, so the first lease scans every lane once.
    pub fn from_counts(counts: impl IntoIterator<Item = (String, u64)>) -> Lanes {
        let mut lanes = Lanes::default();
        for (ws, count) in counts {
            if count > 0 {
                let version = lanes.bump();
                lanes.map.insert(
                    ws,
                    Lane {
                        count,
                        next_due_hint: i64::MIN,
                        version,
                        leased_through: None,
                        min_added_since_lease: i64::MIN,
                    },
                );
            }
        }
        lanes
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// Records a committed change of a lane: its new durable count and the
    /// earliest due time added to it, if any. Must run after the change is
    /// applied to the tree (so a lease that misses the new entries sees the
    /// version change and does not raise the hint past them).
    fn apply(&mut self, ws: &str, change: LaneChange) {
        if change.count == 0 {
            self.map.remove(ws);
            return;
        }
        // Any change gets a new version; only additions need one, but a
        // spurious change merely makes a concurrent hint raise give up.
        let version = self.bump();
        match self.map.get_mut(ws) {
            Some(lane) => {
                lane.count = change.count;
                lane.version = version;
                if let Some(t) = change.min_added {
                    lane.next_due_hint = lane.next_due_hint.min(t);
                    lane.min_added_since_lease = lane.min_added_since_lease.min(t);
                    lane.forget_cursor_from(t);
                }
            }
            None => {
                self.map.insert(
                    ws.to_string(),
                    Lane {
                        count: change.count,
                        // A lane only appears through additions; `MIN`
                        // (scan) is the safe fallback.
                        next_due_hint: change.min_added.unwrap_or(i64::MIN),
                        version,
                        leased_through: None,
                        min_added_since_lease: change.min_added.unwrap_or(i64::MIN),
                    },
                );
            }
        }
    }

    /// Raises a lane's hint to `hint` after a scan found no entry due
    /// before it, unless the writer added entries since the scan's
    /// snapshot (`version` changed) or the lane is gone.
    pub fn raise_hint(&mut self, ws: &str, version: u64, hint: i64) {
        if let Some(lane) = self.map.get_mut(ws) {
            if lane.version == version && lane.next_due_hint < hint {
                lane.next_due_hint = hint;
            }
        }
    }

    /// A lease call begins: additions from now on are what it may have
    /// missed. (Lease calls are serialized by the leased-set lock.)
    pub fn begin_lease(&mut self) {
        for lane in self.map.values_mut() {
            lane.min_added_since_lease = i64::MAX;
        }
    }

    /// Moves a lane's lease cursor to `key` (the last due key a lease call
    /// examined, everything before it leased), unless an entry was added at
    /// or before `key`'s due time while the call was scanning: the scan may
    /// have passed its place without seeing it.
    pub fn advance_cursor(&mut self, ws: &str, key: Vec<u8>) {
        let Some(due) = keys::due_time_of(&key) else {
            return;
        };
        if let Some(lane) = self.map.get_mut(ws) {
            if lane.min_added_since_lease > due {
                lane.leased_through = Some(key);
            }
        }
    }

    /// The group that deferred or postponed messages has committed and
    /// their leases are about to end (the caller holds the leased lock, so
    /// no lease call runs in between). Their new entries were in the tree
    /// but still leased since the apply, so a lease call in that window
    /// stepped over them and may have moved a cursor past them: forget
    /// such cursors, or the entries would never be leased again.
    pub fn requeued_leases_end(&mut self, ws: &str, min_requeued: i64) {
        if let Some(lane) = self.map.get_mut(ws) {
            lane.forget_cursor_from(min_requeued);
        }
    }

    /// Forgets every lease cursor: some message before one may be leasable
    /// again (released, or its settlement failed to commit).
    pub fn clear_cursors(&mut self) {
        for lane in self.map.values_mut() {
            lane.leased_through = None;
        }
    }

    /// Total entries in the due index (queued + deferred messages).
    pub fn total(&self) -> u64 {
        self.map.values().map(|l| l.count).sum()
    }
}

/// A lane's state after a request (or group): the absolute durable count
/// and the earliest due time added.
#[derive(Debug, Clone, Copy)]
struct LaneChange {
    count: u64,
    min_added: Option<i64>,
    /// Earliest due time re-added for a message that is leased until the
    /// group commits (a deferral or postponement); see
    /// [`Lanes::requeued_leases_end`] for why it is tracked apart.
    min_requeued: Option<i64>,
}

impl LaneChange {
    fn merge(&mut self, later: LaneChange) {
        self.count = later.count;
        self.min_added = earliest(self.min_added, later.min_added);
        self.min_requeued = earliest(self.min_requeued, later.min_requeued);
    }
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whose due-index entry is added: a new message's, or one being settled
/// or postponed (still in the leased set until its group commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    New,
    Requeued,
}

fn merge_lanes(into: &mut BTreeMap<String, LaneChange>, from: BTreeMap<String, LaneChange>) {
    for (ws, change) in from {
        match into.get_mut(&ws) {
            Some(c) => c.merge(change),
            None => {
                into.insert(ws, change);
            }
        }
    }
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
    pub last_flush_nanos: AtomicU64,
    pub total_flush_nanos: AtomicU64,
    /// Highest feed seq applied to the tree (written by the writer only).
    /// The next group's entries start right after it.
    pub feed_applied: AtomicU64,
    /// Highest feed seq known to be fsynced: `Spool::feed` never returns
    /// entries past it. Set to `feed_applied` after every successful flush.
    pub feed_durable: AtomicU64,
    /// Fired after every flush that made new feed entries durable.
    pub feed_notify: Arc<Notify>,
}

impl Shared {
    /// `feed_seq` is the highest feed seq found on disk at open.
    pub fn new(counts: StatusCounts, lanes: Lanes, feed_seq: u64) -> Shared {
        Shared {
            leased: Mutex::new(HashSet::new()),
            counts: Mutex::new(counts),
            lanes: Mutex::new(lanes),
            feed_applied: AtomicU64::new(feed_seq),
            feed_durable: AtomicU64::new(feed_seq),
            feed_notify: Arc::new(Notify::new()),
            flushes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            records_enqueued: AtomicU64::new(0),
            submissions: AtomicU64::new(0),
            settlements: AtomicU64::new(0),
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

/// Decodes a stored record.
pub(crate) fn decode_record(key: &[u8], raw: &[u8]) -> Result<MessageRecord, SpoolError> {
    serde_json::from_slice(raw).map_err(|e| {
        SpoolError::encoding(
            format!("decoding record {}", String::from_utf8_lossy(key)),
            e,
        )
    })
}

/// Decodes a stored feed entry; the key is authoritative for `seq`.
pub(crate) fn decode_feed(key: &[u8], raw: &[u8]) -> Result<FeedEntry, SpoolError> {
    let seq = keys::feed_seq_of(key).ok_or_else(|| {
        SpoolError::Corrupt(format!(
            "feed key {} is malformed",
            String::from_utf8_lossy(key)
        ))
    })?;
    let mut entry: FeedEntry = serde_json::from_slice(raw)
        .map_err(|e| SpoolError::encoding(format!("decoding feed entry {seq}"), e))?;
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

/// Pending writes: `Some` = insert, `None` = remove. A BTreeMap so later
/// requests read earlier writes and prefix checks can use ranges.
type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Writes accumulated for the current group.
#[derive(Default)]
struct Group {
    writes: Writes,
    /// Net change of each status counter, indexed by `Status::index`.
    delta: [i64; 4],
    /// Ids settled or postponed in this group: a second settlement of the
    /// same lease in one group must fail, even though the lease is only
    /// cleared after the commit.
    settled: HashSet<String>,
    /// Lanes touched by the group.
    lanes: BTreeMap<String, LaneChange>,
    submissions: u64,
    records: u64,
    /// Settlements proper (postponements excluded), for the statistics.
    settlements: u64,
    /// Seq of the group's first feed entry.
    feed_base: u64,
    /// Feed entries staged by the group's successful requests.
    feed_count: u64,
    /// Whether the group holds anything that must be fsynced before the
    /// callers are answered (everything but feed trims).
    needs_flush: bool,
    /// Body segment taking this group's new bodies, and its length before
    /// them: a body's offset is known when its reference is staged.
    segment: u64,
    segment_base: u64,
    /// New bodies, in the order of their offsets.
    bodies: Vec<Vec<u8>>,
    body_bytes: u64,
    /// Segments whose last live body this group releases.
    emptied: Vec<u64>,
}

/// One request's writes, staged on top of the group and the tree.
struct Staged<'a> {
    tree: &'a sled::Tree,
    group: &'a Group,
    writes: Writes,
    delta: [i64; 4],
    lanes: BTreeMap<String, LaneChange>,
    /// Feed entries staged by this request.
    feed_count: u64,
    bodies: Vec<Vec<u8>>,
    body_bytes: u64,
    emptied: Vec<u64>,
}

impl<'a> Staged<'a> {
    fn new(tree: &'a sled::Tree, group: &'a Group) -> Self {
        Staged {
            tree,
            group,
            writes: BTreeMap::new(),
            delta: [0; 4],
            lanes: BTreeMap::new(),
            feed_count: 0,
            bodies: Vec::new(),
            body_bytes: 0,
            emptied: Vec::new(),
        }
    }

    /// Stages a new body: its reference (at the offset it will get when the
    /// group's bodies are appended) and its segment's live counter.
    fn put_body(&mut self, queue_id: &str, body: Vec<u8>) -> Result<(), SpoolError> {
        let len = u32::try_from(body.len())
            .map_err(|_| SpoolError::Invalid("message body exceeds 4 GiB".into()))?;
        let r = BodyRef {
            segment: self.group.segment,
            offset: self.group.segment_base + self.group.body_bytes + self.body_bytes,
            len,
            crc: crc32fast::hash(&body),
        };
        let ck = keys::segment_live(r.segment);
        let live = self.get_counter(&ck)?.unwrap_or(0) + 1;
        self.put(ck, keys::encode_u64(live).to_vec());
        self.put(keys::body(queue_id), r.encode());
        self.body_bytes += u64::from(len);
        self.bodies.push(body);
        Ok(())
    }

    /// Stages the removal of a body and the release of its segment.
    fn remove_body(&mut self, queue_id: &str) -> Result<(), SpoolError> {
        let key = keys::body(queue_id);
        // Bodies stored inline by earlier versions have no segment.
        if let Some(r) = self.get(&key)?.as_deref().and_then(BodyRef::decode) {
            let ck = keys::segment_live(r.segment);
            match self.get_counter(&ck)?.unwrap_or(0) {
                0 | 1 => {
                    self.remove(ck);
                    self.emptied.push(r.segment);
                }
                n => self.put(ck, keys::encode_u64(n - 1).to_vec()),
            }
        }
        self.remove(key);
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, SpoolError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.group.writes.get(key) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn exists(&self, key: &[u8]) -> Result<bool, SpoolError> {
        Ok(self.get(key)?.is_some())
    }

    /// Whether any key with this prefix exists (pending inserts or tree).
    /// Only used for never-deleted keys, so pending removals are ignored.
    fn any_with_prefix(&self, prefix: &[u8]) -> Result<bool, SpoolError> {
        let pending = |m: &Writes| {
            m.range(prefix.to_vec()..)
                .next()
                .is_some_and(|(k, v)| k.starts_with(prefix) && v.is_some())
        };
        if pending(&self.writes) || pending(&self.group.writes) {
            return Ok(true);
        }
        Ok(self.tree.scan_prefix(prefix).next().transpose()?.is_some())
    }

    fn get_counter(&self, key: &[u8]) -> Result<Option<u64>, SpoolError> {
        self.get(key)?
            .map(|raw| decode_counter(key, &raw))
            .transpose()
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    fn put_record(&mut self, rec: &MessageRecord) -> Result<(), SpoolError> {
        let raw = serde_json::to_vec(rec)
            .map_err(|e| SpoolError::encoding(format!("encoding record {}", rec.id), e))?;
        self.put(keys::record(&rec.id), raw);
        Ok(())
    }

    /// Appends a history entry to `rec` and stages its feed entry (the
    /// next seq) in the same writes. The ONLY way history is written, so
    /// every history entry has exactly one feed entry in the same batch.
    /// `attempt` is the settling attempt (`None` for `email.queued`);
    /// `settlement` says whether this is the settlement's own entry (which
    /// carries the attempt's detail and reply) rather than `email.sent`.
    fn history(
        &mut self,
        rec: &mut MessageRecord,
        change: StatusChange,
        attempt: Option<&DeliveryAttempt>,
        settlement: bool,
    ) -> Result<(), SpoolError> {
        let seq = self.group.feed_base + self.group.feed_count + self.feed_count;
        let (detail, reply) = match attempt {
            Some(a) if settlement => (a.detail.clone(), Some(a.reply.clone())),
            _ => (None, None),
        };
        let entry = FeedEntry {
            seq,
            message_id: rec.id.clone(),
            queue_id: rec.queue_id.clone(),
            workspace_id: rec.workspace_id.clone(),
            event: change.event.clone(),
            status: change.status,
            at_ms: change.at_ms,
            to: rec.to.clone(),
            from: rec.from.clone(),
            subject: rec.subject.clone(),
            attempt_number: if attempt.is_some() { rec.attempts } else { 0 },
            detail,
            reply,
        };
        let raw = serde_json::to_vec(&entry)
            .map_err(|e| SpoolError::encoding(format!("encoding feed entry {seq}"), e))?;
        self.put(keys::feed(seq), raw);
        self.feed_count += 1;
        rec.history.push(change);
        Ok(())
    }

    /// Adds a due-index entry to `ws`'s lane and counts it. The caller
    /// guarantees the entry does not exist yet (fresh id, or just removed).
    fn lane_add(
        &mut self,
        ws: &str,
        due_ms: i64,
        id: &str,
        entry: Entry,
    ) -> Result<(), SpoolError> {
        self.put(keys::due(ws, due_ms, id), Vec::new());
        self.bump_lane(ws, true, Some((due_ms, entry)))
    }

    /// Removes a due-index entry from `ws`'s lane, if it exists, and
    /// uncounts it.
    fn lane_remove(&mut self, ws: &str, due_ms: i64, id: &str) -> Result<(), SpoolError> {
        let key = keys::due(ws, due_ms, id);
        if !self.exists(&key)? {
            warn!(message_id = id, workspace = ws, "due index entry missing");
            return Ok(());
        }
        self.remove(key);
        self.bump_lane(ws, false, None)
    }

    fn bump_lane(
        &mut self,
        ws: &str,
        up: bool,
        added: Option<(i64, Entry)>,
    ) -> Result<(), SpoolError> {
        let key = keys::lane_count(ws);
        let cur = self.get_counter(&key)?.unwrap_or(0);
        let next = if up {
            cur.saturating_add(1)
        } else {
            cur.checked_sub(1).unwrap_or_else(|| {
                warn!(workspace = ws, "lane counter would go negative; clamping");
                0
            })
        };
        if next == 0 {
            self.remove(key);
        } else {
            self.put(key, keys::encode_u64(next).to_vec());
        }
        let mut change = LaneChange {
            count: next,
            min_added: added.map(|(due, _)| due),
            min_requeued: added.and_then(|(due, e)| (e == Entry::Requeued).then_some(due)),
        };
        if let Some(prev) = self.lanes.get(ws) {
            let mut merged = *prev;
            merged.merge(change);
            change = merged;
        }
        self.lanes.insert(ws.to_string(), change);
        Ok(())
    }

    /// The request succeeded: its changes, to be absorbed by the group.
    fn finish(self) -> Changes {
        Changes {
            writes: self.writes,
            delta: self.delta,
            lanes: self.lanes,
            feed_count: self.feed_count,
            bodies: self.bodies,
            body_bytes: self.body_bytes,
            emptied: self.emptied,
        }
    }
}

/// A successful request's changes (released from the borrow of the group).
struct Changes {
    writes: Writes,
    delta: [i64; 4],
    lanes: BTreeMap<String, LaneChange>,
    feed_count: u64,
    bodies: Vec<Vec<u8>>,
    body_bytes: u64,
    emptied: Vec<u64>,
}

impl Group {
    fn new(feed_base: u64, (segment, segment_base): (u64, u64)) -> Group {
        Group {
            feed_base,
            segment,
            segment_base,
            ..Group::default()
        }
    }

    /// Absorbs the changes of a successful request that must be durable
    /// before its caller is answered.
    fn absorb(&mut self, changes: Changes) {
        self.needs_flush = true;
        self.absorb_lazy(changes);
    }

    /// Absorbs changes that need no fsync of their own (feed trims).
    fn absorb_lazy(&mut self, changes: Changes) {
        self.feed_count += changes.feed_count;
        self.writes.extend(changes.writes);
        self.bodies.extend(changes.bodies);
        self.body_bytes += changes.body_bytes;
        self.emptied.extend(changes.emptied);
        for (g, d) in self.delta.iter_mut().zip(changes.delta) {
            *g += d;
        }
        merge_lanes(&mut self.lanes, changes.lanes);
    }
}

/// A staged request's outcome, held until the group is durable.
enum Done {
    Enqueue(
        oneshot::Sender<Result<Enqueued, SpoolError>>,
        Result<Enqueued, SpoolError>,
    ),
    Settle(
        oneshot::Sender<Result<MessageRecord, SpoolError>>,
        Result<MessageRecord, SpoolError>,
    ),
    Postpone(
        oneshot::Sender<Result<(), SpoolError>>,
        Result<(), SpoolError>,
    ),
    TrimFeed(
        oneshot::Sender<Result<bool, SpoolError>>,
        Result<bool, SpoolError>,
    ),
}

impl Done {
    /// Replaces a success with `err` (the group could not be made durable).
    fn fail(&mut self, err: &SpoolError) {
        let clone = || err.for_another_waiter();
        match self {
            Done::Enqueue(_, r) if r.is_ok() => *r = Err(clone()),
            Done::Settle(_, r) if r.is_ok() => *r = Err(clone()),
            Done::Postpone(_, r) if r.is_ok() => *r = Err(clone()),
            Done::TrimFeed(_, r) if r.is_ok() => *r = Err(clone()),
            _ => {}
        }
    }

    fn send(self) {
        // A dropped receiver means the caller gave up waiting; the
        // outcome is durable regardless, so there is nothing to undo.
        match self {
            Done::Enqueue(tx, r) => drop(tx.send(r)),
            Done::Settle(tx, r) => drop(tx.send(r)),
            Done::Postpone(tx, r) => drop(tx.send(r)),
            Done::TrimFeed(tx, r) => drop(tx.send(r)),
        }
    }
}

/// Answers every request of a group that could not even start with `err`.
fn fail_all(requests: Vec<Request>, err: &SpoolError) {
    for request in requests {
        let e = err.for_another_waiter();
        match request {
            Request::Enqueue { reply, .. } => drop(reply.send(Err(e))),
            Request::Settle { reply, .. } => drop(reply.send(Err(e))),
            Request::Postpone { reply, .. } => drop(reply.send(Err(e))),
            Request::TrimFeed { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub shared: Arc<Shared>,
    pub rx: Receiver<Request>,
    pub bodies: BodyWriter,
    pub group_commit: bool,
    pub max_batch: usize,
}

impl Writer {
    /// Runs until every sender is dropped (the last `Spool` clone is gone).
    pub fn run(mut self) {
        let max = self.max_batch.max(1);
        while let Ok(first) = self.rx.recv() {
            let mut requests = vec![first];
            if self.group_commit {
                while requests.len() < max {
                    match self.rx.try_recv() {
                        Ok(r) => requests.push(r),
                        Err(_) => break,
                    }
                }
            }
            self.commit_group(requests);
        }
        debug!("spool writer stopping");
    }

    fn commit_group(&mut self, requests: Vec<Request>) {
        let segment = match self.bodies.prepare(&self.tree) {
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
                Request::Enqueue { submission, reply } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let result = stage_enqueue(&mut st, submission);
                    if result.is_ok() {
                        let changes = st.finish();
                        group.absorb(changes);
                        group.submissions += 1;
                        group.records += result.as_ref().map_or(0, |e| e.message_ids.len() as u64);
                    }
                    done.push(Done::Enqueue(reply, result));
                }
                Request::Settle {
                    id,
                    outcome,
                    attempt,
                    reply,
                } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let result = stage_settle(&mut st, &self.shared, &id, outcome, attempt);
                    if result.is_ok() {
                        let changes = st.finish();
                        group.absorb(changes);
                        group.settled.insert(id);
                        group.settlements += 1;
                    }
                    done.push(Done::Settle(reply, result));
                }
                Request::Postpone {
                    id,
                    until_ms,
                    reply,
                } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let result = stage_postpone(&mut st, &self.shared, &id, until_ms);
                    if result.is_ok() {
                        let changes = st.finish();
                        group.absorb(changes);
                        group.settled.insert(id);
                    }
                    done.push(Done::Postpone(reply, result));
                }
                Request::TrimFeed { up_to_seq, reply } => {
                    let mut st = Staged::new(&self.tree, &group);
                    let durable = self.shared.feed_durable.load(Ordering::Acquire);
                    let result = stage_trim_feed(&mut st, up_to_seq.min(durable));
                    if result.is_ok() {
                        let changes = st.finish();
                        group.absorb_lazy(changes);
                    }
                    done.push(Done::TrimFeed(reply, result));
                }
            }
        }

        let mut failed = false;
        if !group.writes.is_empty() {
            if let Err(err) = self.apply_and_flush(&group) {
                failed = true;
                error!(error = %err, requests = done.len(), "spool commit failed");
                for d in &mut done {
                    d.fail(&err);
                }
            }
        }
        if !group.settled.is_empty() {
            let mut leased = lock(&self.shared.leased);
            {
                // Under the leased lock, so no lease call sets a cursor
                // past these messages between this and their release.
                let mut lanes = lock(&self.shared.lanes);
                if failed {
                    // The settled messages are still in the due index and
                    // become leasable again, possibly behind a cursor.
                    lanes.clear_cursors();
                } else {
                    for (ws, change) in &group.lanes {
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
        for d in done {
            d.send();
        }
    }

    /// Applies the group atomically, updates the in-memory mirrors and
    /// flushes (unless the group holds only feed trims). The caller clears
    /// the leases of settled ids whatever the outcome: if the apply failed
    /// the messages are unchanged and simply become leasable again; if only
    /// the flush failed the tree already shows the new state.
    ///
    /// Feed: the group's entries and the `fh` high-water mark go into the
    /// same batch; `feed_applied` moves after the apply, `feed_durable` (and
    /// the notification) only after a successful flush.
    fn apply_and_flush(&mut self, group: &Group) -> Result<(), SpoolError> {
        // Bodies first: once the batch below is durable its references
        // must point at durable bytes.
        let began = Instant::now();
        self.bodies.append(&group.bodies)?;
        let bodies_done = Instant::now();
        let mut batch = sled::Batch::default();
        for (k, v) in &group.writes {
            match v {
                Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                None => batch.remove(k.as_slice()),
            }
        }
        let mut counts = *lock(&self.shared.counts);
        for status in Status::ALL {
            let d = group.delta[status.index()];
            if d != 0 {
                let c = counts.get_mut(status);
                let next = (*c as i128 + d as i128).max(0) as u64;
                if (*c as i128 + d as i128) < 0 {
                    warn!(status = %status, "status counter would go negative; clamping");
                }
                *c = next;
                batch.insert(
                    keys::status_count(status.as_str()),
                    &keys::encode_u64(next)[..],
                );
            }
        }
        // Highest seq of the group's entries, if it staged any.
        let feed_last = (group.feed_count > 0).then(|| group.feed_base + group.feed_count - 1);
        if let Some(last) = feed_last {
            batch.insert(keys::FEED_HIGH, &keys::encode_u64(last)[..]);
        }
        self.tree.apply_batch(batch)?;
        if let Some(last) = feed_last {
            self.shared.feed_applied.store(last, Ordering::Release);
        }
        *lock(&self.shared.counts) = counts;
        if !group.lanes.is_empty() {
            let mut lanes = lock(&self.shared.lanes);
            for (ws, change) in &group.lanes {
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

        if !group.needs_flush {
            // Only feed trims: they become durable with the next group
            // commit or sled's own periodic flush (see `Spool::trim_feed`).
            return Ok(());
        }
        let applied_at = Instant::now();
        let flushed = self.db.flush();
        let done = Instant::now();
        // Both fsyncs of the group (segment and sled) count as its flush.
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let fsync = nanos((bodies_done - began) + (done - applied_at));
        s.flushes.fetch_add(1, Ordering::Relaxed);
        s.last_flush_nanos.store(fsync, Ordering::Relaxed);
        s.total_flush_nanos.fetch_add(fsync, Ordering::Relaxed);
        let took = done - began;
        if took >= SLOW_COMMIT {
            // Every waiter of the group waited this long: say where the
            // time went.
            let (total_ms, bodies_ms, apply_ms, sled_flush_ms) = (
                took.as_millis() as u64,
                (bodies_done - began).as_millis() as u64,
                (applied_at - bodies_done).as_millis() as u64,
                (done - applied_at).as_millis() as u64,
            );
            let (bodies, writes) = (group.bodies.len(), group.writes.len());
            if took >= VERY_SLOW_COMMIT {
                warn!(
                    total_ms,
                    bodies_ms, apply_ms, sled_flush_ms, bodies, writes, "slow spool commit"
                );
            } else {
                debug!(
                    total_ms,
                    bodies_ms, apply_ms, sled_flush_ms, bodies, writes, "slow spool commit"
                );
            }
        }
        flushed?;
        self.bodies.release(&group.emptied);
        // Everything applied so far is on disk now, including entries of an
        // earlier group whose own flush failed.
        let applied = s.feed_applied.load(Ordering::Acquire);
        if s.feed_durable.swap(applied, Ordering::AcqRel) < applied {
            // notify_waiters wakes every task waiting right now; the stored
            // permit of notify_one wakes a consumer that was busy (not
            // waiting) when the entries arrived, so none is ever missed.
            s.feed_notify.notify_waiters();
            s.feed_notify.notify_one();
        }
        Ok(())
    }
}

/// Rejects input that would break the key layout or make no sense.
fn validate(sub: &Submission) -> Result<(), SpoolError> {
    let nul = |what: &str, v: &str| {
        if v.contains('\0') {
            Err(SpoolError::Invalid(format!("{what} contains a NUL byte")))
        } else {
            Ok(())
        }
    };
    if sub.workspace_id.is_empty() {
        return Err(SpoolError::Invalid("workspace id is empty".into()));
    }
    if sub.recipients.is_empty() {
        return Err(SpoolError::Invalid("submission has no recipients".into()));
    }
    if sub.recipients.len() > u32::MAX as usize {
        return Err(SpoolError::Invalid("too many recipients".into()));
    }
    nul("workspace id", &sub.workspace_id)?;
    nul("submitter", &sub.submitter)?;
    for r in &sub.recipients {
        nul("recipient", r)?;
    }
    Ok(())
}

fn stage_enqueue(st: &mut Staged<'_>, sub: Submission) -> Result<Enqueued, SpoolError> {
    validate(&sub)?;
    let queue_id = if let Some(q) = sub.queue_id.clone() {
        if !ids::is_queue_id(&q) || st.any_with_prefix(&keys::queue_prefix(&q))? {
            return Err(SpoolError::Invalid(format!(
                "queue id {q} is malformed or already in use"
            )));
        }
        q
    } else {
        loop {
            let q = ids::new_queue_id();
            if !st.any_with_prefix(&keys::queue_prefix(&q))? {
                break q;
            }
            warn!(queue_id = %q, "queue id collision; drawing another");
        }
    };
    let n = sub.recipients.len() as u64;
    let at = sub.received_at_ms;
    let mut message_ids = Vec::with_capacity(sub.recipients.len());
    for (index, to) in sub.recipients.iter().enumerate() {
        let id = loop {
            let id = ids::new_message_id();
            if !st.exists(&keys::record(&id))? {
                break id;
            }
            warn!(message_id = %id, "message id collision; drawing another");
        };
        let mut rec = MessageRecord {
            id: id.clone(),
            queue_id: queue_id.clone(),
            workspace_id: sub.workspace_id.clone(),
            submitter: sub.submitter.clone(),
            from: sub.mail_from.clone(),
            to: to.clone(),
            subject: sub.subject.clone(),
            status: Status::Queued,
            created_at_ms: at,
            next_attempt_at_ms: Some(at),
            attempts: 0,
            history: Vec::with_capacity(1),
            delivery_attempts: Vec::new(),
        };
        st.history(
            &mut rec,
            StatusChange {
                status: Status::Queued,
                at_ms: at,
                event: Status::Queued.default_event().to_string(),
                detail: None,
            },
            None,
            false,
        )?;
        st.put_record(&rec)?;
        st.lane_add(&sub.workspace_id, at, &id, Entry::New)?;
        let suffix = keys::listing_suffix(at, &id);
        let mut k = keys::workspace_prefix(&sub.workspace_id);
        k.extend_from_slice(&suffix);
        st.put(k, Vec::new());
        let mut k = keys::recipient_prefix(&sub.workspace_id, &to.to_lowercase());
        k.extend_from_slice(&suffix);
        st.put(k, Vec::new());
        st.put(keys::queue_member(&queue_id, index as u32, &id), Vec::new());
        message_ids.push(id);
    }
    st.put_body(&queue_id, sub.body)?;
    st.put(keys::remaining(&queue_id), keys::encode_u64(n).to_vec());
    let ck = keys::accepted(&sub.submitter, at.div_euclid(DAY_MS));
    let accepted = st.get_counter(&ck)?.unwrap_or(0).saturating_add(n);
    st.put(ck, keys::encode_u64(accepted).to_vec());
    st.delta[Status::Queued.index()] += n as i64;
    Ok(Enqueued {
        queue_id,
        message_ids,
    })
}

/// Loads the record of a lease being settled or postponed, checking that
/// the lease is held (and not already used in this group) and that the
/// message is still pending.
fn leased_record(st: &Staged<'_>, shared: &Shared, id: &str) -> Result<MessageRecord, SpoolError> {
    if st.group.settled.contains(id) || !lock(&shared.leased).contains(id) {
        return Err(SpoolError::NotLeased(id.to_string()));
    }
    let key = keys::record(id);
    let raw = st
        .get(&key)?
        .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
    let rec = decode_record(&key, &raw)?;
    if rec.status.is_final() {
        return Err(SpoolError::AlreadyFinal(id.to_string(), rec.status));
    }
    Ok(rec)
}

fn stage_settle(
    st: &mut Staged<'_>,
    shared: &Shared,
    id: &str,
    outcome: Outcome,
    attempt: DeliveryAttempt,
) -> Result<MessageRecord, SpoolError> {
    let mut rec = leased_record(st, shared, id)?;
    let old = rec.status;
    let new = outcome.status();
    if let Some(due) = rec.next_attempt_at_ms {
        st.lane_remove(&rec.workspace_id, due, id)?;
    }
    rec.status = new;
    rec.attempts = rec.attempts.saturating_add(1);
    if let Some(sent_at) = attempt.sent_at_ms {
        st.history(
            &mut rec,
            StatusChange {
                status: old,
                at_ms: sent_at,
                event: SENT_EVENT.to_string(),
                detail: None,
            },
            Some(&attempt),
            false,
        )?;
    }
    let event = if attempt.event.is_empty() {
        new.default_event().to_string()
    } else {
        attempt.event.clone()
    };
    st.history(
        &mut rec,
        StatusChange {
            status: new,
            at_ms: attempt.at_ms,
            event,
            detail: attempt.detail.clone(),
        },
        Some(&attempt),
        true,
    )?;
    rec.delivery_attempts.push(attempt);
    match outcome {
        Outcome::Deferred { retry_at_ms } => {
            rec.next_attempt_at_ms = Some(retry_at_ms);
            st.lane_add(&rec.workspace_id, retry_at_ms, id, Entry::Requeued)?;
        }
        Outcome::Delivered | Outcome::Bounced => {
            rec.next_attempt_at_ms = None;
            let rk = keys::remaining(&rec.queue_id);
            let left = match st.get_counter(&rk)? {
                Some(n) => n.saturating_sub(1),
                None => {
                    warn!(queue_id = %rec.queue_id, "remaining counter missing; freeing body");
                    0
                }
            };
            if left == 0 {
                st.remove(rk);
                st.remove_body(&rec.queue_id)?;
            } else {
                st.put(rk, keys::encode_u64(left).to_vec());
            }
        }
    }
    st.put_record(&rec)?;
    st.delta[old.index()] -= 1;
    st.delta[new.index()] += 1;
    Ok(rec)
}

/// Moves a leased message's due time to `until_ms` without touching its
/// status, attempts or history.
fn stage_postpone(
    st: &mut Staged<'_>,
    shared: &Shared,
    id: &str,
    until_ms: i64,
) -> Result<(), SpoolError> {
    let mut rec = leased_record(st, shared, id)?;
    if let Some(due) = rec.next_attempt_at_ms {
        st.lane_remove(&rec.workspace_id, due, id)?;
    }
    rec.next_attempt_at_ms = Some(until_ms);
    st.lane_add(&rec.workspace_id, until_ms, id, Entry::Requeued)?;
    st.put_record(&rec)?;
    Ok(())
}

/// Deletes up to [`FEED_TRIM_CHUNK`] feed entries with seq <= `up_to_seq`
/// (already clamped to the durable high-water mark, so entries staged in
/// this group are never in range). Returns whether more remain.
fn stage_trim_feed(st: &mut Staged<'_>, up_to_seq: u64) -> Result<bool, SpoolError> {
    if up_to_seq == 0 {
        return Ok(false);
    }
    let end = match up_to_seq.checked_add(1) {
        Some(next) => keys::feed(next),
        None => keys::feed_end(),
    };
    let mut iter = st.tree.range(keys::FEED.to_vec()..end);
    let mut removed = 0;
    while removed < FEED_TRIM_CHUNK {
        let Some(item) = iter.next() else {
            return Ok(false);
        };
        st.remove(item?.0.to_vec());
        removed += 1;
    }
    Ok(iter.next().transpose()?.is_some())
}
