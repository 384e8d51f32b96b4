//! What goes wrong in Telnxo, classified for the APIs.

use rackwave_core::{Classify, ErrorKind};
use rackwave_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum TelnxoError {
    /// A field of a request is wrong: which, and why (`422`).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A rule of the channel refuses the send (`422` with the rule's code):
    /// WhatsApp's 24-hour window, a spent quota.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    /// What the request names does not exist (or is another workspace's).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Events(#[from] rackwave_events::EventsError),
}

impl Classify for TelnxoError {
    fn kind(&self) -> ErrorKind {
        match self {
            TelnxoError::Invalid { .. } | TelnxoError::Refused { .. } => ErrorKind::Invalid,
            TelnxoError::Conflict(_) => ErrorKind::Conflict,
            TelnxoError::NotFound(_) => ErrorKind::NotFound,
            TelnxoError::Store(e) => e.kind(),
            TelnxoError::Events(e) => e.kind(),
        }
    }
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> TelnxoError {
    TelnxoError::Invalid {
        field,
        message: message.into(),
    }
}
