//! The webhooks page of every part that has one: a platform's endpoints
//! (MigoSMTP's, Telnxo's, for the signed-in workspace) and the portal's
//! lifecycle endpoints (for the signed-in client). One page, one Add form
//! and one Resend button serve the three; only who owns the endpoints and
//! which page frames them differ.

use axum::http::StatusCode;
use axum::response::Response;
use rackwave_core::{rfc3339, Product};
use rackwave_events::NewEndpoint;
use rackwave_web::webhooks::{DeliveryRow, EndpointView};
use rackwave_web::NavLink;
use serde::Deserialize;

use super::{page, see_other};
use crate::{ApiError, AppState};

/// Whose endpoints a page shows, and how it is framed.
pub(crate) struct Owner<'a> {
    /// A platform workspace, or a portal client (`cus_…`).
    pub workspace_id: &'a str,
    pub product: Product,
    pub brand: &'a str,
    pub nav: &'a [NavLink<'a>],
    /// The part's path (`/migosmtp`, `/telnxo`, `/portal`).
    pub base: &'a str,
}

/// The owner's endpoints, each with its 20 latest deliveries.
async fn endpoints(state: &AppState, owner: &Owner<'_>) -> Vec<EndpointView> {
    let mut out = Vec::new();
    for e in state
        .events
        .endpoints(owner.workspace_id, owner.product)
        .await
        .unwrap_or_default()
    {
        let deliveries = state
            .events
            .deliveries(owner.workspace_id, owner.product, &e.id, None, None, 20)
            .await
            .map(|p| p.items)
            .unwrap_or_default();
        out.push(EndpointView {
            deliveries: deliveries
                .into_iter()
                .map(|d| DeliveryRow {
                    last: d.attempts.last().map_or(String::new(), |a| {
                        match (a.status_code, &a.error) {
                            (Some(code), _) => format!("HTTP {code} in {} ms", a.latency_ms),
                            (None, Some(e)) => e.clone(),
                            (None, None) => String::new(),
                        }
                    }),
                    attempts: d.attempts.len(),
                    can_resend: matches!(
                        d.state,
                        rackwave_store::DeliveryState::Retrying
                            | rackwave_store::DeliveryState::Failed
                    ),
                    event_type: d.event_type.as_str().into(),
                    state: d.state.as_str().into(),
                    created: rfc3339(d.created_at_ms),
                    id: d.id,
                })
                .collect(),
            id: e.id,
            url: e.url,
            enabled: e.enabled,
        });
    }
    out
}

/// The page, with an endpoint just added and its secret when there is one.
pub(crate) async fn show(
    state: &AppState,
    owner: &Owner<'_>,
    csrf: &str,
    status: StatusCode,
    created: Option<(&str, &str)>,
) -> Response {
    let endpoints = endpoints(state, owner).await;
    page(
        status,
        rackwave_web::webhooks::page(
            owner.brand,
            owner.nav,
            owner.base,
            csrf,
            &endpoints,
            created,
        ),
    )
}

/// The Add form.
#[derive(Deserialize)]
pub(crate) struct NewEndpointForm {
    url: String,
    #[serde(default)]
    event_types: String,
    #[serde(rename = "_csrf")]
    pub(crate) csrf: Option<String>,
}

/// Adds an endpoint (the caller checked the form's CSRF token): the page
/// again with its secret shown once, or why not.
pub(crate) async fn add(
    state: &AppState,
    owner: &Owner<'_>,
    csrf: &str,
    form: NewEndpointForm,
) -> Result<Response, ApiError> {
    let types: Vec<String> = form
        .event_types
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let ep = state
        .events
        .create_endpoint(
            owner.workspace_id,
            owner.product,
            NewEndpoint {
                url: form.url.trim().to_string(),
                event_types: (!types.is_empty()).then_some(types),
                enabled: None,
                description: None,
            },
        )
        .await?;
    let secret = ep.secrets[0].secret.clone();
    Ok(show(
        state,
        owner,
        csrf,
        StatusCode::CREATED,
        Some((&ep.url, &secret)),
    )
    .await)
}

/// Resend (the caller checked the form's CSRF token): the delivery goes
/// again now, then back to the page.
pub(crate) async fn resend(
    state: &AppState,
    owner: &Owner<'_>,
    (endpoint, delivery): (String, String),
) -> Result<Response, ApiError> {
    state
        .events
        .resend(owner.workspace_id, owner.product, &endpoint, &delivery)
        .await?;
    Ok(see_other(&format!("{}/webhooks", owner.base), &[]))
}

super::carries_csrf!(NewEndpointForm);
