//! Single sign-on from the portal into the platforms: the one-use tokens
//! the portal issues, the platforms' own sessions, and the audit trail of
//! refusals.

use serde::{Deserialize, Serialize};

/// A sign-on token, kept by its SHA-256 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoToken {
    pub digest: String,
    pub client_id: String,
    pub workspace_id: String,
    /// `migosmtp` or `telnxo`.
    pub platform: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// Set when a platform validated it: it never works again.
    #[serde(default)]
    pub used_at_ms: Option<i64>,
}

/// A platform's own session (its dashboard), kept by its token's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformSession {
    pub digest: String,
    pub platform: String,
    pub workspace_id: String,
    pub client_id: String,
    pub expires_at_ms: i64,
}

/// Something refused that an operator may want to look into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Time-ordered.
    pub id: String,
    pub at_ms: i64,
    /// e.g. `sso.refused`.
    pub kind: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}
