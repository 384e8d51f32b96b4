//! The HTTP plane (axum): the admin API under `/admin/v1`, the platform
//! APIs under `/{platform}/v1` (`migosmtp`, `telnxo`), the portal's under
//! `/portal/v1`, health, metrics and the OpenAPI document.
//!
//! One file per resource and version. [`routes`] is the one route list:
//! the router and the OpenAPI document are both made from it
//! (utoipa-axum), so they cannot drift apart. Every error, including
//! unmatched routes, wrong methods and undecodable paths, bodies or
//! queries, is answered as `{"error": {"code", "message"}}` (see
//! `error.rs`).

mod admin;
mod error;
mod extract;
mod health;
pub mod idempotency;
mod messages;
mod rate_limit;
mod tracking;

pub use rate_limit::RateLimit;
mod migosmtp;
mod openapi;
mod pages;
mod platform;
mod portal;
mod telnxo;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use prometheus_client::registry::Registry;
use rackwave_accounts::DnsSetup;
use rackwave_accounts::{Accounts, Domains, Suppressions};
use rackwave_core::Clock;
use rackwave_delivery::{Destinations, DnsLookup};
use rackwave_events::Events;
use rackwave_intake::Intake;
use rackwave_queue::Spool;
use rackwave_store::Store;
use rackwave_tracking::TrackingKey;
use sha2::{Digest, Sha256};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    accounts: Accounts,
    domains: Domains,
    suppressions: Suppressions,
    /// Verifies the tokens of tracking links.
    tracking_key: TrackingKey,
    spool: Spool,
    events: Events,
    clock: Clock,
    registry: Arc<Registry>,
    /// The delivery engine's destinations, unless delivery is off.
    destinations: Option<Destinations>,
    /// The submission pipeline, for the HTTP send API.
    intake: Intake,
    /// Idempotency records.
    store: Store,
    /// Idempotent requests being carried out in this process.
    idempotency_running: idempotency::Running,
    rate_limit: RateLimit,
    portal_rate_limit_per_minute: u32,
    send: SendSettings,
    /// DNS lookups and the expected records of sending domains.
    dns: DnsLookup,
    dns_setup: DnsSetup,
    machine_networks: Arc<Vec<rackwave_core::IpNetwork>>,
    /// The portal's clients, and their subscriptions and invoices.
    clients: rackwave_billing::Clients,
    billing: rackwave_billing::Billing,
    /// The Telnxo platform: SMS, voice, WhatsApp.
    telnxo: rackwave_telnxo::Telnxo,
    /// Single sign-on: the portal's tokens and the platforms' sessions.
    sso: rackwave_billing::Sso,
    sso_urls: SsoUrls,
    /// Each platform's secret, which it shows the portal.
    sso_secrets: Arc<std::collections::HashMap<rackwave_core::Platform, String>>,
    /// For the platforms' calls to the portal.
    http_client: reqwest::Client,
    /// SHA-256 of the admin token: compared in constant time, never kept
    /// in clear beyond start-up.
    admin_token_digest: Arc<[u8; 32]>,
}

/// What the HTTP plane serves from.
pub struct Parts {
    pub accounts: Accounts,
    pub domains: Domains,
    pub suppressions: Suppressions,
    pub tracking_key: TrackingKey,
    pub spool: Spool,
    pub events: Events,
    pub clock: Clock,
    /// Every metric of the process, rendered at `GET /metrics`.
    pub registry: Arc<Registry>,
    pub admin_token: String,
    /// The delivery engine's destinations, unless delivery is off.
    pub destinations: Option<Destinations>,
    pub intake: Intake,
    pub send: SendSettings,
    pub store: Store,
    /// Of each key of the platform APIs.
    pub rate_limit: RateLimit,
    /// The portal's anonymous calls a minute per client address (0: no
    /// limit).
    pub portal_rate_limit_per_minute: u32,
    pub dns: DnsLookup,
    pub dns_setup: DnsSetup,
    /// Opens and clicks from these networks are a machine's
    /// (`[tracking] machine_networks`).
    pub machine_networks: Vec<rackwave_core::IpNetwork>,
    pub clients: rackwave_billing::Clients,
    pub billing: rackwave_billing::Billing,
    pub telnxo: rackwave_telnxo::Telnxo,
    pub sso: rackwave_billing::Sso,
    pub sso_urls: SsoUrls,
    pub sso_secrets: std::collections::HashMap<rackwave_core::Platform, String>,
}

