//! PostgreSQL, the shared store of several nodes (issue 16): the
//! connection pool (TLS with rustls, ring, Mozilla's roots, whenever the
//! URL's `sslmode` asks for it), the versioned schema (`migrate`: applied
//! at start, one node at a time, refusing a schema newer than the binary)
//! and row-level tenancy (`tenancy`: every tenant table's policy admits
//! only the workspace a transaction is scoped to).
//!
//! The storage traits' operations are in one module per family of records
//! (`tenants`, `events`, `portal`, `telnxo`) on the transactions of
//! [`txn`]; the conformance suite runs on this backend as on sled.

mod coordination;
mod events;
mod lookups;
mod message_log;
mod migrate;
mod ops;
mod portal;
mod telnxo;
mod tenancy;
mod tenants;
pub(crate) mod txn;

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
    /// Tells pools apart (clones share it): connections are known by their
    /// pool and the pool's id of them.
    id: usize,
    max_connections: usize,
}

/// How long an operation waits for a connection (or for a new one to be
/// made) before it fails as unavailable.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The id of the next pool made.
static POOLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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
        // A NUL in a record's text: PostgreSQL's text and jsonb cannot
        // hold one. The input's fault, never to be retried.
        Some(c)
            if *c == SqlState::UNTRANSLATABLE_CHARACTER
                || *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE =>
        {
            StoreError::Invalid(format!(
                "{said}: text with a NUL character cannot be stored"
            ))
        }
        _ => StoreError::Unavailable(format!("PostgreSQL: {said}")),
    }
}

/// Whether a key can name a stored row: writes refuse an empty key, or one
/// with NUL or \x01 (as sled does), so a lookup by one (a crafted address
/// or id) finds nothing. Said without asking, since PostgreSQL's text
/// cannot carry NUL and the failed statement would abort the whole
/// transaction.
fn storable(key: &str) -> bool {
    crate::sled::keys::component("key", key).is_ok()
}

/// Locks one of the backend's in-memory tables, ignoring poisoning: they
/// hold plain values that stay consistent if a holder panicked.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `LIMIT` for `limit` items.
fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A `LIMIT` one past a page of `limit`, to learn whether more follow.
fn fetch_limit(limit: usize) -> i64 {
    limit_of(limit.saturating_add(1))
}

/// A page of the first `limit` of `rows` (fetched with [`fetch_limit`]),
/// with the cursor of its last item when more follow.
fn page<T>(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> crate::Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    crate::Page {
        items: rows,
        next_cursor,
    }
}

/// Listings (Telnxo's, the message log's): the rows of workspace `$1` listed after position `$2`, `$3` (created,
/// id) going newest first, as sled's `<created u64>\0<id>` keys order
/// them. The id compares as bytes, so a cursor's need not be valid UTF-8.
pub(super) const BEFORE: &str =
    "workspace_id = $1 AND created_ms <= $2 AND (created_ms < $2 OR convert_to(id, 'UTF8') < $3)";

/// Where a listing page starts: the first row listed after it.
pub(super) struct Position {
    pub(super) created_ms: i64,
    pub(super) id: Vec<u8>,
}

impl Position {
    /// Before every row: an id is UTF-8, which never has the byte 0xFF.
    fn start() -> Position {
        Position {
            created_ms: i64::MAX,
            id: vec![0xff],
        }
    }

    /// Where a page starts: after `cursor`, or at the newest row.
    pub(super) fn after(cursor: Option<&str>) -> Result<Position> {
        cursor.map_or(Ok(Position::start()), Position::from_cursor)
    }

    /// A cursor we issued: hex of `<created u64 BE>\0<id>`, sled's key.
    fn from_cursor(cursor: &str) -> Result<Position> {
        let raw = hex::decode(cursor)
            .ok()
            .filter(|raw| raw.len() > 9 && raw[8] == 0)
            .ok_or_else(|| StoreError::Invalid("cursor is not one we issued".into()))?;
        let created = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        Ok(match i64::try_from(created) {
            Ok(created_ms) => Position {
                created_ms,
                id: raw[9..].to_vec(),
            },
            // Past every stored time.
            Err(_) => Position::start(),
        })
    }

    pub(super) fn cursor(created_ms: i64, id: &str) -> String {
        let mut raw = (created_ms as u64).to_be_bytes().to_vec();
        raw.push(0);
        raw.extend_from_slice(id.as_bytes());
        hex::encode(raw)
    }
}

/// How a record's enum field is spelt in its JSON (what the SQL compares).
fn label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => panic!("a unit variant serializes as a string, not {other:?}"),
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
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("the PostgreSQL URL: {e}")))?;
        // The transactions quote their scope into a literal (`txn::quoted`),
        // which needs backslashes to be plain characters whatever the
        // server's or the role's defaults say.
        let options = match config.get_options() {
            Some(given) => format!("{given} -c standard_conforming_strings=on"),
            None => "-c standard_conforming_strings=on".to_string(),
        };
        config.options(&options);
        let manager = Manager::from_config(
            config,
            tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            // A connection not free within this is an error (the caller
            // answers "try again"), never a wait without end.
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
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
        Ok(Postgres {
            pool,
            max_connections: max_connections.max(1),
            id: POOLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// The `[storage.postgres]` databases of the three parts (the same URL
/// more than once shares one pool), each brought to this binary's schema.
pub struct Databases<'a> {
    pub portal: &'a str,
    pub migosmtp: &'a str,
    pub telnxo: &'a str,
    pub max_connections: usize,
}

impl Databases<'_> {
    /// Connects to each distinct database and migrates it.
    pub async fn store(&self) -> Result<crate::Store> {
        let mut pools: Vec<(&str, Postgres)> = Vec::new();
        for url in [self.portal, self.migosmtp, self.telnxo] {
            if pools.iter().any(|(u, _)| *u == url) {
                continue;
            }
            let pg = Postgres::connect(url, self.max_connections).await?;
            pg.migrate().await?;
            pools.push((url, pg));
        }
        let pool = |url: &str| {
            pools
                .iter()
                .find(|(u, _)| *u == url)
                .map(|(_, p)| p.clone())
                .expect("connected above")
        };
        Ok(crate::Store::on_postgres(txn::PgStore::new(
            pool(self.portal),
            pool(self.migosmtp),
            pool(self.telnxo),
        )))
    }
}
