//! The SMTP submission server.
//!
//! The path of a message reads top to bottom: [`serve`] accepts a
//! connection and applies the connection caps ([`limits`]), the session
//! runs one file per step (greeting and EHLO, AUTH, MAIL, RCPT, DATA/BDAT),
//! and a complete message goes to the intake pipeline
//! (`rackwave-intake`), which checks, stamps, signs and queues it. The
//! session only speaks SMTP: parsing and replies come from
//! `rackwave-smtp-proto`.

mod config;
mod limits;
mod listener;
mod metrics;
mod session;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use rackwave_accounts::Accounts;
use rackwave_core::Clock;
use rackwave_intake::Intake;
use tokio_rustls::TlsAcceptor;

pub use config::{IpNetwork, SmtpConfig};
pub use listener::serve;

use metrics::SmtpMetrics;

/// Everything a session needs, shared by all sessions.
pub struct SmtpServer {
    config: SmtpConfig,
    accounts: Accounts,
    intake: Intake,
    tls: TlsAcceptor,
    metrics: SmtpMetrics,
    auth_guard: limits::AuthGuard,
    connections: limits::ConnectionLimits,
}

impl SmtpServer {
    pub fn new(
        config: SmtpConfig,
        accounts: Accounts,
        intake: Intake,
        clock: Clock,
        tls: TlsAcceptor,
        registry: &mut Registry,
    ) -> Arc<SmtpServer> {
        let auth_guard = limits::AuthGuard::new(
            clock,
            config.auth_max_failures,
            std::time::Duration::from_millis(config.auth_failure_delay_ms),
            std::time::Duration::from_secs(config.auth_lockout_secs),
        );
        let connections =
            limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        Arc::new(SmtpServer {
            config,
            accounts,
            intake,
            tls,
            metrics: SmtpMetrics::register(registry),
            auth_guard,
            connections,
        })
    }
}
