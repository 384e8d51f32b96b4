//! The message log every node shares. Each node's spool keeps its own
//! messages (their bodies, their queue, their full records); when several
//! nodes share the store, each node's feed consumer also puts the spool's
//! record of every message that changed here, in the transaction that
//! records its events, so a listing or a message's page answers the same
//! from any node. On one node the spool answers by itself and nothing is
//! put here.

use serde::{Deserialize, Serialize};

use crate::sled::keys::component;
use crate::{Result, StoreError};

/// One message as the shared log holds it: the columns its listings
/// filter on, and the spool's record as it stood when last put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLogEntry {
    /// `msg_…`, time-ordered.
    pub id: String,
    pub workspace_id: String,
    /// The submission it belongs to.
    pub queue_id: String,
    /// Envelope sender and recipient, as given (compared case-insensitively).
    pub from: String,
    pub to: String,
    /// `queued`, `deferred`, `delivered` or `bounced`.
    pub status: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at_ms: i64,
    /// When the status became final; the retention counts from it.
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
    /// `[node] id` of the node whose spool holds the message (and its body).
    pub node: String,
    /// The spool's record (JSON), as the spool's crate reads it.
    pub record: String,
}

impl MessageLogEntry {
    /// Refuses an entry the store could not key or index: empty ids, NUL
    /// or `\x01` in a key, NUL anywhere a column keeps it.
    pub fn check(&self) -> Result<()> {
        component("message id", &self.id)?;
        component("workspace id", &self.workspace_id)?;
        component("queue id", &self.queue_id)?;
        component("node id", &self.node)?;
        let columns = [&self.from, &self.to, &self.status]
            .into_iter()
            .chain(self.tags.iter());
        for value in columns {
            if value.contains('\0') {
                return Err(StoreError::Invalid(format!(
                    "message {}: a NUL byte in {value:?}",
                    self.id
                )));
            }
        }
        Ok(())
    }

    /// The recipient as listings compare it.
    pub(crate) fn recipient_key(&self) -> String {
        self.to.to_lowercase()
    }

    /// The sender as listings compare it.
    pub(crate) fn sender_key(&self) -> String {
        self.from.to_lowercase()
    }
}

/// What a listing of a workspace's messages keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageLogQuery {
    /// Recipient (case-insensitive): listed from its own index.
    pub to: Option<String>,
    /// Envelope sender (case-insensitive).
    pub from: Option<String>,
    pub status: Option<String>,
    /// Messages sent with this tag.
    pub tag: Option<String>,
    /// Created at or after, before (unix ms).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl MessageLogQuery {
    /// Whether a listing keeps `entry` (the recipient and the time are the
    /// index's business).
    pub(crate) fn keeps(&self, entry: &MessageLogEntry) -> bool {
        self.status.as_ref().is_none_or(|s| *s == entry.status)
            && self
                .from
                .as_ref()
                .is_none_or(|f| f.to_lowercase() == entry.sender_key())
            && self
                .tag
                .as_ref()
                .is_none_or(|t| entry.tags.iter().any(|x| x == t))
    }
}
