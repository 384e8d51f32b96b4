//! The event log: every event, per workspace, in the order it was stored,
//! with an index by message id. Listing filters by type, message id and
//! time range and pages with an opaque cursor.
//!
//! Keys (in the events tree):
//! - `e/<ws>\0<seq>` → [`StoredEvent`]
//! - `i/<evt id>` → `<ws>\0<seq>` (lookup by id)
//! - `m/<ws>\0<message id>\0<seq>` → empty (lookup by message id)

use serde::{Deserialize, Serialize};

use super::model::{Event, EventType, Product};
use super::{cat, decode, EventsError};

const EVENT: &[u8] = b"e/";
const BY_ID: &[u8] = b"i/";
const BY_MESSAGE: &[u8] = b"m/";

/// An event as stored: the envelope, its position and its time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: u64,
    pub at_ms: i64,
    pub event: Event,
}

fn event_key(ws: &str, seq: u64) -> Vec<u8> {
    cat(&[EVENT, ws.as_bytes(), b"\0", &seq.to_be_bytes()])
}

/// The by-message index entry of event `seq` about message `msg`.
fn message_key(ws: &str, msg: &str, seq: u64) -> Vec<u8> {
    cat(&[
        BY_MESSAGE,
        ws.as_bytes(),
        b"\0",
        msg.as_bytes(),
        b"\0",
        &seq.to_be_bytes(),
    ])
}

/// Stages the event and its indexes in `batch`.
pub fn stage(batch: &mut sled::Batch, stored: &StoredEvent) -> Result<(), EventsError> {
    let ws = &stored.event.workspace_id;
    let raw = serde_json::to_vec(stored).map_err(EventsError::encode)?;
    batch.insert(event_key(ws, stored.seq), raw);
    batch.insert(
        cat(&[BY_ID, stored.event.id.as_bytes()]),
        cat(&[ws.as_bytes(), b"\0", &stored.seq.to_be_bytes()]),
    );
    if let Some(msg) = stored.event.data.get("message_id").and_then(|v| v.as_str()) {
        batch.insert(message_key(ws, msg, stored.seq), Vec::<u8>::new());
    }
    Ok(())
}

pub fn get(tree: &sled::Tree, ws: &str, seq: u64) -> Result<Option<StoredEvent>, EventsError> {
    match tree.get(event_key(ws, seq))? {
        Some(raw) => decode(&raw, "event").map(Some),
        None => Ok(None),
    }
}

pub fn by_id(tree: &sled::Tree, id: &str) -> Result<Option<StoredEvent>, EventsError> {
    let Some(ptr) = tree.get(cat(&[BY_ID, id.as_bytes()]))? else {
        return Ok(None);
    };
    match tree.get(cat(&[EVENT, &ptr]))? {
        Some(raw) => decode(&raw, "event").map(Some),
        None => Ok(None),
    }
}

/// What `GET …/events` filters on.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only these types (empty: all).
    pub types: Vec<EventType>,
    /// Only events of these products (empty: all).
    pub products: Vec<Product>,
    pub message_id: Option<String>,
    /// Inclusive lower bound, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, ms since the epoch.
    pub until_ms: Option<i64>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
}

impl EventFilter {
    fn accepts(&self, e: &StoredEvent) -> bool {
        (self.types.is_empty() || self.types.contains(&e.event.event))
            && (self.products.is_empty() || self.products.contains(&e.event.product))
            && self.since_ms.is_none_or(|s| e.at_ms >= s)
            && self.until_ms.is_none_or(|u| e.at_ms < u)
            && self.message_id.as_ref().is_none_or(|m| {
                e.event.data.get("message_id").and_then(|v| v.as_str()) == Some(m.as_str())
            })
    }
}

#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass back as the cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Most entries looked at for one page, so a selective filter over a huge
/// log answers in bounded time (with a cursor to go on from).
const SCAN_BUDGET: usize = 20_000;

