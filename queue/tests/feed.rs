//! The spool's change feed, on a real sled database in a tempdir.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{attempt_at, submission, Settle};
use rackwave_core::event::EmailEvent;
use rackwave_queue::*;
use tokio::time::timeout;

const T0: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path) -> (sled::Db, Spool) {
    let db = common::open_db(dir);
    let spool = Spool::open(&db, &dir.join("bodies"), SpoolConfig::default()).unwrap();
    (db, spool)
}

fn attempt(at: i64, sent_at: Option<i64>, reply: &str) -> DeliveryAttempt {
    DeliveryAttempt {
        reply: reply.into(),
        sent_at_ms: sent_at,
        ..attempt_at(at)
    }
}

fn all(spool: &Spool) -> Vec<FeedEntry> {
    feed(spool, 0, usize::MAX)
}

/// The feed, every entry readable.
fn feed(spool: &Spool, after: u64, limit: usize) -> Vec<FeedEntry> {
    spool
        .feed(after, limit)
        .unwrap()
        .into_iter()
        .map(|e| e.expect("a readable feed entry"))
        .collect()
}

fn name(e: &EmailEvent) -> &'static str {
    e.event_type().as_str()
}

fn seqs(entries: &[FeedEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

/// Every record of the listed workspaces, via the public listing API.
fn records(spool: &Spool, workspaces: &[&str]) -> Vec<MessageRecord> {
    let mut out = Vec::new();
    for ws in workspaces {
        let filter = ListFilter {
            workspace_id: ws.to_string(),
            to: None,
            status: None,
            ..Default::default()
        };
        let mut cursor = None;
        loop {
            let page = spool.list(&filter, cursor.as_deref(), 500).unwrap();
            out.extend(page.messages);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    out
}

/// (event, status, at_ms) of each history entry, as the feed must mirror.
fn timeline(rec: &MessageRecord) -> Vec<(EmailEvent, Status, i64)> {
    rec.history
        .iter()
        .map(|h| (h.event.clone(), h.status, h.at_ms))
        .collect()
}

fn feed_timeline<'a>(
    entries: impl IntoIterator<Item = &'a FeedEntry>,
    id: &str,
) -> Vec<(EmailEvent, Status, i64)> {
    entries
        .into_iter()
        .filter(|e| e.message.message_id == id)
        .map(|e| (e.event.clone(), e.message.status, e.at_ms))
        .collect()
}

#[tokio::test]
async fn feed_mirrors_every_history_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    assert_eq!(spool.last_feed_seq(), 0);
    assert!(all(&spool).is_empty());

    let rcpts = ["a@x.org", "b@x.org", "c@x.org"];
    let e = spool.enqueue(submission("ws1", &rcpts, T0)).await.unwrap();
    // Visible as soon as the enqueue returned (it is durable then).
    let f = all(&spool);
    assert_eq!(seqs(&f), [1, 2, 3]);
    assert_eq!(spool.last_feed_seq(), 3);
    for ((entry, id), to) in f.iter().zip(&e.message_ids).zip(rcpts) {
        assert_eq!(entry.event, EmailEvent::Queued);
        assert_eq!(entry.message.status, Status::Queued);
        assert_eq!(&entry.message.message_id, id);
        assert_eq!(entry.message.queue_id, e.queue_id);
        assert_eq!(entry.workspace_id, "ws1");
        assert_eq!(entry.message.to, to);
        assert_eq!(entry.message.from, "alice@example.com");
        assert_eq!(entry.message.subject.as_deref(), Some("hello"));
        assert_eq!(entry.at_ms, T0);
        assert_eq!(entry.attempt_number, 0);
        assert_eq!(entry.reply, None);
    }

    assert_eq!(spool.lease(T0, 10).unwrap().len(), 3);
    let (a, b, c) = (&e.message_ids[0], &e.message_ids[1], &e.message_ids[2]);

    // Delivered with sent_at: email.sent, then email.delivered.
    spool
        .delivered(
            a,
            attempt(T0 + 500, Some(T0 + 450), "250 2.0.0 Ok: queued as 123"),
        )
        .await
        .unwrap();
    let f = feed(&spool, 3, 10);
    assert_eq!(seqs(&f), [4, 5]);
    let (sent, delivered) = (&f[0], &f[1]);
    assert_eq!(
        (name(&sent.event), sent.message.status, sent.at_ms),
        ("email.sent", Status::Queued, T0 + 450)
    );
    assert_eq!(sent.message.message_id, *a);
    assert_eq!(sent.attempt_number, 1);
    assert_eq!(sent.reply, None);
    assert_eq!(
        (
            name(&delivered.event),
            delivered.message.status,
            delivered.at_ms
        ),
        ("email.delivered", Status::Delivered, T0 + 500)
    );
    assert_eq!(delivered.message.message_id, *a);
    assert_eq!(delivered.message.to, "a@x.org");
    assert_eq!(delivered.attempt_number, 1);
    assert_eq!(
        delivered.reply.as_deref(),
        Some("250 2.0.0 Ok: queued as 123")
    );

    // Deferred twice (no sent_at): attempt numbers 1 and 2.
    spool
        .defer(b, T0 + 1_000, attempt(T0 + 600, None, "451 try later"))
        .await
        .unwrap();
    assert_eq!(spool.lease(T0 + 1_000, 10).unwrap().len(), 1);
    spool
        .defer(b, T0 + 2_000, attempt(T0 + 1_100, None, "421 busy"))
        .await
        .unwrap();
    let f = feed(&spool, 5, 10);
    assert_eq!(seqs(&f), [6, 7]);
    for (entry, (n, reply, at)) in f
        .iter()
        .zip([(1, "451 try later", T0 + 600), (2, "421 busy", T0 + 1_100)])
    {
        assert_eq!(name(&entry.event), "email.deferred");
        assert_eq!(entry.message.status, Status::Deferred);
        assert_eq!(entry.message.message_id, *b);
        assert_eq!(entry.attempt_number, n);
        assert_eq!(entry.reply.as_deref(), Some(reply));
        assert_eq!(entry.at_ms, at);
    }
    match &f[1].event {
        EmailEvent::Deferred(d) => assert_eq!(d.next_retry_at.ms(), T0 + 2_000),
        other => panic!("{other:?}"),
    }

    // Bounced.
    spool
        .bounce(
            c,
            attempt(T0 + 700, Some(T0 + 690), "550 5.1.1 no such user"),
        )
        .await
        .unwrap();
    let f = feed(&spool, 7, 10);
    let events: Vec<_> = f
        .iter()
        .map(|e| (name(&e.event), e.message.status))
        .collect();
    assert_eq!(
        events,
        [
            ("email.sent", Status::Queued),
            ("email.bounced", Status::Bounced)
        ]
    );
    assert_eq!(f[1].reply.as_deref(), Some("550 5.1.1 no such user"));
    assert!(f
        .iter()
        .all(|e| e.message.message_id == *c && e.attempt_number == 1));

    // A release adds no history and no feed entry.
    assert_eq!(spool.lease(T0 + 2_000, 10).unwrap().len(), 1);
    spool.release(b);
    assert_eq!(spool.last_feed_seq(), 9);

    // The feed is exactly the union of the histories, in order.
    let f = all(&spool);
    assert_eq!(seqs(&f), (1..=9).collect::<Vec<_>>());
    for id in &e.message_ids {
        let rec = spool.get(id).unwrap().unwrap();
        assert_eq!(feed_timeline(&f, id), timeline(&rec), "{id}");
    }
}

#[tokio::test]
async fn only_an_attempt_outcome_settles() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    let e = spool
        .enqueue(submission("ws1", &["a@x.org"], T0))
        .await
        .unwrap();
    spool.lease(T0, 1).unwrap();
    for outcome in [EmailEvent::Queued, EmailEvent::Sent] {
        let a = DeliveryAttempt {
            outcome,
            ..attempt(T0 + 1, None, "250 ok")
        };
        assert!(matches!(
            spool.settle(&e.message_ids[0], a).await,
            Err(SpoolError::Invalid(_))
        ));
    }
    // Still leased and pending: a real outcome settles it.
    spool
        .delivered(&e.message_ids[0], attempt(T0 + 2, None, "250 ok"))
        .await
        .unwrap();
    assert_eq!(all(&spool).len(), 2);
}

#[tokio::test]
async fn an_unreadable_entry_is_reported_in_its_place_and_the_rest_flows() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org", "c@x.org"], T0))
        .await
        .unwrap();
    // Damage entry 2 on disk: the three entries of the submission share
    // the page stored under seq 1; a NUL inside entry 2's recipient (same
    // length, so the page's framing holds) is not JSON.
    let tree = spool.raw();
    let mut key = b"f/".to_vec();
    key.extend_from_slice(&1u64.to_be_bytes());
    let mut page = tree.get(&key).unwrap().unwrap();
    let needle = b"b@x.org";
    let at: Vec<usize> = (0..page.len() - needle.len())
        .filter(|&i| &page[i..i + needle.len()] == needle)
        .collect();
    assert_eq!(at.len(), 1, "entry 2 names its recipient once");
    page[at[0] + 1] = 0;
    tree.insert(key, page).unwrap();
    let items = spool.feed(0, 10).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().seq, 1);
    let bad = items[1].as_ref().unwrap_err();
    assert_eq!(bad.seq, 2);
    assert!(bad.reason.contains("feed entry 2"), "{}", bad.reason);
    assert_eq!(items[2].as_ref().unwrap().seq, 3);
}

