//! The endpoints of the links MigoSMTP puts in messages for their
//! recipients, under `[tracking] base_url`: no API key, the signed token
//! in the link is the whole authority (see `rackwave-tracking`); a token
//! this server did not sign, or one made for another endpoint, is `404`
//! and records nothing.

pub(crate) mod click;
pub(crate) mod open;
pub(crate) mod unsubscribe;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use rackwave_core::event::{EventData, EventType, MessageStatus};
use rackwave_tracking::Recipient;

use crate::AppState;

/// The message a link was made for (its id, or `""` once the spool no
/// longer has it) and when it was delivered, if it was. A link names its
/// submission, which held that one recipient.
pub(crate) async fn message_of(state: &AppState, who: &Recipient) -> (String, Option<i64>) {
    let found = crate::messages::of_queue(state, &who.queue_id)
        .await
        .map(|found| found.into_iter().next());
    match found {
        Ok(Some(m)) if m.workspace_id == who.workspace_id => {
            let delivered = m
                .history
                .iter()
                .find(|h| h.status == MessageStatus::Delivered)
                .map(|h| h.at_ms);
            (m.id, delivered)
        }
        Ok(_) => (String::new(), None),
        Err(e) => {
            tracing::warn!(error = ?e, queue_id = %who.queue_id, "looking up a tracked message failed");
            (String::new(), None)
        }
    }
}

/// The client's address (the peer of the connection) and user agent.
pub(crate) fn client_of(req: &Request) -> (String, String) {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(512)
        .collect();
    (ip, ua)
}

/// Whether a hit from `ip` comes from one of `[tracking] machine_networks`
/// (a mail provider's proxies, a scanner's addresses).
pub(crate) fn from_machine_network(state: &AppState, ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| state.machine_networks.iter().any(|n| n.contains(ip)))
}

/// Records an open or a click (see `Events::emit_first`); a failure is
/// logged, and the visitor gets the image or the redirect all the same.
pub(crate) async fn record_hit(
    state: &AppState,
    who: &Recipient,
    message_id: &str,
    event_type: EventType,
    make: impl FnOnce(bool) -> EventData + Send + 'static,
) {
    let recorded = state
        .events
        .emit_first(&who.workspace_id, message_id, event_type, make)
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, event = event_type.as_str(), "recording a tracking event failed");
    }
}
