//! The spool's error type.

use thiserror::Error;

/// Errors returned by the spool. Callers mostly need to distinguish
/// "the caller did something wrong" (`NotFound`, `NotLeased`, `AlreadyFinal`,
/// `Invalid`) from "the spool could not do its job" (`Storage`, `Encoding`,
/// `Corrupt`, `Closed`), e.g. to answer SMTP with 4xx versus 5xx or to
/// decide whether to retry.
#[derive(Debug, Error)]
pub enum SpoolError {
    /// The index failed (I/O, corruption), or the sled tree of an earlier
    /// version could not be read. For enqueue this means the message was
    /// NOT durably accepted and the client must be told to retry. Shared,
    /// so a group's failure reaches each of its waiters.
    #[error("spool storage error: {0}")]
    Storage(std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// Reading or writing a body segment file failed. For enqueue this,
    /// like `Storage`, means the message was NOT accepted.
    #[error("spool i/o error ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A record could not be (de)serialized.
    #[error("spool encoding error ({context}): {source}")]
    Encoding {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// Stored data violates the key layout (e.g. a counter of wrong size).
    #[error("spool data corrupt: {0}")]
    Corrupt(String),
    /// No message with this id exists.
    #[error("message {0} not found in spool")]
    NotFound(String),
    /// The message is not leased by this process, so it may not be settled
    /// (another settlement may have already happened, or it was released).
    #[error("message {0} is not leased")]
    NotLeased(String),
    /// The message is already delivered or bounced.
    #[error("message {0} is already final ({1})")]
    AlreadyFinal(String, crate::Status),
    /// The request itself is unacceptable (empty recipient list, NUL bytes
    /// in a key component, malformed cursor ...).
    #[error("invalid spool request: {0}")]
    Invalid(String),
    /// The writer thread is gone (spool shutting down or it panicked).
    #[error("spool writer is closed")]
    Closed,
}

impl From<fjall::Error> for SpoolError {
    fn from(e: fjall::Error) -> Self {
        if matches!(e, fjall::Error::Poisoned) {
            // fjall refuses every write once one to its journal failed:
            // say what the operator can do about it.
            return SpoolError::Storage(std::sync::Arc::new(std::io::Error::other(
                "the spool's index stopped taking writes after a write to its journal failed \
                 (disk full?); restart rackwave once the cause is fixed",
            )));
        }
        SpoolError::Storage(std::sync::Arc::new(e))
    }
}

impl From<sled::Error> for SpoolError {
    fn from(e: sled::Error) -> Self {
        SpoolError::Storage(std::sync::Arc::new(e))
    }
}

impl SpoolError {
    pub(crate) fn encoding(context: impl Into<String>, source: serde_json::Error) -> Self {
        SpoolError::Encoding {
            context: context.into(),
            source,
        }
    }

    /// The same failure for one more caller: a group's failure is reported
    /// to each of its waiters. Keeps whether it is temporary.
    pub(crate) fn for_another_waiter(&self) -> SpoolError {
        match self {
            SpoolError::Storage(e) => SpoolError::Storage(e.clone()),
            SpoolError::Io { context, source } => SpoolError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            SpoolError::Closed => SpoolError::Closed,
            other => SpoolError::Corrupt(other.to_string()),
        }
    }

    /// Whether the failure is transient from the caller's point of view
    /// (storage trouble or shutdown), as opposed to a bad request.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            SpoolError::Storage(_) | SpoolError::Io { .. } | SpoolError::Closed
        )
    }
}

impl rackwave_core::Classify for SpoolError {
    fn kind(&self) -> rackwave_core::ErrorKind {
        use rackwave_core::ErrorKind;
        match self {
            SpoolError::Storage(_) | SpoolError::Io { .. } | SpoolError::Closed => {
                ErrorKind::Unavailable
            }
            SpoolError::Encoding { .. } | SpoolError::Corrupt(_) => ErrorKind::Internal,
            SpoolError::NotFound(_) => ErrorKind::NotFound,
            SpoolError::NotLeased(_) | SpoolError::AlreadyFinal(..) => ErrorKind::Conflict,
            SpoolError::Invalid(_) => ErrorKind::Invalid,
        }
    }
}
