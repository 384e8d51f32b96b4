//! `POST /admin/v1/workspaces/{id}/smtp-accounts` and its listing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::SmtpAccount;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSmtpAccount {
    /// SMTP AUTH username; unique across the server.
    pub username: String,
    /// At least 8 octets; stored as an argon2 hash.
    pub password: String,
    /// Accepted recipients per UTC day.
    pub daily_quota: u64,
}

/// An SMTP account as the API shows it: never the password or its hash.
#[derive(Serialize, ToSchema)]
pub struct SmtpAccountView {
    pub workspace_id: String,
    pub username: String,
    pub daily_quota: u64,
    pub created_at: String,
}

impl From<SmtpAccount> for SmtpAccountView {
    fn from(a: SmtpAccount) -> Self {
        SmtpAccountView {
            workspace_id: a.workspace_id,
            username: a.username,
            daily_quota: a.daily_quota,
            created_at: a.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SmtpAccountList {
    pub smtp_accounts: Vec<SmtpAccountView>,
}

/// Creates an SMTP account in a workspace.
#[utoipa::path(post, path = "/admin/v1/workspaces/{id}/smtp-accounts", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = CreateSmtpAccount,
    responses((status = 201, body = SmtpAccountView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
    ApiJson(req): ApiJson<CreateSmtpAccount>,
) -> Result<(StatusCode, Json<SmtpAccountView>), ApiError> {
    let account = state
        .accounts
        .create_smtp_account(&workspace_id, &req.username, &req.password, req.daily_quota)
        .await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// Lists a workspace's SMTP accounts.
#[utoipa::path(get, path = "/admin/v1/workspaces/{id}/smtp-accounts", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, body = SmtpAccountList), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
) -> Result<Json<SmtpAccountList>, ApiError> {
    if state.accounts.workspace(&workspace_id)?.is_none() {
        return Err(ApiError::not_found(format!(
            "workspace {workspace_id} not found"
        )));
    }
    let smtp_accounts = state
        .accounts
        .smtp_accounts_of(&workspace_id)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(SmtpAccountList { smtp_accounts }))
}
