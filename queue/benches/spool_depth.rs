//! Spool cost versus queue depth: memory, disk, enqueue and lease speed.
//!
//! Answers the product target "a queue of 1,000,000 messages under 300 MB
//! RSS, with enqueue and lease at 1 M queued no more than 2× slower than at
//! 1 k".
//!
//! The program fills a fresh spool (opened exactly like the server: the
//! store's sled database with a 64 MiB cache, background flush every
//! second, where earlier versions kept the spool; bodies in segment files
//! under `<dir>/bodies`, the spool's own index in `<dir>/bodies/index`) with `DEPTH` single-recipient messages of `SIZE`
//! bytes, all in workspace `ws_bench` and all received at the same instant
//! T0, so every one of them is due. `TASKS` tokio tasks enqueue concurrently
//! on a 2-worker multi-thread runtime, each enqueue waiting for its fsync as
//! the SMTP server does before answering 250.
//!
//! At the depths 1,000, 10,000, 100,000 and 1,000,000 (those not above
//! `DEPTH`) and at `DEPTH` itself, filling pauses and three things are
//! measured:
//!
//! 1. **enqueue**: `WINDOW` further enqueues by `TASKS` concurrent tasks,
//!    in messages per second;
//! 2. **lease**: `lease(T0 + 1, 100)` repeatedly, each leased batch settled
//!    as delivered (all settlements of a batch concurrently, the batch
//!    joined before the next lease), until `WINDOW` messages are done.
//!    Reported both as the rate of the `lease` calls alone (messages leased
//!    per second of time spent inside `lease`) and as the rate of the whole
//!    lease + deliver cycle (wall time);
//! 3. **memory and disk**: VmRSS and VmHWM (peak RSS) from
//!    `/proc/self/status`, and the sum of the file lengths under the data
//!    directory (sled and body segments);
//! 4. **listing by recipient**: the time to list every message to one
//!    recipient, 50 a page, cursors followed to the end (the admin API's
//!    `GET /admin/v1/messages?to=`), and the RSS before it.
//!
//! The enqueue window adds `WINDOW` messages and the lease window removes
//! `WINDOW`, so the depth is back at the checkpoint when filling resumes.
//! Sizes are decimal megabytes (10^6 bytes), the unit of the target.
//!
//! A progress line goes to stderr every 100,000 enqueues. At the end a
//! markdown table is printed to stdout, followed by the slowdown of the last
//! row (1 M for a default run) against the 1 k row (the first row if
//! `DEPTH` < 1,000) and, when the run reached 1 M, the verdict against the
//! target.
//!
//! ```text
//! cargo bench -p rackwave-queue --bench spool_depth
//! DEPTH=20000 WINDOW=2000 cargo bench -p rackwave-queue --bench spool_depth
//! ```
//!
//! Environment knobs (`_` digit separators allowed):
//!
//! * `DEPTH`: messages to queue (default 1,000,000);
//! * `SIZE`: body size in bytes, a realistic RFC 5322 message of headers and
//!   76-character lines (default 2048);
//! * `TASKS`: concurrent enqueuing tasks (default 50);
//! * `RECIPIENTS`: distinct recipient addresses, used in turn (default
//!   100,000; the spool indexes messages by recipient);
//! * `WINDOW`: messages per measurement window (default 5000);
//! * `DIR`: directory in which the temporary data directory is created
//!   (default the system temp dir); it is deleted at the end.
//!
//! Like the server, the run has a consumer of the spool's change feed that
//! trims what it has read (the server's webhook event consumer does this),
//! so the feed does not grow with the queue.
//!
//! A full 1 M run writes a few GB and takes a while: the fill rate is bound
//! by fsyncs shared between the `TASKS` concurrent enqueues.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rackwave_queue::{DeliveryAttempt, ListFilter, Spool, SpoolConfig, Submission};
use tokio::task::JoinSet;

/// Receive time of every message; leasing at `T0 + 1` finds them all due.
const T0: i64 = 1_700_000_000_000;
const WORKSPACE: &str = "ws_bench";
const CHECKPOINTS: [u64; 4] = [1_000, 10_000, 100_000, 1_000_000];
/// Messages asked for per `lease` call, as the delivery engine would.
const LEASE_BATCH: u64 = 100;
const PROGRESS_EVERY: u64 = 100_000;
/// Length of a filler line, without its CRLF.
const LINE: usize = 76;
/// Distinct filler offsets, so consecutive bodies are not identical.
const FILLER_ROTATIONS: usize = 64;
const TARGET_RSS_MB: f64 = 300.0;
const TARGET_SLOWDOWN: f64 = 2.0;