/// Where the parts of single sign-on are reached (one host serves all
/// unless `[sso]` says otherwise).
#[derive(Debug, Clone)]
pub struct SsoUrls {
    /// The portal, as the platforms call it (validation).
    pub portal: String,
    pub migosmtp: String,
    pub telnxo: String,
}

impl SsoUrls {
    /// Where the browser goes for `platform`.
    pub fn platform(&self, platform: rackwave_core::Platform) -> &str {
        match platform {
            rackwave_core::Platform::Migosmtp => &self.migosmtp,
            rackwave_core::Platform::Telnxo => &self.telnxo,
        }
    }

    /// The platform's sign-on landing carrying `token` (where Access
    /// Platform sends the browser).
    pub fn landing(&self, platform: rackwave_core::Platform, token: &str) -> String {
        format!(
            "{}/{}/sso?token={token}",
            self.platform(platform),
            platform.as_str()
        )
    }
}

/// Settings of the HTTP send API.
#[derive(Debug, Clone)]
pub struct SendSettings {
    /// The host name in generated `Message-ID`s.
    pub hostname: String,
    /// Largest attachment, decoded.
    pub max_attachment_bytes: usize,
}

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        AppState {
            accounts: parts.accounts,
            domains: parts.domains,
            suppressions: parts.suppressions,
            tracking_key: parts.tracking_key,
            spool: parts.spool,
            events: parts.events,
            clock: parts.clock,
            registry: parts.registry,
            destinations: parts.destinations,
            intake: parts.intake,
            store: parts.store,
            idempotency_running: Default::default(),
            rate_limit: parts.rate_limit,
            portal_rate_limit_per_minute: parts.portal_rate_limit_per_minute,
            dns: parts.dns,
            dns_setup: parts.dns_setup,
            machine_networks: Arc::new(parts.machine_networks),
            clients: parts.clients,
            billing: parts.billing,
            telnxo: parts.telnxo,
            sso: parts.sso,
            sso_urls: parts.sso_urls,
            sso_secrets: Arc::new(parts.sso_secrets),
            http_client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            send: parts.send,
            admin_token_digest: Arc::new(Sha256::digest(parts.admin_token.as_bytes()).into()),
        }
    }
}

/// Request body limits: the send API's, and everyone else's.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub json: usize,
    pub send: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            json: 1024 * 1024,
            send: 20 * 1024 * 1024,
        }
    }
}

