//! Spool features for the delivery engine, on a real sled database in a
//! tempdir: fair leasing across workspace lanes, and the
//! `email.sent` history event.

mod common;

use std::collections::{HashMap, HashSet};

use common::{attempt_at, Settle};
use rackwave_core::event::EmailEvent;
use rackwave_queue::*;

const T0: i64 = 1_700_000_000_000;

fn open(dir: &tempfile::TempDir) -> (sled::Db, Spool) {
    let db = common::open_db(dir.path());
    let spool = Spool::open(&db, &dir.path().join("bodies"), SpoolConfig::default()).unwrap();
    (db, spool)
}

fn submission(ws: &str, rcpts: &[String], at: i64) -> Submission {
    Submission {
        submitter: format!("{ws}-user"),
        mail_from: "sender@example.com".into(),
        recipients: rcpts.to_vec(),
        ..common::submission(ws, &[], at)
    }
}

fn rcpts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}@x.org")).collect()
}

async fn enqueue(spool: &Spool, ws: &str, n: usize, at: i64) -> Vec<String> {
    spool
        .enqueue(submission(ws, &rcpts(n), at))
        .await
        .unwrap()
        .message_ids
}

fn attempt(at: i64, sent_at: Option<i64>) -> DeliveryAttempt {
    DeliveryAttempt {
        sent_at_ms: sent_at,
        ..attempt_at(at)
    }
}

fn workspaces(leased: &[MessageRecord]) -> Vec<&str> {
    leased.iter().map(|r| r.workspace_id.as_str()).collect()
}

/// counts(), due_count() and due_lanes() agree with each other and with
/// the expected pending count.
fn assert_counts(spool: &Spool, queued: u64, deferred: u64, delivered: u64, bounced: u64) {
    let c = spool.counts();
    assert_eq!(
        (c.queued, c.deferred, c.delivered, c.bounced),
        (queued, deferred, delivered, bounced)
    );
    assert_eq!(spool.due_count(), queued + deferred);
    let lanes: u64 = spool.due_lanes().iter().map(|(_, n)| n).sum();
    assert_eq!(lanes, queued + deferred);
    assert!(spool.due_lanes().iter().all(|(_, n)| *n > 0));
}

#[tokio::test]
async fn small_workspace_is_not_stuck_behind_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    // A: 1,000 messages in 10 submissions, all due before B's one.
    for i in 0..10 {
        enqueue(&spool, "A", 100, T0 + i).await;
    }
    let b = enqueue(&spool, "B", 1, T0 + 1_000).await;
    assert_counts(&spool, 1_001, 0, 0, 0);
    assert_eq!(
        spool.due_lanes(),
        vec![("A".to_string(), 1_000), ("B".to_string(), 1)]
    );

    let l = spool.lease(T0 + 10_000, 10).unwrap();
    assert_eq!(l.len(), 10);
    assert!(l.iter().any(|r| r.id == b[0]), "B's message not leased");
    assert_eq!(workspaces(&l).iter().filter(|w| **w == "A").count(), 9);
    // Within A's lane: oldest due first.
    let a_due: Vec<i64> = l
        .iter()
        .filter(|r| r.workspace_id == "A")
        .map(|r| r.next_attempt_at_ms.unwrap())
        .collect();
    assert!(a_due.windows(2).all(|w| w[0] <= w[1]));
    assert!(a_due.iter().all(|t| *t == T0));

    // B has nothing left; A keeps getting the whole limit.
    let l = spool.lease(T0 + 10_000, 10).unwrap();
    assert_eq!(workspaces(&l), vec!["A"; 10]);
    assert_eq!(spool.leased_count(), 20);
    assert_counts(&spool, 1_001, 0, 0, 0);
}

