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
//! Reads outside a transaction (a *view*) run no transaction: each of
//! their statements sees what is committed, and their scope is the
//! connection's session setting, which the store remembers per pooled
//! connection, so a read whose scope is the one its connection already has
//! is one statement, one round trip. (A transaction's `SET LOCAL` scope
//! ends with it and leaves the session's as it was.)

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;

use super::{lock, pg_error, Postgres, Scope};
use crate::{Result, StoreError};

/// The advisory lock write transactions take turns on (`RWWRITES`).
const WRITE_LOCK: i64 = 0x5257_5752_4954_4553;

/// Whose database an operation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    Portal = 0,
    Migosmtp = 1,
    Telnxo = 2,
}

/// The backend: a pool per part (parts on the same URL share one).
pub(crate) struct PgStore {
    parts: [Postgres; 3],
    /// Each part's transaction slot: the first part on the same database
    /// (parts sharing one share their transaction, so it commits at once).
    slot: [usize; 3],
    /// Write transactions of this node waiting for the write lock or
    /// holding it, at most half the pool: the one holding it may need
    /// connections for its other parts and for reads, which lock waiters
    /// holding every connection would starve (and with them every node).
    writers: Arc<tokio::sync::Semaphore>,
    /// What the hot path reads for every message (a workspace, its sending
    /// domains, a domain), kept for [`CACHE_FOR`] for reads outside
    /// transactions, by key (`workspace:<id>`, …); writes on this node
    /// forget their keys, writes on other nodes are seen when it lapses.
    cache: Mutex<HashMap<String, Cached>>,
    /// Counts this node's writes to cached reads: a read that began before
    /// one is not kept (it may hold what the write replaced).
    writes_seen: std::sync::atomic::AtomicU64,
    /// Suppression lookups waiting to be asked together (`lookups`).
    pub(super) lookups: Mutex<super::lookups::Lookups>,
    /// The session scope of each pooled connection, by its pool (parts
    /// on one database share one) and the pool's id of it (a connection
    /// not in it has none).
    sessions: Mutex<HashMap<(usize, String), String>>,
}

/// A cached read: when it was read, and what.
type Cached = (Instant, Arc<dyn Any + Send + Sync>);

/// How long a cached read stands: how far behind another node's writes
/// this node's message checks may be.
const CACHE_FOR: Duration = Duration::from_secs(1);
/// Cached reads kept at most (past it they are all forgotten).
const CACHE_KEPT: usize = 10_000;

/// Session scopes remembered at most; past it they are forgotten (and set
/// again when next needed), so connections the pools replaced do not
/// accumulate.
const SESSIONS_KEPT: usize = 4096;

