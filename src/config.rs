//! `config.toml`: every listen address, the data directory, the admin token,
//! limits, timeouts and delivery settings.
//!
//! Unknown keys are errors (a misspelt key silently ignored is a limit that
//! silently does not apply), and every error is reported as one line naming
//! the file, the line and the offending key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Environment variable that overrides `[admin] token`, so the shipped file
/// never has to hold a real secret.
pub const ADMIN_TOKEN_ENV: &str = "RACKWAVE_ADMIN_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Semantic { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub storage: StorageConfig,
    pub smtp: SmtpConfig,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub delivery: DeliveryConfig,
    pub webhooks: WebhooksConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Data directory: the sled database, generated TLS material, the
    /// generated admin token. Relative paths are relative to the config file.
    pub path: PathBuf,
    /// sled page cache in MiB; bounds memory whatever the queue length.
    pub cache_mb: u64,
    /// Share fsyncs between concurrent transactions. Only benchmarks turn it off.
    pub group_commit: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("data"),
            cache_mb: 64,
            group_commit: true,
        }
    }
}

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
        }
    }
}

impl SmtpConfig {
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest JSON request body, in octets.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token of the admin API. Empty: taken from
    /// `RACKWAVE_ADMIN_TOKEN`, else generated once into `<data>/admin-token`.
    pub token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Run the delivery engine. Off: mail is accepted and held (a
    /// submission-only node, or an acceptance benchmark).
    pub enabled: bool,
    /// DNS servers as `ip:port`; empty means the system resolver.
    pub nameservers: Vec<SocketAddr>,
    pub smtp_port: u16,
    /// Name used in EHLO when delivering.
    pub hostname: String,
    /// Domain of the VERP envelope sender used for bounces.
    pub bounce_domain: String,
    /// Delays after the 1st, 2nd, … failed attempt; the last repeats.
    pub retry_schedule_secs: Vec<u64>,
    /// Time after which a message still not delivered bounces as expired.
    pub max_queue_lifetime_secs: u64,
    /// Outbound connections in total, all destinations together.
    pub max_connections: usize,
    pub connect_timeout_secs: u64,
    /// Waiting for the greeting and replies to EHLO, MAIL, RCPT, DATA
    /// (RFC 5321 §4.5.3.2: 5 minutes).
    pub command_timeout_secs: u64,
    /// Waiting for the reply after the final dot (RFC 5321: 10 minutes).
    pub data_timeout_secs: u64,
    /// How often the scheduler looks for due messages when nothing wakes it.
    pub poll_interval_ms: u64,
    /// Messages the scheduler holds leased in memory at most.
    pub max_in_flight: usize,
    /// Traffic shaping and routing for every destination domain.
    pub shaping: Shaping,
    /// Per-domain overrides of `shaping`, e.g. `[delivery.domains."gmail.com"]`.
    pub domains: std::collections::BTreeMap<String, ShapingOverride>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            nameservers: Vec::new(),
            smtp_port: 25,
            hostname: "localhost".into(),
            bounce_domain: "bounces.localhost".into(),
            retry_schedule_secs: vec![300, 900, 1800, 3600, 7200, 14400, 28800],
            max_queue_lifetime_secs: 3 * 86_400,
            max_connections: 500,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            poll_interval_ms: 1000,
            max_in_flight: 20_000,
            shaping: Shaping::default(),
            domains: Default::default(),
        }
    }
}

/// How outbound TLS is used towards a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsPolicy {
    /// STARTTLS when offered, certificate not checked (RFC 7435).
    Opportunistic,
    /// STARTTLS must succeed; certificate not checked.
    Required,
    /// STARTTLS must succeed with a certificate valid for the MX host name.
    RequiredVerified,
    /// Never use TLS.
    Disabled,
}

/// Limits and route for one destination domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shaping {
    pub max_connections: usize,
    pub messages_per_connection: usize,
    /// 0 means unlimited.
    pub messages_per_second: f64,
    /// 0 means unlimited.
    pub messages_per_minute: u32,
    pub tls: TlsPolicy,
    /// Send through this relay (`host:port`) instead of the domain's MX.
    pub smarthost: Option<String>,
}

impl Default for Shaping {
    fn default() -> Self {
        Shaping {
            max_connections: 10,
            messages_per_connection: 100,
            messages_per_second: 0.0,
            messages_per_minute: 0,
            tls: TlsPolicy::Opportunistic,
            smarthost: None,
        }
    }
}

/// A per-domain override; unset fields keep the default shaping.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ShapingOverride {
    pub max_connections: Option<usize>,
    pub messages_per_connection: Option<usize>,
    pub messages_per_second: Option<f64>,
    pub messages_per_minute: Option<u32>,
    pub tls: Option<TlsPolicy>,
    pub smarthost: Option<String>,
}

impl DeliveryConfig {
    /// The shaping in force for a destination domain.
    pub fn shaping_for(&self, domain: &str) -> Shaping {
        let mut s = self.shaping.clone();
        if let Some(o) = self.domains.get(&domain.to_ascii_lowercase()) {
            s.max_connections = o.max_connections.unwrap_or(s.max_connections);
            s.messages_per_connection = o
                .messages_per_connection
                .unwrap_or(s.messages_per_connection);
            s.messages_per_second = o.messages_per_second.unwrap_or(s.messages_per_second);
            s.messages_per_minute = o.messages_per_minute.unwrap_or(s.messages_per_minute);
            s.tls = o.tls.unwrap_or(s.tls);
            if o.smarthost.is_some() {
                s.smarthost = o.smarthost.clone();
            }
        }
        s
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
}

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

/// An IP network in CIDR notation, e.g. `127.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNetwork {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network (like 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(IpNetwork { addr, prefix })
    }
}

