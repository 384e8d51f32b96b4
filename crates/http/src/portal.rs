//! The portal's API, `/portal/v1` (Layer 1): clients sign up and log in
//! here, and use their session (a cookie, or the same token as a bearer
//! token) for the rest. Everything a client sees is their own: another
//! client's records answer 404.

pub(crate) mod account_v1;
pub(crate) mod contacts_v1;
pub(crate) mod invoices_v1;
pub(crate) mod password_v1;
pub(crate) mod payments_v1;
pub(crate) mod plans_v1;
pub(crate) mod sso_v1;
pub(crate) mod subscriptions_v1;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use rackwave_billing::clients::csrf_token;
use rackwave_store::Client;

use crate::extract::bearer;
use crate::{ApiError, AppState};

/// The session cookie: `HttpOnly` (no script reads it), `Secure`,
/// `SameSite=Lax` (no cross-site form post carries it), scoped to the
/// portal's paths.
pub(crate) const SESSION_COOKIE: &str = "rw_portal";

/// The header a cookie-authenticated change must carry.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The client of a request: its bearer token, else its session cookie.
pub(crate) struct PortalClient {
    pub(crate) client: Client,
    pub(crate) token: String,
}

/// The session token a request presents, and whether it came in the
/// cookie (which a browser sends by itself, so changes need CSRF proof).
pub(crate) fn presented_token(parts: &Parts) -> Option<(String, bool)> {
    if let Some(t) = bearer(&parts.headers) {
        return Some((t.to_string(), false));
    }
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| (value.to_string(), true))
}

impl FromRequestParts<AppState> for PortalClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, by_cookie) = presented_token(parts).ok_or_else(ApiError::unauthorized)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if by_cookie && !safe {
            use subtle::ConstantTimeEq;
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            let want = csrf_token(&token);
            if !bool::from(given.ct_eq(want.as_bytes())) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "a change made with the session cookie needs the session's X-CSRF-Token",
                ));
            }
        }
        let client = state
            .clients
            .session(&token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(PortalClient { client, token })
    }
}
