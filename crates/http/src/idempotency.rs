//! `Idempotency-Key`: a request sent again with the same key (a client's
//! retry after a timeout) gets the first answer instead of doing the work
//! twice, for 24 hours, across restarts (the record is in the store) and
//! when the two arrive at once (the second waits for the first). The same
//! key with another request (method, path or body) is `409`.
//!
//! The key is claimed in a store transaction before the work starts, and
//! the answer recorded after it. An answer of `5xx` is not recorded: the
//! claim is dropped so the retry does the work. A claim this process is
//! still working on is never taken over, however long the work takes (the
//! [`Running`] set); a claim without an answer and not running here was
//! left by a crash (or another node) and is taken over after [`STALE_MS`]
//! (a retry then may send once more: the window is the time between the
//! spool's commit and the record's).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rackwave_core::Clock;
use rackwave_store::{IdempotencyRecord, IdempotentResponse, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::{ApiError, AppState};

/// How long a key is remembered.
pub const TTL_MS: i64 = 86_400_000;
/// A claim this old without an answer is taken over.
const STALE_MS: i64 = 60_000;
/// How long a concurrent request waits for the first one's answer.
const WAIT: Duration = Duration::from_secs(30);

/// The keys (workspace, key) whose work runs in this process right now.
#[derive(Clone, Default)]
pub(crate) struct Running(Arc<Mutex<HashSet<(String, String)>>>);

impl Running {
    fn contains(&self, workspace_id: &str, key: &str) -> bool {
        self.lock()
            .contains(&(workspace_id.to_string(), key.to_string()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A key marked running until dropped (when its work and record are done,
/// or the task carrying them is gone).
struct RunningGuard {
    running: Running,
    entry: (String, String),
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running.lock().remove(&self.entry);
    }
}

/// A JSON body with the request's `Idempotency-Key` (if any) and, with a
/// key, a digest of what was asked (empty without one: nothing compares
/// it, and a batch's body is hashed in about as long as it is parsed).
pub(crate) struct Idempotent<T> {
    pub(crate) value: T,
    pub(crate) key: Option<String>,
    pub(crate) digest: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Idempotent<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let key = match req.headers().get("idempotency-key") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .filter(|k| {
                        (1..=255).contains(&k.len())
                            && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
                    })
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "Idempotency-Key must be 1 to 255 printable ASCII characters",
                        )
                    })?
                    .to_string(),
            ),
        };
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ));
        }
        let what = format!("{} {}\n", req.method(), req.uri().path());
        let body = Bytes::from_request(req, state)
            .await
            .map_err(ApiError::body)?;
        let value = axum::Json::<T>::from_bytes(&body)
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", r.body_text()))?
            .0;
        let digest = if key.is_some() {
            let mut h = Sha256::new();
            h.update(what.as_bytes());
            h.update(&body);
            hex::encode(h.finalize())
        } else {
            String::new()
        };
        Ok(Idempotent { value, key, digest })
    }
}

