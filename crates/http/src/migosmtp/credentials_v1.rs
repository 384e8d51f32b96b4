//! `/migosmtp/v1/smtp-accounts` and `/migosmtp/v1/api-keys`: a workspace
//! manages its own credentials with its MigoSMTP key. Passwords and keys
//! are shown once, at creation; listings never show a secret. Revoking
//! takes effect at the next request with the key, and at the next command
//! of an SMTP session the account authenticated.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rackwave_core::{random_hex, Platform};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::admin::api_keys_v1::{ApiKeyList, ApiKeyView, CreatedApiKey};
use crate::admin::smtp_accounts_v1::{SmtpAccountList, SmtpAccountView};
use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, MigoSmtp};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSmtpAccount {
    /// SMTP AUTH username; unique across the server.
    pub(crate) username: String,
    /// At least 8 octets; when absent, a random one is made (and shown in
    /// the answer, once).
    pub(crate) password: Option<String>,
    /// Accepted recipients per UTC day.
    pub(crate) daily_quota: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedSmtpAccount {
    #[serde(flatten)]
    pub(crate) account: SmtpAccountView,
    /// Shown only in this answer; stored as an argon2 hash.
    pub(crate) password: String,
}

/// Creates an SMTP account of the key's workspace.
#[utoipa::path(post, operation_id = "migosmtp_smtp_accounts_create", path = "/migosmtp/v1/smtp-accounts",
    tag = "migosmtp", request_body = NewSmtpAccount,
    responses((status = 201, body = CreatedSmtpAccount), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn create_smtp_account(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiJson(req): ApiJson<NewSmtpAccount>,
) -> Result<(StatusCode, Json<CreatedSmtpAccount>), ApiError> {
    let password = req.password.unwrap_or_else(|| random_hex(16));
    let account = state
        .accounts
        .create_smtp_account(
            &tenant.workspace_id,
            &req.username,
            &password,
            req.daily_quota,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSmtpAccount {
            account: account.into(),
            password,
        }),
    ))
}

/// The key's workspace's SMTP accounts.
#[utoipa::path(get, operation_id = "migosmtp_smtp_accounts_list", path = "/migosmtp/v1/smtp-accounts",
    tag = "migosmtp", responses((status = 200, body = SmtpAccountList), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list_smtp_accounts(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
) -> Result<Json<SmtpAccountList>, ApiError> {
    let smtp_accounts = state
        .accounts
        .smtp_accounts_of(&tenant.workspace_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(SmtpAccountList { smtp_accounts }))
}

/// Deletes an SMTP account of the key's workspace; its open sessions are
/// refused at their next command.
#[utoipa::path(delete, operation_id = "migosmtp_smtp_accounts_delete",
    path = "/migosmtp/v1/smtp-accounts/{username}", tag = "migosmtp",
    params(("username" = String, Path, description = "SMTP AUTH username")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn delete_smtp_account(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_smtp_account_in(&state, &tenant.workspace_id, &username).await
}

/// Deletes a workspace's SMTP account (the MigoSMTP and admin APIs).
pub(crate) async fn delete_smtp_account_in(
    state: &AppState,
    workspace_id: &str,
    username: &str,
) -> Result<StatusCode, ApiError> {
    if state
        .accounts
        .delete_smtp_account(workspace_id, username)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no SMTP account {username}")))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiKey {
    /// Only `migosmtp`: a MigoSMTP key makes MigoSMTP keys.
    pub(crate) platform: Option<Platform>,
}

/// Creates another MigoSMTP key of the workspace (shown once).
#[utoipa::path(post, operation_id = "migosmtp_api_keys_create", path = "/migosmtp/v1/api-keys",
    tag = "migosmtp", request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 422, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiJson(req): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    if req.platform.is_some_and(|p| p != Platform::Migosmtp) {
        return Err(ApiError::unprocessable(
            "platform",
            "a MigoSMTP key makes MigoSMTP keys only",
        ));
    }
    let new = state
        .accounts
        .create_api_key(&tenant.workspace_id, Platform::Migosmtp)
        .await?;
    Ok((StatusCode::CREATED, Json(new.into())))
}

/// The workspace's API keys: prefix and last use, never the secret.
#[utoipa::path(get, operation_id = "migosmtp_api_keys_list", path = "/migosmtp/v1/api-keys",
    tag = "migosmtp", responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
) -> Result<Json<ApiKeyList>, ApiError> {
    list_api_keys_in(&state, &tenant.workspace_id)
        .await
        .map(Json)
}

/// A workspace's API keys (the MigoSMTP and admin APIs).
pub(crate) async fn list_api_keys_in(
    state: &AppState,
    workspace_id: &str,
) -> Result<ApiKeyList, ApiError> {
    let api_keys = state
        .accounts
        .api_keys_of(workspace_id)
        .await?
        .into_iter()
        .map(ApiKeyView::from)
        .collect();
    Ok(ApiKeyList { api_keys })
}

/// Revokes an API key of the workspace (also the one making the call);
/// the next request with it is refused.
#[utoipa::path(delete, operation_id = "migosmtp_api_keys_delete", path = "/migosmtp/v1/api-keys/{id}",
    tag = "migosmtp", params(("id" = String, Path, description = "Key id, key_…")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn delete_api_key(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    revoke_api_key_in(&state, &tenant.workspace_id, &id).await
}

/// Revokes a workspace's API key (the MigoSMTP and admin APIs).
pub(crate) async fn revoke_api_key_in(
    state: &AppState,
    workspace_id: &str,
    id: &str,
) -> Result<StatusCode, ApiError> {
    if state.accounts.revoke_api_key(workspace_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no API key {id}")))
    }
}
