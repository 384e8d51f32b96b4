//! End-to-end tests of the spool on a real sled database in a tempdir.

mod common;

use common::{attempt_at, submission, Settle};
use rackwave_queue::*;

const T0: i64 = 1_700_000_000_000;

fn open(dir: &tempfile::TempDir) -> (sled::Db, Spool) {
    let db = common::open_db(dir.path());
    let spool = Spool::open(&db, &dir.path().join("bodies"), SpoolConfig::default()).unwrap();
    (db, spool)
}

/// `n` one-recipient messages in workspace `ws1`, received (and due) at
/// `T0`, `T0 + 1`, …; their message ids in that order.
async fn enqueue_singles(spool: &Spool, n: i64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let e = spool
            .enqueue(submission("ws1", &["a@x.org"], T0 + i))
            .await
            .unwrap();
        ids.push(e.message_ids[0].clone());
    }
    ids
}

fn attempt(at: i64, _event: &str) -> DeliveryAttempt {
    attempt_at(at)
}

#[tokio::test]
async fn enqueue_stores_records_body_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let e = spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org", "c@x.org"], T0))
        .await
        .unwrap();
    assert!(is_queue_id(&e.queue_id));
    assert_eq!(e.message_ids.len(), 3);
    assert!(e.message_ids.iter().all(|id| is_message_id(id)));
    assert_eq!(spool.by_queue_id(&e.queue_id).unwrap(), e.message_ids);
    assert_eq!(
        spool.body(&e.queue_id).unwrap().unwrap(),
        b"Subject: hello\r\n\r\nhi\r\n"
    );
    let c = spool.counts();
    assert_eq!((c.queued, c.deferred, c.delivered, c.bounced), (3, 0, 0, 0));
    for (id, to) in e.message_ids.iter().zip(["a@x.org", "b@x.org", "c@x.org"]) {
        let r = spool.get(id).unwrap().unwrap();
        assert_eq!(r.to, to);
        assert_eq!(r.queue_id, e.queue_id);
        assert_eq!(r.status, Status::Queued);
        assert_eq!(r.next_attempt_at_ms, Some(T0));
        assert_eq!(r.history.len(), 1);
        assert_eq!(r.history[0].event.event_type().as_str(), "email.queued");
    }
    let s = spool.stats();
    assert_eq!((s.submissions, s.records_enqueued), (1, 3));
    assert!(s.flushes >= 1 && s.commits >= 1);
    assert!(spool.get("msg_0000000000000000").unwrap().is_none());
    assert!(spool.by_queue_id("nope").unwrap().is_empty());
}

#[tokio::test]
async fn invalid_submissions_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let err = spool.enqueue(submission("ws1", &[], T0)).await.unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");
    let err = spool
        .enqueue(submission("ws1", &["a\0b@x.org"], T0))
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");
    assert_eq!(spool.counts(), StatusCounts::default());
}

#[tokio::test]
async fn lease_returns_due_only_and_not_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let now = spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org"], T0))
        .await
        .unwrap();
    let later = spool
        .enqueue(submission("ws1", &["c@x.org"], T0 + 60_000))
        .await
        .unwrap();

    let l = spool.lease(T0, 10).unwrap();
    let mut got: Vec<_> = l.iter().map(|r| r.id.clone()).collect();
    got.sort();
    let mut want = now.message_ids.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(spool.lease(T0, 10).unwrap().is_empty(), "leased twice");

    // Limit is honoured; the future message becomes due later.
    let l = spool.lease(T0 + 60_000, 10).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, later.message_ids[0]);
    assert_eq!(spool.leased_count(), 3);

    // Release makes it leasable again.
    spool.release(&later.message_ids[0]);
    assert_eq!(spool.lease(T0 + 60_000, 1).unwrap().len(), 1);
}