#[tokio::test]
async fn leases_alternate_between_three_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    enqueue(&spool, "ws-a", 20, T0).await;
    enqueue(&spool, "ws-b", 5, T0 + 1).await;
    enqueue(&spool, "ws-c", 4, T0 + 2).await;

    // One call: strict round-robin.
    let l = spool.lease(T0 + 10, 6).unwrap();
    assert_eq!(
        workspaces(&l),
        vec!["ws-a", "ws-b", "ws-c", "ws-a", "ws-b", "ws-c"]
    );
    // The rotation continues across calls, one message per call.
    let mut seq = Vec::new();
    for _ in 0..6 {
        let l = spool.lease(T0 + 10, 1).unwrap();
        assert_eq!(l.len(), 1);
        seq.push(l[0].workspace_id.clone());
    }
    assert_eq!(seq, ["ws-a", "ws-b", "ws-c", "ws-a", "ws-b", "ws-c"]);
    // ws-c is exhausted (4 leased), ws-b has 1 left: the rest is ws-a.
    let l = spool.lease(T0 + 10, 100).unwrap();
    let mut per_ws: HashMap<&str, usize> = HashMap::new();
    for w in workspaces(&l) {
        *per_ws.entry(w).or_default() += 1;
    }
    assert_eq!(per_ws.get("ws-b"), Some(&1));
    assert_eq!(per_ws.get("ws-c"), None);
    assert_eq!(per_ws.get("ws-a"), Some(&16));
    assert_eq!(workspaces(&l)[..2], ["ws-a", "ws-b"]);
    assert!(spool.lease(T0 + 10, 100).unwrap().is_empty());
    assert_eq!(spool.leased_count(), 29);
}

#[tokio::test]
async fn lanes_respect_due_time_and_new_earlier_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    // Only future mail in A: nothing due now (and the lane learns when).
    let late = enqueue(&spool, "A", 2, T0 + 1_000).await;
    assert!(spool.lease(T0, 10).unwrap().is_empty());
    assert!(spool.lease(T0 + 5, 10).unwrap().is_empty());
    // An earlier message in the same lane must not be hidden by that.
    let early = enqueue(&spool, "A", 1, T0 + 10).await;
    assert!(spool.lease(T0 + 9, 10).unwrap().is_empty());
    let l = spool.lease(T0 + 10, 10).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, early[0]);
    assert!(spool.lease(T0 + 999, 10).unwrap().is_empty());
    let l = spool.lease(T0 + 1_000, 10).unwrap();
    let got: HashSet<_> = l.iter().map(|r| r.id.clone()).collect();
    assert_eq!(got, late.iter().cloned().collect());

    // A deferred message is found again when its retry time comes, even
    // after calls that saw the lane with nothing due.
    spool
        .defer(&early[0], T0 + 5_000, attempt(T0 + 11, None))
        .await
        .unwrap();
    assert!(spool.lease(T0 + 4_999, 10).unwrap().is_empty());
    let l = spool.lease(T0 + 5_000, 10).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, early[0]);
    assert_counts(&spool, 2, 1, 0, 0);
}

#[tokio::test]
async fn lanes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a_unsettled, c) = {
        let (db, spool) = open(&dir);
        enqueue(&spool, "A", 50, T0).await;
        enqueue(&spool, "B", 2, T0 + 1).await;
        let c = enqueue(&spool, "C", 1, T0 + 2).await;
        // Settle some so counters moved: deliver one of B, defer C's.
        let l = spool.lease(T0 + 10, 3).unwrap();
        assert_eq!(workspaces(&l), vec!["A", "B", "C"]);
        spool
            .delivered(&l[1].id, attempt(T0 + 20, Some(T0 + 19)))
            .await
            .unwrap();
        spool
            .defer(&c[0], T0 + 60_000, attempt(T0 + 20, None))
            .await
            .unwrap();
        // A's leased message is never settled ("crash").
        assert_counts(&spool, 51, 1, 1, 0);
        drop(spool);
        drop(db);
        (l[0].id.clone(), c)
    };

    let (_db, spool) = open(&dir);
    assert_counts(&spool, 51, 1, 1, 0);
    assert_eq!(
        spool.due_lanes(),
        vec![
            ("A".to_string(), 50),
            ("B".to_string(), 1),
            ("C".to_string(), 1)
        ]
    );
    let l = spool.lease(T0 + 10, 4).unwrap();
    assert_eq!(workspaces(&l), vec!["A", "B", "A", "A"]);
    assert_eq!(l[0].id, a_unsettled, "the unsettled lease came back first");
    let b_left = l[1].id.clone();
    // Rotation goes on after A: B (nothing left), C (now due), A.
    let l = spool.lease(T0 + 60_000, 2).unwrap();
    assert_eq!(workspaces(&l), vec!["C", "A"]);
    assert_eq!(l[0].id, c[0]);

    // Emptying a lane removes it, durably.
    spool
        .bounce(&b_left, attempt(T0 + 61_000, None))
        .await
        .unwrap();
    assert!(spool.due_lanes().iter().all(|(ws, _)| ws != "B"));
    drop(spool);
    drop(_db);
    let (_db, spool) = open(&dir);
    let lanes: Vec<String> = spool.due_lanes().into_iter().map(|(w, _)| w).collect();
    assert_eq!(lanes, ["A", "C"]);
    assert_counts(&spool, 50, 1, 1, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_settlements_only_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    for round in 0..20 {
        let ids = enqueue(&spool, "A", 1, T0 + round).await;
        let id = ids[0].clone();
        assert_eq!(spool.lease(T0 + round, 10).unwrap().len(), 1);
        let (s1, s2) = (spool.clone(), spool.clone());
        let (i1, i2) = (id.clone(), id.clone());
        let t1 = tokio::spawn(async move {
            s1.defer(&i1, T0 + 1_000_000, attempt(T0, None))
                .await
                .map(drop)
        });
        let t2 = tokio::spawn(async move { s2.bounce(&i2, attempt(T0, None)).await.map(drop) });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        assert_eq!(r1.is_ok() as u8 + r2.is_ok() as u8, 1, "{r1:?} / {r2:?}");
    }
    let c = spool.counts();
    assert_eq!(c.deferred + c.bounced, 20);
    assert_eq!(spool.due_count(), c.deferred);
    assert_eq!(spool.leased_count(), 0);
}

