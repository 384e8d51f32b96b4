//! The typed event model: every event type of
//! `seeds/webhook-event-types.txt`, each with a struct of its data fields
//! ([`EventData`]), and the envelope every webhook carries ([`Event`]).
//!
//! This is the only place event names are written. The spool records an
//! email event in a message's history as an [`EmailEvent`]; the event log
//! stores the [`Event`] serialized once, and that same JSON is what the API
//! lists and what a webhook POSTs (and signs).

mod email;
mod portal;
mod telnxo;

pub use email::{
    BounceType, BouncedDetail, DeferredDetail, EmailBounced, EmailClicked, EmailComplained,
    EmailDeferred, EmailDelivered, EmailEvent, EmailOpened, EmailQueued, EmailSent,
    EmailUnsubscribed, MessageRef, MessageStatus, UnknownBounceType,
};
pub use portal::{
    InvoiceCreated, InvoiceOverdue, InvoicePaid, ServiceActivated, ServiceCancelled,
    ServiceReactivated, ServiceSuspended, TrialActivated,
};
pub use telnxo::{
    SmsDelivered, SmsFailed, SmsInbound, SmsQueued, SmsSent, VoiceAnswered, VoiceCompleted,
    VoiceFailed, VoiceInitiated, VoiceNoAnswer, WhatsappButtonReply, WhatsappDelivered,
    WhatsappFailed, WhatsappInbound, WhatsappRead, WhatsappSent,
};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::{random_hex, Product, Timestamp};

macro_rules! event_types {
    ($($variant:ident = $name:literal => $product:ident [$($field:literal),*];)*) => {
        /// Every event type of the seed table, plus `webhook.ping` (sent by
        /// `POST …/webhooks/{id}/test` to one endpoint only).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The type string of the envelope's `event` field.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            /// The product that fires it (`webhook.ping` is sent in the name
            /// of the endpoint's own platform; this says `Rackwave`).
            pub fn product(self) -> Product {
                match self {
                    $(EventType::$variant => Product::$product,)*
                }
            }

            /// The data fields the seed lists for this type ("Key Data
            /// Fields"); the type's struct has every one of them, and may
            /// have more.
            pub fn fields(self) -> &'static [&'static str] {
                match self {
                    $(EventType::$variant => &[$($field),*],)*
                }
            }
        }

        /// The data of one event: one variant per [`EventType`], holding
        /// the struct of that type's fields. Serialized as the bare struct
        /// (the envelope carries the type).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum EventData {
            $($variant($variant),)*
        }

        impl EventData {
            pub fn event_type(&self) -> EventType {
                match self {
                    $(EventData::$variant(_) => EventType::$variant,)*
                }
            }

            /// An instance with every field at its default, for tests that
            /// check the shape of each type.
            pub fn sample(t: EventType) -> EventData {
                match t {
                    $(EventType::$variant => EventData::$variant($variant::default()),)*
                }
            }

            /// The data of an event of type `t`, read back from its JSON
            /// (the envelope's type says which struct it is).
            fn from_value(t: EventType, data: serde_json::Value) -> serde_json::Result<EventData> {
                Ok(match t {
                    $(EventType::$variant => EventData::$variant(serde_json::from_value(data)?),)*
                })
            }
        }

        $(
            impl From<$variant> for EventData {
                fn from(data: $variant) -> EventData {
                    EventData::$variant(data)
                }
            }
        )*
    };
}

