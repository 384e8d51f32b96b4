//! The SMTP servers: submission, and the MX for bounces and complaints.
//!
//! The path of a message reads top to bottom: [`serve`] accepts a
//! connection and applies the connection caps ([`limits`]), the session
//! runs one file per step (greeting and EHLO, AUTH, MAIL, RCPT, DATA/BDAT),
//! and a complete message goes to the intake pipeline
//! (`rackwave-intake`), which checks, stamps, signs and queues it. The
//! session only speaks SMTP: parsing and replies come from
//! `rackwave-smtp-proto`.
//!
//! The same session serves the inbound MX ([`SmtpServer::mx`]): no AUTH,
//! anyone may send, but only to the addresses `rackwave-inbound` takes
//! (our return paths, the feedback address), whose messages go to it
//! instead of the intake.

mod config;
mod limits;
mod listener;
mod metrics;
mod session;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use rackwave_accounts::Accounts;
use rackwave_core::Clock;
use rackwave_inbound::Inbound;
use rackwave_intake::Intake;
use tokio_rustls::TlsAcceptor;

pub use config::SmtpConfig;
pub use listener::serve;
pub use rackwave_core::IpNetwork;

use metrics::SmtpMetrics;

/// Everything a session needs, shared by all sessions.
pub struct SmtpServer {
    config: SmtpConfig,
    role: Role,
    tls: TlsAcceptor,
    metrics: SmtpMetrics,
    connections: limits::ConnectionLimits,
}

/// What a server is for.
pub(crate) enum Role {
    /// Mail submission: authenticated clients, the intake pipeline.
    Submission(Submission),
    /// The MX for bounces and complaints.
    Mx(Inbound),
}

pub(crate) struct Submission {
    pub accounts: Accounts,
    pub intake: Intake,
    pub auth_guard: rackwave_accounts::AuthGuard,
}

impl SmtpServer {
    /// The inbound MX: sessions without AUTH whose recipients and messages
    /// `inbound` judges. Its metrics are registered under `inbound_` in
    /// `registry`.
    pub fn mx(
        config: SmtpConfig,
        inbound: Inbound,
        tls: TlsAcceptor,
        registry: &mut Registry,
    ) -> Arc<SmtpServer> {
        let connections =
            limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        Arc::new(SmtpServer {
            metrics: SmtpMetrics::register(registry.sub_registry_with_prefix("inbound")),
            config,
            role: Role::Mx(inbound),
            tls,
            connections,
        })
    }

    pub(crate) fn submission(&self) -> Option<&Submission> {
        match &self.role {
            Role::Submission(s) => Some(s),
            Role::Mx(_) => None,
        }
    }

    pub fn new(
        config: SmtpConfig,
        accounts: Accounts,
        intake: Intake,
        clock: Clock,
        tls: TlsAcceptor,
        registry: &mut Registry,
    ) -> Arc<SmtpServer> {
        let auth_guard = config.auth_guard(clock);
        let connections =
            limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        Arc::new(SmtpServer {
            config,
            role: Role::Submission(Submission {
                accounts,
                intake,
                auth_guard,
            }),
            tls,
            metrics: SmtpMetrics::register(registry),
            connections,
        })
    }
}