#[tokio::test]
async fn delivered_with_sent_at_records_email_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let ids = enqueue(&spool, "A", 2, T0).await;
    spool.lease(T0, 10).unwrap();

    let r = spool
        .delivered(&ids[0], attempt(T0 + 500, Some(T0 + 450)))
        .await
        .unwrap();
    let timeline: Vec<_> = r
        .history
        .iter()
        .map(|h| (h.event.event_type().as_str(), h.status, h.at_ms))
        .collect();
    assert_eq!(
        timeline,
        vec![
            ("email.queued", Status::Queued, T0),
            ("email.sent", Status::Queued, T0 + 450),
            ("email.delivered", Status::Delivered, T0 + 500),
        ]
    );
    assert_eq!(r.history[1].event, EmailEvent::Sent);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.delivery_attempts[0].sent_at_ms, Some(T0 + 450));
    assert_eq!(spool.get(&ids[0]).unwrap().unwrap(), r);

    // Without sent_at (e.g. connection refused) there is no email.sent.
    let r = spool
        .bounce(&ids[1], attempt(T0 + 600, None))
        .await
        .unwrap();
    let events: Vec<_> = r
        .history
        .iter()
        .map(|h| h.event.event_type().as_str())
        .collect();
    assert_eq!(events, ["email.queued", "email.bounced"]);
    assert_counts(&spool, 0, 0, 1, 1);
}

#[tokio::test]
async fn deferred_then_delivered_records_two_sends() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let id = enqueue(&spool, "A", 1, T0).await.remove(0);
    spool.lease(T0, 1).unwrap();
    let r = spool
        .defer(&id, T0 + 60_000, attempt(T0 + 100, Some(T0 + 90)))
        .await
        .unwrap();
    assert_eq!(r.status, Status::Deferred);
    assert_counts(&spool, 0, 1, 0, 0);
    spool.lease(T0 + 60_000, 1).unwrap();
    let r = spool
        .delivered(&id, attempt(T0 + 60_200, Some(T0 + 60_150)))
        .await
        .unwrap();
    let timeline: Vec<_> = r
        .history
        .iter()
        .map(|h| (h.event.event_type().as_str(), h.status, h.at_ms))
        .collect();
    assert_eq!(
        timeline,
        vec![
            ("email.queued", Status::Queued, T0),
            ("email.sent", Status::Queued, T0 + 90),
            ("email.deferred", Status::Deferred, T0 + 100),
            ("email.sent", Status::Deferred, T0 + 60_150),
            ("email.delivered", Status::Delivered, T0 + 60_200),
        ]
    );
    assert_eq!(r.attempts, 2);
    assert_counts(&spool, 0, 0, 1, 0);
}

