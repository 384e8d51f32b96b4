//! The embedded backend: everything in one sled tree, so that a
//! transaction's writes land in one atomic `apply_batch`.
//!
//! Write transactions are serialized by one async lock and buffer their
//! writes (reads go through the buffer first), so a transaction sees its own
//! writes and commits all or nothing. A durable commit flushes after the
//! apply, outside the lock; commits that wait for the disk at the same time
//! share one flush (group commit), so the lock is never held across an
//! fsync.
//!
//! The tree is named `events` for history: it began as the event log's,
//! and the other record families moved in beside it (see [`migrate`] for
//! the trees of earlier versions). The key layout is in [`keys`].

mod kv;
mod listing;
mod message_log;
mod migrate;
mod ops;
mod telnxo;

pub(crate) mod keys;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{Result, StoreError};

/// The tree holding the store.
const TREE: &str = "events";

/// The embedded database of a data directory. The store keeps its tree in
/// it, and so does the spool (`rackwave-queue`), which takes the database
/// from [`Database::sled`]: one file, one page cache, one flush for both.
/// Cheap to clone.
#[derive(Clone)]
pub struct Database {
    db: ::sled::Db,
}

impl Database {
    /// Opens (creating if needed) the database at `path` with a page cache
    /// of `cache_mb` MiB. sled also flushes on its own every second, which
    /// covers writes nobody waits for.
    ///
    /// The database is locked by one process at a time. A lock still held
    /// is waited out for a few seconds: an instance that is just exiting (a
    /// restart) lets go of it a moment after it stops. Past that the error
    /// says the database is in use.
    pub fn open(path: &Path, cache_mb: u64) -> Result<Database> {
        open_db(path, cache_mb).map(|db| Database { db })
    }

    /// The store in this database (moving the trees of earlier versions in
    /// on first use).
    pub fn store(&self) -> Result<crate::Store> {
        crate::Store::on_sled(self.db.clone())
    }

    /// The sled database itself, for the spool's own tree; nothing else
    /// outside this crate touches it.
    pub fn sled(&self) -> &::sled::Db {
        &self.db
    }
}

fn open_db(path: &Path, cache_mb: u64) -> Result<::sled::Db> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let opened = ::sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb * 1024 * 1024)
            .flush_every_ms(Some(1000))
            .open();
        match opened {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.map_err(storage),
        }
    }
}

pub(crate) fn storage(e: ::sled::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The sled backend.
pub(crate) struct SledStore {
    db: ::sled::Db,
    tree: ::sled::Tree,
    write: Arc<Mutex<()>>,
    flush: Arc<Flusher>,
}

/// Group commit of durable commits: a commit waits until a flush that
/// began after its apply has finished; one flush serves every commit
/// applied before it began.
struct Flusher {
    lock: Mutex<()>,
    /// Commits applied so far.
    applied: AtomicU64,
    /// Commits known to be on disk.
    flushed: AtomicU64,
}

impl Flusher {
    async fn durable(&self, db: &::sled::Db, commit: u64) -> Result<()> {
        if self.flushed.load(Ordering::Acquire) >= commit {
            return Ok(());
        }
        let _turn = self.lock.lock().await;
        if self.flushed.load(Ordering::Acquire) >= commit {
            return Ok(());
        }
        let target = self.applied.load(Ordering::Acquire);
        flush(db).await?;
        self.flushed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }
}

/// Makes everything written so far durable. `Db::flush_async` of sled 0.34
/// can lose its wake-up when several are polled at once (sled issue #1308),
/// so the blocking flush runs on the blocking pool instead.
async fn flush(db: &::sled::Db) -> Result<()> {
    let db = db.clone();
    match tokio::task::spawn_blocking(move || db.flush()).await {
        Ok(flushed) => flushed.map(drop).map_err(storage),
        Err(e) => Err(StoreError::Unavailable(format!("flush task: {e}"))),
    }
}

impl SledStore {
    pub(crate) fn open(db: ::sled::Db) -> Result<SledStore> {
        let tree = db.open_tree(TREE).map_err(storage)?;
        migrate::legacy_trees(&db, &tree)?;
        Ok(SledStore {
            db,
            tree,
            write: Arc::new(Mutex::new(())),
            flush: Arc::new(Flusher {
                lock: Mutex::new(()),
                applied: AtomicU64::new(0),
                flushed: AtomicU64::new(0),
            }),
        })
    }

    pub(crate) fn reader(&self) -> kv::Reader<'_> {
        kv::Reader::new(&self.tree)
    }

    pub(crate) async fn begin(&self) -> SledTxn {
        let guard = self.write.clone().lock_owned().await;
        SledTxn {
            db: self.db.clone(),
            tree: self.tree.clone(),
            flush: self.flush.clone(),
            writes: BTreeMap::new(),
            _guard: guard,
        }
    }

    pub(crate) async fn flush(&self) -> Result<()> {
        flush(&self.db).await
    }
}

/// A sled write transaction: buffered writes over the tree, holding the
/// write lock until it commits or is dropped.
pub(crate) struct SledTxn {
    db: ::sled::Db,
    tree: ::sled::Tree,
    flush: Arc<Flusher>,
    /// `Some` = insert, `None` = remove.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    _guard: OwnedMutexGuard<()>,
}

impl SledTxn {
    pub(crate) async fn commit(self, durable: bool) -> Result<()> {
        let SledTxn {
            db,
            tree,
            flush,
            writes,
            _guard,
        } = self;
        if writes.is_empty() {
            return Ok(());
        }
        let mut batch = ::sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        tree.apply_batch(batch).map_err(storage)?;
        let commit = flush.applied.fetch_add(1, Ordering::AcqRel) + 1;
        drop(_guard);
        if durable {
            flush.durable(&db, commit).await?;
        }
        Ok(())
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    fn next_id(&self) -> Result<u64> {
        self.db.generate_id().map_err(storage)
    }
}
