//! A platform's side of single sign-on (`/migosmtp/sso`, `/telnxo/sso`)
//! and its dashboard (`/migosmtp/`, `/telnxo/`).
//!
//! The landing asks the portal, server to server and authenticated by the
//! platform's own secret, whether the token is good (`POST
//! /portal/v1/sso/validate`): the platforms could run on other hosts and
//! trust nothing the browser says. A good token opens the platform's own
//! session and redirects to the dashboard, so the token leaves the
//! address bar (and, used up, works no more from the history).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rackwave_billing::sso::PLATFORM_SESSION_TTL_MS;
use rackwave_billing::SignedOn;
use rackwave_core::{rfc3339, Platform};
use rackwave_store::PlatformSession;
use serde::Deserialize;

use super::{cookie, page, scoped_cookie, see_other};
use crate::AppState;

/// The cookie of a platform's session: its own name and path.
fn session_cookie(platform: Platform) -> String {
    format!("rw_{}", platform.as_str())
}

#[derive(Deserialize)]
pub(crate) struct Landing {
    token: Option<String>,
}

fn refused_page(platform: Platform, status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        rackwave_web::refused(
            platform.name(),
            title,
            message,
            ("/portal/dashboard", "Back to the Rackwave portal"),
        ),
    )
}

/// A sign-in link that does not sign in.
fn link_refused(platform: Platform, status: StatusCode, message: &str) -> Response {
    refused_page(
        platform,
        status,
        "This sign-in link cannot be used",
        message,
    )
}

/// After a form's action: back to `page`, or the refusal.
fn back<T>(platform: Platform, page: &str, done: Result<T, crate::ApiError>) -> Response {
    match done {
        Ok(_) => see_other(page, &[]),
        Err(e) => refused(platform, e.status, &e.message),
    }
}

/// Anything else a platform page refuses.
fn refused(platform: Platform, status: StatusCode, message: &str) -> Response {
    refused_page(platform, status, "This cannot be done", message)
}

pub(crate) async fn migosmtp_sso(state: State<AppState>, q: Query<Landing>) -> Response {
    land(state, q, Platform::Migosmtp).await
}

pub(crate) async fn telnxo_sso(state: State<AppState>, q: Query<Landing>) -> Response {
    land(state, q, Platform::Telnxo).await
}

async fn land(
    State(state): State<AppState>,
    Query(q): Query<Landing>,
    platform: Platform,
) -> Response {
    let Some(token) = q.token.filter(|t| !t.is_empty() && t.len() <= 128) else {
        return link_refused(
            platform,
            StatusCode::BAD_REQUEST,
            "The link has no token. Open the platform from the portal.",
        );
    };
    let who = match validate(&state, platform, &token).await {
        Ok(who) => who,
        Err((status, message)) => return link_refused(platform, status, &message),
    };
    match state.sso.open_platform_session(platform, &who).await {
        Ok(session) => {
            let path = format!("/{}", platform.as_str());
            see_other(
                &format!("{path}/"),
                &[scoped_cookie(
                    &session_cookie(platform),
                    &session,
                    &path,
                    PLATFORM_SESSION_TTL_MS / 1000,
                )],
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "opening a platform session failed");
            refused(
                platform,
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in failed for now; try again from the portal.",
            )
        }
    }
}

/// Asks the portal about `token`, over HTTP with the platform's secret.
async fn validate(
    state: &AppState,
    platform: Platform,
    token: &str,
) -> Result<SignedOn, (StatusCode, String)> {
    let secret = state
        .sso_secrets
        .get(&platform)
        .cloned()
        .unwrap_or_default();
    let url = format!("{}/portal/v1/sso/validate", state.sso_urls.portal);
    let answer = state
        .http_client
        .post(&url)
        .bearer_auth(secret)
        .json(&serde_json::json!({"token": token, "platform": platform.as_str()}))
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, url, "the portal cannot be reached to validate a sign-on");
            (
                StatusCode::BAD_GATEWAY,
                "The portal cannot be reached for now; try again.".to_string(),
            )
        })?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if status.is_success() {
        let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
        return Ok(SignedOn {
            client_id: field("client_id"),
            workspace_id: field("workspace_id"),
        });
    }
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("the portal refused it")
        .to_string();
    Err((
        StatusCode::FORBIDDEN,
        format!("{message}. Open the platform again from the portal."),
    ))
}