/// Runs `work` once per workspace and key (see the module docs); without a
/// key, just runs it.
pub(crate) async fn once<T, F>(
    state: &AppState,
    workspace_id: &str,
    key: Option<String>,
    digest: String,
    work: F,
) -> Response
where
    T: Serialize + Send + 'static,
    F: Future<Output = Result<(StatusCode, T), ApiError>> + Send + 'static,
{
    let Some(key) = key else {
        return answer(work.await);
    };
    let running = &state.idempotency_running;
    let guard = match claim(
        &state.store,
        &state.clock,
        running,
        workspace_id,
        &key,
        &digest,
    )
    .await
    {
        Ok(Claim::Ours(guard)) => guard,
        Ok(Claim::Answered(r)) => return replay(r),
        Err(e) => return e.into_response(),
    };
    // The work and its record run on their own task: a client that hangs
    // up mid-request (and will retry) must not leave the work half done
    // and the key claimed without an answer.
    let (state, workspace_id) = (state.clone(), workspace_id.to_string());
    let task = tokio::spawn(async move {
        let (status, body) = finish(work).await;
        record(&state, &workspace_id, &key, digest, status, &body).await;
        drop(guard);
        (status, body)
    });
    match task.await {
        Ok((status, body)) => json_response(status, body, false),
        Err(e) => {
            tracing::error!(error = %e, "an idempotent request's task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
            .into_response()
        }
    }
}

/// Runs the work; its answer as a status and JSON body.
async fn finish<T, F>(work: F) -> (StatusCode, String)
where
    T: Serialize,
    F: Future<Output = Result<(StatusCode, T), ApiError>>,
{
    match work.await {
        Ok((status, value)) => (
            status,
            serde_json::to_string(&value).expect("API answers serialize"),
        ),
        Err(e) => {
            let status = e.status;
            let body = serde_json::to_string(&crate::error::ErrorBody { error: e.detail() })
                .expect("errors serialize");
            (status, body)
        }
    }
}

/// Keeps the answer for retries (a `5xx` is dropped so a retry does the
/// work again).
async fn record(
    state: &AppState,
    workspace_id: &str,
    key: &str,
    digest: String,
    status: StatusCode,
    body: &str,
) {
    let mut tx = match state.store.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, key, "recording an idempotent answer failed");
            return;
        }
    };
    let recorded = if status.is_server_error() {
        tx.delete_idempotency(workspace_id, key).await
    } else {
        tx.put_idempotency(&IdempotencyRecord {
            workspace_id: workspace_id.to_string(),
            key: key.to_string(),
            request: digest,
            created_at_ms: state.clock.now_ms(),
            response: Some(IdempotentResponse {
                status: status.as_u16(),
                body: body.to_string(),
            }),
        })
        .await
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, key, "recording an idempotent answer failed");
    } else if let Err(e) = tx.commit().await {
        tracing::error!(error = %e, key, "recording an idempotent answer failed");
    }
}

enum Claim {
    /// The key is ours: do the work while holding the guard.
    Ours(RunningGuard),
    /// The first request's answer.
    Answered(IdempotentResponse),
}

async fn claim(
    store: &Store,
    clock: &Clock,
    running: &Running,
    workspace_id: &str,
    key: &str,
    digest: &str,
) -> Result<Claim, ApiError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Look first without the store's write lock: a request waiting for
        // the first one's answer polls without holding up other writers.
        let seen = store.idempotency(workspace_id, key).await?;
        if let Some(found) = decide(seen.as_ref(), digest, clock.now_ms())? {
            return Ok(Claim::Answered(found));
        }
        let busy = |r: &IdempotencyRecord, now: i64| {
            r.response.is_none()
                && (!stale_or_expired(r, now) || running.contains(workspace_id, key))
        };
        if seen.as_ref().is_some_and(|r| busy(r, clock.now_ms())) {
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "a request with this Idempotency-Key is still being carried out",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // Ours to take: decided again inside the transaction, where no one
        // else can take it at the same time.
        let now = clock.now_ms();
        let mut tx = store.begin().await?;
        let current = tx.idempotency(workspace_id, key).await?;
        if let Some(found) = decide(current.as_ref(), digest, now)? {
            return Ok(Claim::Answered(found));
        }
        if current.as_ref().is_some_and(|r| busy(r, now)) {
            continue;
        }
        tx.put_idempotency(&IdempotencyRecord {
            workspace_id: workspace_id.to_string(),
            key: key.to_string(),
            request: digest.to_string(),
            created_at_ms: now,
            response: None,
        })
        .await?;
        // Marked running before the claim is visible, so no one can see it
        // unanswered, old and not running while this process works on it.
        let entry = (workspace_id.to_string(), key.to_string());
        running.lock().insert(entry.clone());
        let guard = RunningGuard {
            running: running.clone(),
            entry,
        };
        tx.commit().await?;
        return Ok(Claim::Ours(guard));
    }
}