/// Enqueues in several workspaces race with a leasing loop; every message
/// must be leased exactly once and the counters must end exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_enqueue_and_lease_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let mut tasks = Vec::new();
    for w in 0..4 {
        for i in 0..25i64 {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                let ws = format!("ws{w}");
                // Mix of due-now and slightly-later messages.
                let at = T0 + (i % 3) * 10;
                enqueue(&spool, &ws, 2, at).await
            }));
        }
    }
    let leaser = {
        let spool = spool.clone();
        tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            for step in 0..400i64 {
                let now = T0 + step.min(20);
                got.extend(spool.lease(now, 7).unwrap().into_iter().map(|r| r.id));
                std::thread::yield_now();
            }
            got
        })
    };
    let mut enqueued = HashSet::new();
    for t in tasks {
        enqueued.extend(t.await.unwrap());
    }
    let mut leased = leaser.await.unwrap();
    leased.extend(
        spool
            .lease(T0 + 1_000, 1_000)
            .unwrap()
            .into_iter()
            .map(|r| r.id),
    );
    let unique: HashSet<_> = leased.iter().cloned().collect();
    assert_eq!(unique.len(), leased.len(), "a message was leased twice");
    assert_eq!(unique, enqueued);
    assert_counts(&spool, 200, 0, 0, 0);
    assert_eq!(spool.due_lanes().len(), 4);
}

/// Later reports (delivery status notifications after a delivery): a
/// bounce moves the counters and writes one feed entry, a deferral only
/// records; a pending message, a bounced one and a fourth report are
/// refused; the counters survive a reopen and retention still removes the
/// record.
#[tokio::test]
async fn later_reports_of_delivered_messages() {
    use rackwave_core::event::{BounceType, BouncedDetail, DeferredDetail};
    use rackwave_core::Timestamp;

    let dir = tempfile::tempdir().unwrap();
    let (db, spool) = open(&dir);
    let ids = enqueue(&spool, "A", 3, T0).await;
    spool.lease(T0, 10).unwrap();
    spool
        .delivered(&ids[0], attempt(T0 + 10, Some(T0 + 5)))
        .await
        .unwrap();
    spool
        .delivered(&ids[1], attempt(T0 + 10, Some(T0 + 5)))
        .await
        .unwrap();
    assert_counts(&spool, 1, 0, 2, 0);
    let bounced = || {
        EmailEvent::Bounced(BouncedDetail {
            bounce_type: BounceType::InvalidRecipient,
            bounce_code: "5.1.1".into(),
            bounce_reason: "no such user".into(),
            classified_by: "test".into(),
        })
    };
    let deferred = || {
        EmailEvent::Deferred(DeferredDetail {
            defer_reason: "later".into(),
            defer_code: "4.4.1".into(),
            defer_type: BounceType::TemporaryFailure,
            next_retry_at: Timestamp(T0 + 99),
            classified_by: "test".into(),
        })
    };
    let report = |outcome: EmailEvent| LateReport {
        at_ms: T0 + 1000,
        outcome,
        reply: "550 5.1.1 no such user".into(),
    };

    // The third message is still queued: no report yet.
    let err = spool.report(&ids[2], report(bounced())).await.unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");
    let err = spool
        .report("msg_0000000000000000", report(bounced()))
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::NotFound(_)), "{err}");
    let err = spool
        .report(&ids[0], report(EmailEvent::Sent))
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");

    let before = spool.last_feed_seq();
    let r = spool.report(&ids[0], report(bounced())).await.unwrap();
    assert_eq!(r.status, Status::Bounced);
    assert_eq!(r.attempts, 1, "our attempts stay ours");
    assert_counts(&spool, 1, 0, 1, 1);
    let feed = spool.feed(before, 10).unwrap();
    assert_eq!(feed.len(), 1);
    let entry = feed[0].as_ref().unwrap();
    assert_eq!(entry.event, bounced());
    assert_eq!(entry.message.status, Status::Bounced);
    assert_eq!(entry.reply.as_deref(), Some("550 5.1.1 no such user"));
    // A bounced message takes no second report.
    let err = spool.report(&ids[0], report(bounced())).await.unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");

    // Deferrals: recorded, the message stays delivered, three at most.
    for _ in 0..3 {
        let r = spool.report(&ids[1], report(deferred())).await.unwrap();
        assert_eq!(r.status, Status::Delivered);
    }
    let err = spool.report(&ids[1], report(deferred())).await.unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");
    assert_counts(&spool, 1, 0, 1, 1);
    assert_eq!(spool.get(&ids[1]).unwrap().unwrap().history.len(), 6);

    // Exact after a reopen, and retention still finds the bounced record.
    drop(spool);
    drop(db);
    let (_db, spool) = open(&dir);
    assert_counts(&spool, 1, 0, 1, 1);
    let (pruned, _) = spool.prune_finished(T0 + 100, 100).await.unwrap();
    assert_eq!(pruned, 2);
    assert!(spool.get(&ids[0]).unwrap().is_none());
    assert_counts(&spool, 1, 0, 0, 0);
}
