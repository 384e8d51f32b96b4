//! Extractors whose rejections use the JSON error shape, the admin token
//! guard and the platform tenant (the workspace of the API key).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use rackwave_core::{Platform, Product};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// For PATCH bodies: tells a field set to `null` (`Some(None)`) from one
/// left out (`None`, with `#[serde(default)]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `Json<T>` with JSON errors: 400 for bad syntax or fields, 413 when too
/// large, 415 without `Content-Type: application/json`.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    _ => "invalid_json",
                };
                let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                };
                Err(ApiError::new(status, code, rejection.body_text()))
            }
        }
    }
}

/// `Query<T>` with JSON errors.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Decoding would replace bytes that are not UTF-8 and go on; a
        // query that carries them is refused instead.
        if !parts.uri.query().is_none_or(decodes_to_utf8) {
            return Err(ApiError::invalid(
                "Failed to deserialize query string: it is not valid UTF-8 once percent-decoded",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::invalid(r.body_text()))
    }
}

/// Whether a percent-encoded string decodes to UTF-8.
fn decodes_to_utf8(encoded: &str) -> bool {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                decoded.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// `Path<T>` with JSON errors (a parameter that is not valid UTF-8, say).
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| ApiError::new(r.status(), "invalid_path", r.body_text()))
    }
}

/// The page size of a listing: the one rule of `rackwave_core::page`.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    rackwave_core::page::limit(limit).map_err(ApiError::invalid)
}

/// The bearer token of an `Authorization` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The SHA-256 of the admin token, put in every request's extensions by
/// the router.
#[derive(Clone)]
pub(crate) struct AdminToken(pub(crate) Arc<[u8; 32]>);

/// Middleware guarding `/admin/v1`: the admin token, compared in constant
/// time (as digests, so the length does not leak either).
pub(crate) async fn require_admin(req: Request, next: Next) -> Result<Response, ApiError> {
    check_admin(req.headers(), req.extensions())?;
    Ok(next.run(req).await)
}

fn check_admin(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<(), ApiError> {
    let presented = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let expected = extensions
        .get::<AdminToken>()
        .ok_or_else(ApiError::unauthorized)?;
    if !bool::from(digest.ct_eq(&*expected.0)) {
        return Err(ApiError::unauthorized());
    }
    Ok(())
}

/// The operator, by the admin token, on a route outside `/admin/v1` (a
/// platform resource the operator manages, such as Telnxo's numbers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator;

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        check_admin(&parts.headers, &parts.extensions).map(|()| Operator)
    }
}

/// The caller of a platform route: the workspace of the bearer API key,
/// which must belong to the platform of the path (`/{platform}/v1/…`). A
/// MigoSMTP key is refused by Telnxo and the other way round. The shared
/// webhook and event routes also answer under `/portal/v1/…`, to a
/// client's session: the client's own lifecycle webhooks and events.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    /// A platform workspace, or a portal client (`cus_…`).
    pub(crate) workspace_id: String,
    /// The product of the path: `migosmtp`, `telnxo`, or `rackwave` for
    /// the portal.
    pub(crate) product: Product,
    /// The key's id: who submitted, for quotas and the `Received:` field.
    pub(crate) key_id: String,
}

impl Tenant {
    /// The products whose events this caller sees: its platform's and the
    /// portal's, or the portal's alone.
    pub(crate) fn visible_products(&self) -> Vec<Product> {
        match self.product {
            Product::Rackwave => vec![Product::Rackwave],
            p => vec![p, Product::Rackwave],
        }
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::new(r.status(), "invalid_path", r.body_text()))?;
        let named = params
            .iter()
            .find(|(name, _)| *name == "platform")
            .map(|(_, value)| value.to_string());
        if named.as_deref() == Some("portal") {
            let who = crate::portal::PortalClient::from_request_parts(parts, state).await?;
            return Ok(Tenant {
                key_id: format!("client {}", who.client.id),
                workspace_id: who.client.id,
                product: Product::Rackwave,
            });
        }
        let platform = named
            .as_deref()
            .and_then(Platform::parse)
            .ok_or_else(|| ApiError::not_found("no such route"))?;
        tenant_of(parts, state, platform).await
    }
}

/// The caller of a MigoSMTP-only route (`/migosmtp/v1/messages`, …): a
/// MigoSMTP key.
#[derive(Debug, Clone)]
pub(crate) struct MigoSmtp(pub(crate) Tenant);

impl FromRequestParts<AppState> for MigoSmtp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        tenant_of(parts, state, Platform::Migosmtp)
            .await
            .map(MigoSmtp)
    }
}

/// The caller of a Telnxo-only route (`/telnxo/v1/sms`, …): a Telnxo key.
#[derive(Debug, Clone)]
pub(crate) struct Telnxo(pub(crate) Tenant);

impl FromRequestParts<AppState> for Telnxo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        tenant_of(parts, state, Platform::Telnxo).await.map(Telnxo)
    }
}

async fn tenant_of(
    parts: &Parts,
    state: &AppState,
    platform: Platform,
) -> Result<Tenant, ApiError> {
    let presented = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
    let key = state
        .accounts
        .api_key(presented)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if key.platform != platform {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("this API key is not valid for {}", platform.as_str()),
        ));
    }
    // A suspended workspace keeps what it has (its logs, its events) but
    // sends and adds nothing; it may still delete (revoke a leaked key).
    let reads = [
        axum::http::Method::GET,
        axum::http::Method::HEAD,
        axum::http::Method::DELETE,
    ];
    if !reads.contains(&parts.method) && state.accounts.is_suspended(&key.workspace_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "suspended",
            "this workspace's subscription is suspended: it sends nothing until it is reactivated",
        ));
    }
    Ok(Tenant {
        workspace_id: key.workspace_id,
        product: Product::of_platform(platform),
        key_id: key.id,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding_checks_utf8() {
        assert!(super::decodes_to_utf8("workspace=ws_1&to=a%40b.test"));
        assert!(super::decodes_to_utf8("to=jos%C3%A9%40example.test"));
        assert!(super::decodes_to_utf8("odd=%zz&end=%"));
        assert!(!super::decodes_to_utf8("workspace=%ff"));
        assert!(!super::decodes_to_utf8("a=%C3"));
    }
}
