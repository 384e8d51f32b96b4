//! `/o/{token}`: the open pixel. Answers a 1x1 transparent GIF that no
//! cache may keep (so every open reaches us) and records `email.opened`
//! with the client's address and user agent, `machine` when the signals
//! say a proxy or scanner fetched it, and `first` for the message's first.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rackwave_core::event::{EmailOpened, EventType};
use rackwave_core::Timestamp;
use rackwave_tracking::{machine_open, Link};

use super::{client_of, from_machine_network, message_of, record_hit};
use crate::AppState;

/// A 1x1 transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The open pixel.
#[utoipa::path(get, operation_id = "tracking_open", path = "/o/{token}", tag = "tracking",
    params(("token" = String, Path, description = "from the message's HTML")),
    responses((status = 200, description = "a 1x1 GIF", content_type = "image/gif"),
        (status = 404, description = "not a link of this server")))]
pub(crate) async fn pixel(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let Some((Link::Open, who)) = state.tracking_key.verify(&token) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (ip, ua) = client_of(&req);
    let (message_id, _) = message_of(&state, &who).await;
    let now = state.clock.now_ms();
    let machine = machine_open(&ua) || from_machine_network(&state, &ip);
    let (id, to) = (message_id.clone(), who.address.clone());
    record_hit(
        &state,
        &who,
        &message_id,
        EventType::EmailOpened,
        move |first| {
            EmailOpened {
                message_id: id,
                to,
                opened_at: Timestamp(now),
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
        [
            (header::CONTENT_TYPE, "image/gif"),
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, private, max-age=0",
            ),
            (header::PRAGMA, "no-cache"),
            (header::EXPIRES, "0"),
        ],
        PIXEL,
    )
        .into_response()
}
