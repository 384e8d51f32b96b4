//! What MigoSMTP adds to a message for each of its recipients, and the
//! signed tokens its links carry.
//!
//! A token names the workspace, the submission (queue id: a personalized
//! message is one submission per recipient) and the recipient, so the
//! endpoint that receives it knows whom it is about without a lookup, and
//! is signed with the server's tracking key (HMAC-SHA256, 128 bits kept),
//! so an altered or forged token is refused and a link can never be made
//! to point anywhere else. Tokens are URL-safe base64, payload then
//! signature, joined by a dot.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the signature kept in a token.
const SIG_LEN: usize = 16;
/// A token longer than this is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 2048;

/// The tracking key (from `[tracking] secret` or generated into the data
/// directory).
#[derive(Clone)]
pub struct TrackingKey(Vec<u8>);

impl TrackingKey {
    /// A key of at least 16 bytes.
    pub fn new(bytes: Vec<u8>) -> Option<TrackingKey> {
        (bytes.len() >= 16).then_some(TrackingKey(bytes))
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        mac
    }

    /// The token of `what`.
    pub fn sign(&self, what: &Recipient) -> String {
        let payload = what.encode();
        let sig = self.mac(&payload).finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(&sig[..SIG_LEN]))
    }

    /// What a token names, if this key signed it (compared in constant
    /// time) and it is well formed.
    pub fn verify(&self, token: &str) -> Option<Recipient> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, sig) = token.split_once('.')?;
        let payload = B64.decode(payload).ok()?;
        let sig = B64.decode(sig).ok()?;
        if sig.len() != SIG_LEN {
            return None;
        }
        self.mac(&payload).verify_truncated_left(&sig).ok()?;
        Recipient::decode(&payload)
    }
}

/// Whom a token is about: one recipient of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub workspace_id: String,
    pub queue_id: String,
    pub address: String,
    /// The mailing list the message belongs to (its `List-Id`), if any.
    pub list_id: Option<String>,
}

/// Version of the payload layout, its first byte.
const PAYLOAD_V1: u8 = 1;

impl Recipient {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![PAYLOAD_V1];
        for field in [
            self.workspace_id.as_str(),
            self.queue_id.as_str(),
            self.address.as_str(),
            self.list_id.as_deref().unwrap_or(""),
        ] {
            out.extend_from_slice(field.as_bytes());
            out.push(0);
        }
        out
    }

    fn decode(payload: &[u8]) -> Option<Recipient> {
        let (&version, rest) = payload.split_first()?;
        if version != PAYLOAD_V1 {
            return None;
        }
        let text = std::str::from_utf8(rest).ok()?;
        let mut fields = text.strip_suffix('\0')?.split('\0');
        let mut next = || fields.next().map(str::to_string);
        let r = Recipient {
            workspace_id: next()?,
            queue_id: next()?,
            address: next()?,
            list_id: next().filter(|l| !l.is_empty()),
        };
        (fields.next().is_none() && !r.workspace_id.is_empty() && !r.address.is_empty())
            .then_some(r)
    }
}

/// The header fields of RFC 8058 one-click unsubscribe for a recipient,
/// pointing at `{base_url}/u/{token}`, to put at the top of the message
/// (before it is signed, so the signature covers them).
pub fn unsubscribe_headers(key: &TrackingKey, base_url: &str, who: &Recipient) -> String {
    format!(
        "List-Unsubscribe: <{}/u/{}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        base_url.trim_end_matches('/'),
        key.sign(who)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Recipient {
        Recipient {
            workspace_id: "ws_1".into(),
            queue_id: "0123456789ABCDEF".into(),
            address: "ada@example.test".into(),
            list_id: Some("news.example.test".into()),
        }
    }

    #[test]
    fn a_token_names_its_recipient_and_nothing_else_passes() {
        let key = TrackingKey::new(vec![7; 32]).unwrap();
        let token = key.sign(&who());
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(key.verify(&token), Some(who()));
        let no_list = Recipient {
            list_id: None,
            ..who()
        };
        assert_eq!(key.verify(&key.sign(&no_list)), Some(no_list));

        // Another key, an altered payload or signature, garbage: refused.
        let other = TrackingKey::new(vec![8; 32]).unwrap();
        assert_eq!(other.verify(&token), None);
        let (payload, sig) = token.split_once('.').unwrap();
        let mut raw = B64.decode(payload).unwrap();
        let at = raw.iter().position(|b| *b == b'a').unwrap();
        raw[at] = b'b';
        assert_eq!(key.verify(&format!("{}.{sig}", B64.encode(&raw))), None);
        let mut bad_sig = B64.decode(sig).unwrap();
        bad_sig[0] ^= 1;
        assert_eq!(
            key.verify(&format!("{payload}.{}", B64.encode(&bad_sig))),
            None
        );
        for garbage in [
            "",
            ".",
            "abc",
            "abc.def",
            &token[..token.len() - 2],
            &"a".repeat(5000),
        ] {
            assert_eq!(key.verify(garbage), None, "{garbage}");
        }
        assert!(TrackingKey::new(vec![1; 15]).is_none());
    }

    #[test]
    fn unsubscribe_headers_point_at_the_endpoint() {
        let key = TrackingKey::new(vec![7; 32]).unwrap();
        let h = unsubscribe_headers(&key, "https://t.example.test/", &who());
        assert!(
            h.starts_with("List-Unsubscribe: <https://t.example.test/u/"),
            "{h}"
        );
        assert!(h.ends_with(">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    }
}