/// Every route, with its documentation: the one list the router and the
/// OpenAPI document are both made from.
fn routes(limits: BodyLimits) -> OpenApiRouter<AppState> {
    use admin::{
        api_keys_v1, destinations_v1, domains_v1, messages_v1, queue_v1, smtp_accounts_v1,
        workspaces_v1,
    };
    use platform::{events_v1, webhooks_v1};
    let admin = OpenApiRouter::new()
        .routes(routes!(workspaces_v1::create, workspaces_v1::list))
        .routes(routes!(workspaces_v1::get, workspaces_v1::update))
        .routes(routes!(workspaces_v1::stats))
        .routes(routes!(messages_v1::send))
        .routes(routes!(smtp_accounts_v1::create, smtp_accounts_v1::list))
        .routes(routes!(api_keys_v1::create, api_keys_v1::list))
        .routes(routes!(api_keys_v1::revoke))
        .routes(routes!(smtp_accounts_v1::delete))
        .routes(routes!(domains_v1::delete, domains_v1::update))
        .routes(routes!(domains_v1::verify))
        .routes(routes!(domains_v1::create, domains_v1::list))
        .routes(routes!(
            admin::suppressions_v1::list,
            admin::suppressions_v1::add
        ))
        .routes(routes!(admin::suppressions_v1::delete))
        .routes(routes!(messages_v1::list))
        .routes(routes!(messages_v1::get))
        .routes(routes!(queue_v1::counts))
        .routes(routes!(destinations_v1::resume))
        .routes(routes!(admin::subscriptions_v1::list))
        .routes(routes!(admin::subscriptions_v1::suspend))
        .routes(routes!(admin::subscriptions_v1::reactivate))
        .routes(routes!(admin::subscriptions_v1::cancel))
        .routes(routes!(admin::subscriptions_v1::run))
        .routes(routes!(admin::clients_v1::list))
        .routes(routes!(admin::clients_v1::get))
        .routes(routes!(admin::invoices_v1::list))
        .routes(routes!(admin::invoices_v1::get))
        .routes(routes!(admin::invoices_v1::pay))
        .routes(routes!(admin::invoices_v1::credit))
        .route_layer(middleware::from_fn(extract::require_admin));
    let platforms = OpenApiRouter::new()
        .routes(routes!(webhooks_v1::create, webhooks_v1::list))
        .routes(routes!(
            webhooks_v1::get,
            webhooks_v1::update,
            webhooks_v1::delete
        ))
        .routes(routes!(webhooks_v1::rotate))
        .routes(routes!(webhooks_v1::test))
        .routes(routes!(webhooks_v1::deliveries))
        .routes(routes!(webhooks_v1::delivery))
        .routes(routes!(webhooks_v1::resend))
        .routes(routes!(events_v1::list))
        .routes(routes!(events_v1::get))
        .route_layer(middleware::from_fn(rate_limit::limit));
    let migosmtp = OpenApiRouter::new()
        .routes(routes!(
            migosmtp::messages_v1::send,
            migosmtp::messages_v1::list
        ))
        .routes(routes!(migosmtp::messages_v1::get))
        .routes(routes!(migosmtp::messages_v1::raw))
        .routes(routes!(
            migosmtp::credentials_v1::create_smtp_account,
            migosmtp::credentials_v1::list_smtp_accounts
        ))
        .routes(routes!(migosmtp::credentials_v1::delete_smtp_account))
        .routes(routes!(
            migosmtp::credentials_v1::create_api_key,
            migosmtp::credentials_v1::list_api_keys
        ))
        .routes(routes!(migosmtp::credentials_v1::delete_api_key))
        .routes(routes!(
            migosmtp::domains_v1::create,
            migosmtp::domains_v1::list
        ))
        .routes(routes!(
            migosmtp::domains_v1::get,
            migosmtp::domains_v1::delete,
            migosmtp::domains_v1::update
        ))
        .routes(routes!(migosmtp::domains_v1::verify))
        .routes(routes!(migosmtp::stats_v1::stats))
        .routes(routes!(migosmtp::messages_v1::send_batch))
        .routes(routes!(
            migosmtp::suppressions_v1::list,
            migosmtp::suppressions_v1::add
        ))
        .routes(routes!(migosmtp::suppressions_v1::import))
        .routes(routes!(
            migosmtp::suppressions_v1::get,
            migosmtp::suppressions_v1::delete
        ))
        // Last: a route layer covers only the routes added before it.
        .route_layer(middleware::from_fn(rate_limit::limit))
        .layer(DefaultBodyLimit::max(limits.send));
    let telnxo = OpenApiRouter::new()
        .routes(routes!(telnxo::sms_v1::send))
        .routes(routes!(telnxo::calls_v1::place, telnxo::calls_v1::list))
        .routes(routes!(telnxo::calls_v1::get))
        .routes(routes!(telnxo::whatsapp_v1::send))
        .routes(routes!(telnxo::messages_v1::list))
        .routes(routes!(telnxo::messages_v1::get))
        .routes(routes!(
            telnxo::numbers_v1::list,
            telnxo::numbers_v1::provision
        ))
        .routes(routes!(telnxo::numbers_v1::release))
        .routes(routes!(telnxo::simulator_v1::inbound))
        .route_layer(middleware::from_fn(rate_limit::limit))
        // Meta's callback: no key (its signature is checked), no key's
        // rate limit.
        .routes(routes!(
            telnxo::whatsapp_v1::verify,
            telnxo::whatsapp_v1::callback
        ))
        .layer(DefaultBodyLimit::max(limits.json));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(telnxo)
        .merge(admin.layer(DefaultBodyLimit::max(limits.json)))
        .merge(platforms.layer(DefaultBodyLimit::max(limits.json)))
        .merge(migosmtp)
        .merge(
            OpenApiRouter::new()
                .routes(routes!(
                    tracking::unsubscribe::page,
                    tracking::unsubscribe::one_click
                ))
                .routes(routes!(tracking::open::pixel))
                .routes(routes!(tracking::click::follow))
                .layer(DefaultBodyLimit::max(limits.json)),
        )
        .merge(
            // Anonymous: limited per client address.
            OpenApiRouter::new()
                .routes(routes!(portal::account_v1::signup))
                .routes(routes!(portal::account_v1::login))
                .routes(routes!(portal::password_v1::reset))
                .routes(routes!(portal::password_v1::confirm))
                .route_layer(middleware::from_fn(rate_limit::limit_address))
                .layer(DefaultBodyLimit::max(limits.json)),
        )
        .merge(
            OpenApiRouter::new()
                .routes(routes!(portal::account_v1::logout))
                .routes(routes!(portal::account_v1::me, portal::account_v1::update))
                .routes(routes!(portal::password_v1::change))
                .routes(routes!(portal::plans_v1::list))
                .routes(routes!(
                    portal::subscriptions_v1::create,
                    portal::subscriptions_v1::list
                ))
                .routes(routes!(portal::subscriptions_v1::get))
                .routes(routes!(portal::subscriptions_v1::upgrade))
                .routes(routes!(portal::subscriptions_v1::cancel))
                .routes(routes!(portal::invoices_v1::list))
                .routes(routes!(portal::invoices_v1::get))
                .routes(routes!(portal::contacts_v1::get, portal::contacts_v1::put))
                .routes(routes!(portal::payments_v1::callback))
                .routes(routes!(portal::sso_v1::access))
                .routes(routes!(portal::sso_v1::validate))
                .layer(DefaultBodyLimit::max(limits.json)),
        )
        .routes(routes!(health::healthz))
        .routes(routes!(health::metrics))
}

