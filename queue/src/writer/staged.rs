//! The staging area of a group commit: each request stages its writes on
//! top of the group's and the tree's, and only a request that succeeds
//! has them merged into the group.

use std::collections::{BTreeMap, HashSet};

use tracing::warn;

use super::decode_counter;
use super::lanes::{merge_lanes, Entry, LaneChange};
use crate::bodies::BodyRef;
use crate::error::SpoolError;
use crate::keys;
use crate::record::{FeedEntry, MessageRecord, StatusChange};

/// Pending writes: `Some` = insert, `None` = remove. A BTreeMap so later
/// requests read earlier writes and prefix checks can use ranges.
pub(crate) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Writes accumulated for the current group.
#[derive(Default)]
pub(crate) struct Group {
    /// The merged changes of the group's successful requests.
    pub(super) changes: Changes,
    /// Ids settled in this group: a second settlement of the
    /// same lease in one group must fail, even though the lease is only
    /// cleared after the commit.
    pub(super) settled: HashSet<String>,
    pub(super) submissions: u64,
    pub(super) records: u64,
    /// Settlements, for the statistics.
    pub(super) settlements: u64,
    /// Seq of the group's first feed entry.
    pub(super) feed_base: u64,
    /// The feed is trimmed up to here by this group's trims (when that
    /// raises the floor).
    pub(super) feed_trimmed: Option<u64>,
    /// Where the next trim starts, once this group is applied (see
    /// `feed::stage_trim_feed`).
    pub(super) feed_trim_from: Option<Vec<u8>>,
    /// Whether the group holds anything that must be fsynced before the
    /// callers are answered (everything but feed trims).
    pub(super) needs_flush: bool,
    /// Body segment taking this group's new bodies, and its length before
    /// them: a body's offset is known when its reference is staged.
    pub(super) segment: u64,
    pub(super) segment_base: u64,
}

/// One request's writes, staged on top of the group and the tree.
pub(crate) struct Staged<'a> {
    pub(super) tree: &'a crate::index::Index,
    pub(super) group: &'a Group,
    pub(super) changes: Changes,
}

impl<'a> Staged<'a> {
    pub(crate) fn new(tree: &'a crate::index::Index, group: &'a Group) -> Self {
        Staged {
            tree,
            group,
            changes: Changes::default(),
        }
    }

    /// Stages a new body: its reference (at the offset it will get when the
    /// group's bodies are appended) with the submission's `pending`
    /// messages, and its segment's live counter.
    pub(crate) fn put_body(
        &mut self,
        queue_id: &str,
        body: Vec<u8>,
        pending: u64,
    ) -> Result<(), SpoolError> {
        let len = u32::try_from(body.len())
            .map_err(|_| SpoolError::Invalid("message body exceeds 4 GiB".into()))?;
        let r = BodyRef {
            segment: self.group.segment,
            offset: self.group.segment_base
                + self.group.changes.body_bytes
                + self.changes.body_bytes,
            len,
            crc: crc32fast::hash(&body),
        };
        let ck = keys::segment_live(r.segment);
        let live = self.get_counter(&ck)?.unwrap_or(0) + 1;
        self.put(ck, keys::encode_u64(live).to_vec());
        self.put(keys::body(queue_id), r.encode_with_pending(pending));
        self.changes.body_bytes += u64::from(len);
        self.changes.bodies.push(body);
        Ok(())
    }

