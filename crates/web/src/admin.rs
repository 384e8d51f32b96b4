//! The operator's pages: log in with the admin token, then one overview
//! of the queue (destinations, paused ones with Resume), clients,
//! subscriptions and invoices.

use maud::{html, Markup};

use crate::{action_button, csrf_field, layout, NavLink};

const BRAND: &str = "Rackwave operator";

fn nav() -> [NavLink<'static>; 1] {
    [NavLink {
        href: "/admin/",
        label: "Overview",
    }]
}

/// The operator's login: the admin token.
pub fn login(error: Option<&str>, csrf: &str) -> Markup {
    layout(
        "Operator login",
        BRAND,
        &nav(),
        html! {
            h1 { "Operator login" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form.stack method="post" action="/admin/login" {
                (csrf_field(csrf))
                label for="token" { "Admin token" input id="token" name="token" type="password" autocomplete="off" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// A delivery destination (a recipient domain) of the queue.
pub struct DestinationRow {
    pub domain: String,
    pub waiting: usize,
    pub connections: usize,
    /// When paused: until when, and why.
    pub paused: Option<(String, String)>,
}

pub struct Overview {
    pub csrf: String,
    /// queued, deferred, delivered, bounced.
    pub counts: [(&'static str, u64); 4],
    pub destinations: Vec<DestinationRow>,
    /// (id, email, name)
    pub clients: Vec<(String, String, String)>,
    /// (id, client, platform, plan, status)
    pub subscriptions: Vec<[String; 5]>,
    /// (number, client, total, status)
    pub invoices: Vec<[String; 4]>,
}

fn table<const N: usize>(id: &str, heads: [&str; N], rows: &[[String; N]]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "None." }
        } @else {
            table aria-labelledby=(id) {
                thead { tr { @for h in heads { th { (h) } } } }
                tbody { @for r in rows { tr { @for c in r { td { (c) } } } } }
            }
        }
    }
}

/// Everything an operator looks at first.
pub fn overview(o: &Overview) -> Markup {
    let clients: Vec<[String; 3]> = o
        .clients
        .iter()
        .map(|(a, b, c)| [a.clone(), b.clone(), c.clone()])
        .collect();
    layout(
        "Overview",
        BRAND,
        &nav(),
        html! {
            h1 { "Operator overview" }
            (action_button("/admin/logout", &o.csrf, "Log out", "Log out"))
            h2 id="queue" { "Queue" }
            section.cards aria-labelledby="queue" {
                @for (name, n) in &o.counts {
                    div.card { strong { (n) } span class={ "status " (name) } { (name) } }
                }
            }
            h2 id="destinations" { "Destinations" }
            @if o.destinations.is_empty() {
                p { "No destination has mail waiting." }
            } @else {
                table aria-labelledby="destinations" {
                    thead { tr { th { "Domain" } th { "Waiting" } th { "Connections" } th { "Paused" } th { span.muted { "Resume" } } } }
                    tbody {
                        @for d in &o.destinations {
                            tr {
                                td { (d.domain) } td { (d.waiting) } td { (d.connections) }
                                td { @if let Some((until, why)) = &d.paused { "until " (until) ": " (why) } @else { "no" } }
                                td {
                                    @if d.paused.is_some() {
                                        (action_button(&format!("/admin/destinations/{}/resume", d.domain), &o.csrf, "Resume", &format!("Resume {}", d.domain)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 id="clients" { "Clients" }
            (table("clients", ["Id", "Email", "Name"], &clients))
            h2 id="subscriptions" { "Subscriptions" }
            (table("subscriptions", ["Id", "Client", "Platform", "Plan", "Status"], &o.subscriptions))
            h2 id="invoices" { "Invoices" }
            (table("invoices", ["Number", "Client", "Total", "Status"], &o.invoices))
        },
    )
}