event_types! {
    // Rackwave portal: subscription lifecycle.
    TrialActivated = "trial_activated" => Rackwave ["customer_id", "platform_id", "expires_at"];
    ServiceActivated = "service_activated" => Rackwave ["customer_id", "platform_id", "plan_name", "expires_at"];
    ServiceSuspended = "service_suspended" => Rackwave ["customer_id", "platform_id", "suspension_reason"];
    ServiceReactivated = "service_reactivated" => Rackwave ["customer_id", "platform_id", "plan_name"];
    ServiceCancelled = "service_cancelled" => Rackwave ["customer_id", "platform_id", "cancelled_at"];
    InvoiceCreated = "invoice_created" => Rackwave ["invoice_id", "invoice_number", "customer_id", "total", "due_date"];
    InvoicePaid = "invoice_paid" => Rackwave ["invoice_id", "invoice_number", "customer_id", "amount_paid", "paid_at"];
    InvoiceOverdue = "invoice_overdue" => Rackwave ["invoice_id", "invoice_number", "customer_id", "total", "overdue_since"];
    // MigoSMTP: email delivery.
    EmailQueued = "email.queued" => Migosmtp ["message_id", "to", "from", "subject", "queued_at"];
    EmailSent = "email.sent" => Migosmtp ["message_id", "to", "from", "subject", "sent_at"];
    EmailDelivered = "email.delivered" => Migosmtp ["message_id", "to", "from", "subject", "delivered_at"];
    EmailOpened = "email.opened" => Migosmtp ["message_id", "to", "opened_at", "ip_address", "user_agent"];
    EmailClicked = "email.clicked" => Migosmtp ["message_id", "to", "clicked_at", "link_url", "ip_address"];
    EmailBounced = "email.bounced" => Migosmtp ["message_id", "to", "bounce_type", "bounce_code", "bounce_reason"];
    EmailDeferred = "email.deferred" => Migosmtp ["message_id", "to", "defer_reason", "next_retry_at", "attempt_number"];
    EmailComplained = "email.complained" => Migosmtp ["message_id", "to", "complained_at", "feedback_source"];
    EmailUnsubscribed = "email.unsubscribed" => Migosmtp ["message_id", "to", "unsubscribed_at", "list_id"];
    // Telnxo: SMS.
    SmsQueued = "sms.queued" => Telnxo ["message_id", "to", "from", "queued_at"];
    SmsSent = "sms.sent" => Telnxo ["message_id", "to", "from", "sent_at", "parts"];
    SmsDelivered = "sms.delivered" => Telnxo ["message_id", "to", "delivered_at", "dlr_status"];
    SmsFailed = "sms.failed" => Telnxo ["message_id", "to", "failed_at", "error_code", "error_description"];
    SmsInbound = "sms.inbound" => Telnxo ["message_id", "from", "to", "body", "received_at"];
    // Telnxo: voice.
    VoiceInitiated = "voice.initiated" => Telnxo ["call_id", "to", "from", "initiated_at"];
    VoiceAnswered = "voice.answered" => Telnxo ["call_id", "to", "answered_at"];
    VoiceCompleted = "voice.completed" => Telnxo ["call_id", "to", "duration_seconds", "ended_at", "recording_url"];
    VoiceFailed = "voice.failed" => Telnxo ["call_id", "to", "failed_at", "error_code", "error_description"];
    VoiceNoAnswer = "voice.no_answer" => Telnxo ["call_id", "to", "ring_duration_seconds", "ended_at"];
    // Telnxo: WhatsApp.
    WhatsappSent = "whatsapp.sent" => Telnxo ["message_id", "to", "template_name", "sent_at"];
    WhatsappDelivered = "whatsapp.delivered" => Telnxo ["message_id", "to", "delivered_at"];
    WhatsappRead = "whatsapp.read" => Telnxo ["message_id", "to", "read_at"];
    WhatsappFailed = "whatsapp.failed" => Telnxo ["message_id", "to", "failed_at", "error_code", "error_title"];
    WhatsappInbound = "whatsapp.inbound" => Telnxo ["message_id", "from", "type", "body", "received_at"];
    WhatsappButtonReply = "whatsapp.button_reply" => Telnxo ["message_id", "from", "button_id", "button_title", "replied_at"];
    // Ours: the test event of `POST …/webhooks/{id}/test`.
    Ping = "webhook.ping" => Rackwave ["endpoint_id", "sent_at"];
}

/// `webhook.ping`: a test event for one endpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ping {
    pub endpoint_id: String,
    pub sent_at: Timestamp,
}

impl EventType {
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Whether an endpoint of `owner` may receive (and subscribe to) this
    /// type: email events go to MigoSMTP endpoints; SMS, voice and WhatsApp
    /// to Telnxo endpoints; portal events to every endpoint (the portal's
    /// own, under `/portal/v1/webhooks`, see only them).
    pub fn visible_to(self, owner: Product) -> bool {
        match self.product() {
            Product::Rackwave => true,
            p => p == owner,
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        EventType::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event type `{s}`")))
    }
}

impl EventData {
    /// The sender's tags of the message this event is about (events of the
    /// spool carry them; others have none).
    pub fn tags(&self) -> &[String] {
        match self {
            EventData::EmailQueued(d) => &d.message.tags,
            EventData::EmailSent(d) => &d.message.tags,
            EventData::EmailDelivered(d) => &d.message.tags,
            EventData::EmailBounced(d) => &d.message.tags,
            EventData::EmailDeferred(d) => &d.message.tags,
            _ => &[],
        }
    }

