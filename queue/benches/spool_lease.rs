//! Leasing due messages from a spool holding 20,000 queued recipients in
//! 4 workspaces: `Spool::lease(now, 100)` (the scheduler's batch) and the
//! release of each lease, as the delivery engine does when it wakes up.
//! The enqueue side is `queue/benches/spool_enqueue.rs`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rackwave_queue::{Spool, SpoolConfig, Submission};

const DEPTH: u64 = 20_000;
const BATCH: usize = 100;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let spool = Spool::open(&db, &dir.path().join("bodies"), SpoolConfig::default()).unwrap();
    // Fill the queue: 200 submissions of 100 recipients each, 2 KB bodies.
    rt.block_on(async {
        let tasks: Vec<_> = (0..DEPTH / 100)
            .map(|s| {
                let spool = spool.clone();
                tokio::spawn(async move {
                    spool
                        .enqueue(Submission {
                            queue_id: None,
                            workspace_id: format!("ws{}", s % 4),
                            submitter: "bench@example.com".into(),
                            mail_from: "bench@example.com".into(),
                            recipients: (0..100)
                                .map(|r| format!("rcpt{s}-{r}@example.net"))
                                .collect(),
                            subject: Some("benchmark".into()),
                            body: vec![b'x'; 2048],
                            received_at_ms: 1_700_000_000_000 + s as i64,
                            tags: Vec::new(),
                            metadata: Default::default(),
                            return_path: None,
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let now = 1_800_000_000_000;
    let mut g = c.benchmark_group("spool_lease_depth_20k");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("lease_100_and_release", |b| {
        b.iter(|| {
            let batch = spool.lease(now, BATCH).unwrap();
            assert_eq!(batch.len(), BATCH);
            for rec in &batch {
                spool.release(&rec.id);
            }
            black_box(batch)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
