//! `GET /admin/v1/queue`: message counts by status.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::ErrorBody;
use crate::http::AppState;

#[derive(Serialize, ToSchema)]
pub struct QueueCounts {
    pub queued: u64,
    pub deferred: u64,
    pub delivered: u64,
    pub bounced: u64,
    /// Waiting for delivery: queued plus deferred.
    pub depth: u64,
}

/// Counts by status.
#[utoipa::path(get, path = "/admin/v1/queue", tag = "admin",
    responses((status = 200, body = QueueCounts), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn counts(State(state): State<AppState>) -> Json<QueueCounts> {
    let c = state.spool.counts();
    Json(QueueCounts {
        queued: c.queued,
        deferred: c.deferred,
        delivered: c.delivered,
        bounced: c.bounced,
        depth: c.queued + c.deferred,
    })
}
