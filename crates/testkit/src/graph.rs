//! A fake WhatsApp Cloud API (Graph API) for the tests: it takes
//! `POST /{version}/{phone_number_id}/messages` on a loopback port, checks
//! the bearer token and the shape of the body as Graph documents it,
//! records every request and answers a new `wamid`, or fails the next
//! sends as told. Beside it, builders of the callbacks Meta would POST
//! to us, and their signature header, computed here on their own.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// One send as the fake saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub version: String,
    pub phone_number_id: String,
    /// The `Authorization` header as sent.
    pub authorization: String,
    pub body: Value,
    /// The `wamid` answered, when the send succeeded.
    pub wamid: Option<String>,
}

/// How to answer a send instead of succeeding.
#[derive(Debug, Clone)]
pub enum Failure {
    /// A Graph error: HTTP status, Meta's code and title (`message`).
    Graph {
        status: u16,
        code: i64,
        title: String,
    },
    /// This status and raw body (a proxy's page, a 2xx without an id).
    Raw { status: u16, body: String },
}

struct Shared {
    phone_number_id: String,
    token: String,
    sent: Mutex<Vec<Sent>>,
    failures: Mutex<VecDeque<Failure>>,
    counter: AtomicU64,
}

pub struct GraphServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GraphServer {
    /// A fake for one phone number id and access token.
    pub async fn start(phone_number_id: &str, token: &str) -> GraphServer {
        let shared = Arc::new(Shared {
            phone_number_id: phone_number_id.to_string(),
            token: token.to_string(),
            sent: Mutex::default(),
            failures: Mutex::default(),
            counter: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/{version}/{phone}/messages", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GraphServer { addr, shared, task }
    }

    /// Points a server's WhatsApp channel at this fake: the Cloud API
    /// connector with its phone number id and token, `app_secret` signing
    /// the callbacks and `verify_token` for the handshake.
    pub fn configure(
        &self,
        config: &mut rackwave::config::Config,
        app_secret: &str,
        verify_token: &str,
    ) {
        let w = &mut config.telnxo.whatsapp;
        w.connector = rackwave_telnxo::ConnectorKind::CloudApi;
        w.cloud_api.api_base = self.api_base();
        w.cloud_api.phone_number_id = self.shared.phone_number_id.clone();
        w.cloud_api.access_token = self.shared.token.clone();
        w.cloud_api.app_secret = app_secret.into();
        w.cloud_api.verify_token = verify_token.into();
    }

    /// What goes in the connector's `api_base`.
    pub fn api_base(&self) -> String {
        format!("http://{}/v21.0", self.addr)
    }

    /// Every send so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.sent.lock().unwrap().clone()
    }

    /// Fails the next send with a Graph error (e.g. 400, 131047,
    /// "Re-engagement message").
    pub fn fail_next(&self, status: u16, code: i64, title: &str) {
        self.shared
            .failures
            .lock()
            .unwrap()
            .push_back(Failure::Graph {
                status,
                code,
                title: title.to_string(),
            });
    }

    /// Answers the next send with this status and body as they are.
    pub fn answer_next_raw(&self, status: u16, body: &str) {
        self.shared
            .failures
            .lock()
            .unwrap()
            .push_back(Failure::Raw {
                status,
                body: body.to_string(),
            });
    }
}

fn graph_error(
    status: StatusCode,
    code: i64,
    message: &str,
    details: &str,
) -> (StatusCode, String) {
    let body = json!({"error": {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "AbCdEf"
    }});
    (status, body.to_string())
}

/// What is wrong with a send's body, as Graph would complain.
fn shape_problem(body: &Value) -> Option<String> {
    if body["messaging_product"] != "whatsapp" {
        return Some("messaging_product must be whatsapp".into());
    }
    let to = body["to"].as_str().unwrap_or("");
    if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("to must be digits, got {:?}", body["to"]));
    }
    if body
        .get("recipient_type")
        .is_some_and(|r| r != "individual")
    {
        return Some("recipient_type must be individual".into());
    }
    match body["type"].as_str() {
        Some("text") if body["text"]["body"].is_string() => None,
        Some("template")
            if body["template"]["name"].is_string()
                && body["template"]["language"]["code"].is_string()
                && body["template"]
                    .get("components")
                    .is_none_or(Value::is_array) =>
        {
            None
        }
        Some("interactive") if body["interactive"]["type"].is_string() => None,
        _ => Some(format!("bad type or content: {body}")),
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((version, phone)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> (StatusCode, String) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut sent = Sent {
        version,
        phone_number_id: phone.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
        wamid: None,
    };
    let answer = if authorization != format!("Bearer {}", shared.token) {
        graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "",
        )
    } else if phone != shared.phone_number_id {
        graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unsupported post request. Object does not exist",
            "",
        )
    } else if let Some(problem) = shape_problem(&body) {
        graph_error(StatusCode::BAD_REQUEST, 100, "Invalid parameter", &problem)
    } else if let Some(failure) = shared.failures.lock().unwrap().pop_front() {
        match failure {
            Failure::Graph {
                status,
                code,
                title,
            } => graph_error(
                StatusCode::from_u16(status).unwrap(),
                code,
                &title,
                "as the test asked",
            ),
            Failure::Raw { status, body } => (StatusCode::from_u16(status).unwrap(), body),
        }
    } else {
        let n = shared.counter.fetch_add(1, Ordering::Relaxed);
        let wamid = format!("wamid.{}", random_hex(n));
        sent.wamid = Some(wamid.clone());
        let to = body["to"].clone();
        let answer = json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}]
        });
        (StatusCode::OK, answer.to_string())
    };
    shared.sent.lock().unwrap().push(sent);
    answer
}

