//! The portal's pages: log in, and the dashboard of a client's
//! subscriptions (each live one with its Access Platform button) and
//! invoices.

use maud::{html, Markup};

use crate::{csrf_field, layout, NavLink};

const BRAND: &str = "Rackwave";

fn nav() -> [NavLink<'static>; 2] {
    [
        NavLink {
            href: "/portal/dashboard",
            label: "Dashboard",
        },
        NavLink {
            href: "/portal/login",
            label: "Log in",
        },
    ]
}

/// The login form; `error` after a refused attempt.
pub fn login(error: Option<&str>, csrf: &str, email: &str) -> Markup {
    layout(
        "Log in",
        BRAND,
        &nav(),
        html! {
            h1 { "Log in to Rackwave" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form.stack method="post" action="/portal/login" {
                (csrf_field(csrf))
                label for="email" { "Email" input id="email" name="email" type="email" autocomplete="username" required value=(email); }
                label for="password" { "Password" input id="password" name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// A subscription as the dashboard lists it.
pub struct SubscriptionRow {
    pub id: String,
    /// `MigoSMTP`, `Telnxo`.
    pub platform: String,
    pub plan: String,
    /// `trial`, `active`, `suspended`, …
    pub status: String,
    /// When the period ends (and the next invoice is made).
    pub period_end: String,
    /// Whether Access Platform is offered.
    pub can_access: bool,
}

/// An invoice as the dashboard lists it.
pub struct InvoiceRow {
    pub number: String,
    pub issued: String,
    /// `₹1,178.82`
    pub total: String,
    pub status: String,
    pub html_href: String,
    pub pdf_href: String,
}

pub struct Dashboard {
    pub name: String,
    pub email: String,
    pub csrf: String,
    pub subscriptions: Vec<SubscriptionRow>,
    pub invoices: Vec<InvoiceRow>,
}

/// The client's dashboard.
pub fn dashboard(d: &Dashboard) -> Markup {
    layout(
        "Dashboard",
        BRAND,
        &nav(),
        html! {
            h1 { "Welcome, " (d.name) }
            p.muted { "Signed in as " (d.email) }
            form.inline method="post" action="/portal/logout" {
                (csrf_field(&d.csrf))
                button type="submit" { "Log out" }
            }
            h2 id="subscriptions" { "Subscriptions" }
            @if d.subscriptions.is_empty() {
                p { "No subscriptions yet." }
            } @else {
                table aria-labelledby="subscriptions" {
                    thead { tr { th { "Platform" } th { "Plan" } th { "Status" } th { "Next invoice" } th { span.muted { "Access" } } } }
                    tbody {
                        @for s in &d.subscriptions {
                            tr {
                                td { (s.platform) }
                                td { (s.plan) }
                                td { span class={ "status " (s.status) } { (s.status) } }
                                td { (s.period_end) }
                                td {
                                    @if s.can_access {
                                        form.inline method="post" action={ "/portal/sso/" (s.id) } {
                                            (csrf_field(&d.csrf))
                                            button type="submit" aria-label={ "Access " (s.platform) } { "Access Platform" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 id="invoices" { "Invoices" }
            @if d.invoices.is_empty() {
                p { "No invoices yet." }
            } @else {
                table aria-labelledby="invoices" {
                    thead { tr { th { "Number" } th { "Issued" } th { "Total" } th { "Status" } th { "Download" } } }
                    tbody {
                        @for i in &d.invoices {
                            tr {
                                td { a href=(i.html_href) { (i.number) } }
                                td { (i.issued) }
                                td { (i.total) }
                                td { span class={ "status " (i.status) } { (i.status) } }
                                td { a href=(i.pdf_href) { "PDF" } }
                            }
                        }
                    }
                }
            }
        },
    )
}
