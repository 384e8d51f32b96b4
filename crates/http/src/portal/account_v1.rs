//! A client's account: `POST /portal/v1/signup`, `/login`, `/logout` and
//! `GET /portal/v1/me`.
//!
//! A login answers with the session token once, as JSON (for API use as a
//! bearer token) and as the session cookie (for the portal's pages). A
//! failed login waits longer each time and then locks the address out for
//! a while, as SMTP AUTH does; whether the email exists is never said.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rackwave_billing::clients::Profile;
use rackwave_billing::clients::{csrf_token, SESSION_TTL_MS};
use rackwave_billing::{state_name, BillingError, LoginRefused, NewClient};
use rackwave_core::rfc3339;
use rackwave_store::Client;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{PortalClient, SESSION_COOKIE};
use crate::error::ErrorBody;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUp {
    pub(crate) email: String,
    /// 10 characters or more.
    pub(crate) password: String,
    #[serde(flatten)]
    pub(crate) profile: ProfileChange,
}

/// A client's billing profile, as sign-up and `PUT /portal/v1/me` take it.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ProfileChange {
    pub(crate) name: String,
    pub(crate) company: Option<String>,
    /// The billing address.
    pub(crate) address: String,
    /// GST state code of the billing address (`27`): the place of supply.
    pub(crate) state_code: String,
    /// When registered for GST: checked (format, state, check character).
    pub(crate) gstin: Option<String>,
}

impl From<ProfileChange> for Profile {
    fn from(p: ProfileChange) -> Profile {
        Profile {
            name: p.name,
            company: p.company,
            address: p.address,
            state_code: p.state_code,
            gstin: p.gstin,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogIn {
    pub(crate) email: String,
    pub(crate) password: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClientView {
    /// `cus_…`
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) company: Option<String>,
    pub(crate) address: String,
    pub(crate) state_code: String,
    /// The state's name: the place of supply on invoices.
    pub(crate) state: String,
    pub(crate) gstin: Option<String>,
    pub(crate) created_at: String,
    /// Paise to the client's credit: the next invoice uses it first.
    pub(crate) credit_paise: i64,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> ClientView {
        ClientView {
            state: state_name(&c.state_code).unwrap_or("").to_string(),
            id: c.id,
            email: c.email,
            name: c.name,
            company: c.company,
            address: c.address,
            state_code: c.state_code,
            gstin: c.gstin,
            created_at: rfc3339(c.created_at_ms),
            credit_paise: c.credit_paise,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Session {
    /// The session token (also set as the `rw_portal` cookie): send it as
    /// `Authorization: Bearer …` for API use. Shown once.
    pub(crate) token: String,
    /// With the cookie instead of the bearer token, every change (POST,
    /// PUT, PATCH, DELETE) carries this in `X-CSRF-Token`.
    pub(crate) csrf_token: String,
    pub(crate) expires_at: String,
    pub(crate) client: ClientView,
}

/// The answer that opens a session: its token (and CSRF token) in the
/// body, the same token in the session cookie.
pub(crate) fn session(state: &AppState, client: Client, token: String) -> Response {
    let max_age = SESSION_TTL_MS / 1000;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/portal; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    );
    let body = Session {
        expires_at: rfc3339(state.clock.now_ms() + SESSION_TTL_MS),
        csrf_token: csrf_token(&token),
        token,
        client: client.into(),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a token is ASCII"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A portal error as an answer: a bad field is `422` naming it.
pub(crate) fn refused(e: BillingError) -> ApiError {
    match e {
        BillingError::Invalid { field, message } => ApiError::unprocessable(field, message),
        other => other.into(),
    }
}

/// Signs a client up (then log in).
#[utoipa::path(post, operation_id = "portal_signup", path = "/portal/v1/signup", tag = "portal",
    request_body = SignUp,
    responses((status = 201, body = ClientView), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(crate) async fn signup(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignUp>,
) -> Result<(StatusCode, Json<ClientView>), ApiError> {
    let client = state
        .clients
        .sign_up(NewClient {
            email: req.email,
            password: req.password,
            profile: req.profile.into(),
        })
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(client.into())))
}

/// Logs a client in: a session token and cookie.
#[utoipa::path(post, operation_id = "portal_login", path = "/portal/v1/login", tag = "portal",
    request_body = LogIn,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LogIn>,
) -> Result<Response, ApiError> {
    match state
        .clients
        .log_in(&req.email, &req.password, peer.ip())
        .await
    {
        Ok((client, token)) => Ok(session(&state, client, token)),
        Err(refused_login) => Err(login_refused(refused_login, peer).await),
    }
}

/// A refused login (or password check) as an answer: wrong credentials
/// wait the guard's delay (real time on purpose: it slows the guesser)
/// and are `401`, a locked-out address `429`.
pub(crate) async fn login_refused(e: LoginRefused, peer: SocketAddr) -> ApiError {
    match e {
        LoginRefused::Credentials { delay } => {
            tracing::info!(peer = %peer.ip(), "portal login failed");
            tokio::time::sleep(delay).await;
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong email or password",
            )
        }
        LoginRefused::LockedOut => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked_out",
            "too many failed logins from this address; try again later",
        ),
        LoginRefused::Failed(e) => refused(e),
    }
}

/// Ends the session (the token no longer works; the cookie is cleared).
#[utoipa::path(post, operation_id = "portal_logout", path = "/portal/v1/logout", tag = "portal",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    who: PortalClient,
) -> Result<Response, ApiError> {
    state.clients.log_out(&who.token).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}=; Path=/portal; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        ))
        .expect("ASCII"),
    );
    Ok(resp)
}

/// The client logged in.
#[utoipa::path(get, operation_id = "portal_me", path = "/portal/v1/me", tag = "portal",
    responses((status = 200, body = ClientView), (status = 401, body = ErrorBody)))]
pub(crate) async fn me(who: PortalClient) -> Json<ClientView> {
    Json(who.client.into())
}

/// Replaces the client's billing profile (invoices already issued keep
/// the one they were made out to).
#[utoipa::path(put, operation_id = "portal_me_update", path = "/portal/v1/me", tag = "portal",
    request_body = ProfileChange,
    responses((status = 200, body = ClientView), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    who: PortalClient,
    ApiJson(req): ApiJson<ProfileChange>,
) -> Result<Json<ClientView>, ApiError> {
    let client = state
        .clients
        .update_profile(&who.client.id, req.into())
        .await
        .map_err(refused)?;
    Ok(Json(client.into()))
}
