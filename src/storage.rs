//! The data directory: the embedded database every part of the server
//! shares, how it is opened, and how a write is made durable before anyone
//! is told it happened.
//!
//! Everything lives in one sled database (`data/db`); the spool also keeps
//! message bodies in segment files beside it (`data/bodies`). Writes to sled
//! reach disk with the spool's group commits, sled's own flush every second,
//! or [`flush`]: whatever answers "created" (the admin API, webhook
//! endpoints, event bookkeeping) calls [`flush`] first, so a crash right
//! after the answer loses nothing. Secrets the server generates into the
//! directory (the admin token, the TLS key) go through [`write_secret`].

use std::path::Path;

/// Opens (creating if needed) the database at `path` with a page cache of
/// `cache_mb` MiB. sled also flushes on its own every second, which covers
/// writes nobody waits for.
///
/// The database is locked by one process at a time. A lock still held is
/// waited out for a few seconds: an instance that is just exiting (a
/// restart) lets go of it a moment after it stops. Past that the error
/// says the database is in use.
pub fn open(path: &Path, cache_mb: u64) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb * 1024 * 1024)
            .flush_every_ms(Some(1000))
            .open();
        match opened {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Makes everything written so far durable. `Db::flush_async` of sled 0.34
/// can lose its wake-up when several are polled at once (sled issue #1308),
/// so the blocking flush runs on the blocking pool instead.
pub async fn flush(db: &sled::Db) -> sled::Result<()> {
    let db = db.clone();
    match tokio::task::spawn_blocking(move || db.flush()).await {
        Ok(flushed) => flushed.map(|_| ()),
        Err(e) => Err(sled::Error::Io(std::io::Error::other(format!(
            "flush task: {e}"
        )))),
    }
}

/// Writes a secret (a generated key or token) readable by its owner only,
/// and fsyncs it: it is used right away, so it must survive a crash.
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ws: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"workspace_id": ws})).unwrap()
    }

    fn names(by: &ByWorkspace, ws: &str) -> Vec<String> {
        by.of_workspace(ws)
            .unwrap()
            .iter()
            .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn records_list_by_workspace_and_names_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let by = ByWorkspace::open(&db, "things").unwrap();
        assert!(by.insert_new("ws_a", "alice", record("ws_a")).unwrap());
        assert!(by.insert_new("ws_b", "bob", record("ws_b")).unwrap());
        assert!(by.insert_new("ws_a", "carol", record("ws_a")).unwrap());
        // A name is global: another workspace cannot take it.
        assert!(!by.insert_new("ws_b", "alice", record("ws_b")).unwrap());
        assert_eq!(names(&by, "ws_a"), ["alice", "carol"]);
        assert_eq!(names(&by, "ws_b"), ["bob"]);
        // "ws_a" is a prefix of "ws_ab": their ranges stay apart.
        assert!(by.insert_new("ws_ab", "dave", record("ws_ab")).unwrap());
        assert_eq!(names(&by, "ws_a"), ["alice", "carol"]);
        assert!(names(&by, "nobody").is_empty());
    }

    #[test]
    fn records_written_before_the_index_are_indexed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let old = db.open_tree("things").unwrap();
        old.insert("alice", record("ws_a")).unwrap();
        old.insert("bob", record("ws_b")).unwrap();
        let by = ByWorkspace::open(&db, "things").unwrap();
        assert_eq!(names(&by, "ws_a"), ["alice"]);
        assert_eq!(names(&by, "ws_b"), ["bob"]);
    }

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

/// Records keyed by a global name (an SMTP username, a sender domain) that
/// each belong to one workspace, with an index by workspace written in the
/// same transaction: listing one workspace's records reads that
/// workspace's index range, not every record of every workspace.
///
/// Records are JSON with a `workspace_id` field. Index keys are
/// `<workspace id>\0<name>`; names and workspace ids never contain NUL.
#[derive(Clone)]
pub struct ByWorkspace {
    records: sled::Tree,
    index: sled::Tree,
}

#[derive(serde::Deserialize)]
struct Owner {
    workspace_id: String,
}

fn index_key(workspace_id: &str, name: &[u8]) -> Vec<u8> {
    [workspace_id.as_bytes(), b"\0", name].concat()
}

impl ByWorkspace {
    /// Opens the trees `records` and `<records>_by_workspace`. Records
    /// written before the index existed are indexed once, here.
    pub fn open(db: &sled::Db, records: &str) -> sled::Result<ByWorkspace> {
        let this = ByWorkspace {
            records: db.open_tree(records)?,
            index: db.open_tree(format!("{records}_by_workspace"))?,
        };
        if this.index.is_empty() && !this.records.is_empty() {
            for item in this.records.iter() {
                let (name, value) = item?;
                match serde_json::from_slice::<Owner>(&value) {
                    Ok(o) => {
                        this.index.insert(index_key(&o.workspace_id, &name), &[])?;
                    }
                    Err(e) => tracing::warn!(
                        tree = records,
                        key = %String::from_utf8_lossy(&name),
                        error = %e,
                        "record without a workspace is not indexed"
                    ),
                }
            }
        }
        Ok(this)
    }

    /// Stores `value` under `name` for `workspace_id` unless `name` is
    /// taken; `Ok(false)` if it was.
    pub fn insert_new(&self, workspace_id: &str, name: &str, value: Vec<u8>) -> sled::Result<bool> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let key = index_key(workspace_id, name.as_bytes());
        let outcome = (&self.records, &self.index).transaction(|(records, index)| {
            if records.get(name)?.is_some() {
                return Err(ConflictableTransactionError::Abort(()));
            }
            records.insert(name, value.clone())?;
            index.insert(key.clone(), &[])?;
            Ok(())
        });
        match outcome {
            Ok(()) => Ok(true),
            Err(TransactionError::Abort(())) => Ok(false),
            Err(TransactionError::Storage(e)) => Err(e),
        }
    }

    pub fn get(&self, name: &str) -> sled::Result<Option<sled::IVec>> {
        self.records.get(name)
    }

    pub fn contains(&self, name: &str) -> sled::Result<bool> {
        self.records.contains_key(name)
    }

    /// The records of one workspace, in name order.
    pub fn of_workspace(&self, workspace_id: &str) -> sled::Result<Vec<(sled::IVec, sled::IVec)>> {
        let prefix = index_key(workspace_id, b"");
        let mut out = Vec::new();
        for item in self.index.scan_prefix(&prefix) {
            let (key, _) = item?;
            let name = &key[prefix.len()..];
            if let Some(value) = self.records.get(name)? {
                out.push((sled::IVec::from(name), value));
            }
        }
        Ok(out)
    }
}
