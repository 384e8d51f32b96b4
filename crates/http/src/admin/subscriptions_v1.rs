//! Operators' hand on subscriptions: `POST /admin/v1/subscriptions/{id}/suspend`
//! (with a reason: the workspace stops sending at once, open SMTP sessions
//! included) and `…/reactivate`; and `POST /admin/v1/billing/run`, the
//! billing cycle now (what the server also does every minute).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath};
use crate::portal::account_v1::refused;
use crate::portal::subscriptions_v1::{view, SubscriptionView};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Suspend {
    /// Why (`service_suspended`'s `suspension_reason`).
    pub(crate) reason: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BillingRun {
    /// Subscriptions suspended (trials that ended unpaid).
    pub(crate) suspended: u64,
}

/// Suspends a subscription; one already suspended or cancelled is left as
/// it is.
#[utoipa::path(post, operation_id = "admin_subscriptions_suspend",
    path = "/admin/v1/subscriptions/{id}/suspend", tag = "admin",
    params(("id" = String, Path, description = "Subscription id")), request_body = Suspend,
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn suspend(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Suspend>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let s = state
        .subscriptions
        .suspend(&id, &req.reason)
        .await
        .map_err(refused)?
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))?;
    Ok(Json(view(&state, s, None)))
}

/// Reactivates a suspended subscription (what it was before; its workspace
/// sends again).
#[utoipa::path(post, operation_id = "admin_subscriptions_reactivate",
    path = "/admin/v1/subscriptions/{id}/reactivate", tag = "admin",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn reactivate(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let s = state
        .subscriptions
        .reactivate(&id)
        .await
        .map_err(refused)?
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))?;
    Ok(Json(view(&state, s, None)))
}

/// Runs the billing cycle now: trials that ended unpaid are suspended.
/// Running it twice does nothing twice.
#[utoipa::path(post, operation_id = "admin_billing_run", path = "/admin/v1/billing/run",
    tag = "admin", responses((status = 200, body = BillingRun)),
    security(("admin_token" = [])))]
pub(crate) async fn run(State(state): State<AppState>) -> Result<Json<BillingRun>, ApiError> {
    let suspended = state
        .subscriptions
        .run(state.clock.now_ms())
        .await
        .map_err(refused)?;
    Ok(Json(BillingRun { suspended }))
}
