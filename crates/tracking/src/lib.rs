//! What MigoSMTP adds to a message for each of its recipients, and the
//! signed tokens its links carry: one-click unsubscribe headers (here),
//! tracked links and the open pixel in the HTML ([`rewrite`]).
//!
//! A token names what it is for (unsubscribe, open, a click and its URL),
//! the workspace, the submission (queue id: a personalized message is one
//! submission per recipient) and the recipient, so the
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
pub const MAX_TOKEN_LEN: usize = 8192;
/// Links to longer URLs are left untracked (their token would be too long).
pub const MAX_TRACKED_URL_LEN: usize = 4096;

mod machine;
mod rewrite;

pub use machine::{machine_click, machine_open, SCANNER_WINDOW_MS};

pub use rewrite::{Prepared, RewriteError, Switches, MAX_TRACKED_LINKS};

/// What a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Unsubscribe,
    /// The open pixel.
    Open,
    /// A tracked link, and where it goes.
    Click(String),
}

impl Link {
    fn kind(&self) -> u8 {
        match self {
            Link::Unsubscribe => b'u',
            Link::Open => b'o',
            Link::Click(_) => b'c',
        }
    }
}

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

    /// The token of `link` for `who`.
    pub fn sign(&self, link: &Link, who: &Recipient) -> String {
        let payload = encode(link, who);
        let sig = self.mac(&payload).finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(&sig[..SIG_LEN]))
    }

    /// What a token is for and whom it names, if this key signed it
    /// (compared in constant time) and it is well formed.
    pub fn verify(&self, token: &str) -> Option<(Link, Recipient)> {
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
        decode(&payload)
    }

    /// The VERP tag of a message's return path: its id and a signature
    /// (`msg_8f3a2b1c9d4e7f0a-3b9c0d1e2f4a`), so the inbound MX takes
    /// bounces for the messages we sent and refuses guessed or altered
    /// addresses. Lowercase hex, because some servers lowercase the
    /// local part they return to.
    pub fn return_path_tag(&self, message_id: &str) -> String {
        let sig = self.return_path_sig(message_id);
        format!("{message_id}-{}", hex_lower(&sig))
    }

    /// The message id of a VERP tag this key made (any case), if it is one.
    pub fn message_of_return_path_tag<'t>(&self, tag: &'t str) -> Option<&'t str> {
        let (id, sig) = tag.rsplit_once('-')?;
        if sig.len() != VERP_SIG_LEN * 2
            || !sig.bytes().all(|b| b.is_ascii_hexdigit())
            || id.is_empty()
            || !id.is_ascii()
        {
            return None;
        }
        let mut given = [0u8; VERP_SIG_LEN];
        for (i, b) in given.iter_mut().enumerate() {
            *b = u8::from_str_radix(sig.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let id_lower = id.to_ascii_lowercase();
        let mut mac = self.mac(b"verp\0");
        mac.update(id_lower.as_bytes());
        mac.verify_truncated_left(&given).ok()?;
        Some(id)
    }

    fn return_path_sig(&self, message_id: &str) -> [u8; VERP_SIG_LEN] {
        let mut mac = self.mac(b"verp\0");
        mac.update(message_id.to_ascii_lowercase().as_bytes());
        let full = mac.finalize().into_bytes();
        let mut sig = [0u8; VERP_SIG_LEN];
        sig.copy_from_slice(&full[..VERP_SIG_LEN]);
        sig
    }
}

/// Bytes of the signature in a VERP tag: 48 bits, beyond guessing one
/// RCPT at a time, short enough for the 64-octet local part.
const VERP_SIG_LEN: usize = 6;

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// Version of the payload layout, its first byte: the kind of link, then
/// NUL-terminated fields.
const PAYLOAD_V2: u8 = 2;

fn encode(link: &Link, who: &Recipient) -> Vec<u8> {
    let mut out = vec![PAYLOAD_V2, link.kind()];
    let url = match link {
        Link::Click(url) => url.as_str(),
        _ => "",
    };
    for field in [
        who.workspace_id.as_str(),
        who.queue_id.as_str(),
        who.address.as_str(),
        who.list_id.as_deref().unwrap_or(""),
        url,
    ] {
        out.extend_from_slice(field.as_bytes());
        out.push(0);
    }
    out
}