impl PgStore {
    pub(crate) fn new(portal: Postgres, migosmtp: Postgres, telnxo: Postgres) -> PgStore {
        let parts = [portal, migosmtp, telnxo];
        let slot = [0, 1, 2].map(|p| (0..=p).find(|q| parts[*q].id == parts[p].id).unwrap_or(p));
        let writers = (parts.iter().map(|p| p.max_connections).min().unwrap_or(1) / 2).max(1);
        PgStore {
            slot,
            writers: Arc::new(tokio::sync::Semaphore::new(writers)),
            parts,
            cache: Mutex::new(HashMap::new()),
            writes_seen: std::sync::atomic::AtomicU64::new(0),
            lookups: Mutex::default(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// A write transaction: holds the write lock until it commits.
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<PgTxn> {
        let permit = self
            .writers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let txn = PgTxn {
            store: self.clone(),
            conns: Default::default(),
            view: false,
            stale: Mutex::new(Vec::new()),
            _writer: Some(permit),
        };
        txn.open(Part::Portal, Scope::Service, true).await?;
        Ok(txn)
    }

    /// A view for reads outside a transaction: finish it with
    /// [`PgTxn::finish`].
    pub(crate) fn reader(self: &Arc<Self>) -> PgTxn {
        PgTxn {
            store: self.clone(),
            conns: Default::default(),
            view: true,
            stale: Mutex::new(Vec::new()),
            _writer: None,
        }
    }

    fn forget(&self, key: &str) {
        self.writes_seen
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let mut cache = lock(&self.cache);
        cache.remove(key);
    }

    fn session_scope(&self, key: &(usize, String)) -> String {
        let sessions = lock(&self.sessions);
        sessions.get(key).cloned().unwrap_or_default()
    }

    fn forget_session_scope(&self, key: &(usize, String)) {
        let mut sessions = lock(&self.sessions);
        sessions.remove(key);
    }

    fn remember_session_scope(&self, key: (usize, String), scope: &str) {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= SESSIONS_KEPT {
            sessions.clear();
        }
        sessions.insert(key, scope.to_string());
    }
}

/// One transaction on each part's database it has touched (or, for a view,
/// one connection each).
pub(crate) struct PgTxn {
    store: Arc<PgStore>,
    conns: [OnceCell<Conn>; 3],
    /// Reads outside a transaction: no BEGIN, the session's scope.
    view: bool,
    /// Cached reads this transaction's writes make stale: forgotten when
    /// written and again once committed (a read in between may have kept
    /// the old value).
    stale: Mutex<Vec<String>>,
    /// A write transaction's place among this node's writers.
    _writer: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl PgTxn {
    /// The store, for a view's reads that go through it (`lookups`).
    pub(crate) fn view_of(&self) -> Option<&Arc<PgStore>> {
        self.view.then_some(&self.store)
    }

    /// A read the hot path makes for every message: outside a transaction
    /// from the cache while it stands, else `read` (and kept).
    pub(crate) async fn cached<T, F>(&self, key: String, read: F) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: Future<Output = Result<T>>,
    {
        if self.view {
            let cache = lock(&self.store.cache);
            if let Some((at, value)) = cache.get(&key) {
                if at.elapsed() < CACHE_FOR {
                    if let Some(value) = value.downcast_ref::<T>() {
                        return Ok(value.clone());
                    }
                }
            }
        }
        let before = self
            .store
            .writes_seen
            .load(std::sync::atomic::Ordering::Acquire);
        let value = read.await?;
        let written = self
            .store
            .writes_seen
            .load(std::sync::atomic::Ordering::Acquire);
        if self.view && written == before {
            let mut cache = lock(&self.store.cache);
            if cache.len() >= CACHE_KEPT {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), Arc::new(value.clone())));
        }
        Ok(value)
    }

    /// A write makes the cached read `key` stale.
    pub(crate) fn stale(&self, key: String) {
        self.store.forget(&key);
        self.stale
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
    }

    /// The part's transaction, scoped to `scope` for what comes next.
    pub(crate) async fn on(&self, part: Part, scope: Scope<'_>) -> Result<&Conn> {
        self.open(part, scope, false).await
    }

    /// [`on`](Self::on); a transaction it begins takes the write lock when
    /// `lock`. Beginning, scoping and locking go in one round trip (the
    /// simple protocol's batch: the scope is a quoted literal there).
    async fn open(&self, part: Part, scope: Scope<'_>, lock: bool) -> Result<&Conn> {
        let value = scope_value(scope)?;
        let conn = self.conns[self.store.slot[part as usize]]
            .get_or_try_init(|| async {
                let pool = &self.store.parts[part as usize];
                let client = pool.client().await?;
                if self.view {
                    let session = (pool.id, Object::id(&client).to_string());
                    return Ok::<_, StoreError>(Conn {
                        scope: Mutex::new(self.store.session_scope(&session)),
                        client: Some(client),
                        session: Some((self.store.clone(), session)),
                    });
                }
                let lock = if lock {
                    format!("SELECT pg_advisory_xact_lock({WRITE_LOCK}); ")
                } else {
                    String::new()
                };
                // The connection is a `Conn` before BEGIN is sent: if this
                // is abandoned halfway (its caller gone), its drop rolls
                // back whatever the server began (the write lock with it)
                // instead of the pool handing out a connection in a
                // transaction.
                let conn = Conn {
                    client: Some(client),
                    scope: Mutex::new(value.to_string()),
                    session: None,
                };
                conn.client()
                    .batch_execute(&format!(
                        "BEGIN; {lock}SELECT set_config('rackwave.workspace', {}, true)",
                        quoted(value)
                    ))
                    .await
                    .map_err(pg_error)?;
                Ok::<_, StoreError>(conn)
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
        // Parts sharing a database share its transaction (one slot).
        let portal = self.store.slot[Part::Portal as usize];
        let slots = [Part::Telnxo, Part::Migosmtp]
            .map(|p| self.store.slot[p as usize])
            .into_iter()
            .filter(|s| *s != portal)
            .chain([portal]);
        for slot in slots {
            if let Some(mut conn) = self.conns[slot].take() {
                let client = conn.client.take().expect("an open transaction");
                if let Err(e) = client.batch_execute(sql).await {
                    // The connection's state is unknown: never reuse it.
                    drop(Object::take(client));
                    return Err(pg_error(e));
                }
            }
        }
        for key in lock(&self.stale).iter() {
            self.store.forget(key);
        }
        Ok(())
    }

    /// Ends a view: its connections go back to the pool as they are (no
    /// transaction to end).
    pub(crate) fn finish(self) {
        drop(self);
    }
}

/// An open transaction on one database, or a view's connection.
pub(crate) struct Conn {
    /// `None` once committed.
    client: Option<Object>,
    /// The workspace the transaction is scoped to now (`*` the service).
    scope: Mutex<String>,
    /// A view's: where its connection's session scope is remembered.
    session: Option<(Arc<PgStore>, (usize, String))>,
}

fn scope_value(scope: Scope<'_>) -> Result<&str> {
    match scope {
        Scope::Workspace(ws)
            if ws.is_empty() || ws == "*" || ws.contains('\0') || ws.contains('\\') =>
        {
            Err(StoreError::Invalid(format!(
                "{ws:?} is not a workspace to scope a transaction to"
            )))
        }
        Scope::Workspace(ws) => Ok(ws),
        Scope::Service => Ok("*"),
    }
}

/// A string literal of SQL. Every connection of the pool sets
/// `standard_conforming_strings` on (see `Postgres::connect`), so
/// backslashes are plain characters and doubling the quotes is the whole
/// of it; NUL, which no literal can carry, is refused by [`scope_value`]
/// before it gets here.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
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
        // A transaction's scope is local to it; a view's is its session's,
        // unknown while it changes (a change abandoned halfway leaves it
        // unknown: set again when next needed).
        let local = self.session.is_none();
        if let Some((store, key)) = &self.session {
            store.forget_session_scope(key);
        }
        self.execute(
            "SELECT set_config('rackwave.workspace', $1, $2)",
            &[&value, &local],
        )
        .await?;
        *self.scope.lock().expect("scope") = value.to_string();
        if let Some((store, key)) = &self.session {
            store.remember_session_scope(key.clone(), value);
        }
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
        if self.session.is_some() {
            // A view's connection: no transaction to end.
            return;
        }
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