/// `lease` resumes after the messages it already leased instead of
/// stepping over them again; whatever becomes leasable behind that point
/// (an earlier arrival, a release, a retry due earlier) is still found.
#[tokio::test]
async fn lease_resumes_after_leased_but_finds_what_lands_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let ids = enqueue_singles(&spool, 6).await;
    let now = T0 + 1_000;
    let first: Vec<_> = spool
        .lease(now, 3)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(first, ids[..3], "oldest due first");
    let second: Vec<_> = spool
        .lease(now, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(second, ids[3..]);
    assert!(spool.lease(now, 10).unwrap().is_empty());

    // A message that arrived "earlier" than everything leased.
    let early = spool
        .enqueue(submission("ws1", &["b@x.org"], T0 - 500))
        .await
        .unwrap();
    let got = spool.lease(now, 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, early.message_ids[0]);

    // A release in the middle of the leased run.
    spool.release(&ids[1]);
    let got = spool.lease(now, 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, ids[1]);

    // A deferral due again before the cursor's position.
    spool
        .defer(&ids[4], T0 + 2, attempt(now, ""))
        .await
        .unwrap();
    let got = spool.lease(now, 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, ids[4]);
    assert!(spool.lease(now, 10).unwrap().is_empty());
    assert_eq!(spool.leased_count(), 7);
}

/// A message `lease_where` refuses stays due and unleased, the cursor
/// stays before it (a later call still finds it, even after the messages
/// behind it were leased), and a lane stops after `REFUSALS_PER_LANE`
/// refusals in one call.
#[tokio::test]
async fn lease_where_leaves_refused_messages_due_for_later_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let ids = enqueue_singles(&spool, 6).await;
    let now = T0 + 1_000;
    let refused = [ids[1].clone(), ids[2].clone()];
    let got: Vec<_> = spool
        .lease_where(now, 10, |r| !refused.contains(&r.id))
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(got, [&ids[0], &ids[3], &ids[4], &ids[5]].map(String::clone));
    assert!(!spool.is_leased(&ids[1]) && !spool.is_leased(&ids[2]));
    // Still refused: nothing; then admitted: found behind leased ones.
    assert!(spool
        .lease_where(now, 10, |r| !refused.contains(&r.id))
        .unwrap()
        .is_empty());
    let got: Vec<_> = spool
        .lease(now, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(got, refused);
    assert_eq!(spool.leased_count(), 6);
    assert_eq!(spool.counts().queued, 6, "refusals write nothing");

    // A long refused run stops the lane for the call.
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let n = REFUSALS_PER_LANE as i64 + 3;
    let ids = enqueue_singles(&spool, n).await;
    let mut offered = 0;
    let got = spool
        .lease_where(T0 + n, 10, |_| {
            offered += 1;
            false
        })
        .unwrap();
    assert!(got.is_empty());
    assert_eq!(offered, REFUSALS_PER_LANE);
    let all = spool.lease(T0 + n, n as usize + 1).unwrap();
    assert_eq!(all.len(), ids.len());
}

/// A deferral puts its message back in the due index
/// a moment before its lease ends (when the group is durable). A lease
/// call in that moment steps over the still-leased entry; it must not
/// leave its cursor past it, or the retry is never leased again. Seen as
/// a delivery test's message stuck in `deferred` under the manual clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_committed_during_a_lease_call_is_still_leased() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let now = T0 + 1_000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Leases as fast as it can, as the scheduler does under load.
    let spinner = {
        let (spool, stop) = (spool.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                got.extend(spool.lease(now, 10).unwrap().into_iter().map(|r| r.id));
            }
            got
        })
    };
    let ids = enqueue_singles(&spool, 100).await;
    // Every message is leased by the spinner; defer each while the spinner
    // keeps leasing, due at once but each later than the one before (a
    // later deferral due no later than an earlier one would clear the
    // cursor itself and hide the bug).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for (i, id) in ids.iter().enumerate() {
        while !spool.is_leased(id) {
            assert!(std::time::Instant::now() < deadline, "{id} never leased");
            tokio::task::yield_now().await;
        }
        spool
            .defer(id, T0 + 500 + i as i64, attempt(now, ""))
            .await
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut leased: Vec<String> = spinner.join().unwrap();
    leased.extend(spool.lease(now, 1_000).unwrap().into_iter().map(|r| r.id));
    // Each message was leased once before its deferral and once after.
    for id in &ids {
        let n = leased.iter().filter(|l| *l == id).count();
        assert_eq!(n, 2, "{id} leased {n} times");
    }
    assert_eq!(spool.leased_count(), ids.len());
}