/// The first answer to replay, if there is one for this request; a
/// conflict if the key was used with another request.
fn decide(
    record: Option<&IdempotencyRecord>,
    digest: &str,
    now: i64,
) -> Result<Option<IdempotentResponse>, ApiError> {
    match record {
        Some(r) if r.created_at_ms + TTL_MS > now => {
            if r.request != digest {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "this Idempotency-Key was used with a different request",
                ));
            }
            Ok(r.response.clone())
        }
        // Unknown, or older than the TTL: a new request.
        _ => Ok(None),
    }
}

/// A claim without an answer that a crash left behind (taken over), or a
/// record past the TTL (a new request).
fn stale_or_expired(r: &IdempotencyRecord, now: i64) -> bool {
    now - r.created_at_ms >= STALE_MS
}

fn answer<T: Serialize>(result: Result<(StatusCode, T), ApiError>) -> Response {
    match result {
        Ok((status, value)) => (status, axum::Json(value)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn replay(r: IdempotentResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    json_response(status, r.body, true)
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Forgets idempotency records older than [`TTL_MS`], hourly, until
/// `shutdown` turns true.
pub async fn forget_old_keys(store: Store, clock: Clock, mut shutdown: watch::Receiver<bool>) {
    loop {
        let cutoff = clock.now_ms() - TTL_MS;
        loop {
            let pruned = async {
                let mut tx = store.begin().await?;
                let (_, more) = tx.prune_idempotency(cutoff, 1000).await?;
                tx.commit_eventually().await?;
                Ok::<bool, rackwave_store::StoreError>(more)
            };
            match pruned.await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "forgetting old idempotency keys failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> Store {
        rackwave_store::Database::open(dir.path(), 16)
            .unwrap()
            .store()
            .unwrap()
    }

    // Paused tokio time: the waits below pass without sleeping.
    #[tokio::test(start_paused = true)]
    async fn a_claim_still_running_here_is_never_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock, running) = (store(&dir), Clock::manual(1_000_000), Running::default());
        let first = match claim(&store, &clock, &running, "ws1", "k", "d").await {
            Ok(Claim::Ours(guard)) => guard,
            _ => panic!("the first request claims the key"),
        };
        // Long past STALE_MS, the first request still working: a retry
        // waits, then gives up with 409 instead of sending again.
        clock.advance_ms(STALE_MS * 10);
        match claim(&store, &clock, &running, "ws1", "k", "d").await {
            Err(e) => assert_eq!(e.status, StatusCode::CONFLICT),
            Ok(_) => panic!("a running claim was taken over"),
        }
        // Once it is no longer running here (a crash, as far as the record
        // can tell), an old unanswered claim is taken over.
        drop(first);
        assert!(matches!(
            claim(&store, &clock, &running, "ws1", "k", "d").await,
            Ok(Claim::Ours(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_claim_not_running_here_is_taken_over_only_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = (store(&dir), Clock::manual(1_000_000));
        // Claimed by "another process": its running set is not ours.
        let other = Running::default();
        let _held = match claim(&store, &clock, &other, "ws1", "k", "d").await {
            Ok(Claim::Ours(guard)) => guard,
            _ => panic!("claimed"),
        };
        let ours = Running::default();
        assert!(matches!(
            claim(&store, &clock, &ours, "ws1", "k", "d").await,
            Err(ApiError {
                status: StatusCode::CONFLICT,
                ..
            })
        ));
        clock.advance_ms(STALE_MS);
        assert!(matches!(
            claim(&store, &clock, &ours, "ws1", "k", "d").await,
            Ok(Claim::Ours(_))
        ));
        // The same key with another request is a conflict at once.
        assert!(matches!(
            claim(&store, &clock, &ours, "ws1", "k", "other digest").await,
            Err(ApiError {
                status: StatusCode::CONFLICT,
                ..
            })
        ));
    }
}
