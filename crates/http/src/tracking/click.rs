//! `/c/{token}`: a tracked link. Records `email.clicked` (the URL, the
//! client's address and user agent, `machine` for scanners and clicks
//! within seconds of delivery, `first` for the message's first) and
//! redirects with `302` to the URL the token names. The URL comes only
//! from the signed token, so this is never an open redirect.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rackwave_core::event::{EmailClicked, EventType};
use rackwave_core::Timestamp;
use rackwave_tracking::{machine_click, Link};

use super::{client_of, from_machine_network, message_of, record_hit};
use crate::AppState;

/// A tracked link.
#[utoipa::path(get, operation_id = "tracking_click", path = "/c/{token}", tag = "tracking",
    params(("token" = String, Path, description = "from the message's HTML")),
    responses((status = 302, description = "to the link's URL"),
        (status = 404, description = "not a link of this server")))]
pub(crate) async fn follow(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let Some((Link::Click(url), who)) = state.tracking_key.verify(&token) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(location) = header::HeaderValue::from_str(&url) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (ip, ua) = client_of(&req);
    let (message_id, delivered_at) = message_of(&state, &who).await;
    let now = state.clock.now_ms();
    let machine =
        machine_click(&ua, delivered_at.map(|d| now - d)) || from_machine_network(&state, &ip);
    let (id, to, link_url) = (message_id.clone(), who.address.clone(), url.clone());
    record_hit(
        &state,
        &who,
        &message_id,
        EventType::EmailClicked,
        move |first| {
            EmailClicked {
                message_id: id,
                to,
                clicked_at: Timestamp(now),
                link_url,
                ip_address: ip,
                user_agent: ua,
                machine,
                first,
            }
            .into()
        },
    )
    .await;
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            ),
            (
                header::REFERRER_POLICY,
                header::HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}
