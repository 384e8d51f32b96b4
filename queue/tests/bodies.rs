//! Body segment files: bodies live outside sled in append-only segments.
//! These tests check what an operator relies on: bodies come back intact
//! after a restart, space is given back when mail is done, crash leftovers
//! are cleaned up, and damaged data is reported instead of delivered.

mod common;

use std::path::{Path, PathBuf};

use common::{attempt_at, Settle};
use rackwave_queue::*;

const T0: i64 = 1_700_000_000_000;

fn open_with(dir: &Path, segment_bytes: u64) -> (sled::Db, Spool) {
    let db = common::open_db(&dir.join("db"));
    let config = SpoolConfig {
        body_segment_bytes: segment_bytes,
        ..SpoolConfig::default()
    };
    let spool = Spool::open(&db, &dir.join("bodies"), config).unwrap();
    (db, spool)
}

/// A body that differs per `n`, so a mix-up between bodies is visible.
fn body(n: usize, len: usize) -> Vec<u8> {
    let mut b = format!("Subject: message {n}\r\n\r\n").into_bytes();
    while b.len() < len {
        b.extend_from_slice(format!("line {n} of the body\r\n").as_bytes());
    }
    b
}

fn submission(n: usize, rcpts: &[&str], len: usize) -> Submission {
    Submission {
        queue_id: None,
        workspace_id: "ws1".into(),
        submitter: "alice".into(),
        mail_from: "alice@example.com".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        subject: Some(format!("message {n}")),
        body: body(n, len),
        received_at_ms: T0,
        tags: Vec::new(),
        metadata: Default::default(),
        return_path: None,
    }
}

fn delivered_attempt() -> DeliveryAttempt {
    DeliveryAttempt {
        sent_at_ms: Some(T0 + 1),
        ..attempt_at(T0 + 1)
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("bodies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .collect();
    v.sort();
    v
}

async fn deliver_all(spool: &Spool) {
    loop {
        let leased = spool.lease(T0 + 1, 100).unwrap();
        if leased.is_empty() {
            break;
        }
        for m in leased {
            spool.delivered(&m.id, delivered_attempt()).await.unwrap();
        }
    }
}

#[tokio::test]
async fn bodies_rotate_across_segments_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut queued = Vec::new();
    {
        let (_db, spool) = open_with(dir.path(), 8 * 1024);
        for n in 0..40 {
            let e = spool
                .enqueue(submission(n, &["a@x.org"], 1000 + n * 37))
                .await
                .unwrap();
            queued.push((n, e.queue_id));
        }
        assert!(
            segments(dir.path()).len() >= 4,
            "40 bodies of ~1-2 KB in 8 KB segments: {:?}",
            segments(dir.path())
        );
    }
    let before = segments(dir.path());
    let (_db, spool) = open_with(dir.path(), 8 * 1024);
    for (n, qid) in &queued {
        assert_eq!(
            spool.body(qid).unwrap().unwrap(),
            body(*n, 1000 + n * 37),
            "body of message {n}"
        );
    }
    let after = segments(dir.path());
    assert_eq!(
        after.len(),
        before.len() + 1,
        "a reopen starts a new segment"
    );
    assert!(after.last() > before.last());
}

#[tokio::test]
async fn segments_are_deleted_once_their_bodies_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open_with(dir.path(), 8 * 1024);
    // A submission with two recipients keeps its body until both are final.
    let shared = spool
        .enqueue(submission(0, &["a@x.org", "b@x.org"], 3000))
        .await
        .unwrap();
    for n in 1..30 {
        spool
            .enqueue(submission(n, &["c@x.org"], 3000))
            .await
            .unwrap();
    }
    let full = segments(dir.path()).len();
    assert!(full >= 8, "{full} segments");

    let mut leased = spool.lease(T0 + 1, 100).unwrap();
    assert_eq!(leased.len(), 31);
    let at = leased.iter().position(|m| m.to == "a@x.org").unwrap();
    let first = leased.remove(at);
    assert_eq!(first.queue_id, shared.queue_id);
    for m in leased {
        spool.release(&m.id);
    }
    spool
        .delivered(&first.id, delivered_attempt())
        .await
        .unwrap();
    // (The settlement may have started a fresh segment; none was deleted.)
    assert!(
        segments(dir.path()).len() >= full,
        "one recipient still pending"
    );
    assert!(spool.body(&shared.queue_id).unwrap().is_some());

    deliver_all(&spool).await;
    assert!(spool.body(&shared.queue_id).unwrap().is_none());
    // Only the segment still open for appending may remain.
    assert_eq!(segments(dir.path()).len(), 1, "{:?}", segments(dir.path()));

    // The next enqueue moves past the full, empty segment and deletes it.
    let e = spool
        .enqueue(submission(99, &["d@x.org"], 3000))
        .await
        .unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    assert_eq!(spool.body(&e.queue_id).unwrap().unwrap(), body(99, 3000));
}

