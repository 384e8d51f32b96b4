//! Where the spool keeps its records, indexes and counters: an LSM tree
//! (fjall) of its own, in the spool's directory.
//!
//! Why not the sled database the store uses, as earlier versions did: the
//! spool writes five to seven keys a message and rewrites a record at
//! every settlement, at the right edge of several key ranges, which is
//! the worst case of a B-tree with copy-on-write pages (sled 0.34 split a
//! leaf about once a message and wrote 13.8 KB of log a message). Worse,
//! sled's atomic batch takes a lock for the whole process, so every read
//! anywhere (the HTTP handlers' key lookups, the next group's staging)
//! waited while the writer applied a group. An LSM tree appends a group
//! to its journal and a memtable (a group of 400 messages applied in
//! 2.6 ms instead of 13.8 ms, `docs/PERFORMANCE.md`), its batch is atomic
//! without a global lock, and compaction runs on a thread of its own.
//!
//! The surface is what the spool needs and nothing else: point reads,
//! ordered range scans both ways, one atomic batch per group commit and
//! an fsync of the journal. [`Index::open`] also brings over a spool an
//! earlier version kept in the sled tree `spool`, once (see
//! [`Index::adopt_sled_tree`]).

use std::ops::RangeBounds;
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::config::PinningPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Slice};
use tracing::info;

use crate::error::SpoolError;

/// Name of the sled tree in which earlier versions kept the spool.
const SLED_TREE: &str = "spool";

/// Present once a spool kept in sled by an earlier version is copied
/// whole; written with the last part of the copy. Sorts before every key
/// of the layout (`keys.rs`), so no scan of the layout meets it.
const ADOPTED: &[u8] = b"!adopted-from-sled";

/// How many keys one batch of the copy from sled holds.
const ADOPT_BATCH: usize = 20_000;

/// A spool that was just closed may still hold the directory's lock for
/// a moment (its last iterator or compaction finishing): wait this long.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Memory the index takes whatever the queue's length: its block cache,
/// and its memtables (the one taking writes, and those sealed while the
/// worker thread writes them out as tables; with four sealed the writer
/// waits for them). Besides, the tables' filters and block indexes, which
/// grow with what is stored (see `Index::open`).
const CACHE_BYTES: u64 = 32 << 20;
const MEMTABLE_BYTES: u64 = 16 << 20;

/// Threads writing memtables out and compacting tables. One: with more,
/// fjall 3.1 keeps the first for flushes and has it hand every compaction
/// request back to the queue, which spins while another thread compacts
/// (a profile of batch sends had 14% of the process's CPU there).
const WORKERS: usize = 1;

/// One stored key and its value.
pub(crate) type Item = (Slice, Slice);

/// The spool's key space.
#[derive(Clone)]
pub(crate) struct Index {
    db: Database,
    keys: Keyspace,
}

impl Index {
    /// Opens (creating if needed) the index in `dir`, then adopts what an
    /// earlier version left in `legacy`'s sled tree.
    pub(crate) fn open(dir: &Path, legacy: &sled::Db) -> Result<Index, SpoolError> {
        let began = Instant::now();
        let db = loop {
            let opened = Database::builder(dir)
                .cache_size(CACHE_BYTES)
                .worker_threads(WORKERS)
                .open();
            match opened {
                Ok(db) => break db,
                Err(fjall::Error::Locked) if began.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        // Every table's bloom filter and block index stay in memory (about
        // 2.5 bytes a key: 20 MB at a million messages stored), not just
        // those of the newest tables: a settlement reads five keys, each
        // read asks the filter of every table that may hold it, and a
        // filter evicted from the block cache is read and checksummed
        // whole again (a million messages deep, settlements went at 1,200
        // a second, 80% of the writer's time there).
        let keys = db.keyspace("spool", || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(MEMTABLE_BYTES)
                .filter_block_pinning_policy(PinningPolicy::all(true))
                .index_block_pinning_policy(PinningPolicy::all(true))
        })?;
        let index = Index { db, keys };
        index.adopt_sled_tree(legacy)?;
        Ok(index)
    }

    /// Copies the sled tree `spool` of an earlier version into the index,
    /// then drops the tree. The copy is blind writes of the tree's own
    /// keys, so a copy cut short by a crash is simply made again; the
    /// marker, written and synced with its last part, says it is whole,
    /// after which the tree (possibly half dropped) is never read again.
    fn adopt_sled_tree(&self, sled: &sled::Db) -> Result<(), SpoolError> {
        if !sled.tree_names().iter().any(|n| n == SLED_TREE.as_bytes()) {
            return Ok(());
        }
        if self.get(ADOPTED)?.is_none() {
            let tree = sled.open_tree(SLED_TREE)?;
            if !tree.is_empty() {
                let mut copied = 0usize;
                let mut batch = self.db.batch();
                for item in tree.iter() {
                    let (k, v) = item?;
                    batch.insert(&self.keys, k.to_vec(), v.to_vec());
                    copied += 1;
                    if batch.len() >= ADOPT_BATCH {
                        std::mem::replace(&mut batch, self.db.batch()).commit()?;
                    }
                }
                batch.insert(&self.keys, ADOPTED.to_vec(), Vec::new());
                batch.commit()?;
                self.persist()?;
                info!(
                    keys = copied,
                    "spool moved from the sled store into its own index"
                );
            }
        }
        sled.drop_tree(SLED_TREE)?;
        sled.flush()?;
        Ok(())
    }

    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Slice>, SpoolError> {
        Ok(self.keys.get(key)?)
    }

    /// Keys starting with `prefix`, in order (reversible).
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        Iter(self.keys.prefix(prefix))
    }

    /// Keys in `range`, in order (reversible).
    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        Iter(self.keys.range(range))
    }

    /// A single write outside a group commit (markers at open).
    pub(crate) fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), SpoolError> {
        Ok(self.keys.insert(key, value)?)
    }

    /// Applies a group's writes (`None` removes) atomically: after a
    /// crash either all of them are there or none.
    pub(crate) fn apply<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), SpoolError> {
        let mut batch = self.db.batch();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(&self.keys, k, v),
                None => batch.remove(&self.keys, k),
            }
        }
        Ok(batch.commit()?)
    }

    /// Makes every write applied so far durable (the journal's data
    /// `fdatasync`ed).
    pub(crate) fn persist(&self) -> Result<(), SpoolError> {
        Ok(self.db.persist(PersistMode::SyncData)?)
    }
}

/// An ordered scan; a storage error ends it with that error.
pub(crate) struct Iter(fjall::Iter);

impl Iterator for Iter {
    type Item = Result<Item, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|g| g.into_inner().map_err(Into::into))
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0
            .next_back()
            .map(|g| g.into_inner().map_err(Into::into))
    }
}

/// What the spool stored, key by key, for tests that look at or damage
/// it behind the spool's back ([`Spool::raw`](crate::Spool::raw)); the
/// product never uses it.
pub struct RawIndex(pub(crate) Index);

impl RawIndex {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, SpoolError> {
        Ok(self.0.get(key)?.map(|v| v.to_vec()))
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), SpoolError> {
        self.0.insert(key.as_ref(), value.as_ref())
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), SpoolError> {
        Ok(self.0.keys.remove(key.as_ref())?)
    }

    /// Every key starting with `prefix`, in order.
    pub fn keys(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<Vec<u8>>, SpoolError> {
        self.0
            .scan_prefix(prefix)
            .map(|item| item.map(|(k, _)| k.to_vec()))
            .collect()
    }
}
