//! The SMTP submission server.
//!
//! The path of a message reads top to bottom: [`listener`] accepts a
//! connection and applies the connection caps, [`inbound`] runs the session
//! one file per step (greeting and EHLO, AUTH, MAIL, RCPT, DATA/BDAT), and
//! the accepted message goes to the spool. Parsing ([`command`]) and replies
//! ([`reply`]) are kept apart from I/O.

pub mod command;
mod inbound;
pub mod limits;
mod listener;
pub mod reply;
pub(crate) mod stream;
pub mod tls;

use std::sync::Arc;

use rackwave_queue::Spool;
use tokio_rustls::TlsAcceptor;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::config::SmtpConfig;
use crate::domains::Domains;
use crate::metrics::Metrics;
use crate::quota::Quotas;

pub use listener::serve;

/// The parts of the system a session works with.
#[derive(Clone)]
pub struct Services {
    pub accounts: Accounts,
    pub quotas: Quotas,
    pub spool: Spool,
    pub domains: Domains,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Poked after each accepted message so delivery starts at once.
    pub new_mail: Arc<tokio::sync::Notify>,
}

/// Everything a session needs, shared by all sessions.
pub struct SmtpContext {
    pub config: SmtpConfig,
    pub services: Services,
    pub tls: TlsAcceptor,
    pub auth_guard: limits::AuthGuard,
    pub connections: limits::ConnectionLimits,
}

impl SmtpContext {
    pub fn new(config: SmtpConfig, services: Services, tls: TlsAcceptor) -> Arc<SmtpContext> {
        let auth_guard = limits::AuthGuard::new(
            services.clock.clone(),
            config.auth_max_failures,
            std::time::Duration::from_millis(config.auth_failure_delay_ms),
            std::time::Duration::from_secs(config.auth_lockout_secs),
        );
        let connections =
            limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        Arc::new(SmtpContext {
            config,
            services,
            tls,
            auth_guard,
            connections,
        })
    }
}
