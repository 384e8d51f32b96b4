//! The WhatsApp Cloud API (Meta's Graph API), both ways.
//!
//! **Sending** is one `POST {api_base}/{phone_number_id}/messages` per
//! message with the business's bearer token; the answer's
//! `messages[0].id` is the `wamid` every later status names. How a
//! failure is classified decides whether the dispatcher retries, slows
//! down or gives up, so it is spelled out in [`CloudApiConnector::send`].
//!
//! **Receiving** happens on the HTTP callback endpoint, which is not
//! written here: this module only gives that endpoint pure functions, so
//! the rules are testable without a server. [`challenge`] answers Meta's
//! subscription handshake, [`verify_signature`] checks
//! `X-Hub-Signature-256` over the raw body (before anything parses it),
//! and [`parse_callback`] turns a verified body into [`Report`]s.
//!
//! Meta adds fields and message types over time, so the parser ignores
//! what it does not know (with a log line) instead of refusing the whole
//! callback: a refused callback is retried by Meta for days and would
//! hold back the statuses that came with it.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{
    OutboundWhatsapp, Report, SendError, WaStatus, WhatsappContent, WhatsappInbound, WhatsappStatus,
};

/// `[telnxo.whatsapp]` when `connector = "cloud_api"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudApiConfig {
    /// The Graph API with its version, without a trailing slash.
    pub api_base: String,
    /// The sending number's id (not the number itself).
    pub phone_number_id: String,
    /// A system user's permanent token.
    pub access_token: String,
    /// The app secret, the key of the callbacks' signatures.
    pub app_secret: String,
    /// What Meta must present in the subscription handshake; empty refuses
    /// every handshake (callbacks then cannot be subscribed).
    pub verify_token: String,
    /// For one send, connection included.
    pub timeout_secs: u64,
}

impl Default for CloudApiConfig {
    fn default() -> Self {
        CloudApiConfig {
            api_base: "https://graph.facebook.com/v21.0".into(),
            phone_number_id: String::new(),
            access_token: String::new(),
            app_secret: String::new(),
            verify_token: String::new(),
            timeout_secs: 10,
        }
    }
}

impl CloudApiConfig {
    pub fn check(&self) -> Result<(), String> {
        let base = self.api_base.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(format!(
                "telnxo.whatsapp.api_base must be an http(s) URL, not {:?}",
                self.api_base
            ));
        }
        // It becomes a path segment of every request.
        if self.phone_number_id.is_empty()
            || !self
                .phone_number_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err("telnxo.whatsapp.phone_number_id must be set (letters and digits)".into());
        }
        if self.access_token.is_empty() || self.access_token.chars().any(char::is_whitespace) {
            return Err("telnxo.whatsapp.access_token must be set (no spaces)".into());
        }
        // Without it no callback could be trusted, so none would be read.
        if self.app_secret.is_empty() {
            return Err("telnxo.whatsapp.app_secret must be set".into());
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err("telnxo.whatsapp.timeout_secs must be between 1 and 300".into());
        }
        Ok(())
    }
}

/// Meta's codes that mean "too many requests" from the whole account,
/// whatever the HTTP status they come with (Graph error-code reference: 4
/// application rate limit, 80007 WABA rate limit, 130429 Cloud API
/// throughput): the route pauses.
const THROTTLING_CODES: &[i64] = &[4, 80007, 130429];

/// Meta's codes for passing trouble, worth another try of the one
/// message (same reference: 1 unknown API error, 2 service temporarily
/// unavailable, 131016 service overloaded, 131056 too many messages to
/// one recipient: one workspace's chatty user must not pause the route
/// for every tenant).
const TEMPORARY_CODES: &[i64] = &[1, 2, 131016, 131056];

/// More than any Graph answer to a send; a longer answer is not Graph's.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct CloudApiConnector {
    http: reqwest::Client,
    messages_url: String,
    access_token: String,
}

impl std::fmt::Debug for CloudApiConnector {
    // By hand, so the token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudApiConnector")
            .field("messages_url", &self.messages_url)
            .finish_non_exhaustive()
    }
}

