//! `config.toml`, assembled from the sections each part of the system
//! defines (`[smtp]` by the SMTP server, `[delivery]` by the delivery
//! engine, `[webhooks]` by the events service) and the binary's own
//! (`[storage]`, `[spool]`, `[http]`, `[admin]`).
//!
//! Unknown keys are errors (a misspelt key silently ignored is a limit that
//! silently does not apply), and every error is reported as one line naming
//! the file, the line and the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rackwave_billing::BillingConfig;
use rackwave_delivery::DeliveryConfig;
use rackwave_events::WebhooksConfig;
use rackwave_inbound::InboundConfig;
use rackwave_smtp_server::SmtpConfig;
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
    pub spool: SpoolSection,
    pub smtp: SmtpConfig,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub delivery: DeliveryConfig,
    pub webhooks: WebhooksConfig,
    pub domains: DomainsConfig,
    pub tracking: TrackingConfig,
    pub inbound: InboundConfig,
    pub billing: BillingConfig,
    pub notifications: rackwave_notifications::NotificationsConfig,
    pub telnxo: rackwave_telnxo::TelnxoConfig,
    pub sso: rackwave_billing::SsoConfig,
    pub node: NodeConfig,
}

/// `[node]`: this node among several sharing one database.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Its name in `Received:` fields, the metrics (`rackwave_node_info`)
    /// and the log; unset: the machine's host name.
    pub id: Option<String>,
}

impl NodeConfig {
    /// The node's id: as configured, else the host name, else `node`.
    pub fn id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| Self::valid(h))
                .unwrap_or_else(|| "node".into())
        })
    }

    /// Letters, digits, `.`, `-`, `_`; 1 to 64 of them (it goes into
    /// header fields and metric labels as it is).
    fn valid(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    }

    fn check(&self) -> Result<(), String> {
        match &self.id {
            Some(id) if !Self::valid(id) => Err(format!(
                "[node] id {id:?} must be 1 to 64 letters, digits, dots, dashes or underscores"
            )),
            _ => Ok(()),
        }
    }
}

/// `[tracking]`: the links MigoSMTP puts in messages for their recipients
/// (one-click unsubscribe).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// The public URL of the tracking endpoints, served by the HTTP plane
    /// (`https://t.example.com`). Unset: `http://<[http] listen>`, which
    /// only the machine itself can reach.
    pub base_url: Option<String>,
    /// The key that signs the links (at least 16 characters). Unset: one
    /// is generated into the data directory (`tracking.key`). Changing it
    /// makes the links of messages already sent invalid.
    pub secret: Option<String>,
    /// Networks whose opens and clicks are a machine's (`machine: true`):
    /// a mail provider's image proxies (Apple publishes the egress ranges
    /// of its relays), a security gateway's scanners.
    pub machine_networks: Vec<rackwave_core::IpNetwork>,
}

impl TrackingConfig {
    fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.base_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| {
                !r.is_empty()
                    && !r.starts_with('/')
                    && !r.contains(['?', '#', ' ', '<', '>', '"', ','])
                    && !r.contains(|c: char| c.is_ascii_control())
                    && r.is_ascii()
            });
            if !ok {
                return Err(format!(
                    "[tracking] base_url {url:?} must be an http:// or https:// URL without query or fragment"
                ));
            }
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("[tracking] secret must be at least 16 characters".into());
        }
        Ok(())
    }

    /// The base URL in force, given the address the HTTP plane is bound
    /// to.
    pub fn base_url(&self, http_addr: SocketAddr) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{http_addr}"),
        }
    }
}

/// `[domains]`: what sending domains are told to publish.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsConfig {
    /// The host senders `include:` in their SPF record (the provider's
    /// SPF record listing its sending IPs). Unset: `a:<[delivery]
    /// hostname>`.
    pub spf_include: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Data directory: the database, the message bodies, generated TLS
    /// material, the generated admin token. Relative paths are relative to
    /// the config file.
    pub path: PathBuf,
    /// sled page cache in MiB; bounds memory whatever the queue length.
    pub cache_mb: u64,
    /// Share fsyncs between concurrent transactions. Only benchmarks turn it off.
    pub group_commit: bool,
    /// Where the shared state lives: `sled` (embedded, one node) or
    /// `postgres` (several nodes sharing one database; each node's spool
    /// stays in `path`).
    pub backend: StorageBackend,
    /// `[storage.postgres]`: one database per part, possibly the same.
    pub postgres: PostgresSection,
}

/// `[storage] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Sled,
    Postgres,
}

/// `[storage.postgres]`: connection URLs (`postgres://user@host/db`, with
/// `?sslmode=require` for TLS) of the portal's, MigoSMTP's and Telnxo's
/// databases, which may name the same database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSection {
    pub portal_url: Option<String>,
    pub migosmtp_url: Option<String>,
    pub telnxo_url: Option<String>,
    /// Connections of each pool.
    pub max_connections: usize,
}

impl Default for PostgresSection {
    fn default() -> Self {
        PostgresSection {
            portal_url: None,
            migosmtp_url: None,
            telnxo_url: None,
            max_connections: 16,
        }
    }
}

