//! Building a message from its parts (the HTTP send API, and later the
//! portal's notifications): checks every part, then writes the MIME with
//! `mail-builder` (RFC 2047 words for non-ASCII names and subjects, RFC 2231
//! file names, quoted-printable or base64 bodies as the content needs,
//! `multipart/alternative` for text and HTML, `multipart/mixed` with
//! attachments). The result goes through [`Intake::submit`](crate::Intake::submit)
//! like a message received over SMTP.

use std::borrow::Cow;

use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::text::Text;
use mail_builder::MessageBuilder;
use rackwave_smtp_proto::address::is_mailbox;

/// A mailbox: an address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl Mailbox {
    /// `alice@example.com` or `Alice Example <alice@example.com>` (the name
    /// may be quoted). `None` when it is not a mailbox.
    pub fn parse(s: &str) -> Option<Mailbox> {
        let s = s.trim();
        if has_line_break(s) {
            return None;
        }
        let (name, address) = match s.rsplit_once('<') {
            Some((name, rest)) => {
                let address = rest.strip_suffix('>')?;
                let name = name.trim().trim_matches('"').trim();
                ((!name.is_empty()).then(|| name.to_string()), address.trim())
            }
            None => (None, s),
        };
        is_mailbox(address).then(|| Mailbox {
            name,
            address: address.to_string(),
        })
    }

    fn header(&self) -> Address<'_> {
        Address::new_address(self.name.as_deref(), self.address.as_str())
    }
}

/// A file sent with the message.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// Everything a composed message is made of.
#[derive(Debug, Clone, Default)]
pub struct Composition {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Envelope recipients only: never written into the message.
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Extra header fields, in order.
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
}

/// What a composition may hold at most.
#[derive(Debug, Clone, Copy)]
pub struct ComposeLimits {
    /// `to`, `cc` and `bcc` together.
    pub max_recipients: usize,
    /// One attachment's decoded size.
    pub max_attachment_bytes: usize,
}

/// A part that cannot be sent, with the path of the field at fault
/// (`to[2]`, `headers.X-Campaign`, `attachments[0].content`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ComposeError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ComposeError {
    ComposeError {
        field: field.into(),
        message: message.into(),
    }
}

/// A composed message, ready for the intake.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The envelope sender: the `from` address.
    pub mail_from: String,
    /// `to`, `cc` and `bcc`, each address once (compared case-insensitively).
    pub recipients: Vec<String>,
    /// Recipients that are not mailboxes, as given: left out.
    pub invalid: Vec<String>,
    pub message: Vec<u8>,
}

/// Header fields the composition writes itself, or that only the server
/// may write: a caller's `headers` may not set them.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "received",
    "return-path",
    "dkim-signature",
    "sender",
];

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

/// A header field name of RFC 5322 §3.6.8: printable ASCII but `:`.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// A MIME type `type/subtype` of token characters (RFC 2045 §5.1).
fn is_mime_type(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    s.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

impl Composition {
    /// Checks every part and writes the message. `date_ms` and `message_id`
    /// (without angle brackets) come from the caller, so the message
    /// carries the injectable clock's time and the server's host name.
    pub fn compose(
        &self,
        limits: ComposeLimits,
        date_ms: i64,
        message_id: &str,
    ) -> Result<Composed, ComposeError> {
        let from = Mailbox::parse(&self.from)
            .ok_or_else(|| bad("from", "not a mailbox (address, or Name <address>)"))?;
        let list = |field: &str, items: &[String]| -> Result<Vec<Mailbox>, ComposeError> {
            items
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    Mailbox::parse(s).ok_or_else(|| bad(format!("{field}[{i}]"), "not a mailbox"))
                })
                .collect()
        };
        // A recipient that is not a mailbox is left out (and reported);
        // the others are sent to.
        let mut invalid = Vec::new();
        let mut recipients = |items: &[String]| -> Vec<Mailbox> {
            items
                .iter()
                .filter_map(|s| {
                    let m = Mailbox::parse(s);
                    if m.is_none() {
                        invalid.push(s.clone());
                    }
                    m
                })
                .collect()
        };
        let to = recipients(&self.to);
        let cc = recipients(&self.cc);
        let bcc = recipients(&self.bcc);
        let reply_to = list("reply_to", &self.reply_to)?;
        let given = self.to.len() + self.cc.len() + self.bcc.len();
        let count = to.len() + cc.len() + bcc.len();
        if count == 0 {
            let message = if given == 0 {
                "at least one recipient in to, cc or bcc"
            } else {
                "no recipient is a mailbox"
            };
            return Err(bad("to", message));
        }
        if given > limits.max_recipients {
            return Err(bad(
                "to",
                format!(
                    "{given} recipients; at most {} in to, cc and bcc together",
                    limits.max_recipients
                ),
            ));
        }
        if has_line_break(&self.subject) {
            return Err(bad("subject", "must not contain CR or LF"));
        }
        if self.text.is_none() && self.html.is_none() {
            return Err(bad("text", "a text or an html body is required"));
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if !is_field_name(name) {
                return Err(bad(field, "not a header field name"));
            }
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(bad(field, "set by the API itself; use its own field"));
            }
            if has_line_break(value) {
                return Err(bad(field, "must not contain CR or LF"));
            }
            if value.len() > 998 {
                return Err(bad(field, "longer than 998 octets"));
            }
        }
        for (i, a) in self.attachments.iter().enumerate() {
            if a.filename.trim().is_empty() || has_line_break(&a.filename) {
                return Err(bad(
                    format!("attachments[{i}].filename"),
                    "must be a non-empty name without CR or LF",
                ));
            }
            if !is_mime_type(&a.content_type) {
                return Err(bad(
                    format!("attachments[{i}].content_type"),
                    "not a MIME type (type/subtype)",
                ));
            }
            if a.content.len() > limits.max_attachment_bytes {
                return Err(bad(
                    format!("attachments[{i}].content"),
                    format!(
                        "{} octets; at most {}",
                        a.content.len(),
                        limits.max_attachment_bytes
                    ),
                ));
            }
        }

        let mut b = MessageBuilder::new()
            .from(from.header())
            .subject(Text::new(self.subject.as_str()))
            .date(Date::new(date_ms.div_euclid(1000)))
            .message_id(MessageId::new(message_id));
        if !to.is_empty() {
            b = b.to(address_list(&to));
        }
        if !cc.is_empty() {
            b = b.cc(address_list(&cc));
        }
        if !reply_to.is_empty() {
            b = b.reply_to(address_list(&reply_to));
        }
        for (name, value) in &self.headers {
            b = b.header(name.as_str(), Text::new(value.as_str()));
        }
        if let Some(text) = &self.text {
            b = b.text_body(Cow::Borrowed(text.as_str()));
        }
        if let Some(html) = &self.html {
            b = b.html_body(Cow::Borrowed(html.as_str()));
        }
        for a in &self.attachments {
            b = b.attachment(
                a.content_type.as_str(),
                a.filename.as_str(),
                a.content.as_slice(),
            );
        }
        let message = b
            .write_to_vec()
            .map_err(|e| bad("message", format!("could not be written: {e}")))?;

        let mut recipients: Vec<String> = Vec::with_capacity(count);
        for m in to.iter().chain(&cc).chain(&bcc) {
            if !recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&m.address))
            {
                recipients.push(m.address.clone());
            }
        }
        Ok(Composed {
            mail_from: from.address,
            recipients,
            invalid,
            message,
        })
    }
}