/// A record that cannot be read makes `lease` fail; the messages it had
/// leased before that are handed back and the cursor stays before the bad
/// entry, so everything is leased once the record is readable again.
#[tokio::test]
async fn a_failed_lease_loses_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let ids = enqueue_singles(&spool, 3).await;
    let tree = spool.raw();
    let key = [b"m/".as_slice(), ids[1].as_bytes()].concat();
    let good = tree.get(&key).unwrap().unwrap();
    tree.insert(&key, b"{not json").unwrap();

    assert!(spool.lease(T0 + 10, 10).is_err());
    assert_eq!(spool.leased_count(), 0, "the first message was handed back");
    assert!(spool.lease(T0 + 10, 10).is_err(), "still unreadable");

    tree.insert(&key, good).unwrap();
    let got: Vec<_> = spool
        .lease(T0 + 10, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn defer_then_lease_later() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let e = spool
        .enqueue(submission("ws1", &["a@x.org"], T0))
        .await
        .unwrap();
    let id = &e.message_ids[0];
    assert_eq!(spool.lease(T0, 10).unwrap().len(), 1);
    let mut a = attempt(T0 + 1, "email.deferred");
    a.reply = "451 try later".into();
    let r = spool.defer(id, T0 + 300_000, a).await.unwrap();
    assert_eq!(r.status, Status::Deferred);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.next_attempt_at_ms, Some(T0 + 300_000));
    assert!(!spool.is_leased(id));
    assert_eq!(spool.counts().deferred, 1);
    assert_eq!(spool.counts().queued, 0);

    assert!(spool.lease(T0 + 299_999, 10).unwrap().is_empty());
    let l = spool.lease(T0 + 300_000, 10).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, *id);
    assert_eq!(l[0].attempts, 1);
    assert_eq!(l[0].history.len(), 2);
    assert_eq!(
        l[0].history[1].event.event_type().as_str(),
        "email.deferred"
    );
    assert_eq!(l[0].delivery_attempts[0].reply, "451 try later");

    let r = spool
        .defer(id, T0 + 900_000, attempt(T0 + 300_001, ""))
        .await
        .unwrap();
    assert_eq!(r.attempts, 2);
    assert_eq!(r.history[2].event.event_type().as_str(), "email.deferred");
    assert_eq!(spool.counts().deferred, 1);
}

#[tokio::test]
async fn final_statuses_free_body_after_last() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let e = spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org"], T0))
        .await
        .unwrap();
    let (a, b) = (&e.message_ids[0], &e.message_ids[1]);
    assert_eq!(spool.lease(T0, 10).unwrap().len(), 2);

    let r = spool
        .delivered(a, attempt(T0 + 5, "email.delivered"))
        .await
        .unwrap();
    assert_eq!(r.status, Status::Delivered);
    assert_eq!(r.next_attempt_at_ms, None);
    assert!(
        spool.body(&e.queue_id).unwrap().is_some(),
        "freed too early"
    );

    let err = spool
        .delivered(a, attempt(T0 + 6, "email.delivered"))
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::NotLeased(_)), "{err}");

    let r = spool
        .bounce(b, attempt(T0 + 7, "email.bounced"))
        .await
        .unwrap();
    assert_eq!(r.status, Status::Bounced);
    assert!(spool.body(&e.queue_id).unwrap().is_none(), "body not freed");

    let c = spool.counts();
    assert_eq!((c.queued, c.deferred, c.delivered, c.bounced), (0, 0, 1, 1));
    // Final messages are never due again.
    assert!(spool.lease(i64::MAX, 10).unwrap().is_empty());
    // Records remain for listing.
    assert_eq!(spool.get(a).unwrap().unwrap().status, Status::Delivered);
    assert_eq!(spool.stats().settlements, 2);
}

