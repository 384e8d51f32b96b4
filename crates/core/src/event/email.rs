//! Email events: the status of a message, the reasons a message is
//! deferred or bounced ([`BounceType`]), what a message's history records
//! ([`EmailEvent`]) and the data of each `email.*` webhook.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::EventData;
use crate::Timestamp;

/// Delivery state of one message (one recipient of a submission).
///
/// `Queued` and `Deferred` are *pending*: another attempt will be made.
/// `Delivered` and `Bounced` are *final*.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    #[default]
    Queued,
    Deferred,
    Delivered,
    Bounced,
}

impl MessageStatus {
    /// All statuses, in counter order.
    pub const ALL: [MessageStatus; 4] = [
        MessageStatus::Queued,
        MessageStatus::Deferred,
        MessageStatus::Delivered,
        MessageStatus::Bounced,
    ];

    /// The lowercase name used in JSON, in storage keys and in APIs.
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Deferred => "deferred",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Bounced => "bounced",
        }
    }

    /// Whether no further delivery attempt will be made.
    pub fn is_final(&self) -> bool {
        matches!(self, MessageStatus::Delivered | MessageStatus::Bounced)
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| "status must be queued, deferred, delivered or bounced".to_string())
    }
}

/// Why a message was deferred or bounced. The serialized form (snake_case)
/// is what the API, the logs and `fixtures/bounce-corpus.tsv` use.
///
/// One line per type: what it means, and what the sender should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BounceType {
    /// The mailbox does not exist or is disabled: remove the address; it is safe to suppress.
    InvalidRecipient,
    /// The domain does not exist, has no MX or a null MX (RFC 7505): fix the typo or remove the address.
    InvalidDomain,
    /// The recipient's mailbox is over quota: retry later; a repeated hard bounce suggests an abandoned mailbox.
    MailboxFull,
    /// The message is over a size limit: send it smaller (link large files instead of attaching them).
    MessageTooLarge,
    /// Refused by the receiver's local policy (relaying, access rules, user or tenant restrictions): not the address's fault; review the setup or contact the receiver.
    PolicyBlock,
    /// Judged spam, phishing or unwanted bulk mail: review content, consent and list hygiene; do not suppress the address.
    SpamBlock,
    /// The sending IP or domain is blocklisted or has poor reputation: check blocklists, request delisting, warm up; do not suppress the address.
    ReputationBlock,
    /// SPF, DKIM, DMARC, ARC or reverse DNS failed, or SMTP AUTH was refused: fix the sending domain's DNS records or the credentials.
    AuthenticationFailure,
    /// The message could not be routed (DNS trouble, unroutable address, mail loop): check DNS and transport configuration.
    RoutingError,
    /// The receiver throttles this sender (too many messages, connections or recipients, unusual rate): slow down and retry later.
    RateLimited,
    /// The content or format was refused (virus, attachment, malformed MIME or headers): fix the message itself.
    ContentRejected,
    /// The SMTP dialogue failed (syntax, unsupported command, STARTTLS required, broken server): a client or server bug or misconfiguration.
    ProtocolError,
    /// A transient problem at the receiver (greylisting, server busy, local error, timeout): retry later, nothing to fix.
    TemporaryFailure,
    /// The message was not delivered before its queue lifetime ran out: nothing more will be tried; the last deferral says why.
    Expired,
    /// The reply allows no confident classification (e.g. a bare `550`): read the text; never suppress an address on this alone.
    #[default]
    Other,
}

impl BounceType {
    /// Whether this bounce says the address itself is bad, so mail to it
    /// should stop (a suppression): only a mailbox or domain that does not
    /// exist. Blocks, full mailboxes and everything temporary say nothing
    /// about the address.
    pub fn suppresses(self) -> bool {
        matches!(
            self,
            BounceType::InvalidRecipient | BounceType::InvalidDomain
        )
    }

