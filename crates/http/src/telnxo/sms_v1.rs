//! `POST /telnxo/v1/sms`: queues an SMS.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::Telnxo;
use crate::idempotency::{once, Idempotent};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendSms {
    /// A number (E.164) or sender id of the workspace.
    pub(crate) from: String,
    /// E.164, e.g. `+919876543210`.
    pub(crate) to: String,
    /// The text: GSM-7 when every character allows it, UCS-2 otherwise;
    /// at most 10 parts.
    pub(crate) body: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SmsQueued {
    pub(crate) message_id: String,
    /// Parts it is sent in (1 up to 160 GSM-7 or 70 UCS-2 units; else 153
    /// or 67 a part).
    pub(crate) parts: u32,
    /// `gsm7` or `ucs2`.
    pub(crate) encoding: String,
    pub(crate) status: &'static str,
}

/// Queues an SMS: `202` once it is durable (and `sms.queued` recorded).
#[utoipa::path(post, operation_id = "telnxo_sms_send", path = "/telnxo/v1/sms", tag = "telnxo",
    request_body = SendSms,
    responses((status = 202, body = SmsQueued), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn send(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    request: Idempotent<SendSms>,
) -> Response {
    let Idempotent { value, key, digest } = request;
    let ws = tenant.workspace_id.clone();
    let service = state.telnxo.clone();
    once(&state, &ws, key, digest, async move {
        let m = service
            .send_sms(&tenant.workspace_id, &value.from, &value.to, &value.body)
            .await
            .map_err(super::messages_v1::api_error)?;
        Ok((
            StatusCode::ACCEPTED,
            SmsQueued {
                message_id: m.id,
                parts: m.parts,
                encoding: m.encoding.unwrap_or_default(),
                status: "queued",
            },
        ))
    })
    .await
}
