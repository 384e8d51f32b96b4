//! `/telnxo/v1/messages`: the workspace's SMS and WhatsApp messages, sent
//! and received, newest first; one with its events.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rackwave_core::rfc3339;
use rackwave_store::{Channel, TelnxoMessage};
use rackwave_telnxo::TelnxoError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::{events_of, steps, FailureView, StepView};
use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiPath, ApiQuery, Telnxo};
use crate::{ApiError, AppState};

/// Telnxo's refusals as HTTP: a field at fault or a channel's rule is a
/// `422` naming it; the rest by kind.
pub(crate) fn api_error(e: TelnxoError) -> ApiError {
    match e {
        TelnxoError::Invalid { field, message } => ApiError::unprocessable(field, message),
        TelnxoError::Refused { code, message } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        }
        e => e.into(),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WhatsappView {
    /// `text`, `template`, `interactive` (sent); WhatsApp's type (received).
    pub(crate) kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) template_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) button_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) button_title: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageView {
    pub(crate) id: String,
    /// `sms` or `whatsapp`.
    pub(crate) channel: String,
    /// `outbound` or `inbound`.
    pub(crate) direction: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) body: String,
    /// `queued`, `sent`, `delivered`, `read`, `failed`, `received`.
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) encoding: Option<String>,
    pub(crate) parts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) whatsapp: Option<WhatsappView>,
    pub(crate) attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<FailureView>,
    pub(crate) created_at: String,
    pub(crate) history: Vec<StepView>,
    /// `GET …/messages/{id}` only: its events, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) events: Option<Vec<Box<RawValue>>>,
}

pub(crate) fn view(m: TelnxoMessage) -> MessageView {
    let whatsapp = m.whatsapp.map(|w| {
        let (button_id, button_title) = w.button.map_or((None, None), |(i, t)| (Some(i), Some(t)));
        WhatsappView {
            kind: w.kind,
            template_name: w.template_name,
            button_id,
            button_title,
        }
    });
    MessageView {
        history: steps(&m.history),
        id: m.id,
        channel: m.channel.as_str().into(),
        direction: m.direction.as_str().into(),
        from: m.from,
        to: m.to,
        body: m.body,
        status: m.status.as_str().into(),
        encoding: m.encoding,
        parts: m.parts,
        whatsapp,
        attempts: m.attempts,
        error: m.error.map(|e| FailureView {
            code: e.code,
            description: e.description,
        }),
        created_at: rfc3339(m.created_at_ms),
        events: None,
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessagesQuery {
    /// `sms` or `whatsapp` (default both).
    pub(crate) channel: Option<String>,
    pub(crate) cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageList {
    pub(crate) messages: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// The workspace's messages, newest first.
#[utoipa::path(get, operation_id = "telnxo_messages_list", path = "/telnxo/v1/messages", tag = "telnxo",
    params(MessagesQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let limit = page_limit(q.limit)?;
    let channel = match q.channel.as_deref() {
        None => None,
        Some(c) => match Channel::parse(c) {
            Some(c @ (Channel::Sms | Channel::Whatsapp)) => Some(c),
            _ => return Err(ApiError::invalid("channel must be sms or whatsapp")),
        },
    };
    let page = state
        .telnxo
        .messages(&tenant.workspace_id, channel, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(MessageList {
        messages: page.items.into_iter().map(view).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct MessagePath {
    /// `msg_…`
    pub(crate) id: String,
}

/// One message with its history and events.
#[utoipa::path(get, operation_id = "telnxo_messages_get", path = "/telnxo/v1/messages/{id}", tag = "telnxo",
    params(MessagePath),
    responses((status = 200, body = MessageView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    ApiPath(p): ApiPath<MessagePath>,
) -> Result<Json<MessageView>, ApiError> {
    let m = state.telnxo.message(&tenant.workspace_id, &p.id).await?;
    let events = events_of(&state, &tenant.workspace_id, &m.id).await?;
    let mut v = view(m);
    v.events = Some(events);
    Ok(Json(v))
}