#[tokio::test]
async fn pagination_covers_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    for i in 0..10 {
        spool
            .enqueue(submission(
                "ws1",
                &["a@x.org", "b@x.org", "c@x.org"],
                T0 + i,
            ))
            .await
            .unwrap();
    }
    let leased = spool.lease(T0 + 100, 5).unwrap();
    for (i, rec) in leased.iter().enumerate() {
        let sent = (i % 2 == 0).then_some(T0 + 200);
        spool
            .delivered(&rec.id, attempt(T0 + 201, sent, "250 ok"))
            .await
            .unwrap();
    }
    let last = spool.last_feed_seq();
    assert_eq!(last, 30 + 5 + 3);
    let everything = all(&spool);
    assert_eq!(seqs(&everything), (1..=last).collect::<Vec<_>>());

    for limit in [1, 3, 7, 38, 100] {
        let mut cursor = 0;
        let mut got = Vec::new();
        loop {
            let page = feed(&spool, cursor, limit);
            assert!(page.len() <= limit);
            let Some(tail) = page.last() else { break };
            cursor = tail.seq;
            got.extend(page);
        }
        assert_eq!(got, everything, "limit {limit}");
    }
    assert!(spool.feed(last, 10).unwrap().is_empty());
    assert!(spool.feed(u64::MAX, 10).unwrap().is_empty());
    assert!(spool.feed(0, 0).unwrap().is_empty());
    assert_eq!(seqs(&feed(&spool, last - 2, 10)), [last - 1, last]);
}

