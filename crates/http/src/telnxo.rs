//! The Telnxo API, `/telnxo/v1`: SMS, calls and WhatsApp, their logs, the
//! workspace's numbers, WhatsApp's callback, and the simulator's inbound
//! messages. Routes are authenticated by a Telnxo key of the workspace
//! (the `Telnxo` extractor), except number provisioning (the operator's
//! admin token) and WhatsApp's callback (Meta's signature). Another
//! workspace's records answer 404.

pub(crate) mod calls_v1;
pub(crate) mod messages_v1;
pub(crate) mod numbers_v1;
pub(crate) mod simulator_v1;
pub(crate) mod sms_v1;
pub(crate) mod whatsapp_v1;

use rackwave_core::rfc3339;
use rackwave_store::{CommStep, StoredEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::{ApiError, AppState};

/// One step of a message's or call's life.
#[derive(Serialize, ToSchema)]
pub(crate) struct StepView {
    pub(crate) status: String,
    pub(crate) at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

pub(crate) fn steps(history: &[CommStep]) -> Vec<StepView> {
    history
        .iter()
        .map(|s| StepView {
            status: s.status.clone(),
            at: rfc3339(s.at_ms),
            detail: s.detail.clone(),
        })
        .collect()
}

/// Why it failed.
#[derive(Serialize, ToSchema)]
pub(crate) struct FailureView {
    pub(crate) code: String,
    pub(crate) description: String,
}

/// The events of one message or call, oldest first, as their webhooks
/// carried them.
pub(crate) async fn events_of(
    state: &AppState,
    workspace_id: &str,
    id: &str,
) -> Result<Vec<Box<RawValue>>, ApiError> {
    let query = rackwave_store::EventQuery {
        message_id: Some(id.to_string()),
        products: vec![rackwave_core::Product::Telnxo],
        ascending: true,
        ..Default::default()
    };
    let page = state.events.list(workspace_id, &query, None, 100).await?;
    Ok(page
        .items
        .into_iter()
        .map(|e: StoredEvent| e.event)
        .collect())
}
