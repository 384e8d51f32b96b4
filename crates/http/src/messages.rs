//! The messages this node can answer for: its own spool's, and when
//! several nodes share the store, every node's through the shared message
//! log (`rackwave_store::message_log`), so the API and the dashboards
//! answer the same from any node. A message is read from this node's spool
//! first (the freshest record, and its body); the shared log has every
//! other node's. Listings read the shared log once this node's own feed
//! has reached it ([`Events::caught_up`](rackwave_events::Events::caught_up)),
//! so a send is listed at once on the node that took it.

use std::time::Duration;

use rackwave_queue::{ListFilter, MessageRecord, Page};
use rackwave_store::{MessageLogEntry, MessageLogQuery};

use crate::{ApiError, AppState};

/// How long a listing waits for this node's own latest messages to reach
/// the shared log before answering without them.
const CATCH_UP: Duration = Duration::from_secs(2);

/// A message by id, whatever its workspace (the caller compares it), and
/// the node whose spool holds it when that is another node.
pub(crate) async fn message(
    state: &AppState,
    id: &str,
) -> Result<Option<(MessageRecord, Option<String>)>, ApiError> {
    if let Some(m) = state.spool.get(id)? {
        return Ok(Some((m, None)));
    }
    if !state.store.is_shared() {
        return Ok(None);
    }
    match state.store.message_log_entry(id).await? {
        Some(entry) => Ok(Some((record_of(&entry)?, Some(entry.node)))),
        None => Ok(None),
    }
}

/// The messages of one submission, in recipient order.
pub(crate) async fn of_queue(
    state: &AppState,
    queue_id: &str,
) -> Result<Vec<MessageRecord>, ApiError> {
    let mut out = Vec::new();
    for id in state.spool.by_queue_id(queue_id)? {
        out.extend(state.spool.get(&id)?);
    }
    if out.is_empty() && state.store.is_shared() {
        for entry in state.store.message_log_of_queue(queue_id).await? {
            out.push(record_of(&entry)?);
        }
    }
    Ok(out)
}

/// One page of a workspace's messages, newest first. On this node's
/// spool at most `budget` index entries are examined (a short page comes
/// with a cursor); the shared log filters in its query.
pub(crate) async fn list(
    state: &AppState,
    filter: &ListFilter,
    cursor: Option<&str>,
    limit: usize,
    budget: usize,
) -> Result<Page, ApiError> {
    if !state.store.is_shared() {
        return Ok(state.spool.list_scanning(filter, cursor, limit, budget)?);
    }
    state.events.caught_up(CATCH_UP).await;
    let query = MessageLogQuery {
        to: filter.to.clone(),
        from: filter.from.clone(),
        status: filter.status.map(|s| s.as_str().to_string()),
        tag: filter.tag.clone(),
        since_ms: filter.since_ms,
        until_ms: filter.until_ms,
    };
    let page = state
        .store
        .message_log(&filter.workspace_id, &query, cursor, limit)
        .await?;
    Ok(Page {
        messages: page.items.iter().map(record_of).collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    })
}

fn record_of(entry: &MessageLogEntry) -> Result<MessageRecord, ApiError> {
    serde_json::from_str(&entry.record).map_err(|e| {
        ApiError::from(rackwave_store::StoreError::Corrupt(format!(
            "message {} in the shared log: {e}",
            entry.id
        )))
    })
}

/// How many of a workspace's messages wait in the queue: this node's,
/// or with a shared store every node's.
pub(crate) async fn waiting(state: &AppState, workspace_id: &str) -> Result<u64, ApiError> {
    if !state.store.is_shared() {
        return Ok(state.spool.due_count_of(workspace_id));
    }
    state.events.caught_up(CATCH_UP).await;
    Ok(state.store.message_log_pending(workspace_id).await?)
}
