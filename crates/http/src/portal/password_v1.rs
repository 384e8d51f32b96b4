//! Passwords: a client changes theirs with the current one
//! (`POST /portal/v1/password`, checked with the login's delay and
//! lockout), or asks for a single-use reset link by email
//! (`POST /portal/v1/password/reset`, always `202`: the answer tells
//! nobody whether an account exists) and sets a new one with it
//! (`POST /portal/v1/password/reset/confirm`). Either ends every session
//! and opens a new one.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::account_v1::{login_refused, refused, session, Session};
use super::PortalClient;
use crate::error::ErrorBody;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    pub(crate) current_password: String,
    /// 10 to 1024 characters.
    pub(crate) new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    pub(crate) email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetConfirm {
    /// The `token` of the emailed link (`rwr_…`).
    pub(crate) token: String,
    /// 10 to 1024 characters.
    pub(crate) password: String,
}

/// Changes the password: every session ends, a new one is answered.
#[utoipa::path(post, operation_id = "portal_password_change", path = "/portal/v1/password",
    tag = "portal", request_body = PasswordChange,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn change(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    who: PortalClient,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    match state
        .clients
        .change_password(
            &who.client,
            &req.current_password,
            &req.new_password,
            peer.ip(),
        )
        .await
    {
        Ok(token) => Ok(session(&state, who.client, token)),
        Err(e) => Err(login_refused(e, peer).await),
    }
}

/// Mails a reset link to the account's address, if there is one.
#[utoipa::path(post, operation_id = "portal_password_reset", path = "/portal/v1/password/reset",
    tag = "portal", request_body = ResetRequest, responses((status = 202)))]
pub(crate) async fn reset(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    // In the background: a known address's work (a durable commit) and
    // an unknown one's take the same time to answer.
    let clients = state.clients.clone();
    tokio::spawn(async move {
        if let Err(e) = clients.request_reset(&req.email).await {
            tracing::warn!(error = %e, "password reset not queued");
        }
    });
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with a reset link's token (once).
#[utoipa::path(post, operation_id = "portal_password_reset_confirm",
    path = "/portal/v1/password/reset/confirm", tag = "portal", request_body = ResetConfirm,
    responses((status = 200, body = Session), (status = 422, body = ErrorBody)))]
pub(crate) async fn confirm(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ResetConfirm>,
) -> Result<Response, ApiError> {
    let token = state
        .clients
        .reset_password(&req.token, &req.password)
        .await
        .map_err(refused)?;
    let client = state
        .clients
        .session(&token)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(session(&state, client, token))
}
