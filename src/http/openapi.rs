//! `GET /openapi.json`: the OpenAPI document of every HTTP API, generated
//! from the handlers' annotations so it cannot drift from the code.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::admin::{
    api_keys_v1, domains_v1, messages_v1, queue_v1, smtp_accounts_v1, workspaces_v1,
};
use super::platform::{events_v1, webhooks_v1};
use super::{health, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "Rackwave", description = "Mail transfer agent with an embedded management plane"),
    paths(
        health::healthz,
        health::metrics,
        workspaces_v1::create,
        workspaces_v1::list,
        workspaces_v1::get,
        smtp_accounts_v1::create,
        smtp_accounts_v1::list,
        api_keys_v1::create,
        domains_v1::create,
        domains_v1::list,
        messages_v1::list,
        messages_v1::get,
        queue_v1::counts,
        webhooks_v1::create,
        webhooks_v1::list,
        webhooks_v1::get,
        webhooks_v1::update,
        webhooks_v1::delete,
        webhooks_v1::rotate,
        webhooks_v1::test,
        webhooks_v1::deliveries,
        webhooks_v1::delivery,
        webhooks_v1::resend,
        events_v1::list,
        events_v1::get,
    ),
    modifiers(&BearerAuth),
    tags((name = "admin", description = "Operator API, admin bearer token"),
         (name = "webhooks", description = "Webhook endpoints and the event log of a workspace, under /migosmtp/v1 and /telnxo/v1, with that platform's API key"),
         (name = "operations", description = "Health and metrics"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
