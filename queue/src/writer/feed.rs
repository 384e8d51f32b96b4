//! Feed trims: the consumer deletes what it has published.

use super::staged::Staged;
use super::FEED_TRIM_CHUNK;
use crate::error::SpoolError;
use crate::feed_pages;
use crate::keys;

/// Deletes up to [`FEED_TRIM_CHUNK`] feed keys whose entries all have
/// seq <= `up_to_seq` (already clamped to the durable high-water mark, so
/// entries staged in this group are never in range). A page holding
/// entries past `up_to_seq` stays (the writer raises the trimmed floor,
/// below which reads skip its entries) and ends the trim. Returns whether
/// more remain, and the key the next trim starts from.
///
/// Why a start key: the index is an LSM tree, where a removed key stays
/// as a tombstone until compaction drops it, and a scan from the feed's
/// first key walks past every page trimmed so far (a page per group
/// commit: 20,000 after a million messages, at every trim). Only the
/// writer removes pages and new pages always sort after the old ones, so
/// everything before where the last trim stopped is gone; after a restart
/// the first trim starts from the beginning and takes what a crash left.
pub(super) fn stage_trim_feed(
    st: &mut Staged<'_>,
    up_to_seq: u64,
    from: &[u8],
) -> Result<(bool, Vec<u8>), SpoolError> {
    if up_to_seq == 0 {
        return Ok((false, from.to_vec()));
    }
    let end = match up_to_seq.checked_add(1) {
        Some(next) => keys::feed(next),
        None => keys::feed_end(),
    };
    // Past `end` too: the key after a page bounds its last seq, whatever
    // a damaged page header claims.
    let start = from.max(keys::FEED).to_vec();
    let mut iter = st.tree.range(start..keys::feed_end()).peekable();
    let mut removed = 0;
    while removed < FEED_TRIM_CHUNK {
        let Some(item) = iter.next() else {
            return Ok((false, end));
        };
        let (key, raw) = item?;
        if key.as_ref() >= end.as_slice() {
            return Ok((false, key.to_vec()));
        }
        let first = keys::feed_seq_of(&key).unwrap_or(0);
        let mut last = feed_pages::last_seq(first, &raw);
        if let Some(Ok((next, _))) = iter.peek() {
            if let Some(next) = keys::feed_seq_of(next) {
                last = last.min(next.saturating_sub(1)).max(first);
            }
        }
        if last > up_to_seq {
            return Ok((false, key.to_vec()));
        }
        st.remove(key.to_vec());
        removed += 1;
    }
    match iter.next().transpose()? {
        Some((key, _)) => Ok((key.as_ref() < end.as_slice(), key.to_vec())),
        None => Ok((false, end)),
    }
}
