//! Identifiers and secrets.
//!
//! Workspace ids, key ids, API keys and tokens come from the operating
//! system's CSPRNG ([`random_hex`]), so they are unguessable as well as
//! unique.
//!
//! Ids that are keys of large, fast-growing B-trees (queue ids, message
//! ids, event ids) are [`time_ordered_id`]s: 64 bits, the time they were
//! drawn (milliseconds since the Unix epoch, 44 bits, enough until the year
//! 2527) followed by 20 random bits.
//!
//! Why the time first: random keys scatter every insert over the whole
//! tree, so once the tree outgrows the cache each insert reads and rewrites
//! pages from all over the disk, gets slower with depth, and leaves garbage
//! in every segment of a log-structured store (measured on sled 0.34: an
//! event log indexed by random ids grew its file 11 KB per message, by
//! time-ordered ids 6.4 KB); time-ordered keys append at the right edge and
//! keep the working set small.
//!
//! Why random bits and no plain counter: the ids are shown to SMTP clients
//! (`250 OK queued as ...`) and API users, and must not reveal volume; no
//! durable sequence has to be kept either.
//!
//! Why they are still unique: random bits alone collide. Submissions arrive
//! in bursts (a group commit answers dozens of clients at once, and they
//! all start their next message in the same millisecond), and 50 draws in
//! one millisecond share a value about once in 800 bursts: a race at 4,000
//! messages/s saw a `451` every few runs for a queue id already in use. So
//! every id drawn in this process is strictly greater than the one before
//! (when the random draw is not, the id is the previous one plus one). Ids
//! are unique unless the clock steps back across a restart: the spool
//! hands the newest id it stores to [`time_ordered_ids_after`] when it
//! opens, so ids drawn afterwards are newer than every stored one (and it
//! checks each id against its tree only when that was refused).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::{Rng, RngCore};

/// The low bits of a time-ordered id after its time.
const RANDOM_BITS: u32 = 20;

/// Of those, the bits naming the node that drew it, when several nodes
/// share a store ([`set_id_node`]); the rest stay random.
const NODE_BITS: u32 = 8;
const NODE_SHIFT: u32 = RANDOM_BITS - NODE_BITS;

/// How many nodes can draw ids into one store.
pub const ID_NODES: u32 = 1 << NODE_BITS;

/// No node set: all 20 low bits random.
const NO_NODE: u64 = u64::MAX;

/// The last time-ordered id drawn in this process.
static LAST: AtomicU64 = AtomicU64::new(0);

/// This process's node number in its ids, or [`NO_NODE`].
static NODE: AtomicU64 = AtomicU64::new(NO_NODE);

/// Puts `node` (below [`ID_NODES`]) into every id drawn from now on: with
/// several nodes writing into one store, ids drawn in the same
/// millisecond on two nodes could otherwise meet (20 random bits repeat
/// within a day at a thousand messages a second on each), so each node
/// draws from its own eighth of the bits, given it by the store.
pub fn set_id_node(node: u32) {
    assert!(node < ID_NODES, "node numbers are below {ID_NODES}");
    NODE.store(node as u64, Ordering::Relaxed);
}

/// A fresh time-ordered id (see the module docs): strictly greater than
/// every one drawn before it in this process, and with a node number set,
/// carrying it.
pub fn time_ordered_id() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let node = NODE.load(Ordering::Relaxed);
    let random = rand::thread_rng().gen::<u64>();
    let low = match node {
        NO_NODE => random & ((1 << RANDOM_BITS) - 1),
        node => (node << NODE_SHIFT) | (random & ((1 << NODE_SHIFT) - 1)),
    };
    let drawn = (ms << RANDOM_BITS) | low;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let id = drawn.max(next_after(last, node));
        match LAST.compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return id,
            Err(now) => last = now,
        }
    }
}

/// The smallest id after `last` that carries `node`: one more, unless that
/// runs out of the node's bits, then the node's first in the next
/// millisecond.
fn next_after(last: u64, node: u64) -> u64 {
    let next = last + 1;
    if node == NO_NODE || (next >> NODE_SHIFT) & (ID_NODES as u64 - 1) == node {
        return next;
    }
    let ms = last >> RANDOM_BITS;
    let in_this_ms = (ms << RANDOM_BITS) | (node << NODE_SHIFT);
    if in_this_ms > last {
        in_this_ms
    } else {
        ((ms + 1) << RANDOM_BITS) | (node << NODE_SHIFT)
    }
}

/// Makes every id drawn from now on greater than `id`, one read from
/// storage, so no later draw repeats a stored id even if the clock stepped
/// back since it was written. Refuses (`false`, nothing changed) an id
/// more than a day ahead of the clock: not one of ours (an earlier
/// version's random id, say), and raising the floor that far would make
/// the ids stop following time.
pub fn time_ordered_ids_after(id: u64) -> bool {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let limit = (now_ms + 86_400_000) << RANDOM_BITS;
    if id > limit {
        return false;
    }
    LAST.fetch_max(id, Ordering::Relaxed);
    true
}

/// `bytes` random bytes as lowercase hex (twice as many characters).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_length_and_uniqueness() {
        let a = super::random_hex(8);
        assert_eq!(a.len(), 16);
        assert_ne!(a, super::random_hex(8));
    }

    #[test]
    fn the_next_id_keeps_the_node() {
        use super::*;
        let node = 5u64;
        let at = |ms: u64, low: u64| (ms << RANDOM_BITS) | (node << NODE_SHIFT) | low;
        assert_eq!(next_after(at(7, 3), node), at(7, 4));
        // The node's last in a millisecond: its first in the next.
        let full = at(7, (1 << NODE_SHIFT) - 1);
        assert_eq!(next_after(full, node), at(8, 0));
        // After another node's id (a floor raised from storage): this
        // node's first above it.
        assert_eq!(
            next_after((7 << RANDOM_BITS) | (2 << NODE_SHIFT), node),
            at(7, 0)
        );
        assert_eq!(
            next_after((7 << RANDOM_BITS) | (9 << NODE_SHIFT), node),
            at(8, 0)
        );
        assert_eq!(next_after(41, NO_NODE), 42);
    }

    #[test]
    fn time_ordered_ids_drawn_together_never_repeat_and_rise() {
        // Four threads drawing as fast as they can: thousands of ids per
        // millisecond, where 20 random bits alone repeat many times over.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..50_000)
                        .map(|_| super::time_ordered_id())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            let ids = t.join().unwrap();
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            for id in ids {
                assert!(all.insert(id), "{id} drawn twice");
            }
        }
        let a = super::time_ordered_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::time_ordered_id();
        // Two milliseconds apart: the time part moved.
        assert!(b >> 20 > a >> 20, "{a:x} then {b:x}");

        // In the same test: a raised floor puts the ids ahead of the clock.
        let now = super::time_ordered_id();
        // Ten seconds ahead: a clock that stepped back since it was stored.
        let stored = now + (10_000 << super::RANDOM_BITS);
        assert!(super::time_ordered_ids_after(stored));
        let next = super::time_ordered_id();
        assert!(next > stored, "{next:x} after {stored:x}");
        // A random 64-bit id is centuries ahead: refused, floor unchanged.
        assert!(!super::time_ordered_ids_after(u64::MAX - 5));
        assert!(super::time_ordered_id() < u64::MAX - 5);
    }
}