#[tokio::test]
async fn trim_then_reopen_never_reuses_seqs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, spool) = open(dir.path());
        for i in 0..10 {
            spool
                .enqueue(submission("ws1", &["a@x.org"], T0 + i))
                .await
                .unwrap();
        }
        assert_eq!(spool.last_feed_seq(), 10);
        spool.trim_feed(4).await.unwrap();
        assert_eq!(seqs(&all(&spool)), (5..=10).collect::<Vec<_>>());
        assert!(feed(&spool, 2, 1)[0].seq == 5);
        // Trimming again (or less) is harmless.
        spool.trim_feed(3).await.unwrap();
        spool.trim_feed(4).await.unwrap();
        assert_eq!(all(&spool).len(), 6);
    }
    {
        let (_db, spool) = open(dir.path());
        assert_eq!(spool.last_feed_seq(), 10);
        assert_eq!(seqs(&all(&spool)), (5..=10).collect::<Vec<_>>());
        spool
            .enqueue(submission("ws1", &["b@x.org", "c@x.org"], T0 + 20))
            .await
            .unwrap();
        assert_eq!(seqs(&feed(&spool, 10, 10)), [11, 12]);
        // Trim everything: the sequence must not restart.
        spool.trim_feed(u64::MAX).await.unwrap();
        assert!(all(&spool).is_empty());
        assert_eq!(spool.last_feed_seq(), 12);
    }
    {
        let (_db, spool) = open(dir.path());
        assert!(all(&spool).is_empty());
        assert_eq!(spool.last_feed_seq(), 12);
        let e = spool
            .enqueue(submission("ws1", &["d@x.org"], T0 + 30))
            .await
            .unwrap();
        let f = all(&spool);
        assert_eq!(seqs(&f), [13]);
        assert_eq!(f[0].message.message_id, e.message_ids[0]);
        // Records are untouched by trimming.
        assert_eq!(spool.counts().queued, 13);
    }
}

#[tokio::test]
async fn trim_in_chunks_and_clamped_to_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    // More entries than one trim chunk.
    let rcpts: Vec<String> = (0..10_000).map(|i| format!("r{i}@x.org")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    spool.enqueue(submission("ws1", &refs, T0)).await.unwrap();
    assert_eq!(spool.last_feed_seq(), 10_000);
    spool.trim_feed(9_990).await.unwrap();
    assert_eq!(seqs(&all(&spool)), (9_991..=10_000).collect::<Vec<_>>());
    // Beyond the last seq: clamped, later entries are not pre-trimmed.
    spool.trim_feed(20_000).await.unwrap();
    spool
        .enqueue(submission("ws1", &["x@x.org"], T0))
        .await
        .unwrap();
    assert_eq!(seqs(&all(&spool)), [10_001]);
}

