//! The portal's pages: sign up, log in and out, password reset, the
//! dashboard (subscriptions with trial, plan change, cancel and Access
//! Platform; invoices), contacts and lifecycle webhooks, and
//! `/portal/sso/{subscription}` (Access Platform: a one-use token, and
//! off to the platform with it).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use rackwave_billing::clients::{csrf_token, SESSION_TTL_MS};
use rackwave_billing::LoginRefused;
use rackwave_core::{money::rupees, rfc3339, Platform};
use rackwave_store::Client;
use serde::Deserialize;

use super::{anonymous_csrf_ok, anonymous_form, cookie, csrf_ok, page, scoped_cookie, see_other};
use crate::portal::SESSION_COOKIE;
use crate::AppState;

/// The signed-in client and their session token, from the cookie.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<(Client, String)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let client = state.clients.session(&token).await.ok()??;
    Some((client, token))
}

/// The login form (a signed-in client goes to the dashboard).
pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if signed_in(&state, &headers).await.is_some() {
        return see_other("/portal/dashboard", &[]);
    }
    login_page(StatusCode::OK, None, "")
}

fn login_page(status: StatusCode, error: Option<&str>, email: &str) -> Response {
    anonymous_form(status, "/portal", |csrf| {
        rackwave_web::portal::login(error, csrf, email)
    })
}

/// The sign-up form.
pub(crate) async fn signup_form() -> Response {
    anonymous_form(StatusCode::OK, "/portal", |csrf| {
        rackwave_web::portal::signup(None, csrf, &Default::default())
    })
}