    /// The message (or call) this event is about, when it is about one
    /// (email, SMS, WhatsApp and voice events): the key the event log
    /// indexes by.
    pub fn message_id(&self) -> Option<&str> {
        Some(match self {
            EventData::EmailQueued(d) => &d.message.message_id,
            EventData::EmailSent(d) => &d.message.message_id,
            EventData::EmailDelivered(d) => &d.message.message_id,
            EventData::EmailBounced(d) => &d.message.message_id,
            EventData::EmailDeferred(d) => &d.message.message_id,
            EventData::EmailOpened(d) => &d.message_id,
            EventData::EmailClicked(d) => &d.message_id,
            EventData::EmailComplained(d) => &d.message_id,
            EventData::EmailUnsubscribed(d) => &d.message_id,
            EventData::SmsQueued(d) => &d.message_id,
            EventData::SmsSent(d) => &d.message_id,
            EventData::SmsDelivered(d) => &d.message_id,
            EventData::SmsFailed(d) => &d.message_id,
            EventData::SmsInbound(d) => &d.message_id,
            EventData::WhatsappSent(d) => &d.message_id,
            EventData::WhatsappDelivered(d) => &d.message_id,
            EventData::WhatsappRead(d) => &d.message_id,
            EventData::WhatsappFailed(d) => &d.message_id,
            EventData::WhatsappInbound(d) => &d.message_id,
            EventData::WhatsappButtonReply(d) => &d.message_id,
            EventData::VoiceInitiated(d) => &d.call_id,
            EventData::VoiceAnswered(d) => &d.call_id,
            EventData::VoiceCompleted(d) => &d.call_id,
            EventData::VoiceFailed(d) => &d.call_id,
            EventData::VoiceNoAnswer(d) => &d.call_id,
            _ => return None,
        })
    }
}

/// One event as every consumer sees it: the seed's envelope plus the event
/// id and the workspace.
///
/// ```json
/// {"id": "evt_…", "event": "email.delivered", "product": "migosmtp",
///  "platform_id": "1", "workspace_id": "ws_…", "timestamp": "2026-06-07T09:39:00Z",
///  "data": {"message_id": "msg_…", "to": "…", "…": "…"}}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_` + 20 hex digits; also the `webhook-id` header, the same on
    /// every retry: receivers deduplicate on it.
    pub id: String,
    pub workspace_id: String,
    /// When it happened.
    pub timestamp: Timestamp,
    pub data: EventData,
}

impl Event {
    /// A new event with a fresh id: `evt_` and 20 hex digits, a
    /// [`time_ordered_id`](crate::time_ordered_id) and 16 more random bits
    /// (time first, so the log's index by id grows at its right edge).
    pub fn new(workspace_id: &str, timestamp: Timestamp, data: impl Into<EventData>) -> Event {
        Event {
            id: format!("evt_{:016x}{}", crate::time_ordered_id(), random_hex(2)),
            workspace_id: workspace_id.to_string(),
            timestamp,
            data: data.into(),
        }
    }

    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// The product that fired it.
    pub fn product(&self) -> Product {
        self.event_type().product()
    }

    /// The envelope as sent and stored: serialized once, here.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event serializes")
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let product = self.product();
        let mut st = s.serialize_struct("Event", 7)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("event", &self.event_type())?;
        st.serialize_field("product", &product)?;
        st.serialize_field("platform_id", product.platform_id())?;
        st.serialize_field("workspace_id", &self.workspace_id)?;
        st.serialize_field("timestamp", &self.timestamp)?;
        st.serialize_field("data", &self.data)?;
        st.end()
    }
}