/// The platform a page belongs to (the type parameter of [`Signed`] and
/// [`SignedForm`]).
pub(crate) trait OnPlatform: Send + Sync + 'static {
    const PLATFORM: Platform;
}

pub(crate) struct Migo;
pub(crate) struct Tel;

impl OnPlatform for Migo {
    const PLATFORM: Platform = Platform::Migosmtp;
}

impl OnPlatform for Tel {
    const PLATFORM: Platform = Platform::Telnxo;
}

/// A page of a platform's signed-in workspace: its session and the CSRF
/// token of the page's forms. Without a session the handler never runs:
/// the answer is the "not signed in" page.
pub(crate) struct Signed<P> {
    pub(crate) session: PlatformSession,
    pub(crate) csrf: String,
    platform: std::marker::PhantomData<P>,
}

impl<P: OnPlatform> axum::extract::FromRequestParts<AppState> for Signed<P> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        let (session, csrf) = session_with_csrf(state, &parts.headers, P::PLATFORM).await?;
        Ok(Signed {
            session,
            csrf,
            platform: std::marker::PhantomData,
        })
    }
}

/// A form posted by a platform's signed-in workspace, its CSRF token
/// checked: otherwise the handler never runs and the answer is the
/// refusal (nothing changed).
pub(crate) struct SignedForm<P, F> {
    pub(crate) session: PlatformSession,
    pub(crate) csrf: String,
    pub(crate) form: F,
    platform: std::marker::PhantomData<P>,
}

impl<P, F> axum::extract::FromRequest<AppState> for SignedForm<P, F>
where
    P: OnPlatform,
    F: serde::de::DeserializeOwned + super::CarriesCsrf + Send + 'static,
{
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        use axum::response::IntoResponse;
        let (mut parts, body) = request.into_parts();
        let signed = Signed::<P>::from_request_parts(&mut parts, state).await?;
        let axum::Form(form) =
            axum::Form::<F>::from_request(axum::extract::Request::from_parts(parts, body), state)
                .await
                .map_err(IntoResponse::into_response)?;
        if !super::csrf_ok(form.csrf(), &signed.csrf) {
            return Err(forged(P::PLATFORM));
        }
        Ok(SignedForm {
            session: signed.session,
            csrf: signed.csrf,
            form,
            platform: std::marker::PhantomData,
        })
    }
}

/// A form without its CSRF token (or with another's).
fn forged(platform: Platform) -> Response {
    refused(
        platform,
        StatusCode::FORBIDDEN,
        "This form expired or did not come from this site (its CSRF token is missing or wrong). Nothing was changed.",
    )
}

/// The platform session of a request with its CSRF token (for its
/// forms), or where to go instead.
async fn session_with_csrf(
    state: &AppState,
    headers: &HeaderMap,
    platform: Platform,
) -> Result<(PlatformSession, String), Response> {
    let s = session(state, headers, platform).await?;
    let token = cookie(headers, &session_cookie(platform)).unwrap_or_default();
    Ok((s, rackwave_billing::clients::csrf_token(&token)))
}

/// The platform session of a request, or where to go instead.
async fn session(
    state: &AppState,
    headers: &HeaderMap,
    platform: Platform,
) -> Result<PlatformSession, Response> {
    let not_signed_in = || {
        refused_page(
            platform,
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "You are not signed in here: open the platform with Access Platform in the Rackwave portal.",
        )
    };
    let token = cookie(headers, &session_cookie(platform)).ok_or_else(not_signed_in)?;
    state
        .sso
        .platform_session(platform, &token)
        .await
        .ok()
        .flatten()
        .ok_or_else(not_signed_in)
}

async fn names(state: &AppState, s: &PlatformSession) -> (String, String) {
    let workspace = state
        .store
        .workspace(&s.workspace_id)
        .await
        .ok()
        .flatten()
        .map_or(s.workspace_id.clone(), |w| w.name);
    let email = state
        .store
        .client(&s.client_id)
        .await
        .ok()
        .flatten()
        .map_or(String::new(), |c| c.email);
    (workspace, email)
}

