//! `POST /admin/v1/workspaces`, `GET /admin/v1/workspaces[/{id}]`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};
use rackwave_accounts::Workspace;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWorkspace {
    pub(crate) name: String,
    /// Optional cap on accepted recipients per UTC day for the whole workspace.
    pub(crate) daily_quota: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateWorkspace {
    /// The daily cap; `null` removes it.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<u64>)]
    pub(crate) daily_quota: Option<Option<u64>>,
    /// Send from any domain even once the workspace has verified sending
    /// domains.
    pub(crate) allow_unverified_senders: Option<bool>,
    /// What its messages carry per recipient by default.
    pub(crate) tracking: Option<TrackingUpdate>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackingUpdate {
    /// The open pixel in the HTML.
    pub(crate) opens: Option<bool>,
    /// Links in the HTML through the click endpoint.
    pub(crate) clicks: Option<bool>,
    /// RFC 8058 one-click unsubscribe headers.
    pub(crate) unsubscribe: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WorkspaceList {
    pub(crate) workspaces: Vec<Workspace>,
}

/// Creates a workspace.
#[utoipa::path(post, operation_id = "admin_workspaces_create", path = "/admin/v1/workspaces", tag = "admin",
    request_body = CreateWorkspace,
    responses((status = 201, body = Workspace), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<Workspace>), ApiError> {
    let ws = state
        .accounts
        .create_workspace(&req.name, req.daily_quota)
        .await?;
    Ok((StatusCode::CREATED, Json(ws)))
}

/// Lists workspaces.
#[utoipa::path(get, operation_id = "admin_workspaces_list", path = "/admin/v1/workspaces", tag = "admin",
    responses((status = 200, body = WorkspaceList), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<WorkspaceList>, ApiError> {
    Ok(Json(WorkspaceList {
        workspaces: state.accounts.workspaces().await?,
    }))
}

/// Changes a workspace's settings.
#[utoipa::path(patch, operation_id = "admin_workspaces_update", path = "/admin/v1/workspaces/{id}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = UpdateWorkspace,
    responses((status = 200, body = Workspace), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateWorkspace>,
) -> Result<Json<Workspace>, ApiError> {
    let ws = state
        .accounts
        .update_workspace(
            &id,
            rackwave_accounts::WorkspaceChanges {
                daily_quota: req.daily_quota,
                allow_unverified_senders: req.allow_unverified_senders,
                opens: req.tracking.as_ref().and_then(|t| t.opens),
                clicks: req.tracking.as_ref().and_then(|t| t.clicks),
                unsubscribe: req.tracking.as_ref().and_then(|t| t.unsubscribe),
            },
        )
        .await?;
    Ok(Json(ws))
}

/// One workspace.
#[utoipa::path(get, operation_id = "admin_workspaces_get", path = "/admin/v1/workspaces/{id}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, body = Workspace), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Workspace>, ApiError> {
    Ok(Json(state.accounts.require_workspace(&id).await?))
}

/// A workspace's email events counted per day (what `GET
/// /migosmtp/v1/stats` shows the workspace).
#[utoipa::path(get, operation_id = "admin_workspaces_stats", path = "/admin/v1/workspaces/{id}/stats", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"), crate::migosmtp::stats_v1::StatsQuery),
    responses((status = 200, body = crate::migosmtp::stats_v1::Stats), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<crate::migosmtp::stats_v1::StatsQuery>,
) -> Result<Json<crate::migosmtp::stats_v1::Stats>, ApiError> {
    state.accounts.require_workspace(&id).await?;
    crate::migosmtp::stats_v1::stats_in(&state, &id, q)
        .await
        .map(Json)
}
