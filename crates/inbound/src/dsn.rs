//! Delivery status notifications (RFC 3464): per recipient, what the
//! reporting server did with the message (`Action`), the status code
//! (`Status`, RFC 3463) and the remote reply it quotes
//! (`Diagnostic-Code`), read into the same three things an SMTP reply
//! gives the classifier: a basic code, an enhanced code and a text.

use crate::report::{blocks, field, typed_address, Original};

/// One delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// `Reporting-MTA` (`dns; mx.example.net`).
    pub reporting_mta: Option<String>,
    pub recipients: Vec<RecipientStatus>,
    pub original: Original,
}

/// What the report says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    pub final_recipient: Option<String>,
    pub original_recipient: Option<String>,
    pub action: Action,
    /// RFC 3463 status (`5.1.1`).
    pub status: Option<String>,
    /// `Diagnostic-Code`'s type (`smtp`, `x-postfix`), lowercase.
    pub diagnostic_type: Option<String>,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
    /// `Will-Retry-Until`, in ms since the epoch: until when the reporting
    /// server keeps trying (it does not say when it tries next).
    pub will_retry_until_ms: Option<i64>,
}

/// RFC 3464 §2.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
    Unknown,
}

/// What the classifier reads, as an SMTP reply would give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

impl Dsn {
    /// Reads the text of a `message/delivery-status` part; `None` when it
    /// names no recipient.
    pub fn read(text: &str, original: Original) -> Option<Dsn> {
        let blocks = blocks(text);
        let mut reporting_mta = None;
        let mut recipients = Vec::new();
        for block in &blocks {
            if let Some(r) = field(block, "reporting-mta") {
                reporting_mta.get_or_insert_with(|| typed_address(r));
            }
            let final_recipient = field(block, "final-recipient").map(typed_address);
            let original_recipient = field(block, "original-recipient").map(typed_address);
            let action = field(block, "action").map(Action::parse);
            // A recipient block has an Action and a recipient (RFC 3464
            // makes both required).
            let (Some(action), true) = (
                action,
                final_recipient.is_some() || original_recipient.is_some(),
            ) else {
                continue;
            };
            let diagnostic = field(block, "diagnostic-code");
            recipients.push(RecipientStatus {
                final_recipient,
                original_recipient,
                action,
                status: field(block, "status")
                    .and_then(|s| s.split_whitespace().next())
                    .filter(|s| is_status(s))
                    .map(str::to_string),
                diagnostic_type: diagnostic
                    .and_then(|d| d.split_once(';'))
                    .map(|(t, _)| t.trim().to_ascii_lowercase()),
                diagnostic: diagnostic.map(|d| {
                    d.split_once(';')
                        .map_or(d, |(_, text)| text)
                        .trim()
                        .to_string()
                }),
                remote_mta: field(block, "remote-mta").map(typed_address),
                will_retry_until_ms: field(block, "will-retry-until")
                    .and_then(mail_parser::DateTime::parse_rfc822)
                    .map(|d| d.to_timestamp() * 1000),
            });
        }
        (!recipients.is_empty()).then_some(Dsn {
            reporting_mta,
            recipients,
            original,
        })
    }

    /// The recipient block about `address` and whether it names it: the
    /// one naming it, or the only block when there is one (an address
    /// that forwards is reported under the name it forwards to).
    pub fn about(&self, address: &str) -> Option<(&RecipientStatus, bool)> {
        let named = self.recipients.iter().find(|r| {
            [&r.final_recipient, &r.original_recipient]
                .into_iter()
                .flatten()
                .any(|a| a.eq_ignore_ascii_case(address))
        });
        match (named, self.recipients.as_slice()) {
            (Some(r), _) => Some((r, true)),
            (None, [only]) => Some((only, false)),
            _ => None,
        }
    }
}

impl Action {
    fn parse(value: &str) -> Action {
        // Some servers add a comment: `failed (bad address)`.
        let word = value.split_whitespace().next().unwrap_or("");
        match word.to_ascii_lowercase().as_str() {
            "failed" => Action::Failed,
            "delayed" => Action::Delayed,
            "delivered" => Action::Delivered,
            "relayed" => Action::Relayed,
            "expanded" => Action::Expanded,
            _ => Action::Unknown,
        }
    }
}

impl RecipientStatus {
    /// The reply this block reports: the quoted SMTP reply when there is
    /// one (`smtp; 550-5.1.1 The account …`), else a code of the status'
    /// class with the status as enhanced code and the diagnostic as text.
    pub fn reply(&self) -> Reply {
        let diagnostic = self.diagnostic.clone().unwrap_or_default();
        if self.diagnostic_type.as_deref() == Some("smtp") {
            if let Some(reply) = smtp_reply(&diagnostic, self.status.as_deref()) {
                return reply;
            }
        }
        let class = self
            .status
            .as_deref()
            .and_then(|s| s.chars().next())
            .and_then(|c| c.to_digit(10));
        let code = match (class, self.action) {
            (Some(2), _) => 250,
            (Some(4), _) => 450,
            (Some(5), _) => 550,
            (_, Action::Delayed) => 450,
            (_, Action::Failed) => 550,
            _ => 250,
        };
        Reply {
            code,
            enhanced: self.status.clone(),
            text: diagnostic,
        }
    }
}