    /// Every type, in declaration order.
    pub const ALL: [BounceType; 15] = [
        BounceType::InvalidRecipient,
        BounceType::InvalidDomain,
        BounceType::MailboxFull,
        BounceType::MessageTooLarge,
        BounceType::PolicyBlock,
        BounceType::SpamBlock,
        BounceType::ReputationBlock,
        BounceType::AuthenticationFailure,
        BounceType::RoutingError,
        BounceType::RateLimited,
        BounceType::ContentRejected,
        BounceType::ProtocolError,
        BounceType::TemporaryFailure,
        BounceType::Expired,
        BounceType::Other,
    ];

    /// The snake_case name, identical to the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceType::InvalidRecipient => "invalid_recipient",
            BounceType::InvalidDomain => "invalid_domain",
            BounceType::MailboxFull => "mailbox_full",
            BounceType::MessageTooLarge => "message_too_large",
            BounceType::PolicyBlock => "policy_block",
            BounceType::SpamBlock => "spam_block",
            BounceType::ReputationBlock => "reputation_block",
            BounceType::AuthenticationFailure => "authentication_failure",
            BounceType::RoutingError => "routing_error",
            BounceType::RateLimited => "rate_limited",
            BounceType::ContentRejected => "content_rejected",
            BounceType::ProtocolError => "protocol_error",
            BounceType::TemporaryFailure => "temporary_failure",
            BounceType::Expired => "expired",
            BounceType::Other => "other",
        }
    }

    /// What the type means and what the sender should do, in one sentence
    /// (for the API and the dashboard).
    pub fn description(self) -> &'static str {
        match self {
            BounceType::InvalidRecipient => "The mailbox does not exist or has been disabled. Remove the address; do not retry.",
            BounceType::InvalidDomain => "The recipient domain does not exist, has no mail servers or publishes a null MX. Correct the address or remove it.",
            BounceType::MailboxFull => "The recipient's mailbox is over quota. Retry later; repeated permanent failures suggest an abandoned mailbox.",
            BounceType::MessageTooLarge => "The message exceeds a size limit of the receiving system. Send a smaller message, e.g. link large attachments instead.",
            BounceType::PolicyBlock => "The receiver refused the message by local policy (relaying, access rules, user or tenant restrictions). Not the address's fault; review the sending setup or contact the receiver.",
            BounceType::SpamBlock => "The message was judged to be spam, phishing or unwanted bulk mail. Review content, consent and list hygiene; do not suppress the address.",
            BounceType::ReputationBlock => "The sending IP address or domain is on a blocklist or has a poor reputation. Check blocklists, request delisting and reduce complaints; do not suppress the address.",
            BounceType::AuthenticationFailure => "The receiver could not authenticate the sender (SPF, DKIM, DMARC, ARC, reverse DNS or SMTP AUTH). Fix the sending domain's DNS records or the credentials.",
            BounceType::RoutingError => "The message could not be routed (DNS failure, unroutable address, mail loop). Check DNS and the transport configuration.",
            BounceType::RateLimited => "The receiver is throttling this sender (too many messages, connections or recipients, or an unusual rate). Slow down and retry later.",
            BounceType::ContentRejected => "The message content or format was refused (virus, attachment type, malformed MIME or headers). Fix the message itself.",
            BounceType::ProtocolError => "The SMTP dialogue failed (syntax error, unsupported command, STARTTLS required, broken server). Indicates a bug or misconfiguration.",
            BounceType::TemporaryFailure => "A transient problem at the receiver (greylisting, server busy, local error, timeout). Retry later; nothing to fix.",
            BounceType::Expired => "The message could not be delivered before its queue lifetime ran out. Nothing more will be attempted.",
            BounceType::Other => "The reply did not allow a confident classification. Read the reply text; never suppress an address on this alone.",
        }
    }
}