#[tokio::test]
async fn settle_without_lease_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let e = spool
        .enqueue(submission("ws1", &["a@x.org"], T0))
        .await
        .unwrap();
    let id = &e.message_ids[0];
    for res in [
        spool.delivered(id, attempt(T0, "")).await,
        spool.defer(id, T0 + 1, attempt(T0, "")).await,
        spool.bounce(id, attempt(T0, "")).await,
        spool.bounce("msg_0000000000000000", attempt(T0, "")).await,
    ] {
        assert!(matches!(res, Err(SpoolError::NotLeased(_))), "{res:?}");
    }
    assert_eq!(spool.counts().queued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_double_settle_only_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let e = spool
        .enqueue(submission("ws1", &["a@x.org"], T0))
        .await
        .unwrap();
    let id = e.message_ids[0].clone();
    spool.lease(T0, 1).unwrap();
    let (s1, s2) = (spool.clone(), spool.clone());
    let (i1, i2) = (id.clone(), id.clone());
    let t1 = tokio::spawn(async move { s1.delivered(&i1, attempt(T0, "")).await });
    let t2 = tokio::spawn(async move { s2.bounce(&i2, attempt(T0, "")).await });
    let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
    assert_eq!(r1.is_ok() as u8 + r2.is_ok() as u8, 1, "{r1:?} / {r2:?}");
    let c = spool.counts();
    assert_eq!(c.delivered + c.bounced, 1);
    assert_eq!(c.queued, 0);
}

#[tokio::test]
async fn enqueue_all_queues_every_submission_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let bad = submission("ws1", &[], T0);
    let err = spool
        .enqueue_all(vec![submission("ws1", &["a@x.org"], T0), bad])
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");
    assert_eq!(spool.counts(), StatusCounts::default());
    let q = new_queue_id();
    let same_id = |to: &str| Submission {
        queue_id: Some(q.clone()),
        ..submission("ws1", &[to], T0)
    };
    assert!(spool
        .enqueue_all(vec![same_id("a@x.org"), same_id("b@x.org")])
        .await
        .is_err());
    assert_eq!(spool.counts(), StatusCounts::default());

    let done = spool
        .enqueue_all(vec![
            submission("ws1", &["a@x.org"], T0),
            submission("ws1", &["b@x.org", "c@x.org"], T0),
        ])
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
    assert_ne!(done[0].queue_id, done[1].queue_id);
    assert_eq!(done[1].message_ids.len(), 2);
    assert_eq!(spool.counts().queued, 3);
    assert_eq!(
        spool.by_queue_id(&done[0].queue_id).unwrap(),
        done[0].message_ids
    );
}

#[tokio::test]
async fn a_chosen_queue_id_in_use_is_refused_in_the_same_group_and_later() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let q = new_queue_id();
    let with_id = |to: &str| Submission {
        queue_id: Some(q.clone()),
        ..submission("ws1", &[to], T0)
    };
    // Two at once (one group commit) and one after the first is durable.
    let (a, b) = tokio::join!(
        spool.enqueue(with_id("a@x.org")),
        spool.enqueue(with_id("b@x.org"))
    );
    let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{a:?} {b:?}");
    let err = spool.enqueue(with_id("c@x.org")).await.unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");
    assert_eq!(spool.by_queue_id(&q).unwrap().len(), 1);
    assert_eq!(spool.counts().queued, 1);
}

#[tokio::test]
async fn ids_drawn_after_a_reopen_follow_ids_stored_ahead_of_the_clock() {
    // A queue id an hour ahead of the clock, as if the clock stepped back
    // between two runs: every id drawn after reopening is newer still, so
    // nothing stored is overwritten.
    let dir = tempfile::tempdir().unwrap();
    let ahead_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    let ahead = format!("{:016X}", ahead_ms << 20);
    {
        let (db, spool) = open(&dir);
        let sub = Submission {
            queue_id: Some(ahead.clone()),
            ..submission("ws1", &["a@x.org"], T0)
        };
        spool.enqueue(sub).await.unwrap();
        drop(spool);
        drop(db);
    }
    let (_db, spool) = open(&dir);
    let e = spool
        .enqueue(submission("ws1", &["b@x.org", "c@x.org"], T0))
        .await
        .unwrap();
    assert!(e.queue_id > ahead, "{} after {ahead}", e.queue_id);
    assert_eq!(spool.by_queue_id(&ahead).unwrap().len(), 1);
    assert_eq!(spool.counts().queued, 3);
}

