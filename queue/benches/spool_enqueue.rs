//! Enqueue throughput with and without group commit.
//!
//! 20 concurrent tokio tasks each enqueue 2 KB single-recipient messages on
//! a sled database in a tempdir; every enqueue waits for its fsync, exactly
//! as the SMTP server does before answering 250. The interesting output is
//! the ratio between the two variants (and the flushes/message line printed
//! at the end of each), which shows what sharing fsyncs buys.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rackwave_queue::{Spool, SpoolConfig, Submission};

const TASKS: u64 = 20;

fn submission(i: u64) -> Submission {
    Submission {
        queue_id: None,
        workspace_id: "bench".into(),
        submitter: "bench@example.com".into(),
        mail_from: "bench@example.com".into(),
        recipients: vec![format!("rcpt{}@example.net", i % 1000)],
        subject: Some("benchmark".into()),
        body: vec![b'x'; 2048],
        received_at_ms: 1_700_000_000_000 + i as i64,
        tags: Vec::new(),
        metadata: Default::default(),
        return_path: None,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("spool_enqueue_2k_x20_tasks");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));

    for (name, group_commit) in [("group_commit", true), ("flush_each", false)] {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let spool = Spool::open(
            &db,
            &dir.path().join("bodies"),
            SpoolConfig {
                group_commit,
                ..SpoolConfig::default()
            },
        )
        .unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let spool = spool.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|t| {
                            let spool = spool.clone();
                            // Spread `iters` enqueues over the tasks.
                            let n = iters / TASKS + u64::from(t < iters % TASKS);
                            tokio::spawn(async move {
                                for i in 0..n {
                                    spool.enqueue(submission(t * 1_000_000 + i)).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
        let s = spool.stats();
        eprintln!(
            "{name}: {} messages, {} flushes ({:.3} flushes/message), mean flush {:.2} ms",
            s.records_enqueued,
            s.flushes,
            s.flushes as f64 / s.records_enqueued.max(1) as f64,
            s.total_flush_nanos as f64 / s.flushes.max(1) as f64 / 1e6
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
