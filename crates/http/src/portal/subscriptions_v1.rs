//! `/portal/v1/subscriptions`: a client's plans on the platforms. Starting
//! a trial provisions the platform's workspace at once and answers with
//! its first API key (shown once); another client's subscription is 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rackwave_core::rfc3339;
use rackwave_store::{Subscription, SubscriptionStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account_v1::refused;
use super::PortalClient;
use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSubscription {
    /// `migosmtp` or `telnxo`.
    pub(crate) platform: String,
    /// A plan id from `GET /portal/v1/plans`.
    pub(crate) plan: String,
    /// Start with the plan's free trial; otherwise the subscription is
    /// `pending` until its first invoice is paid.
    pub(crate) trial: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriptionView {
    /// `sub_…`
    pub(crate) id: String,
    pub(crate) platform: String,
    pub(crate) plan: String,
    pub(crate) plan_name: String,
    pub(crate) status: SubscriptionStatus,
    /// The workspace it provisioned on the platform.
    pub(crate) workspace_id: String,
    pub(crate) period_start: String,
    /// The end of the trial or of the paid period.
    pub(crate) expires_at: String,
    pub(crate) created_at: String,
    pub(crate) suspension_reason: Option<String>,
    pub(crate) cancelled_at: Option<String>,
    /// A downgrade that applies at the period's end.
    pub(crate) next_plan: Option<String>,
    /// The workspace's first API key, only in the answer that started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriptionList {
    pub(crate) subscriptions: Vec<SubscriptionView>,
}

/// The answer about a subscription (the portal's and the operators').
pub(crate) fn view(state: &AppState, s: Subscription, api_key: Option<String>) -> SubscriptionView {
    SubscriptionView {
        plan_name: state.billing.plan_name(&s.plan_id),
        id: s.id,
        platform: s.platform,
        plan: s.plan_id,
        status: s.status,
        workspace_id: s.workspace_id,
        period_start: rfc3339(s.period_start_ms),
        expires_at: rfc3339(s.period_end_ms),
        created_at: rfc3339(s.created_at_ms),
        suspension_reason: s.suspension_reason,
        cancelled_at: s.cancelled_at_ms.map(rfc3339),
        next_plan: s.next_plan_id,
        api_key,
    }
}

/// Starts a subscription: a trial, or a paid start with its first invoice
/// (`pending` until it is paid). Either provisions the workspace.
#[utoipa::path(post, operation_id = "portal_subscriptions_create", path = "/portal/v1/subscriptions",
    tag = "portal", request_body = NewSubscription,
    responses((status = 201, body = SubscriptionView), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    who: PortalClient,
    ApiJson(req): ApiJson<NewSubscription>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    let started = state
        .billing
        .start(&who.client, &req.platform, &req.plan, req.trial)
        .await
        .map_err(refused)?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, started.subscription, started.api_key)),
    ))
}

/// The client's subscriptions, oldest first.
#[utoipa::path(get, operation_id = "portal_subscriptions_list", path = "/portal/v1/subscriptions",
    tag = "portal", responses((status = 200, body = SubscriptionList), (status = 401, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    who: PortalClient,
) -> Result<Json<SubscriptionList>, ApiError> {
    let subscriptions = state
        .billing
        .of(&who.client.id)
        .await?
        .into_iter()
        .map(|s| view(&state, s, None))
        .collect();
    Ok(Json(SubscriptionList { subscriptions }))
}

/// One of the client's subscriptions.
#[utoipa::path(get, operation_id = "portal_subscriptions_get", path = "/portal/v1/subscriptions/{id}",
    tag = "portal", params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    who: PortalClient,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let s = state
        .billing
        .get(&who.client.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))?;
    Ok(Json(view(&state, s, None)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upgrade {
    /// Another plan of the subscription's platform.
    pub(crate) plan: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PlanChangeView {
    pub(crate) subscription: SubscriptionView,
    /// The prorated invoice of an upgrade during a paid period.
    pub(crate) invoice_id: Option<String>,
    /// A cheaper plan waits for the period's end.
    pub(crate) scheduled: bool,
}

/// Changes plan: a dearer one at once (with a prorated invoice for the
/// rest of a paid period), a cheaper one at the period's end.
#[utoipa::path(post, operation_id = "portal_subscriptions_upgrade",
    path = "/portal/v1/subscriptions/{id}/upgrade", tag = "portal",
    params(("id" = String, Path, description = "Subscription id")), request_body = Upgrade,
    responses((status = 200, body = PlanChangeView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    who: PortalClient,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Upgrade>,
) -> Result<Json<PlanChangeView>, ApiError> {
    let change = state
        .billing
        .change_plan(&who.client.id, &id, &req.plan)
        .await
        .map_err(refused)?;
    Ok(Json(PlanChangeView {
        subscription: view(&state, change.subscription, None),
        invoice_id: change.invoice_id,
        scheduled: change.scheduled,
    }))
}

/// Cancels a subscription: its workspace stops sending for good; its
/// records and invoices stay.
#[utoipa::path(post, operation_id = "portal_subscriptions_cancel",
    path = "/portal/v1/subscriptions/{id}/cancel", tag = "portal",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    who: PortalClient,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let s = state
        .billing
        .cancel(Some(&who.client.id), &id)
        .await
        .map_err(refused)?;
    Ok(Json(view(&state, s, None)))
}
