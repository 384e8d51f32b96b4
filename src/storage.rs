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
pub fn open(path: &Path, cache_mb: u64) -> sled::Result<sled::Db> {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_mb * 1024 * 1024)
        .flush_every_ms(Some(1000))
        .open()
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