/// `550-5.1.1 text…`, `550 5.1.1 text`, `554 text`: the basic code, the
/// enhanced code (from the text, else the block's status) and the text.
fn smtp_reply(diagnostic: &str, status: Option<&str>) -> Option<Reply> {
    let code: u16 = diagnostic.get(..3)?.parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    let rest = diagnostic[3..].trim_start_matches(['-', ' ']);
    let (enhanced, text) = match rest.split_once(' ') {
        Some((first, text)) if is_status(first) => (Some(first.to_string()), text),
        _ if is_status(rest) => (Some(rest.to_string()), ""),
        _ => (status.map(str::to_string), rest),
    };
    Some(Reply {
        code,
        enhanced,
        text: text.trim().to_string(),
    })
}

/// `class.subject.detail` (RFC 3463), class 2, 4 or 5.
fn is_status(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = |p: Option<&str>, max: usize| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(s.as_bytes().first(), Some(b'2' | b'4' | b'5'))
        && ok(parts.next(), 1)
        && ok(parts.next(), 3)
        && ok(parts.next(), 3)
        && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Dsn {
        Dsn::read(text, Original::default()).expect("a recipient")
    }

    #[test]
    fn a_failed_recipient_with_an_smtp_diagnostic() {
        let dsn = read(
            "Reporting-MTA: dns; mx.example.net\r\n\r\n\
             Final-Recipient: rfc822; Ada@Example.org\r\n\
             Original-Recipient: rfc822;ada@example.org\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; mx1.example.org\r\n\
             Diagnostic-Code: smtp; 550-5.1.1 The account does not exist.\r\n \
             550 5.1.1 Check the address.\r\n",
        );
        assert_eq!(dsn.reporting_mta.as_deref(), Some("mx.example.net"));
        let (r, named) = dsn.about("ada@example.org").unwrap();
        assert!(named);
        assert_eq!(r.action, Action::Failed);
        assert_eq!(
            r.reply(),
            Reply {
                code: 550,
                enhanced: Some("5.1.1".into()),
                text: "The account does not exist. 550 5.1.1 Check the address.".into()
            }
        );
    }

    #[test]
    fn without_an_smtp_diagnostic_the_status_decides() {
        let dsn = read(
            "Final-Recipient: rfc822; b@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n\
             Will-Retry-Until: Thu, 3 Dec 2026 10:00:00 +0000\r\n\
             Diagnostic-Code: X-Postfix; connect to mx.example.org[192.0.2.1]:25: Connection timed out\r\n",
        );
        let r = &dsn.recipients[0];
        assert_eq!(r.action, Action::Delayed);
        assert_eq!(r.will_retry_until_ms, Some(1_796_292_000_000));
        assert_eq!(
            r.reply(),
            Reply {
                code: 450,
                enhanced: Some("4.4.1".into()),
                text: "connect to mx.example.org[192.0.2.1]:25: Connection timed out".into()
            }
        );
        // No status, no diagnostic: the action's class.
        let bare = read("Final-Recipient: rfc822; c@example.org\r\nAction: failed (gone)\r\n");
        assert_eq!(bare.recipients[0].action, Action::Failed);
        assert_eq!(bare.recipients[0].reply().code, 550);
        // A basic code without an enhanced one takes the status.
        let basic = read(
            "Final-Recipient: rfc822; d@example.org\r\nAction: failed\r\nStatus: 5.0.0\r\n\
             Diagnostic-Code: smtp; 554 delivery error: dd This user doesn't have an account\r\n",
        );
        assert_eq!(
            basic.recipients[0].reply(),
            Reply {
                code: 554,
                enhanced: Some("5.0.0".into()),
                text: "delivery error: dd This user doesn't have an account".into()
            }
        );
    }

    #[test]
    fn blocks_without_action_or_recipient_are_not_recipients() {
        assert!(Dsn::read(
            "Reporting-MTA: dns; x\r\n\r\nAction: failed\r\n",
            Original::default()
        )
        .is_none());
        assert!(Dsn::read("garbage\r\n\r\n\r\n%%%\r\n", Original::default()).is_none());
        let two = read(
            "Final-Recipient: rfc822; a@x.example\r\nAction: failed\r\n\r\n\
             Final-Recipient: rfc822; b@x.example\r\nAction: delayed\r\n",
        );
        assert_eq!(two.about("B@x.example").unwrap().0.action, Action::Delayed);
        // Two blocks, neither naming the address: no guess.
        assert!(two.about("c@x.example").is_none());
        assert!(
            !is_status("6.1.1")
                && !is_status("5.1")
                && !is_status("5.1.1.1")
                && is_status("5.7.606")
        );
    }
}
