//! `POST /admin/v1/workspaces`, `GET /admin/v1/workspaces[/{id}]`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::Workspace;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    pub name: String,
    /// Optional cap on accepted recipients per UTC day for the whole workspace.
    pub daily_quota: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceList {
    pub workspaces: Vec<Workspace>,
}

/// Creates a workspace.
#[utoipa::path(post, path = "/admin/v1/workspaces", tag = "admin",
    request_body = CreateWorkspace,
    responses((status = 201, body = Workspace), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
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
#[utoipa::path(get, path = "/admin/v1/workspaces", tag = "admin",
    responses((status = 200, body = WorkspaceList), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<WorkspaceList>, ApiError> {
    Ok(Json(WorkspaceList {
        workspaces: state.accounts.workspaces()?,
    }))
}

/// One workspace.
#[utoipa::path(get, path = "/admin/v1/workspaces/{id}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, body = Workspace), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Workspace>, ApiError> {
    state
        .accounts
        .workspace(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("workspace {id} not found")))
}
