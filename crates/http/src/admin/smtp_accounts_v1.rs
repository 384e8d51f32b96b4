//! `POST /admin/v1/workspaces/{id}/smtp-accounts` and its listing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};
use rackwave_accounts::SmtpAccount;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSmtpAccount {
    /// SMTP AUTH username; unique across the server.
    pub(crate) username: String,
    /// At least 8 octets; stored as an argon2 hash.
    pub(crate) password: String,
    /// Accepted recipients per UTC day.
    pub(crate) daily_quota: u64,
}

/// An SMTP account as the API shows it: never the password or its hash.
#[derive(Serialize, ToSchema)]
pub(crate) struct SmtpAccountView {
    pub(crate) workspace_id: String,
    pub(crate) username: String,
    pub(crate) daily_quota: u64,
    pub(crate) created_at: String,
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
pub(crate) struct SmtpAccountList {
    pub(crate) smtp_accounts: Vec<SmtpAccountView>,
}

/// Creates an SMTP account in a workspace.
#[utoipa::path(post, operation_id = "admin_smtp_accounts_create", path = "/admin/v1/workspaces/{id}/smtp-accounts", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = CreateSmtpAccount,
    responses((status = 201, body = SmtpAccountView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
    ApiJson(req): ApiJson<CreateSmtpAccount>,
) -> Result<(StatusCode, Json<SmtpAccountView>), ApiError> {
    let account = state
        .accounts
        .create_smtp_account(&workspace_id, &req.username, &req.password, req.daily_quota)
        .await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// Lists a workspace's SMTP accounts.
#[utoipa::path(get, operation_id = "admin_smtp_accounts_list", path = "/admin/v1/workspaces/{id}/smtp-accounts", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, body = SmtpAccountList), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
) -> Result<Json<SmtpAccountList>, ApiError> {
    let smtp_accounts = state
        .accounts
        .smtp_accounts_of(&workspace_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(SmtpAccountList { smtp_accounts }))
}

/// Deletes a workspace's SMTP account; its open sessions are refused at
/// their next command.
#[utoipa::path(delete, operation_id = "admin_smtp_accounts_delete",
    path = "/admin/v1/workspaces/{id}/smtp-accounts/{username}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"),
        ("username" = String, Path, description = "SMTP AUTH username")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath((workspace_id, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    crate::migosmtp::credentials_v1::delete_smtp_account_in(&state, &workspace_id, &username).await
}
