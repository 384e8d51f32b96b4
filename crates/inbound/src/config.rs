//! `[inbound]` in `config.toml`: the MX for the bounce domain.

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// Where the MX listens (port 25 in production, behind the MX records
    /// of `[delivery] bounce_domain` and of each sending domain's
    /// return-path host). Unset: no MX.
    pub listen: Option<SocketAddr>,
    /// Largest message accepted, in octets: reports quote at most the
    /// original message, so this is smaller than submission's limit.
    pub max_message_size: u64,
    /// The address feedback loops (Yahoo CFL, Microsoft JMRP, …) are
    /// registered with. Unset: `fbl@<[delivery] bounce_domain>`.
    pub feedback_address: Option<String>,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            listen: None,
            max_message_size: 10 * 1024 * 1024,
            feedback_address: None,
        }
    }
}

impl InboundConfig {
    /// The limits that must hold, as a one-line error.
    pub fn check(&self) -> Result<(), String> {
        if self.max_message_size < 1024 {
            return Err("[inbound] max_message_size must be at least 1024".into());
        }
        if let Some(a) = &self.feedback_address {
            let ok = a
                .rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
                && a.is_ascii()
                && !a.contains(|c: char| {
                    c.is_ascii_whitespace() || c.is_ascii_control() || "<>".contains(c)
                });
            if !ok {
                return Err(format!(
                    "[inbound] feedback_address `{a}` is not an address like fbl@bounces.example.com"
                ));
            }
        }
        Ok(())
    }
}