fn address_list(boxes: &[Mailbox]) -> Address<'_> {
    Address::new_list(boxes.iter().map(Mailbox::header).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ComposeLimits = ComposeLimits {
        max_recipients: 1000,
        max_attachment_bytes: 1024,
    };

    fn base() -> Composition {
        Composition {
            from: "Zoë Sender <zoe@sender.test>".into(),
            to: vec!["a@x.test".into()],
            subject: "Grüße".into(),
            text: Some("hello".into()),
            ..Default::default()
        }
    }

    #[test]
    fn mailboxes_parse_with_and_without_names() {
        let m = Mailbox::parse("\"Alice Example\" <alice@example.com>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Alice Example"));
        assert_eq!(m.address, "alice@example.com");
        assert_eq!(Mailbox::parse("bob@example.com").unwrap().name, None);
        for bad in [
            "",
            "bob",
            "<bob>",
            "Bob <bob@x.test",
            "a@b.test\r\nBcc: c@d.test",
        ] {
            assert!(Mailbox::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn every_bad_part_names_its_field() {
        type Change = Box<dyn Fn(&mut Composition)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.from = "nobody".into()), "from"),
            (Box::new(|c| c.to = vec!["x".into()]), "to"),
            (Box::new(|c| c.reply_to.push("x".into())), "reply_to[0]"),
            (Box::new(|c| c.to.clear()), "to"),
            (
                Box::new(|c| c.subject = "hi\r\nBcc: v@x.test".into()),
                "subject",
            ),
            (
                Box::new(|c| c.headers.push(("X-A".into(), "1\nX-B: 2".into()))),
                "headers.X-A",
            ),
            (
                Box::new(|c| c.headers.push(("Bcc".into(), "v@x.test".into()))),
                "headers.Bcc",
            ),
            (
                Box::new(|c| c.headers.push(("Bad Name".into(), "v".into()))),
                "headers.Bad Name",
            ),
            (
                Box::new(|c| {
                    c.text = None;
                }),
                "text",
            ),
            (
                Box::new(|c| {
                    c.attachments.push(Attachment {
                        filename: "a.bin".into(),
                        content_type: "application/octet-stream".into(),
                        content: vec![0; 1025],
                    })
                }),
                "attachments[0].content",
            ),
            (
                Box::new(|c| {
                    c.attachments.push(Attachment {
                        filename: "a.bin".into(),
                        content_type: "nonsense".into(),
                        content: vec![],
                    })
                }),
                "attachments[0].content_type",
            ),
            (
                Box::new(|c| c.bcc = (0..1000).map(|i| format!("b{i}@x.test")).collect()),
                "to",
            ),
        ];
        for (change, field) in cases {
            let mut c = base();
            change(&mut c);
            let e = c.compose(LIMITS, 0, "id@host").unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn bcc_is_in_the_envelope_only_and_recipients_are_unique() {
        let mut c = base();
        c.cc = vec!["B <A@X.test>".into(), "c@x.test".into()];
        c.bcc = vec!["hidden@x.test".into(), "not an address".into()];
        let m = c.compose(LIMITS, 1_700_000_000_000, "id@host").unwrap();
        assert_eq!(m.recipients, ["a@x.test", "c@x.test", "hidden@x.test"]);
        assert_eq!(m.mail_from, "zoe@sender.test");
        assert_eq!(m.invalid, ["not an address"]);
        let text = String::from_utf8(m.message).unwrap();
        assert!(!text.contains("hidden@x.test"), "{text}");
        assert!(text.contains("Message-ID: <id@host>"), "{text}");
        assert!(
            text.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000"),
            "{text}"
        );
    }
}
