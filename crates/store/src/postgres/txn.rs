//! The store's transactions on PostgreSQL, one database per part (portal,
//! MigoSMTP, Telnxo; possibly the same).
//!
//! A [`PgTxn`] opens a transaction on a part's database the first time an
//! operation touches it, and scopes it (`rackwave.workspace`, see
//! [`super::tenancy`]) before each statement whose scope differs from the
//! last. Write transactions are serialized across every node by one
//! advisory lock on the portal database, taken at `begin` and released by
//! its commit, which comes last: so a write transaction sees no other
//! one's half-done state, as on sled, and exactness (quotas, single-use
//! tokens, idempotency keys) holds across nodes without retries. A
//! transaction touching two databases commits them one after the other
//! (the portal's last); where the parts share a database there is one.
//!
//! Reads outside a transaction run in a short transaction of their own
//! (their scope needs one), without the lock.

use std::sync::{Arc, Mutex};

use deadpool_postgres::Object;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;

use super::{pg_error, Postgres, Scope};
use crate::{Result, StoreError};

/// The advisory lock write transactions take turns on (`RWWRITES`).
const WRITE_LOCK: i64 = 0x5257_5752_4954_4553;

/// Whose database an operation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Portal = 0,
    Migosmtp = 1,
    Telnxo = 2,
}

/// The backend: a pool per part (parts on the same URL share one).
pub(crate) struct PgStore {
    parts: [Postgres; 3],
}

impl PgStore {
    pub(crate) fn new(portal: Postgres, migosmtp: Postgres, telnxo: Postgres) -> PgStore {
        PgStore {
            parts: [portal, migosmtp, telnxo],
        }
    }

    /// A write transaction: holds the write lock until it commits.
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<PgTxn> {
        let txn = self.reader();
        let portal = txn.on(Part::Portal, Scope::Service).await?;
        portal
            .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await?;
        Ok(txn)
    }

    /// A read-only view (for reads outside a transaction): finish it with
    /// [`PgTxn::finish`].
    pub(crate) fn reader(self: &Arc<Self>) -> PgTxn {
        PgTxn {
            store: self.clone(),
            conns: Default::default(),
        }
    }
}

/// One transaction on each part's database it has touched.
pub(crate) struct PgTxn {
    store: Arc<PgStore>,
    conns: [OnceCell<Conn>; 3],
}

impl PgTxn {
    /// The part's transaction, scoped to `scope` for what comes next.
    pub(crate) async fn on(&self, part: Part, scope: Scope<'_>) -> Result<&Conn> {
        let conn = self.conns[part as usize]
            .get_or_try_init(|| async {
                let client = self.store.parts[part as usize].client().await?;
                client.batch_execute("BEGIN").await.map_err(pg_error)?;
                Ok::<_, StoreError>(Conn {
                    client: Some(client),
                    scope: Mutex::new(String::new()),
                })
            })
            .await?;
        conn.scope(scope).await?;
        Ok(conn)
    }

    /// Commits every part's transaction, the portal's (with the write
    /// lock) last. Not durable waits for nothing on the server's disk
    /// (`synchronous_commit = off`: on disk within the server's WAL
    /// writer delay).
    pub(crate) async fn commit(mut self, durable: bool) -> Result<()> {
        let sql = if durable {
            "COMMIT"
        } else {
            "SET LOCAL synchronous_commit TO OFF; COMMIT"
        };
        for part in [Part::Telnxo, Part::Migosmtp, Part::Portal] {
            if let Some(mut conn) = self.conns[part as usize].take() {
                let client = conn.client.take().expect("an open transaction");
                if let Err(e) = client.batch_execute(sql).await {
                    // The connection's state is unknown: never reuse it.
                    drop(Object::take(client));
                    return Err(pg_error(e));
                }
            }
        }
        Ok(())
    }

    /// Ends a read-only view.
    pub(crate) async fn finish(self) -> Result<()> {
        self.commit(true).await
    }
}

/// An open transaction on one database.
pub(crate) struct Conn {
    /// `None` once committed.
    client: Option<Object>,
    /// The workspace the transaction is scoped to now (`*` the service).
    scope: Mutex<String>,
}

fn scope_value(scope: Scope<'_>) -> Result<&str> {
    match scope {
        Scope::Workspace(ws) if ws.is_empty() || ws == "*" || ws.contains('\0') => {
            Err(StoreError::Invalid(format!(
                "{ws:?} is not a workspace to scope a transaction to"
            )))
        }
        Scope::Workspace(ws) => Ok(ws),
        Scope::Service => Ok("*"),
    }
}

impl Conn {
    fn client(&self) -> &Object {
        self.client.as_ref().expect("an open transaction")
    }

    async fn scope(&self, scope: Scope<'_>) -> Result<()> {
        let value = scope_value(scope)?;
        if *self.scope.lock().expect("scope") == value {
            return Ok(());
        }
        self.execute(
            "SELECT set_config('rackwave.workspace', $1, true)",
            &[&value],
        )
        .await?;
        *self.scope.lock().expect("scope") = value.to_string();
        Ok(())
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let client = self.client();
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Rows changed.
    pub(crate) async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client();
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&statement, params).await.map_err(pg_error)
    }

    /// The records (the `jsonb` first column) of every row.
    pub(crate) async fn records<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>> {
        self.query(sql, params)
            .await?
            .iter()
            .map(|row| record(row, 0))
            .collect()
    }

    /// The record of the first row, if any.
    pub(crate) async fn record<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>> {
        match self.query_opt(sql, params).await? {
            Some(row) => record(&row, 0).map(Some),
            None => Ok(None),
        }
    }
}

/// Column `i` of a row, a record stored as `jsonb`.
pub(crate) fn record<T: DeserializeOwned>(row: &Row, i: usize) -> Result<T> {
    let Json(value): Json<serde_json::Value> = row
        .try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("a stored record: {e}")))?;
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("a stored record: {e}")))
}

/// A record as a `jsonb` parameter.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Json<serde_json::Value> {
    Json(serde_json::to_value(value).expect("records serialize"))
}

impl Drop for Conn {
    /// A transaction dropped without committing is rolled back, off the
    /// caller's path; a connection that cannot say so is closed (which
    /// rolls it back too) rather than reused.
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}
