//! `/migosmtp/v1/messages`: the HTTP send API (`POST …/messages`, `POST
//! …/messages/batch`) and the workspace's message log (`GET …/messages`,
//! `GET …/messages/{id}`, `GET …/messages/{id}/raw`).
//!
//! Each message sent is composed into MIME (`rackwave_intake::compose`)
//! and handed to the same intake pipeline as a message received over SMTP;
//! only the parsing differs. The log shows the same views as the admin API,
//! scoped to the key's workspace: another workspace's message is `404`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use base64::Engine;
use futures::FutureExt;
use rackwave_intake::compose::{Attachment, ComposeLimits, Composition};
use rackwave_intake::{Limits, QuotaError, RefusalKind, Source, Submission, TrackingChoice};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::admin::messages_v1::{
    detail_of, list_in, DeliveryAttemptView, ListQuery, MessageDetail, MessageList, MessageSummary,
    StatusChangeView,
};
use crate::error::ErrorBody;
use crate::extract::{ApiPath, ApiQuery, MigoSmtp, Tenant};
use crate::idempotency::{once, Idempotent};
use crate::{ApiError, AppState};

/// Messages in one batch request at most.
pub(crate) const MAX_BATCH: usize = 500;
/// Recipients of one message (to, cc and bcc together) at most.
pub(crate) const MAX_RECIPIENTS: usize = 1000;
/// Tags of one message at most, and the length of one.
const MAX_TAGS: usize = 10;
const MAX_TAG_LEN: usize = 128;
/// Metadata entries of one message at most, and the size of a key or value.
const MAX_: usize = 20;
const MAX__LEN: usize = 512;

/// One message to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendMessage {
    /// `address` or `Name <address>`; the envelope sender is the address.
    pub(crate) from: String,
    #[serde(default)]
    pub(crate) to: Vec<String>,
    #[serde(default)]
    pub(crate) cc: Vec<String>,
    /// Delivered to, never shown in the message.
    #[serde(default)]
    pub(crate) bcc: Vec<String>,
    #[serde(default)]
    pub(crate) reply_to: Vec<String>,
    pub(crate) subject: String,
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    /// Extra header fields; the API's own (From, To, Subject, …) are refused.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) attachments: Vec<AttachmentIn>,
    /// Labels stored with the message; they appear in its events.
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// Key/value pairs stored with the message; they appear in its events.
    #[serde(default)]
    pub(crate) metadata: BTreeMap<String, String>,
    /// Tracking switches (accepted; tracking itself is not built yet).
    pub(crate) tracking: Option<Tracking>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttachmentIn {
    pub(crate) filename: String,
    /// A MIME type, e.g. `application/pdf`.
    pub(crate) content_type: String,
    /// The file, base64 (standard alphabet, padded).
    pub(crate) content: String,
}

/// What the message carries per recipient; each switch left out follows
/// the workspace's setting: `opens` an open pixel, `clicks` its links
/// through the click endpoint (both in the HTML), `unsubscribe` RFC 8058
/// one-click unsubscribe headers.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tracking {
    pub(crate) opens: Option<bool>,
    pub(crate) clicks: Option<bool>,
    pub(crate) unsubscribe: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBatch {
    /// Up to 500 messages, each sent on its own.
    pub(crate) messages: Vec<SendMessage>,
}

/// A recipient queued as one message.
#[derive(Serialize, ToSchema)]
pub(crate) struct QueuedMessage {
    pub(crate) id: String,
    pub(crate) to: String,
    pub(crate) status: &'static str,
}

