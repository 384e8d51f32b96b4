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
    /// Sessions at once, in all and from one address: the MX is open to
    /// anyone, and mailbox providers send reports over few connections.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Waiting for a command, and for each read of message data.
    pub command_timeout_secs: u64,
    pub data_timeout_secs: u64,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            listen: None,
            max_message_size: 10 * 1024 * 1024,
            feedback_address: None,
            max_connections: 200,
            max_connections_per_ip: 20,
            command_timeout_secs: 60,
            data_timeout_secs: 60,
        }
    }
}

impl InboundConfig {
    /// The limits that must hold, as a one-line error.
    pub fn check(&self) -> Result<(), String> {
        if self.max_message_size < 1024 {
            return Err("[inbound] max_message_size must be at least 1024".into());
        }
        for (key, value) in [
            ("[inbound] max_connections", self.max_connections as u64),
            (
                "[inbound] max_connections_per_ip",
                self.max_connections_per_ip as u64,
            ),
            ("[inbound] command_timeout_secs", self.command_timeout_secs),
            ("[inbound] data_timeout_secs", self.data_timeout_secs),
        ] {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
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
