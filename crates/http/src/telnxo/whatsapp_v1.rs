//! `/telnxo/v1/whatsapp`: sending WhatsApp messages, and the Cloud API's
//! callback (`GET` for Meta's subscription handshake, `POST` for statuses
//! and messages, signed with the app secret and verified before anything
//! is read).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rackwave_telnxo::connectors::{whatsapp_cloud, WhatsappContent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::Telnxo;
use crate::idempotency::{once, Idempotent};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextBody {
    pub(crate) body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateBody {
    pub(crate) name: String,
    /// A language code, e.g. `en_US`.
    pub(crate) language: String,
    /// As the Cloud API takes them.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) components: serde_json::Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendWhatsapp {
    /// A WhatsApp number of the workspace (default: its first).
    pub(crate) from: Option<String>,
    /// E.164.
    pub(crate) to: String,
    /// `text`, `template` or `interactive`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) text: Option<TextBody>,
    pub(crate) template: Option<TemplateBody>,
    /// Reply buttons or a list, as the Cloud API takes them.
    #[schema(value_type = Option<Object>)]
    pub(crate) interactive: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WhatsappQueued {
    pub(crate) message_id: String,
    pub(crate) status: &'static str,
}

/// Queues a WhatsApp message: `202`. Text and interactive messages only
/// within 24 hours of the user's last message (`422 outside_window`);
/// templates at any time.
#[utoipa::path(post, operation_id = "telnxo_whatsapp_send", path = "/telnxo/v1/whatsapp/messages",
    tag = "telnxo", request_body = SendWhatsapp,
    responses((status = 202, body = WhatsappQueued), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn send(
    State(state): State<AppState>,
    Telnxo(tenant): Telnxo,
    request: Idempotent<SendWhatsapp>,
) -> Response {
    let Idempotent { value, key, digest } = request;
    let ws = tenant.workspace_id.clone();
    let service = state.telnxo.clone();
    once(&state, &ws, key, digest, async move {
        let missing = |field: &str| {
            ApiError::unprocessable(
                field.to_string(),
                format!("type {} needs {field}", value.kind),
            )
        };
        let content = match value.kind.as_str() {
            "text" => WhatsappContent::Text {
                body: value
                    .text
                    .as_ref()
                    .ok_or_else(|| missing("text"))?
                    .body
                    .clone(),
            },
            "template" => {
                let t = value.template.as_ref().ok_or_else(|| missing("template"))?;
                WhatsappContent::Template {
                    name: t.name.clone(),
                    language: t.language.clone(),
                    components: t.components.clone(),
                }
            }
            "interactive" => WhatsappContent::Interactive(
                value
                    .interactive
                    .clone()
                    .ok_or_else(|| missing("interactive"))?,
            ),
            other => {
                return Err(ApiError::unprocessable(
                    "type",
                    format!("`{other}` is not text, template or interactive"),
                ))
            }
        };
        let m = service
            .send_whatsapp(
                &tenant.workspace_id,
                value.from.as_deref(),
                &value.to,
                content,
            )
            .await
            .map_err(super::messages_v1::api_error)?;
        Ok((
            StatusCode::ACCEPTED,
            WhatsappQueued {
                message_id: m.id,
                status: "queued",
            },
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub(crate) mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub(crate) verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub(crate) challenge: Option<String>,
}

/// Meta's subscription handshake: answers `hub.challenge` when
/// `hub.verify_token` is ours.
#[utoipa::path(get, operation_id = "telnxo_whatsapp_callback_verify",
    path = "/telnxo/v1/whatsapp/callback", tag = "telnxo", params(Handshake),
    responses((status = 200, description = "The challenge, as text"), (status = 403, body = ErrorBody)))]
pub(crate) async fn verify(State(state): State<AppState>, Query(h): Query<Handshake>) -> Response {
    let config = &state.telnxo.config().whatsapp.cloud_api;
    match whatsapp_cloud::challenge(
        h.mode.as_deref(),
        h.verify_token.as_deref(),
        h.challenge.as_deref(),
        &config.verify_token,
    ) {
        Some(challenge) => (StatusCode::OK, challenge).into_response(),
        None => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "hub.mode must be subscribe and hub.verify_token ours",
        )
        .into_response(),
    }
}

/// Statuses and messages from the Cloud API, signed
/// (`X-Hub-Signature-256`): `200` once recorded; `401` (nothing read)
/// when the signature is missing or wrong.
#[utoipa::path(post, operation_id = "telnxo_whatsapp_callback", path = "/telnxo/v1/whatsapp/callback",
    tag = "telnxo", request_body(content = Object, description = "A Cloud API webhook payload"),
    responses((status = 200), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let config = &state.telnxo.config().whatsapp.cloud_api;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if config.app_secret.is_empty()
        || !whatsapp_cloud::verify_signature(&config.app_secret, signature, &body)
    {
        tracing::warn!("a WhatsApp callback without a valid signature; ignored");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid X-Hub-Signature-256",
        ));
    }
    let reports = whatsapp_cloud::parse_callback(&body).map_err(ApiError::invalid)?;
    state
        .telnxo
        .ingest(reports)
        .await
        .map_err(super::messages_v1::api_error)?;
    Ok(StatusCode::OK)
}
