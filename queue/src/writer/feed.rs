//! Feed trims: the consumer deletes what it has published.

use super::staged::Staged;
use super::FEED_TRIM_CHUNK;
use crate::error::SpoolError;
use crate::keys;

/// Deletes up to [`FEED_TRIM_CHUNK`] feed entries with seq <= `up_to_seq`
/// (already clamped to the durable high-water mark, so entries staged in
/// this group are never in range). Returns whether more remain.
pub(super) fn stage_trim_feed(st: &mut Staged<'_>, up_to_seq: u64) -> Result<bool, SpoolError> {
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
