//! PostgreSQL, the shared store of several nodes (issue 16): the
//! connection pool (TLS with rustls, ring, Mozilla's roots, whenever the
//! URL's `sslmode` asks for it), the versioned schema (`migrate`: applied
//! at start, one node at a time, refusing a schema newer than the binary)
//! and row-level tenancy (`tenancy`: every tenant table's policy admits
//! only the workspace a transaction is scoped to).
//!
//! The storage traits' operations on these tables are the next step; the
//! store's backend stays sled until every one of them passes the
//! conformance suite here too.

mod migrate;
mod tenancy;

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Result, StoreError};

pub use migrate::{Migrated, Migration, MIGRATIONS};
pub use tenancy::{Scope, Work};

/// A pool of connections to one database.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
}

/// What the server said, as the store's errors: a unique key taken is a
/// conflict, a refused row (a policy's check) invalid, anything else the
/// database being unavailable (nothing was changed).
pub fn pg_error(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    // The server's own words where it sent some (the error's Display says
    // only "db error").
    let said = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    };
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(said),
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => StoreError::Invalid(said),
        _ => StoreError::Unavailable(format!("PostgreSQL: {said}")),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::Unavailable(format!("PostgreSQL pool: {other}")),
    }
}

/// rustls with ring and Mozilla's root certificates, for servers that
/// speak TLS (the URL's `sslmode=require`, or `prefer`, its default).
fn tls() -> Result<MakeRustlsConnect> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Invalid(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

impl Postgres {
    /// Connects to the database of `url` (`postgres://user@host/db?…`)
    /// with at most `max_connections`. One connection is made at once, so
    /// a wrong URL or an unreachable server says so at start; a role that
    /// bypasses row-level security (a superuser, `BYPASSRLS`) is refused,
    /// since tenancy would then rest on every query alone.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Postgres> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("the PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| StoreError::Invalid(format!("PostgreSQL pool: {e}")))?;
        let client = pool.get().await.map_err(pool_error)?;
        let row = client
            .query_one(
                "SELECT rolname::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let (role, bypasses): (String, bool) = (row.get(0), row.get(1));
        if bypasses {
            return Err(StoreError::Invalid(format!(
                "the PostgreSQL role {role} bypasses row-level security (a superuser or BYPASSRLS): connect as an ordinary role owning the database"
            )));
        }
        drop(client);
        Ok(Postgres { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }
}
