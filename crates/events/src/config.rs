//! `[webhooks]` in `config.toml`.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Allow endpoints on loopback and private addresses (tests do).
    pub allow_private_targets: bool,
    /// How often the emitter and the event feed look for work when nothing
    /// wakes them (new events and finished attempts wake them at once).
    pub poll_interval_ms: u64,
    /// Webhook requests in flight at most, over all endpoints.
    pub max_concurrency: usize,
    /// Webhook requests in flight at most to one endpoint, so a slow or dead
    /// endpoint never holds up the others.
    pub per_endpoint_concurrency: usize,
    /// Whole-request timeout of one webhook attempt (the seed: 30 s).
    pub timeout_secs: u64,
    /// Days the event log and finished webhook deliveries are kept; 0
    /// keeps them forever.
    pub retention_days: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private_targets: false,
            poll_interval_ms: 200,
            max_concurrency: 64,
            per_endpoint_concurrency: 4,
            timeout_secs: 30,
            retention_days: 30,
        }
    }
}

impl WebhooksConfig {
    /// The limits that must not be zero, as a one-line error.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("[webhooks] poll_interval_ms", self.poll_interval_ms),
            ("[webhooks] max_concurrency", self.max_concurrency as u64),
            (
                "[webhooks] per_endpoint_concurrency",
                self.per_endpoint_concurrency as u64,
            ),
            ("[webhooks] timeout_secs", self.timeout_secs),
        ] {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if self.retention_days == 1 {
            // A delivery's retries span 24 h after its first attempt.
            return Err(
                "[webhooks] retention_days must be 0 (keep forever) or at least 2".to_string(),
            );
        }
        Ok(())
    }
}
