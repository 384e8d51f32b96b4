//! `GET /admin/v1/messages` (by workspace, recipient, status or queue id,
//! paginated) and `GET /admin/v1/messages/{id}` (status history and
//! delivery attempts).

use axum::extract::{Path, State};
use axum::Json;
use rackwave_queue::{ListFilter, MessageRecord, Status};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::clock::rfc3339;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiQuery;
use crate::http::{ApiError, AppState};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Workspace id; required unless `queue_id` is given.
    pub workspace: Option<String>,
    /// Recipient address (case-insensitive).
    pub to: Option<String>,
    /// `queued`, `deferred`, `delivered` or `bounced`.
    pub status: Option<String>,
    /// The id from `250 OK queued as …`: all messages of one submission.
    pub queue_id: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageSummary {
    pub id: String,
    pub queue_id: String,
    pub workspace_id: String,
    pub from: String,
    pub to: String,
    pub subject: Option<String>,
    /// `queued`, `deferred`, `delivered` or `bounced`.
    pub status: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatusChangeView {
    pub status: String,
    /// The event recorded, e.g. `email.queued`.
    pub event: String,
    pub at: String,
    pub detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryAttemptView {
    pub at: String,
    pub event: String,
    pub remote_host: Option<String>,
    pub remote_ip: Option<String>,
    pub tls: bool,
    pub reply: String,
    pub detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub history: Vec<StatusChangeView>,
    pub delivery_attempts: Vec<DeliveryAttemptView>,
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
    }
}

fn parse_status(s: &str) -> Result<Status, ApiError> {
    match s {
        "queued" => Ok(Status::Queued),
        "deferred" => Ok(Status::Deferred),
        "delivered" => Ok(Status::Delivered),
        "bounced" => Ok(Status::Bounced),
        _ => Err(ApiError::invalid(
            "status must be queued, deferred, delivered or bounced",
        )),
    }
}

/// Lists messages, newest first.
#[utoipa::path(get, path = "/admin/v1/messages", tag = "admin", params(ListQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let status = q.status.as_deref().map(parse_status).transpose()?;
    if let Some(queue_id) = &q.queue_id {
        let mut messages = Vec::new();
        for id in state.spool.by_queue_id(queue_id)? {
            if let Some(m) = state.spool.get(&id)? {
                let wanted = q.workspace.as_ref().is_none_or(|w| *w == m.workspace_id)
                    && q.to.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(&m.to))
                    && status.as_ref().is_none_or(|s| *s == m.status);
                if wanted {
                    messages.push(summary(&m));
                }
            }
        }
        return Ok(Json(MessageList {
            messages,
            next_cursor: None,
        }));
    }
    let Some(workspace_id) = q.workspace else {
        return Err(ApiError::invalid("workspace (or queue_id) is required"));
    };
    if state.accounts.workspace(&workspace_id)?.is_none() {
        return Err(ApiError::not_found(format!(
            "workspace {workspace_id} not found"
        )));
    }
    let filter = ListFilter {
        workspace_id,
        to: q.to,
        status,
    };
    let page = state
        .spool
        .list(&filter, q.cursor.as_deref(), limit)
        .map_err(|e| match e {
            rackwave_queue::SpoolError::Invalid(m) => ApiError::invalid(m),
            other => other.into(),
        })?;
    Ok(Json(MessageList {
        messages: page.messages.iter().map(summary).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One message with its status history and delivery attempts.
#[utoipa::path(get, path = "/admin/v1/messages/{id}", tag = "admin",
    params(("id" = String, Path, description = "Message id, msg_…")),
    responses((status = 200, body = MessageDetail), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MessageDetail>, ApiError> {
    let m = state
        .spool
        .get(&id)?
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))?;
    Ok(Json(MessageDetail {
        summary: summary(&m),
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at_ms.map(rfc3339),
        history: m
            .history
            .iter()
            .map(|h| StatusChangeView {
                status: h.status.as_str().to_string(),
                event: h.event.clone(),
                at: rfc3339(h.at_ms),
                detail: h.detail.clone(),
            })
            .collect(),
        delivery_attempts: m
            .delivery_attempts
            .iter()
            .map(|a| DeliveryAttemptView {
                at: rfc3339(a.at_ms),
                event: a.event.clone(),
                remote_host: a.remote_host.clone(),
                remote_ip: a.remote_ip.clone(),
                tls: a.tls,
                reply: a.reply.clone(),
                detail: a.detail.clone(),
            })
            .collect(),
    }))
}