/// The OpenAPI document of every route (also served at `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(BodyLimits::default()).into_openapi()
}

/// The whole HTTP application.
pub fn router(state: AppState, limits: BodyLimits) -> axum::Router {
    let (router, doc) = routes(limits).split_for_parts();
    let doc = Arc::new(doc);
    let admin_token = extract::AdminToken(state.admin_token_digest.clone());
    let limiter = rate_limit::RateLimiter::new(state.rate_limit, state.clock.clone());
    let by_address = rate_limit::AddressLimiter(rate_limit::RateLimiter::per_minute(
        state.portal_rate_limit_per_minute,
        state.clock.clone(),
    ));
    use axum::routing::{get, post};
    use pages::platform::{Migo, Tel};
    // Pages: HTML, outside the OpenAPI document.
    let pages = axum::Router::new()
        .route(
            "/portal/login",
            get(pages::portal::login_form).post(pages::portal::login),
        )
        .route(
            "/portal/signup",
            get(pages::portal::signup_form).post(pages::portal::signup),
        )
        .route(
            "/admin/login",
            get(pages::admin::login_form).post(pages::admin::login),
        )
        .route(
            "/portal/reset",
            get(pages::portal::reset_form).post(pages::portal::request_reset),
        )
        .route(
            "/portal/reset/password",
            post(pages::portal::reset_password),
        )
        // Anonymous: limited per client address, as the portal API's login.
        .route_layer(middleware::from_fn(rate_limit::limit_address))
        .route("/admin/", get(pages::admin::overview))
        .route("/admin/logout", post(pages::admin::logout))
        .route(
            "/admin/destinations/{domain}/resume",
            post(pages::admin::resume),
        )
        .route("/portal/subscriptions", post(pages::portal::start_trial))
        .route(
            "/portal/",
            get(|| async { pages::see_other("/portal/dashboard", &[]) }),
        )
        .route("/portal/dashboard", get(pages::portal::dashboard))
        .route("/portal/logout", post(pages::portal::logout))
        .route(
            "/portal/subscriptions/{id}/plan",
            post(pages::portal::change_plan),
        )
        .route(
            "/portal/subscriptions/{id}/cancel",
            get(pages::portal::cancel_form).post(pages::portal::cancel),
        )
        .route(
            "/portal/contacts",
            get(pages::portal::contacts).post(pages::portal::add_contact),
        )
        .route(
            "/portal/contacts/remove",
            post(pages::portal::remove_contact),
        )
        .route(
            "/portal/webhooks",
            get(pages::portal::webhooks).post(pages::portal::add_webhook),
        )
        .route(
            "/portal/webhooks/{endpoint}/deliveries/{delivery}/resend",
            post(pages::portal::resend),
        )
        .route(
            "/portal/sso/{subscription}",
            post(pages::portal::access_platform),
        )
        .route("/migosmtp/sso", get(pages::platform::migosmtp_sso))
        .route("/telnxo/sso", get(pages::platform::telnxo_sso))
        .route("/migosmtp/", get(pages::platform::migosmtp_dashboard))
        .route("/migosmtp/messages", get(pages::platform::migosmtp_log))
        .route(
            "/migosmtp/domains",
            get(pages::platform::migosmtp_domains).post(pages::platform::migosmtp_add_domain),
        )
        .route(
            "/migosmtp/credentials",
            get(pages::platform::migosmtp_credentials),
        )
        .route(
            "/migosmtp/credentials/smtp-accounts",
            post(pages::platform::migosmtp_create_account),
        )
        .route(
            "/migosmtp/credentials/smtp-accounts/{username}/delete",
            post(pages::platform::migosmtp_delete_account),
        )
        .route(
            "/migosmtp/credentials/api-keys",
            post(pages::platform::migosmtp_create_key),
        )
        .route(
            "/migosmtp/credentials/api-keys/{id}/revoke",
            post(pages::platform::migosmtp_revoke_key),
        )
        .route(
            "/migosmtp/domains/{domain}/verify",
            post(pages::platform::migosmtp_verify),
        )
        .route(
            "/migosmtp/messages/{id}",
            get(pages::platform::migosmtp_message),
        )
        .route("/telnxo/", get(pages::platform::telnxo_dashboard))
        .route(
            "/migosmtp/webhooks",
            get(pages::platform::webhooks::<Migo>).post(pages::platform::add_webhook::<Migo>),
        )
        .route(
            "/migosmtp/suppressions",
            get(pages::platform::migosmtp_suppressions),
        )
        .route(
            "/migosmtp/suppressions/remove",
            post(pages::platform::migosmtp_unsuppress),
        )
        .route(
            "/migosmtp/suppressions/import",
            post(pages::platform::migosmtp_import),
        )
        .route(
            "/telnxo/webhooks",
            get(pages::platform::webhooks::<Tel>).post(pages::platform::add_webhook::<Tel>),
        )
        .route(
            "/telnxo/messages/{id}",
            get(pages::platform::telnxo_message),
        )
        .route("/telnxo/calls/{id}", get(pages::platform::telnxo_call))
        .route(
            "/migosmtp/webhooks/{endpoint}/deliveries/{delivery}/resend",
            post(pages::platform::resend::<Migo>),
        )
        .route(
            "/telnxo/webhooks/{endpoint}/deliveries/{delivery}/resend",
            post(pages::platform::resend::<Tel>),
        )
        .route(rackwave_web::STYLESHEET_PATH, get(pages::stylesheet))
        .route(rackwave_web::SCRIPT_PATH, get(pages::script))
        .route_layer(middleware::from_fn(pages::server_timing));
    router
        .merge(pages)
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limits.json))
        .layer(axum::Extension(admin_token))
        .layer(axum::Extension(limiter))
        .layer(axum::Extension(by_address))
        .layer(middleware::from_fn(error::json_errors))
        .with_state(state)
}
