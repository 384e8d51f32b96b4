//! `POST /admin/v1/workspaces/{id}/api-keys`: a key for one platform, shown
//! once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::Platform;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub platform: Platform,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    /// The secret; shown only in this response, stored hashed.
    pub key: String,
    pub workspace_id: String,
    pub platform: Platform,
    pub prefix: String,
    pub created_at: String,
}

/// Creates an API key for `migosmtp` or `telnxo`.
#[utoipa::path(post, path = "/admin/v1/workspaces/{id}/api-keys", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let new = state
        .accounts
        .create_api_key(&workspace_id, req.platform)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id: new.record.id,
            key: new.key,
            workspace_id: new.record.workspace_id,
            platform: new.record.platform,
            prefix: new.record.prefix,
            created_at: new.record.created_at,
        }),
    ))
}
