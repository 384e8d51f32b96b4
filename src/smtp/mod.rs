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
mod stream;
pub mod tls;

use std::sync::Arc;

use rackwave_queue::Spool;
use tokio_rustls::TlsAcceptor;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::config::SmtpConfig;
use crate::metrics::Metrics;
use crate::quota::Quotas;

pub use listener::serve;

/// Everything a session needs, shared by all sessions.
pub struct SmtpContext {
    pub config: SmtpConfig,
    pub accounts: Accounts,
    pub quotas: Quotas,
    pub spool: Spool,
    pub metrics: Metrics,
    pub clock: Clock,
    pub tls: TlsAcceptor,
    pub auth_guard: limits::AuthGuard,
    pub connections: limits::ConnectionLimits,
}

impl SmtpContext {
    pub fn new(
        config: SmtpConfig,
        accounts: Accounts,
        quotas: Quotas,
        spool: Spool,
        metrics: Metrics,
        clock: Clock,
        tls: TlsAcceptor,
    ) -> Arc<SmtpContext> {
        let auth_guard = limits::AuthGuard::new(
            clock.clone(),
            config.auth_max_failures,
            std::time::Duration::from_millis(config.auth_failure_delay_ms),
            std::time::Duration::from_secs(config.auth_lockout_secs),
        );
        let connections =
            limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        Arc::new(SmtpContext {
            config,
            accounts,
            quotas,
            spool,
            metrics,
            clock,
            tls,
            auth_guard,
            connections,
        })
    }
}
