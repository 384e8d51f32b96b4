//! Message bodies, kept in append-only segment files beside the index.
//!
//! # Why not in the index
//!
//! Bodies are most of the spool's bytes but are written once, read once per
//! delivery connection and deleted once. A key-value store rewrites its
//! values: a B-tree with copy-on-write pages (sled, which held the spool
//! before) whenever any key on the page changes, an LSM tree at every
//! compaction that passes them; both the write amplification and the
//! cache pressure grow with queue depth. Here a body is written exactly
//! once, sequentially, and the index only holds a small [`BodyRef`] to it.
//!
//! # Durability
//!
//! The writer thread appends every body of a group to the current segment,
//! `fdatasync`s the segment, and only THEN applies the index batch holding
//! the references and syncs the index's journal. So a durable reference always points at
//! durable bytes. A crash in between leaves unreferenced bytes at the end of
//! a segment: garbage, never a dangling reference. Each body carries a CRC32
//! in its reference, so torn or damaged data is reported, not delivered.
//!
//! After a restart the writer never appends to an old segment: it starts a
//! new one, so a half-written tail needs no repair.
//!
//! # Reclaiming space
//!
//! Each segment has a durable live-body counter (`g/<segment>` in the spool
//! tree) changed in the same batch as the references. A segment whose
//! counter reaches zero, and that is no longer the one being appended to,
//! is deleted once that batch is fsynced (by the writer's sync thread,
//! [`BodyFiles::durable`]: the index's sync runs while the writer stages
//! the next group, so a batch the writer has applied may not be durable
//! yet). At open, segment files without a
//! counter (only garbage from a crash, or emptied before the crash) are
//! deleted. A segment stays while any one of its bodies is pending, so a
//! long deferral pins its whole segment; segments are kept small
//! (`SpoolConfig::body_segment_bytes`) to bound that cost. Compacting such segments is not
//! done yet.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{debug, warn};

use crate::error::SpoolError;
use crate::keys;
use crate::writer::{decode_counter, lock};

/// First byte of an encoded [`BodyRef`]. Bodies stored inline (in sled) by
/// earlier versions are RFC 5322 text and never start with either tag.
const REF_TAG: u8 = 0xB5;
const REF_LEN: usize = 25;
/// A reference that also carries its submission's count of messages not
/// yet final (see [`BodyRef::encode_with_pending`]).
const PENDING_REF_TAG: u8 = 0xB6;
const PENDING_REF_LEN: usize = REF_LEN + 8;

/// Where one body lives: segment, byte range and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyRef {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

impl BodyRef {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(REF_LEN);
        v.push(REF_TAG);
        v.extend_from_slice(&self.segment.to_be_bytes());
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.crc.to_be_bytes());
        v
    }

    /// The reference followed by the submission's count of messages not
    /// yet final. Earlier versions kept that count under a key of its own
    /// (`r/<queueid>`); in the reference it costs the writer one key fewer
    /// per submission, and the two always change together anyway (the
    /// body goes when the count reaches zero).
    pub(crate) fn encode_with_pending(&self, pending: u64) -> Vec<u8> {
        let mut v = self.encode();
        v[0] = PENDING_REF_TAG;
        v.extend_from_slice(&pending.to_be_bytes());
        v
    }

    /// The pending count of a reference written by
    /// [`encode_with_pending`](Self::encode_with_pending); `None` for
    /// anything else (its count, if any, is under `r/<queueid>`).
    pub(crate) fn pending_of(raw: &[u8]) -> Option<u64> {
        if raw.len() != PENDING_REF_LEN || raw[0] != PENDING_REF_TAG {
            return None;
        }
        Some(u64::from_be_bytes(
            raw[REF_LEN..].try_into().expect("8 bytes"),
        ))
    }

    /// `None` if `raw` is not a reference (a body stored inline, in sled, by
    /// an earlier version).
    pub(crate) fn decode(raw: &[u8]) -> Option<BodyRef> {
        let tagged = match raw.first() {
            Some(&REF_TAG) => raw.len() == REF_LEN,
            Some(&PENDING_REF_TAG) => raw.len() == PENDING_REF_LEN,
            _ => false,
        };
        if !tagged {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_be_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
        Some(BodyRef {
            segment: u64_at(1),
            offset: u64_at(9),
            len: u32_at(17),
            crc: u32_at(21),
        })
    }
}

