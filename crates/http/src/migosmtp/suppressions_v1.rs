//! `/migosmtp/v1/suppressions`: the workspace's suppression list. Mail to
//! a listed address is refused (`550 5.7.1` at RCPT, `rejected` with code
//! `suppressed` by the HTTP send). Entries come from here, from a CSV
//! import, and by themselves from hard bounces (and, later, complaints and
//! unsubscribes). Addresses are compared without case.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use rackwave_accounts::{Suppression, SuppressionReason};
use rackwave_core::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, ApiQuery, MigoSmtp};
use crate::{ApiError, AppState};

/// One suppressed address.
#[derive(Serialize, ToSchema)]
pub(crate) struct SuppressionView {
    pub(crate) address: String,
    pub(crate) reason: SuppressionReason,
    /// The message that caused it, if one did.
    pub(crate) message_id: Option<String>,
    /// What was said: the bounce reply, the report's source, a note.
    pub(crate) detail: Option<String>,
    pub(crate) created_at: String,
}

impl From<Suppression> for SuppressionView {
    fn from(s: Suppression) -> SuppressionView {
        SuppressionView {
            address: s.address,
            reason: s.reason,
            message_id: s.message_id,
            detail: s.detail,
            created_at: rfc3339(s.created_at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SuppressionList {
    pub(crate) suppressions: Vec<SuppressionView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub(crate) next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only entries with this reason.
    pub(crate) reason: Option<String>,
    /// From the previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// 1 to 500 (default 50).
    pub(crate) limit: Option<usize>,
}

/// The workspace's suppressed addresses, in address order.
#[utoipa::path(get, operation_id = "migosmtp_suppressions_list", path = "/migosmtp/v1/suppressions",
    tag = "migosmtp", params(ListQuery),
    responses((status = 200, body = SuppressionList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SuppressionList>, ApiError> {
    list_in(&state, &tenant.workspace_id, q).await.map(Json)
}

/// One page of a workspace's list (the MigoSMTP and admin APIs).
pub(crate) async fn list_in(
    state: &AppState,
    workspace_id: &str,
    q: ListQuery,
) -> Result<SuppressionList, ApiError> {
    let reason = q
        .reason
        .as_deref()
        .map(|r| {
            SuppressionReason::parse(r).ok_or_else(|| {
                ApiError::unprocessable(
                    "reason",
                    "reason must be hard_bounce, complaint, unsubscribe or manual",
                )
            })
        })
        .transpose()?;
    // The cursor is the last address of a page, hex-encoded so that no
    // `+` of an address turns into a space on its way back.
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unprocessable("cursor", "not a cursor this API gave"))
        })
        .transpose()?;
    let page = state
        .suppressions
        .list(workspace_id, reason, after.as_deref(), q.limit)
        .await?;
    Ok(SuppressionList {
        suppressions: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor.map(hex::encode),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSuppression {
    pub(crate) address: String,
    /// `manual` when absent.
    pub(crate) reason: Option<SuppressionReason>,
    /// A note kept with the entry (up to 500 characters).
    pub(crate) detail: Option<String>,
}

/// Adds an address (or replaces its entry).
#[utoipa::path(post, operation_id = "migosmtp_suppressions_add", path = "/migosmtp/v1/suppressions",
    tag = "migosmtp", request_body = NewSuppression,
    responses((status = 201, body = SuppressionView), (status = 422, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn add(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiJson(req): ApiJson<NewSuppression>,
) -> Result<(StatusCode, Json<SuppressionView>), ApiError> {
    add_in(&state, &tenant.workspace_id, req)
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
}

/// Adds an address to a workspace's list (the MigoSMTP and admin APIs).
pub(crate) async fn add_in(
    state: &AppState,
    workspace_id: &str,
    req: NewSuppression,
) -> Result<SuppressionView, ApiError> {
    if let Err(e) = rackwave_accounts::normalize_address(&req.address) {
        return Err(ApiError::unprocessable("address", e));
    }
    if let Some(d) = &req.detail {
        if d.chars().count() > 500 || d.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "detail",
                "up to 500 characters, no control characters",
            ));
        }
    }
    let s = state
        .suppressions
        .add(
            workspace_id,
            &req.address,
            req.reason.unwrap_or(SuppressionReason::Manual),
            None,
            req.detail,
        )
        .await?;
    Ok(s.into())
}

/// One suppressed address, or 404.
#[utoipa::path(get, operation_id = "migosmtp_suppressions_get",
    path = "/migosmtp/v1/suppressions/{address}", tag = "migosmtp",
    params(("address" = String, Path, description = "the address, any case")),
    responses((status = 200, body = SuppressionView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(address): ApiPath<String>,
) -> Result<Json<SuppressionView>, ApiError> {
    state
        .suppressions
        .find(&tenant.workspace_id, &address)
        .await?
        .map(|s| Json(s.into()))
        .ok_or_else(|| ApiError::not_found(format!("{address} is not suppressed")))
}

/// Removes an address: mail to it is accepted again.
#[utoipa::path(delete, operation_id = "migosmtp_suppressions_delete",
    path = "/migosmtp/v1/suppressions/{address}", tag = "migosmtp",
    params(("address" = String, Path, description = "the address, any case")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(address): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_in(&state, &tenant.workspace_id, &address).await
}

/// Removes an address from a workspace's list (the MigoSMTP and admin
/// APIs).
pub(crate) async fn delete_in(
    state: &AppState,
    workspace_id: &str,
    address: &str,
) -> Result<StatusCode, ApiError> {
    if state.suppressions.remove(workspace_id, address).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{address} is not suppressed")))
    }
}

/// What an import did.
#[derive(Serialize, ToSchema)]
pub(crate) struct ImportResult {
    /// Addresses added or replaced.
    pub(crate) imported: u64,
    /// Lines not taken (1-based) and why.
    pub(crate) skipped: Vec<SkippedLine>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SkippedLine {
    pub(crate) line: usize,
    pub(crate) reason: String,
}

/// Imports a CSV text (`Content-Type: text/csv`): one address per line,
/// an optional second column with the reason (`manual` when absent), an
/// optional `address,reason` header line. Bad lines are skipped and
/// listed; the rest is added at once, all or none.
#[utoipa::path(post, operation_id = "migosmtp_suppressions_import",
    path = "/migosmtp/v1/suppressions/import", tag = "migosmtp",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportResult), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn import(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportResult>, ApiError> {
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: text/csv",
        ));
    }
    let body = body.map_err(ApiError::body)?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::invalid(format!("the CSV is not UTF-8: {e}")))?;
    let report = state
        .suppressions
        .import(&tenant.workspace_id, text)
        .await?;
    Ok(Json(ImportResult {
        imported: report.imported,
        skipped: report
            .skipped
            .into_iter()
            .map(|(line, reason)| SkippedLine { line, reason })
            .collect(),
    }))
}
