//! Feedback reports (RFC 5965, the Abuse Reporting Format): a mailbox
//! provider telling us that a recipient marked a message as spam.

use crate::report::{angle_addresses, blocks, clip, field, typed_address, Original};

/// Octets of `feedback_source` kept: it is what the report says of itself.
const MAX_SOURCE: usize = 255;

/// One feedback report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// `abuse`, `fraud`, `virus`, `other`, `not-spam`, `auth-failure`
    /// (lowercase).
    pub feedback_type: String,
    pub user_agent: Option<String>,
    /// Our envelope sender, when the provider reports it.
    pub original_mail_from: Option<String>,
    pub original_rcpt_to: Vec<String>,
    /// Who sent the report, for `feedback_source`: the domain of the
    /// report's sender, else its `Reporting-MTA`, else its `User-Agent`
    /// (as the report declares it: only the message it names is checked).
    pub source: String,
    pub original: Original,
}

impl Feedback {
    /// Reads the text of a `message/feedback-report` part; `sender` is the
    /// report's `From` address. `None` without a `Feedback-Type`.
    pub fn read(text: &str, sender: Option<&str>, original: Original) -> Option<Feedback> {
        let fields: Vec<(String, String)> = blocks(text).into_iter().flatten().collect();
        let feedback_type = field(&fields, "feedback-type")?
            .split_whitespace()
            .next()?
            .to_ascii_lowercase();
        let user_agent = field(&fields, "user-agent").map(str::to_string);
        let reporting_mta = field(&fields, "reporting-mta").map(typed_address);
        let mut source = sender
            .and_then(|s| s.rsplit_once('@'))
            .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .or(reporting_mta)
            .or_else(|| user_agent.clone())
            .unwrap_or_else(|| "unknown".into());
        clip(&mut source, MAX_SOURCE);
        let address = |v: &str| {
            angle_addresses(v)
                .into_iter()
                .next()
                .unwrap_or_else(|| typed_address(v))
        };
        Some(Feedback {
            feedback_type,
            user_agent,
            original_mail_from: field(&fields, "original-mail-from").map(address),
            original_rcpt_to: fields
                .iter()
                .filter(|(n, _)| n == "original-rcpt-to")
                .map(|(_, v)| address(v))
                .filter(|a| !a.is_empty())
                .collect(),
            source,
            original,
        })
    }

    /// Whether the recipient complained: `abuse`, `fraud` and `virus` are
    /// complaints; `not-spam` is the opposite, and `auth-failure` (RFC
    /// 6591) and `other` are about something else.
    pub fn is_complaint(&self) -> bool {
        matches!(self.feedback_type.as_str(), "abuse" | "fraud" | "virus")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_source() {
        let f = Feedback::read(
            "Feedback-Type: abuse\r\nUser-Agent: SomeFBL/1.0\r\nVersion: 1\r\n\
             Original-Mail-From: <bounce-msg_1-abc@bounces.example>\r\n\
             Original-Rcpt-To: <ada@example.org>\r\nReporting-MTA: dns; fbl.example.org\r\n",
            Some("feedback@arf.example.org"),
            Original::default(),
        )
        .unwrap();
        assert!(f.is_complaint());
        assert_eq!(
            f.original_mail_from.as_deref(),
            Some("bounce-msg_1-abc@bounces.example")
        );
        assert_eq!(f.original_rcpt_to, ["ada@example.org"]);
        assert_eq!(f.source, "arf.example.org");
        let no_sender = Feedback::read(
            "Feedback-Type: Not-Spam\r\nReporting-MTA: dns; fbl.example.org\r\n",
            None,
            Original::default(),
        )
        .unwrap();
        assert!(!no_sender.is_complaint());
        assert_eq!(no_sender.source, "fbl.example.org");
        assert!(Feedback::read("User-Agent: x\r\n", None, Original::default()).is_none());
    }
}