impl fmt::Display for BounceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`BounceType::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBounceType(pub String);

impl fmt::Display for UnknownBounceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown bounce type {:?}", self.0)
    }
}

impl std::error::Error for UnknownBounceType {}

impl FromStr for BounceType {
    type Err = UnknownBounceType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BounceType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownBounceType(s.to_string()))
    }
}

/// Why a message was deferred, as recorded in its history and sent in
/// `email.deferred`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeferredDetail {
    /// The reply text (or what went wrong locally).
    pub defer_reason: String,
    /// The enhanced status code, or the basic code when there was none.
    pub defer_code: String,
    pub defer_type: BounceType,
    pub next_retry_at: Timestamp,
    /// The rule of the bounce classifier that decided the type.
    pub classified_by: String,
}

/// Why a message bounced, as recorded in its history and sent in
/// `email.bounced`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BouncedDetail {
    pub bounce_type: BounceType,
    pub bounce_code: String,
    pub bounce_reason: String,
    /// The rule of the bounce classifier that decided the type.
    pub classified_by: String,
}

/// One step of a message's life, as its history records it: the event and
/// the data only that step knows. What every step shares (the message, the
/// time, the attempt number, the remote reply) is stored beside it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EmailEvent {
    /// Accepted and durably queued.
    #[serde(rename = "email.queued")]
    Queued,
    /// The message data was handed to the remote server (whatever it then
    /// replied).
    #[serde(rename = "email.sent")]
    Sent,
    #[serde(rename = "email.delivered")]
    Delivered,
    #[serde(rename = "email.deferred")]
    Deferred(DeferredDetail),
    #[serde(rename = "email.bounced")]
    Bounced(BouncedDetail),
}

impl EmailEvent {
    pub fn event_type(&self) -> super::EventType {
        use super::EventType;
        match self {
            EmailEvent::Queued => EventType::EmailQueued,
            EmailEvent::Sent => EventType::EmailSent,
            EmailEvent::Delivered => EventType::EmailDelivered,
            EmailEvent::Deferred(_) => EventType::EmailDeferred,
            EmailEvent::Bounced(_) => EventType::EmailBounced,
        }
    }

    /// The status a settlement with this event leaves the message in;
    /// `None` for the events that are not settlements.
    pub fn settles_as(&self) -> Option<MessageStatus> {
        match self {
            EmailEvent::Queued | EmailEvent::Sent => None,
            EmailEvent::Delivered => Some(MessageStatus::Delivered),
            EmailEvent::Deferred(_) => Some(MessageStatus::Deferred),
            EmailEvent::Bounced(_) => Some(MessageStatus::Bounced),
        }
    }

    /// The webhook data of this step of `message`'s life: the one place a
    /// history entry becomes an event.
    pub fn data(
        &self,
        message: MessageRef,
        at: Timestamp,
        attempt_number: u32,
        smtp_response: Option<String>,
    ) -> EventData {
        match self {
            EmailEvent::Queued => EmailQueued {
                message,
                queued_at: at,
            }
            .into(),
            EmailEvent::Sent => EmailSent {
                message,
                sent_at: at,
                attempt_number,
            }
            .into(),
            EmailEvent::Delivered => EmailDelivered {
                message,
                delivered_at: at,
                attempt_number,
                smtp_response,
            }
            .into(),
            EmailEvent::Deferred(detail) => EmailDeferred {
                message,
                detail: detail.clone(),
                attempt_number,
                deferred_at: at,
                smtp_response,
            }
            .into(),
            EmailEvent::Bounced(detail) => EmailBounced {
                message,
                detail: detail.clone(),
                attempt_number,
                bounced_at: at,
                smtp_response,
            }
            .into(),
        }
    }
}

/// The message an email event is about: the fields every email event of
/// the spool carries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageRef {
    pub message_id: String,
    /// The submission it belongs to (`250 OK queued as …`).
    pub queue_id: String,
    /// Envelope recipient.
    pub to: String,
    /// Envelope sender.
    pub from: String,
    pub subject: Option<String>,
    /// The message's status as of this event.
    pub status: MessageStatus,
    /// Labels the sender gave the message (HTTP API `tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Key/value pairs the sender gave the message (HTTP API `metadata`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `email.queued`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailQueued {
    #[serde(flatten)]
    pub message: MessageRef,
    pub queued_at: Timestamp,
}

/// `email.sent`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailSent {
    #[serde(flatten)]
    pub message: MessageRef,
    pub sent_at: Timestamp,
    pub attempt_number: u32,
}

