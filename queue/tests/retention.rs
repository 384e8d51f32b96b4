//! Retention: finished messages are deleted after the retention with every
//! key naming them, pending ones never; counters stay exact; records
//! finished before the retention index existed are found and deleted too.

mod common;

use common::{attempt_at, Settle};
use rackwave_core::Clock;
use rackwave_queue::*;

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn open(path: &std::path::Path) -> (sled::Db, Spool) {
    let db = common::open_db(path);
    let spool = Spool::open(&db, &path.join("bodies"), SpoolConfig::default()).unwrap();
    (db, spool)
}

/// A submission by the workspace's own submitter (accepted counts are
/// per submitter).
fn submission(ws: &str, rcpts: &[&str], at: i64) -> Submission {
    Submission {
        submitter: format!("{ws}-app"),
        ..common::submission(ws, rcpts, at)
    }
}

fn listed(spool: &Spool, ws: &str) -> Vec<String> {
    let filter = ListFilter {
        workspace_id: ws.into(),
        to: None,
        status: None,
        ..Default::default()
    };
    spool
        .list(&filter, None, 500)
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn keys_naming(spool: &Spool, id: &str) -> Vec<String> {
    spool
        .raw()
        .keys(b"")
        .unwrap()
        .into_iter()
        .filter(|k| k.windows(id.len()).any(|w| w == id.as_bytes()))
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect()
}

#[tokio::test]
async fn finished_messages_go_after_the_retention_and_pending_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    let a = spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org", "c@x.org"], T0))
        .await
        .unwrap();
    let b = spool
        .enqueue(submission("ws2", &["d@x.org"], T0))
        .await
        .unwrap();
    assert_eq!(spool.lease(T0, 10).unwrap().len(), 4);
    let ids = &a.message_ids;
    spool.delivered(&ids[0], attempt_at(T0 + 10)).await.unwrap();
    spool.bounce(&ids[1], attempt_at(T0 + 20)).await.unwrap();
    spool
        .defer(&ids[2], T0 + DAY, attempt_at(T0 + 30))
        .await
        .unwrap();
    spool
        .delivered(&b.message_ids[0], attempt_at(T0 + 5 * DAY))
        .await
        .unwrap();
    let before = spool.counts();
    assert_eq!(
        (before.delivered, before.bounced, before.deferred),
        (2, 1, 1)
    );

    // Nothing finished before T0 + 10.
    assert_eq!(
        spool.prune_finished(T0 + 10, 100).await.unwrap(),
        (0, false)
    );
    // A limit of one: one record per call, and it says more are due.
    assert_eq!(spool.prune_finished(T0 + DAY, 1).await.unwrap(), (1, true));
    assert_eq!(spool.prune_finished(T0 + DAY, 1).await.unwrap(), (1, false));
    assert_eq!(
        spool.prune_finished(T0 + DAY, 100).await.unwrap(),
        (0, false)
    );

    for id in &ids[..2] {
        assert!(spool.get(id).unwrap().is_none(), "{id} is gone");
        assert!(
            keys_naming(&spool, id).is_empty(),
            "{id}: {:?}",
            keys_naming(&spool, id)
        );
    }
    // The deferred one and the one finished later are untouched.
    assert!(spool.get(&ids[2]).unwrap().is_some());
    assert_eq!(listed(&spool, "ws1"), [ids[2].clone()]);
    assert_eq!(spool.by_queue_id(&a.queue_id).unwrap(), [ids[2].clone()]);
    assert_eq!(listed(&spool, "ws2"), b.message_ids);
    let after = spool.counts();
    assert_eq!(
        (after.delivered, after.bounced, after.deferred, after.queued),
        (1, 0, 1, 0)
    );
    // Daily quota counters go with the days before the cutoff's (the
    // quota only reads today's); the deferred message is due still.
    assert_eq!(spool.accepted_on_day("ws1-app", utc_day(T0)).unwrap(), 0);
    assert_eq!(spool.accepted_on_day("ws2-app", utc_day(T0)).unwrap(), 0);
    assert_eq!(spool.lease(T0 + DAY, 10).unwrap().len(), 1);

    // The cutoff's own day keeps its counter.
    spool
        .enqueue(submission("ws2", &["e@x.org"], T0 + 6 * DAY))
        .await
        .unwrap();
    assert_eq!(
        spool.prune_finished(T0 + 6 * DAY, 100).await.unwrap(),
        (1, false)
    );
    assert_eq!(
        spool
            .accepted_on_day("ws2-app", utc_day(T0 + 6 * DAY))
            .unwrap(),
        1
    );
    assert_eq!(listed(&spool, "ws2").len(), 1);
    assert_eq!(spool.counts().delivered, 0);
}

