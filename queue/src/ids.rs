//! Random identifiers for submissions and messages.
//!
//! Ids are random rather than sequential so that they reveal nothing about
//! queue volume to the people who see them (the SMTP client sees the queue id
//! in `250 OK queued as ...`, API users see message ids), and so that no
//! durable sequence counter has to be maintained. 64 random bits make
//! collisions very unlikely; the writer thread still checks for them before
//! committing, because a collision would silently overwrite a record.

use rand::Rng;

/// Length of the random hex part of both id kinds.
const HEX_LEN: usize = 16;

/// Prefix of message ids, so they are recognisable in logs and API payloads.
pub const MESSAGE_ID_PREFIX: &str = "msg_";

/// A fresh queue id: 16 uppercase hex characters (64 random bits).
pub fn new_queue_id() -> String {
    format!("{:016X}", rand::thread_rng().gen::<u64>())
}

/// A fresh message id: `msg_` followed by 16 lowercase hex characters.
pub fn new_message_id() -> String {
    format!(
        "{MESSAGE_ID_PREFIX}{:016x}",
        rand::thread_rng().gen::<u64>()
    )
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
}
