//! `/{platform}/v1/webhooks`: a workspace's webhook endpoints (create,
//! list, show, change, delete), secret rotation, a test ping, the delivery
//! log of each endpoint and manual resends.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use rackwave_core::{rfc3339, Product};
use rackwave_events::{EndpointPatch, NewEndpoint};
use rackwave_store::{Attempt, Delivery, DeliveryState, Endpoint};
use serde_json::value::RawValue;

use super::{ByDelivery, ById};
use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiJson, ApiPath, ApiQuery, Tenant};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhook {
    /// `http` or `https` URL; private and loopback addresses are refused
    /// unless the operator allows them.
    pub(crate) url: String,
    /// Event types to receive, or `["*"]` (the default) for every type of
    /// the platform and the portal.
    pub(crate) event_types: Option<Vec<String>>,
    /// Default `true`.
    pub(crate) enabled: Option<bool>,
    pub(crate) description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateWebhook {
    pub(crate) url: Option<String>,
    pub(crate) event_types: Option<Vec<String>>,
    pub(crate) enabled: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) description: Option<Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Webhook {
    /// `ep_…`
    pub(crate) id: String,
    pub(crate) url: String,
    /// The types it receives; `["*"]` for all.
    pub(crate) event_types: Vec<String>,
    pub(crate) enabled: bool,
    pub(crate) description: Option<String>,
    /// `migosmtp`, `telnxo`, or `rackwave` (the portal's).
    pub(crate) platform: Product,
    pub(crate) workspace_id: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    /// While a rotated-out secret still signs: when it stops.
    pub(crate) previous_secret_expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookWithSecret {
    #[serde(flatten)]
    pub(crate) webhook: Webhook,
    /// `whsec_…`: shown only when created and when rotated.
    pub(crate) secret: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookList {
    pub(crate) webhooks: Vec<Webhook>,
}

fn view(ep: &Endpoint, now_ms: i64) -> Webhook {
    Webhook {
        id: ep.id.clone(),
        url: ep.url.clone(),
        event_types: if ep.event_types.is_empty() {
            vec!["*".to_string()]
        } else {
            ep.event_types
                .iter()
                .map(|t| t.as_str().to_string())
                .collect()
        },
        enabled: ep.enabled,
        description: ep.description.clone(),
        platform: ep.product,
        workspace_id: ep.workspace_id.clone(),
        created_at: rfc3339(ep.created_at_ms),
        updated_at: rfc3339(ep.updated_at_ms),
        previous_secret_expires_at: ep.previous_secret_expires_at_ms(now_ms).map(rfc3339),
    }
}

fn with_secret(ep: &Endpoint, now_ms: i64) -> WebhookWithSecret {
    WebhookWithSecret {
        webhook: view(ep, now_ms),
        secret: ep.secrets[0].secret.clone(),
    }
}

/// Creates an endpoint; the response carries its signing secret, once.
#[utoipa::path(post, operation_id = "webhooks_create", path = "/{platform}/v1/webhooks", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)")),
    request_body = CreateWebhook,
    responses((status = 201, body = WebhookWithSecret), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let ep = state
        .events
        .create_endpoint(
            &tenant.workspace_id,
            tenant.product,
            NewEndpoint {
                url: req.url,
                event_types: req.event_types,
                enabled: req.enabled,
                description: req.description,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(with_secret(&ep, state.clock.now_ms())),
    ))
}

/// The workspace's endpoints on this platform.
#[utoipa::path(get, operation_id = "webhooks_list", path = "/{platform}/v1/webhooks", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)")),
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<WebhookList>, ApiError> {
    let now = state.clock.now_ms();
    let eps = state
        .events
        .endpoints(&tenant.workspace_id, tenant.product)
        .await?;
    Ok(Json(WebhookList {
        webhooks: eps.iter().map(|e| view(e, now)).collect(),
    }))
}

/// One endpoint (without its secret).
#[utoipa::path(get, operation_id = "webhooks_get", path = "/{platform}/v1/webhooks/{id}", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ById>,
) -> Result<Json<Webhook>, ApiError> {
    let ep = state
        .events
        .endpoint(&tenant.workspace_id, tenant.product, &p.id)
        .await?;
    Ok(Json(view(&ep, state.clock.now_ms())))
}

/// Changes an endpoint's URL, event types, enabled flag or description.
#[utoipa::path(patch, operation_id = "webhooks_update", path = "/{platform}/v1/webhooks/{id}", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`")),
    request_body = UpdateWebhook,
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ById>,
    ApiJson(req): ApiJson<UpdateWebhook>,
) -> Result<Json<Webhook>, ApiError> {
    let ep = state
        .events
        .update_endpoint(
            &tenant.workspace_id,
            tenant.product,
            &p.id,
            EndpointPatch {
                url: req.url,
                event_types: req.event_types,
                enabled: req.enabled,
                description: req.description,
            },
        )
        .await?;
    Ok(Json(view(&ep, state.clock.now_ms())))
}

/// Deletes an endpoint and its deliveries.
#[utoipa::path(delete, operation_id = "webhooks_delete", path = "/{platform}/v1/webhooks/{id}", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ById>,
) -> Result<StatusCode, ApiError> {
    state
        .events
        .delete_endpoint(&tenant.workspace_id, tenant.product, &p.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret; the previous one keeps signing for 24 hours (both
/// signatures are sent meanwhile).
#[utoipa::path(post, operation_id = "webhooks_rotate", path = "/{platform}/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`")),
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ById>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    let ep = state
        .events
        .rotate_secret(&tenant.workspace_id, tenant.product, &p.id)
        .await?;
    Ok(Json(with_secret(&ep, state.clock.now_ms())))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AttemptView {
    pub(crate) at: String,
    /// The response status; absent when no response came.
    pub(crate) status_code: Option<u16>,
    pub(crate) latency_ms: u64,
    /// The first KiB of the response body.
    pub(crate) response_body: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) success: bool,
    /// Made by a manual resend, outside the schedule.
    pub(crate) manual: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// `whd_…`
    pub(crate) id: String,
    pub(crate) endpoint_id: String,
    /// The event's id, also its `webhook-id`.
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    /// `pending`, `retrying`, `succeeded` or `failed` (permanently).
    pub(crate) state: DeliveryState,
    pub(crate) created_at: String,
    pub(crate) next_attempt_at: Option<String>,
    /// A manual resend is on its way.
    pub(crate) resend_pending: bool,
    pub(crate) attempts: Vec<AttemptView>,
}

fn attempt_view(a: &Attempt) -> AttemptView {
    AttemptView {
        at: rfc3339(a.at_ms),
        status_code: a.status_code,
        latency_ms: a.latency_ms,
        response_body: a.response_body.clone(),
        error: a.error.clone(),
        success: a.success,
        manual: a.manual,
    }
}

pub(crate) fn delivery_view(d: &Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        endpoint_id: d.endpoint_id.clone(),
        event_id: d.event_id.clone(),
        event_type: d.event_type.as_str().to_string(),
        state: d.state,
        created_at: rfc3339(d.created_at_ms),
        next_attempt_at: if d.resend {
            d.due_at_ms.map(rfc3339)
        } else {
            d.next_attempt_at_ms.map(rfc3339)
        },
        resend_pending: d.resend,
        attempts: d.attempts.iter().map(attempt_view).collect(),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TestSent {
    /// The `webhook.ping` event sent.
    #[schema(value_type = Object)]
    pub(crate) event: Box<RawValue>,
    pub(crate) delivery: DeliveryView,
}

/// Sends a `webhook.ping` event to this endpoint only; its delivery shows
/// in the delivery log like any other.
#[utoipa::path(post, operation_id = "webhooks_test", path = "/{platform}/v1/webhooks/{id}/test", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`")),
    responses((status = 202, body = TestSent), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn test(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ById>,
) -> Result<(StatusCode, Json<TestSent>), ApiError> {
    let (event, delivery) = state
        .events
        .ping(&tenant.workspace_id, tenant.product, &p.id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            event: event.event,
            delivery: delivery_view(&delivery),
        }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    /// `pending`, `retrying`, `succeeded` or `failed`.
    pub(crate) state: Option<String>,
    /// From the previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryList {
    pub(crate) deliveries: Vec<DeliveryView>,
    pub(crate) next_cursor: Option<String>,
}

/// The endpoint's deliveries with every attempt, newest first.
#[utoipa::path(get, operation_id = "webhooks_deliveries", path = "/{platform}/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`"), DeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ById>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = page_limit(q.limit)?;
    let wanted = q
        .state
        .as_deref()
        .map(|s| {
            DeliveryState::parse(s).ok_or_else(|| {
                ApiError::invalid("state must be pending, retrying, succeeded or failed")
            })
        })
        .transpose()?;
    let page = state
        .events
        .deliveries(
            &tenant.workspace_id,
            tenant.product,
            &p.id,
            wanted,
            q.cursor.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(DeliveryList {
        deliveries: page.items.iter().map(delivery_view).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One delivery with every attempt.
#[utoipa::path(get, operation_id = "webhooks_delivery", path = "/{platform}/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`"),
           ("delivery_id" = String, Path, description = "Delivery id, `whd_…`")),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn delivery(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ByDelivery>,
) -> Result<Json<DeliveryView>, ApiError> {
    let d = state
        .events
        .delivery(&tenant.workspace_id, tenant.product, &p.id, &p.delivery_id)
        .await?;
    Ok(Json(delivery_view(&d)))
}

/// Sends a retrying or permanently failed delivery again now (same event
/// id, fresh timestamp and signature). The schedule of a retrying delivery
/// goes on as before if the resend fails.
#[utoipa::path(post, operation_id = "webhooks_resend", path = "/{platform}/v1/webhooks/{id}/deliveries/{delivery_id}/resend", tag = "webhooks",
    params(("platform" = String, Path, description = "`migosmtp`, `telnxo`, or `portal` (a client's lifecycle webhooks, with its session)"),
           ("id" = String, Path, description = "Endpoint id, `ep_…`"),
           ("delivery_id" = String, Path, description = "Delivery id, `whd_…`")),
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn resend(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(p): ApiPath<ByDelivery>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let d = state
        .events
        .resend(&tenant.workspace_id, tenant.product, &p.id, &p.delivery_id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_view(&d))))
}
