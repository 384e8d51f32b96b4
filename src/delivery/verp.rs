//! VERP return paths: the envelope sender of every delivery encodes the
//! message id (`bounce-msg_8f3a2b1c9d4e7f0a@bounces.example`), so an
//! asynchronous bounce arriving later names the message it is about.

const PREFIX: &str = "bounce-";

/// The return path for one message.
pub fn encode(message_id: &str, bounce_domain: &str) -> String {
    format!("{PREFIX}{message_id}@{bounce_domain}")
}

/// The message id of a VERP address of `bounce_domain`, if it is one.
pub fn decode(address: &str, bounce_domain: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(bounce_domain) {
        return None;
    }
    let id = local.strip_prefix(PREFIX)?;
    rackwave_queue::is_message_id(id).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = encode("msg_8f3a2b1c9d4e7f0a", "bounces.example");
        assert_eq!(a, "bounce-msg_8f3a2b1c9d4e7f0a@bounces.example");
        assert_eq!(
            decode(&a, "BOUNCES.example").as_deref(),
            Some("msg_8f3a2b1c9d4e7f0a")
        );
        assert_eq!(decode(&a, "other.example"), None);
        assert_eq!(
            decode("bounce-nonsense@bounces.example", "bounces.example"),
            None
        );
    }
}