/// Helper run in a child process by `crash_keeps_feed_and_records_in_step`
/// (a no-op in a normal test run): writes to the spool from many tasks
/// until the parent kills it with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn feed_crash_child_helper() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let (_db, spool) = open(std::path::Path::new(&dir));
    for t in 0..16i64 {
        let spool = spool.clone();
        tokio::spawn(async move {
            for i in 0i64.. {
                let ws = WORKSPACES[(t % 4) as usize];
                let rcpts = ["a@x.org", "b@x.org", "c@x.org"];
                let n = 1 + (i % 3) as usize;
                spool
                    .enqueue(submission(ws, &rcpts[..n], T0 + i))
                    .await
                    .unwrap();
            }
        });
    }
    {
        let spool = spool.clone();
        tokio::spawn(async move {
            for round in 0i64.. {
                let leased = spool.lease(i64::MAX / 2, 20).unwrap();
                if leased.is_empty() {
                    tokio::task::yield_now().await;
                }
                for (i, rec) in leased.iter().enumerate() {
                    let at = T0 + 1_000_000 + round;
                    let a = attempt(at, Some(at - 1), "250 ok");
                    let r = match (round + i as i64) % 3 {
                        0 => spool.delivered(&rec.id, a).await,
                        1 => spool.defer(&rec.id, T0, a).await,
                        _ => spool.bounce(&rec.id, a).await,
                    };
                    r.unwrap();
                }
            }
        });
    }
    // Progress for the parent; give up on our own if it never kills us.
    for _ in 0..3_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        println!("progress {}", spool.stats().records_enqueued);
    }
    panic!("parent never killed the crash child");
}

const CRASH_DIR_ENV: &str = "RACKWAVE_QUEUE_FEED_CRASH_DIR";
const WORKSPACES: [&str; 4] = ["w0", "w1", "w2", "w3"];

/// Crash consistency: a child process writes from many tasks and is killed
/// with SIGKILL mid-flight. After reopening, the records and the feed must
/// agree exactly: every history entry has its feed entry and vice versa
/// (they are in the same batch), seqs are contiguous, and new entries
/// continue after the last one.
#[tokio::test]
async fn crash_keeps_feed_and_records_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["feed_crash_child_helper", "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut reached = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("progress ") {
            reached = n.trim().parse::<u64>().unwrap();
            if reached >= 600 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        reached >= 600,
        "child stopped early after {reached} records"
    );

    let (_db, spool) = open(dir.path());
    let fed_all = all(&spool);
    let last = spool.last_feed_seq();
    assert!(last > 0);
    assert_eq!(seqs(&fed_all), (1..=last).collect::<Vec<_>>());

    let recs = records(&spool, &WORKSPACES);
    assert!(!recs.is_empty());
    assert_eq!(recs.len() as u64, spool.counts().total());
    let mut by_id: HashMap<&str, Vec<(EmailEvent, Status, i64)>> = HashMap::new();
    for e in &fed_all {
        by_id
            .entry(e.message.message_id.as_str())
            .or_default()
            .push((e.event.clone(), e.message.status, e.at_ms));
    }
    let ids: HashSet<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    for id in by_id.keys() {
        assert!(ids.contains(id), "feed entry for missing record {id}");
    }
    let mut history_entries = 0;
    for rec in &recs {
        history_entries += rec.history.len();
        let fed = by_id.get(rec.id.as_str()).cloned().unwrap_or_default();
        assert_eq!(fed, timeline(rec), "record {} and feed disagree", rec.id);
        assert_eq!(fed[0].0, EmailEvent::Queued);
    }
    assert_eq!(history_entries, fed_all.len());
    assert!(
        recs.iter().any(|r| r.history.len() > 1),
        "the child settled nothing before the crash"
    );

    // The sequence continues after the crash.
    spool
        .enqueue(submission("w0", &["z@x.org"], T0))
        .await
        .unwrap();
    assert_eq!(seqs(&feed(&spool, last, 10)), [last + 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_notify_wakes_waiting_and_busy_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());

    // A consumer waiting when the entries arrive.
    let notify = spool.feed_notify();
    let consumer = {
        let spool = spool.clone();
        tokio::spawn(async move {
            let woke = timeout(Duration::from_secs(5), notify.notified()).await;
            // Durable before notified: the entries are readable on wake-up.
            (woke.is_ok(), spool.feed(0, 10).unwrap().len())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    spool
        .enqueue(submission("ws1", &["a@x.org", "b@x.org"], T0))
        .await
        .unwrap();
    let (woke, seen) = consumer.await.unwrap();
    assert!(woke, "waiting consumer was not woken");
    assert_eq!(seen, 2);

    // A consumer that was busy (not waiting) still gets a stored permit.
    spool
        .enqueue(submission("ws1", &["c@x.org"], T0))
        .await
        .unwrap();
    timeout(Duration::from_secs(5), spool.feed_notify().notified())
        .await
        .expect("busy consumer missed the notification");
    assert_eq!(spool.feed(2, 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_enqueues_get_unique_contiguous_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    let mut tasks = Vec::new();
    for i in 0..50 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool
                .enqueue(submission("ws1", &[&format!("r{i}@x.org")], T0 + i))
                .await
        }));
    }
    // Failing requests in the same groups must not burn seqs.
    let mut bad = Vec::new();
    for _ in 0..10 {
        let spool = spool.clone();
        bad.push(tokio::spawn(async move {
            spool.enqueue(submission("ws1", &[], T0)).await
        }));
    }
    for t in bad {
        assert!(t.await.unwrap().is_err());
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap().message_ids[0].clone());
    }
    let f = all(&spool);
    assert_eq!(seqs(&f), (1..=50).collect::<Vec<_>>());
    let fed: HashSet<String> = f.iter().map(|e| e.message.message_id.clone()).collect();
    assert_eq!(fed, ids);
    assert_eq!(spool.last_feed_seq(), 50);
}