/// Follows the change feed and trims it, as the server's event consumer
/// does (without turning the entries into events), until the spool closes.
async fn consume_feed(spool: Spool) {
    let notify = spool.feed_notify();
    let mut last = 0;
    loop {
        let entries = match spool.feed(last, 1000) {
            Ok(entries) => entries,
            Err(_) => return,
        };
        match entries.last() {
            Some(entry) => {
                last = match entry {
                    Ok(e) => e.seq,
                    Err(unreadable) => unreadable.seq,
                };
                if spool.trim_feed(last).await.is_err() {
                    return;
                }
            }
            None => notify.notified().await,
        }
    }
}

/// An unsigned integer from the environment, or `default` if unset.
fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a non-negative integer")),
        Err(_) => default,
    }
}

/// Shared state of the run.
struct Bench {
    spool: Spool,
    size: usize,
    /// Distinct recipient addresses, used in turn.
    recipients: u64,
    /// `FILLER_ROTATIONS` more lines of text than any body needs.
    filler: Vec<u8>,
    /// Next message number (unique across fill and measurement windows).
    next_seq: AtomicU64,
    enqueued: AtomicU64,
    progress: Mutex<Progress>,
}

struct Progress {
    start: Instant,
    /// Time spent outside enqueueing (lease windows, measurements), left
    /// out of the progress rates.
    excluded: Duration,
    mark: Instant,
    mark_count: u64,
}

impl Bench {
    /// A `size`-byte RFC 5322 message: trace and origin headers, then
    /// 76-character text lines ending in CRLF.
    fn message(&self, seq: u64) -> Vec<u8> {
        let mut body = format!(
            "Return-Path: <sender@bench.example.com>\r\n\
             Received: from client.example.org (client.example.org [192.0.2.10])\r\n\
             \tby mx.rackwave.test with ESMTPS id {seq:016X}\r\n\
             \tfor <user{rcpt}@example.net>; Tue, 14 Nov 2023 22:13:20 +0000\r\n\
             From: \"Rackwave Bench\" <sender@bench.example.com>\r\n\
             To: <user{rcpt}@example.net>\r\n\
             Subject: Depth benchmark message {seq}\r\n\
             Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
             Message-ID: <{seq:016x}.depth@bench.example.com>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 7bit\r\n\
             \r\n",
            rcpt = seq % self.recipients,
        )
        .into_bytes();
        body.truncate(self.size);
        let rest = self.size - body.len();
        let offset = (seq as usize % FILLER_ROTATIONS) * (LINE + 2);
        body.extend_from_slice(&self.filler[offset..offset + rest]);
        if rest >= 2 {
            body[self.size - 2..].copy_from_slice(b"\r\n");
        }
        body
    }

    fn submission(&self, seq: u64) -> Submission {
        Submission {
            queue_id: None,
            workspace_id: WORKSPACE.into(),
            submitter: "sender@bench.example.com".into(),
            mail_from: "sender@bench.example.com".into(),
            recipients: vec![format!("user{}@example.net", seq % self.recipients)],
            subject: Some(format!("Depth benchmark message {seq}")),
            body: self.message(seq),
            received_at_ms: T0,
            tags: Vec::new(),
            metadata: Default::default(),
            return_path: None,
        }
    }

    /// Counts one enqueue; every `PROGRESS_EVERY` prints a progress line.
    fn tick(&self) {
        let n = self.enqueued.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(PROGRESS_EVERY) {
            return;
        }
        let mut p = self.progress.lock().unwrap();
        let now = Instant::now();
        let recent = (n - p.mark_count) as f64 / now.duration_since(p.mark).as_secs_f64();
        let busy = now.duration_since(p.start).saturating_sub(p.excluded);
        eprintln!(
            "enqueued {n:>9}  depth {:>9}  {recent:>7.0} msg/s (last {}), {:>7.0} msg/s overall  RSS {:.0} MB",
            self.spool.due_count(),
            n - p.mark_count,
            n as f64 / busy.as_secs_f64(),
            proc_status_mb("VmRSS:"),
        );
        p.mark = now;
        p.mark_count = n;
    }

    /// Leaves `d` (time not spent enqueueing) out of the progress rates.
    fn exclude(&self, d: Duration) {
        let mut p = self.progress.lock().unwrap();
        p.excluded += d;
        p.mark += d;
    }
}

/// `LINE`-character lines of pseudo-random English-ish words, each ending
/// in CRLF, at least `len` bytes long.
fn filler(len: usize) -> Vec<u8> {
    let words: Vec<&str> = "the delivery of your order is scheduled for next week please \
         confirm address and contact details thank you invoice attached regards team account \
         update"
        .split_whitespace()
        .collect();
    let mut text = String::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + LINE + 2);
    while out.len() < len {
        while text.len() < LINE {
            // xorshift64: cheap, deterministic word choice.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(words[(state % words.len() as u64) as usize]);
            text.push(' ');
        }
        out.extend_from_slice(&text.as_bytes()[..LINE]);
        out.extend_from_slice(b"\r\n");
        text.drain(..LINE);
    }
    out
}

