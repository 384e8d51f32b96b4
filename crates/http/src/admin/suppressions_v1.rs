//! `/admin/v1/workspaces/{id}/suppressions`: an operator reads and edits a
//! workspace's suppression list as the workspace does with its MigoSMTP
//! key (`/migosmtp/v1/suppressions`), for `rackwave admin suppressions`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::migosmtp::suppressions_v1::{
    add_in, delete_in, list_in, ListQuery, NewSuppression, SuppressionList, SuppressionView,
};
use crate::{ApiError, AppState};

/// A workspace's suppressed addresses, in address order.
#[utoipa::path(get, operation_id = "admin_suppressions_list",
    path = "/admin/v1/workspaces/{id}/suppressions", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"), ListQuery),
    responses((status = 200, body = SuppressionList), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SuppressionList>, ApiError> {
    state.accounts.require_workspace(&workspace_id).await?;
    list_in(&state, &workspace_id, q).await.map(Json)
}

/// Adds an address to a workspace's list (or replaces its entry).
#[utoipa::path(post, operation_id = "admin_suppressions_add",
    path = "/admin/v1/workspaces/{id}/suppressions", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = NewSuppression,
    responses((status = 201, body = SuppressionView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn add(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
    ApiJson(req): ApiJson<NewSuppression>,
) -> Result<(StatusCode, Json<SuppressionView>), ApiError> {
    state.accounts.require_workspace(&workspace_id).await?;
    add_in(&state, &workspace_id, req)
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
}

/// Removes an address from a workspace's list.
#[utoipa::path(delete, operation_id = "admin_suppressions_delete",
    path = "/admin/v1/workspaces/{id}/suppressions/{address}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"),
        ("address" = String, Path, description = "the address, any case")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath((workspace_id, address)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.accounts.require_workspace(&workspace_id).await?;
    delete_in(&state, &workspace_id, &address).await
}
