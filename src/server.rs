//! Wires the parts together from one [`Config`]: the data directory (the
//! embedded database, shared by the store and the spool, and the body
//! segments), accounts, the intake, the SMTP listeners, the delivery
//! engine, events and webhooks, and the HTTP plane; and stops them
//! gracefully.
//!
//! Tests start a [`Server`] in process with listen ports of 0 and a manual
//! [`Clock`]; `rackwave serve` starts the same thing and waits for a signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::registry::Registry;
use rackwave_accounts::{Accounts, Domains, Suppressions};
use rackwave_core::Clock;
use rackwave_delivery::DeliveryEngine;
use rackwave_events::Events;
use rackwave_intake::{Intake, IntakeConfig, Quotas};
use rackwave_queue::{Spool, SpoolConfig};
use rackwave_smtp_server::SmtpServer;
use rackwave_store::{Database, Store, StoreError};
use rackwave_tracking::TrackingKey;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::metrics::SpoolCollector;
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the database in {path}: {source}")]
    Storage { path: PathBuf, source: StoreError },
    #[error("[storage.postgres]: {0}")]
    Postgres(StoreError),
    #[error("opening the spool: {0}")]
    Spool(#[from] rackwave_queue::SpoolError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Delivery(#[from] rackwave_delivery::EngineError),
    #[error("[delivery] nameservers: {0}")]
    Resolver(String),
    #[error("[notifications]: {0}")]
    Notifications(String),
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
    /// The inbound MX, when `[inbound] listen` is set.
    pub inbound_addr: Option<SocketAddr>,
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
    /// The Telnxo platform (`kick()` it after moving a manual clock).
    pub telnxo: rackwave_telnxo::Telnxo,
    store: Store,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// File in the data directory holding a generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The generated key of tracking links, in the data directory.
pub const TRACKING_KEY_FILE: &str = "tracking.key";

impl Server {
    pub async fn start(config: Config, clock: Clock) -> Result<Server, StartError> {
        let node_id = config.node.id();
        let data = config.storage.path.clone();
        std::fs::create_dir_all(&data).map_err(|source| StartError::DataDir {
            path: data.clone(),
            source,
        })?;
        let db_path = data.join("db");
        let storage = |source| StartError::Storage {
            path: db_path.clone(),
            source,
        };
        // One embedded database: the spool's tree, and the store's unless
        // the store is shared on PostgreSQL (the spool stays on the node).
        let database = Database::open(&db_path, config.storage.cache_mb).map_err(storage)?;
        let store = match config.storage.backend {
            crate::config::StorageBackend::Sled => database.store().map_err(storage)?,
            crate::config::StorageBackend::Postgres => {
                let pg = &config.storage.postgres;
                let url = |u: &Option<String>| u.clone().unwrap_or_default();
                let (portal, migosmtp, telnxo) = (
                    url(&pg.portal_url),
                    url(&pg.migosmtp_url),
                    url(&pg.telnxo_url),
                );
                rackwave_store::postgres::Databases {
                    portal: &portal,
                    migosmtp: &migosmtp,
                    telnxo: &telnxo,
                    max_connections: pg.max_connections,
                }
                .store()
                .await
                .map_err(StartError::Postgres)?
            }
        };
        let spool = Spool::open_in(
            &database,
            &data.join("bodies"),
            SpoolConfig {
                group_commit: config.storage.group_commit,
                ..SpoolConfig::default()
            },
        )?;
        // Before any id is drawn: with several nodes on one store, each
        // puts its own number into its ids.
        let feed = feed_position(&config, &data).map_err(|source| StartError::DataDir {
            path: data.join(SPOOL_ID_FILE),
            source,
        })?;
        let id_number = if store.is_shared() {
            let number = crate::node::take_id_number(&store, &feed, &clock)
                .await
                .map_err(StartError::Postgres)?;
            rackwave_core::set_id_node(number);
            Some(number)
        } else {
            None
        };
        let mut registry = Registry::with_prefix("rackwave");
        registry.register_collector(Box::new(SpoolCollector(spool.clone())));
        registry.register(
            "node",
            "This node ([node] id) among several sharing one database",
            prometheus_client::metrics::info::Info::new(vec![("id", node_id.clone())]),
        );
        let accounts = Accounts::new(store.clone(), clock.clone());
        // Before any listener: a suspended workspace sends nothing, from
        // the first connection on, and nothing it queued before goes out.
        accounts
            .load_suspended()
            .await
            .map_err(|e| storage(rackwave_store::StoreError::Unavailable(e.to_string())))?;
        {
            let accounts = accounts.clone();
            spool.hold_lanes(Arc::new(move |ws| accounts.is_suspended(ws)));
        }
        let domains = Domains::new(store.clone(), accounts.clone(), clock.clone());
        let suppressions = Suppressions::new(store.clone(), clock.clone());
        let admin_token = admin_token(&config, &data)?;
        // Bound first: links made before it is serving point at its real
        // address when no base URL is configured (port 0 in tests).
        let http_listener = bind(config.http.listen, "[http] listen").await?;
        let http_addr = http_listener
            .local_addr()
            .expect("bound socket has an address");
        let tracking = rackwave_intake::Tracking {
            key: tracking_key(&config, &data)?,
            base_url: config.tracking.base_url(http_addr),
        };
        if !tracking.base_url.starts_with("https://") {
            tracing::warn!(
                base_url = %tracking.base_url,
                "[tracking] base_url is not https: mailbox providers act on one-click unsubscribe only over HTTPS (RFC 8058), and recipients cannot reach this address unless it is public"
            );
        }
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
        if let Some(number) = id_number {
            tasks.spawn(crate::node::keep_id_number(
                store.clone(),
                feed.clone(),
                clock.clone(),
                number,
                shutdown.subscribe(),
            ));
        }
        let new_mail = Arc::new(Notify::new());
        let intake = Intake::new(
            IntakeConfig {
                hostname: config.smtp.hostname.clone(),
                node_id: node_id.clone(),
                max_header_bytes: config.smtp.max_header_bytes,
            },
            rackwave_intake::Parts {
                spool: spool.clone(),
                domains: domains.clone(),
                suppressions: suppressions.clone(),
                quotas: match config.storage.backend {
                    crate::config::StorageBackend::Sled => {
                        Quotas::new(spool.clone(), store.clone(), clock.clone())
                    }
                    crate::config::StorageBackend::Postgres => {
                        Quotas::shared(spool.clone(), store.clone(), clock.clone())
                    }
                },
                clock: clock.clone(),
                new_mail: new_mail.clone(),
                policies: Vec::new(),
                tracking: Some(tracking.clone()),
            },
            &mut registry,
        );
        let events = Events::open(
            store.clone(),
            spool.clone(),
            clock.clone(),
            config.webhooks.clone(),
            rackwave_events::Node {
                id: &node_id,
                feed: &feed,
                keep_messages_ms: config.spool.retention_ms(),
                keep_pending_ms: i64::try_from(config.delivery.max_queue_lifetime_secs)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            },
            &mut registry,
        );
        let events_task = events.start(shutdown.subscribe());
        tasks.spawn(async move {
            let _ = events_task.await;
        });
        tasks.spawn(rackwave_queue::retention::run(
            spool.clone(),
            clock.clone(),
            config.spool.retention_ms(),
            shutdown.subscribe(),
        ));
        let delivery = if config.delivery.enabled {
            let (engine, task) = DeliveryEngine::start(
                config.delivery.clone(),
                spool.clone(),
                clock.clone(),
                tracking.key.clone(),
                new_mail,
                &mut registry,
                shutdown.subscribe(),
            )?;
            tasks.spawn(async move {
                let _ = task.await;
            });
            Some(engine)
        } else {
            None
        };
        let smtp = SmtpServer::new(
            config.smtp.clone(),
            accounts.clone(),
            intake.clone(),
            clock.clone(),
            tls.acceptor.clone(),
            &mut registry,
        );

        let smtp_listener = bind(config.smtp.listen, "[smtp] listen").await?;
        let smtp_addr = smtp_listener
            .local_addr()
            .expect("bound socket has an address");
        tasks.spawn(rackwave_smtp_server::serve(
            smtp.clone(),
            smtp_listener,
            false,
            shutdown.subscribe(),
        ));
        let mut smtp_tls_addr = None;
        if let Some(addr) = config.smtp.listen_tls {
            let l = bind(addr, "[smtp] listen_tls").await?;
            smtp_tls_addr = Some(l.local_addr().expect("bound socket has an address"));
            tasks.spawn(rackwave_smtp_server::serve(
                smtp.clone(),
                l,
                true,
                shutdown.subscribe(),
            ));
        }

        let mut inbound_addr = None;
        if let Some(addr) = config.inbound.listen {
            let inbound = rackwave_inbound::Inbound::new(
                rackwave_inbound::Parts {
                    config: config.inbound.clone(),
                    bounce_domain: config.delivery.bounce_domain.clone(),
                    key: tracking.key.clone(),
                    spool: spool.clone(),
                    events: events.clone(),
                    clock: clock.clone(),
                },
                &mut registry,
            );
            let mx = SmtpServer::mx(
                rackwave_smtp_server::SmtpConfig {
                    max_message_size: config.inbound.max_message_size,
                    max_connections: config.inbound.max_connections,
                    max_connections_per_ip: config.inbound.max_connections_per_ip,
                    command_timeout_secs: config.inbound.command_timeout_secs,
                    data_timeout_secs: config.inbound.data_timeout_secs,
                    ..config.smtp.clone()
                },
                inbound,
                tls.acceptor.clone(),
                &mut registry,
            );
            let l = bind(addr, "[inbound] listen").await?;
            inbound_addr = Some(l.local_addr().expect("bound socket has an address"));
            tasks.spawn(rackwave_smtp_server::serve(
                mx,
                l,
                false,
                shutdown.subscribe(),
            ));
        }

        let billing = rackwave_billing::Billing::new(
            store.clone(),
            clock.clone(),
            accounts.clone(),
            events.clone(),
            Arc::new(config.billing.clone()),
            &node_id,
        );
        {
            // Also when disabled: it then forgets queued notices unsent.
            let templates = rackwave_notifications::Templates::load(
                config.notifications.templates_dir.as_deref(),
            )
            .map_err(StartError::Notifications)?;
            let notifier = rackwave_notifications::Notifier::new(
                store.clone(),
                intake.clone(),
                clock.clone(),
                templates,
                &config.notifications,
                &config.smtp.hostname,
            );
            notifier
                .ensure_workspace(&accounts)
                .await
                .map_err(|e| StartError::Notifications(e.to_string()))?;
            tasks.spawn(notifier.run(std::time::Duration::from_millis(500), shutdown.subscribe()));
        }
        if config.billing.cycle_secs > 0 {
            tasks.spawn(billing_cycle(
                billing.clone(),
                std::time::Duration::from_secs(config.billing.cycle_secs),
                shutdown.subscribe(),
            ));
        }
        let clients = rackwave_billing::Clients::new(
            store.clone(),
            clock.clone(),
            config.smtp.auth_guard(clock.clone()),
            &config.http.public_url(http_addr),
        );
        let telnxo = rackwave_telnxo::Telnxo::start(
            rackwave_telnxo::Parts {
                store: store.clone(),
                events: events.clone(),
                clock: clock.clone(),
                config: config.telnxo.clone(),
                plans: config
                    .billing
                    .plans
                    .iter()
                    .filter(|p| p.platform == "telnxo")
                    .map(|p| {
                        let allowances = rackwave_telnxo::Allowances {
                            sms: p.sms_allowance,
                            whatsapp: p.whatsapp_allowance,
                            voice_minutes: p.voice_minutes,
                        };
                        (p.id.clone(), allowances)
                    })
                    .collect(),
                held: {
                    let accounts = accounts.clone();
                    Arc::new(move |ws: &str| accounts.is_suspended(ws))
                },
            },
            shutdown.subscribe(),
            &mut tasks,
        );
        let public_url = config.http.public_url(http_addr);
        let sso_secrets = sso_secrets(&config, &data)?;
        let sso = rackwave_billing::Sso::new(
            store.clone(),
            clock.clone(),
            &config.sso,
            sso_secrets.clone(),
        );
        let url_or = |u: &Option<String>| {
            u.as_deref()
                .map_or(public_url.clone(), |u| u.trim_end_matches('/').to_string())
        };
        let sso_urls = rackwave_http::SsoUrls {
            portal: url_or(&config.sso.portal_url),
            migosmtp: url_or(&config.sso.migosmtp_url),
            telnxo: url_or(&config.sso.telnxo_url),
        };
        let state = rackwave_http::AppState::new(rackwave_http::Parts {
            sso,
            sso_urls,
            sso_secrets,
            telnxo: telnxo.clone(),
            accounts: accounts.clone(),
            domains,
            suppressions,
            tracking_key: tracking.key.clone(),
            spool: spool.clone(),
            events: events.clone(),
            clock: clock.clone(),
            registry: Arc::new(registry),
            admin_token: admin_token.clone(),
            destinations: delivery.as_ref().map(|d| d.destinations().clone()),
            intake,
            store: store.clone(),
            dns: rackwave_delivery::DnsLookup::new(&config.delivery.nameservers)
                .map_err(StartError::Resolver)?,
            dns_setup: rackwave_accounts::DnsSetup {
                spf_mechanism: match &config.domains.spf_include {
                    Some(host) => format!("include:{host}"),
                    None => format!("a:{}", config.delivery.hostname),
                },
                bounce_domain: config.delivery.bounce_domain.clone(),
                tracking_target: tracking_host(&tracking.base_url),
            },
            machine_networks: config.tracking.machine_networks.clone(),
            clients: clients.clone(),
            billing,
            portal_rate_limit_per_minute: config.http.portal_rate_limit_per_minute,
            rate_limit: rackwave_http::RateLimit {
                per_second: config.http.rate_limit_per_second,
                burst: config.http.rate_limit_burst,
            },
            send: rackwave_http::SendSettings {
                hostname: config.smtp.hostname.clone(),
                max_attachment_bytes: config.http.max_attachment_bytes,
            },
        });
        tasks.spawn(forget_expired_logins(clients.clone(), shutdown.subscribe()));
        if config.storage.backend == crate::config::StorageBackend::Postgres {
            tasks.spawn(follow_suspensions(accounts.clone(), shutdown.subscribe()));
        }
        tasks.spawn(rackwave_http::idempotency::forget_old_keys(
            store.clone(),
            clock.clone(),
            shutdown.subscribe(),
        ));
        let app = rackwave_http::router(
            state,
            rackwave_http::BodyLimits {
                json: config.http.max_body_bytes,
                send: config.http.max_send_bytes,
            },
        );
        let mut http_shutdown = shutdown.subscribe();
        tasks.spawn(async move {
            // The peer's address reaches the tracking endpoints.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(http_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_shutdown.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        tracing::info!(node = %node_id, %smtp_addr, smtp_tls = ?smtp_tls_addr, inbound = ?inbound_addr, %http_addr, "rackwave listening");
        Ok(Server {
            smtp_addr,
            smtp_tls_addr,
            inbound_addr,
            http_addr,
            admin_token,
            spool,
            accounts,
            clock,
            delivery,
            events,
            telnxo,
            store,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, lets transactions in flight finish (bounded by
    /// `[smtp] shutdown_grace_secs`), then flushes storage.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Err(e) = self.store.flush().await {
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
/// The file naming this data directory's spool among the nodes' (see
/// [`feed_position`]).
pub const SPOOL_ID_FILE: &str = "spool.id";

/// The store's name for this node's position in its spool's change feed.
/// One node keeps `feed`. Nodes sharing a store each name theirs after
/// their spool, by an id made when the data directory is first used: a
/// rebuilt directory (whose spool counts its feed from the start again)
/// gets a new one, and two nodes never share one, even with one `[node]
/// id`.
pub fn feed_position(config: &Config, data: &Path) -> std::io::Result<String> {
    if config.storage.backend == crate::config::StorageBackend::Sled {
        return Ok("feed".into());
    }
    let path = data.join(SPOOL_ID_FILE);
    let id = match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => existing.trim().to_string(),
        _ => {
            std::fs::create_dir_all(data)?;
            let id = rackwave_core::random_hex(12);
            std::fs::write(&path, &id)?;
            id
        }
    };
    Ok(format!("feed:{id}"))
}

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
    let token = format!("rwadm_{}", rackwave_core::random_hex(24));
    write_secret(&path, token.as_bytes()).map_err(|source| StartError::DataDir {
        path: path.clone(),
        source,
    })?;
    tracing::warn!(
        path = %path.display(),
        "no admin token configured: generated one (set [admin] token or RACKWAVE_ADMIN_TOKEN to choose your own)"
    );
    Ok(token)
}

/// The billing cycle, every `[billing] cycle_secs` until shutdown (also
/// run by `POST /admin/v1/billing/run`): conversions, renewals, dunning;
/// on one node at a time.
async fn billing_cycle(
    billing: rackwave_billing::Billing,
    every: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match billing.run_held().await {
            // Another node runs it.
            Ok(None) => {}
            Ok(Some(r)) if r.is_empty() => {}
            Ok(Some(r)) => tracing::info!(
                converted = r.converted,
                renewed = r.renewed,
                reminded = r.reminded,
                overdue = r.overdue,
                suspended = r.suspended,
                failed = r.failed,
                "billing cycle"
            ),
            Err(e) => tracing::warn!(error = %e, "billing cycle failed; next in a minute"),
        }
    }
}

/// How often a node sharing the store reads which workspaces are
/// suspended: how long a suspension made on another node takes to stop
/// this one's sending.
const SUSPENSIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Several nodes: a workspace suspended (or let go) by another node's
/// billing or operator stops (or resumes) sending here too. This node's
/// own suspensions take effect at once; the others' within
/// [`SUSPENSIONS_EVERY`].
async fn follow_suspensions(accounts: Accounts, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SUSPENSIONS_EVERY) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(e) = accounts.load_suspended().await {
            tracing::warn!(error = %e, "reading suspended workspaces failed; next in {:?}", SUSPENSIONS_EVERY);
        }
    }
}

/// Every hour until shutdown: expired portal logins and reset links are
/// deleted (a lapsed one is refused anyway; this keeps the store small).
async fn forget_expired_logins(
    clients: rackwave_billing::Clients,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = clients.forget_expired().await {
            tracing::warn!(error = %e, "forgetting expired portal logins failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// The host of a tracking base URL (`https://t.example.com:8443/x` →
/// `t.example.com`): what a sending domain's tracking host points at.
fn tracking_host(base_url: &str) -> String {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_string(),
        None => authority.split(':').next().unwrap_or(authority).to_string(),
    }
}

/// The key that signs tracking links: `[tracking] secret`, else one kept in
/// the data directory (generated on first start).
fn tracking_key(config: &Config, data: &Path) -> Result<TrackingKey, StartError> {
    if let Some(secret) = &config.tracking.secret {
        return Ok(
            TrackingKey::new(secret.as_bytes().to_vec()).expect("checked when the config was read")
        );
    }
    let path = data.join(TRACKING_KEY_FILE);
    let data_dir = |source| StartError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => TrackingKey::new(bytes).ok_or_else(|| {
            data_dir(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the tracking key is shorter than 16 bytes",
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            write_secret(&path, &key).map_err(data_dir)?;
            Ok(TrackingKey::new(key).expect("32 bytes"))
        }
        Err(e) => Err(data_dir(e)),
    }
}

/// Writes a secret (a generated key or token) readable by its owner only,
/// and fsyncs it: it is used right away, so it must survive a crash.
/// Each platform's single sign-on secret: configured, else generated once
/// into the data directory (`sso-<platform>.secret`). The portal and the
/// platforms of one process read the same files; platforms on other hosts
/// are given the secret in their `[sso]`.
fn sso_secrets(
    config: &Config,
    data: &Path,
) -> Result<std::collections::HashMap<rackwave_core::Platform, String>, StartError> {
    use rackwave_core::Platform;
    let mut out = std::collections::HashMap::new();
    for (platform, configured) in [
        (Platform::Migosmtp, &config.sso.migosmtp_secret),
        (Platform::Telnxo, &config.sso.telnxo_secret),
    ] {
        let secret = match configured {
            Some(s) => s.clone(),
            None => {
                let path = data.join(format!("sso-{}.secret", platform.as_str()));
                let data_dir = |source| StartError::DataDir {
                    path: path.clone(),
                    source,
                };
                match std::fs::read_to_string(&path) {
                    Ok(s) if s.trim().len() >= 16 => s.trim().to_string(),
                    Ok(_) | Err(_) => {
                        let s = rackwave_core::random_hex(32);
                        write_secret(&path, s.as_bytes()).map_err(data_dir)?;
                        s
                    }
                }
            }
        };
        out.insert(platform, secret);
    }
    Ok(out)
}

pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_private_to_the_owner_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_secret(&path, b"a longer first secret").unwrap();
        write_secret(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
