//! Destinations of the delivery engine: their state (also listed by
//! `GET /admin/v1/queue`) and `POST /admin/v1/destinations/{domain}/resume`,
//! which lifts a throttling pause now.

use axum::extract::State;
use axum::Json;
use rackwave_core::rfc3339;
use rackwave_delivery::DestinationStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::ApiPath;
use crate::{ApiError, AppState};

/// One destination (recipient domain) of the delivery engine.
#[derive(Serialize, ToSchema)]
pub(crate) struct DestinationView {
    pub(crate) domain: String,
    /// Leased messages waiting in memory for a connection.
    pub(crate) waiting: usize,
    /// Connections open now.
    pub(crate) connections: usize,
    /// Paused after a throttling reply: no connection opens, no message is
    /// tried until `paused_until`.
    pub(crate) paused: bool,
    pub(crate) paused_until: Option<String>,
    /// The throttling reply that caused the pause.
    pub(crate) pause_reason: Option<String>,
    /// Throttling replies in a row (the next pause is longer).
    pub(crate) throttles: u32,
}

impl From<DestinationStatus> for DestinationView {
    fn from(d: DestinationStatus) -> DestinationView {
        DestinationView {
            domain: d.domain,
            waiting: d.waiting,
            connections: d.connections,
            paused: d.paused_until_ms.is_some(),
            paused_until: d.paused_until_ms.map(rfc3339),
            pause_reason: d.pause_reason,
            throttles: d.throttles,
        }
    }
}

/// Lifts a destination's throttling pause now: its connections open at
/// once and its waiting messages are tried.
#[utoipa::path(post, operation_id = "admin_destinations_resume",
    path = "/admin/v1/destinations/{domain}/resume", tag = "admin",
    params(("domain" = String, Path, description = "Recipient domain, e.g. gmail.com")),
    responses((status = 200, body = DestinationView), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath(domain): ApiPath<String>,
) -> Result<Json<DestinationView>, ApiError> {
    state
        .destinations
        .as_ref()
        .and_then(|d| d.resume(&domain))
        .map(|d| Json(d.into()))
        .ok_or_else(|| ApiError::not_found(format!("destination {domain} is not paused")))
}