fn row(m: crate::admin::messages_v1::MessageSummary) -> rackwave_web::migosmtp::MessageRow {
    rackwave_web::migosmtp::MessageRow {
        id: m.id,
        from: m.from,
        to: m.to,
        status: m.status,
        created: m.created_at,
    }
}

/// The workspace's messages, newest first, to `to` with `status` when
/// given.
/// How much of the log one page of a filtered search looks at: a rare
/// status costs about 3.5 µs an entry (a record's fields read), so a page
/// answers in about 10 ms and links to the next stretch (the API takes
/// `LIST_SCAN_BUDGET` a call).
const PAGE_SCAN_BUDGET: usize = 2_500;

/// A page of the workspace's messages (newest first, from `cursor`), and
/// where the next older page starts.
async fn listed(
    state: &AppState,
    workspace: &str,
    to: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
) -> (
    Vec<crate::admin::messages_v1::MessageSummary>,
    Option<String>,
) {
    let query = crate::admin::messages_v1::ListQuery {
        workspace: Some(workspace.to_string()),
        to,
        status,
        queue_id: None,
        from: None,
        tag: None,
        since: None,
        until: None,
        cursor,
        limit: Some(50),
    };
    crate::admin::messages_v1::list_scanning(state, query, PAGE_SCAN_BUDGET)
        .await
        .map(|l| (l.messages, l.next_cursor))
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub(crate) struct LogSearch {
    to: Option<String>,
    status: Option<String>,
    /// Where an older page starts (from the previous page's link).
    cursor: Option<String>,
}

/// The message log of the signed-in workspace: by recipient and status.
pub(crate) async fn migosmtp_log(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Migo>,
    Query(q): Query<LogSearch>,
) -> Response {
    let to = q.to.filter(|t| !t.trim().is_empty());
    let status = q
        .status
        .filter(|s| ["queued", "deferred", "delivered", "bounced"].contains(&s.as_str()));
    let cursor = q.cursor.filter(|c| !c.is_empty() && c.len() <= 256);
    let (found, next) = listed(&state, &s.workspace_id, to.clone(), status.clone(), cursor).await;
    let rows: Vec<_> = found.into_iter().map(row).collect();
    page(
        StatusCode::OK,
        rackwave_web::migosmtp::log(
            to.as_deref().unwrap_or_default(),
            status.as_deref().unwrap_or_default(),
            &rows,
            next.as_deref(),
        ),
    )
}

/// One message of the signed-in workspace with its timeline (another
/// workspace's is not found).
pub(crate) async fn migosmtp_message(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Migo>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let record = crate::messages::message(&state, &id)
        .await
        .ok()
        .flatten()
        .map(|(m, _)| m)
        .filter(|m| m.workspace_id == s.workspace_id);
    let Some(record) = record else {
        return page(
            StatusCode::NOT_FOUND,
            rackwave_web::refused(
                "MigoSMTP",
                "No such message",
                "There is no such message in this workspace.",
                ("/migosmtp/messages", "Back to the message log"),
            ),
        );
    };
    let detail = crate::admin::messages_v1::detail_of(&record);
    let mut steps: Vec<rackwave_web::migosmtp::Step> = detail
        .history
        .iter()
        .map(|h| rackwave_web::migosmtp::Step {
            at: h.at.clone(),
            event: h.event.clone(),
            status: h.status.clone(),
            detail: String::new(),
        })
        .collect();
    steps.extend(
        detail
            .delivery_attempts
            .iter()
            .map(|a| rackwave_web::migosmtp::Step {
                at: a.at.clone(),
                event: format!("attempt {}", a.attempt_number),
                status: a.event.clone(),
                detail: format!(
                    "{} {}{}: {}",
                    a.remote_host.as_deref().unwrap_or("-"),
                    a.remote_ip.as_deref().unwrap_or(""),
                    if a.tls { " (TLS)" } else { "" },
                    a.reply
                ),
            }),
    );
    steps.sort_by(|a, b| a.at.cmp(&b.at));
    let subject = detail.summary.subject.clone().unwrap_or_default();
    let view = rackwave_web::migosmtp::Message {
        row: row(detail.summary),
        subject,
        steps,
    };
    page(StatusCode::OK, rackwave_web::migosmtp::message(&view))
}

/// The MigoSMTP dashboard of the signed-in workspace.
pub(crate) async fn migosmtp_dashboard(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Migo>,
) -> Response {
    let (workspace, email) = names(&state, &s).await;
    let (messages, _) = listed(&state, &s.workspace_id, None, None, None).await;
    // The last 30 UTC days' counts of the charted events (kept per day by
    // the event log, so this reads at most 30 × types entries).
    let today = state.clock.today();
    let counts = state
        .store
        .event_counts(&s.workspace_id, today - 29, today, None)
        .await
        .unwrap_or_default();
    let days = (today - 29..=today)
        .map(|day| {
            let mut d = rackwave_web::migosmtp::Day {
                label: rfc3339(day * rackwave_core::MS_PER_DAY)[..10].to_string(),
                counts: [0; 6],
            };
            for (i, (name, _)) in rackwave_web::migosmtp::SERIES.iter().enumerate() {
                d.counts[i] = counts
                    .iter()
                    .filter(|(at, t, _)| *at == day && t == name)
                    .map(|(_, _, n)| *n)
                    .sum();
            }
            d
        })
        .collect();
    let waiting = crate::messages::waiting(&state, &s.workspace_id)
        .await
        .unwrap_or(0);
    let view = rackwave_web::migosmtp::Overview {
        days,
        who: rackwave_web::SignedIn { workspace, email },
        waiting,
        messages: messages.into_iter().map(row).collect(),
    };
    page(StatusCode::OK, rackwave_web::migosmtp::overview(&view))
}

/// The Telnxo dashboard of the signed-in workspace.
pub(crate) async fn telnxo_dashboard(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Tel>,
) -> Response {
    let (workspace, email) = names(&state, &s).await;
    let ws = &s.workspace_id;
    let numbers = state.telnxo.numbers(ws).await.unwrap_or_default();
    let messages = state
        .telnxo
        .messages(ws, None, None, 20)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let calls = state
        .telnxo
        .calls(ws, None, 20)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    // The users who wrote on WhatsApp among the newest messages, each
    // with its window.
    let now = state.clock.now_ms();
    let mut conversations: Vec<rackwave_web::telnxo::Conversation> = Vec::new();
    for m in messages.iter().filter(|m| {
        m.channel == rackwave_store::Channel::Whatsapp
            && m.direction == rackwave_store::Direction::Inbound
    }) {
        if conversations.iter().any(|c| c.number == m.from) {
            continue;
        }
        let last = state
            .store
            .whatsapp_window(ws, &m.from)
            .await
            .ok()
            .flatten()
            .unwrap_or(m.created_at_ms);
        let closes = last + rackwave_telnxo::WINDOW_MS;
        conversations.push(rackwave_web::telnxo::Conversation {
            number: m.from.clone(),
            last_message: rfc3339(last),
            window: if closes > now {
                format!("open until {}", rfc3339(closes))
            } else {
                "closed: templates only".into()
            },
        });
    }
    let view = rackwave_web::telnxo::Overview {
        conversations,
        who: rackwave_web::SignedIn { workspace, email },
        numbers: numbers.into_iter().map(|n| n.number).collect(),
        messages: messages
            .into_iter()
            .map(|m| {
                let direction = m.direction.as_str();
                let channel = m.channel.as_str();
                telnxo_row(
                    m.id,
                    channel,
                    direction,
                    m.from,
                    m.to,
                    m.status.as_str(),
                    m.created_at_ms,
                )
            })
            .collect(),
        calls: calls
            .into_iter()
            .map(|c| {
                telnxo_row(
                    c.id,
                    "voice",
                    "outbound",
                    c.from,
                    c.to,
                    c.status.as_str(),
                    c.created_at_ms,
                )
            })
            .collect(),
    };
    page(StatusCode::OK, rackwave_web::telnxo::overview(&view))
}

/// The signed-in workspace's sending domains with their records.
pub(crate) async fn migosmtp_domains(
    State(state): State<AppState>,
    Signed {
        session: s, csrf, ..
    }: Signed<Migo>,
) -> Response {
    let domains = state
        .domains
        .list(&s.workspace_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let d = crate::migosmtp::domains_v1::status(&state, d);
            rackwave_web::migosmtp::Domain {
                domain: d.domain,
                status: d.status.into(),
                records: d
                    .records
                    .into_iter()
                    .map(|r| rackwave_web::migosmtp::Record {
                        purpose: r.purpose,
                        record_type: r.record_type,
                        name: r.name,
                        value: r.value,
                        verified: r.verified,
                        found: r.found.join(" "),
                    })
                    .collect(),
            }
        })
        .collect::<Vec<_>>();
    page(
        StatusCode::OK,
        rackwave_web::migosmtp::domains(&csrf, &domains),
    )
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

super::carries_csrf!(CsrfForm, NewDomainForm, NewAccountForm);

#[derive(Deserialize)]
pub(crate) struct NewDomainForm {
    domain: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Adds a sending domain with a new DKIM key: back to the list, which
/// shows its records to publish.
pub(crate) async fn migosmtp_add_domain(
    State(state): State<AppState>,
    SignedForm {
        session: s,
        form: f,
        ..
    }: SignedForm<Migo, NewDomainForm>,
) -> Response {
    let added = state
        .domains
        .add(
            &s.workspace_id,
            f.domain.trim(),
            rackwave_accounts::DkimAlgorithm::Rsa2048,
            None,
        )
        .await
        .map_err(crate::ApiError::from);
    back(Platform::Migosmtp, "/migosmtp/domains", added)
}

/// Verify: looks the domain's records up, then back to the list.
pub(crate) async fn migosmtp_verify(
    State(state): State<AppState>,
    axum::extract::Path(domain): axum::extract::Path<String>,
    SignedForm { session: s, .. }: SignedForm<Migo, CsrfForm>,
) -> Response {
    back(
        Platform::Migosmtp,
        "/migosmtp/domains",
        crate::migosmtp::domains_v1::verify_in(&state, &s.workspace_id, &domain).await,
    )
}

/// The credentials page, with a secret just made when there is one.
async fn credentials_page(
    state: &AppState,
    workspace_id: &str,
    csrf: &str,
    status: StatusCode,
    shown_once: Option<(&str, &str)>,
) -> Response {
    let accounts: Vec<_> = state
        .accounts
        .smtp_accounts_of(workspace_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let a = crate::admin::smtp_accounts_v1::SmtpAccountView::from(a);
            rackwave_web::migosmtp::AccountRow {
                username: a.username,
                daily_quota: a.daily_quota,
                created: a.created_at,
            }
        })
        .collect();
    let keys: Vec<_> = crate::migosmtp::credentials_v1::list_api_keys_in(state, workspace_id)
        .await
        .map(|l| l.api_keys)
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k.platform == Platform::Migosmtp)
        .map(|k| rackwave_web::migosmtp::KeyRow {
            id: k.id,
            prefix: k.prefix,
            created: k.created_at,
            last_used: k.last_used_at.unwrap_or_else(|| "never".into()),
        })
        .collect();
    page(
        status,
        rackwave_web::migosmtp::credentials(csrf, &accounts, &keys, shown_once),
    )
}

