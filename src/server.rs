//! Wires the parts together: storage, accounts, quotas, the SMTP listeners
//! and the HTTP plane, from one [`Config`]; and stops them gracefully.
//!
//! Tests start a [`Server`] in process with listen ports of 0 and a manual
//! [`Clock`]; `rackwave serve` starts the same thing and waits for a signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rackwave_queue::{Spool, SpoolConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accounts::{Accounts, AccountsError};
use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::DeliveryEngine;
use crate::domains::{Domains, DomainsError};
use crate::events::{Events, EventsError};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::quota::Quotas;
use crate::smtp::{self, tls, SmtpContext};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the database in {path}: {source}")]
    Storage { path: PathBuf, source: sled::Error },
    #[error("opening the spool: {0}")]
    Spool(#[from] rackwave_queue::SpoolError),
    #[error("accounts: {0}")]
    Accounts(#[from] AccountsError),
    #[error("sender domains: {0}")]
    Domains(#[from] DomainsError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Delivery(#[from] crate::delivery::EngineError),
    #[error("events: {0}")]
    Events(#[from] EventsError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    pub smtp_addr: SocketAddr,
    pub smtp_tls_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    /// The admin token in force (configured, from the environment, or
    /// generated into the data directory).
    pub admin_token: String,
    pub spool: Spool,
    pub accounts: Accounts,
    pub clock: Clock,
    /// The delivery engine, unless `[delivery] enabled = false`.
    pub delivery: Option<DeliveryEngine>,
    /// The event log and webhook emitter (`kick()` it after moving a
    /// manual clock).
    pub events: Events,
    db: sled::Db,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// File in the data directory holding a generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

impl Server {
    pub async fn start(config: Config, clock: Clock) -> Result<Server, StartError> {
        let data = config.storage.path.clone();
        std::fs::create_dir_all(&data).map_err(|source| StartError::DataDir {
            path: data.clone(),
            source,
        })?;
        let db_path = data.join("db");
        let db = crate::storage::open(&db_path, config.storage.cache_mb).map_err(|source| {
            StartError::Storage {
                path: db_path.clone(),
                source,
            }
        })?;
        let spool = Spool::open(
            &db,
            &data.join("bodies"),
            SpoolConfig {
                group_commit: config.storage.group_commit,
                ..SpoolConfig::default()
            },
        )?;
        let accounts = Accounts::open(&db, clock.clone())?;
        let domains = Domains::open(&db, clock.clone())?;
        let quotas = Quotas::new(spool.clone(), accounts.clone(), clock.clone());
        let metrics = Metrics::new();
        let admin_token = admin_token(&config, &data)?;

        let tls = tls::load_or_generate(
            config.smtp.tls_cert.as_deref(),
            config.smtp.tls_key.as_deref(),
            &data,
            &config.smtp.hostname,
        )?;
        tracing::info!(
            certificate = %tls.cert_path.display(),
            sha256 = %tls.fingerprint,
            "TLS certificate loaded"
        );

        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let events = Events::open(
            &db,
            spool.clone(),
            clock.clone(),
            config.webhooks.clone(),
            metrics.clone(),
        )?;
        let events_task = events.start(shutdown.subscribe());
        tasks.spawn(async move {
            let _ = events_task.await;
        });
        let delivery = if config.delivery.enabled {
            let (engine, task) = DeliveryEngine::start(
                config.delivery.clone(),
                spool.clone(),
                clock.clone(),
                metrics.clone(),
                None,
                shutdown.subscribe(),
            )?;
            tasks.spawn(async move {
                let _ = task.await;
            });
            Some(engine)
        } else {
            None
        };
        let ctx = SmtpContext::new(
            config.smtp.clone(),
            smtp::Services {
                accounts: accounts.clone(),
                quotas,
                spool: spool.clone(),
                domains: domains.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
                new_mail: delivery
                    .as_ref()
                    .map(DeliveryEngine::waker)
                    .unwrap_or_default(),
            },
            tls.acceptor,
        );

        let smtp_listener = bind(config.smtp.listen, "[smtp] listen").await?;
        let smtp_addr = smtp_listener
            .local_addr()
            .expect("bound socket has an address");
        tasks.spawn(smtp::serve(
            ctx.clone(),
            smtp_listener,
            false,
            shutdown.subscribe(),
        ));
        let mut smtp_tls_addr = None;
        if let Some(addr) = config.smtp.listen_tls {
            let l = bind(addr, "[smtp] listen_tls").await?;
            smtp_tls_addr = Some(l.local_addr().expect("bound socket has an address"));
            tasks.spawn(smtp::serve(ctx.clone(), l, true, shutdown.subscribe()));
        }

        let http_listener = bind(config.http.listen, "[http] listen").await?;
        let http_addr = http_listener
            .local_addr()
            .expect("bound socket has an address");
        let state = AppState::new(
            accounts.clone(),
            spool.clone(),
            domains,
            metrics,
            clock.clone(),
            events.clone(),
            &admin_token,
        );
        let app = http::router(state, config.http.max_body_bytes);
        let mut http_shutdown = shutdown.subscribe();
        tasks.spawn(async move {
            let served = axum::serve(http_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_shutdown.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        tracing::info!(%smtp_addr, smtp_tls = ?smtp_tls_addr, %http_addr, "rackwave listening");
        Ok(Server {
            smtp_addr,
            smtp_tls_addr,
            http_addr,
            admin_token,
            spool,
            accounts,
            clock,
            delivery,
            events,
            db,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, lets transactions in flight finish (bounded by
    /// `[smtp] shutdown_grace_secs`), then flushes storage.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Err(e) = crate::storage::flush(&self.db).await {
            tracing::error!(error = %e, "final flush failed");
        }
    }
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, what, source })
}

/// The configured token, else the environment's, else one generated once
/// into the data directory (readable by the owner only).
fn admin_token(config: &Config, data: &Path) -> Result<String, StartError> {
    if let Some(token) = config.admin_token() {
        return Ok(token);
    }
    let path = data.join(ADMIN_TOKEN_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let token = format!("rwadm_{}", crate::ids::random_hex(24));
    crate::storage::write_secret(&path, token.as_bytes()).map_err(|source| {
        StartError::DataDir {
            path: path.clone(),
            source,
        }
    })?;
    tracing::warn!(
        path = %path.display(),
        "no admin token configured: generated one (set [admin] token or RACKWAVE_ADMIN_TOKEN to choose your own)"
    );
    Ok(token)
}

/// `rackwave serve`: runs until SIGTERM or Ctrl-C, then shuts down
/// gracefully.
pub async fn run(config: Config) -> Result<(), StartError> {
    let server = Server::start(config, Clock::System).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: no new connections, finishing transactions in flight");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
