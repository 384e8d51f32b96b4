//! Key layout of the spool's index (`index.rs`).
//!
//! Everything lives in ONE key space, distinguished by key prefixes (the
//! layout sled's tree `spool` had in earlier versions, so their spools are
//! copied over key for key): the body references, the records, every index
//! and every counter change together in one atomic batch per group
//! commit, so a crash can never leave an index pointing at a missing
//! record or a counter that disagrees with the data. (The body bytes themselves are in segment files,
//! made durable before the batch that references them: see `bodies.rs`.)
//!
//! | key                                              | value                         |
//! |--------------------------------------------------|-------------------------------|
//! | `m/<msgid>`                                      | `MessageRecord` as JSON       |
//! | `b/<queueid>`                                    | `BodyRef`: where the body is in the segment files (see `bodies`), and the submission's non-final messages |
//! | `g/<segment u64 BE>`                             | u64 BE: live bodies in that segment |
//! | `r/<queueid>`                                    | u64 BE: non-final messages of a submission queued by an earlier version (now in `b/`) |
//! | `d/<ws>\0<due u64 BE><msgid>`                    | empty: due index, one lane per workspace |
//! | `l/<ws>`                                         | u64 BE: entries in `<ws>`'s due lane |
//! | `iw/<ws>\0<created u64 BE><msgid>`               | empty: list by workspace      |
//! | `it/<ws>\0<to lowercase>\0<created u64 BE><msgid>` | empty: list by recipient    |
//! | `iq/<queueid>/<index u32 BE><msgid>`             | empty: messages of submission |
//! | `s/<status>`                                     | u64 BE: count per status      |
//! | `c/<submitter>\0<day u64 BE>`                    | u64 BE: accepted recipients   |
//! | `f/<seq u64 BE>`                                 | a page of `FeedEntry`s as JSON, the first being `seq` (one entry as JSON if written by an earlier version): change feed |
//! | `fh`                                             | u64 BE: highest feed seq ever issued |
//! | `ft`                                             | u64 BE: feed trimmed up to this seq |
//! | `x/<finished u64 BE><msgid>`                     | empty: finished messages by finish time (retention) |
//! | `xi`                                             | empty: every finished record is in `x/` |
//!
//! # Due lanes
//!
//! The due index is partitioned by workspace: every pending (queued or
//! deferred) message has exactly one `d/<ws>\0<due><msgid>` entry, so the
//! entries of one workspace (its *lane*) form one contiguous key range
//! ordered by due time. `Spool::lease` takes messages round-robin across
//! lanes, so one workspace's backlog never delays another workspace's mail.
//!
//! To find the lanes without scanning the due index, each non-empty lane has
//! a durable counter `l/<ws>` (number of entries in the lane), changed in the
//! same batch as the entries themselves and deleted when it reaches zero.
//! `Spool::open` loads these counters (one key per workspace with pending
//! mail) into an in-memory lane table; the writer keeps that table in step
//! after each commit. The sum of all lane counters equals queued + deferred.
//!
//! # Change feed
//!
//! Every history entry the writer appends to a record (`email.queued`,
//! `email.sent`, the settlement's event) also gets one feed entry with the
//! next seq in the SAME batch, so the feed and the records can never
//! disagree, even after a crash: if a history entry is on disk, so is its
//! feed entry. A group's entries are stored as pages under the seq of each
//! page's first entry (see `feed_pages`). The event emitter (webhooks)
//! tails the feed from a cursor it stores itself; that is what makes "no
//! event is ever lost" possible without scanning records. Big-endian seqs
//! make key order equal to seq order, so tailing is a range scan from the
//! page holding `cursor + 1`. Trimming deletes whole pages; `ft` holds the
//! seq up to which the consumer trimmed, so the entries of a page it
//! trimmed in part are not read again.
//!
//! Seqs are strictly increasing and never reused. The consumer deletes what
//! it has consumed (`Spool::trim_feed`), possibly everything, so the last
//! `f/` key alone cannot tell the next seq after a restart: `fh` holds the
//! highest seq ever issued and is rewritten in every batch that adds feed
//! entries. `Spool::open` resumes from the larger of `fh` and the last
//! entry of the last `f/` page. `fh` sorts after every `f/` key (`h` > `/`), so it never shows up
//! in a scan of the feed.
//!
//! Timestamps are stored big-endian with the sign bit flipped
//! ([`time_key`]), so byte order equals numeric order even for negative
//! values; that is what makes range scans over the due lanes and reverse
//! scans for newest-first listing work. Variable-length components are
//! terminated by NUL, which is why the spool refuses workspace ids,
//! submitters and addresses containing NUL. Ids are fixed length, so the
//! trailing message id is recovered by slicing.

