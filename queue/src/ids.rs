//! Identifiers for submissions and messages.
//!
//! An id is 64 bits: the time it was drawn (milliseconds since the Unix
//! epoch, 44 bits, enough until the year 2527) followed by 20 random bits.
//!
//! Why the time first: ids are the keys of records, bodies and submission
//! indexes in the spool's B-tree. Random keys scatter every insert over the
//! whole tree, so once the tree outgrows the cache each enqueue reads and
//! rewrites pages from all over the disk and gets slower with queue depth;
//! time-ordered keys append at the right edge and keep the working set
//! small whatever the depth.
//!
//! Why random bits and no plain counter: ids are shown to SMTP clients
//! (`250 OK queued as ...`) and API users, and must not reveal queue
//! volume; no durable sequence has to be kept either.
//!
//! Why ids are still unique: random bits alone collide. Submissions arrive
//! in bursts (a group commit answers dozens of clients at once, and they
//! all start their next message in the same millisecond), and 50 draws in
//! one millisecond share a value about once in 800 bursts: a race at 4,000
//! messages/s saw a `451` every few runs for a queue id already in use. So
//! every id drawn in this process is strictly greater than the one before
//! (when the random draw is not, the id is the previous one plus one). The
//! spool is open in one process at a time, so ids are unique unless the
//! clock steps back across a restart; the writer thread checks for that
//! before committing, because a collision would overwrite a record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// Length of the hex part of both id kinds.
const HEX_LEN: usize = 16;

/// Random low bits of an id.
const RANDOM_BITS: u32 = 20;

/// Prefix of message ids, so they are recognisable in logs and API payloads.
pub(crate) const MESSAGE_ID_PREFIX: &str = "msg_";

/// The last id drawn in this process.
static LAST: AtomicU64 = AtomicU64::new(0);

fn time_ordered() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random = rand::thread_rng().gen::<u64>() & ((1 << RANDOM_BITS) - 1);
    let drawn = (ms << RANDOM_BITS) | random;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let id = drawn.max(last + 1);
        match LAST.compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return id,
            Err(now) => last = now,
        }
    }
}

/// A fresh queue id: 16 uppercase hex characters.
pub fn new_queue_id() -> String {
    format!("{:016X}", time_ordered())
}

/// A fresh message id: `msg_` followed by 16 lowercase hex characters.
pub(crate) fn new_message_id() -> String {
    format!("{MESSAGE_ID_PREFIX}{:016x}", time_ordered())
}

/// Whether `s` has the shape of a queue id. Used to reject garbage early
/// instead of building keys out of arbitrary caller input.
pub fn is_queue_id(s: &str) -> bool {
    s.len() == HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// Whether `s` has the shape of a message id.
pub fn is_message_id(s: &str) -> bool {
    s.strip_prefix(MESSAGE_ID_PREFIX).is_some_and(|hex| {
        hex.len() == HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        for _ in 0..100 {
            assert!(is_queue_id(&new_queue_id()));
            assert!(is_message_id(&new_message_id()));
        }
        assert!(!is_queue_id("abcdef0123456789"));
        assert!(!is_message_id("msg_ABCDEF0123456789"));
        assert!(!is_message_id("msg_0123"));
    }

    #[test]
    fn ids_drawn_together_never_repeat() {
        // Four threads drawing as fast as they can: thousands of ids per
        // millisecond, where 20 random bits alone repeat many times over.
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..50_000).map(|_| new_queue_id()).collect::<Vec<_>>()))
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(all.insert(id.clone()), "{id} drawn twice");
            }
        }
        let mut last = new_message_id();
        for _ in 0..10_000 {
            let next = new_message_id();
            assert!(next > last, "{next} after {last}");
            last = next;
        }
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let first = new_message_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_message_id();
        assert!(first < second, "{first} then {second}");
        let a = new_queue_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(a < new_queue_id());
    }
}