impl TryFrom<String> for IpNetwork {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl IpNetwork {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // IPv4-mapped IPv6 peers are matched as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Config {
    /// Reads and validates a config file; relative data paths are resolved
    /// against the file's directory so `--config` works from anywhere.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            Some(&mut config.storage.path),
            config.smtp.tls_cert.as_mut(),
            config.smtp.tls_key.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    text.as_bytes()[..s.start.min(text.len())]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1
                })
                .unwrap_or(1);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                message: e.message().trim().replace('\n', " "),
            }
        })?;
        let mut config = config;
        config.delivery.domains = std::mem::take(&mut config.delivery.domains)
            .into_iter()
            .map(|(domain, o)| (domain.to_ascii_lowercase(), o))
            .collect();
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let fail = |message: String| {
            Err(ConfigError::Semantic {
                path: path.to_path_buf(),
                message,
            })
        };
        self.webhooks.check().or_else(fail)?;
        if self.smtp.tls_cert.is_some() != self.smtp.tls_key.is_some() {
            return fail("[smtp] tls_cert and tls_key must be set together".into());
        }
        if self.smtp.max_message_size < 1024 {
            return fail("[smtp] max_message_size must be at least 1024".into());
        }
        for (key, value) in [
            ("[smtp] max_recipients", self.smtp.max_recipients as u64),
            ("[smtp] max_connections", self.smtp.max_connections as u64),
            (
                "[smtp] max_connections_per_ip",
                self.smtp.max_connections_per_ip as u64,
            ),
            (
                "[smtp] command_timeout_secs",
                self.smtp.command_timeout_secs,
            ),
            ("[smtp] data_timeout_secs", self.smtp.data_timeout_secs),
            ("[smtp] max_errors", self.smtp.max_errors as u64),
        ] {
            if value == 0 {
                return fail(format!("{key} must be greater than 0"));
            }
        }
        if self.delivery.retry_schedule_secs.is_empty() {
            return fail("[delivery] retry_schedule_secs must list at least one delay".into());
        }
        let checks = std::iter::once((
            "[delivery.shaping]".to_string(),
            self.delivery.shaping.clone(),
        ))
        .chain(self.delivery.domains.keys().map(|domain| {
            (
                format!("[delivery.domains.\"{domain}\"]"),
                self.delivery.shaping_for(domain),
            )
        }));
        for (name, s) in checks {
            if s.max_connections == 0 || s.messages_per_connection == 0 {
                return fail(format!(
                    "{name} max_connections and messages_per_connection must be greater than 0"
                ));
            }
            if !(s.messages_per_second >= 0.0 && s.messages_per_second.is_finite()) {
                return fail(format!(
                    "{name} messages_per_second must be 0 (unlimited) or positive"
                ));
            }
            if let Some(host) = &s.smarthost {
                if host
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return fail(format!("{name} smarthost must be host:port, got `{host}`"));
                }
            }
        }
        if self.smtp.hostname.trim().is_empty() || self.smtp.hostname.contains(char::is_whitespace)
        {
            return fail("[smtp] hostname must be a host name without spaces".into());
        }
        Ok(())
    }

    /// The admin token in force: config, then environment; `None` when neither
    /// is set (the server then generates one into the data directory).
    pub fn admin_token(&self) -> Option<String> {
        if !self.admin.token.is_empty() {
            return Some(self.admin.token.clone());
        }
        std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_only() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert!(c.smtp.listen.ip().is_loopback());
        assert!(c.smtp.listen_tls.unwrap().ip().is_loopback());
        assert!(c.http.listen.ip().is_loopback());
        assert_eq!(c.smtp.listen.port(), 2525);
        assert_eq!(c.http.listen.port(), 8080);
    }

    #[test]
    fn unknown_key_is_one_line_naming_file_line_and_key() {
        let text = "[smtp]\nlisten = \"127.0.0.1:25\"\nlisen = 3\n";
        let err = Config::parse(text, Path::new("/etc/rw.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/rw.toml:3:"), "{err}");
        assert!(err.contains("lisen"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn the_shipped_config_is_valid_and_keeps_to_loopback() {
        let c = Config::parse(include_str!("../config.toml"), Path::new("config.toml")).unwrap();
        assert!(c.smtp.listen.ip().is_loopback());
        assert!(c.http.listen.ip().is_loopback());
        assert_eq!(c.webhooks.retention_days, 30);
    }

    #[test]
    fn a_retention_shorter_than_the_retry_window_is_refused() {
        let err = Config::parse("[webhooks]\nretention_days = 1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention_days"), "{err}");
        let keep = Config::parse("[webhooks]\nretention_days = 0\n", Path::new("c.toml")).unwrap();
        assert_eq!(keep.webhooks.retention_days, 0);
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Config::parse("[smtp]\nmax_recipients = \"many\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml:2"), "{err}");
    }

    #[test]
    fn bad_address_is_an_error() {
        let err = Config::parse("[http]\nlisten = \"nowhere\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml:2"), "{err}");
    }

    #[test]
    fn networks() {
        let n: IpNetwork = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let any: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("192.0.2.1".parse().unwrap()));
        assert!(any.contains("::ffff:192.0.2.1".parse().unwrap()));
        let one: IpNetwork = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
        let err = Config::parse(
            "[smtp]\nplaintext_auth_networks = [\"nope\"]\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn half_a_certificate_is_refused() {
        let err = Config::parse("[smtp]\ntls_cert = \"a.pem\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_key"), "{err}");
    }
}
