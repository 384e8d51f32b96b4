//! `POST /portal/v1/payments/callback`: the payment gateway tells us of a
//! payment. The body is trusted only when `X-Rackwave-Gateway-Signature`
//! is `sha256=` + hex HMAC-SHA256 of the raw body with `[billing]
//! gateway_secret` (checked in constant time before the body is parsed);
//! a payment id seen before is refused (`409`), so a replayed callback
//! counts nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rackwave_billing::{gateway_signature_valid, PaymentMethod};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account_v1::refused;
use super::invoices_v1::{view, InvoiceView};
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// The header carrying the callback's signature.
pub(crate) const SIGNATURE_HEADER: &str = "x-rackwave-gateway-signature";

#[derive(Deserialize, ToSchema)]
pub(crate) struct Callback {
    /// The gateway's id of the payment (recorded once).
    pub(crate) payment_id: String,
    pub(crate) invoice_id: String,
    /// Whole paise.
    pub(crate) amount_paise: i64,
    /// `captured` records the payment; anything else (`failed`, …) is
    /// acknowledged and changes nothing.
    pub(crate) status: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CallbackAnswer {
    /// Whether a payment was recorded.
    pub(crate) recorded: bool,
    pub(crate) invoice: Option<InvoiceView>,
}

/// Records a payment the gateway reports.
#[utoipa::path(post, operation_id = "portal_payments_callback",
    path = "/portal/v1/payments/callback", tag = "portal", request_body = Callback,
    params(("X-Rackwave-Gateway-Signature" = String, Header,
        description = "sha256= and the hex HMAC-SHA256 of the raw body")),
    responses((status = 200, body = CallbackAnswer), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CallbackAnswer>, ApiError> {
    let Some(secret) = state.billing.config().gateway_secret.as_deref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "no payment gateway is configured ([billing] gateway_secret)",
        ));
    };
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !gateway_signature_valid(secret.as_bytes(), &body, signature) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the callback's signature does not match its body",
        ));
    }
    let cb: Callback = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    if cb.status != "captured" {
        return Ok(Json(CallbackAnswer {
            recorded: false,
            invoice: None,
        }));
    }
    let paid = state
        .billing
        .pay(
            None,
            &cb.invoice_id,
            cb.amount_paise,
            PaymentMethod::Gateway,
            &format!("gateway:{}", cb.payment_id),
        )
        .await
        .map_err(refused)?;
    Ok(Json(CallbackAnswer {
        recorded: true,
        invoice: Some(view(paid.invoice)),
    }))
}