#[tokio::test]
async fn a_pass_on_the_clock_prunes_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    let e = spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org"], T0))
        .await
        .unwrap();
    spool.lease(T0, 10).unwrap();
    for id in &e.message_ids {
        spool.delivered(id, attempt_at(T0 + 1)).await.unwrap();
    }
    let clock = Clock::manual(T0 + 1);
    let keep = 30 * DAY;
    assert_eq!(
        retention::pass(&spool, &clock, keep).await.unwrap().pruned,
        0
    );
    clock.advance_ms(keep);
    assert_eq!(
        retention::pass(&spool, &clock, keep).await.unwrap().pruned,
        0
    );
    clock.advance_ms(1);
    assert_eq!(
        retention::pass(&spool, &clock, keep).await.unwrap().pruned,
        2
    );
    assert_eq!(spool.counts().total(), 0);
}

#[tokio::test]
async fn records_finished_before_the_index_are_found_once() {
    let dir = tempfile::tempdir().unwrap();
    let old_id;
    {
        let (_db, spool) = open(dir.path());
        let e = spool
            .enqueue(submission("ws1", &["a@x.org"], T0))
            .await
            .unwrap();
        spool.lease(T0, 1).unwrap();
        old_id = e.message_ids[0].clone();
        spool.delivered(&old_id, attempt_at(T0 + 1)).await.unwrap();
        as_an_earlier_version_left_it(&spool);
    }
    let (_db, spool) = open(dir.path());
    assert_eq!(
        spool.prune_finished(T0 + DAY, 100).await.unwrap(),
        (0, false)
    );
    assert!(!spool.index_finished(100).await.unwrap());
    assert_eq!(
        spool.prune_finished(T0 + DAY, 100).await.unwrap(),
        (1, false)
    );
    assert!(spool.get(&old_id).unwrap().is_none());
    // The marker stops later walks at once.
    assert!(!spool.index_finished(100).await.unwrap());
}

#[tokio::test]
async fn the_walk_goes_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, spool) = open(dir.path());
        for i in 0..5 {
            spool
                .enqueue(submission("ws1", &["a@x.org"], T0 + i))
                .await
                .unwrap();
        }
        for m in spool.lease(T0 + 10, 10).unwrap() {
            spool.delivered(&m.id, attempt_at(T0 + 20)).await.unwrap();
        }
        as_an_earlier_version_left_it(&spool);
    }
    let (_db, spool) = open(dir.path());
    assert!(spool.index_finished(2).await.unwrap());
    assert!(spool.index_finished(2).await.unwrap());
    assert!(!spool.index_finished(2).await.unwrap());
    assert_eq!(
        spool.prune_finished(T0 + DAY, 100).await.unwrap(),
        (5, false)
    );
    assert_eq!(spool.counts().total(), 0);
}

/// Removes the retention index and its marker, as a spool written before
/// retention existed has neither.
fn as_an_earlier_version_left_it(spool: &Spool) {
    let tree = spool.raw();
    for key in tree.keys(b"x").unwrap() {
        tree.remove(key).unwrap();
    }
}
