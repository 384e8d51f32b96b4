//! The admin API, `/admin/v1`, guarded by the admin bearer token. One file
//! per endpoint, so the surface reads as this directory's listing.

pub mod api_keys_v1;
pub mod domains_v1;
pub mod messages_v1;
pub mod queue_v1;
pub mod smtp_accounts_v1;
pub mod workspaces_v1;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use super::extract::require_admin;
use super::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/workspaces",
            post(workspaces_v1::create).get(workspaces_v1::list),
        )
        .route("/workspaces/{id}", get(workspaces_v1::get))
        .route(
            "/workspaces/{id}/smtp-accounts",
            post(smtp_accounts_v1::create).get(smtp_accounts_v1::list),
        )
        .route("/workspaces/{id}/api-keys", post(api_keys_v1::create))
        .route(
            "/workspaces/{id}/domains",
            post(domains_v1::create).get(domains_v1::list),
        )
        .route("/messages", get(messages_v1::list))
        .route("/messages/{id}", get(messages_v1::get))
        .route("/queue", get(queue_v1::counts))
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}
