//! `GET /admin/v1/queue`: message counts by status, and the delivery
//! engine's destinations (ready queues, connections, pauses).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::destinations_v1::DestinationView;
use crate::error::ErrorBody;
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct QueueCounts {
    pub(crate) queued: u64,
    pub(crate) deferred: u64,
    pub(crate) delivered: u64,
    pub(crate) bounced: u64,
    /// Waiting for delivery: queued plus deferred.
    pub(crate) depth: u64,
    /// Destinations with messages waiting, connections open or a pause,
    /// by domain (empty when the delivery engine is off).
    pub(crate) destinations: Vec<DestinationView>,
}

/// Counts by status, and the destinations being worked.
#[utoipa::path(get, operation_id = "admin_queue_counts", path = "/admin/v1/queue", tag = "admin",
    responses((status = 200, body = QueueCounts), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn counts(State(state): State<AppState>) -> Json<QueueCounts> {
    let c = state.spool.counts();
    Json(QueueCounts {
        queued: c.queued,
        deferred: c.deferred,
        delivered: c.delivered,
        bounced: c.bounced,
        depth: c.queued + c.deferred,
        destinations: state
            .destinations
            .iter()
            .flat_map(|d| d.status())
            .map(DestinationView::from)
            .collect(),
    })
}
