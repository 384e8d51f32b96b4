//! The carriers' side of Telnxo: one trait-like enum per channel, each with
//! its connectors (the simulator, and the real protocol).
//!
//! A connector does two things. It **sends** what the dispatcher hands it
//! and answers, per message, whether the carrier took it (with the
//! carrier's ids), wants us to slow down, failed for now or refused it for
//! good ([`SendError`]). And it **reports** what the carrier says later on
//! its own (receipts, statuses, inbound messages, call progress) as
//! [`Report`]s on the channel it was started with; the Telnxo service turns
//! those into state changes and events. Connectors keep no durable state:
//! everything that must survive a restart is the service's.
//!
//! Connectors are enums (`SmsConnector`, …) rather than trait objects, as
//! the store's backends are: a new carrier protocol is a new variant, and
//! nothing outside this module names one.

pub mod freeswitch;
pub mod simulator;
pub mod smpp;
pub mod whatsapp_cloud;

use rackwave_sms::Encoded;

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The carrier asks us to slow down (SMPP `ESME_RTHROTTLED`): the
    /// message goes back to the head of its queue and the route pauses.
    Throttled,
    /// Worth another try later: the carrier's queue is full, the link is
    /// down, no answer in time.
    Temporary(String),
    /// The carrier refused it for good.
    Permanent { code: String, description: String },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Throttled => f.write_str("throttled by the carrier"),
            SendError::Temporary(why) => write!(f, "temporary failure: {why}"),
            SendError::Permanent { code, description } => {
                write!(f, "refused ({code}): {description}")
            }
        }
    }
}

/// An SMS to hand to the carrier, already encoded into its parts.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    /// Ours (`msg_…`), for logs.
    pub message_id: String,
    /// E.164 with `+`, or an alphanumeric sender id.
    pub from: String,
    /// E.164 with `+`.
    pub to: String,
    /// The parts, each with its UDH when there are several.
    pub encoded: Encoded,
}

/// A WhatsApp message to hand to the Cloud API (or the simulator).
#[derive(Debug, Clone)]
pub struct OutboundWhatsapp {
    pub message_id: String,
    /// The recipient, E.164 with `+`.
    pub to: String,
    pub content: WhatsappContent,
}

/// What a WhatsApp message carries, in the Cloud API's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum WhatsappContent {
    /// `type: text`: free-form, only inside the 24-hour window.
    Text { body: String },
    /// `type: template`: `components` as the Graph API takes them.
    Template {
        name: String,
        language: String,
        components: serde_json::Value,
    },
    /// `type: interactive` (reply buttons, lists), as the Graph API takes
    /// it; free-form like text.
    Interactive(serde_json::Value),
}

/// A call to place.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// Ours (`call_…`): connectors tag the call with it so its progress
    /// reports name it.
    pub call_id: String,
    pub from: String,
    pub to: String,
    /// Text to speak once answered, or
    pub tts: Option<String>,
    /// audio to play once answered.
    pub audio_url: Option<String>,
    /// Whether to record the call.
    pub record: bool,
}

/// What a carrier says after a send, or unprompted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Report {
    SmsReceipt(SmsReceipt),
    SmsInbound(SmsInbound),
    WhatsappStatus(WhatsappStatus),
    WhatsappInbound(WhatsappInbound),
    Call(CallReport),
}

/// A delivery receipt for one part of an SMS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SmsReceipt {
    /// The carrier's id of the part, as the receipt gives it (hex or
    /// decimal: the service matches both renderings).
    pub carrier_id: String,
    /// The final state as SMPP names it: `DELIVRD`, `UNDELIV`, `EXPIRED`,
    /// `REJECTD`, `DELETED`, `UNKNOWN`, or `ACCEPTD`/`ENROUTE` (not final).
    pub stat: String,
    /// The carrier's error code (`err:` of the receipt text), if any.
    pub error: Option<String>,
}

impl SmsReceipt {
    /// Whether this receipt ends the part's life.
    pub fn is_final(&self) -> bool {
        !matches!(self.stat.as_str(), "ACCEPTD" | "ENROUTE" | "BUFFRED")
    }

    pub fn is_delivered(&self) -> bool {
        self.stat == "DELIVRD"
    }
}

/// A mobile-originated SMS to one of our numbers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SmsInbound {
    /// The sender, E.164 with `+`.
    pub from: String,
    /// Our number, E.164 with `+`.
    pub to: String,
    /// The text (of this part, when it is one).
    pub body: String,
    /// Which part of a concatenated message this is (from its UDH); the
    /// service puts the parts together into one `sms.inbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
}

/// A part of a concatenated SMS, as its UDH numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// The same for every part of one message (8 or 16 bits).
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
}

/// A status of a WhatsApp message we sent (`statuses[]` of a callback).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WhatsappStatus {
    pub wamid: String,
    pub status: WaStatus,
    /// The recipient, E.164 with `+`.
    pub recipient: String,
    /// When WhatsApp says it happened (unix ms).
    pub at_ms: i64,
    /// For `failed`: Meta's error code and title.
    pub error: Option<(String, String)>,
}

