//! Identifiers for submissions and messages: 64 bits drawn by
//! [`rackwave_core::time_ordered_id`] (the time first, so the spool's
//! B-tree appends at its right edge; strictly increasing in this process,
//! so ids drawn together never repeat), as hex.

use rackwave_core::time_ordered_id as time_ordered;

/// Length of the hex part of both id kinds.
const HEX_LEN: usize = 16;

/// Length of a queue id (all hex).
pub(crate) const QUEUE_ID_LEN: usize = HEX_LEN;

/// Prefix of message ids, so they are recognisable in logs and API payloads.
pub(crate) const MESSAGE_ID_PREFIX: &str = "msg_";

/// A fresh queue id: 16 uppercase hex characters.
pub fn new_queue_id() -> String {
    format!("{:016X}", time_ordered())
}

/// A fresh message id: `msg_` followed by 16 lowercase hex characters.
pub(crate) fn new_message_id() -> String {
    format!("{MESSAGE_ID_PREFIX}{:016x}", time_ordered())
}

/// The 64 bits of a queue id or message id (`None` for another shape).
pub(crate) fn value_of(id: &str) -> Option<u64> {
    if is_queue_id(id) {
        u64::from_str_radix(id, 16).ok()
    } else if is_message_id(id) {
        u64::from_str_radix(&id[MESSAGE_ID_PREFIX.len()..], 16).ok()
    } else {
        None
    }
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
        assert_eq!(value_of("00000000000000FF"), Some(255));
        assert_eq!(value_of("msg_00000000000000ff"), Some(255));
        assert_eq!(value_of("msg_00000000000000FF"), None);
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
