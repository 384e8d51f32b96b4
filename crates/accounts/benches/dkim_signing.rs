//! DKIM signing of a 2 KB message through `Domains::sign`, the call the
//! intake makes once per accepted submission, with an RSA-2048 and an
//! Ed25519 key (the signers are cached after the first call, so this is
//! hashing plus the private-key operation).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;

use rackwave_accounts::{Accounts, DkimAlgorithm, Domains};
use rackwave_core::Clock;
use rackwave_store::Database;

fn message() -> Vec<u8> {
    let mut m = b"From: News <news@rsa.bench.test>\r\nTo: <someone@example.org>\r\nSubject: Your weekly digest\r\nDate: Sun, 7 Jun 2026 09:39:00 +0000\r\nMessage-ID: <0123456789@rsa.bench.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.....\r\n";
    while m.len() < 2048 {
        m.extend_from_slice(line);
    }
    m
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Database::open(&dir.path().join("db"), 16)
        .and_then(|d| d.store())
        .unwrap();
    let accounts = Accounts::new(store.clone(), Clock::System);
    let domains = Domains::new(store, accounts.clone(), Clock::System);
    let ws = rt
        .block_on(accounts.create_workspace("bench", None))
        .unwrap()
        .id;
    let msg = Arc::new(message());
    let mut g = c.benchmark_group("dkim_sign_2k");
    g.throughput(Throughput::Elements(1));
    for (name, domain, algorithm) in [
        ("rsa2048", "rsa.bench.test", DkimAlgorithm::Rsa2048),
        ("ed25519", "ed.bench.test", DkimAlgorithm::Ed25519),
    ] {
        rt.block_on(domains.add(&ws, domain, algorithm, Some("bench")))
            .unwrap();
        // Warm the signer cache and check that it signs at all.
        let sign = || rt.block_on(domains.sign(&ws, domain, black_box(msg.clone())));
        assert!(sign().unwrap().is_some());
        g.bench_function(name, |b| b.iter(|| black_box(sign().unwrap())));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