fn decode(payload: &[u8]) -> Option<(Link, Recipient)> {
    let (&version, rest) = payload.split_first()?;
    let (&kind, rest) = rest.split_first()?;
    if version != PAYLOAD_V2 {
        return None;
    }
    let text = std::str::from_utf8(rest).ok()?;
    let mut fields = text.strip_suffix('\0')?.split('\0');
    let mut next = || fields.next().map(str::to_string);
    let who = Recipient {
        workspace_id: next()?,
        queue_id: next()?,
        address: next()?,
        list_id: next().filter(|l| !l.is_empty()),
    };
    let url = next()?;
    if fields.next().is_some() || who.workspace_id.is_empty() || who.address.is_empty() {
        return None;
    }
    let link = match kind {
        b'u' if url.is_empty() => Link::Unsubscribe,
        b'o' if url.is_empty() => Link::Open,
        b'c' if !url.is_empty() => Link::Click(url),
        _ => return None,
    };
    Some((link, who))
}

/// The header fields of RFC 8058 one-click unsubscribe for a recipient,
/// pointing at `{base_url}/u/{token}`, to put at the top of the message
/// (before it is signed, so the signature covers them).
pub fn unsubscribe_headers(key: &TrackingKey, base_url: &str, who: &Recipient) -> String {
    format!(
        "List-Unsubscribe: <{}/u/{}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        base_url.trim_end_matches('/'),
        key.sign(&Link::Unsubscribe, who)
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
        let token = key.sign(&Link::Unsubscribe, &who());
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(key.verify(&token), Some((Link::Unsubscribe, who())));
        let no_list = Recipient {
            list_id: None,
            ..who()
        };
        for link in [Link::Open, Link::Click("https://x.test/a?b=c&d".into())] {
            assert_eq!(
                key.verify(&key.sign(&link, &no_list)),
                Some((link, no_list.clone()))
            );
        }
        // A click without a URL, an open with one, an unknown kind: refused
        // even when signed.
        let signed = |p: Vec<u8>| {
            let sig = key.mac(&p).finalize().into_bytes();
            format!("{}.{}", B64.encode(&p), B64.encode(&sig[..SIG_LEN]))
        };
        let mut click_without_url = encode(&Link::Open, &who());
        click_without_url[1] = b'c';
        assert_eq!(key.verify(&signed(click_without_url)), None);
        let mut open_with_url = encode(&Link::Click("https://x.test".into()), &who());
        open_with_url[1] = b'o';
        assert_eq!(key.verify(&signed(open_with_url)), None);
        let mut unknown = encode(&Link::Open, &who());
        unknown[1] = b'z';
        assert_eq!(key.verify(&signed(unknown)), None);

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
            &"a".repeat(9000),
        ] {
            assert_eq!(key.verify(garbage), None, "{garbage}");
        }
        assert!(TrackingKey::new(vec![1; 15]).is_none());
    }

    #[test]
    fn return_path_tags_name_their_message_and_nothing_else_passes() {
        let key = TrackingKey::new(vec![7; 32]).unwrap();
        let tag = key.return_path_tag("msg_8f3a2b1c9d4e7f0a");
        assert_eq!(tag.len(), "msg_8f3a2b1c9d4e7f0a-".len() + 12, "{tag}");
        assert_eq!(
            key.message_of_return_path_tag(&tag),
            Some("msg_8f3a2b1c9d4e7f0a")
        );
        // A server that lowercases or uppercases the local part.
        let upper = tag.to_ascii_uppercase();
        assert_eq!(
            key.message_of_return_path_tag(&upper),
            Some("MSG_8F3A2B1C9D4E7F0A")
        );
        let other = TrackingKey::new(vec![8; 32]).unwrap();
        assert_eq!(other.message_of_return_path_tag(&tag), None);
        let forged = tag.replace("msg_8f3a2b1c9d4e7f0a", "msg_8f3a2b1c9d4e7f0b");
        assert_eq!(key.message_of_return_path_tag(&forged), None);
        for garbage in [
            "",
            "-",
            "msg_1",
            "msg_1-zz",
            "-0123456789ab",
            "msg_1-0123456789",
            "msg_1-ééééééééééé",
        ] {
            assert_eq!(key.message_of_return_path_tag(garbage), None, "{garbage}");
        }
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
