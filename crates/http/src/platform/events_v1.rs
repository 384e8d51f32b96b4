//! `/{platform}/v1/events`: the workspace's event log (the platform's own
//! events and the portal's), filtered by type, message id and time range,
//! with cursor pagination; and one event by id.

use axum::extract::State;
use axum::Json;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use rackwave_core::event::EventType;
use rackwave_store::EventQuery;
use serde_json::value::RawValue;

use super::ById;
use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiPath, ApiQuery, Tenant};
use crate::{ApiError, AppState};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Event types, comma separated (e.g. `email.delivered,email.bounced`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub(crate) types: Option<String>,
    /// Only events about this message (`msg_…`).
    pub(crate) message_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub(crate) since: Option<String>,
    /// Only events before this time (RFC 3339).
    pub(crate) until: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub(crate) order: Option<String>,
    /// From the previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventList {
    /// Each event exactly as its webhook carried it.
    #[schema(value_type = Vec<Object>)]
    pub(crate) events: Vec<Box<RawValue>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

fn time(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "{field} must be an RFC 3339 time like 2026-06-07T09:39:00Z"
                    ))
                })
        })
        .transpose()
}

/// Lists the workspace's events.
#[utoipa::path(get, operation_id = "events_list", path = "/{platform}/v1/events", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle events, with its session)"), EventsQuery),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let limit = page_limit(q.limit)?;
    let mut types = Vec::new();
    for name in q.types.iter().flat_map(|t| t.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let t = EventType::parse(name)
            .ok_or_else(|| ApiError::invalid(format!("unknown event type `{name}`")))?;
        types.push(t);
    }
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(ApiError::invalid("order must be asc or desc")),
    };
    let filter = EventQuery {
        types,
        products: tenant.visible_products(),
        message_id: q.message_id.filter(|m| !m.is_empty()),
        since_ms: time("since", q.since.as_deref())?,
        until_ms: time("until", q.until.as_deref())?,
        ascending,
    };
    let page = state
        .events
        .list(&tenant.workspace_id, &filter, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(EventList {
        events: page.items.into_iter().map(|e| e.event).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One event by id.
#[utoipa::path(get, operation_id = "events_get", path = "/{platform}/v1/events/{id}", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle events, with its session)"),
           ("id" = String, Path, description = "Event id, `evt_…`")),
    responses((status = 200, description = "The event, as its webhook carried it", body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ById>,
) -> Result<Json<Box<RawValue>>, ApiError> {
    let visible = tenant.visible_products();
    state
        .events
        .event(&tenant.workspace_id, &p.id)
        .await?
        .filter(|e| e.event_type.is_some_and(|t| visible.contains(&t.product())))
        .map(|e| Json(e.event))
        .ok_or_else(|| ApiError::not_found(format!("event {} not found", p.id)))
}
