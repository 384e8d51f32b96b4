//! Telnxo events: SMS, voice and WhatsApp.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// `sms.queued`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SmsQueued {
    pub message_id: String,
    pub to: String,
    pub from: String,
    pub queued_at: Timestamp,
}

/// `sms.sent`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SmsSent {
    pub message_id: String,
    pub to: String,
    pub from: String,
    pub sent_at: Timestamp,
    /// Parts of a concatenated message (1 for a single part).
    pub parts: u32,
}

/// `sms.delivered`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SmsDelivered {
    pub message_id: String,
    pub to: String,
    pub delivered_at: Timestamp,
    /// The carrier's delivery report status, e.g. `DELIVRD`.
    pub dlr_status: String,
}

/// `sms.failed`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SmsFailed {
    pub message_id: String,
    pub to: String,
    pub failed_at: Timestamp,
    pub error_code: String,
    pub error_description: String,
}

/// `sms.inbound`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SmsInbound {
    pub message_id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub received_at: Timestamp,
}

/// `voice.initiated`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VoiceInitiated {
    pub call_id: String,
    pub to: String,
    pub from: String,
    pub initiated_at: Timestamp,
}

/// `voice.answered`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VoiceAnswered {
    pub call_id: String,
    pub to: String,
    pub answered_at: Timestamp,
}

/// `voice.completed`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VoiceCompleted {
    pub call_id: String,
    pub to: String,
    pub duration_seconds: u64,
    pub ended_at: Timestamp,
    /// Set when the call was recorded.
    pub recording_url: Option<String>,
}

/// `voice.failed`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VoiceFailed {
    pub call_id: String,
    pub to: String,
    pub failed_at: Timestamp,
    pub error_code: String,
    pub error_description: String,
}

/// `voice.no_answer`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VoiceNoAnswer {
    pub call_id: String,
    pub to: String,
    pub ring_duration_seconds: u64,
    pub ended_at: Timestamp,
}

/// `whatsapp.sent`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WhatsappSent {
    pub message_id: String,
    pub to: String,
    /// Set for template messages.
    pub template_name: Option<String>,
    pub sent_at: Timestamp,
}

/// `whatsapp.delivered`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WhatsappDelivered {
    pub message_id: String,
    pub to: String,
    pub delivered_at: Timestamp,
}

/// `whatsapp.read`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WhatsappRead {
    pub message_id: String,
    pub to: String,
    pub read_at: Timestamp,
}

/// `whatsapp.failed`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WhatsappFailed {
    pub message_id: String,
    pub to: String,
    pub failed_at: Timestamp,
    pub error_code: String,
    pub error_title: String,
}

/// `whatsapp.inbound`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WhatsappInbound {
    pub message_id: String,
    pub from: String,
    /// The message type: `text`, `image`, `interactive`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub body: String,
    pub received_at: Timestamp,
}

/// `whatsapp.button_reply`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WhatsappButtonReply {
    pub message_id: String,
    pub from: String,
    pub button_id: String,
    pub button_title: String,
    pub replied_at: Timestamp,
}
