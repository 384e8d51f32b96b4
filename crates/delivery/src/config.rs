//! `[delivery]` in `config.toml`: DNS, retries, connections, timeouts, and
//! traffic shaping per destination domain.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

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
    /// Messages the scheduler holds leased in memory at most, all
    /// destinations together.
    pub max_in_flight: usize,
    /// Messages one destination may hold in its ready queue (leased, in
    /// memory, waiting for a connection). Beyond it the scheduler stops
    /// leasing that destination's mail, so a slow destination cannot take
    /// the whole `max_in_flight`.
    pub ready_queue_limit: usize,
    /// How long a destination that throttles us (`421 4.7.0 Try again
    /// later`, Gmail's `4.7.28`, Microsoft's `4.7.500`-`4.7.650`, "rate
    /// limited" …) is paused: after its 1st, 2nd, … throttling reply in a
    /// row; the last repeats. Its mail waits without attempts meanwhile.
    /// Empty: never pause (throttling replies are ordinary deferrals).
    pub throttle_pause_secs: Vec<u64>,
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
            ready_queue_limit: 5_000,
            throttle_pause_secs: vec![60, 120, 300, 600, 1200, 1800, 3600],
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
    /// Connections open at once to the destination.
    pub max_connections: usize,
    /// Messages one connection carries before it is closed.
    pub messages_per_connection: usize,
    /// Seconds after which a connection takes no more messages (0: no
    /// limit): reuse is bounded by time, like Postfix's
    /// `smtp_connection_reuse_time_limit`.
    pub connection_reuse_secs: u64,
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
        // A bulk sender's defaults, at least Postfix's: 20 connections per
        // destination (`default_destination_concurrency_limit`), reused for
        // up to 300 s (`smtp_connection_reuse_time_limit`). The count limit
        // is a backstop for receivers that drop very long sessions; at
        // bulk rates a connection reaches it in a few seconds and the
        // reconnect costs one handshake.
        Shaping {
            max_connections: 20,
            messages_per_connection: 1000,
            connection_reuse_secs: 300,
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
    pub connection_reuse_secs: Option<u64>,
    pub messages_per_second: Option<f64>,
    pub messages_per_minute: Option<u32>,
    pub tls: Option<TlsPolicy>,
    pub smarthost: Option<String>,
}

impl DeliveryConfig {
    /// The rules a valid `[delivery]` section keeps, as a one-line error.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_schedule_secs.is_empty() {
            return Err("[delivery] retry_schedule_secs must list at least one delay".into());
        }
        if self.ready_queue_limit == 0 {
            return Err("[delivery] ready_queue_limit must be greater than 0".into());
        }
        let checks = std::iter::once(("[delivery.shaping]".to_string(), self.shaping.clone()))
            .chain(self.domains.keys().map(|domain| {
                (
                    format!("[delivery.domains.\"{domain}\"]"),
                    self.shaping_for(domain),
                )
            }));
        for (name, s) in checks {
            if s.max_connections == 0 || s.messages_per_connection == 0 {
                return Err(format!(
                    "{name} max_connections and messages_per_connection must be greater than 0"
                ));
            }
            if !(s.messages_per_second >= 0.0 && s.messages_per_second.is_finite()) {
                return Err(format!(
                    "{name} messages_per_second must be 0 (unlimited) or positive"
                ));
            }
            if let Some(host) = &s.smarthost {
                if host
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(format!("{name} smarthost must be host:port, got `{host}`"));
                }
            }
        }
        Ok(())
    }

    /// Domain names of the per-domain overrides are matched lowercased.
    pub fn normalize(&mut self) {
        self.domains = std::mem::take(&mut self.domains)
            .into_iter()
            .map(|(domain, o)| (domain.to_ascii_lowercase(), o))
            .collect();
    }

    /// The shaping in force for a destination domain.
    pub fn shaping_for(&self, domain: &str) -> Shaping {
        let mut s = self.shaping.clone();
        if let Some(o) = self.domains.get(&domain.to_ascii_lowercase()) {
            s.max_connections = o.max_connections.unwrap_or(s.max_connections);
            s.messages_per_connection = o
                .messages_per_connection
                .unwrap_or(s.messages_per_connection);
            s.connection_reuse_secs = o.connection_reuse_secs.unwrap_or(s.connection_reuse_secs);
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

    /// The pause after the `n`-th throttling reply in a row (1-based), if
    /// pauses are on.
    pub(crate) fn throttle_pause_ms(&self, n: u32) -> Option<i64> {
        let i = (n.max(1) as usize - 1).min(self.throttle_pause_secs.len().checked_sub(1)?);
        Some(self.throttle_pause_secs[i] as i64 * 1000)
    }
}