/// Enqueues `count` messages with `tasks` concurrent tasks; returns the
/// wall time.
async fn enqueue_many(bench: &Arc<Bench>, count: u64, tasks: u64) -> Duration {
    let end = bench.next_seq.load(Ordering::Relaxed) + count;
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..tasks.min(count) {
        let bench = bench.clone();
        set.spawn(async move {
            loop {
                let seq = bench.next_seq.fetch_add(1, Ordering::Relaxed);
                if seq >= end {
                    break;
                }
                bench
                    .spool
                    .enqueue(bench.submission(seq))
                    .await
                    .expect("enqueue failed");
                bench.tick();
            }
        });
    }
    while let Some(res) = set.join_next().await {
        res.expect("enqueue task panicked");
    }
    // Tasks overshoot by one fetch each; later ranges start at `end`.
    bench.next_seq.store(end, Ordering::Relaxed);
    start.elapsed()
}

/// Leases and delivers `count` messages; returns (time inside `lease`
/// calls, wall time of the whole window).
async fn lease_and_deliver(bench: &Arc<Bench>, count: u64) -> (Duration, Duration) {
    let start = Instant::now();
    let mut in_lease = Duration::ZERO;
    let mut done = 0;
    while done < count {
        let want = (count - done).min(LEASE_BATCH) as usize;
        let t = Instant::now();
        let batch = bench.spool.lease(T0 + 1, want).expect("lease failed");
        in_lease += t.elapsed();
        assert!(
            !batch.is_empty(),
            "nothing to lease after {done} of {count} (due_count {})",
            bench.spool.due_count()
        );
        done += batch.len() as u64;
        let mut set = JoinSet::new();
        for rec in batch {
            let spool = bench.spool.clone();
            set.spawn(async move {
                let attempt = DeliveryAttempt {
                    at_ms: T0 + 1,
                    remote_host: Some("mx1.example.net".into()),
                    remote_ip: Some("192.0.2.25".into()),
                    tls: true,
                    reply: "250 2.0.0 Ok: queued as 4SZbq21kLmz9".into(),
                    sent_at_ms: Some(T0 + 1),
                    outcome: rackwave_core::event::EmailEvent::Delivered,
                };
                spool
                    .settle(&rec.id, attempt)
                    .await
                    .expect("delivered failed");
            });
        }
        while let Some(res) = set.join_next().await {
            res.expect("settle task panicked");
        }
    }
    (in_lease, start.elapsed())
}

/// A `/proc/self/status` field given in kB (e.g. `VmRSS:`), in MB.
fn proc_status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

/// Sum of the lengths of all files under `dir`, in bytes.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// One checkpoint's measurements.
struct Row {
    depth: u64,
    enqueue: f64,
    lease: f64,
    cycle: f64,
    rss_mb: f64,
    hwm_mb: f64,
    disk_mb: f64,
    /// Listing one recipient's messages, every page (milliseconds).
    list_ms: f64,
    listed: usize,
}