fn segment_name(id: u64) -> String {
    format!("seg-{id:016x}")
}

fn segment_id(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> SpoolError {
    move |source| SpoolError::Io { context, source }
}

/// Read side, shared by every `Spool` clone and the writer (which evicts
/// deleted segments). Open files are cached: unlinking a segment does not
/// disturb a read already holding its file.
pub(crate) struct BodyFiles {
    dir: PathBuf,
    open: Mutex<HashMap<u64, Arc<File>>>,
    /// The segment being appended to (set by the writer): never deleted.
    current: AtomicU64,
    reclaim: Mutex<Reclaim>,
}

/// Which emptied segments may go: only those emptied by durable groups.
#[derive(Default)]
struct Reclaim {
    /// Every group up to this number is durable.
    durable_group: u64,
    /// Segments the writer rotated away from with no live body left, each
    /// with the number of the last group applied then: deleted once that
    /// group is durable.
    deferred: Vec<(u64, u64)>,
}

impl BodyFiles {
    fn file(&self, segment: u64) -> Result<Arc<File>, SpoolError> {
        if let Some(f) = lock(&self.open).get(&segment) {
            return Ok(f.clone());
        }
        let path = self.dir.join(segment_name(segment));
        let file = File::open(&path).map_err(io_error(format!("opening {}", path.display())))?;
        let file = Arc::new(file);
        lock(&self.open).insert(segment, file.clone());
        Ok(file)
    }

    /// Reads and checks one body.
    pub(crate) fn read(&self, r: BodyRef) -> Result<Vec<u8>, SpoolError> {
        let file = self.file(r.segment)?;
        let mut buf = vec![0; r.len as usize];
        file.read_exact_at(&mut buf, r.offset)
            .map_err(io_error(format!(
                "reading {} bytes at {} of segment {}",
                r.len,
                r.offset,
                segment_name(r.segment)
            )))?;
        if crc32fast::hash(&buf) != r.crc {
            return Err(SpoolError::Corrupt(format!(
                "body at {} of segment {} fails its checksum",
                r.offset,
                segment_name(r.segment)
            )));
        }
        Ok(buf)
    }

    fn forget(&self, segment: u64) {
        lock(&self.open).remove(&segment);
    }

    /// Every group up to `group` is durable, and `emptied` lost their last
    /// live body in them: deletes those (the current segment excepted:
    /// the writer's rotation away from it deletes it) and the segments a
    /// rotation left for this.
    pub(crate) fn durable(&self, group: u64, emptied: &[u64]) {
        let current = self.current.load(Ordering::Acquire);
        let due = {
            let mut r = lock(&self.reclaim);
            r.durable_group = r.durable_group.max(group);
            let durable = r.durable_group;
            let (due, later): (Vec<_>, Vec<_>) = r
                .deferred
                .drain(..)
                .partition(|&(_, applied)| applied <= durable);
            r.deferred = later;
            due
        };
        let emptied = emptied.iter().copied().filter(|&s| s != current);
        for segment in emptied.chain(due.into_iter().map(|(s, _)| s)) {
            self.delete(segment);
        }
    }

    /// The writer rotated away from `segment`, whose last live body is
    /// released in the tree as of group `applied`: deleted now if that
    /// group is durable, else once it is.
    fn emptied_by_rotation(&self, segment: u64, applied: u64) {
        let mut r = lock(&self.reclaim);
        if applied <= r.durable_group {
            drop(r);
            self.delete(segment);
        } else {
            r.deferred.push((segment, applied));
        }
    }

    fn delete(&self, segment: u64) {
        self.forget(segment);
        let path = self.dir.join(segment_name(segment));
        match std::fs::remove_file(&path) {
            Ok(()) => debug!(segment, "deleted empty body segment"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Harmless: an unreferenced segment is deleted at the next open.
            Err(e) => warn!(path = %path.display(), error = %e, "deleting body segment failed"),
        }
    }
}

/// Write side, owned by the writer thread.
pub(crate) struct BodyWriter {
    files: Arc<BodyFiles>,
    current: u64,
    file: File,
    /// Bytes in the current segment, including any garbage after a failed
    /// group (offsets are always computed from this).
    len: u64,
    /// A write or sync failed: the next group first cuts the segment back
    /// to `len` (or starts a new one) rather than trusting its end.
    poisoned: bool,
    segment_target: u64,
    /// One buffer for a group's bodies: written with one call.
    buffer: Vec<u8>,
}

impl BodyWriter {
    /// Opens the body directory: deletes segments no durable counter refers
    /// to and starts a fresh segment after the highest id seen.
    pub(crate) fn open(
        dir: &Path,
        tree: &crate::index::Index,
        segment_target: u64,
    ) -> Result<BodyWriter, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
        let mut live = HashMap::new();
        for item in tree.scan_prefix(keys::SEGMENT_LIVE) {
            let (key, raw) = item?;
            let id = keys::segment_of_live_key(&key).ok_or_else(|| {
                SpoolError::Corrupt(format!(
                    "segment counter key {} is malformed",
                    String::from_utf8_lossy(&key)
                ))
            })?;
            live.insert(id, decode_counter(&key, &raw)?);
        }
        let mut highest = live.keys().copied().max();
        let listing =
            std::fs::read_dir(dir).map_err(io_error(format!("listing {}", dir.display())))?;
        for entry in listing {
            let entry = entry.map_err(io_error(format!("listing {}", dir.display())))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(segment_id) else {
                continue;
            };
            highest = highest.max(Some(id));
            if !live.contains_key(&id) {
                debug!(segment = id, "deleting unreferenced body segment");
                std::fs::remove_file(entry.path())
                    .map_err(io_error(format!("deleting {}", entry.path().display())))?;
            }
        }
        for id in live.keys() {
            if !dir.join(segment_name(*id)).exists() {
                warn!(
                    segment = id,
                    "body segment referenced by the spool is missing"
                );
            }
        }
        let current = highest.map_or(1, |h| h + 1);
        let files = Arc::new(BodyFiles {
            dir: dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            current: AtomicU64::new(current),
            reclaim: Mutex::new(Reclaim::default()),
        });
        let file = create_segment(dir, current)?;
        Ok(BodyWriter {
            files,
            current,
            file,
            len: 0,
            poisoned: false,
            segment_target,
            buffer: Vec::new(),
        })
    }

    pub(crate) fn files(&self) -> Arc<BodyFiles> {
        self.files.clone()
    }

    /// Where the next group's bodies go: `(segment, bytes already in it)`.
    ///
    /// After a failed write the segment may end in part of a body past
    /// `len`; it is cut back to `len`, so the next offsets are right. A
    /// full segment is replaced by a new one (the old one deleted right
    /// away if no body in it is live); if that fails, the current segment
    /// goes on growing past its target rather than failing the group, which
    /// may hold settlements that have nothing to do with bodies.
    /// `applied_group`: the number of the last group the writer applied.
    pub(crate) fn prepare(
        &mut self,
        tree: &crate::index::Index,
        applied_group: u64,
    ) -> Result<(u64, u64), SpoolError> {
        if self.poisoned {
            match self.file.set_len(self.len) {
                Ok(()) => self.poisoned = false,
                Err(e) => warn!(error = %e, "cutting back a body segment after a failed write"),
            }
        }
        if self.poisoned || self.len >= self.segment_target {
            match self.rotate(tree, applied_group) {
                Ok(()) => {}
                Err(e) if !self.poisoned => {
                    warn!(error = %e, "starting a new body segment failed; the current one grows past its target");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((self.current, self.len))
    }

    fn rotate(&mut self, tree: &crate::index::Index, applied_group: u64) -> Result<(), SpoolError> {
        let next = self.current + 1;
        let file = create_segment(&self.files.dir, next)?;
        let old = std::mem::replace(&mut self.current, next);
        self.files.current.store(next, Ordering::Release);
        self.file = file;
        self.len = 0;
        self.poisoned = false;
        // The tree's counter is the durable one only once every group
        // applied so far is.
        if tree.get(keys::segment_live(old))?.is_none() {
            self.files.emptied_by_rotation(old, applied_group);
        }
        Ok(())
    }

    /// Appends a group's bodies (in the order their references were
    /// staged) and makes them durable.
    pub(crate) fn append(&mut self, bodies: &[Vec<u8>]) -> Result<(), SpoolError> {
        if bodies.is_empty() {
            return Ok(());
        }
        // One write for the group, not one a body (hundreds of calls for
        // a group of batch sends).
        self.buffer.clear();
        for body in bodies {
            self.buffer.extend_from_slice(body);
        }
        let result = self.file.write_all(&self.buffer).and_then(|()| {
            self.len += self.buffer.len() as u64;
            self.file.sync_data()
        });
        // A group's worth of bodies stays allocated between groups; a rare
        // huge one does not.
        if self.buffer.capacity() > 64 << 20 {
            self.buffer = Vec::new();
        }
        result.map_err(|e| {
            self.poisoned = true;
            SpoolError::Io {
                context: format!("writing segment {}", segment_name(self.current)),
                source: e,
            }
        })
    }
}

/// Creates a segment file and fsyncs the directory, so the file's existence
/// is as durable as the bodies later written into it.
fn create_segment(dir: &Path, id: u64) -> Result<File, SpoolError> {
    let path = dir.join(segment_name(id));
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_error(format!("creating {}", path.display())))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(format!("syncing {}", dir.display())))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment emptied by a group that is not durable yet stays until it
    /// is: deleting it earlier, a crash would bring back the index's older
    /// state, whose references point into the deleted file.
    #[test]
    fn emptied_segments_go_only_once_the_group_that_emptied_them_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        for id in 1..=4 {
            std::fs::write(dir.path().join(segment_name(id)), b"x").unwrap();
        }
        let exists = |id| dir.path().join(segment_name(id)).exists();
        let files = BodyFiles {
            dir: dir.path().to_path_buf(),
            open: Mutex::new(HashMap::new()),
            current: AtomicU64::new(4),
            reclaim: Mutex::new(Reclaim::default()),
        };
        // Rotated away from 2 with group 5 applied, nothing durable yet.
        files.emptied_by_rotation(2, 5);
        assert!(exists(2));
        files.durable(4, &[]);
        assert!(exists(2), "group 5 is not durable yet");
        // Group 5 emptied segment 1 and the current one, 4.
        files.durable(5, &[1, 4]);
        assert!(!exists(1) && !exists(2));
        assert!(exists(4), "the segment being appended to stays");
        // A rotation behind what is durable deletes at once.
        files.emptied_by_rotation(3, 5);
        assert!(!exists(3));
    }

    #[test]
    fn references_roundtrip_and_inline_bodies_are_not_references() {
        let r = BodyRef {
            segment: 7,
            offset: 1 << 40,
            len: 123_456,
            crc: 0xdead_beef,
        };
        assert_eq!(BodyRef::decode(&r.encode()), Some(r));
        assert_eq!(BodyRef::decode(b"From: a@b\r\n\r\nhello\r\n"), None);
        let mut short = r.encode();
        short.pop();
        assert_eq!(BodyRef::decode(&short), None);
        assert_eq!(BodyRef::pending_of(&r.encode()), None);
    }

    #[test]
    fn a_reference_with_its_pending_count_reads_as_both() {
        let r = BodyRef {
            segment: 3,
            offset: 4096,
            len: 2048,
            crc: 0x0102_0304,
        };
        let raw = r.encode_with_pending(1000);
        assert_eq!(BodyRef::decode(&raw), Some(r));
        assert_eq!(BodyRef::pending_of(&raw), Some(1000));
        let mut long = raw.clone();
        long.push(0);
        assert_eq!(BodyRef::decode(&long), None);
        assert_eq!(BodyRef::pending_of(&long), None);
        let mut short = raw;
        short.pop();
        assert_eq!(BodyRef::decode(&short), None);
        assert_eq!(BodyRef::pending_of(&short), None);
    }

    #[test]
    fn segment_names_roundtrip() {
        for id in [0, 1, 0xabc, u64::MAX] {
            assert_eq!(segment_id(&segment_name(id)), Some(id));
        }
        assert_eq!(segment_id("seg-12"), None);
        assert_eq!(segment_id("conf"), None);
    }
}
