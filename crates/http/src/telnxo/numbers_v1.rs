//! `/telnxo/v1/numbers`: the numbers and sender ids of the workspace
//! (listed with its Telnxo key); the operator gives and takes them back
//! (with the admin token).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rackwave_core::rfc3339;
use rackwave_store::{Channel, TelnxoNumber};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, Operator, Telnxo};
use crate::{ApiError, AppState};

#[derive(Serialize, ToSchema)]
pub(crate) struct NumberView {
    pub(crate) number: String,
    pub(crate) workspace_id: String,
    /// `sms`, `whatsapp`, `voice`.
    pub(crate) channels: Vec<String>,
    pub(crate) created_at: String,
}

fn view(n: TelnxoNumber) -> NumberView {
    NumberView {
        number: n.number,
        workspace_id: n.workspace_id,
        channels: n.channels.iter().map(|c| c.as_str().to_string()).collect(),
        created_at: rfc3339(n.created_at_ms),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct NumberList {
    pub(crate) numbers: Vec<NumberView>,
}

/// The workspace's numbers and sender ids.
#[utoipa::path(get, operation_id = "telnxo_numbers_list", path = "/telnxo/v1/numbers", tag = "telnxo",
    responses((status = 200, body = NumberList), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
) -> Result<Json<NumberList>, ApiError> {
    let numbers = state.telnxo.numbers(&tenant.workspace_id).await?;
    Ok(Json(NumberList {
        numbers: numbers.into_iter().map(view).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provision {
    pub(crate) workspace_id: String,
    /// E.164 (`+919876543210`) or an alphanumeric sender id (SMS only).
    pub(crate) number: String,
    /// `sms`, `whatsapp`, `voice`.
    pub(crate) channels: Vec<String>,
}

/// Gives a number to a workspace (the operator, with the admin token);
/// again for the same workspace, changes its channels.
#[utoipa::path(post, operation_id = "telnxo_numbers_provision", path = "/telnxo/v1/numbers", tag = "telnxo",
    request_body = Provision,
    responses((status = 201, body = NumberView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn provision(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<Provision>,
) -> Result<(StatusCode, Json<NumberView>), ApiError> {
    let mut channels = Vec::new();
    for c in &body.channels {
        channels.push(Channel::parse(c).ok_or_else(|| {
            ApiError::unprocessable("channels", format!("`{c}` is not sms, whatsapp or voice"))
        })?);
    }
    let ws = state.accounts.require_workspace(&body.workspace_id).await?;
    let number = state
        .telnxo
        .provision(&ws.id, &body.number, &channels)
        .await
        .map_err(super::messages_v1::api_error)?;
    Ok((StatusCode::CREATED, Json(view(number))))
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct NumberPath {
    pub(crate) number: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseQuery {
    pub(crate) workspace_id: String,
}

/// Takes a number back from a workspace (the operator).
#[utoipa::path(delete, operation_id = "telnxo_numbers_release", path = "/telnxo/v1/numbers/{number}", tag = "telnxo",
    params(NumberPath, ReleaseQuery),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn release(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(p): ApiPath<NumberPath>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<ReleaseQuery>,
) -> Result<StatusCode, ApiError> {
    state.telnxo.release(&q.workspace_id, &p.number).await?;
    Ok(StatusCode::NO_CONTENT)
}