/// A recipient that was not queued, and why.
#[derive(Serialize, ToSchema)]
pub(crate) struct RejectedRecipient {
    pub(crate) to: String,
    /// `quota_exceeded`, `suppressed`, …
    pub(crate) code: String,
    pub(crate) reason: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Sent {
    /// Finds every message of this send.
    pub(crate) queue_id: String,
    pub(crate) messages: Vec<QueuedMessage>,
    pub(crate) rejected: Vec<RejectedRecipient>,
}

/// The outcome of one message of a batch: what a single send answers, or
/// its error.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum BatchItem {
    Sent(Sent),
    Failed { error: crate::error::ErrorDetail },
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BatchSent {
    /// One per message, in request order.
    pub(crate) results: Vec<BatchItem>,
}

/// Sends one message: `202` once it is durably queued.
#[utoipa::path(post, operation_id = "migosmtp_messages_send", path = "/migosmtp/v1/messages",
    tag = "migosmtp", request_body = SendMessage,
    responses((status = 202, body = Sent), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn send(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    request: Idempotent<SendMessage>,
) -> Response {
    let Idempotent { value, key, digest } = request;
    let work = {
        let (state, tenant) = (state.clone(), tenant.clone());
        async move {
            let sent = send_one(&state, &tenant, value, "").await?;
            Ok((StatusCode::ACCEPTED, sent))
        }
    };
    once(&state, &tenant.workspace_id, key, digest, work).await
}

/// Sends up to 500 messages: `200` with one result per message (a message
/// refused on its own does not stop the others).
#[utoipa::path(post, operation_id = "migosmtp_messages_send_batch",
    path = "/migosmtp/v1/messages/batch", tag = "migosmtp", request_body = SendBatch,
    responses((status = 200, body = BatchSent), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn send_batch(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    request: Idempotent<SendBatch>,
) -> Response {
    let Idempotent { value, key, digest } = request;
    let ws = tenant.workspace_id.clone();
    let outer = state.clone();
    once(&outer, &ws, key, digest, async move {
        if value.messages.is_empty() || value.messages.len() > MAX_BATCH {
            return Err(ApiError::unprocessable(
                "messages",
                format!("1 to {MAX_BATCH} messages per batch"),
            ));
        }
        // The workspace and its sender rules once for the whole batch;
        // then all at once: the spool's group commit makes them durable
        // together instead of one flush after another. Polled together
        // in this task rather than spawned one task a message: a send's
        // future is large, and a task moves it into place and out again.
        let sender = Sender::of(&state, &tenant).await?;
        let sends = value.messages.into_iter().enumerate().map(|(i, message)| {
            let (state, tenant, sender) = (&state, &tenant, &sender);
            async move {
                let prefix = format!("messages[{i}].");
                send_as(state, tenant, sender, message, &prefix).await
            }
        });
        let sent = std::panic::AssertUnwindSafe(futures::future::join_all(sends))
            .catch_unwind()
            .await
            .map_err(|_| {
                tracing::error!("a send of a batch panicked");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            })?;
        let results = sent
            .into_iter()
            .map(|result| match result {
                Ok(sent) => BatchItem::Sent(sent),
                Err(e) => BatchItem::Failed { error: e.detail() },
            })
            .collect();
        Ok((StatusCode::OK, BatchSent { results }))
    })
    .await
}

/// What every message of one request shares: read once a request.
struct Sender {
    workspace: rackwave_accounts::Workspace,
    rules: std::sync::Arc<rackwave_intake::SenderRules>,
}

impl Sender {
    async fn of(state: &AppState, tenant: &Tenant) -> Result<Sender, ApiError> {
        let workspace = state
            .accounts
            .require_workspace(&tenant.workspace_id)
            .await?;
        let rules = state
            .intake
            .sender_rules(&workspace.id)
            .await
            .map_err(|_| ApiError::unavailable())?;
        Ok(Sender {
            workspace,
            rules: std::sync::Arc::new(rules),
        })
    }
}

/// Composes, reserves the quota for each recipient, and submits.
pub(crate) async fn send_one(
    state: &AppState,
    tenant: &Tenant,
    m: SendMessage,
    field_prefix: &str,
) -> Result<Sent, ApiError> {
    let sender = Sender::of(state, tenant).await?;
    send_as(state, tenant, &sender, m, field_prefix).await
}

async fn send_as(
    state: &AppState,
    tenant: &Tenant,
    sender: &Sender,
    m: SendMessage,
    field_prefix: &str,
) -> Result<Sent, ApiError> {
    let invalid = |field: String, message: String| {
        ApiError::unprocessable(format!("{field_prefix}{field}"), message)
    };
    check_labels(&m.tags, &m.metadata).map_err(|(f, msg)| invalid(f, msg))?;
    let mut attachments = Vec::with_capacity(m.attachments.len());
    for (i, a) in m.attachments.into_iter().enumerate() {
        let content = base64::engine::general_purpose::STANDARD
            .decode(a.content.as_bytes())
            .map_err(|e| {
                invalid(
                    format!("attachments[{i}].content"),
                    format!("not base64: {e}"),
                )
            })?;
        attachments.push(Attachment {
            filename: a.filename,
            content_type: a.content_type,
            content,
        });
    }
    let tracking = m
        .tracking
        .map(|t| TrackingChoice {
            opens: t.opens,
            clicks: t.clicks,
            unsubscribe: t.unsubscribe,
        })
        .unwrap_or_default();
    let composition = Composition {
        from: m.from,
        to: m.to,
        cc: m.cc,
        bcc: m.bcc,
        reply_to: m.reply_to,
        subject: m.subject,
        text: m.text,
        html: m.html,
        headers: m.headers.into_iter().collect(),
        attachments,
    };
    let limits = ComposeLimits {
        max_recipients: MAX_RECIPIENTS,
        max_attachment_bytes: state.send.max_attachment_bytes,
    };
    let now = state.clock.now_ms();
    let message_id = format!(
        "{}.{}@{}",
        rackwave_core::random_hex(8),
        now,
        state.send.hostname
    );
    let composed = composition
        .compose(limits, now, &message_id)
        .map_err(|e| invalid(e.field, e.message))?;

    let workspace = &sender.workspace;
    let quotas = state.intake.quotas();
    let mut reservation = quotas.begin(&tenant.key_id, &workspace.id);
    let quota = Limits {
        account: &tenant.key_id,
        account_quota: u64::MAX,
        workspace: &workspace.id,
        workspace_quota: workspace.daily_quota,
    };
    let mut recipients = Vec::with_capacity(composed.recipients.len());
    let mut rejected: Vec<RejectedRecipient> = composed
        .invalid
        .into_iter()
        .map(|to| RejectedRecipient {
            to,
            code: "invalid_address".into(),
            reason: "not a mailbox".into(),
        })
        .collect();
    for to in composed.recipients {
        // Suppressed recipients are listed, and use no quota.
        match state.intake.check_recipient(&workspace.id, &to).await {
            Ok(()) => {}
            Err(refusal) if refusal.kind == RefusalKind::Temporary => {
                return Err(ApiError::unavailable());
            }
            Err(refusal) => {
                rejected.push(RejectedRecipient {
                    to,
                    code: refusal.reason.into(),
                    reason: refusal.text,
                });
                continue;
            }
        }
        match quotas.reserve_one(&mut reservation, &quota).await {
            Ok(()) => recipients.push(to),
            Err(QuotaError::Exceeded) => rejected.push(RejectedRecipient {
                to,
                code: "quota_exceeded".into(),
                reason: "the workspace's daily sending quota is reached".into(),
            }),
            Err(e @ QuotaError::Storage(_)) => {
                tracing::error!(error = %e, "quota check failed");
                return Err(ApiError::unavailable());
            }
        }
    }
    if recipients.is_empty() {
        // Say why: the quota when it turned one away, else every recipient
        // was refused on its own (suppressed, not a mailbox).
        if rejected.iter().any(|r| r.code == "quota_exceeded") {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                "the workspace's daily sending quota is reached",
            ));
        }
        let reasons: Vec<String> = rejected
            .iter()
            .map(|r| format!("{}: {}", r.to, r.code))
            .collect();
        return Err(ApiError::unprocessable(
            "to",
            format!("no recipient can be sent to ({})", reasons.join(", ")),
        ));
    }
    let accepted = state
        .intake
        .submit(Submission {
            source: Source::Http {
                api_key_id: tenant.key_id.clone(),
            },
            workspace_id: workspace.id.clone(),
            submitter: tenant.key_id.clone(),
            mail_from: composed.mail_from,
            recipients: recipients.clone(),
            message: composed.message,
            reservation: Some(reservation),
            tags: m.tags,
            metadata: m.metadata,
            tracking,
            sender_rules: Some(sender.rules.clone()),
        })
        .await
        .map_err(|r| {
            let status = match r.kind {
                RefusalKind::Malformed
                | RefusalKind::TooLarge
                | RefusalKind::Policy
                | RefusalKind::Sender => StatusCode::UNPROCESSABLE_ENTITY,
                RefusalKind::Temporary => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError::new(status, "refused", r.text)
        })?;
    rejected.extend(accepted.rejected.into_iter().map(|r| RejectedRecipient {
        to: r.to,
        code: r.code.to_string(),
        reason: r.reason,
    }));
    // The intake keeps recipient order; a policy may have dropped some.
    let kept = recipients
        .into_iter()
        .filter(|to| !rejected.iter().any(|r| r.to == *to));
    Ok(Sent {
        queue_id: accepted.queue_id,
        messages: accepted
            .message_ids
            .into_iter()
            .zip(kept)
            .map(|(id, to)| QueuedMessage {
                id,
                to,
                status: "queued",
            })
            .collect(),
        rejected,
    })
}

/// Tags and metadata are printable, bounded labels.
fn check_labels(
    tags: &[String],
    metadata: &BTreeMap<String, String>,
) -> Result<(), (String, String)> {
    let printable = |s: &str| !s.is_empty() && !s.chars().any(char::is_control);
    if tags.len() > MAX_TAGS {
        return Err(("tags".into(), format!("at most {MAX_TAGS} tags")));
    }
    for (i, t) in tags.iter().enumerate() {
        if !printable(t) || t.len() > MAX_TAG_LEN {
            return Err((
                format!("tags[{i}]"),
                format!("1 to {MAX_TAG_LEN} printable characters"),
            ));
        }
    }
    if metadata.len() > MAX_ {
        return Err(("metadata".into(), format!("at most {MAX_} entries")));
    }
    for (k, v) in metadata {
        if !printable(k) || k.len() > MAX__LEN || v.len() > MAX__LEN {
            return Err((
                format!("metadata.{k}"),
                format!(
                    "keys of 1 to {MAX__LEN} printable characters, values up to {MAX__LEN} octets"
                ),
            ));
        }
    }
    Ok(())
}

/// The workspace's messages, newest first.
#[utoipa::path(get, operation_id = "migosmtp_messages_list", path = "/migosmtp/v1/messages",
    tag = "migosmtp", params(ListQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiQuery(mut q): ApiQuery<ListQuery>,
) -> Result<Json<MessageList>, ApiError> {
    // The same filters as the admin listing; the workspace is the key's.
    if q.workspace.is_some() {
        return Err(ApiError::invalid(
            "workspace is the API key's; leave the parameter out",
        ));
    }
    q.workspace = Some(tenant.workspace_id);
    list_in(&state, q).await.map(Json)
}

/// A message of the workspace, or 404.
/// The workspace's message `id`, and the node whose spool holds it when
/// that is another node.
async fn own_message(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
) -> Result<(rackwave_queue::MessageRecord, Option<String>), ApiError> {
    crate::messages::message(state, id)
        .await?
        .filter(|(m, _)| m.workspace_id == tenant.workspace_id)
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))
}