impl CloudApiConnector {
    pub fn new(config: CloudApiConfig) -> Result<Self, String> {
        config.check()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            // The token must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("WhatsApp HTTP client: {e}"))?;
        Ok(CloudApiConnector {
            http,
            messages_url: format!(
                "{}/{}/messages",
                config.api_base.trim_end_matches('/'),
                config.phone_number_id
            ),
            access_token: config.access_token,
        })
    }

    /// Sends one message; the `wamid` on success.
    ///
    /// - no answer, a broken connection, a 5xx, a 4xx that is not Graph's
    ///   (a proxy, a wrong `api_base`), or a 2xx without a `wamid`:
    ///   [`SendError::Temporary`];
    /// - HTTP 429 or one of Meta's throttling codes: [`SendError::Throttled`];
    /// - any other Graph `error`: [`SendError::Permanent`] with Meta's code
    ///   and message (and its `error_data.details`).
    pub async fn send(&self, m: &OutboundWhatsapp) -> Result<String, SendError> {
        let body = request_body(m)?;
        let resp = self
            .http
            .post(&self.messages_url)
            .bearer_auth(&self.access_token)
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::Temporary(format!("WhatsApp Cloud API: {e}")))?;
        let status = resp.status().as_u16();
        let answer = read_capped(resp).await?;
        classify_answer(status, &answer)
    }
}

/// The Graph request for a message.
fn request_body(m: &OutboundWhatsapp) -> Result<Value, SendError> {
    let to = digits(&m.to).ok_or_else(|| SendError::Permanent {
        code: "invalid_recipient".into(),
        description: format!("{:?} is not a phone number", m.to),
    })?;
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
    });
    let (kind, content) = match &m.content {
        WhatsappContent::Text { body } => ("text", json!({ "body": body })),
        WhatsappContent::Template {
            name,
            language,
            components,
        } => {
            let mut t = json!({ "name": name, "language": { "code": language } });
            // Graph refuses `components: null`; a template without
            // parameters simply has none.
            if !components.is_null() {
                t["components"] = components.clone();
            }
            ("template", t)
        }
        WhatsappContent::Interactive(v) => ("interactive", v.clone()),
    };
    body["type"] = kind.into();
    body[kind] = content;
    Ok(body)
}

