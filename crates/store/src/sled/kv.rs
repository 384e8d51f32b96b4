//! The key-value view every read is written against once: the tree as
//! committed (outside a transaction) or the tree under a transaction's
//! pending writes.

use std::ops::Bound;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{storage, SledTxn};
use crate::{Result, StoreError};

pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// A pending write of a transaction: `Some` inserts, `None` removes.
type Pending<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// Point reads and ordered range scans.
pub(crate) trait Kv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Up to `limit` entries with `start <= key < end`, ascending or
    /// descending.
    fn scan(&self, start: &[u8], end: &[u8], descending: bool, limit: usize) -> Result<Vec<Entry>>;

    /// Every entry whose key starts with `prefix`, ascending.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>> {
        self.scan(prefix, &prefix_end(prefix), false, usize::MAX)
    }

    fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.get(key)?.map(|raw| decode(key, &raw)).transpose()
    }
}

/// The first key after every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(key))))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

/// The committed tree.
pub(crate) struct Reader<'a> {
    tree: &'a ::sled::Tree,
}

impl<'a> Reader<'a> {
    pub(super) fn new(tree: &'a ::sled::Tree) -> Self {
        Reader { tree }
    }
}

fn tree_scan<'t>(
    tree: &'t ::sled::Tree,
    start: &[u8],
    end: &[u8],
    descending: bool,
) -> Box<dyn Iterator<Item = Result<Entry>> + 't> {
    if start >= end {
        return Box::new(std::iter::empty());
    }
    let range = tree.range(start.to_vec()..end.to_vec());
    let map = |item: ::sled::Result<(::sled::IVec, ::sled::IVec)>| {
        item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(storage)
    };
    if descending {
        Box::new(range.rev().map(map))
    } else {
        Box::new(range.map(map))
    }
}

impl Kv for Reader<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key).map_err(storage)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8], descending: bool, limit: usize) -> Result<Vec<Entry>> {
        tree_scan(self.tree, start, end, descending)
            .take(limit)
            .collect()
    }
}

impl Kv for SledTxn {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.clone());
        }
        Ok(self.tree.get(key).map_err(storage)?.map(|v| v.to_vec()))
    }

    /// The tree's entries merged with the pending writes in the range
    /// (pending ones win, pending removals hide).
    fn scan(&self, start: &[u8], end: &[u8], descending: bool, limit: usize) -> Result<Vec<Entry>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let range = (
            Bound::Included(start.to_vec()),
            Bound::Excluded(end.to_vec()),
        );
        let pending: Box<dyn Iterator<Item = Pending<'_>>> = if descending {
            Box::new(self.writes.range(range).rev())
        } else {
            Box::new(self.writes.range(range))
        };
        let mut pending = pending.peekable();
        let mut committed = tree_scan(&self.tree, start, end, descending).peekable();
        let before = |a: &[u8], b: &[u8]| if descending { a > b } else { a < b };
        let mut out = Vec::new();
        while out.len() < limit {
            let take_pending = match (committed.peek(), pending.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) => return Err(committed.next().expect("peeked").unwrap_err()),
                (None, Some(_)) => true,
                (Some(Ok((ck, _))), Some((pk, _))) => {
                    if ck == *pk {
                        committed.next();
                        true
                    } else {
                        !before(ck, pk)
                    }
                }
                (Some(Ok(_)), None) => false,
            };
            if take_pending {
                let (k, v) = pending.next().expect("peeked");
                if let Some(v) = v {
                    out.push((k.clone(), v.clone()));
                }
            } else {
                out.push(committed.next().expect("peeked")?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"e/"), b"e0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }
}
