//! The platform APIs, `/migosmtp/v1` and `/telnxo/v1`: the same webhook and
//! event resources under both, each authenticated by a workspace API key of
//! its own platform (`Authorization: Bearer …`). A MigoSMTP key is refused
//! on Telnxo's routes and the other way round; another workspace's records
//! answer 404, as if they did not exist.

pub mod events_v1;
pub mod webhooks_v1;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::extract::bearer;
use super::{ApiError, AppState};
use crate::accounts::Platform;
use crate::events::EventsError;

/// The caller: the workspace and platform of the API key presented.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub workspace_id: String,
    pub platform: Platform,
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Middleware: the bearer API key must exist and belong to `platform`.
async fn authenticate(
    State((state, platform)): State<(AppState, Platform)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = bearer(req.headers()).ok_or_else(ApiError::unauthorized)?;
    let key = state
        .accounts
        .api_key(presented)?
        .ok_or_else(ApiError::unauthorized)?;
    if key.platform != platform {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("this API key is not valid for {}", platform.as_str()),
        ));
    }
    req.extensions_mut().insert(Tenant {
        workspace_id: key.workspace_id,
        platform,
    });
    Ok(next.run(req).await)
}

/// The routes of one platform, to nest under `/{platform}/v1`.
pub fn router(state: AppState, platform: Platform) -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks",
            post(webhooks_v1::create).get(webhooks_v1::list),
        )
        .route(
            "/webhooks/{id}",
            get(webhooks_v1::get)
                .patch(webhooks_v1::update)
                .delete(webhooks_v1::delete),
        )
        .route("/webhooks/{id}/rotate-secret", post(webhooks_v1::rotate))
        .route("/webhooks/{id}/test", post(webhooks_v1::test))
        .route("/webhooks/{id}/deliveries", get(webhooks_v1::deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}",
            get(webhooks_v1::delivery),
        )
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/resend",
            post(webhooks_v1::resend),
        )
        .route("/events", get(events_v1::list))
        .route("/events/{id}", get(events_v1::get))
        .route_layer(middleware::from_fn_with_state(
            (state, platform),
            authenticate,
        ))
}

impl From<EventsError> for ApiError {
    fn from(e: EventsError) -> ApiError {
        match e {
            EventsError::Invalid(m) => ApiError::invalid(m),
            EventsError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            EventsError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            other => ApiError::internal(other),
        }
    }
}

/// Page size from a query: 1 to 500, 50 when absent.
fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > crate::events::MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be 1 to {}",
            crate::events::MAX_PAGE
        )));
    }
    Ok(limit)
}
