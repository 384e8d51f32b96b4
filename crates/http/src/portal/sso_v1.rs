//! Single sign-on through the API: `POST /portal/v1/sso` (Access Platform
//! for a client's app: a one-use token in the platform's landing URL) and
//! `POST /portal/v1/sso/validate` (a platform asks, server to server with
//! its own secret, whether a sign-on token is good; the answer uses it
//! up).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rackwave_billing::SsoRefusal;
use rackwave_core::Platform;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::PortalClient;
use crate::error::ErrorBody;
use crate::extract::{bearer, ApiJson};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Validate {
    /// The token the browser brought (`rwsso_…`).
    pub(crate) token: String,
    /// The platform asking: `migosmtp` or `telnxo`.
    pub(crate) platform: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Validated {
    pub(crate) client_id: String,
    pub(crate) workspace_id: String,
    pub(crate) platform: String,
}

/// Validates and uses up a sign-on token (the platform's secret as bearer
/// token): `200` with whom it signs in; `401` without the platform's
/// secret; `403` for a token used, expired, altered or of another
/// platform. Every refusal is audited.
#[utoipa::path(post, operation_id = "portal_sso_validate", path = "/portal/v1/sso/validate",
    tag = "portal", request_body = Validate,
    responses((status = 200, body = Validated), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("platform_secret" = [])))]
pub(crate) async fn validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Validate>,
) -> Result<Json<Validated>, ApiError> {
    let platform = Platform::parse(&req.platform)
        .ok_or_else(|| ApiError::unprocessable("platform", "migosmtp or telnxo"))?;
    let proven = bearer(&headers).is_some_and(|s| state.sso.platform_proven(platform, s));
    if !proven {
        state
            .sso
            .audit(
                "sso.unauthenticated",
                &format!("a validation for {} without its secret", platform.as_str()),
                None,
            )
            .await;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            SsoRefusal::Unauthenticated.to_string(),
        ));
    }
    let who = state
        .sso
        .redeem(&req.token, platform)
        .await
        .map_err(|r| ApiError::new(StatusCode::FORBIDDEN, "sso_refused", r.to_string()))?;
    Ok(Json(Validated {
        client_id: who.client_id,
        workspace_id: who.workspace_id,
        platform: platform.as_str().into(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Access {
    /// One of the client's subscriptions with platform access (trial,
    /// active or suspended).
    pub(crate) subscription_id: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Landing {
    /// The platform's sign-on URL with the one-use token (`?token=`),
    /// good for `[sso] token_ttl_secs`.
    pub(crate) redirect_url: String,
}

/// Access Platform: a one-use sign-on token for the subscription's
/// workspace, in the URL to send the browser to.
#[utoipa::path(post, operation_id = "portal_sso_access", path = "/portal/v1/sso",
    tag = "portal", request_body = Access,
    responses((status = 200, body = Landing), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn access(
    State(state): State<AppState>,
    who: PortalClient,
    ApiJson(req): ApiJson<Access>,
) -> Result<Json<Landing>, ApiError> {
    let (token, platform) = state
        .sso
        .issue(&who.client.id, &req.subscription_id)
        .await?;
    Ok(Json(Landing {
        redirect_url: state.sso_urls.landing(platform, &token),
    }))
}
