//! The portal's pages: log in, and the dashboard of a client's
//! subscriptions (each live one with its Access Platform button) and
//! invoices.

use maud::{html, Markup};

use crate::{csrf_field, layout, NavLink};

const BRAND: &str = "Rackwave";

/// The portal's links: a signed-in client's pages, or the way in.
pub fn nav(signed_in: bool) -> &'static [NavLink<'static>] {
    const IN: [NavLink<'static>; 3] = [
        NavLink {
            href: "/portal/dashboard",
            label: "Dashboard",
        },
        NavLink {
            href: "/portal/contacts",
            label: "Contacts",
        },
        NavLink {
            href: "/portal/webhooks",
            label: "Webhooks",
        },
    ];
    const OUT: [NavLink<'static>; 2] = [
        NavLink {
            href: "/portal/login",
            label: "Log in",
        },
        NavLink {
            href: "/portal/signup",
            label: "Sign up",
        },
    ];
    if signed_in {
        &IN
    } else {
        &OUT
    }
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
        nav(false),
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
        nav(true),
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
        nav(false),
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
            p { a href="/portal/reset" { "Forgot your password?" } }
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
    /// The other plans of its platform it can move to (none when its
    /// state keeps its plan).
    pub plans: Vec<PlanOption>,
    /// Whether it can be cancelled.
    pub can_cancel: bool,
}

/// An invoice as the dashboard lists it.
pub struct InvoiceRow {
    pub number: String,
    pub issued: String,
    /// `₹1,178.82`
    pub total: String,
    /// The GST of the total (CGST + SGST, or IGST), `₹179.82`.
    pub gst: String,
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
        nav(true),
        html! {
            h1 { "Welcome, " (d.name) }
            p.muted { "Signed in as " (d.email) }
            (crate::action_button("/portal/logout", &d.csrf, "Log out", "Log out"))
            h2 id="subscriptions" { "Subscriptions" }
            @if d.subscriptions.is_empty() {
                p { "No subscriptions yet." }
            } @else {
                table aria-labelledby="subscriptions" {
                    thead { tr { th { "Platform" } th { "Plan" } th { "Status" } th { "Next invoice" } th { span.muted { "Actions" } } } }
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
                                    @if !s.plans.is_empty() {
                                        form.inline method="post" action={ "/portal/subscriptions/" (s.id) "/plan" } {
                                            (csrf_field(&d.csrf))
                                            label.inline for={ "plan-" (s.id) } { span.muted { "Change plan " }
                                                select id={ "plan-" (s.id) } name="plan" {
                                                    @for p in &s.plans { option value=(p.id) { (p.label) } }
                                                }
                                            }
                                            button type="submit" aria-label={ "Change the plan of " (s.platform) } { "Change" }
                                        }
                                    }
                                    @if s.can_cancel {
                                        " " a href={ "/portal/subscriptions/" (s.id) "/cancel" } aria-label={ "Cancel " (s.platform) } { "Cancel…" }
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
                    thead { tr { th { "Number" } th { "Issued" } th { "Total" } th { "of which GST" } th { "Status" } th { "Download" } } }
                    tbody {
                        @for i in &d.invoices {
                            tr {
                                td { a href=(i.html_href) { (i.number) } }
                                td { (i.issued) }
                                td { (i.total) }
                                td { (i.gst) }
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

/// Forgot-password: the account's email, for a reset link. `sent` after
/// a request (which says the same whether or not the address has an
/// account).
pub fn reset_request(csrf: &str, error: Option<&str>, sent: bool) -> Markup {
    layout(
        "Reset your password",
        BRAND,
        nav(false),
        html! {
            h1 { "Reset your password" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            @if sent {
                p role="status" { "If an account has this address, a link to set a new password is on its way to it. The link works once, for an hour." }
            } @else {
                form.stack method="post" action="/portal/reset" {
                    (csrf_field(csrf))
                    label for="email" { "Your account's email" input id="email" name="email" type="email" autocomplete="email" required; }
                    button type="submit" { "Send me a link" }
                }
            }
            p { a href="/portal/login" { "Back to log in" } }
        },
    )
}

/// The reset link's page: a new password.
pub fn reset_password(csrf: &str, token: &str, error: Option<&str>) -> Markup {
    layout(
        "Choose a new password",
        BRAND,
        nav(false),
        html! {
            h1 { "Choose a new password" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form.stack method="post" action="/portal/reset/password" {
                (csrf_field(csrf))
                input type="hidden" name="token" value=(token);
                label for="password" { "New password (at least 12 characters)" input id="password" name="password" type="password" autocomplete="new-password" minlength="12" required; }
                button type="submit" { "Set the password and log in" }
            }
            p.muted { "Every other session of the account ends." }
        },
    )
}

/// Asks before a subscription is cancelled (it ends at once).
pub fn cancel(csrf: &str, id: &str, what: &str) -> Markup {
    layout(
        "Cancel a subscription",
        BRAND,
        nav(true),
        html! {
            h1 { "Cancel " (what) "?" }
            p { "The service stops at once: its keys and SMTP accounts stop working, queued mail is not sent. A later paid start takes the workspace back." }
            (crate::action_button(&format!("/portal/subscriptions/{id}/cancel"), csrf, "Yes, cancel it", &format!("Cancel {what}")))
            p { a href="/portal/dashboard" { "No, back to the dashboard" } }
        },
    )
}

/// A contact as listed.
pub struct ContactRow {
    pub email: String,
    pub name: String,
    pub billing: bool,
    pub technical: bool,
}

/// Who besides the account receives its notices: the list, a form to
/// add one, and a Remove button each.
pub fn contacts(csrf: &str, contacts: &[ContactRow], error: Option<&str>) -> Markup {
    let yes = |b: bool| if b { "yes" } else { "no" };
    layout(
        "Contacts",
        BRAND,
        nav(true),
        html! {
            h1 { "Contacts" }
            p.muted { "Billing contacts receive invoices, payments and reminders; technical contacts receive activations, suspensions and cancellations." }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            @if contacts.is_empty() {
                p { "No contacts: notices go to the account's own address only." }
            } @else {
                table aria-label="Contacts" {
                    thead { tr { th { "Email" } th { "Name" } th { "Billing" } th { "Technical" } th { span.muted { "Remove" } } } }
                    tbody {
                        @for c in contacts {
                            tr {
                                td { (c.email) } td { (c.name) } td { (yes(c.billing)) } td { (yes(c.technical)) }
                                td {
                                    form.inline method="post" action="/portal/contacts/remove" {
                                        (csrf_field(csrf))
                                        input type="hidden" name="email" value=(c.email);
                                        button type="submit" aria-label={ "Remove " (c.email) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 id="add" { "Add a contact" }
            form.stack method="post" action="/portal/contacts" aria-labelledby="add" {
                (csrf_field(csrf))
                label for="email" { "Email" input id="email" name="email" type="email" required; }
                label for="name" { "Name" input id="name" name="name"; }
                label.check for="billing" { input id="billing" name="billing" type="checkbox" value="on" checked; "Billing notices" }
                label.check for="technical" { input id="technical" name="technical" type="checkbox" value="on"; "Technical notices" }
                button type="submit" { "Add the contact" }
            }
        },
    )
}
