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
/// more remain.
pub(super) fn stage_trim_feed(st: &mut Staged<'_>, up_to_seq: u64) -> Result<bool, SpoolError> {
    if up_to_seq == 0 {
        return Ok(false);
    }
    let end = match up_to_seq.checked_add(1) {
        Some(next) => keys::feed(next),
        None => keys::feed_end(),
    };
    // Past `end` too: the key after a page bounds its last seq, whatever
    // a damaged page header claims.
    let mut iter = st
        .tree
        .range(keys::FEED.to_vec()..keys::feed_end())
        .peekable();
    let mut removed = 0;
    while removed < FEED_TRIM_CHUNK {
        let Some(item) = iter.next() else {
            return Ok(false);
        };
        let (key, raw) = item?;
        if key.as_ref() >= end.as_slice() {
            return Ok(false);
        }
        let first = keys::feed_seq_of(&key).unwrap_or(0);
        let mut last = feed_pages::last_seq(first, &raw);
        if let Some(Ok((next, _))) = iter.peek() {
            if let Some(next) = keys::feed_seq_of(next) {
                last = last.min(next.saturating_sub(1)).max(first);
            }
        }
        if last > up_to_seq {
            return Ok(false);
        }
        st.remove(key.to_vec());
        removed += 1;
    }
    Ok(iter
        .next()
        .transpose()?
        .is_some_and(|(key, _)| key.as_ref() < end.as_slice()))
}