#[derive(Deserialize)]
pub(crate) struct SignUpForm {
    email: String,
    password: String,
    name: String,
    #[serde(default)]
    company: String,
    address: String,
    state_code: String,
    #[serde(default)]
    gstin: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Signs up from the form, logs in and goes to the dashboard.
pub(crate) async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignUpForm>,
) -> Response {
    let values = rackwave_web::portal::SignUpValues {
        email: f.email.clone(),
        name: f.name.clone(),
        company: f.company.clone(),
        address: f.address.clone(),
        state_code: f.state_code.clone(),
        gstin: f.gstin.clone(),
    };
    let again = |status, error: &str| {
        anonymous_form(status, "/portal", |csrf| {
            rackwave_web::portal::signup(Some(error), csrf, &values)
        })
    };
    if !anonymous_csrf_ok(&headers, f.csrf.as_deref()) {
        return again(
            StatusCode::FORBIDDEN,
            "This form expired or did not come from this site: please send it again.",
        );
    }
    let optional = |v: String| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let new = rackwave_billing::NewClient {
        email: f.email.clone(),
        password: f.password.clone(),
        profile: rackwave_billing::clients::Profile {
            name: f.name,
            company: optional(f.company),
            address: f.address,
            state_code: f.state_code,
            gstin: optional(f.gstin),
        },
    };
    if let Err(e) = state.clients.sign_up(new).await {
        return again(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
    }
    match state.clients.log_in(&f.email, &f.password, peer.ip()).await {
        Ok((_, token)) => see_other(
            "/portal/dashboard",
            &[scoped_cookie(
                SESSION_COOKIE,
                &token,
                "/portal",
                SESSION_TTL_MS / 1000,
            )],
        ),
        Err(_) => see_other("/portal/login", &[]),
    }
}

/// A form of one plan: a trial's start, a plan change.
#[derive(Deserialize)]
pub(crate) struct PlanForm {
    plan: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Starts a trial of a plan from the dashboard; the platform's first API
/// key is shown once.
pub(crate) async fn start_trial(
    State(state): State<AppState>,
    ClientForm {
        client, form: f, ..
    }: ClientForm<PlanForm>,
) -> Response {
    let Some(plan) = state
        .billing
        .config()
        .plans
        .iter()
        .find(|p| p.id == f.plan)
        .cloned()
    else {
        return see_other("/portal/dashboard", &[]);
    };
    match state
        .billing
        .start(&client, &plan.platform, &plan.id, true)
        .await
    {
        Ok(started) => {
            let name =
                Platform::parse(&plan.platform).map_or(plan.platform.clone(), |p| p.name().into());
            page(
                StatusCode::CREATED,
                rackwave_web::portal::trial_started(&name, started.api_key.as_deref()),
            )
        }
        Err(e) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            rackwave_web::refused(
                "Rackwave",
                "The trial cannot start",
                &e.to_string(),
                ("/portal/dashboard", "Back to the dashboard"),
            ),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    email: String,
    password: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Logs in from the form: the session cookie, and the dashboard.
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !anonymous_csrf_ok(&headers, form.csrf.as_deref()) {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("This form expired or did not come from this site: please log in again."),
            &form.email,
        );
    }
    match state
        .clients
        .log_in(&form.email, &form.password, peer.ip())
        .await
    {
        Ok((_, token)) => see_other(
            "/portal/dashboard",
            &[scoped_cookie(
                SESSION_COOKIE,
                &token,
                "/portal",
                SESSION_TTL_MS / 1000,
            )],
        ),
        Err(LoginRefused::Credentials { delay }) => {
            tokio::time::sleep(delay).await;
            login_page(
                StatusCode::UNAUTHORIZED,
                Some("Wrong email or password."),
                &form.email,
            )
        }
        Err(LoginRefused::LockedOut) => login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins from this address; try again later."),
            &form.email,
        ),
        Err(LoginRefused::Failed(e)) => {
            tracing::warn!(error = %e, "portal login failed");
            login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Logging in failed for now; try again."),
                &form.email,
            )
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Logs out: the session ends, its cookie goes.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some((_, token)) = signed_in(&state, &headers).await {
        if !csrf_ok(form.csrf.as_deref(), &csrf_token(&token)) {
            return forbidden_form();
        }
        let _ = state.clients.log_out(&token).await;
    }
    see_other(
        "/portal/login",
        &[scoped_cookie(SESSION_COOKIE, "", "/portal", 0)],
    )
}

fn forbidden_form() -> Response {
    page(
        StatusCode::FORBIDDEN,
        rackwave_web::refused(
            "Rackwave",
            "This form cannot be accepted",
            "It expired or did not come from this site (its CSRF token is missing or wrong). Nothing was changed.",
            ("/portal/dashboard", "Back to the dashboard"),
        ),
    )
}

fn status_name<T: serde::Serialize>(s: &T) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The client's subscriptions and invoices.
pub(crate) async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((client, token)) = signed_in(&state, &headers).await else {
        return see_other("/portal/login", &[]);
    };
    let (subs, invoices) = match (
        state.store.subscriptions_of(&client.id).await,
        state.store.invoices_of(&client.id).await,
    ) {
        (Ok(s), Ok(i)) => (s, i),
        _ => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                rackwave_web::refused(
                    "Rackwave",
                    "Try again",
                    "The dashboard cannot be read for now.",
                    ("/portal/dashboard", "Reload"),
                ),
            )
        }
    };
    let plans = &state.billing.config().plans;
    // A trial per platform, ever: offered where the client never had one.
    let trials = plans
        .iter()
        .filter(|p| p.trial_days > 0 && !subs.iter().any(|s| s.platform == p.platform))
        .map(|p| rackwave_web::portal::PlanOption {
            id: p.id.clone(),
            label: format!(
                "{} {} ({}-day trial, then ₹{} a month)",
                Platform::parse(&p.platform).map_or(p.platform.as_str(), |x| x.name()),
                p.name,
                p.trial_days,
                rupees(p.price_paise)
            ),
        })
        .collect();
    let view = rackwave_web::portal::Dashboard {
        trials,
        name: client.name.clone(),
        email: client.email.clone(),
        csrf: csrf_token(&token),
        subscriptions: subs
            .into_iter()
            .map(|s| {
                let status = status_name(&s.status);
                rackwave_web::portal::SubscriptionRow {
                    platform: Platform::parse(&s.platform)
                        .map_or(s.platform.clone(), |p| p.name().to_string()),
                    plan: plans
                        .iter()
                        .find(|p| p.id == s.plan_id)
                        .map_or(s.plan_id.clone(), |p| p.name.clone()),
                    can_access: matches!(status.as_str(), "trial" | "active" | "suspended"),
                    // Suspended and cancelled subscriptions keep their plan.
                    plans: if matches!(status.as_str(), "trial" | "active" | "pending") {
                        plans
                            .iter()
                            .filter(|p| p.platform == s.platform && p.id != s.plan_id)
                            .map(|p| rackwave_web::portal::PlanOption {
                                id: p.id.clone(),
                                label: format!("{} (₹{} a month)", p.name, rupees(p.price_paise)),
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                    can_cancel: status != "cancelled",
                    status,
                    period_end: rfc3339(s.period_end_ms),
                    id: s.id,
                }
            })
            .collect(),
        invoices: invoices
            .into_iter()
            .map(|i| rackwave_web::portal::InvoiceRow {
                html_href: format!("/portal/v1/invoices/{}.html", i.id),
                pdf_href: format!("/portal/v1/invoices/{}.pdf", i.id),
                number: i.number,
                issued: rfc3339(i.issued_at_ms),
                total: format!("₹{}", rupees(i.total_paise)),
                gst: format!("₹{}", rupees(i.cgst_paise + i.sgst_paise + i.igst_paise)),
                status: status_name(&i.status),
            })
            .collect(),
    };
    page(StatusCode::OK, rackwave_web::portal::dashboard(&view))
}

/// Access Platform: a one-use sign-on token for the subscription's
/// workspace, and a redirect to the platform carrying it.
pub(crate) async fn access_platform(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(subscription_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some((client, token)) = signed_in(&state, &headers).await else {
        return see_other("/portal/login", &[]);
    };
    if !csrf_ok(form.csrf.as_deref(), &csrf_token(&token)) {
        state
            .sso
            .audit(
                "sso.csrf",
                "Access Platform without its CSRF token",
                Some(client.id),
            )
            .await;
        return forbidden_form();
    }
    match state.sso.issue(&client.id, &subscription_id).await {
        Ok((sso_token, platform)) => see_other(&state.sso_urls.landing(platform, &sso_token), &[]),
        Err(e) => {
            let e = crate::ApiError::from(e);
            page(
                e.status,
                rackwave_web::refused(
                    "Rackwave",
                    "No access",
                    &e.message,
                    ("/portal/dashboard", "Back to the dashboard"),
                ),
            )
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ResetLink {
    token: Option<String>,
}

/// Forgot-password: the email form, or (from the emailed link, with its
/// token) the new password form.
pub(crate) async fn reset_form(Query(q): Query<ResetLink>) -> Response {
    match q.token.filter(|t| !t.is_empty() && t.len() <= 128) {
        Some(token) => anonymous_form(StatusCode::OK, "/portal", |csrf| {
            rackwave_web::portal::reset_password(csrf, &token, None)
        }),
        None => anonymous_form(StatusCode::OK, "/portal", |csrf| {
            rackwave_web::portal::reset_request(csrf, None, false)
        }),
    }
}

/// A form of one address: a reset link's request, a contact's removal.
#[derive(Deserialize)]
pub(crate) struct EmailForm {
    email: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Asks for a reset link. The link is queued in the background, so an
/// address with an account and one without answer alike, as fast.
pub(crate) async fn request_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> Response {
    if !anonymous_csrf_ok(&headers, f.csrf.as_deref()) {
        return anonymous_form(StatusCode::FORBIDDEN, "/portal", |csrf| {
            rackwave_web::portal::reset_request(
                csrf,
                Some("This form expired or did not come from this site: please send it again."),
                false,
            )
        });
    }
    let clients = state.clients.clone();
    tokio::spawn(async move {
        if let Err(e) = clients.request_reset(&f.email).await {
            tracing::warn!(error = %e, "password reset not queued");
        }
    });
    anonymous_form(StatusCode::ACCEPTED, "/portal", |csrf| {
        rackwave_web::portal::reset_request(csrf, None, true)
    })
}

#[derive(Deserialize)]
pub(crate) struct NewPasswordForm {
    token: String,
    password: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Sets the new password with the link's token (once): every session of
/// the account ends, and this browser is logged in.
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<NewPasswordForm>,
) -> Response {
    let again = |status, error: &str| {
        anonymous_form(status, "/portal", |csrf| {
            rackwave_web::portal::reset_password(csrf, &f.token, Some(error))
        })
    };
    if !anonymous_csrf_ok(&headers, f.csrf.as_deref()) {
        return again(
            StatusCode::FORBIDDEN,
            "This form expired or did not come from this site: please send it again.",
        );
    }
    match state.clients.reset_password(&f.token, &f.password).await {
        Ok(token) => see_other(
            "/portal/dashboard",
            &[scoped_cookie(
                SESSION_COOKIE,
                &token,
                "/portal",
                SESSION_TTL_MS / 1000,
            )],
        ),
        Err(e) => again(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

/// A form posted by the signed-in client, its CSRF token checked: else
/// the handler never runs (not signed in: to the login page; a wrong or
/// missing token: the refusal, nothing changed).
pub(crate) struct ClientForm<F> {
    pub(crate) client: Client,
    /// The session's CSRF token, for a page shown again.
    pub(crate) csrf: String,
    pub(crate) form: F,
}

impl<F> axum::extract::FromRequest<AppState> for ClientForm<F>
where
    F: serde::de::DeserializeOwned + super::CarriesCsrf + Send + 'static,
{
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Response> {
        use axum::response::IntoResponse;
        let Some((client, token)) = signed_in(state, request.headers()).await else {
            return Err(see_other("/portal/login", &[]));
        };
        let Form(form) = Form::<F>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let csrf = csrf_token(&token);
        if !csrf_ok(form.csrf(), &csrf) {
            return Err(forbidden_form());
        }
        Ok(ClientForm { client, csrf, form })
    }
}

/// What the portal refuses to do, and back to the dashboard.
fn cannot(status: StatusCode, message: &str) -> Response {
    page(
        status,
        rackwave_web::refused(
            "Rackwave",
            "This cannot be done",
            message,
            ("/portal/dashboard", "Back to the dashboard"),
        ),
    )
}

/// Changes a subscription's plan: a dearer one at once (with a prorated
/// invoice for the rest of a paid period), a cheaper one at the period's
/// end.
pub(crate) async fn change_plan(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ClientForm {
        client, form: f, ..
    }: ClientForm<PlanForm>,
) -> Response {
    match state.billing.change_plan(&client.id, &id, &f.plan).await {
        Ok(_) => see_other("/portal/dashboard", &[]),
        Err(e) => {
            let e = crate::ApiError::from(e);
            cannot(e.status, &e.message)
        }
    }
}

/// Asks before cancelling.
pub(crate) async fn cancel_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((client, token)) = signed_in(&state, &headers).await else {
        return see_other("/portal/login", &[]);
    };
    match state.billing.get(&client.id, &id).await {
        Ok(Some(s)) => {
            let what = format!(
                "{} {}",
                Platform::parse(&s.platform).map_or(s.platform.as_str(), |p| p.name()),
                state.billing.plan_name(&s.plan_id)
            );
            page(
                StatusCode::OK,
                rackwave_web::portal::cancel(&csrf_token(&token), &s.id, &what),
            )
        }
        _ => cannot(StatusCode::NOT_FOUND, &format!("No subscription {id}.")),
    }
}

/// Cancels a subscription, at once.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ClientForm { client, .. }: ClientForm<CsrfForm>,
) -> Response {
    match state.billing.cancel(Some(&client.id), &id).await {
        Ok(_) => see_other("/portal/dashboard", &[]),
        Err(e) => {
            let e = crate::ApiError::from(e);
            cannot(e.status, &e.message)
        }
    }
}

fn contacts_page(status: StatusCode, client: &Client, csrf: &str, error: Option<&str>) -> Response {
    let rows: Vec<_> = client
        .contacts
        .iter()
        .map(|c| rackwave_web::portal::ContactRow {
            email: c.email.clone(),
            name: c.name.clone(),
            billing: c.billing,
            technical: c.technical,
        })
        .collect();
    page(status, rackwave_web::portal::contacts(csrf, &rows, error))
}

/// The client's contacts.
pub(crate) async fn contacts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Some((client, token)) => contacts_page(StatusCode::OK, &client, &csrf_token(&token), None),
        None => see_other("/portal/login", &[]),
    }
}

#[derive(Deserialize)]
pub(crate) struct ContactForm {
    email: String,
    #[serde(default)]
    name: String,
    /// A checked box sends `on`; an unchecked one nothing.
    billing: Option<String>,
    technical: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Replaces the contacts with `contacts`: back to the page, or the page
/// again saying why not.
async fn set_contacts(
    state: &AppState,
    csrf: &str,
    client: &Client,
    contacts: Vec<rackwave_store::Contact>,
) -> Response {
    match state.clients.set_contacts(&client.id, contacts).await {
        Ok(_) => see_other("/portal/contacts", &[]),
        Err(e) => contacts_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            client,
            csrf,
            Some(&e.to_string()),
        ),
    }
}

/// Adds a contact.
pub(crate) async fn add_contact(
    State(state): State<AppState>,
    ClientForm {
        client,
        csrf,
        form: f,
    }: ClientForm<ContactForm>,
) -> Response {
    let mut contacts = client.contacts.clone();
    contacts.push(rackwave_store::Contact {
        email: f.email,
        name: f.name,
        billing: f.billing.is_some(),
        technical: f.technical.is_some(),
    });
    set_contacts(&state, &csrf, &client, contacts).await
}

/// Removes a contact.
pub(crate) async fn remove_contact(
    State(state): State<AppState>,
    ClientForm {
        client,
        csrf,
        form: f,
    }: ClientForm<EmailForm>,
) -> Response {
    let contacts = client
        .contacts
        .iter()
        .filter(|c| !c.email.eq_ignore_ascii_case(f.email.trim()))
        .cloned()
        .collect();
    set_contacts(&state, &csrf, &client, contacts).await
}

/// The client's lifecycle webhooks are owned by the client itself.
fn webhook_owner(client_id: &str) -> super::webhooks::Owner<'_> {
    super::webhooks::Owner {
        workspace_id: client_id,
        product: rackwave_core::Product::Rackwave,
        brand: "Rackwave",
        nav: rackwave_web::portal::nav(true),
        base: "/portal",
    }
}

/// The client's lifecycle webhooks with their deliveries.
pub(crate) async fn webhooks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((client, token)) = signed_in(&state, &headers).await else {
        return see_other("/portal/login", &[]);
    };
    super::webhooks::show(
        &state,
        &webhook_owner(&client.id),
        &csrf_token(&token),
        StatusCode::OK,
        None,
    )
    .await
}

/// Adds a lifecycle webhook endpoint: its secret shown once.
pub(crate) async fn add_webhook(
    State(state): State<AppState>,
    ClientForm {
        client,
        csrf,
        form: f,
    }: ClientForm<super::webhooks::NewEndpointForm>,
) -> Response {
    match super::webhooks::add(&state, &webhook_owner(&client.id), &csrf, f).await {
        Ok(r) => r,
        Err(e) => cannot(e.status, &e.message),
    }
}

/// Resends a lifecycle webhook delivery.
pub(crate) async fn resend(
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ClientForm { client, .. }: ClientForm<CsrfForm>,
) -> Response {
    match super::webhooks::resend(&state, &webhook_owner(&client.id), ids).await {
        Ok(r) => r,
        Err(e) => cannot(e.status, &e.message),
    }
}

super::carries_csrf!(PlanForm, CsrfForm, ContactForm, EmailForm);