/// 32 hex digits, distinct per `n`.
fn random_hex(n: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2) ^ n)
}

/// The `X-Hub-Signature-256` value Meta sends with `body`.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A callback with one `messages` change (`value` without metadata; our
/// number `to_display` is added as `display_phone_number`).
fn callback(to_display: &str, mut value: Value) -> String {
    value["messaging_product"] = "whatsapp".into();
    value["metadata"] = json!({
        "display_phone_number": to_display.trim_start_matches('+'),
        "phone_number_id": "106540352242922"
    });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]
    })
    .to_string()
}

/// A status callback; `error` is Meta's code and title for `failed`.
pub fn status_callback(
    wamid: &str,
    status: &str,
    recipient: &str,
    ts: i64,
    error: Option<(i64, &str)>,
) -> String {
    let mut s = json!({
        "id": wamid,
        "status": status,
        "timestamp": ts.to_string(),
        "recipient_id": recipient.trim_start_matches('+'),
        "conversation": {"id": "CONVERSATION_ID", "origin": {"type": "utility"}},
        "pricing": {"billable": true, "pricing_model": "CBP", "category": "utility"}
    });
    if let Some((code, title)) = error {
        s["errors"] = json!([{"code": code, "title": title,
            "error_data": {"details": title}}]);
    }
    callback("15550001111", json!({"statuses": [s]}))
}

fn message(from: &str, kind: &str, part: Value) -> Value {
    let mut m = json!({
        "from": from.trim_start_matches('+'),
        "id": format!("wamid.{}", random_hex(0)),
        "timestamp": "1700000000",
        "type": kind,
    });
    m[kind] = part;
    m
}

fn inbound(from: &str, to_display: &str, m: Value) -> String {
    callback(
        to_display,
        json!({
            "contacts": [{"profile": {"name": "Test User"}, "wa_id": from.trim_start_matches('+')}],
            "messages": [m]
        }),
    )
}

/// A text a user sent to our number `to_display`.
pub fn text_callback(from: &str, to_display: &str, body: &str) -> String {
    inbound(
        from,
        to_display,
        message(from, "text", json!({"body": body})),
    )
}

/// A tapped reply button of an interactive message.
pub fn button_callback(from: &str, to_display: &str, id: &str, title: &str) -> String {
    inbound(
        from,
        to_display,
        message(
            from,
            "interactive",
            json!({"type": "button_reply", "button_reply": {"id": id, "title": title}}),
        ),
    )
}

/// A chosen row of an interactive list.
pub fn list_reply_callback(from: &str, to_display: &str, id: &str, title: &str) -> String {
    inbound(
        from,
        to_display,
        message(
            from,
            "interactive",
            json!({"type": "list_reply", "list_reply": {"id": id, "title": title, "description": ""}}),
        ),
    )
}

/// A tapped quick reply of a template: `payload` as set in the template,
/// `text` as shown.
pub fn template_reply_callback(from: &str, to_display: &str, payload: &str, text: &str) -> String {
    let mut m = message(from, "button", json!({"payload": payload, "text": text}));
    m["context"] = json!({"from": to_display.trim_start_matches('+'), "id": "wamid.original"});
    inbound(from, to_display, m)
}
