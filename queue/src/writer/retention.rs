//! Retention: the records of finished messages and their index entries
//! are deleted some time after they finished, so the spool does not grow
//! without bound. The caller (`Spool::prune_finished`) reads what to
//! delete outside the writer; here each record is checked again (still
//! there, still final) so a counter is never decremented twice.
//!
//! Like feed trims, retention writes need no fsync of their own: they
//! become durable with the next group commit or when the index closes. A
//! crash may bring some deleted records back; they are deleted again.

use super::decode_record;
use super::staged::Staged;
use crate::error::SpoolError;
use crate::keys;
use crate::record::{status_index, Status};

/// One retention change.
#[derive(Debug)]
pub(crate) enum PruneItem {
    /// A finished message's record and every key that names it; its
    /// status counter goes down by one.
    Message {
        id: String,
        status: Status,
        keys: Vec<Vec<u8>>,
    },
    /// A key to delete that no counter depends on (a retention entry whose
    /// record is gone, an old daily counter).
    Forget(Vec<u8>),
    /// A retention index entry to add (records finished before the index
    /// existed), or the marker that the index is complete.
    Index(Vec<u8>),
}

/// Applies retention changes; returns how many records were deleted.
pub(super) fn stage_prune(st: &mut Staged<'_>, items: Vec<PruneItem>) -> Result<u64, SpoolError> {
    let mut removed = 0;
    for item in items {
        match item {
            PruneItem::Message { id, status, keys } => {
                let rkey = keys::record(&id);
                let Some(raw) = st.get(&rkey)? else {
                    continue;
                };
                let rec = decode_record(&rkey, &raw)?;
                if rec.status != status || !status.is_final() {
                    continue;
                }
                st.remove(rkey);
                for k in keys {
                    st.remove(k);
                }
                st.changes.delta[status_index(status)] -= 1;
                removed += 1;
            }
            PruneItem::Forget(key) => st.remove(key),
            PruneItem::Index(key) => st.put(key, Vec::new()),
        }
    }
    Ok(removed)
}