/// `email.delivered`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailDelivered {
    #[serde(flatten)]
    pub message: MessageRef,
    pub delivered_at: Timestamp,
    pub attempt_number: u32,
    /// The remote server's reply.
    pub smtp_response: Option<String>,
}

/// `email.deferred`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailDeferred {
    #[serde(flatten)]
    pub message: MessageRef,
    #[serde(flatten)]
    pub detail: DeferredDetail,
    pub attempt_number: u32,
    pub deferred_at: Timestamp,
    pub smtp_response: Option<String>,
}

/// `email.bounced`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailBounced {
    #[serde(flatten)]
    pub message: MessageRef,
    #[serde(flatten)]
    pub detail: BouncedDetail,
    pub attempt_number: u32,
    pub bounced_at: Timestamp,
    pub smtp_response: Option<String>,
}

/// `email.opened`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailOpened {
    pub message_id: String,
    pub to: String,
    pub opened_at: Timestamp,
    pub ip_address: String,
    pub user_agent: String,
    /// The signals say a machine fetched the pixel (a mail provider's
    /// image proxy, Apple Mail Privacy Protection, a scanner): recorded
    /// all the same, for the integrator to filter.
    #[serde(default)]
    pub machine: bool,
    /// The message's first recorded open.
    #[serde(default)]
    pub first: bool,
}

/// `email.clicked`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailClicked {
    pub message_id: String,
    pub to: String,
    pub clicked_at: Timestamp,
    pub link_url: String,
    pub ip_address: String,
    #[serde(default)]
    pub user_agent: String,
    /// The signals say a machine followed the link (a security scanner,
    /// one clicking within seconds of delivery).
    #[serde(default)]
    pub machine: bool,
    /// The message's first recorded click.
    #[serde(default)]
    pub first: bool,
}

/// `email.complained`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailComplained {
    pub message_id: String,
    pub to: String,
    pub complained_at: Timestamp,
    pub feedback_source: String,
}

/// `email.unsubscribed`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmailUnsubscribed {
    pub message_id: String,
    pub to: String,
    pub unsubscribed_at: Timestamp,
    pub list_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_entries_round_trip_and_become_webhook_data() {
        let deferred = EmailEvent::Deferred(DeferredDetail {
            defer_reason: "greylisted".into(),
            defer_code: "4.7.1".into(),
            defer_type: BounceType::TemporaryFailure,
            next_retry_at: Timestamp(300_000),
            classified_by: "Greylisting".into(),
        });
        for e in [
            EmailEvent::Queued,
            EmailEvent::Sent,
            EmailEvent::Delivered,
            deferred.clone(),
        ] {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(
                serde_json::from_str::<EmailEvent>(&json).unwrap(),
                e,
                "{json}"
            );
        }
        let message = MessageRef {
            message_id: "msg_1".into(),
            to: "a@b.test".into(),
            status: MessageStatus::Deferred,
            ..MessageRef::default()
        };
        let data = deferred.data(message, Timestamp(0), 2, Some("451 4.7.1 later".into()));
        assert_eq!(data.event_type(), super::super::EventType::EmailDeferred);
        let v = serde_json::to_value(&data).unwrap();
        assert_eq!(v["defer_reason"], "greylisted");
        assert_eq!(v["defer_type"], "temporary_failure");
        assert_eq!(v["next_retry_at"], "1970-01-01T00:05:00Z");
        assert_eq!(v["attempt_number"], 2);
        assert_eq!(v["status"], "deferred");
        assert_eq!(v["smtp_response"], "451 4.7.1 later");
    }

    #[test]
    fn bounce_type_labels_round_trip() {
        for t in BounceType::ALL {
            assert_eq!(t.as_str().parse::<BounceType>(), Ok(t));
            assert!(!t.description().is_empty());
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
    }
}
