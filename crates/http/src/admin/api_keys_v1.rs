//! `POST /admin/v1/workspaces/{id}/api-keys`: a key for one platform, shown
//! once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};
use rackwave_accounts::{ApiKey, NewApiKey};
use rackwave_core::Platform;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    pub(crate) platform: Platform,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    pub(crate) id: String,
    /// The secret; shown only in this response, stored hashed.
    pub(crate) key: String,
    pub(crate) workspace_id: String,
    pub(crate) platform: Platform,
    pub(crate) prefix: String,
    pub(crate) created_at: String,
}

/// Creates an API key for `migosmtp` or `telnxo`.
#[utoipa::path(post, operation_id = "admin_api_keys_create", path = "/admin/v1/workspaces/{id}/api-keys", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let new = state
        .accounts
        .create_api_key(&workspace_id, req.platform)
        .await?;
    Ok((StatusCode::CREATED, Json(new.into())))
}

impl From<NewApiKey> for CreatedApiKey {
    fn from(new: NewApiKey) -> Self {
        CreatedApiKey {
            id: new.record.id,
            key: new.key,
            workspace_id: new.record.workspace_id,
            platform: new.record.platform,
            prefix: new.record.prefix,
            created_at: new.record.created_at,
        }
    }
}

/// An API key as listings show it: never the secret, only its prefix.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    pub(crate) id: String,
    pub(crate) platform: Platform,
    pub(crate) prefix: String,
    pub(crate) created_at: String,
    /// When it was last used, to the minute; absent if never.
    pub(crate) last_used_at: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            platform: k.platform,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at_ms.map(rackwave_core::rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ApiKeyList {
    pub(crate) api_keys: Vec<ApiKeyView>,
}

/// A workspace's API keys: prefix and last use, never the secret.
#[utoipa::path(get, operation_id = "admin_api_keys_list", path = "/admin/v1/workspaces/{id}/api-keys", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, body = ApiKeyList), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
) -> Result<Json<ApiKeyList>, ApiError> {
    crate::migosmtp::credentials_v1::list_api_keys_in(&state, &workspace_id)
        .await
        .map(Json)
}

/// Revokes a workspace's API key; the next request with it is refused.
#[utoipa::path(delete, operation_id = "admin_api_keys_revoke",
    path = "/admin/v1/workspaces/{id}/api-keys/{key_id}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"),
        ("key_id" = String, Path, description = "Key id, key_…")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    ApiPath((workspace_id, key_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    crate::migosmtp::credentials_v1::revoke_api_key_in(&state, &workspace_id, &key_id).await
}
