//! `POST /telnxo/v1/simulator/inbound`: an inbound SMS or WhatsApp message
//! on demand, to try an integration end to end while the channel uses the
//! simulator (404 otherwise). Only to the workspace's own numbers.

use axum::extract::State;
use axum::http::StatusCode;
use rackwave_store::Channel;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, Telnxo};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimulatedInbound {
    /// `sms` or `whatsapp`.
    pub(crate) channel: String,
    /// The handset, E.164.
    pub(crate) from: String,
    /// A number of the workspace.
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) body: String,
    /// WhatsApp: a tapped reply button's id and title.
    pub(crate) button_id: Option<String>,
    pub(crate) button_title: Option<String>,
}

/// Makes the simulated carrier deliver a message to one of the
/// workspace's numbers: `202`; its `sms.inbound`, `whatsapp.inbound` or
/// `whatsapp.button_reply` follows.
#[utoipa::path(post, operation_id = "telnxo_simulator_inbound", path = "/telnxo/v1/simulator/inbound",
    tag = "telnxo", request_body = SimulatedInbound,
    responses((status = 202), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn inbound(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    ApiJson(body): ApiJson<SimulatedInbound>,
) -> Result<StatusCode, ApiError> {
    let channel = match Channel::parse(&body.channel) {
        Some(c @ (Channel::Sms | Channel::Whatsapp)) => c,
        _ => return Err(ApiError::unprocessable("channel", "sms or whatsapp")),
    };
    let simulator = state
        .telnxo
        .simulator(channel)
        .ok_or_else(|| ApiError::not_found("this channel is not simulated"))?;
    let from = rackwave_telnxo::numbers::e164("from", &body.from)
        .map_err(super::messages_v1::api_error)?;
    let owned = state
        .telnxo
        .numbers(&tenant.workspace_id)
        .await?
        .into_iter()
        .any(|n| n.number == body.to && n.channels.contains(&channel));
    if !owned {
        return Err(ApiError::unprocessable(
            "to",
            format!(
                "{} is not a {} number of this workspace",
                body.to,
                channel.as_str()
            ),
        ));
    }
    if body.body.len() > 4096 {
        return Err(ApiError::unprocessable("body", "at most 4096 bytes"));
    }
    for (field, value) in [
        ("button_id", &body.button_id),
        ("button_title", &body.button_title),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > 256)
        {
            return Err(ApiError::unprocessable(field, "1 to 256 bytes"));
        }
    }
    match channel {
        Channel::Sms => simulator.inbound_sms(&from, &body.to, &body.body).await,
        _ => {
            let button = match (body.button_id, body.button_title) {
                (Some(id), Some(title)) => Some((id, title)),
                (None, None) => None,
                _ => {
                    return Err(ApiError::unprocessable(
                        "button_id",
                        "give both button_id and button_title, or neither",
                    ))
                }
            };
            simulator
                .inbound_whatsapp(&from, &body.to, &body.body, button)
                .await;
        }
    }
    Ok(StatusCode::ACCEPTED)
}
