//! The portal's pages: log in, and the dashboard of a client's
//! subscriptions (each live one with its Access Platform button) and
//! invoices.

use maud::{html, Markup};

use crate::{csrf_field, layout, NavLink};

const BRAND: &str = "Rackwave";

fn nav() -> [NavLink<'static>; 3] {
    [
        NavLink {
            href: "/portal/dashboard",
            label: "Dashboard",
        },
        NavLink {
            href: "/portal/login",
            label: "Log in",
        },
        NavLink {
            href: "/portal/signup",
            label: "Sign up",
        },
    ]
}

/// What a sign-up form was filled with (shown again after a refusal).
#[derive(Default)]
pub struct SignUpValues {
    pub email: String,
    pub name: String,
    pub company: String,
    pub address: String,
    pub state_code: String,
    pub gstin: String,
}

/// The sign-up form; `error` names what to fix.
pub fn signup(error: Option<&str>, csrf: &str, v: &SignUpValues) -> Markup {
    layout(
        "Sign up",
        BRAND,
        &nav(),
        html! {
            h1 { "Create your Rackwave account" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form.stack method="post" action="/portal/signup" {
                (csrf_field(csrf))
                label for="email" { "Email" input id="email" name="email" type="email" autocomplete="email" required value=(v.email); }
                label for="password" { "Password (at least 12 characters)" input id="password" name="password" type="password" autocomplete="new-password" minlength="12" required; }
                label for="name" { "Name" input id="name" name="name" autocomplete="name" required value=(v.name); }
                label for="company" { "Company (optional)" input id="company" name="company" autocomplete="organization" value=(v.company); }
                label for="address" { "Billing address" input id="address" name="address" autocomplete="street-address" required value=(v.address); }
                label for="state_code" { "GST state code (two digits, e.g. 29 for Karnataka)" input id="state_code" name="state_code" inputmode="numeric" pattern="[0-9]{2}" required value=(v.state_code); }
                label for="gstin" { "GSTIN (optional, when registered)" input id="gstin" name="gstin" value=(v.gstin); }
                button type="submit" { "Sign up" }
            }
        },
    )
}

/// A plan a trial can be started on.
pub struct PlanOption {
    pub id: String,
    /// `MigoSMTP Starter (14-day trial)`
    pub label: String,
}

/// After a trial starts: the platform's first API key, shown once.
pub fn trial_started(platform: &str, api_key: Option<&str>) -> Markup {
    layout(
        "Trial started",
        BRAND,
        &nav(),
        html! {
            h1 { "Your " (platform) " trial has started" }
            @if let Some(key) = api_key {
                p { "Your " (platform) " API key, shown this once: keep it somewhere safe." }
                p { code { (key) } }
            }
            p { a href="/portal/dashboard" { "Back to the dashboard" } }
        },
    )
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
    /// Plans with a trial the client can still start.
    pub trials: Vec<PlanOption>,
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
            (crate::action_button("/portal/logout", &d.csrf, "Log out", "Log out"))
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
                                        (crate::action_button(&format!("/portal/sso/{}", s.id), &d.csrf, "Access Platform", &format!("Access {}", s.platform)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !d.trials.is_empty() {
                h2 id="trial" { "Start a free trial" }
                form.stack method="post" action="/portal/subscriptions" {
                    (csrf_field(&d.csrf))
                    label for="plan" { "Plan"
                        select id="plan" name="plan" {
                            @for p in &d.trials { option value=(p.id) { (p.label) } }
                        }
                    }
                    button type="submit" { "Start the trial" }
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