    /// Stages the removal of a body and the release of its segment;
    /// `stored` is its reference as the caller read it (`None` for a body
    /// stored inline by an earlier version, which has no segment).
    pub(crate) fn remove_body(
        &mut self,
        queue_id: &str,
        stored: Option<BodyRef>,
    ) -> Result<(), SpoolError> {
        let key = keys::body(queue_id);
        if let Some(r) = stored {
            let ck = keys::segment_live(r.segment);
            match self.get_counter(&ck)?.unwrap_or(0) {
                0 | 1 => {
                    self.remove(ck);
                    self.changes.emptied.push(r.segment);
                }
                n => self.put(ck, keys::encode_u64(n - 1).to_vec()),
            }
        }
        self.remove(key);
        Ok(())
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, SpoolError> {
        if let Some(v) = self.changes.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.group.changes.writes.get(key) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    pub(crate) fn exists(&self, key: &[u8]) -> Result<bool, SpoolError> {
        Ok(self.get(key)?.is_some())
    }

    /// Whether any key with this prefix exists (pending inserts or tree).
    /// Only used for never-deleted keys, so pending removals are ignored.
    pub(crate) fn any_with_prefix(&self, prefix: &[u8]) -> Result<bool, SpoolError> {
        let pending = |m: &Writes| {
            m.range(prefix.to_vec()..)
                .next()
                .is_some_and(|(k, v)| k.starts_with(prefix) && v.is_some())
        };
        if pending(&self.changes.writes) || pending(&self.group.changes.writes) {
            return Ok(true);
        }
        Ok(self.tree.scan_prefix(prefix).next().transpose()?.is_some())
    }

    pub(crate) fn get_counter(&self, key: &[u8]) -> Result<Option<u64>, SpoolError> {
        self.get(key)?
            .map(|raw| decode_counter(key, &raw))
            .transpose()
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.writes.insert(key, Some(value));
    }

    pub(crate) fn remove(&mut self, key: Vec<u8>) {
        self.changes.writes.insert(key, None);
    }

    pub(crate) fn put_record(&mut self, rec: &MessageRecord) -> Result<(), SpoolError> {
        let raw = serde_json::to_vec(rec)
            .map_err(|e| SpoolError::encoding(format!("encoding record {}", rec.id), e))?;
        self.put(keys::record(&rec.id), raw);
        Ok(())
    }

    /// Appends a history entry to `rec` and stages its feed entry (the
    /// next seq) in the same writes. The ONLY way history is written, so
    /// every history entry has exactly one feed entry in the same batch.
    /// `reply` is the remote reply of a settlement's own entry.
    pub(crate) fn history(
        &mut self,
        rec: &mut MessageRecord,
        change: StatusChange,
        reply: Option<&str>,
    ) -> Result<(), SpoolError> {
        let seq =
            self.group.feed_base + self.group.changes.feed_count() + self.changes.feed_count();
        let mut message = rec.message_ref();
        message.status = change.status;
        let entry = FeedEntry {
            seq,
            workspace_id: rec.workspace_id.clone(),
            message,
            at_ms: change.at_ms,
            attempt_number: rec.attempts,
            event: change.event.clone(),
            reply: reply.map(str::to_string),
        };
        let raw = serde_json::to_vec(&entry)
            .map_err(|e| SpoolError::encoding(format!("encoding feed entry {seq}"), e))?;
        self.changes.feed.push(raw);
        rec.history.push(change);
        Ok(())
    }

    /// Adds a due-index entry to `ws`'s lane and counts it. The caller
    /// guarantees the entry does not exist yet (fresh id, or just removed).
    pub(crate) fn lane_add(
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
    pub(crate) fn lane_remove(
        &mut self,
        ws: &str,
        due_ms: i64,
        id: &str,
    ) -> Result<(), SpoolError> {
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
        if let Some(prev) = self.changes.lanes.get(ws) {
            let mut merged = *prev;
            merged.merge(change);
            change = merged;
        }
        self.changes.lanes.insert(ws.to_string(), change);
        Ok(())
    }

    /// The request succeeded: its changes, to be absorbed by the group.
    pub(crate) fn finish(self) -> Changes {
        self.changes
    }
}

/// Writes and their side effects: one request's (staged), or a group's
/// (the merge of its requests').
#[derive(Default)]
pub(crate) struct Changes {
    pub(super) writes: Writes,
    /// Net change of each status counter, indexed by `status_index`.
    pub(super) delta: [i64; 4],
    /// Lanes touched.
    pub(super) lanes: BTreeMap<String, LaneChange>,
    /// Feed entries staged (their JSON, in seq order), written as pages
    /// when the group is applied (see `feed_pages`).
    pub(super) feed: Vec<Vec<u8>>,
    /// New bodies, in the order of their offsets.
    pub(super) bodies: Vec<Vec<u8>>,
    pub(super) body_bytes: u64,
    /// Segments whose last live body is released.
    pub(super) emptied: Vec<u64>,
}

impl Changes {
    pub(super) fn feed_count(&self) -> u64 {
        self.feed.len() as u64
    }

    fn merge(&mut self, other: Changes) {
        self.feed.extend(other.feed);
        self.writes.extend(other.writes);
        self.bodies.extend(other.bodies);
        self.body_bytes += other.body_bytes;
        self.emptied.extend(other.emptied);
        for (g, d) in self.delta.iter_mut().zip(other.delta) {
            *g += d;
        }
        merge_lanes(&mut self.lanes, other.lanes);
    }
}

impl Group {
    pub(crate) fn new(feed_base: u64, (segment, segment_base): (u64, u64)) -> Group {
        Group {
            feed_base,
            segment,
            segment_base,
            ..Group::default()
        }
    }

    /// Absorbs the changes of a successful request that must be durable
    /// before its caller is answered.
    pub(crate) fn absorb(&mut self, changes: Changes) {
        self.needs_flush = true;
        self.absorb_lazy(changes);
    }

    /// Absorbs changes that need no fsync of their own (feed trims).
    pub(crate) fn absorb_lazy(&mut self, changes: Changes) {
        self.changes.merge(changes);
    }
}