/// The digits of an E.164 number (`+` optional), or `None` when it has
/// anything else.
fn digits(number: &str) -> Option<String> {
    let d = number.strip_prefix('+').unwrap_or(number);
    (!d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit())).then(|| d.into())
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, SendError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| SendError::Temporary(format!("WhatsApp Cloud API answer: {e}")))?
    {
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(SendError::Temporary(
                "WhatsApp Cloud API answer too long".into(),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The verdict on Graph's answer (status and raw body).
fn classify_answer(status: u16, answer: &[u8]) -> Result<String, SendError> {
    let parsed: Option<Value> = serde_json::from_slice(answer).ok();
    if (200..300).contains(&status) {
        return parsed
            .as_ref()
            .and_then(|v| v.pointer("/messages/0/id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                SendError::Temporary(format!(
                    "WhatsApp Cloud API answered {status} without a message id"
                ))
            });
    }
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let per_message = code.is_some_and(|c| TEMPORARY_CODES.contains(&c));
    if !per_message && (status == 429 || code.is_some_and(|c| THROTTLING_CODES.contains(&c))) {
        return Err(SendError::Throttled);
    }
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (Some(error), Some(code)) = (error, code) else {
        return Err(SendError::Temporary(format!(
            "WhatsApp Cloud API answered HTTP {status} without a Graph error"
        )));
    };
    if status >= 500 || TEMPORARY_CODES.contains(&code) {
        return Err(SendError::Temporary(format!(
            "WhatsApp Cloud API answered HTTP {status}, code {code}: {message}"
        )));
    }
    let mut description = message;
    if let Some(details) = error
        .pointer("/error_data/details")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
    {
        if description.is_empty() {
            description = details.to_string();
        } else {
            description = format!("{description}: {details}");
        }
    }
    Err(SendError::Permanent {
        code: code.to_string(),
        description,
    })
}

/// Whether `header` (`X-Hub-Signature-256`) is `sha256=` and the hex
/// HMAC-SHA256 of `body` under the app secret. The comparison takes the
/// same time wherever the first wrong byte is.
pub fn verify_signature(app_secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // Checks the length first, then compares in constant time.
    mac.verify_slice(&sig).is_ok()
}

/// The answer to Meta's subscription handshake (`GET` with `hub.mode`,
/// `hub.verify_token`, `hub.challenge`): the challenge to echo, or `None`
/// to refuse (answer 403).
///
/// The challenge is echoed only when it is short and plain (Meta sends
/// digits), so the endpoint cannot be made to reflect markup.
pub fn challenge(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    verify_token: &str,
) -> Option<String> {
    if mode != Some("subscribe") || verify_token.is_empty() {
        return None;
    }
    let token = token?;
    if !bool::from(token.as_bytes().ct_eq(verify_token.as_bytes())) {
        return None;
    }
    let challenge = challenge?;
    let plain = !challenge.is_empty()
        && challenge.len() <= 256
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    plain.then(|| challenge.to_string())
}

/// The reports in a callback body (already verified). An error only when
/// the body is not a WhatsApp callback at all; what is inside is taken
/// item by item, and an item that cannot be read is logged and skipped.
pub fn parse_callback(body: &[u8]) -> Result<Vec<Report>, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("callback is not JSON: {e}"))?;
    let Some(obj) = doc.as_object() else {
        return Err("callback is not a JSON object".into());
    };
    match obj.get("object").and_then(Value::as_str) {
        Some("whatsapp_business_account") => {}
        other => return Err(format!("callback for object {other:?}, not WhatsApp")),
    }
    let Some(entries) = obj.get("entry").and_then(Value::as_array) else {
        return Err("callback without an entry array".into());
    };
    let mut reports = Vec::new();
    for entry in entries {
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            tracing::info!("WhatsApp callback entry without changes, ignored");
            continue;
        };
        for change in changes {
            let field = change.get("field").and_then(Value::as_str).unwrap_or("");
            if field != "messages" {
                tracing::info!(
                    field,
                    "WhatsApp callback change not about messages, ignored"
                );
                continue;
            }
            match change.get("value") {
                Some(value) if value.is_object() => read_value(value, &mut reports),
                _ => tracing::info!("WhatsApp callback change without a value, ignored"),
            }
        }
    }
    Ok(reports)
}

/// `changes[].value` as far as we use it; the rest is ignored.
#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    display_phone_number: String,
}

