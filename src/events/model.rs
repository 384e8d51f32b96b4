//! The event types of `seeds/webhook-event-types.txt`, one enum for every
//! product, the products with their platform ids, and the envelope every
//! webhook carries.

use serde::{Deserialize, Serialize};

use crate::accounts::Platform;

/// The product that fired an event: the envelope's `product` and
/// `platform_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// The Rackwave portal (subscription and invoice lifecycle).
    Rackwave,
    Migosmtp,
    Telnxo,
}

impl Product {
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Rackwave => "rackwave",
            Product::Migosmtp => "migosmtp",
            Product::Telnxo => "telnxo",
        }
    }

    /// The envelope's `platform_id`: `"0"` for the portal, `"1"` MigoSMTP,
    /// `"2"` Telnxo.
    pub fn platform_id(self) -> &'static str {
        match self {
            Product::Rackwave => "0",
            Product::Migosmtp => "1",
            Product::Telnxo => "2",
        }
    }

    pub fn of_platform(platform: Platform) -> Product {
        match platform {
            Platform::Migosmtp => Product::Migosmtp,
            Platform::Telnxo => Product::Telnxo,
        }
    }
}

macro_rules! event_types {
    ($($variant:ident = $name:literal => $product:ident [$($field:literal),*];)*) => {
        /// Every event type of the seed table, plus `webhook.ping` (sent by
        /// `POST …/webhooks/{id}/test` to one endpoint only).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

            /// The data fields every event of this type carries (the seed's
            /// "Key Data Fields"); more may be present.
            pub fn fields(self) -> &'static [&'static str] {
                match self {
                    $(EventType::$variant => &[$($field),*],)*
                }
            }
        }
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

impl EventType {
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Whether an endpoint of `platform` may receive (and subscribe to)
    /// this type: email events go to MigoSMTP endpoints; SMS, voice and
    /// WhatsApp to Telnxo endpoints; portal events to both.
    pub fn visible_to(self, platform: Platform) -> bool {
        match self.product() {
            Product::Rackwave => true,
            p => p == Product::of_platform(platform),
        }
    }

    /// Checks that `data` carries every required field of the type.
    pub fn missing_fields(self, data: &serde_json::Value) -> Vec<&'static str> {
        self.fields()
            .iter()
            .copied()
            .filter(|f| data.get(f).is_none())
            .collect()
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventType::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event type `{s}`")))
    }
}

/// The JSON body of every webhook, and of `GET …/events`: the seed's
/// envelope plus the event id and the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// `evt_` + 20 hex digits; also the `webhook-id` header, the same on
    /// every retry: deduplicate on it.
    pub id: String,
    /// The event type, e.g. `email.delivered`.
    #[schema(value_type = String)]
    pub event: EventType,
    /// `migosmtp`, `telnxo` or `rackwave`.
    pub product: Product,
    /// `"1"` MigoSMTP, `"2"` Telnxo, `"0"` the Rackwave portal.
    pub platform_id: String,
    pub workspace_id: String,
    /// When the event happened, RFC 3339 UTC.
    pub timestamp: String,
    /// The type's data fields.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
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
            "/fixtures/webhook-event-types.txt"
        ));
        check_seed(fixture);
        // The living seed, when the shared directory is beside the repo.
        let shared = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/seeds/webhook-event-types.txt"
        );
        if let Ok(text) = std::fs::read_to_string(shared) {
            check_seed(&text);
        }
    }

    #[test]
    fn names_round_trip_and_route_by_platform() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), *t);
        }
        assert!(EventType::EmailQueued.visible_to(Platform::Migosmtp));
        assert!(!EventType::EmailQueued.visible_to(Platform::Telnxo));
        assert!(EventType::SmsInbound.visible_to(Platform::Telnxo));
        assert!(!EventType::VoiceFailed.visible_to(Platform::Migosmtp));
        assert!(EventType::InvoicePaid.visible_to(Platform::Migosmtp));
        assert!(EventType::InvoicePaid.visible_to(Platform::Telnxo));
        assert_eq!(Product::Migosmtp.platform_id(), "1");
        assert_eq!(Product::Telnxo.platform_id(), "2");
        assert_eq!(Product::Rackwave.platform_id(), "0");
    }
}
