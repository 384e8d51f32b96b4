//! Operators' hand on subscriptions: `POST /admin/v1/subscriptions/{id}/suspend`
//! (with a reason: the workspace stops sending at once, open SMTP sessions
//! included) and `…/reactivate`; and `POST /admin/v1/billing/run`, the
//! billing cycle now (what the server also does every minute); the list of
//! every subscription and cancellation.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiJson, ApiPath, ApiQuery};
use crate::portal::account_v1::refused;
use crate::portal::subscriptions_v1::{view, SubscriptionView};
use crate::{ApiError, AppState};
use rackwave_store::{Subscription, SubscriptionStatus};
use utoipa::IntoParams;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Suspend {
    /// Why (`service_suspended`'s `suspension_reason`).
    pub(crate) reason: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BillingRun {
    /// Trials that became paid subscriptions.
    pub(crate) converted: u64,
    /// Paid periods renewed.
    pub(crate) renewed: u64,
    /// Invoices issued.
    pub(crate) invoiced: u64,
    /// Reminders queued before a due date.
    pub(crate) reminded: u64,
    /// Invoices that became overdue.
    pub(crate) overdue: u64,
    /// Subscriptions suspended for an unpaid invoice.
    pub(crate) suspended: u64,
    /// Steps that failed and wait for the next run.
    pub(crate) failed: u64,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this client's.
    pub(crate) client: Option<String>,
    /// Only those in this state.
    pub(crate) status: Option<SubscriptionStatus>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// 1 to 500 (100).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriptionPage {
    pub(crate) subscriptions: Vec<SubscriptionView>,
    pub(crate) next_cursor: Option<String>,
}

/// Every client's subscriptions, by id; a page may be short when filtered.
#[utoipa::path(get, operation_id = "admin_subscriptions_list", path = "/admin/v1/subscriptions",
    tag = "admin", params(ListQuery),
    responses((status = 200, body = SubscriptionPage), (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SubscriptionPage>, ApiError> {
    let limit = page_limit(q.limit)?;
    let keep = |s: &Subscription| q.status.is_none_or(|st| st == s.status);
    let (items, next_cursor) = match &q.client {
        Some(client) => {
            let all = state.billing.of(client).await.map_err(refused)?;
            (all.into_iter().filter(keep).collect::<Vec<_>>(), None)
        }
        None => {
            let page = state
                .store
                .subscriptions(q.cursor.as_deref(), limit)
                .await?;
            (
                page.items.into_iter().filter(keep).collect(),
                page.next_cursor,
            )
        }
    };
    Ok(Json(SubscriptionPage {
        subscriptions: items.into_iter().map(|s| view(&state, s, None)).collect(),
        next_cursor,
    }))
}

/// Cancels a subscription for good (its records stay).
#[utoipa::path(post, operation_id = "admin_subscriptions_cancel",
    path = "/admin/v1/subscriptions/{id}/cancel", tag = "admin",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let s = state.billing.cancel(None, &id).await.map_err(refused)?;
    Ok(Json(view(&state, s, None)))
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
        .billing
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
        .billing
        .reactivate(&id)
        .await
        .map_err(refused)?
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))?;
    Ok(Json(view(&state, s, None)))
}

/// Runs the billing cycle now: conversions of ended trials, renewals, and
/// the dunning of unpaid invoices. Running it twice does nothing twice.
/// With several nodes it runs on the node holding the billing cycle's
/// lease (this one, unless another has it): `409` names the wait.
#[utoipa::path(post, operation_id = "admin_billing_run", path = "/admin/v1/billing/run",
    tag = "admin", responses((status = 200, body = BillingRun), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn run(State(state): State<AppState>) -> Result<Json<BillingRun>, ApiError> {
    let r = state.billing.run_held().await.map_err(refused)?.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            "another node runs the billing cycle now (it holds the billing-cycle lease); ask that node, or again once its lease has run out",
        )
    })?;
    Ok(Json(BillingRun {
        converted: r.converted,
        renewed: r.renewed,
        invoiced: r.invoiced,
        reminded: r.reminded,
        overdue: r.overdue,
        suspended: r.suspended,
        failed: r.failed,
    }))
}
