//! The operator's pages under `/admin/` (the API stays under
//! `/admin/v1`): a login with the admin token (compared in constant time,
//! as the API's), a session of its own (`rw_admin` on `/admin`), and the
//! overview with its Resume buttons.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use rackwave_accounts::token_digest;
use rackwave_billing::clients::csrf_token;
use rackwave_core::money::rupees;
use rackwave_store::PlatformSession;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{anonymous_csrf_ok, anonymous_form, cookie, csrf_ok, page, scoped_cookie, see_other};
use crate::AppState;

const COOKIE: &str = "rw_admin";
/// What an operator's session is recorded as (beside the platforms').
const KIND: &str = "admin";
const TTL_MS: i64 = 8 * 3600 * 1000;

/// The operator's session token, while it lasts.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let token = cookie(headers, COOKIE).filter(|t| t.starts_with("rwop_") && t.len() <= 128)?;
    let s = state
        .store
        .platform_session(&token_digest(&token))
        .await
        .ok()??;
    (s.platform == KIND && s.expires_at_ms > state.clock.now_ms()).then_some(token)
}

pub(crate) async fn login_form() -> Response {
    anonymous_form(StatusCode::OK, "/admin", |csrf| {
        rackwave_web::admin::login(None, csrf)
    })
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Logs the operator in with the admin token.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let again = |status, error: &str| {
        anonymous_form(status, "/admin", |csrf| {
            rackwave_web::admin::login(Some(error), csrf)
        })
    };
    if !anonymous_csrf_ok(&headers, f.csrf.as_deref()) {
        return again(
            StatusCode::FORBIDDEN,
            "This form expired: please log in again.",
        );
    }
    let digest: [u8; 32] = Sha256::digest(f.token.as_bytes()).into();
    if !bool::from(digest.ct_eq(&*state.admin_token_digest)) {
        tracing::warn!("an operator login with a wrong admin token");
        return again(StatusCode::UNAUTHORIZED, "That is not the admin token.");
    }
    let token = format!("rwop_{}", rackwave_core::random_hex(32));
    let session = PlatformSession {
        digest: token_digest(&token),
        platform: KIND.into(),
        workspace_id: "-".into(),
        client_id: "operator".into(),
        expires_at_ms: state.clock.now_ms() + TTL_MS,
    };
    let stored = async {
        let mut tx = state.store.begin().await?;
        tx.put_platform_session(&session).await?;
        tx.commit().await
    };
    if stored.await.is_err() {
        return again(
            StatusCode::SERVICE_UNAVAILABLE,
            "Logging in failed for now; try again.",
        );
    }
    see_other(
        "/admin/",
        &[scoped_cookie(COOKIE, &token, "/admin", TTL_MS / 1000)],
    )
}

fn status_name<T: serde::Serialize>(s: &T) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The operator's overview.
pub(crate) async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = signed_in(&state, &headers).await else {
        return see_other("/admin/login", &[]);
    };
    let c = state.spool.counts();
    let clients = state
        .store
        .clients(None, 50)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let subscriptions = state
        .store
        .subscriptions(None, 50)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let invoices = state
        .store
        .invoices(None, 50)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let view = rackwave_web::admin::Overview {
        csrf: csrf_token(&token),
        counts: [
            ("queued", c.queued),
            ("deferred", c.deferred),
            ("delivered", c.delivered),
            ("bounced", c.bounced),
        ],
        destinations: state
            .destinations
            .iter()
            .flat_map(|d| d.status())
            .map(|d| rackwave_web::admin::DestinationRow {
                paused: d.paused_until_ms.map(|until| {
                    (
                        rackwave_core::rfc3339(until),
                        d.pause_reason.clone().unwrap_or_default(),
                    )
                }),
                domain: d.domain,
                waiting: d.waiting,
                connections: d.connections,
            })
            .collect(),
        clients: clients
            .into_iter()
            .map(|c| (c.id, c.email, c.name))
            .collect(),
        subscriptions: subscriptions
            .into_iter()
            .map(|s| {
                [
                    s.id,
                    s.client_id,
                    s.platform,
                    s.plan_id,
                    status_name(&s.status),
                ]
            })
            .collect(),
        invoices: invoices
            .into_iter()
            .map(|i| {
                [
                    i.number,
                    i.client_id,
                    format!("₹{}", rupees(i.total_paise)),
                    status_name(&i.status),
                ]
            })
            .collect(),
    };
    page(StatusCode::OK, rackwave_web::admin::overview(&view))
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

fn forbidden() -> Response {
    page(
        StatusCode::FORBIDDEN,
        rackwave_web::refused(
            "Rackwave operator",
            "This form cannot be accepted",
            "It expired or did not come from this site (its CSRF token is missing or wrong). Nothing was changed.",
            ("/admin/", "Back to the overview"),
        ),
    )
}

/// Resume: a paused destination is tried again now.
pub(crate) async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(token) = signed_in(&state, &headers).await else {
        return see_other("/admin/login", &[]);
    };
    if !csrf_ok(f.csrf.as_deref(), &csrf_token(&token)) {
        return forbidden();
    }
    let _ = state.destinations.as_ref().and_then(|d| d.resume(&domain));
    see_other("/admin/", &[])
}

/// Logs the operator out.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(token) = signed_in(&state, &headers).await {
        if !csrf_ok(f.csrf.as_deref(), &csrf_token(&token)) {
            return forbidden();
        }
        if let Ok(mut tx) = state.store.begin().await {
            if tx
                .delete_platform_session(&token_digest(&token))
                .await
                .is_ok()
            {
                let _ = tx.commit().await;
            }
        }
    }
    see_other("/admin/login", &[scoped_cookie(COOKIE, "", "/admin", 0)])
}
