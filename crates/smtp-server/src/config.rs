//! `[smtp]` in `config.toml`: listeners, limits, timeouts, AUTH rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rackwave_core::IpNetwork;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Submission listener (STARTTLS offered).
    pub listen: SocketAddr,
    /// Implicit TLS listener; omit to disable.
    pub listen_tls: Option<SocketAddr>,
    /// Name in the greeting, EHLO reply and `Received:` headers.
    pub hostname: String,
    /// PEM certificate chain and key; when both are unset a self-signed
    /// certificate is generated into the data directory on first start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest message accepted, in octets (announced as SIZE).
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Replies of 4xx/5xx after which the session is closed with 421.
    pub max_errors: u32,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// RFC 5321 §4.5.3.2: at least 5 minutes waiting for a command.
    pub command_timeout_secs: u64,
    /// Time allowed for each read while receiving message data.
    pub data_timeout_secs: u64,
    /// Networks from which AUTH is allowed without TLS (538 elsewhere).
    /// Loopback only by default: nothing else crosses no network.
    pub plaintext_auth_networks: Vec<IpNetwork>,
    /// Failed AUTH attempts from one address before it is locked out.
    pub auth_max_failures: u32,
    /// First delay after a failed AUTH; doubles with every further failure.
    pub auth_failure_delay_ms: u64,
    pub auth_lockout_secs: u64,
    /// How long a shutdown waits for transactions in flight.
    pub shutdown_grace_secs: u64,
    /// Largest header section accepted, in octets (Postfix truncates at
    /// 100 KB; a header this large is an attack or a broken client).
    pub max_header_bytes: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: "127.0.0.1:2525".parse().unwrap(),
            listen_tls: Some("127.0.0.1:2465".parse().unwrap()),
            hostname: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            max_connections: 5000,
            max_connections_per_ip: 200,
            command_timeout_secs: 300,
            data_timeout_secs: 180,
            plaintext_auth_networks: vec![
                "127.0.0.0/8".parse().unwrap(),
                "::1/128".parse().unwrap(),
            ],
            auth_max_failures: 5,
            auth_failure_delay_ms: 500,
            auth_lockout_secs: 900,
            shutdown_grace_secs: 30,
            max_header_bytes: 1024 * 1024,
        }
    }
}

impl SmtpConfig {
    /// The limits that must hold, as a one-line error.
    pub fn check(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("[smtp] tls_cert and tls_key must be set together".into());
        }
        if self.max_message_size < 1024 {
            return Err("[smtp] max_message_size must be at least 1024".into());
        }
        for (key, value) in [
            ("[smtp] max_recipients", self.max_recipients as u64),
            ("[smtp] max_connections", self.max_connections as u64),
            (
                "[smtp] max_connections_per_ip",
                self.max_connections_per_ip as u64,
            ),
            ("[smtp] command_timeout_secs", self.command_timeout_secs),
            ("[smtp] data_timeout_secs", self.data_timeout_secs),
            ("[smtp] max_errors", self.max_errors as u64),
            ("[smtp] max_header_bytes", self.max_header_bytes as u64),
        ] {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            return Err("[smtp] hostname must be a host name without spaces".into());
        }
        Ok(())
    }

    /// The login failure guard these settings describe (SMTP AUTH's, and
    /// the portal's, which follows the same rules).
    pub fn auth_guard(&self, clock: rackwave_core::Clock) -> rackwave_accounts::AuthGuard {
        rackwave_accounts::AuthGuard::new(
            clock,
            self.auth_max_failures,
            Duration::from_millis(self.auth_failure_delay_ms),
            Duration::from_secs(self.auth_lockout_secs),
        )
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        let half = SmtpConfig {
            tls_cert: Some("a.pem".into()),
            ..SmtpConfig::default()
        };
        assert!(half.check().unwrap_err().contains("tls_key"));
        let zero = SmtpConfig {
            max_header_bytes: 0,
            ..SmtpConfig::default()
        };
        assert!(zero.check().unwrap_err().contains("max_header_bytes"));
        assert!(SmtpConfig::default().check().is_ok());
    }
}
