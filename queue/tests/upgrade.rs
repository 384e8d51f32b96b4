//! A spool kept by an earlier version in the store's sled database (the
//! tree `spool`, same key layout) is moved into the spool's own index when
//! this version opens it: once, whole, and also when a first move was cut
//! short.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{attempt_at, submission, Settle};
use rackwave_queue::*;

const T0: i64 = 1_700_000_000_000;

fn open(dir: &Path) -> (sled::Db, Spool) {
    let db = common::open_db(&dir.join("db"));
    let spool = Spool::open(&db, &dir.join("spool"), SpoolConfig::default()).unwrap();
    (db, spool)
}

type Stored = BTreeMap<Vec<u8>, Vec<u8>>;

fn everything(spool: &Spool) -> Stored {
    let raw = spool.raw();
    raw.keys(b"")
        .unwrap()
        .into_iter()
        .filter(|k| !k.starts_with(b"!"))
        .map(|k| {
            let v = raw.get(&k).unwrap().unwrap();
            (k, v)
        })
        .collect()
}

/// Puts `stored` where an earlier version kept the spool, with no index
/// of this version beside it.
fn as_an_earlier_version_kept_it(dir: &Path, stored: &Stored) {
    let index = dir.join("spool").join(INDEX_DIR);
    if index.exists() {
        std::fs::remove_dir_all(&index).unwrap();
    }
    let db = common::open_db(&dir.join("db"));
    let tree = db.open_tree("spool").unwrap();
    tree.clear().unwrap();
    for (k, v) in stored {
        tree.insert(k, v.as_slice()).unwrap();
    }
    db.flush().unwrap();
}

fn has_sled_spool(db: &sled::Db) -> bool {
    db.tree_names().iter().any(|n| n == b"spool".as_slice())
}

/// Three messages, one delivered: records, indexes, counters, a body, the
/// feed; returns the spool's keys and values and the message ids.
async fn a_spool_in_use(dir: &Path) -> (Stored, Vec<String>) {
    let (_db, spool) = open(dir);
    let e = spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org", "c@x.org"], T0))
        .await
        .unwrap();
    let leased = spool.lease(T0 + 1, 1).unwrap();
    spool
        .delivered(&leased[0].id, attempt_at(T0 + 2))
        .await
        .unwrap();
    (everything(&spool), e.message_ids)
}

#[tokio::test]
async fn an_earlier_versions_spool_is_moved_into_the_index_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (stored, ids) = a_spool_in_use(dir.path()).await;
    as_an_earlier_version_kept_it(dir.path(), &stored);

    let (db, spool) = open(dir.path());
    assert_eq!(everything(&spool), stored, "every key and value came over");
    assert!(!has_sled_spool(&db), "the sled tree is gone");
    let counts = spool.counts();
    assert_eq!((counts.queued, counts.delivered), (2, 1));
    assert_eq!(spool.last_feed_seq(), 4, "three queued, one delivered");
    let leased: Vec<String> = spool
        .lease(T0 + 10, 10)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(leased.len(), 2);
    assert!(leased.iter().all(|id| ids.contains(id)));
    let queue_id = spool.get(&ids[0]).unwrap().unwrap().queue_id;
    assert_eq!(
        spool.body(&queue_id).unwrap().unwrap(),
        b"Subject: hello\r\n\r\nhi\r\n"
    );
    // The last two settle and the body goes, as with a spool of this
    // version.
    for id in &leased {
        spool.delivered(id, attempt_at(T0 + 11)).await.unwrap();
    }
    assert_eq!(spool.body(&queue_id).unwrap(), None);
    assert_eq!(spool.counts().delivered, 3);
}

#[tokio::test]
async fn a_move_cut_short_is_made_again_and_a_finished_one_never() {
    let dir = tempfile::tempdir().unwrap();
    let (stored, ids) = a_spool_in_use(dir.path()).await;
    as_an_earlier_version_kept_it(dir.path(), &stored);
    {
        // A first move cut short: part of the keys in the index, no mark
        // that the move is whole (opened beside an empty sled database,
        // the index starts empty; then half the keys go in).
        let other = tempfile::tempdir().unwrap();
        let db = common::open_db(other.path());
        let spool = Spool::open(&db, &dir.path().join("spool"), SpoolConfig::default()).unwrap();
        let raw = spool.raw();
        for (k, v) in stored.iter().step_by(2) {
            raw.insert(k, v).unwrap();
        }
    }
    let (db, spool) = open(dir.path());
    assert_eq!(everything(&spool), stored);
    assert!(!has_sled_spool(&db));
    let leased = spool.lease(T0 + 10, 10).unwrap();
    for m in &leased {
        spool.delivered(&m.id, attempt_at(T0 + 11)).await.unwrap();
    }
    assert_eq!(spool.counts().delivered, 3);
    drop(spool);

    // The sled tree coming back (dropped in part when the node stopped)
    // is not read again: the move is marked whole.
    let tree = db.open_tree("spool").unwrap();
    for (k, v) in &stored {
        tree.insert(k, v.as_slice()).unwrap();
    }
    db.flush().unwrap();
    drop((tree, db));
    let (db, spool) = open(dir.path());
    assert_eq!(spool.counts().delivered, 3, "what happened since stays");
    assert_eq!(spool.counts().queued, 0);
    assert!(spool.lease(T0 + 20, 10).unwrap().is_empty());
    assert!(spool.get(&ids[2]).unwrap().unwrap().status == Status::Delivered);
    assert!(!has_sled_spool(&db));
}
