//! Telnxo's records: the numbers a workspace owns, its messages (SMS and
//! WhatsApp, both directions) and its calls. A message or call waiting for
//! its connector is in its channel's queue while `due_at_ms` is set; the
//! store keeps that queue's index in step with the record.

use serde::{Deserialize, Serialize};

/// Telnxo's channels, each with its own queue and connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Whatsapp,
    Voice,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Sms, Channel::Whatsapp, Channel::Voice];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A number (E.164 with `+`) or alphanumeric sender id an operator gave a
/// workspace, and the channels it may use it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelnxoNumber {
    pub number: String,
    pub workspace_id: String,
    pub channels: Vec<Channel>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Where a message or call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommStatus {
    /// Waiting in its channel's queue.
    Queued,
    /// Taken by the carrier (SMS, WhatsApp).
    Sent,
    Delivered,
    /// WhatsApp: the recipient opened it.
    Read,
    Failed,
    /// An inbound message.
    Received,
    /// A call being dialled.
    Initiated,
    Answered,
    Completed,
    NoAnswer,
}

impl CommStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommStatus::Queued => "queued",
            CommStatus::Sent => "sent",
            CommStatus::Delivered => "delivered",
            CommStatus::Read => "read",
            CommStatus::Failed => "failed",
            CommStatus::Received => "received",
            CommStatus::Initiated => "initiated",
            CommStatus::Answered => "answered",
            CommStatus::Completed => "completed",
            CommStatus::NoAnswer => "no_answer",
        }
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CommStatus::Failed
                | CommStatus::Received
                | CommStatus::Completed
                | CommStatus::NoAnswer
        )
    }
}

/// Why a message or call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommError {
    pub code: String,
    pub description: String,
}

/// One step of a message's or call's life, for its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommStep {
    pub status: String,
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a WhatsApp message carries beyond its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatsappPart {
    /// `text`, `template`, `interactive` (sent); WhatsApp's message type
    /// (received).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    /// The request's `template` or `interactive` object, as given (sent
    /// again on a retry).
    #[serde(default)]
    pub content: serde_json::Value,
    /// A tapped reply button: its id and title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<(String, String)>,
}

/// An SMS or WhatsApp message, sent or received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelnxoMessage {
    /// `msg_…`
    pub id: String,
    pub workspace_id: String,
    pub channel: Channel,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    /// The text (SMS, WhatsApp text; the caption or reply title of a
    /// received message).
    pub body: String,
    /// SMS: `gsm7` or `ucs2`, and the parts it is sent in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(default)]
    pub parts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappPart>,
    pub status: CommStatus,
    /// Sends tried so far.
    #[serde(default)]
    pub attempts: u32,
    /// In the channel's queue, due then.
    #[serde(default)]
    pub due_at_ms: Option<i64>,
    /// Given up (failed, `expired`) if not sent by then.
    pub expires_at_ms: i64,
    /// The carrier's id of each part (SMS) or the `wamid` (WhatsApp).
    #[serde(default)]
    pub carrier_ids: Vec<String>,
    /// SMS: each part's final receipt status (`DELIVRD`, …) once known.
    #[serde(default)]
    pub receipts: Vec<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CommError>,
    #[serde(default)]
    pub history: Vec<CommStep>,
    pub created_at_ms: i64,
}

/// A call placed through the voice connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// `call_…`
    pub id: String,
    pub workspace_id: String,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
    #[serde(default)]
    pub record: bool,
    pub status: CommStatus,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub due_at_ms: Option<i64>,
    pub expires_at_ms: i64,
    #[serde(default)]
    pub initiated_at_ms: Option<i64>,
    #[serde(default)]
    pub answered_at_ms: Option<i64>,
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    #[serde(default)]
    pub duration_seconds: Option<u64>,
    #[serde(default)]
    pub ring_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CommError>,
    #[serde(default)]
    pub history: Vec<CommStep>,
    pub created_at_ms: i64,
}

/// A carrier's report about a message whose sending is not recorded yet
/// (a receipt can overtake the recording of the send it follows), kept
/// durably to be applied again: the carrier was told it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedReport {
    /// Time-ordered: the oldest comes first.
    pub id: String,
    /// Times it was applied and its message was not found.
    pub tries: u32,
    /// The report, as JSON.
    pub report: String,
}
