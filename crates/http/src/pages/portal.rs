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

use super::{cookie, csrf_ok, page, scoped_cookie, see_other};
use crate::portal::SESSION_COOKIE;
use crate::AppState;

/// The login form's double-submit cookie (there is no session yet).
const LOGIN_CSRF_COOKIE: &str = "rw_csrf";

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
    let csrf = rackwave_core::random_hex(16);
    let mut resp = page(status, rackwave_web::portal::login(error, &csrf, email));
    let c = format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/portal; HttpOnly; Secure; SameSite=Strict");
    if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
        resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    resp
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
    let want = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !csrf_ok(form.csrf.as_deref(), &want) {
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
    let view = rackwave_web::portal::Dashboard {
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