#[derive(Deserialize)]
struct StatusItem {
    id: String,
    status: String,
    timestamp: Stamp,
    #[serde(default)]
    recipient_id: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: Option<Value>,
    title: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct MessageItem {
    from: String,
    id: String,
    timestamp: Stamp,
    #[serde(rename = "type")]
    kind: String,
    text: Option<TextPart>,
    image: Option<MediaPart>,
    video: Option<MediaPart>,
    document: Option<MediaPart>,
    button: Option<ButtonPart>,
    interactive: Option<InteractivePart>,
}

#[derive(Deserialize)]
struct TextPart {
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct MediaPart {
    #[serde(default)]
    caption: String,
}

/// A template's quick reply: the payload we set and the text shown.
#[derive(Deserialize)]
struct ButtonPart {
    #[serde(default)]
    payload: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct InteractivePart {
    #[serde(rename = "type")]
    kind: String,
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    #[serde(default)]
    title: String,
}

/// Unix seconds, which Meta sends as a string (and might send as a
/// number).
#[derive(Deserialize)]
#[serde(untagged)]
enum Stamp {
    Text(String),
    Number(i64),
}

impl Stamp {
    fn ms(&self) -> Option<i64> {
        let secs = match self {
            Stamp::Text(s) => s.trim().parse::<i64>().ok()?,
            Stamp::Number(n) => *n,
        };
        (secs >= 0).then_some(secs)?.checked_mul(1000)
    }
}

/// The message types we report; the others (reactions, orders, system
/// notices, `unsupported`) are not something a customer's app can act on
/// as a message, and are logged.
const INBOUND_KINDS: &[&str] = &[
    "text",
    "image",
    "video",
    "document",
    "audio",
    "sticker",
    "location",
    "contacts",
    "button",
    "interactive",
];

fn read_value(value: &Value, reports: &mut Vec<Report>) {
    let display = value
        .get("metadata")
        .and_then(|m| Metadata::deserialize(m).ok())
        .map(|m| m.display_phone_number)
        .unwrap_or_default();
    for item in array(value, "statuses") {
        match StatusItem::deserialize(item) {
            Ok(s) => {
                if let Some(r) = status_report(s) {
                    reports.push(Report::WhatsappStatus(r));
                }
            }
            Err(e) => tracing::info!(error = %e, "unreadable WhatsApp status, ignored"),
        }
    }
    for item in array(value, "messages") {
        match MessageItem::deserialize(item) {
            Ok(m) => {
                if let Some(r) = inbound_report(m, &display) {
                    reports.push(Report::WhatsappInbound(r));
                }
            }
            Err(e) => tracing::info!(error = %e, "unreadable WhatsApp message, ignored"),
        }
    }
    if value.get("errors").is_some() {
        tracing::info!(errors = %value["errors"], "WhatsApp callback carries errors");
    }
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `+` and the digits of a number as WhatsApp writes it (`9198…`, or the
/// display form `+1 555-000-1111`).
fn e164(number: &str) -> Option<String> {
    let d: String = number.chars().filter(char::is_ascii_digit).collect();
    (!d.is_empty()).then(|| format!("+{d}"))
}

fn status_report(s: StatusItem) -> Option<WhatsappStatus> {
    let Some(status) = WaStatus::parse(&s.status) else {
        tracing::info!(status = %s.status, wamid = %s.id, "unknown WhatsApp status, ignored");
        return None;
    };
    let (Some(at_ms), Some(recipient), false) =
        (s.timestamp.ms(), e164(&s.recipient_id), s.id.is_empty())
    else {
        tracing::info!(wamid = %s.id, "WhatsApp status without id, time or recipient, ignored");
        return None;
    };
    let error = s.errors.first().map(|e| {
        let code = match &e.code {
            Some(Value::String(c)) => c.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let title = e
            .title
            .clone()
            .or_else(|| e.message.clone())
            .unwrap_or_default();
        (code, title)
    });
    Some(WhatsappStatus {
        wamid: s.id,
        status,
        recipient,
        at_ms,
        error,
    })
}

fn inbound_report(m: MessageItem, display: &str) -> Option<WhatsappInbound> {
    if !INBOUND_KINDS.contains(&m.kind.as_str()) {
        tracing::info!(kind = %m.kind, wamid = %m.id, "WhatsApp message type not reported, ignored");
        return None;
    }
    let (Some(at_ms), Some(from), Some(to), false) = (
        m.timestamp.ms(),
        e164(&m.from),
        e164(display),
        m.id.is_empty(),
    ) else {
        tracing::info!(wamid = %m.id, "WhatsApp message without id, time, sender or number, ignored");
        return None;
    };
    let caption = |p: &Option<MediaPart>| p.as_ref().map(|p| p.caption.clone()).unwrap_or_default();
    let (body, button) = match m.kind.as_str() {
        "text" => (m.text.map(|t| t.body).unwrap_or_default(), None),
        "image" => (caption(&m.image), None),
        "video" => (caption(&m.video), None),
        "document" => (caption(&m.document), None),
        "button" => match m.button {
            Some(b) => (b.text.clone(), Some((b.payload, b.text))),
            None => (String::new(), None),
        },
        "interactive" => {
            let reply = m.interactive.and_then(|i| match i.kind.as_str() {
                "button_reply" => i.button_reply,
                "list_reply" => i.list_reply,
                other => {
                    tracing::info!(kind = other, "interactive reply type not reported");
                    None
                }
            });
            let Some(reply) = reply else {
                tracing::info!(wamid = %m.id, "WhatsApp interactive message without a reply, ignored");
                return None;
            };
            (reply.title.clone(), Some((reply.id, reply.title)))
        }
        _ => (String::new(), None),
    };
    Some(WhatsappInbound {
        wamid: m.id,
        from,
        to,
        kind: m.kind,
        body,
        button,
        at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wa(content: WhatsappContent) -> OutboundWhatsapp {
        OutboundWhatsapp {
            message_id: "msg_1".into(),
            to: "+919812345678".into(),
            content,
        }
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn callback(value: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]
        }))
        .unwrap()
    }

    fn meta() -> Value {
        json!({"display_phone_number": "15550001111", "phone_number_id": "106"})
    }

    #[test]
    fn config_defaults_and_checks() {
        let c = CloudApiConfig::default();
        assert_eq!(c.api_base, "https://graph.facebook.com/v21.0");
        assert_eq!(c.timeout_secs, 10);
        assert!(c.check().is_err(), "ids and secrets are required");
        let good = CloudApiConfig {
            phone_number_id: "106540352242922".into(),
            access_token: "EAAG".into(),
            app_secret: "s".into(),
            ..Default::default()
        };
        assert!(good.check().is_ok());
        for bad in [
            CloudApiConfig {
                api_base: "ftp://x".into(),
                ..good.clone()
            },
            CloudApiConfig {
                phone_number_id: "1/../2".into(),
                ..good.clone()
            },
            CloudApiConfig {
                access_token: "a b".into(),
                ..good.clone()
            },
            CloudApiConfig {
                app_secret: String::new(),
                ..good.clone()
            },
            CloudApiConfig {
                timeout_secs: 0,
                ..good.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let parsed: Result<CloudApiConfig, _> = serde_json::from_value(json!({"tokn": "x"}));
        assert!(parsed.is_err(), "unknown keys are refused");
    }

    #[test]
    fn request_bodies() {
        let b = request_body(&wa(WhatsappContent::Text { body: "hi".into() })).unwrap();
        assert_eq!(
            b,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": "919812345678", "type": "text", "text": {"body": "hi"}})
        );
        let b = request_body(&wa(WhatsappContent::Template {
            name: "otp".into(),
            language: "en_US".into(),
            components: json!([{"type": "body", "parameters": [{"type": "text", "text": "1234"}]}]),
        }))
        .unwrap();
        assert_eq!(b["type"], "template");
        assert_eq!(b["template"]["language"]["code"], "en_US");
        assert_eq!(
            b["template"]["components"][0]["parameters"][0]["text"],
            "1234"
        );
        let b = request_body(&wa(WhatsappContent::Template {
            name: "hello".into(),
            language: "en".into(),
            components: Value::Null,
        }))
        .unwrap();
        assert!(b["template"].get("components").is_none());
        let i = json!({"type": "button", "body": {"text": "?"}, "action": {"buttons": []}});
        let b = request_body(&wa(WhatsappContent::Interactive(i.clone()))).unwrap();
        assert_eq!(b["interactive"], i);
        let mut bad = wa(WhatsappContent::Text { body: "x".into() });
        bad.to = "+91 98".into();
        assert!(matches!(
            request_body(&bad),
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn answers_are_classified() {
        let ok = br#"{"messaging_product":"whatsapp","contacts":[{"input":"9198","wa_id":"9198"}],"messages":[{"id":"wamid.HBg"}]}"#;
        assert_eq!(classify_answer(200, ok), Ok("wamid.HBg".into()));
        assert!(matches!(
            classify_answer(200, b"{}"),
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(
            classify_answer(200, b"not json"),
            Err(SendError::Temporary(_))
        ));
        let err = |code: i64| {
            serde_json::to_vec(&json!({"error": {"message": "Re-engagement message", "type": "OAuthException",
                "code": code, "error_data": {"messaging_product": "whatsapp", "details": "24 hours passed"}}}))
            .unwrap()
        };
        assert_eq!(
            classify_answer(400, &err(131047)),
            Err(SendError::Permanent {
                code: "131047".into(),
                description: "Re-engagement message: 24 hours passed".into()
            })
        );
        for code in [4, 80007, 130429] {
            assert_eq!(classify_answer(400, &err(code)), Err(SendError::Throttled));
        }
        assert!(matches!(
            classify_answer(400, &err(131056)),
            Err(SendError::Temporary(_))
        ));
        assert_eq!(classify_answer(429, b""), Err(SendError::Throttled));
        assert!(matches!(
            classify_answer(500, &err(131000)),
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(
            classify_answer(503, b"<html>"),
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(
            classify_answer(400, &err(2)),
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(
            classify_answer(404, b"<html>"),
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(
            classify_answer(401, &err(190)),
            Err(SendError::Permanent { code, .. }) if code == "190"
        ));
    }

    #[test]
    fn signatures() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let header = sign("secret", body);
        assert!(verify_signature("secret", Some(&header), body));
        assert!(!verify_signature("other", Some(&header), body));
        assert!(!verify_signature("secret", Some(&header), b"{}"));
        assert!(!verify_signature("secret", None, body));
        assert!(!verify_signature("", Some(&header), body));
        assert!(
            !verify_signature("secret", Some(&header[7..]), body),
            "prefix required"
        );
        assert!(!verify_signature("secret", Some("sha256=zz"), body));
        assert!(!verify_signature("secret", Some("sha256="), body));
        assert!(!verify_signature(
            "secret",
            Some(&header[..header.len() - 2]),
            body
        ));
        assert!(!verify_signature(
            "secret",
            Some(&format!("{header}00")),
            body
        ));
        assert!(!verify_signature("secret", Some("sha1=abcd"), body));
    }

    #[test]
    fn handshake() {
        let ok = challenge(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(ok.as_deref(), Some("1158201444"));
        assert_eq!(
            challenge(Some("subscribe"), Some("bad"), Some("1"), "tok"),
            None
        );
        assert_eq!(
            challenge(Some("unsubscribe"), Some("tok"), Some("1"), "tok"),
            None
        );
        assert_eq!(challenge(None, Some("tok"), Some("1"), "tok"), None);
        assert_eq!(challenge(Some("subscribe"), None, Some("1"), "tok"), None);
        assert_eq!(challenge(Some("subscribe"), Some(""), Some("1"), ""), None);
        assert_eq!(challenge(Some("subscribe"), Some("tok"), None, "tok"), None);
        assert_eq!(
            challenge(Some("subscribe"), Some("tok"), Some("<script>"), "tok"),
            None
        );
    }

    #[test]
    fn statuses() {
        let body = callback(json!({
            "messaging_product": "whatsapp", "metadata": meta(),
            "statuses": [
                {"id": "wamid.A", "status": "delivered", "timestamp": "1700000000",
                 "recipient_id": "919812345678", "conversation": {"id": "c"}, "pricing": {}},
                {"id": "wamid.B", "status": "failed", "timestamp": 1700000001,
                 "recipient_id": "919812345678",
                 "errors": [{"code": 131026, "title": "Message undeliverable"}]},
                {"id": "wamid.C", "status": "deleted", "timestamp": "1", "recipient_id": "1"},
                {"id": "wamid.D", "status": "read", "timestamp": "soon", "recipient_id": "1"},
                {"id": 5, "status": "read"}
            ]
        }));
        let r = parse_callback(&body).unwrap();
        assert_eq!(
            r,
            vec![
                Report::WhatsappStatus(WhatsappStatus {
                    wamid: "wamid.A".into(),
                    status: WaStatus::Delivered,
                    recipient: "+919812345678".into(),
                    at_ms: 1_700_000_000_000,
                    error: None,
                }),
                Report::WhatsappStatus(WhatsappStatus {
                    wamid: "wamid.B".into(),
                    status: WaStatus::Failed,
                    recipient: "+919812345678".into(),
                    at_ms: 1_700_000_001_000,
                    error: Some(("131026".into(), "Message undeliverable".into())),
                }),
            ]
        );
    }

    #[test]
    fn inbound_messages() {
        let body = callback(json!({
            "messaging_product": "whatsapp", "metadata": meta(),
            "contacts": [{"profile": {"name": "A"}, "wa_id": "919812345678"}],
            "messages": [
                {"from": "919812345678", "id": "wamid.1", "timestamp": "1700000000",
                 "type": "text", "text": {"body": "hello"}},
                {"from": "919812345678", "id": "wamid.2", "timestamp": "1700000000",
                 "type": "interactive", "interactive": {"type": "button_reply",
                 "button_reply": {"id": "yes", "title": "Yes"}}},
                {"from": "919812345678", "id": "wamid.3", "timestamp": "1700000000",
                 "type": "interactive", "interactive": {"type": "list_reply",
                 "list_reply": {"id": "r2", "title": "Row 2", "description": "d"}}},
                {"from": "919812345678", "id": "wamid.4", "timestamp": "1700000000",
                 "type": "button", "button": {"payload": "STOP", "text": "Stop promotions"},
                 "context": {"from": "15550001111", "id": "wamid.0"}},
                {"from": "919812345678", "id": "wamid.5", "timestamp": "1700000000",
                 "type": "image", "image": {"caption": "look", "mime_type": "image/jpeg",
                 "sha256": "x", "id": "m"}},
                {"from": "919812345678", "id": "wamid.6", "timestamp": "1700000000",
                 "type": "reaction", "reaction": {"emoji": "x", "message_id": "wamid.0"}},
                {"from": "919812345678", "id": "wamid.7", "timestamp": "1700000000",
                 "type": "interactive", "interactive": {"type": "nfm_reply"}},
                {"from": "919812345678", "id": "wamid.8", "timestamp": "1700000000",
                 "type": "text", "text": "not an object"}
            ]
        }));
        let r = parse_callback(&body).unwrap();
        let got: Vec<WhatsappInbound> = r
            .into_iter()
            .map(|r| match r {
                Report::WhatsappInbound(i) => i,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0].from, "+919812345678");
        assert_eq!(got[0].to, "+15550001111");
        assert_eq!(
            (got[0].kind.as_str(), got[0].body.as_str()),
            ("text", "hello")
        );
        assert_eq!(got[0].at_ms, 1_700_000_000_000);
        assert_eq!(got[0].button, None);
        assert_eq!(got[1].button, Some(("yes".into(), "Yes".into())));
        assert_eq!(got[1].body, "Yes");
        assert_eq!(got[2].button, Some(("r2".into(), "Row 2".into())));
        assert_eq!(got[3].kind, "button");
        assert_eq!(
            got[3].button,
            Some(("STOP".into(), "Stop promotions".into()))
        );
        assert_eq!(got[3].body, "Stop promotions");
        assert_eq!(
            (got[4].kind.as_str(), got[4].body.as_str()),
            ("image", "look")
        );
    }

    #[test]
    fn what_is_not_ours_is_ignored() {
        // Another field, a change without value, an entry without changes.
        let body = serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1", "changes": [{"field": "account_update", "value": {"x": 1}},
                                        {"field": "messages"}]},
                {"id": "2"},
                {"id": "3", "changes": [{"field": "messages", "value": {
                    "metadata": "wrong", "statuses": "wrong", "messages": {"a": 1},
                    "errors": [{"code": 1}]}}]}
            ],
            "extra": true
        }))
        .unwrap();
        assert_eq!(parse_callback(&body), Ok(vec![]));
    }

    #[test]
    fn hostile_bodies() {
        assert!(parse_callback(b"").is_err());
        assert!(parse_callback(b"\xff\xfe").is_err());
        assert!(parse_callback(b"[1,2]").is_err());
        assert!(parse_callback(br#"{"object":"page","entry":[]}"#).is_err());
        assert!(parse_callback(br#"{"object":"whatsapp_business_account"}"#).is_err());
        assert!(parse_callback(br#"{"object":"whatsapp_business_account","entry":{}}"#).is_err());
        // Nesting deeper than serde_json's recursion limit is refused, not a
        // stack overflow.
        let deep = format!(
            r#"{{"object":"whatsapp_business_account","entry":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_callback(deep.as_bytes()).is_err());
        // A huge array of statuses is read item by item.
        let statuses: Vec<Value> = (0..20_000)
            .map(|i| {
                json!({"id": format!("wamid.{i}"), "status": "sent",
                            "timestamp": "1700000000", "recipient_id": "1"})
            })
            .collect();
        let body = callback(json!({"metadata": meta(), "statuses": statuses}));
        assert_eq!(parse_callback(&body).unwrap().len(), 20_000);
        // Numbers out of range and negative times.
        let body = callback(json!({"metadata": meta(), "statuses": [
            {"id": "w", "status": "sent", "timestamp": "99999999999999999", "recipient_id": "1"},
            {"id": "w", "status": "sent", "timestamp": "-5", "recipient_id": "1"},
            {"id": "w", "status": "sent", "timestamp": 1.5, "recipient_id": "1"},
            {"id": "", "status": "sent", "timestamp": "1", "recipient_id": "1"},
            {"id": "w", "status": "sent", "timestamp": "1", "recipient_id": "abc"}
        ]}));
        assert_eq!(parse_callback(&body), Ok(vec![]));
    }
}
