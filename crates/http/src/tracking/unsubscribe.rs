//! `/u/{token}`: RFC 8058 one-click unsubscribe. A mailbox provider's
//! `POST` with `List-Unsubscribe=One-Click` unsubscribes at once and
//! answers `200` (never a redirect); a person following the link gets a
//! `GET`, which only shows a page whose button makes that `POST`, so a link
//! scanner fetching every URL of a message unsubscribes no one.
//!
//! Unsubscribing records `email.unsubscribed` and puts the address on the
//! workspace's suppression list in one transaction; an address already
//! listed is answered the same way without a second event (providers
//! retry). A token this server did not sign is `404`, and nothing is
//! recorded.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use rackwave_accounts::{Suppression, SuppressionReason};
use rackwave_core::event::EmailUnsubscribed;
use rackwave_core::html::escape_html;
use rackwave_core::Timestamp;
use rackwave_tracking::{Link, Recipient};

use crate::AppState;

/// The confirmation page: a form that makes the one-click `POST`.
#[utoipa::path(get, operation_id = "unsubscribe_page", path = "/u/{token}", tag = "tracking",
    params(("token" = String, Path, description = "from the message's List-Unsubscribe")),
    responses((status = 200, description = "a page with an unsubscribe button", content_type = "text/html"),
        (status = 404, description = "not a link of this server", content_type = "text/html")))]
pub(crate) async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Some((Link::Unsubscribe, who)) = state.tracking_key.verify(&token) else {
        return not_found();
    };
    page_html(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop sending these emails to <strong>{}</strong>?</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            escape_html(&who.address)
        ),
    )
}

/// One-click unsubscribe (RFC 8058 §3.2): the body is
/// `List-Unsubscribe=One-Click`, form-encoded.
#[utoipa::path(post, operation_id = "unsubscribe_one_click", path = "/u/{token}", tag = "tracking",
    params(("token" = String, Path, description = "from the message's List-Unsubscribe")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "List-Unsubscribe=One-Click"),
    responses((status = 200, description = "unsubscribed", content_type = "text/html"),
        (status = 400, description = "not a one-click request", content_type = "text/html"),
        (status = 404, description = "not a link of this server", content_type = "text/html")))]
pub(crate) async fn one_click(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some((Link::Unsubscribe, who)) = state.tracking_key.verify(&token) else {
        return not_found();
    };
    let Ok(body) = body else {
        return bad_request();
    };
    if !is_one_click(&headers, &body) {
        return bad_request();
    }
    match unsubscribe(&state, &who).await {
        Ok(()) => page_html(
            StatusCode::OK,
            "Unsubscribed",
            &format!(
                "<p><strong>{}</strong> will get no more of these emails.</p>",
                escape_html(&who.address)
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "recording an unsubscribe failed");
            page_html(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "<p>We could not record this just now. Please try again in a minute.</p>",
            )
        }
    }
}

/// Records the unsubscribe and the suppression, unless the address is
/// already suppressed because it unsubscribed (decided in the
/// transaction that records it, so concurrent retries make one event).
async fn unsubscribe(state: &AppState, who: &Recipient) -> Result<(), String> {
    let (message_id, _) = super::message_of(state, who).await;
    let now = state.clock.now_ms();
    let suppression = Suppression {
        workspace_id: who.workspace_id.clone(),
        address: Suppression::address_key(&who.address),
        reason: SuppressionReason::Unsubscribe,
        message_id: (!message_id.is_empty()).then(|| message_id.clone()),
        detail: who.list_id.clone(),
        created_at_ms: now,
    };
    let event = EmailUnsubscribed {
        message_id,
        to: who.address.clone(),
        unsubscribed_at: Timestamp(now),
        list_id: who.list_id.clone(),
    };
    state
        .events
        .emit_suppressing(&who.workspace_id, event, &suppression)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Whether the body says `List-Unsubscribe=One-Click`, form-encoded or as
/// multipart form data (RFC 8058 allows both).
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = String::from_utf8_lossy(body);
    if content_type.starts_with("multipart/form-data") {
        return text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click");
    }
    text.split('&').any(|pair| {
        pair.split_once('=').is_some_and(|(k, v)| {
            k.trim() == "List-Unsubscribe" && v.trim().eq_ignore_ascii_case("One-Click")
        })
    })
}

fn not_found() -> Response {
    page_html(
        StatusCode::NOT_FOUND,
        "Link not valid",
        "<p>This link is not valid. It may have been copied incompletely.</p>",
    )
}

fn bad_request() -> Response {
    page_html(
        StatusCode::BAD_REQUEST,
        "Not a one-click request",
        "<p>Use the button on the unsubscribe page.</p>",
    )
}

/// A small page; never cached, never framed.
fn page_html(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            // No script, style or other origin; the form posts here only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_click_bodies() {
        let form = HeaderMap::from_iter([(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        )]);
        assert!(is_one_click(&form, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(&form, b"a=b&List-Unsubscribe=one-click"));
        assert!(!is_one_click(&form, b""));
        assert!(!is_one_click(&form, b"List-Unsubscribe=Later"));
        let multipart = HeaderMap::from_iter([(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=x".parse().unwrap(),
        )]);
        assert!(is_one_click(
            &multipart,
            b"--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n"
        ));
        assert_eq!(
            escape_html("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