#[tokio::test]
async fn reopen_keeps_data_counters_and_returns_leases() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, delivered, qid) = {
        let (db, spool) = open(&dir);
        let e = spool
            .enqueue(submission("ws1", &["a@x.org", "b@x.org", "c@x.org"], T0))
            .await
            .unwrap();
        let leased = spool.lease(T0, 10).unwrap();
        assert_eq!(leased.len(), 3);
        spool
            .delivered(&e.message_ids[0], attempt(T0 + 1, "email.delivered"))
            .await
            .unwrap();
        spool
            .defer(&e.message_ids[1], T0 + 1000, attempt(T0 + 1, ""))
            .await
            .unwrap();
        // message 2 stays leased and is never settled ("crash").
        drop(spool);
        drop(db);
        (e.message_ids.clone(), e.message_ids[0].clone(), e.queue_id)
    };

    let (_db, spool) = open(&dir);
    let c = spool.counts();
    assert_eq!((c.queued, c.deferred, c.delivered, c.bounced), (1, 1, 1, 0));
    assert_eq!(spool.by_queue_id(&qid).unwrap(), kept);
    assert!(spool.body(&qid).unwrap().is_some());
    assert_eq!(
        spool.get(&delivered).unwrap().unwrap().status,
        Status::Delivered
    );
    assert_eq!(spool.accepted_on_day("alice", utc_day(T0)).unwrap(), 3);
    // The unsettled lease came back; the deferred one is due later.
    let l = spool.lease(T0, 10).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, kept[2]);
    let l = spool.lease(T0 + 1000, 10).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, kept[1]);
    // Stats are per process.
    assert_eq!(spool.stats().flushes, 0);
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let mut all = Vec::new();
    for i in 0..25i64 {
        let to = if i % 3 == 0 {
            "Bob@X.org"
        } else {
            "carol@x.org"
        };
        let e = spool
            .enqueue(submission("ws1", &[to], T0 + i))
            .await
            .unwrap();
        all.push(e.message_ids[0].clone());
    }
    spool
        .enqueue(submission("ws2", &["bob@x.org"], T0 + 100))
        .await
        .unwrap();
    // Bounce one bob message (the oldest, so first due).
    let bob_first = all[0].clone();
    spool.lease(T0, 1).unwrap();
    spool.bounce(&bob_first, attempt(T0, "")).await.unwrap();

    let collect = |filter: &ListFilter, limit: usize| {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = spool.list(filter, cursor.as_deref(), limit).unwrap();
            pages += 1;
            assert!(page.messages.len() <= limit);
            out.extend(page.messages);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            assert!(pages < 100);
        }
        out
    };

    let f = ListFilter {
        workspace_id: "ws1".into(),
        to: None,
        status: None,
        ..Default::default()
    };
    let got = collect(&f, 7);
    let ids: Vec<_> = got.iter().map(|r| r.id.clone()).collect();
    let mut newest_first = all.clone();
    newest_first.reverse();
    assert_eq!(
        ids, newest_first,
        "every message exactly once, newest first"
    );
    assert!(got.iter().all(|r| r.workspace_id == "ws1"));
    // Exact multiple of the page size: no empty trailing page.
    let page = spool.list(&f, None, 25).unwrap();
    assert_eq!(page.messages.len(), 25);
    assert!(page.next_cursor.is_none());

    let f = ListFilter {
        workspace_id: "ws1".into(),
        to: Some("BOB@x.ORG".into()),
        status: None,
        ..Default::default()
    };
    let got = collect(&f, 2);
    assert_eq!(got.len(), 9);
    assert!(got.iter().all(|r| r.to.eq_ignore_ascii_case("bob@x.org")));

    let f = ListFilter {
        workspace_id: "ws1".into(),
        to: Some("bob@x.org".into()),
        status: Some(Status::Bounced),
        ..Default::default()
    };
    let got = collect(&f, 5);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, bob_first);

    let f = ListFilter {
        workspace_id: "ws1".into(),
        to: None,
        status: Some(Status::Queued),
        ..Default::default()
    };
    assert_eq!(collect(&f, 4).len(), 24);

    // A small scanning budget: the one bounced message of 25 is found by
    // following cursors through short (mostly empty) pages, never twice.
    let f = ListFilter {
        workspace_id: "ws1".into(),
        status: Some(Status::Bounced),
        ..Default::default()
    };
    let (mut found, mut cursor, mut calls) = (Vec::new(), None::<String>, 0);
    loop {
        let page = spool.list_scanning(&f, cursor.as_deref(), 10, 3).unwrap();
        calls += 1;
        found.extend(page.messages.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(found, vec![bob_first.clone()]);
    assert!(calls >= 25 / 3, "{calls} calls of 3 entries each");

    let f = ListFilter {
        workspace_id: "ws3".into(),
        to: None,
        status: None,
        ..Default::default()
    };
    let page = spool.list(&f, None, 10).unwrap();
    assert!(page.messages.is_empty() && page.next_cursor.is_none());
    let f = ListFilter {
        workspace_id: "ws2".into(),
        to: None,
        status: None,
        ..Default::default()
    };
    assert_eq!(collect(&f, 10).len(), 1);
    // "ws" is a prefix of "ws1" but must see nothing.
    let f = ListFilter {
        workspace_id: "ws".into(),
        to: None,
        status: None,
        ..Default::default()
    };
    assert!(spool.list(&f, None, 10).unwrap().messages.is_empty());

    assert!(matches!(
        spool.list(&f, Some("zz"), 10),
        Err(SpoolError::Invalid(_))
    ));
}

#[tokio::test]
async fn accepted_on_day_counts_per_submitter_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let day = utc_day(T0);
    spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org"], T0))
        .await
        .unwrap();
    spool
        .enqueue(submission("ws1", &["c@x.org"], T0 + 1))
        .await
        .unwrap();
    spool
        .enqueue(submission("ws1", &["d@x.org"], (day + 1) * 86_400_000))
        .await
        .unwrap();
    let mut other = submission("ws1", &["e@x.org"], T0);
    other.submitter = "bob".into();
    spool.enqueue(other).await.unwrap();

    assert_eq!(spool.accepted_on_day("alice", day).unwrap(), 3);
    assert_eq!(spool.accepted_on_day("alice", day + 1).unwrap(), 1);
    assert_eq!(spool.accepted_on_day("bob", day).unwrap(), 1);
    assert_eq!(spool.accepted_on_day("carol", day).unwrap(), 0);
    assert_eq!(spool.accepted_on_day("alice", day - 1).unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_enqueues_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool
                .enqueue(submission("ws1", &[&format!("r{i}@x.org")], T0 + i))
                .await
        }));
    }
    // Bad requests mixed in fail alone and do not poison their group.
    let mut bad = Vec::new();
    for _ in 0..5 {
        let spool = spool.clone();
        bad.push(tokio::spawn(async move {
            spool.enqueue(submission("ws1", &[], T0)).await
        }));
    }
    for t in bad {
        assert!(matches!(t.await.unwrap(), Err(SpoolError::Invalid(_))));
    }
    let mut queue_ids = std::collections::HashSet::new();
    for t in tasks {
        let e = t.await.unwrap().unwrap();
        assert!(queue_ids.insert(e.queue_id));
    }
    let s = spool.stats();
    assert_eq!(s.submissions, 50);
    assert_eq!(s.records_enqueued, 50);
    assert!(s.flushes < 50, "no group commit: {s:?}");
    assert_eq!(s.flushes, s.commits);
    assert_eq!(spool.counts().queued, 50);
    assert_eq!(spool.accepted_on_day("alice", utc_day(T0)).unwrap(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_group_commit_every_op_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open_db(dir.path());
    let spool = Spool::open(
        &db,
        &dir.path().join("bodies"),
        SpoolConfig {
            group_commit: false,
            ..SpoolConfig::default()
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool.enqueue(submission("ws1", &["a@x.org"], T0 + i)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(spool.stats().flushes, 10);
}

#[tokio::test]
async fn status_filter_scan_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(&dir);
    let rcpts: Vec<String> = (0..LIST_SCAN_BUDGET + 50)
        .map(|i| format!("r{i}@x.org"))
        .collect();
    let refs: Vec<&str> = rcpts.iter().map(|s| s.as_str()).collect();
    spool.enqueue(submission("ws1", &refs, T0)).await.unwrap();
    let f = ListFilter {
        workspace_id: "ws1".into(),
        to: None,
        status: Some(Status::Bounced),
        ..Default::default()
    };
    let first = spool.list(&f, None, 10).unwrap();
    assert!(first.messages.is_empty());
    let cursor = first
        .next_cursor
        .expect("budget exhausted: cursor to continue");
    let second = spool.list(&f, Some(&cursor), 10).unwrap();
    assert!(second.messages.is_empty());
    assert!(second.next_cursor.is_none());
}
