//! Bounce classification over the whole corpus (`fixtures/bounce-corpus.tsv`):
//! parsing each raw reply line and classifying it, as the delivery engine
//! does for every non-2xx reply. Throughput is in replies.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rackwave_delivery::classify::classify;
use rackwave_smtp_proto::reply::parse_reply_line;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bounce-corpus.tsv");

fn corpus() -> Vec<String> {
    std::fs::read_to_string(CORPUS)
        .unwrap_or_else(|e| panic!("{CORPUS}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t').map(|(_, reply)| reply.to_string()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = corpus();
    assert!(!lines.is_empty(), "empty corpus");
    let parsed: Vec<_> = lines.iter().filter_map(|l| parse_reply_line(l)).collect();
    let mut g = c.benchmark_group("bounce_classifier");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_and_classify_corpus", |b| {
        b.iter(|| {
            for l in &lines {
                if let Some((code, enh, text)) = parse_reply_line(black_box(l)) {
                    black_box(classify(code, enh.as_deref(), &text));
                }
            }
        })
    });
    g.throughput(Throughput::Elements(parsed.len() as u64));
    g.bench_function("classify_corpus", |b| {
        b.iter(|| {
            for (code, enh, text) in &parsed {
                black_box(classify(*code, enh.as_deref(), black_box(text)));
            }
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