/// A message as the MigoSMTP API shows it: the admin view's content under
/// the names of the product surface (`events`, `attempts`).
#[derive(Serialize, ToSchema)]
pub(crate) struct MessageView {
    #[serde(flatten)]
    pub(crate) summary: MessageSummary,
    pub(crate) next_attempt_at: Option<String>,
    /// The status history: each typed event with what only it knows.
    pub(crate) events: Vec<StatusChangeView>,
    /// Every delivery attempt, with the remote host, TLS and the reply.
    pub(crate) attempts: Vec<DeliveryAttemptView>,
}

/// One message with its events and delivery attempts.
#[utoipa::path(get, operation_id = "migosmtp_messages_get", path = "/migosmtp/v1/messages/{id}",
    tag = "migosmtp", params(("id" = String, Path, description = "Message id, msg_…")),
    responses((status = 200, body = MessageView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageView>, ApiError> {
    let MessageDetail {
        summary,
        next_attempt_at,
        history,
        delivery_attempts,
        ..
    } = detail_of(&own_message(&state, &tenant, &id).await?.0);
    Ok(Json(MessageView {
        summary,
        next_attempt_at,
        events: history,
        attempts: delivery_attempts,
    }))
}

/// The message as queued (`message/rfc822`), while the spool still holds
/// its data (until its submission's last recipient is delivered or
/// bounced).
#[utoipa::path(get, operation_id = "migosmtp_messages_raw", path = "/migosmtp/v1/messages/{id}/raw",
    tag = "migosmtp", params(("id" = String, Path, description = "Message id, msg_…")),
    responses((status = 200, content_type = "message/rfc822", body = String),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn raw(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(id): ApiPath<String>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let (m, elsewhere) = own_message(&state, &tenant, &id).await?;
    if let Some(node) = elsewhere {
        return Err(ApiError::not_found(format!(
            "the data of message {id} is held by node {node}; ask that node for it"
        )));
    }
    let body = state.spool.body(&m.queue_id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "the data of message {id} is no longer held (it is freed once every recipient of the send is delivered or bounced)"
        ))
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, "message/rfc822")], body))
}
