//! A platform's webhooks page (MigoSMTP's and Telnxo's alike): each
//! endpoint with its latest deliveries, their attempts, and a Resend
//! button.

use maud::{html, Markup};

use crate::{action_button, layout, NavLink};

/// A delivery as listed.
pub struct DeliveryRow {
    pub id: String,
    pub event_type: String,
    /// `pending`, `retrying`, `succeeded`, `failed`.
    pub state: String,
    pub attempts: usize,
    /// The last attempt: its status code or error.
    pub last: String,
    pub created: String,
    /// Only a retrying or failed delivery can be sent again.
    pub can_resend: bool,
}

pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub enabled: bool,
    pub deliveries: Vec<DeliveryRow>,
}

/// The page; `base` is the part's path (`/migosmtp`, `/portal`),
/// `created` an endpoint just added, with its signing secret (shown once).
pub fn page(
    brand: &str,
    nav: &[NavLink<'_>],
    base: &str,
    csrf: &str,
    endpoints: &[EndpointView],
    created: Option<(&str, &str)>,
) -> Markup {
    layout(
        "Webhooks",
        brand,
        nav,
        html! {
            h1 { "Webhooks" }
            @if let Some((url, secret)) = created {
                div.card role="status" {
                    p { "The signing secret of " code { (url) } ", shown this once: keep it somewhere safe to check the " code { "webhook-signature" } " of each delivery." }
                    p { input readonly value=(secret) aria-label="Signing secret" data-copy; }
                }
            }
            @if endpoints.is_empty() {
                p { "No endpoints yet." }
            }
            @for e in endpoints {
                section aria-labelledby={ "ep-" (e.id) } {
                    h2 id={ "ep-" (e.id) } { code { (e.url) } @if !e.enabled { " " span.muted { "(disabled)" } } }
                    @if e.deliveries.is_empty() {
                        p { "No deliveries yet." }
                    } @else {
                        table {
                            thead { tr { th { "Event" } th { "State" } th { "Attempts" } th { "Last answer" } th { "Created" } th { span.muted { "Resend" } } } }
                            tbody {
                                @for d in &e.deliveries {
                                    tr {
                                        td { (d.event_type) }
                                        td { span class={ "status " (d.state) } { (d.state) } }
                                        td { (d.attempts) }
                                        td { (d.last) }
                                        td { (d.created) }
                                        td {
                                            @if d.can_resend {
                                                (action_button(&format!("{base}/webhooks/{}/deliveries/{}/resend", e.id, d.id), csrf, "Resend", &format!("Resend {} {}", d.event_type, d.id)))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 id="add" { "Add an endpoint" }
            form.stack method="post" action={ (base) "/webhooks" } aria-labelledby="add" {
                (crate::csrf_field(csrf))
                label for="url" { "URL (https)" input id="url" name="url" type="url" required placeholder="https://example.com/hooks/rackwave"; }
                label for="event_types" { "Event types, separated by commas (* for all)" input id="event_types" name="event_types" value="*" required; }
                button type="submit" { "Add the endpoint" }
            }
        },
    )
}