/// One page of a workspace's events.
pub fn list(
    tree: &sled::Tree,
    ws: &str,
    filter: &EventFilter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<EventPage, EventsError> {
    let after = match cursor {
        Some(c) => Some(
            u64::from_str_radix(c, 16)
                .ok()
                .filter(|_| c.len() == 16)
                .ok_or_else(|| EventsError::Invalid("cursor is not one we issued".into()))?,
        ),
        None => None,
    };
    // With a message id, walk its index; otherwise the workspace's log.
    let (prefix, via_index) = match &filter.message_id {
        Some(m) => (
            cat(&[BY_MESSAGE, ws.as_bytes(), b"\0", m.as_bytes(), b"\0"]),
            true,
        ),
        None => (cat(&[EVENT, ws.as_bytes(), b"\0"]), false),
    };
    let start = prefix.clone();
    let mut end = prefix.clone();
    end.push(0xff);
    let range = match (after, filter.ascending) {
        (Some(seq), true) => cat(&[&prefix, &(seq.saturating_add(1)).to_be_bytes()])..end,
        (Some(seq), false) => start..cat(&[&prefix, &seq.to_be_bytes()]),
        (None, _) => start..end,
    };
    let iter = tree.range(range);
    let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if filter.ascending
    {
        Box::new(iter)
    } else {
        Box::new(iter.rev())
    };
    let mut events = Vec::new();
    let mut last_seq = None;
    let mut more = false;
    for (scanned, item) in iter.enumerate() {
        let (key, value) = item?;
        let seq = seq_suffix(&key)?;
        if events.len() == limit || scanned >= SCAN_BUDGET {
            more = true;
            break;
        }
        last_seq = Some(seq);
        let stored: StoredEvent = if via_index {
            match get(tree, ws, seq)? {
                Some(s) => s,
                None => continue,
            }
        } else {
            decode(&value, "event")?
        };
        if filter.accepts(&stored) {
            events.push(stored.event);
        }
    }
    Ok(EventPage {
        events,
        next_cursor: if more {
            last_seq.map(|s| format!("{s:016x}"))
        } else {
            None
        },
    })
}

fn seq_suffix(key: &[u8]) -> Result<u64, EventsError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| EventsError::Corrupt("event key without a sequence number".into()))
}

/// Deletes the events stored before `cutoff_ms` (with their indexes);
/// returns how many.
pub fn prune(tree: &sled::Tree, cutoff_ms: i64) -> Result<u64, EventsError> {
    use super::retention::{remove_entries, walk_groups, Visit};
    // Events are never rewritten, so nothing needs checking again at
    // deletion time.
    walk_groups(
        tree,
        EVENT,
        |key, raw| {
            let stored: StoredEvent = decode(raw, "event")?;
            if stored.at_ms >= cutoff_ms {
                return Ok(Visit::Stop);
            }
            let ws = &stored.event.workspace_id;
            let mut keys = vec![key.to_vec(), cat(&[BY_ID, stored.event.id.as_bytes()])];
            if let Some(msg) = stored.event.data.get("message_id").and_then(|v| v.as_str()) {
                keys.push(message_key(ws, msg, stored.seq));
            }
            Ok(Visit::Delete(keys))
        },
        |entries| remove_entries(tree, entries),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(seq: u64, at_ms: i64, ty: EventType, msg: &str) -> StoredEvent {
        StoredEvent {
            seq,
            at_ms,
            event: Event {
                id: format!("evt_{seq}"),
                event: ty,
                product: ty.product(),
                platform_id: ty.product().platform_id().into(),
                workspace_id: "ws_a".into(),
                timestamp: crate::clock::rfc3339(at_ms),
                data: json!({"message_id": msg}),
            },
        }
    }

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("events").unwrap()
    }

    #[test]
    fn filters_and_pages_in_both_orders() {
        let t = tree();
        let mut b = sled::Batch::default();
        for i in 1..=10u64 {
            let ty = if i % 2 == 0 {
                EventType::EmailDelivered
            } else {
                EventType::EmailQueued
            };
            stage(
                &mut b,
                &ev(i, 1000 * i as i64, ty, &format!("msg_{}", i % 3)),
            )
            .unwrap();
        }
        t.apply_batch(b).unwrap();

        // Newest first, pages of 4: 10 9 8 7 | 6 5 4 3 | 2 1.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = list(&t, "ws_a", &EventFilter::default(), cursor.as_deref(), 4).unwrap();
            seen.extend(page.events.iter().map(|e| e.id.clone()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let expected: Vec<String> = (1..=10).rev().map(|i| format!("evt_{i}")).collect();
        assert_eq!(seen, expected);

        let f = EventFilter {
            types: vec![EventType::EmailDelivered],
            since_ms: Some(4000),
            until_ms: Some(9000),
            ascending: true,
            ..Default::default()
        };
        let page = list(&t, "ws_a", &f, None, 50).unwrap();
        let ids: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_4", "evt_6", "evt_8"]);

        let f = EventFilter {
            message_id: Some("msg_1".into()),
            ..Default::default()
        };
        let page = list(&t, "ws_a", &f, None, 2).unwrap();
        let ids: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_10", "evt_7"]);
        let page = list(&t, "ws_a", &f, page.next_cursor.as_deref(), 2).unwrap();
        let ids: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_4", "evt_1"]);

        assert!(list(&t, "ws_b", &EventFilter::default(), None, 5)
            .unwrap()
            .events
            .is_empty());
        assert_eq!(by_id(&t, "evt_3").unwrap().unwrap().seq, 3);
        assert!(list(&t, "ws_a", &EventFilter::default(), Some("zz"), 5).is_err());
    }
}
