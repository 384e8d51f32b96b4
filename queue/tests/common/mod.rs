//! What the spool's test files share.

use std::path::Path;
use std::time::{Duration, Instant};

/// Opens the sled database at `path`. A test that reopens a database right
/// after dropping its handles may find the file lock still held: sled's
/// background threads let go of the file a moment after the last handle
/// (more so on a loaded machine), so a held lock is waited out for a while.
pub fn open_db(path: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("opening {}: {e}", path.display()),
        }
    }
}
