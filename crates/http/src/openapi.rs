//! The frame of the OpenAPI document: title, tags and the two bearer
//! schemes. The paths come from the route list (`routes` in `lib.rs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Rackwave", description = "Mail transfer agent with an embedded management plane"),
    modifiers(&BearerAuth),
    tags((name = "admin", description = "Operator API, admin bearer token"),
         (name = "webhooks", description = "Webhook endpoints and the event log of a workspace, under /migosmtp/v1 and /telnxo/v1, with that platform's API key"),
         (name = "migosmtp", description = "The MigoSMTP API of a workspace: sending, with its MigoSMTP key"),
         (name = "telnxo", description = "The Telnxo API of a workspace: SMS, calls and WhatsApp, with its Telnxo key; numbers are provisioned with the admin token"),
         (name = "portal", description = "The client portal: sign-up, login (a session cookie or bearer token), plans"),
         (name = "operations", description = "Health and metrics"))
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "client_session",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "platform_secret",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