/// An envelope read back (a stored event moved to another store). Its
/// `product` and `platform_id` follow from the type and are not read; the
/// timestamp has the envelope's whole seconds.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Envelope {
            id: String,
            event: EventType,
            workspace_id: String,
            timestamp: Timestamp,
            data: serde_json::Value,
        }
        let e = Envelope::deserialize(d)?;
        Ok(Event {
            id: e.id,
            workspace_id: e.workspace_id,
            timestamp: e.timestamp,
            data: EventData::from_value(e.event, e.data).map_err(serde::de::Error::custom)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Reads the seed's table: a type line `| name |`, a description line,
    /// then the fields line `a, b, c |`.
    fn parse_seed(text: &str) -> BTreeMap<String, Vec<String>> {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let mut out = BTreeMap::new();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            if let Some(inner) = l.strip_prefix("| ").and_then(|r| r.strip_suffix(" |")) {
                let name = inner.trim();
                if name != "Event Type" && !name.contains(' ') && i + 2 < lines.len() {
                    let fields = lines[i + 2]
                        .trim_end_matches('|')
                        .split(',')
                        .map(|f| f.trim().to_string())
                        .filter(|f| !f.is_empty())
                        .collect();
                    out.insert(name.to_string(), fields);
                    i += 3;
                    continue;
                }
            }
            i += 1;
        }
        out
    }

    fn check_seed(text: &str) {
        let seed = parse_seed(text);
        assert_eq!(seed.len(), 33, "the seed lists 33 event types");
        for (name, fields) in &seed {
            let t = EventType::parse(name).unwrap_or_else(|| panic!("{name} is not covered"));
            let ours: Vec<String> = t.fields().iter().map(|s| s.to_string()).collect();
            assert_eq!(&ours, fields, "fields of {name}");
            let family = name.split('.').next().unwrap();
            let expected = match family {
                "email" => Product::Migosmtp,
                "sms" | "voice" | "whatsapp" => Product::Telnxo,
                _ => Product::Rackwave,
            };
            assert_eq!(t.product(), expected, "product of {name}");
        }
        // Nothing of ours beyond the seed but the ping.
        for t in EventType::ALL {
            assert!(
                seed.contains_key(t.as_str()) || *t == EventType::Ping,
                "{t} is not in the seed"
            );
        }
    }

    #[test]
    fn every_seed_event_type_and_field_is_covered() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/webhook-event-types.txt"
        ));
        check_seed(fixture);
        // The living seed, when the shared directory is beside the repo.
        let shared = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/seeds/webhook-event-types.txt"
        );
        if let Ok(text) = std::fs::read_to_string(shared) {
            check_seed(&text);
        }
    }

    #[test]
    fn every_type_struct_carries_its_seed_fields() {
        for t in EventType::ALL {
            let data = EventData::sample(*t);
            assert_eq!(data.event_type(), *t);
            let json = serde_json::to_value(&data).unwrap();
            let obj = json.as_object().unwrap_or_else(|| panic!("{t}: {json}"));
            for field in t.fields() {
                assert!(obj.contains_key(*field), "{t} lacks {field}: {json}");
            }
        }
    }

    #[test]
    fn the_envelope_names_type_product_and_platform() {
        let data = EventData::sample(EventType::SmsSent);
        let e = Event::new("ws_a", Timestamp(1_780_825_140_000), data);
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["event"], "sms.sent");
        assert_eq!(v["product"], "telnxo");
        assert_eq!(v["platform_id"], "2");
        assert_eq!(v["workspace_id"], "ws_a");
        assert_eq!(v["timestamp"], "2026-06-07T09:39:00Z");
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
        assert!(v["data"]["parts"].is_number());
    }

    #[test]
    fn envelopes_read_back_serialize_byte_for_byte() {
        for t in EventType::ALL {
            let e = Event::new("ws_a", Timestamp(1_780_825_140_000), EventData::sample(*t));
            let json = e.to_json();
            let back: Event = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, e, "{t}");
            assert_eq!(back.to_json(), json, "{t}");
        }
    }

    #[test]
    fn names_round_trip_and_route_by_platform() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), *t);
        }
        assert!(EventType::EmailQueued.visible_to(Product::Migosmtp));
        assert!(!EventType::EmailQueued.visible_to(Product::Telnxo));
        assert!(EventType::SmsInbound.visible_to(Product::Telnxo));
        assert!(!EventType::VoiceFailed.visible_to(Product::Migosmtp));
        assert!(EventType::InvoicePaid.visible_to(Product::Migosmtp));
        assert!(EventType::InvoicePaid.visible_to(Product::Telnxo));
        assert!(EventType::InvoicePaid.visible_to(Product::Rackwave));
        assert!(!EventType::EmailQueued.visible_to(Product::Rackwave));
        assert_eq!(Product::Migosmtp.platform_id(), "1");
        assert_eq!(Product::Telnxo.platform_id(), "2");
        assert_eq!(Product::Rackwave.platform_id(), "0");
    }
}