/// Lists every message to one recipient, following cursors to the end,
/// as `GET /admin/v1/messages?to=` would page by page.
fn list_recipient(spool: &Spool, to: &str) -> (Duration, usize) {
    let filter = ListFilter {
        workspace_id: WORKSPACE.into(),
        to: Some(to.into()),
        status: None,
        ..Default::default()
    };
    let start = Instant::now();
    let mut cursor: Option<String> = None;
    let mut found = 0;
    loop {
        let page = spool
            .list(&filter, cursor.as_deref(), 50)
            .expect("list failed");
        found += page.messages.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    (start.elapsed(), found)
}

fn main() {
    let depth = env_u64("DEPTH", 1_000_000);
    let size = env_u64("SIZE", 2048) as usize;
    let tasks = env_u64("TASKS", 50).max(1);
    let window = env_u64("WINDOW", 5000).max(1);
    let recipients = env_u64("RECIPIENTS", 100_000).max(1);
    assert!(depth > 0, "DEPTH must be at least 1");

    let base: PathBuf = std::env::var_os("DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base).expect("creating DIR");
    let dir = tempfile::tempdir_in(&base).expect("creating the data directory");
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .cache_capacity(64 * 1024 * 1024)
        .flush_every_ms(Some(1000))
        .open()
        .expect("opening sled");
    let bodies = dir.path().join("bodies");
    let spool = Spool::open(&db, &bodies, SpoolConfig::default()).expect("opening the spool");

    let mut checkpoints: Vec<u64> = CHECKPOINTS.into_iter().filter(|&c| c <= depth).collect();
    if checkpoints.last() != Some(&depth) {
        checkpoints.push(depth);
    }

    println!(
        "spool_depth: DEPTH={depth} SIZE={size} TASKS={tasks} WINDOW={window} RECIPIENTS={recipients} dir={}",
        dir.path().display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the runtime");
    let now = Instant::now();
    let bench = Arc::new(Bench {
        spool,
        size,
        recipients,
        filler: filler(size + FILLER_ROTATIONS * (LINE + 2)),
        next_seq: AtomicU64::new(0),
        enqueued: AtomicU64::new(0),
        progress: Mutex::new(Progress {
            start: now,
            excluded: Duration::ZERO,
            mark: now,
            mark_count: 0,
        }),
    });

    let consumer = rt.spawn(consume_feed(bench.spool.clone()));
    let rows: Vec<Row> = rt.block_on(async {
        let mut rows = Vec::new();
        for &checkpoint in &checkpoints {
            let missing = checkpoint - bench.spool.due_count();
            enqueue_many(&bench, missing, tasks).await;

            let enqueue = rate(window, enqueue_many(&bench, window, tasks).await);
            let paused = Instant::now();
            let (in_lease, cycle) = lease_and_deliver(&bench, window).await;
            assert_eq!(bench.spool.due_count(), checkpoint, "depth drifted");
            let rss_before_list = proc_status_mb("VmRSS:");
            let (list_time, listed) = list_recipient(&bench.spool, "user7@example.net");
            let sled_bytes = dir_bytes(&dir.path().join("db"));
            let body_bytes = dir_bytes(&bodies);
            let row = Row {
                depth: checkpoint,
                enqueue,
                lease: rate(window, in_lease),
                cycle: rate(window, cycle),
                rss_mb: proc_status_mb("VmRSS:"),
                hwm_mb: proc_status_mb("VmHWM:"),
                disk_mb: mb(dir_bytes(dir.path())),
                list_ms: list_time.as_secs_f64() * 1e3,
                listed,
            };
            eprintln!(
                "depth {:>9}: enqueue {:.0} msg/s, lease {:.0} msg/s, lease+deliver {:.0} msg/s, \
                 RSS {:.1} MB (peak {:.1}), disk {:.1} MB (sled {:.1}, bodies {:.1}), \
                 one recipient's {} messages listed in {:.0} ms (RSS {:.1} MB before)",
                row.depth,
                row.enqueue,
                row.lease,
                row.cycle,
                row.rss_mb,
                row.hwm_mb,
                row.disk_mb,
                mb(sled_bytes),
                mb(body_bytes),
                row.listed,
                row.list_ms,
                rss_before_list,
            );
            rows.push(row);
            bench.exclude(paused.elapsed());
        }
        rows
    });

    let stats = bench.spool.stats();
    println!();
    println!(
        "| depth | enqueue msg/s | lease msg/s (lease call only) | lease+deliver msg/s | RSS MB | peak RSS MB | disk MB | list one recipient ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} |",
            r.depth, r.enqueue, r.lease, r.cycle, r.rss_mb, r.hwm_mb, r.disk_mb, r.list_ms
        );
    }
    println!();
    let first = &rows[0];
    let last = rows.last().expect("at least one checkpoint");
    let enqueue_slowdown = first.enqueue / last.enqueue;
    let lease_slowdown = first.lease / last.lease;
    println!(
        "slowdown × at {} vs {}: enqueue {enqueue_slowdown:.2}×, lease {lease_slowdown:.2}×, \
         lease+deliver {:.2}×",
        last.depth,
        first.depth,
        first.cycle / last.cycle
    );
    println!(
        "write path: {} enqueues, {} settlements, {} fsyncs ({:.3} per operation), mean flush {:.2} ms",
        stats.records_enqueued,
        stats.settlements,
        stats.flushes,
        stats.flushes as f64 / (stats.records_enqueued + stats.settlements).max(1) as f64,
        stats.total_flush_nanos as f64 / stats.flushes.max(1) as f64 / 1e6
    );
    if last.depth >= 1_000_000 {
        let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
        println!(
            "target: peak RSS {:.1} MB < {TARGET_RSS_MB} MB: {}; \
             enqueue slowdown {enqueue_slowdown:.2}× ≤ {TARGET_SLOWDOWN}×: {}; \
             lease slowdown {lease_slowdown:.2}× ≤ {TARGET_SLOWDOWN}×: {}",
            last.hwm_mb,
            pass(last.hwm_mb < TARGET_RSS_MB),
            pass(enqueue_slowdown <= TARGET_SLOWDOWN),
            pass(lease_slowdown <= TARGET_SLOWDOWN),
        );
    } else {
        println!(
            "target: not judged (it applies at a depth of 1,000,000; this run stopped at {depth})"
        );
    }

    // Stop the writer thread and close sled before the directory goes.
    consumer.abort();
    drop(rt);
    drop(bench);
    drop(db);
    drop(dir);
}