/// Message id length (`msg_` + 16 hex), used to slice it off index keys.
pub(crate) const MSG_ID_LEN: usize = 20;

pub(crate) const RECORD: &[u8] = b"m/";
pub(crate) const BODY: &[u8] = b"b/";
pub(crate) const REMAINING: &[u8] = b"r/";
pub(crate) const SEGMENT_LIVE: &[u8] = b"g/";
pub(crate) const DUE: &[u8] = b"d/";
pub(crate) const LANE_COUNT: &[u8] = b"l/";
pub(crate) const BY_WORKSPACE: &[u8] = b"iw/";
pub(crate) const BY_RECIPIENT: &[u8] = b"it/";
pub(crate) const BY_QUEUE: &[u8] = b"iq/";
pub(crate) const STATUS_COUNT: &[u8] = b"s/";
pub(crate) const ACCEPTED: &[u8] = b"c/";
pub(crate) const FEED: &[u8] = b"f/";
/// The feed's durable high-water mark (highest seq ever issued).
pub(crate) const FEED_HIGH: &[u8] = b"fh";
/// The seq up to which the consumer trimmed the feed (entries of a page
/// partly trimmed are skipped below it). Sorts after [`FEED_HIGH`].
pub(crate) const FEED_TRIMMED: &[u8] = b"ft";
pub(crate) const FINISHED: &[u8] = b"x/";
/// Present once every finished record has its `x/` entry (records
/// finished before the retention index existed are added by a background
/// walk; see `Spool::index_finished`). `i` sorts after `/`, so the marker
/// is outside the index's range.
pub(crate) const FINISHED_INDEXED: &[u8] = b"xi";

pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Order-preserving encoding of a signed millisecond timestamp (or day).
pub(crate) fn time_key(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn record(msg_id: &str) -> Vec<u8> {
    cat(&[RECORD, msg_id.as_bytes()])
}

pub(crate) fn body(queue_id: &str) -> Vec<u8> {
    cat(&[BODY, queue_id.as_bytes()])
}

/// Durable number of live bodies in body segment `segment`.
pub(crate) fn segment_live(segment: u64) -> Vec<u8> {
    cat(&[SEGMENT_LIVE, &segment.to_be_bytes()])
}

/// The segment id of a [`segment_live`] key.
pub(crate) fn segment_of_live_key(key: &[u8]) -> Option<u64> {
    decode_u64(key.strip_prefix(SEGMENT_LIVE)?)
}

pub(crate) fn remaining(queue_id: &str) -> Vec<u8> {
    cat(&[REMAINING, queue_id.as_bytes()])
}

/// Inverse of [`time_key`].
pub(crate) fn time_from_key(k: [u8; 8]) -> i64 {
    (u64::from_be_bytes(k) ^ (1 << 63)) as i64
}

/// Prefix of every due-index key of one workspace (its lane).
pub(crate) fn due_lane(ws: &str) -> Vec<u8> {
    cat(&[DUE, ws.as_bytes(), b"\0"])
}

/// Exclusive end of a workspace's lane: the lane prefix with its NUL
/// terminator bumped to 1, which sorts after every key of the lane and
/// before the lane of any other workspace.
pub(crate) fn due_lane_end(ws: &str) -> Vec<u8> {
    cat(&[DUE, ws.as_bytes(), b"\x01"])
}

pub(crate) fn due(ws: &str, due_ms: i64, msg_id: &str) -> Vec<u8> {
    cat(&[&due_lane(ws), &time_key(due_ms), msg_id.as_bytes()])
}

/// Exclusive upper bound of the keys of `ws`'s lane with a due time
/// `<= now_ms`. Message ids are ASCII, so `0xff` sorts after every id.
pub(crate) fn due_upper_bound(ws: &str, now_ms: i64) -> Vec<u8> {
    cat(&[&due_lane(ws), &time_key(now_ms), &[0xff]])
}

/// The due time of a due-index key (`d/<ws>\0<due><msgid>`), read from the
/// end of the key since ids have a fixed length.
pub(crate) fn due_time_of(key: &[u8]) -> Option<i64> {
    let end = key.len().checked_sub(MSG_ID_LEN)?;
    let start = end.checked_sub(8)?;
    Some(time_from_key(key[start..end].try_into().ok()?))
}

/// Durable number of entries in `ws`'s due lane.
pub(crate) fn lane_count(ws: &str) -> Vec<u8> {
    cat(&[LANE_COUNT, ws.as_bytes()])
}

/// Prefix of all listing-index keys of a workspace.
pub(crate) fn workspace_prefix(ws: &str) -> Vec<u8> {
    cat(&[BY_WORKSPACE, ws.as_bytes(), b"\0"])
}

/// Prefix of the listing-index keys of one recipient in a workspace.
/// `to` must already be lowercased.
pub(crate) fn recipient_prefix(ws: &str, to_lower: &str) -> Vec<u8> {
    cat(&[
        BY_RECIPIENT,
        ws.as_bytes(),
        b"\0",
        to_lower.as_bytes(),
        b"\0",
    ])
}

/// The per-message suffix shared by both listing indexes; it doubles as the
/// (hex-encoded) pagination cursor.
pub(crate) fn listing_suffix(created_ms: i64, msg_id: &str) -> Vec<u8> {
    cat(&[&time_key(created_ms), msg_id.as_bytes()])
}

pub(crate) fn queue_prefix(queue_id: &str) -> Vec<u8> {
    cat(&[BY_QUEUE, queue_id.as_bytes(), b"/"])
}

pub(crate) fn queue_member(queue_id: &str, index: u32, msg_id: &str) -> Vec<u8> {
    cat(&[
        &queue_prefix(queue_id),
        &index.to_be_bytes(),
        msg_id.as_bytes(),
    ])
}

pub(crate) fn status_count(status: &str) -> Vec<u8> {
    cat(&[STATUS_COUNT, status.as_bytes()])
}

pub(crate) fn accepted(submitter: &str, day: i64) -> Vec<u8> {
    cat(&[ACCEPTED, submitter.as_bytes(), b"\0", &time_key(day)])
}

/// Retention index entry of message `msg_id`, finished at `at_ms`.
pub(crate) fn finished(at_ms: i64, msg_id: &str) -> Vec<u8> {
    cat(&[FINISHED, &time_key(at_ms), msg_id.as_bytes()])
}

/// Exclusive upper bound of the retention index entries finished before
/// `cutoff_ms`.
pub(crate) fn finished_before(cutoff_ms: i64) -> Vec<u8> {
    cat(&[FINISHED, &time_key(cutoff_ms)])
}

/// The day of an accepted-counter key (`c/<submitter>\0<day>`).
pub(crate) fn accepted_day_of(key: &[u8]) -> Option<i64> {
    let start = key.len().checked_sub(8)?;
    Some(time_from_key(key[start..].try_into().ok()?))
}

/// Feed entry number `seq`.
pub(crate) fn feed(seq: u64) -> Vec<u8> {
    cat(&[FEED, &seq.to_be_bytes()])
}

/// Exclusive end of the feed: sorts after every `f/` key (`0` follows `/`)
/// and before [`FEED_HIGH`].
pub(crate) fn feed_end() -> Vec<u8> {
    b"f0".to_vec()
}

/// The seq of a feed key, if it has the feed shape.
pub(crate) fn feed_seq_of(key: &[u8]) -> Option<u64> {
    let raw = key.strip_prefix(FEED)?;
    decode_u64(raw)
}

/// The message id at the end of an index key, if the key is long enough and
/// the tail is valid UTF-8.
pub(crate) fn trailing_msg_id(key: &[u8]) -> Option<&str> {
    let start = key.len().checked_sub(MSG_ID_LEN)?;
    std::str::from_utf8(&key[start..]).ok()
}

pub(crate) fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Decodes a counter value; `None` if it is not exactly 8 bytes.
pub(crate) fn decode_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// Hex encoding for opaque cursors.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_numerically() {
        let vals = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in vals.windows(2) {
            assert!(time_key(w[0]) < time_key(w[1]));
        }
    }

    #[test]
    fn time_key_roundtrip() {
        for v in [i64::MIN, -5, 0, 7, 1_700_000_000_000, i64::MAX] {
            assert_eq!(time_from_key(time_key(v)), v);
        }
    }

    #[test]
    fn due_bound_includes_now_only() {
        let id = "msg_ffffffffffffffff";
        assert!(due("ws", 10, id) < due_upper_bound("ws", 10));
        assert!(due("ws", 11, "msg_0000000000000000") > due_upper_bound("ws", 10));
        assert!(due_lane("ws") <= due("ws", i64::MIN, "msg_0000000000000000"));
        assert_eq!(due_time_of(&due("ws", -42, id)), Some(-42));
    }

    #[test]
    fn lanes_do_not_overlap() {
        // "ws" is a prefix of "ws1" and "ws\x01"; their lanes must not mix.
        let id = "msg_0123456789abcdef";
        for other in ["ws1", "ws\x01", "w", "wt"] {
            let k = due(other, 0, id);
            assert!(
                !(due_lane("ws") <= k && k < due_lane_end("ws")),
                "{other:?}"
            );
        }
        let k = due("ws", i64::MAX, "msg_ffffffffffffffff");
        assert!(due_lane("ws") <= k && k < due_lane_end("ws"));
    }

    #[test]
    fn feed_keys_sort_by_seq_and_stay_in_range() {
        let seqs = [0, 1, 255, 256, 1 << 40, u64::MAX];
        for w in seqs.windows(2) {
            assert!(feed(w[0]) < feed(w[1]));
        }
        for s in seqs {
            assert!(FEED <= feed(s).as_slice() && feed(s) < feed_end());
            assert_eq!(feed_seq_of(&feed(s)), Some(s));
        }
        assert!(feed_end().as_slice() < FEED_HIGH);
        assert!(FEED_HIGH < FEED_TRIMMED);
        assert_eq!(feed_seq_of(FEED_HIGH), None);
    }

    #[test]
    fn retention_keys_sort_by_time_and_stay_in_range() {
        let id = "msg_0123456789abcdef";
        assert!(finished(5, id) < finished_before(6));
        assert!(finished(6, id) > finished_before(6));
        assert!(FINISHED <= finished(i64::MIN, id).as_slice());
        assert!(finished(i64::MAX, id).as_slice() < FINISHED_INDEXED);
        assert_eq!(accepted_day_of(&accepted("app", -3)), Some(-3));
        assert_eq!(accepted_day_of(&accepted("app", 20_000)), Some(20_000));
    }

    #[test]
    fn hex_roundtrip() {
        let b = listing_suffix(-3, "msg_0123456789abcdef");
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert!(from_hex("zz").is_none());
        assert!(from_hex("abc").is_none());
    }
}