#[tokio::test]
async fn crash_leftovers_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let qid = {
        let (_db, spool) = open_with(dir.path(), 1 << 20);
        spool
            .enqueue(submission(1, &["a@x.org"], 2000))
            .await
            .unwrap()
            .queue_id
    };
    // A crash after a segment was written but before sled committed its
    // references leaves bytes nobody points to: a whole unreferenced
    // segment, or a tail after the referenced bodies.
    let orphan = dir.path().join("bodies").join("seg-00000000000000ff");
    std::fs::write(&orphan, b"half a message that was never acknowledged").unwrap();
    let live = segments(dir.path())
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut tail = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    std::io::Write::write_all(&mut tail, b"torn tail").unwrap();
    drop(tail);

    let (_db, spool) = open_with(dir.path(), 1 << 20);
    assert!(!orphan.exists(), "unreferenced segment deleted at open");
    assert_eq!(spool.body(&qid).unwrap().unwrap(), body(1, 2000));
    // New bodies go to a segment numbered after everything seen, so the
    // deleted orphan's id is not reused.
    let newest = segments(dir.path()).pop().unwrap();
    assert!(newest.file_name().unwrap() > orphan.file_name().unwrap());
    let e = spool
        .enqueue(submission(2, &["b@x.org"], 2000))
        .await
        .unwrap();
    assert_eq!(spool.body(&e.queue_id).unwrap().unwrap(), body(2, 2000));
}

#[tokio::test]
async fn a_damaged_body_is_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open_with(dir.path(), 1 << 20);
    let e = spool
        .enqueue(submission(1, &["a@x.org"], 2000))
        .await
        .unwrap();
    let seg = segments(dir.path())
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&seg, bytes).unwrap();
    match spool.body(&e.queue_id) {
        Err(SpoolError::Corrupt(msg)) => assert!(msg.contains("checksum"), "{msg}"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[tokio::test]
async fn bodies_stored_inline_by_earlier_versions_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What an earlier version wrote, in the store's sled database: the
        // body itself under `b/<queue id>`.
        let db = common::open_db(&dir.path().join("db"));
        let tree = db.open_tree("spool").unwrap();
        tree.insert(
            b"b/0123456789ABCDEF",
            &b"Subject: old\r\n\r\nold body\r\n"[..],
        )
        .unwrap();
        db.flush().unwrap();
    }
    let (_db, spool) = open_with(dir.path(), 1 << 20);
    assert_eq!(
        spool.body("0123456789ABCDEF").unwrap().unwrap(),
        b"Subject: old\r\n\r\nold body\r\n"
    );
}

#[tokio::test]
async fn a_submission_counted_by_an_earlier_version_frees_its_body_after_the_last_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let queue_id = {
        let (_db, spool) = open_with(dir.path(), 1 << 20);
        let queued = spool
            .enqueue(submission(1, &["a@example.net", "b@example.net"], 512))
            .await
            .unwrap();
        // What an earlier version wrote: the 25-byte reference (tag 0xB5)
        // and the pending count under a key of its own.
        let tree = spool.raw();
        let key = format!("b/{}", queued.queue_id);
        let current = tree.get(&key).unwrap().unwrap();
        assert_eq!(current.len(), 33, "the reference carries the count");
        let mut old = current[..25].to_vec();
        old[0] = 0xB5;
        tree.insert(&key, old).unwrap();
        tree.insert(format!("r/{}", queued.queue_id), 2u64.to_be_bytes())
            .unwrap();
        queued.queue_id
    };
    let (_db, spool) = open_with(dir.path(), 1 << 20);
    let tree = spool.raw();
    let leased = spool.lease(T0 + 1, 10).unwrap();
    assert_eq!(leased.len(), 2);
    spool
        .delivered(&leased[0].id, delivered_attempt())
        .await
        .unwrap();
    assert_eq!(
        spool.body(&queue_id).unwrap().unwrap(),
        body(1, 512),
        "one recipient is still pending"
    );
    assert_eq!(
        tree.get(format!("r/{queue_id}")).unwrap().unwrap(),
        &1u64.to_be_bytes()[..]
    );
    spool
        .delivered(&leased[1].id, delivered_attempt())
        .await
        .unwrap();
    assert_eq!(spool.body(&queue_id).unwrap(), None);
    assert!(tree.get(format!("r/{queue_id}")).unwrap().is_none());
}