/// A WhatsApp message's states, in their order (a status never moves a
/// message backwards).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum WaStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl WaStatus {
    pub fn parse(s: &str) -> Option<WaStatus> {
        Some(match s {
            "sent" => WaStatus::Sent,
            "delivered" => WaStatus::Delivered,
            "read" => WaStatus::Read,
            "failed" => WaStatus::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WaStatus::Sent => "sent",
            WaStatus::Delivered => "delivered",
            WaStatus::Read => "read",
            WaStatus::Failed => "failed",
        }
    }
}

/// A message a WhatsApp user sent to one of our numbers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WhatsappInbound {
    pub wamid: String,
    /// The user, E.164 with `+`.
    pub from: String,
    /// Our number (`display_phone_number`), E.164 with `+`.
    pub to: String,
    /// WhatsApp's message type: `text`, `image`, `interactive`, `button`, …
    pub kind: String,
    /// The text, caption or reply title.
    pub body: String,
    /// A tapped reply button (interactive `button_reply` or a template's
    /// quick reply): its id and title.
    pub button: Option<(String, String)>,
    pub at_ms: i64,
}

/// Progress of a call we placed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallReport {
    pub call_id: String,
    pub event: CallEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallEvent {
    /// The far end answered.
    Answered { at_ms: i64 },
    /// The call is over. `answered_at_ms` is set when it had been
    /// answered (then `billsec` is the talk time).
    Hangup {
        at_ms: i64,
        /// FreeSWITCH's hangup cause: `NORMAL_CLEARING`, `NO_ANSWER`,
        /// `USER_BUSY`, …
        cause: String,
        answered: bool,
        billsec: u64,
        /// Seconds it rang before being answered or given up.
        ring_secs: u64,
        recording_url: Option<String>,
    },
    /// The call could not be placed at all (the originate failed).
    Failed { cause: String },
}

/// Where a connector hands its reports (cheap to clone).
#[derive(Clone)]
pub struct Reports {
    tx: tokio::sync::mpsc::Sender<Handed>,
}

/// A report on its way to the service, with (when the carrier waits for
/// it) where to say it is durably recorded.
#[derive(Debug)]
pub struct Handed {
    pub report: Report,
    pub recorded: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Handed {
    /// Says the report is recorded and hands it over (what a test that
    /// reads reports in place of the service does).
    pub fn done(self) -> Report {
        if let Some(r) = self.recorded {
            let _ = r.send(());
        }
        self.report
    }
}

/// The service stopped, or did not record the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRecorded;

impl Reports {
    /// A channel of `capacity` reports: the connectors' end, and the
    /// service's (or a test's).
    pub fn channel(capacity: usize) -> (Reports, tokio::sync::mpsc::Receiver<Handed>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        (Reports { tx }, rx)
    }

    /// Hands a report on, for what the carrier does not wait on (call
    /// progress, simulated reports).
    pub async fn send(&self, report: Report) -> Result<(), NotRecorded> {
        self.tx
            .send(Handed {
                report,
                recorded: None,
            })
            .await
            .map_err(|_| NotRecorded)
    }

    /// Hands a report on and returns once it is durably recorded (applied,
    /// or kept to be applied once its message is): only then may a carrier
    /// be told it arrived (SMPP's `deliver_sm_resp`), so a crash loses no
    /// receipt.
    pub async fn deliver(&self, report: Report) -> Result<(), NotRecorded> {
        let (recorded, done) = tokio::sync::oneshot::channel();
        self.tx
            .send(Handed {
                report,
                recorded: Some(recorded),
            })
            .await
            .map_err(|_| NotRecorded)?;
        done.await.map_err(|_| NotRecorded)
    }
}

/// The SMS route's connector.
#[derive(Clone)]
pub enum SmsConnector {
    Simulator(simulator::Simulator),
    Smpp(smpp::SmppConnector),
}

impl SmsConnector {
    /// Hands every part to the carrier: the carrier's id of each.
    pub async fn submit(&self, sms: &OutboundSms) -> Result<Vec<String>, SendError> {
        match self {
            SmsConnector::Simulator(s) => s.submit_sms(sms).await,
            SmsConnector::Smpp(s) => s.submit(sms).await,
        }
    }
}

/// The WhatsApp route's connector.
#[derive(Clone)]
pub enum WhatsappConnector {
    Simulator(simulator::Simulator),
    CloudApi(whatsapp_cloud::CloudApiConnector),
}

impl WhatsappConnector {
    /// Sends; WhatsApp's id of the message (`wamid`).
    pub async fn send(&self, message: &OutboundWhatsapp) -> Result<String, SendError> {
        match self {
            WhatsappConnector::Simulator(s) => s.send_whatsapp(message).await,
            WhatsappConnector::CloudApi(c) => c.send(message).await,
        }
    }
}

/// The voice route's connector.
#[derive(Clone)]
pub enum VoiceConnector {
    Simulator(simulator::Simulator),
    Freeswitch(freeswitch::FreeswitchConnector),
}

impl VoiceConnector {
    /// Starts dialling; progress comes as [`Report::Call`]s.
    pub async fn dial(&self, call: &OutboundCall) -> Result<(), SendError> {
        match self {
            VoiceConnector::Simulator(s) => s.dial(call).await,
            VoiceConnector::Freeswitch(f) => f.dial(call).await,
        }
    }
}