impl PostgresSection {
    /// Each part's database URL (`portal`, `migosmtp`, `telnxo`), or what
    /// is missing.
    pub fn databases(&self) -> Result<Vec<(&'static str, &str)>, String> {
        [
            ("portal", &self.portal_url),
            ("migosmtp", &self.migosmtp_url),
            ("telnxo", &self.telnxo_url),
        ]
        .into_iter()
        .map(|(part, url)| {
            url.as_deref()
                .filter(|u| !u.trim().is_empty())
                .map(|u| (part, u))
                .ok_or_else(|| format!("[storage.postgres] {part}_url is not set"))
        })
        .collect()
    }
}

impl StorageConfig {
    fn check(&self) -> Result<(), String> {
        if self.backend == StorageBackend::Postgres {
            self.postgres.databases()?;
        }
        if self.postgres.max_connections == 0 {
            return Err("[storage.postgres] max_connections must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("data"),
            cache_mb: 64,
            group_commit: true,
            backend: StorageBackend::Sled,
            postgres: PostgresSection::default(),
        }
    }
}

/// `[spool]`: how long finished messages stay listed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// Days the records of delivered and bounced messages are kept (a
    /// fraction is allowed, e.g. `0.5`); 0 keeps them forever.
    pub retention_days: f64,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            retention_days: 30.0,
        }
    }
}

impl SpoolSection {
    /// The retention in milliseconds (0: forever).
    pub fn retention_ms(&self) -> i64 {
        (self.retention_days * 86_400_000.0).round() as i64
    }

    fn check(&self) -> Result<(), String> {
        if !(self.retention_days.is_finite() && self.retention_days >= 0.0) {
            return Err("[spool] retention_days must be 0 (keep forever) or positive".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest JSON request body of the admin and platform APIs, in octets.
    pub max_body_bytes: usize,
    /// Largest request body of the send API (a message with attachments,
    /// a batch), in octets.
    pub max_send_bytes: usize,
    /// Largest attachment of the send API, decoded, in octets.
    pub max_attachment_bytes: usize,
    /// Requests a second each platform API key may make, sustained (0: no
    /// limit), and at once after a quiet spell.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// The portal's anonymous calls (sign-up, login, password resets) a
    /// minute from one address (IPv6: one /64), and as many at once; 0:
    /// no limit.
    pub portal_rate_limit_per_minute: u32,
    /// The address people reach this HTTP plane at (`https://portal.example.com`),
    /// for links in emails (password resets). Unset: `http://<listen>`.
    pub public_url: Option<String>,
}

impl HttpConfig {
    /// The public URL of the HTTP plane (see `public_url`), no trailing `/`.
    pub fn public_url(&self, http_addr: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{http_addr}"),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            max_body_bytes: 1024 * 1024,
            // Room for a 10 MiB attachment in base64 and the rest of the
            // message, or a batch of ordinary messages.
            max_send_bytes: 20 * 1024 * 1024,
            max_attachment_bytes: 10 * 1024 * 1024,
            // Generous: a busy app sending one message per request stays
            // under it; a runaway loop or a key guesser does not.
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            public_url: None,
            portal_rate_limit_per_minute: 30,
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
        let mut config: Config = toml::from_str(text).map_err(|e| {
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
        config.delivery.normalize();
        [
            config.storage.check(),
            config.node.check(),
            config.smtp.check(),
            config.delivery.check(),
            config.webhooks.check(),
            config.spool.check(),
            config.tracking.check(),
            config.inbound.check(),
            config.billing.check(),
            config.telnxo.check(),
            config.sso.check(),
            rackwave_notifications::Templates::load(config.notifications.templates_dir.as_deref())
                .map(|_| ()),
        ]
        .into_iter()
        .collect::<Result<(), String>>()
        .map_err(|message| ConfigError::Semantic {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
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
    fn tracking_urls_and_secrets_are_checked() {
        let ok = Config::parse(
            "[tracking]\nbase_url = \"https://t.example.com/\"\nsecret = \"0123456789abcdef\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(ok.tracking.base_url(addr), "https://t.example.com");
        assert_eq!(
            Config::parse("", Path::new("c.toml"))
                .unwrap()
                .tracking
                .base_url(addr),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "base_url = \"ftp://t.example.com\"",
            "base_url = \"https://\"",
            "base_url = \"https://t.example.com/?x=1\"",
            "base_url = \"https://t.example.com/a,b\"",
            "base_url = \"https://t.example.com/\\r\\nX: y\"",
            "secret = \"short\"",
        ] {
            let text = format!("[tracking]\n{bad}\n");
            assert!(
                matches!(
                    Config::parse(&text, Path::new("c.toml")),
                    Err(ConfigError::Semantic { .. })
                ),
                "{bad}"
            );
        }
    }

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
    fn spool_retention_is_days_and_may_be_a_fraction() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.spool.retention_ms(), 30 * 86_400_000);
        let c = Config::parse("[spool]\nretention_days = 0.5\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.spool.retention_ms(), 43_200_000);
        let keep = Config::parse("[spool]\nretention_days = 0\n", Path::new("c.toml")).unwrap();
        assert_eq!(keep.spool.retention_ms(), 0);
        let err = Config::parse("[spool]\nretention_days = -1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention_days"), "{err}");
    }

    #[test]
    fn the_header_cap_is_a_setting() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.smtp.max_header_bytes, 1024 * 1024);
        let c = Config::parse("[smtp]\nmax_header_bytes = 65536\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.smtp.max_header_bytes, 65536);
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
    fn a_bad_network_names_itself() {
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