#[tokio::test]
async fn a_page_partly_trimmed_shows_only_its_later_entries_also_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, spool) = open(dir.path());
        spool
            .enqueue(submission(
                "ws1",
                &["a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"],
                T0,
            ))
            .await
            .unwrap();
        let tree = spool.raw();
        assert_eq!(
            tree.keys(b"f/").unwrap().len(),
            1,
            "one group's entries share one page"
        );
        spool.trim_feed(3).await.unwrap();
        assert_eq!(seqs(&all(&spool)), [4, 5]);
        assert_eq!(seqs(&feed(&spool, 1, 10)), [4, 5]);
        assert_eq!(seqs(&feed(&spool, 4, 10)), [5]);
        assert_eq!(tree.keys(b"f/").unwrap().len(), 1, "the page stays");
        // Another commit makes the trim durable with it.
        spool
            .enqueue(submission("ws1", &["f@x.org"], T0 + 1))
            .await
            .unwrap();
    }
    let (_db, spool) = open(dir.path());
    assert_eq!(seqs(&all(&spool)), [4, 5, 6]);
    spool.trim_feed(5).await.unwrap();
    assert_eq!(seqs(&all(&spool)), [6]);
    let tree = spool.raw();
    assert_eq!(
        tree.keys(b"f/").unwrap().len(),
        1,
        "the first page went once all its entries were trimmed"
    );
    assert_eq!(spool.last_feed_seq(), 6);
}

#[tokio::test]
async fn entries_stored_one_per_key_by_an_earlier_version_read_alongside_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, spool) = open(dir.path());
    let first = spool
        .enqueue(submission("ws1", &["a@x.org"], T0))
        .await
        .unwrap();
    // What an earlier version wrote under `f/1`: the entry's JSON alone
    // (a page is a 5-byte header, then each entry after its 4-byte length).
    let tree = spool.raw();
    let mut key = b"f/".to_vec();
    key.extend_from_slice(&1u64.to_be_bytes());
    let page = tree.get(&key).unwrap().unwrap();
    assert_eq!(page[0], 0xFE);
    tree.insert(&key, &page[9..]).unwrap();
    spool
        .enqueue(submission("ws1", &["b@x.org", "c@x.org"], T0 + 1))
        .await
        .unwrap();
    let f = all(&spool);
    assert_eq!(seqs(&f), [1, 2, 3]);
    assert_eq!(f[0].message.message_id, first.message_ids[0]);
    assert_eq!(seqs(&feed(&spool, 1, 1)), [2]);
    spool.trim_feed(1).await.unwrap();
    assert_eq!(seqs(&all(&spool)), [2, 3]);
    drop((spool, tree, _db));
    let (_db, spool) = open(dir.path());
    assert_eq!(spool.last_feed_seq(), 3);
}
