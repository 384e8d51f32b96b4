//! Listings newest first over a time index: entries `<prefix><created u64
//! BE>\0<id>` (Telnxo's messages and calls, the shared message log), the
//! suffix after the prefix hex-encoded as the page cursor.

use super::keys::cat;
use super::kv::{prefix_end, Kv};
use crate::{Page, Result, StoreError};

/// `<created u64 BE>\0<id>`: a listing entry's suffix; times before 1970
/// sort as 1970.
pub(super) fn suffix(created_ms: i64, id: &str) -> Vec<u8> {
    cat(&[&time(created_ms), b"\0", id.as_bytes()])
}

/// A time as the index orders it.
pub(super) fn time(ms: i64) -> [u8; 8] {
    (ms.max(0) as u64).to_be_bytes()
}

/// Created at or after, before (unix ms): the listing's key range.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Window {
    pub(super) since_ms: Option<i64>,
    pub(super) until_ms: Option<i64>,
}

/// One page of the index entries under `prefix`, newest first, within
/// `window`, of the records `read` finds and `keep` accepts. Examines a
/// bounded number of entries (`walk_page`), so a rare record gives a short
/// page with a cursor.
pub(super) fn newest_first<T>(
    kv: &impl Kv,
    prefix: Vec<u8>,
    window: Window,
    cursor: Option<&str>,
    limit: usize,
    read: impl Fn(&str) -> Result<Option<T>>,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>> {
    let mut end = match cursor {
        Some(c) => {
            let raw = hex::decode(c)
                .ok()
                .filter(|raw| raw.len() > 9 && raw[8] == 0)
                .ok_or_else(|| StoreError::Invalid("cursor is not one we issued".into()))?;
            cat(&[&prefix, &raw])
        }
        None => prefix_end(&prefix),
    };
    if let Some(until) = window.until_ms {
        end = end.min(cat(&[&prefix, &time(until)]));
    }
    let start = match window.since_ms {
        Some(since) => cat(&[&prefix, &time(since)]),
        None => prefix.clone(),
    };
    let mut items = Vec::new();
    let mut last = None;
    if limit == 0 || start >= end {
        return Ok(Page {
            items,
            next_cursor: None,
        });
    }
    let more = super::ops::walk_page(kv, start, end, true, limit, |key, _| {
        if items.len() == limit {
            return Ok(false);
        }
        let suffix = &key[prefix.len()..];
        last = Some(hex::encode(suffix));
        let id = String::from_utf8_lossy(suffix.get(9..).unwrap_or_default()).into_owned();
        if let Some(found) = read(&id)?.filter(|f| keep(f)) {
            items.push(found);
        }
        Ok(true)
    })?;
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}
