//! The HTTP plane (axum): the admin API under `/admin/v1`, the platform APIs
//! under `/migosmtp/v1` and `/telnxo/v1` ([`platform`]), health, metrics
//! and the OpenAPI document. One file per admin endpoint under [`admin`].
//!
//! Every error, including malformed JSON, unknown routes and missing
//! credentials, is answered as `{"error": {"code", "message"}}`.

pub mod admin;
mod error;
mod extract;
mod health;
mod openapi;
pub mod platform;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use rackwave_queue::Spool;
use sha2::{Digest, Sha256};

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::domains::Domains;
use crate::events::Events;
use crate::metrics::Metrics;

pub use error::ApiError;
pub use openapi::ApiDoc;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Accounts,
    pub spool: Spool,
    pub domains: Domains,
    pub metrics: Metrics,
    pub clock: Clock,
    /// The event log and webhook endpoints (`/{platform}/v1/events`,
    /// `/{platform}/v1/webhooks`).
    pub events: Events,
    /// SHA-256 of the admin token: compared in constant time, never kept
    /// in clear beyond start-up.
    pub admin_token_digest: Arc<[u8; 32]>,
}

impl AppState {
    pub fn new(
        accounts: Accounts,
        spool: Spool,
        domains: Domains,
        metrics: Metrics,
        clock: Clock,
        events: Events,
        admin_token: &str,
    ) -> AppState {
        AppState {
            accounts,
            spool,
            domains,
            metrics,
            clock,
            events,
            admin_token_digest: Arc::new(Sha256::digest(admin_token.as_bytes()).into()),
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .nest("/admin/v1", admin::router(state.clone()))
        .nest(
            "/migosmtp/v1",
            platform::router(state.clone(), crate::accounts::Platform::Migosmtp),
        )
        .nest(
            "/telnxo/v1",
            platform::router(state.clone(), crate::accounts::Platform::Telnxo),
        )
        .merge(health::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
