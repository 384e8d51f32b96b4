//! What goes wrong in billing, classified for the APIs.

use rackwave_accounts::AccountsError;
use rackwave_core::{Classify, ErrorKind};
use rackwave_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// A field of a request is wrong: which, and why.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    /// What the request names does not exist (or is another client's).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Accounts(#[from] AccountsError),
    #[error("{0}")]
    Events(#[from] rackwave_events::EventsError),
    #[error("{0}")]
    Money(#[from] crate::gst::MoneyError),
    #[error("{0}")]
    Numbering(#[from] crate::numbering::NumberingError),
}

impl Classify for BillingError {
    fn kind(&self) -> ErrorKind {
        match self {
            BillingError::Invalid { .. } => ErrorKind::Invalid,
            BillingError::Conflict(_) => ErrorKind::Conflict,
            BillingError::NotFound(_) => ErrorKind::NotFound,
            BillingError::Store(e) => e.kind(),
            BillingError::Accounts(e) => e.kind(),
            BillingError::Events(e) => e.kind(),
            BillingError::Money(_) => ErrorKind::Invalid,
            BillingError::Numbering(crate::numbering::NumberingError::Store(e)) => e.kind(),
            BillingError::Numbering(_) => ErrorKind::Internal,
        }
    }
}

/// A request field that is wrong, and why.
pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> BillingError {
    BillingError::Invalid {
        field,
        message: message.into(),
    }
}

/// A reason given by an operator (a suspension, a credit note): 1 to 512
/// characters without control characters, trimmed.
pub(crate) fn check_reason(reason: &str) -> Result<&str, BillingError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 512 || reason.contains(char::is_control) {
        return Err(invalid("reason", "1 to 512 characters"));
    }
    Ok(reason)
}
