//! `GET /admin/v1/messages` (by workspace, recipient, status or queue id,
//! paginated) and `GET /admin/v1/messages/{id}` (status history and
//! delivery attempts).

use axum::extract::State;
use axum::Json;
use rackwave_queue::{ListFilter, MessageRecord, Status};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use rackwave_core::event::EmailEvent;
use rackwave_core::rfc3339;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Workspace id; required unless `queue_id` is given (the admin API;
    /// the MigoSMTP API takes the key's and refuses this parameter).
    pub(crate) workspace: Option<String>,
    /// Recipient address (case-insensitive).
    pub(crate) to: Option<String>,
    /// `queued`, `deferred`, `delivered` or `bounced`.
    pub(crate) status: Option<String>,
    /// The id from `250 OK queued as …`: all messages of one submission.
    pub(crate) queue_id: Option<String>,
    /// Envelope sender (case-insensitive).
    pub(crate) from: Option<String>,
    /// Messages sent with this tag.
    pub(crate) tag: Option<String>,
    /// Created at or after this time (RFC 3339).
    pub(crate) since: Option<String>,
    /// Created before this time (RFC 3339).
    pub(crate) until: Option<String>,
    /// From the previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageSummary {
    pub(crate) id: String,
    pub(crate) queue_id: String,
    pub(crate) workspace_id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) subject: Option<String>,
    /// `queued`, `deferred`, `delivered` or `bounced`.
    pub(crate) status: String,
    pub(crate) created_at: String,
    /// The sender's labels (HTTP API `tags`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<String>,
    /// The sender's key/value pairs (HTTP API `metadata`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageList {
    pub(crate) messages: Vec<MessageSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StatusChangeView {
    pub(crate) status: String,
    /// The event recorded, e.g. `email.queued`.
    pub(crate) event: String,
    pub(crate) at: String,
    /// What only this event knows: why a message was deferred or bounced
    /// (the fields of `email.deferred` and `email.bounced`).
    #[schema(value_type = Option<Object>)]
    pub(crate) detail: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryAttemptView {
    /// 1 for the first attempt.
    pub(crate) attempt_number: usize,
    pub(crate) at: String,
    pub(crate) event: String,
    pub(crate) remote_host: Option<String>,
    pub(crate) remote_ip: Option<String>,
    pub(crate) tls: bool,
    pub(crate) reply: String,
    #[schema(value_type = Option<Object>)]
    pub(crate) detail: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageDetail {
    #[serde(flatten)]
    pub(crate) summary: MessageSummary,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_at: Option<String>,
    pub(crate) history: Vec<StatusChangeView>,
    pub(crate) delivery_attempts: Vec<DeliveryAttemptView>,
}

fn summary(m: &MessageRecord) -> MessageSummary {
    MessageSummary {
        id: m.id.clone(),
        queue_id: m.queue_id.clone(),
        workspace_id: m.workspace_id.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        subject: m.subject.clone(),
        status: m.status.as_str().to_string(),
        created_at: rfc3339(m.created_at_ms),
        tags: m.tags.clone(),
        metadata: m.metadata.clone(),
    }
}

/// The data only this event knows, as the API shows it.
fn detail(event: &EmailEvent) -> Option<serde_json::Value> {
    match event {
        EmailEvent::Deferred(d) => serde_json::to_value(d).ok(),
        EmailEvent::Bounced(d) => serde_json::to_value(d).ok(),
        EmailEvent::Queued | EmailEvent::Sent | EmailEvent::Delivered => None,
    }
}

/// Lists messages, newest first.
#[utoipa::path(get, operation_id = "admin_messages_list", path = "/admin/v1/messages", tag = "admin", params(ListQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<MessageList>, ApiError> {
    list_in(&state, q).await.map(Json)
}

/// The listing for `q`: by `queue_id`, or a workspace's by recipient and
/// status (the MigoSMTP API sets `workspace` to the key's).
pub(crate) async fn list_in(state: &AppState, q: ListQuery) -> Result<MessageList, ApiError> {
    list_scanning(state, q, rackwave_queue::LIST_SCAN_BUDGET).await
}

/// [`list_in`], examining at most `budget` entries of the log's index.
pub(crate) async fn list_scanning(
    state: &AppState,
    q: ListQuery,
    budget: usize,
) -> Result<MessageList, ApiError> {
    let limit = page_limit(q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(ApiError::invalid)?;
    if let Some(queue_id) = &q.queue_id {
        let mut messages = Vec::new();
        for m in crate::messages::of_queue(state, queue_id).await? {
            let wanted = q.workspace.as_ref().is_none_or(|w| *w == m.workspace_id)
                && q.to.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(&m.to))
                && status.as_ref().is_none_or(|s| *s == m.status);
            if wanted {
                messages.push(summary(&m));
            }
        }
        return Ok(MessageList {
            messages,
            next_cursor: None,
        });
    }
    let Some(workspace_id) = q.workspace else {
        return Err(ApiError::invalid("workspace (or queue_id) is required"));
    };
    state.accounts.require_workspace(&workspace_id).await?;
    let time = |field: &str, value: &Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| {
                        ApiError::invalid(format!("{field} must be an RFC 3339 time, got `{v}`"))
                    })
            })
            .transpose()
    };
    let filter = ListFilter {
        workspace_id,
        to: q.to,
        status,
        from: q.from,
        tag: q.tag,
        since_ms: time("since", &q.since)?,
        until_ms: time("until", &q.until)?,
    };
    let page = crate::messages::list(state, &filter, q.cursor.as_deref(), limit, budget).await?;
    Ok(MessageList {
        messages: page.messages.iter().map(summary).collect(),
        next_cursor: page.next_cursor,
    })
}

