//! A real HTTP webhook receiver for the tests. It verifies every request's
//! signature on its own, from the Standard Webhooks specification (HMAC-
//! SHA256 over `id.timestamp.body` with the base64-decoded `whsec_` secret,
//! any of the space-separated `v1,` signatures may match), without calling
//! the server's signing code; and per path it can be told to succeed, fail
//! or hang.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub enum Behavior {
    /// 200 with this body.
    Ok(String),
    /// This status (e.g. 500).
    Fail(u16),
    /// Never answer (until [`Receiver::release`]).
    Hang,
}

impl Behavior {
    pub fn ok() -> Behavior {
        Behavior::Ok("ok".into())
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
    pub body: Value,
    pub webhook_id: String,
    pub timestamp: i64,
    pub signature: String,
    /// The known secrets of the path whose signature is in the header.
    pub matched_secrets: Vec<String>,
    pub at: Instant,
    pub behavior: Behavior,
}

impl Received {
    pub fn verified(&self) -> bool {
        !self.matched_secrets.is_empty()
    }
    pub fn signature_count(&self) -> usize {
        self.signature.split(' ').filter(|s| !s.is_empty()).count()
    }
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<Received>>,
    secrets: Mutex<HashMap<String, Vec<String>>>,
    scripts: Mutex<HashMap<String, VecDeque<Behavior>>>,
    defaults: Mutex<HashMap<String, Behavior>>,
    arrived: Notify,
    release: Notify,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The signature of the spec, computed here independently.
pub fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let ts = headers
        .get("webhook-timestamp")
        .cloned()
        .unwrap_or_default();
    let signature = headers
        .get("webhook-signature")
        .cloned()
        .unwrap_or_default();
    let known = shared
        .secrets
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or_default();
    let presented: Vec<&str> = signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .collect();
    let matched_secrets = known
        .into_iter()
        .filter(|s| presented.contains(&expected_signature(s, &id, &ts, &body).as_str()))
        .collect();
    let behavior = {
        let mut scripts = shared.scripts.lock().unwrap();
        scripts
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .or_else(|| shared.defaults.lock().unwrap().get(&path).cloned())
            .unwrap_or_else(Behavior::ok)
    };
    shared.log.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
        webhook_id: id,
        timestamp: ts.parse().unwrap_or(-1),
        signature,
        matched_secrets,
        at: Instant::now(),
        behavior: behavior.clone(),
    });
    shared.arrived.notify_waiters();
    match behavior {
        Behavior::Ok(body) => (StatusCode::OK, body),
        Behavior::Fail(code) => (
            StatusCode::from_u16(code).unwrap(),
            format!("failing with {code} as told"),
        ),
        Behavior::Hang => {
            tokio::select! {
                _ = shared.release.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            }
            (StatusCode::OK, "released".into())
        }
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/{path}", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Adds a MigoSMTP webhook endpoint at this receiver's `path` for
    /// `types` (API key `key`, server at `http`) and checks its requests
    /// with the endpoint's secret: the endpoint's id.
    pub async fn endpoint(
        &self,
        http: &str,
        key: &str,
        path: &str,
        types: serde_json::Value,
    ) -> String {
        let (status, ep) = crate::api(
            http,
            key,
            "POST",
            "/migosmtp/v1/webhooks",
            Some(serde_json::json!({"url": self.url(path), "event_types": types})),
        )
        .await;
        assert_eq!(status, 201, "{ep}");
        self.set_secrets(path, &[ep["secret"].as_str().unwrap()]);
        ep["id"].as_str().unwrap().to_string()
    }

    /// The secrets the path's signatures are checked against.
    pub fn set_secrets(&self, path: &str, secrets: &[&str]) {
        self.shared.secrets.lock().unwrap().insert(
            path.to_string(),
            secrets.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// Behaviours for the next requests to `path`, in order; then the
    /// default.
    pub fn script(&self, path: &str, steps: Vec<Behavior>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .insert(path.to_string(), steps.into());
    }

    pub fn set_default(&self, path: &str, b: Behavior) {
        self.shared
            .defaults
            .lock()
            .unwrap()
            .insert(path.to_string(), b);
    }

    /// Lets every hanging request answer.
    pub fn release(&self) {
        self.shared.release.notify_waiters();
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests `path` has seen (without copying them).
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// How many requests all paths have seen.
    pub fn total(&self) -> usize {
        self.shared.log.lock().unwrap().len()
    }

    /// Every request so far, all paths.
    pub fn all(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Waits until `path` has seen at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received(path);
                assert!(
                    got.len() >= n,
                    "{path}: expected {n} requests within {within:?}, got {}",
                    got.len()
                );
                return got;
            }
        }
    }
}

/// Waits (kicking the server's webhook outbox) for the first event
/// `event` at `path` whose data `matches`; checks that it is signed with
/// the endpoint's secret and carries every field the seed lists for its
/// type; its data.
pub async fn seed_event(
    ts: &crate::TestServer,
    rx: &Receiver,
    path: &str,
    event: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..200 {
        let found = rx
            .received(path)
            .into_iter()
            .find(|r| r.body["event"] == event && matches(&r.body["data"]));
        if let Some(r) = found {
            assert!(
                r.verified(),
                "{event} not signed with the endpoint's secret"
            );
            let t = rackwave_core::event::EventType::parse(event).expect("an event type");
            for field in t.fields() {
                assert!(
                    r.body["data"].get(field).is_some(),
                    "{event} lacks {field}: {}",
                    r.body
                );
            }
            return r.body.clone();
        }
        ts.server.as_ref().unwrap().events.kick();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "no matching {event}; got {:?}",
        rx.received(path)
            .iter()
            .map(|r| format!("{} {}", r.body["event"], r.body["data"]))
            .collect::<Vec<_>>()
    );
}