/// The signed-in workspace's SMTP accounts and API keys.
pub(crate) async fn migosmtp_credentials(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    match session_with_csrf(&state, &headers, Platform::Migosmtp).await {
        Ok((s, csrf)) => {
            credentials_page(&state, &s.workspace_id, &csrf, StatusCode::OK, None).await
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(crate) struct NewAccountForm {
    username: String,
    daily_quota: u64,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Creates an SMTP account: its password is shown once.
pub(crate) async fn migosmtp_create_account(
    State(state): State<AppState>,
    SignedForm {
        session: s,
        csrf,
        form: f,
        ..
    }: SignedForm<Migo, NewAccountForm>,
) -> Response {
    let password = rackwave_core::random_hex(16);
    match state
        .accounts
        .create_smtp_account(&s.workspace_id, f.username.trim(), &password, f.daily_quota)
        .await
    {
        Ok(a) => {
            let what = format!("The password of {}", a.username);
            credentials_page(
                &state,
                &s.workspace_id,
                &csrf,
                StatusCode::CREATED,
                Some((&what, &password)),
            )
            .await
        }
        Err(e) => refused(
            Platform::Migosmtp,
            StatusCode::UNPROCESSABLE_ENTITY,
            &e.to_string(),
        ),
    }
}

/// Deletes an SMTP account of the workspace.
pub(crate) async fn migosmtp_delete_account(
    State(state): State<AppState>,
    axum::extract::Path(username): axum::extract::Path<String>,
    SignedForm { session: s, .. }: SignedForm<Migo, CsrfForm>,
) -> Response {
    back(
        Platform::Migosmtp,
        "/migosmtp/credentials",
        crate::migosmtp::credentials_v1::delete_smtp_account_in(&state, &s.workspace_id, &username)
            .await,
    )
}

/// Creates an API key: shown once.
pub(crate) async fn migosmtp_create_key(
    State(state): State<AppState>,
    SignedForm {
        session: s, csrf, ..
    }: SignedForm<Migo, CsrfForm>,
) -> Response {
    match state
        .accounts
        .create_api_key(&s.workspace_id, Platform::Migosmtp)
        .await
    {
        Ok(new) => {
            let key = crate::admin::api_keys_v1::CreatedApiKey::from(new).key;
            credentials_page(
                &state,
                &s.workspace_id,
                &csrf,
                StatusCode::CREATED,
                Some(("Your new API key", &key)),
            )
            .await
        }
        Err(e) => refused(
            Platform::Migosmtp,
            StatusCode::SERVICE_UNAVAILABLE,
            &e.to_string(),
        ),
    }
}

/// Revokes an API key of the workspace.
pub(crate) async fn migosmtp_revoke_key(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    SignedForm { session: s, .. }: SignedForm<Migo, CsrfForm>,
) -> Response {
    back(
        Platform::Migosmtp,
        "/migosmtp/credentials",
        crate::migosmtp::credentials_v1::revoke_api_key_in(&state, &s.workspace_id, &id).await,
    )
}

/// Who owns a platform's webhooks page: the signed-in workspace.
fn webhook_owner<'a>(
    platform: Platform,
    workspace_id: &'a str,
    base: &'a str,
    nav: &'a [rackwave_web::NavLink<'a>],
) -> super::webhooks::Owner<'a> {
    super::webhooks::Owner {
        workspace_id,
        product: rackwave_core::Product::of_platform(platform),
        brand: platform.name(),
        nav,
        base,
    }
}

/// A platform's nav links.
fn nav_of(platform: Platform) -> Vec<rackwave_web::NavLink<'static>> {
    match platform {
        Platform::Migosmtp => rackwave_web::migosmtp::nav().to_vec(),
        Platform::Telnxo => rackwave_web::telnxo::nav().to_vec(),
    }
}

