//! Standard Webhooks signing (HMAC-SHA256 over `id.timestamp.body`) of a
//! typical event payload, through `rackwave_events::signing`, which the
//! webhook emitter calls for every delivery attempt.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rackwave_events::signing;

fn bench(c: &mut Criterion) {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rotated = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let id = "evt_2b6fd0f4a1c94e1f";
    let ts = 1_780_825_140_i64;
    let body = br#"{"type":"email.delivered","timestamp":"2026-06-07T09:39:00.000Z","data":{"message_id":"msg_0123456789abcdef","queue_id":"0123456789ABCDEF","workspace_id":"ws_0123456789","from":"news@example.com","to":"someone@example.org","subject":"Your weekly digest","attempt":1,"remote_host":"mx1.example.org","reply":"250 2.0.0 OK queued"}}"#;
    let mut g = c.benchmark_group("webhook_sign");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_secret", |b| {
        b.iter(|| black_box(signing::sign(secret, black_box(id), ts, black_box(body))))
    });
    g.bench_function("header_two_secrets", |b| {
        b.iter(|| {
            black_box(signing::signature_header(
                [secret, rotated],
                black_box(id),
                ts,
                black_box(body),
            ))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
