//! `/telnxo/v1/calls`: places a call (text to speech or an audio URL,
//! optionally recorded), lists the workspace's calls, shows one with its
//! events.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use rackwave_core::rfc3339;
use rackwave_store::Call;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::{events_of, steps, FailureView, StepView};
use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiPath, ApiQuery, Telnxo};
use crate::idempotency::{once, Idempotent};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaceCall {
    /// A voice number of the workspace (E.164).
    pub(crate) from: String,
    pub(crate) to: String,
    /// Text spoken once answered; or
    pub(crate) tts: Option<String>,
    /// audio played once answered (http or https).
    pub(crate) audio_url: Option<String>,
    #[serde(default)]
    pub(crate) record: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CallQueued {
    pub(crate) call_id: String,
    pub(crate) status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CallView {
    pub(crate) id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    /// `queued`, `initiated`, `answered`, `completed`, `no_answer`, `failed`.
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audio_url: Option<String>,
    pub(crate) record: bool,
    pub(crate) created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) answered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) duration_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recording_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<FailureView>,
    pub(crate) attempts: u32,
    pub(crate) history: Vec<StepView>,
    /// `GET …/calls/{id}` only: its events, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) events: Option<Vec<Box<RawValue>>>,
}

pub(crate) fn view(c: Call) -> CallView {
    CallView {
        history: steps(&c.history),
        id: c.id,
        from: c.from,
        to: c.to,
        status: c.status.as_str().into(),
        tts: c.tts,
        audio_url: c.audio_url,
        record: c.record,
        created_at: rfc3339(c.created_at_ms),
        answered_at: c.answered_at_ms.map(rfc3339),
        ended_at: c.ended_at_ms.map(rfc3339),
        duration_seconds: c.duration_seconds,
        recording_url: c.recording_url,
        error: c.error.map(|e| FailureView {
            code: e.code,
            description: e.description,
        }),
        attempts: c.attempts,
        events: None,
    }
}

/// Places a call: `202` once it is queued; `voice.initiated` follows
/// when it is dialling.
#[utoipa::path(post, operation_id = "telnxo_calls_place", path = "/telnxo/v1/calls", tag = "telnxo",
    request_body = PlaceCall,
    responses((status = 202, body = CallQueued), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn place(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    request: Idempotent<PlaceCall>,
) -> Response {
    let Idempotent { value, key, digest } = request;
    let ws = tenant.workspace_id.clone();
    let service = state.telnxo.clone();
    once(&state, &ws, key, digest, async move {
        let call = service
            .place_call(
                &tenant.workspace_id,
                rackwave_telnxo::NewCall {
                    from: value.from,
                    to: value.to,
                    tts: value.tts,
                    audio_url: value.audio_url,
                    record: value.record,
                },
            )
            .await
            .map_err(super::messages_v1::api_error)?;
        Ok((
            StatusCode::ACCEPTED,
            CallQueued {
                call_id: call.id,
                status: "queued",
            },
        ))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallsQuery {
    pub(crate) cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CallList {
    pub(crate) calls: Vec<CallView>,
    pub(crate) next_cursor: Option<String>,
}

/// The workspace's calls, newest first.
#[utoipa::path(get, operation_id = "telnxo_calls_list", path = "/telnxo/v1/calls", tag = "telnxo",
    params(CallsQuery),
    responses((status = 200, body = CallList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    ApiQuery(q): ApiQuery<CallsQuery>,
) -> Result<Json<CallList>, ApiError> {
    let limit = page_limit(q.limit)?;
    let page = state
        .telnxo
        .calls(&tenant.workspace_id, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(CallList {
        calls: page.items.into_iter().map(view).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct CallPath {
    /// `call_…`
    pub(crate) id: String,
}

/// One call with its progress and events.
#[utoipa::path(get, operation_id = "telnxo_calls_get", path = "/telnxo/v1/calls/{id}", tag = "telnxo",
    params(CallPath),
    responses((status = 200, body = CallView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    ApiPath(p): ApiPath<CallPath>,
) -> Result<Json<CallView>, ApiError> {
    let call = state.telnxo.call(&tenant.workspace_id, &p.id).await?;
    let events = events_of(&state, &tenant.workspace_id, &call.id).await?;
    let mut v = view(call);
    v.events = Some(events);
    Ok(Json(v))
}