/// A platform's webhooks page: its endpoints and their latest deliveries.
pub(crate) async fn webhooks<P: OnPlatform>(
    State(state): State<AppState>,
    Signed {
        session: s, csrf, ..
    }: Signed<P>,
) -> Response {
    let (base, nav) = (format!("/{}", P::PLATFORM.as_str()), nav_of(P::PLATFORM));
    let owner = webhook_owner(P::PLATFORM, &s.workspace_id, &base, &nav);
    super::webhooks::show(&state, &owner, &csrf, StatusCode::OK, None).await
}

/// Adds an endpoint: the page again with its secret, shown once.
pub(crate) async fn add_webhook<P: OnPlatform>(
    State(state): State<AppState>,
    SignedForm {
        session: s,
        csrf,
        form,
        ..
    }: SignedForm<P, super::webhooks::NewEndpointForm>,
) -> Response {
    let (base, nav) = (format!("/{}", P::PLATFORM.as_str()), nav_of(P::PLATFORM));
    let owner = webhook_owner(P::PLATFORM, &s.workspace_id, &base, &nav);
    match super::webhooks::add(&state, &owner, &csrf, form).await {
        Ok(r) => r,
        Err(e) => refused(P::PLATFORM, e.status, &e.message),
    }
}

/// Resend: the delivery goes again now, then back to the page.
pub(crate) async fn resend<P: OnPlatform>(
    State(state): State<AppState>,
    axum::extract::Path(ids): axum::extract::Path<(String, String)>,
    SignedForm { session: s, .. }: SignedForm<P, CsrfForm>,
) -> Response {
    let (base, nav) = (format!("/{}", P::PLATFORM.as_str()), nav_of(P::PLATFORM));
    let owner = webhook_owner(P::PLATFORM, &s.workspace_id, &base, &nav);
    match super::webhooks::resend(&state, &owner, ids).await {
        Ok(r) => r,
        Err(e) => refused(P::PLATFORM, e.status, &e.message),
    }
}

