//! The portal's pages: `/portal/login`, `/portal/dashboard`,
//! `/portal/logout`, and `/portal/sso/{subscription}` (Access Platform:
//! a one-use token, and off to the platform with it).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
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

#[derive(Deserialize)]
pub(crate) struct TrialForm {
    plan: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Starts a trial of a plan from the dashboard; the platform's first API
/// key is shown once.
pub(crate) async fn start_trial(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<TrialForm>,
) -> Response {
    let Some((client, token)) = signed_in(&state, &headers).await else {
        return see_other("/portal/login", &[]);
    };
    if !csrf_ok(f.csrf.as_deref(), &csrf_token(&token)) {
        return forbidden_form();
    }
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
                "{} {} ({}-day trial, then {} a month)",
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
                total: rupees(i.total_paise),
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
        Ok((sso_token, platform)) => {
            let base = state.sso_urls.platform(platform);
            see_other(
                &format!("{base}/{}/sso?token={sso_token}", platform.as_str()),
                &[],
            )
        }
        Err(e) => page(
            StatusCode::NOT_FOUND,
            rackwave_web::refused(
                "Rackwave",
                "No access",
                &e.to_string(),
                ("/portal/dashboard", "Back to the dashboard"),
            ),
        ),
    }
}