/// One message with its status history and delivery attempts.
#[utoipa::path(get, operation_id = "admin_messages_get", path = "/admin/v1/messages/{id}", tag = "admin",
    params(("id" = String, Path, description = "Message id, msg_…")),
    responses((status = 200, body = MessageDetail), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageDetail>, ApiError> {
    let (m, _) = crate::messages::message(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))?;
    Ok(Json(detail_of(&m)))
}

/// A message with its status history and delivery attempts, as the API
/// shows it.
pub(crate) fn detail_of(m: &MessageRecord) -> MessageDetail {
    MessageDetail {
        summary: summary(m),
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at_ms.map(rfc3339),
        history: m
            .history
            .iter()
            .map(|h| StatusChangeView {
                status: h.status.as_str().to_string(),
                event: h.event.event_type().as_str().to_string(),
                at: rfc3339(h.at_ms),
                detail: detail(&h.event),
            })
            .collect(),
        delivery_attempts: m
            .delivery_attempts
            .iter()
            .enumerate()
            .map(|(i, a)| DeliveryAttemptView {
                attempt_number: i + 1,
                at: rfc3339(a.at_ms),
                event: a.outcome.event_type().as_str().to_string(),
                remote_host: a.remote_host.clone(),
                remote_ip: a.remote_ip.clone(),
                tls: a.tls,
                reply: a.reply.clone(),
                detail: detail(&a.outcome),
            })
            .collect(),
    }
}

/// Sends a message as a workspace (what `POST /migosmtp/v1/messages`
/// does with the workspace's key), for an operator: `202` once queued.
/// Counted against the workspace's quota as submitter `operator`.
#[utoipa::path(post, operation_id = "admin_messages_send", path = "/admin/v1/workspaces/{id}/messages",
    tag = "admin", params(("id" = String, Path, description = "Workspace id")),
    request_body = crate::migosmtp::messages_v1::SendMessage,
    responses((status = 202, body = crate::migosmtp::messages_v1::Sent),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn send(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
    crate::extract::ApiJson(message): crate::extract::ApiJson<
        crate::migosmtp::messages_v1::SendMessage,
    >,
) -> Result<
    (
        axum::http::StatusCode,
        Json<crate::migosmtp::messages_v1::Sent>,
    ),
    ApiError,
> {
    state.accounts.require_workspace(&workspace_id).await?;
    let tenant = crate::extract::Tenant {
        workspace_id,
        product: rackwave_core::Product::Migosmtp,
        key_id: "operator".into(),
    };
    let sent = crate::migosmtp::messages_v1::send_one(&state, &tenant, message, "").await?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(sent)))
}