fn telnxo_row(
    id: String,
    channel: &str,
    direction: &str,
    from: String,
    to: String,
    status: &str,
    created_ms: i64,
) -> rackwave_web::telnxo::Row {
    rackwave_web::telnxo::Row {
        id,
        channel: channel.into(),
        direction: direction.into(),
        from,
        to,
        status: status.into(),
        created: rfc3339(created_ms),
    }
}

fn telnxo_steps(history: &[rackwave_store::CommStep]) -> Vec<rackwave_web::telnxo::Step> {
    history
        .iter()
        .map(|h| rackwave_web::telnxo::Step {
            at: rfc3339(h.at_ms),
            status: h.status.clone(),
            detail: h.detail.clone().unwrap_or_default(),
        })
        .collect()
}

/// The types of the events about `id`, oldest first.
async fn event_types(state: &AppState, workspace_id: &str, id: &str) -> Vec<String> {
    let query = rackwave_store::EventQuery {
        message_id: Some(id.to_string()),
        ascending: true,
        ..Default::default()
    };
    state
        .events
        .list(workspace_id, &query, None, 100)
        .await
        .map(|p| {
            p.items
                .into_iter()
                .filter_map(|e| e.event_type.map(|t| t.as_str().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn not_found(platform: Platform, what: &str) -> Response {
    refused_page(
        platform,
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no such {what} in this workspace."),
    )
}

/// A Telnxo message of the signed-in workspace with its timeline.
pub(crate) async fn telnxo_message(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Tel>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Ok(m) = state.telnxo.message(&s.workspace_id, &id).await else {
        return not_found(Platform::Telnxo, "message");
    };
    let direction = m.direction.as_str();
    let view = rackwave_web::telnxo::Detail {
        events: event_types(&state, &s.workspace_id, &m.id).await,
        steps: telnxo_steps(&m.history),
        body: m.body.clone(),
        row: telnxo_row(
            m.id,
            m.channel.as_str(),
            direction,
            m.from,
            m.to,
            m.status.as_str(),
            m.created_at_ms,
        ),
    };
    page(StatusCode::OK, rackwave_web::telnxo::detail(&view))
}

/// A call of the signed-in workspace with its timeline.
pub(crate) async fn telnxo_call(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Tel>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Ok(c) = state.telnxo.call(&s.workspace_id, &id).await else {
        return not_found(Platform::Telnxo, "call");
    };
    let view = rackwave_web::telnxo::Detail {
        events: event_types(&state, &s.workspace_id, &c.id).await,
        steps: telnxo_steps(&c.history),
        body: c.tts.clone().or(c.audio_url.clone()).unwrap_or_default(),
        row: telnxo_row(
            c.id,
            "voice",
            "outbound",
            c.from,
            c.to,
            c.status.as_str(),
            c.created_at_ms,
        ),
    };
    page(StatusCode::OK, rackwave_web::telnxo::detail(&view))
}

#[derive(Deserialize)]
pub(crate) struct SuppressionQuery {
    address: Option<String>,
    after: Option<String>,
}

/// The suppression list page, with what an import just did.
async fn suppressions_page(
    state: &AppState,
    workspace_id: &str,
    csrf: &str,
    q: SuppressionQuery,
    report: Option<&str>,
) -> Response {
    let query = q.address.unwrap_or_default().trim().to_string();
    let (entries, next) = if query.is_empty() {
        match state
            .suppressions
            .list(workspace_id, None, q.after.as_deref(), Some(50))
            .await
        {
            Ok(p) => (p.items, p.next_cursor),
            Err(e) => return refused(Platform::Migosmtp, StatusCode::BAD_REQUEST, &e.to_string()),
        }
    } else {
        let found = state
            .suppressions
            .find(workspace_id, &query)
            .await
            .ok()
            .flatten();
        (found.into_iter().collect(), None)
    };
    let rows: Vec<_> = entries
        .into_iter()
        .map(|e| rackwave_web::migosmtp::SuppressionRow {
            address: e.address,
            reason: e.reason.as_str().into(),
            created: rfc3339(e.created_at_ms),
        })
        .collect();
    page(
        StatusCode::OK,
        rackwave_web::migosmtp::suppressions(csrf, &query, &rows, next.as_deref(), report),
    )
}

pub(crate) async fn migosmtp_suppressions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SuppressionQuery>,
) -> Response {
    match session_with_csrf(&state, &headers, Platform::Migosmtp).await {
        Ok((s, csrf)) => suppressions_page(&state, &s.workspace_id, &csrf, q, None).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(crate) struct RemoveQuery {
    address: String,
}

/// Removes an address from the list.
pub(crate) async fn migosmtp_unsuppress(
    State(state): State<AppState>,
    Query(q): Query<RemoveQuery>,
    SignedForm { session: s, .. }: SignedForm<Migo, CsrfForm>,
) -> Response {
    match state.suppressions.remove(&s.workspace_id, &q.address).await {
        Ok(_) => see_other("/migosmtp/suppressions", &[]),
        Err(e) => refused(
            Platform::Migosmtp,
            StatusCode::SERVICE_UNAVAILABLE,
            &e.to_string(),
        ),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct ImportForm {
    #[serde(default)]
    csv: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

impl ImportForm {
    /// The form as the page sends it (multipart, with a file and/or pasted
    /// lines) or urlencoded (pasted lines only): a file's lines come
    /// before pasted ones.
    async fn read(request: axum::extract::Request, state: &AppState) -> Result<Self, String> {
        use axum::extract::FromRequest;
        let multipart = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !multipart {
            return axum::Form::<ImportForm>::from_request(request, state)
                .await
                .map(|f| f.0)
                .map_err(|e| e.body_text());
        }
        let mut parts = axum::extract::Multipart::from_request(request, state)
            .await
            .map_err(|e| e.body_text())?;
        let mut form = ImportForm::default();
        let mut pasted = String::new();
        while let Some(field) = parts.next_field().await.map_err(|e| e.body_text())? {
            match field.name().unwrap_or_default() {
                "_csrf" => form.csrf = Some(field.text().await.map_err(|e| e.body_text())?),
                "csv" => pasted = field.text().await.map_err(|e| e.body_text())?,
                "file" => {
                    let bytes = field.bytes().await.map_err(|e| e.body_text())?;
                    form.csv = String::from_utf8(bytes.to_vec())
                        .map_err(|_| "the file is not UTF-8 text".to_string())?;
                }
                // Unknown fields are ignored, as a urlencoded form's are.
                _ => {}
            }
        }
        if !form.csv.is_empty() && !form.csv.ends_with('\n') {
            form.csv.push('\n');
        }
        form.csv.push_str(&pasted);
        Ok(form)
    }
}

/// Imports a CSV file or pasted lines: the page again, saying what was
/// taken and skipped.
pub(crate) async fn migosmtp_import(
    State(state): State<AppState>,
    Signed {
        session: s, csrf, ..
    }: Signed<Migo>,
    request: axum::extract::Request,
) -> Response {
    let f = match ImportForm::read(request, &state).await {
        Ok(f) => f,
        Err(e) => return refused(Platform::Migosmtp, StatusCode::BAD_REQUEST, &e),
    };
    if !super::csrf_ok(f.csrf.as_deref(), &csrf) {
        return forged(Platform::Migosmtp);
    }
    if f.csv.trim().is_empty() {
        return refused(
            Platform::Migosmtp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Nothing to import: choose a CSV file or paste its lines.",
        );
    }
    let report = match state.suppressions.import(&s.workspace_id, &f.csv).await {
        Ok(r) => {
            let mut text = format!("Imported {} addresses.", r.imported);
            for (line, why) in r.skipped.iter().take(20) {
                text.push_str(&format!(" Line {line} skipped: {why}."));
            }
            text
        }
        Err(e) => {
            return refused(
                Platform::Migosmtp,
                StatusCode::UNPROCESSABLE_ENTITY,
                &e.to_string(),
            )
        }
    };
    let q = SuppressionQuery {
        address: None,
        after: None,
    };
    suppressions_page(&state, &s.workspace_id, &csrf, q, Some(&report)).await
}
