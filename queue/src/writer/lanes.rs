//! The in-memory due lanes: one small entry per workspace with pending
//! mail, kept in step with the durable lane counters after every commit,
//! with the lease cursor that lets `Spool::lease` resume where it stopped.

use std::collections::BTreeMap;

use crate::keys;

/// In-memory view of one workspace's due lane.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    /// Entries in the lane (mirror of the durable `l/<ws>` counter).
    pub count: u64,
    /// A lower bound of the earliest due time in the lane: `lease` skips
    /// the lane without touching the index while `now < next_due_hint`. The
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
    pub(crate) fn from_counts(counts: impl IntoIterator<Item = (String, u64)>) -> Lanes {
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
    pub(crate) fn apply(&mut self, ws: &str, change: LaneChange) {
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
    pub(crate) fn raise_hint(&mut self, ws: &str, version: u64, hint: i64) {
        if let Some(lane) = self.map.get_mut(ws) {
            if lane.version == version && lane.next_due_hint < hint {
                lane.next_due_hint = hint;
            }
        }
    }

    /// A lease call begins: additions from now on are what it may have
    /// missed. (Lease calls are serialized by the leased-set lock.)
    pub(crate) fn begin_lease(&mut self) {
        for lane in self.map.values_mut() {
            lane.min_added_since_lease = i64::MAX;
        }
    }

    /// Moves a lane's lease cursor to `key` (the last due key a lease call
    /// examined, everything before it leased), unless an entry was added at
    /// or before `key`'s due time while the call was scanning: the scan may
    /// have passed its place without seeing it.
    pub(crate) fn advance_cursor(&mut self, ws: &str, key: Vec<u8>) {
        let Some(due) = keys::due_time_of(&key) else {
            return;
        };
        if let Some(lane) = self.map.get_mut(ws) {
            if lane.min_added_since_lease > due {
                lane.leased_through = Some(key);
            }
        }
    }

    /// The group that deferred messages has committed and
    /// their leases are about to end (the caller holds the leased lock, so
    /// no lease call runs in between). Their new entries were in the tree
    /// but still leased since the apply, so a lease call in that window
    /// stepped over them and may have moved a cursor past them: forget
    /// such cursors, or the entries would never be leased again.
    pub(crate) fn requeued_leases_end(&mut self, ws: &str, min_requeued: i64) {
        if let Some(lane) = self.map.get_mut(ws) {
            lane.forget_cursor_from(min_requeued);
        }
    }

    /// Forgets every lease cursor: some message before one may be leasable
    /// again (released, or its settlement failed to commit).
    pub(crate) fn clear_cursors(&mut self) {
        for lane in self.map.values_mut() {
            lane.leased_through = None;
        }
    }

    /// Total entries in the due index (queued + deferred messages).
    pub(crate) fn total(&self) -> u64 {
        self.map.values().map(|l| l.count).sum()
    }
}

/// A lane's state after a request (or group): the absolute durable count
/// and the earliest due time added.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneChange {
    pub(super) count: u64,
    pub(super) min_added: Option<i64>,
    /// Earliest due time re-added for a message that is leased until the
    /// group commits (a deferral); see
    /// [`Lanes::requeued_leases_end`] for why it is tracked apart.
    pub(super) min_requeued: Option<i64>,
}

impl LaneChange {
    pub(super) fn merge(&mut self, later: LaneChange) {
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

/// Whose due-index entry is added: a new message's, or a deferred one's
/// (still in the leased set until its group commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    New,
    Requeued,
}

pub(crate) fn merge_lanes(
    into: &mut BTreeMap<String, LaneChange>,
    from: BTreeMap<String, LaneChange>,
) {
    for (ws, change) in from {
        match into.get_mut(&ws) {
            Some(c) => c.merge(change),
            None => {
                into.insert(ws, change);
            }
        }
    }
}