#[tokio::test]
async fn a_body_goes_with_the_last_of_its_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open_with(dir.path(), 1 << 20);
    let tree = spool.raw();
    let queued = spool
        .enqueue(submission(
            2,
            &["a@example.net", "b@example.net", "c@example.net"],
            700,
        ))
        .await
        .unwrap();
    assert!(
        tree.keys(b"r/").unwrap().is_empty(),
        "the count lives in the body's reference"
    );
    let leased = spool.lease(T0 + 1, 10).unwrap();
    assert_eq!(leased.len(), 3);
    spool
        .delivered(&leased[0].id, delivered_attempt())
        .await
        .unwrap();
    spool
        .bounce(&leased[1].id, delivered_attempt())
        .await
        .unwrap();
    assert_eq!(spool.body(&queued.queue_id).unwrap().unwrap(), body(2, 700));
    // A deferral is not final: the body stays for the retry.
    spool
        .defer(&leased[2].id, T0 + 60_000, delivered_attempt())
        .await
        .unwrap();
    assert_eq!(spool.body(&queued.queue_id).unwrap().unwrap(), body(2, 700));
    let retried = spool.lease(T0 + 60_000, 10).unwrap();
    assert_eq!(retried.len(), 1);
    spool
        .delivered(&retried[0].id, delivered_attempt())
        .await
        .unwrap();
    assert_eq!(spool.body(&queued.queue_id).unwrap(), None);
}

/// Enqueues `range` at once, each on its own task (so the writer meets
/// hundreds waiting and stages them while the last group's journal is
/// synced); answers `(n, queue id)` per message.
async fn enqueue_at_once(spool: &Spool, range: std::ops::Range<usize>) -> Vec<(usize, String)> {
    let tasks: Vec<_> = range
        .map(|n| {
            let spool = spool.clone();
            tokio::spawn(async move {
                let e = spool
                    .enqueue(submission(n, &["a@x.org"], 1000))
                    .await
                    .unwrap();
                (n, e.queue_id)
            })
        })
        .collect();
    let mut queued = Vec::new();
    for t in tasks {
        queued.push(t.await.unwrap());
    }
    queued
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_staged_while_the_last_one_syncs_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: rotations and deletions happen while groups overlap.
    let (db, spool) = open_with(dir.path(), 64 * 1024);
    let first = enqueue_at_once(&spool, 0..1500).await;
    for (n, q) in &first {
        assert_eq!(spool.body(q).unwrap().unwrap(), body(*n, 1000), "body {n}");
    }
    let s = spool.stats();
    assert!(s.commits < 1500, "no groups formed: {s:?}");
    assert_eq!(s.flushes, s.commits, "{s:?}");

    // More at once while everything queued is delivered: settlements that
    // empty segments land in groups staged beside enqueues.
    let delivering = {
        let spool = spool.clone();
        tokio::spawn(async move {
            let mut settled = 0;
            while settled < 1500 {
                let leased = spool.lease(T0 + 1, 200).unwrap();
                for m in leased {
                    spool.delivered(&m.id, delivered_attempt()).await.unwrap();
                    settled += 1;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let second = enqueue_at_once(&spool, 1500..3000).await;
    delivering.await.unwrap();
    for (n, q) in &second {
        if let Some(b) = spool.body(q).unwrap() {
            assert_eq!(b, body(*n, 1000), "body {n}");
        }
    }
    deliver_all(&spool).await;

    let c = spool.counts();
    assert_eq!((c.queued, c.delivered), (0, 3000));
    // Every message: queued, sent, delivered; in one contiguous feed.
    assert_eq!(spool.last_feed_seq(), 9000);
    let seqs: Vec<u64> = spool
        .feed(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(seqs, (1..=9000).collect::<Vec<_>>());
    // Nothing live: only the segment still open for appending is left.
    assert_eq!(segments(dir.path()).len(), 1, "{:?}", segments(dir.path()));

    drop(spool);
    drop(db);
    let (_db, spool) = open_with(dir.path(), 64 * 1024);
    let c = spool.counts();
    assert_eq!((c.queued, c.delivered), (0, 3000));
    assert_eq!(spool.last_feed_seq(), 9000);
    assert_eq!(segments(dir.path()).len(), 1, "{:?}", segments(dir.path()));
}
