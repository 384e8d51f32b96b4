//! Criterion benches for the SMTP hot path that is pure CPU: command
//! parsing and reply formatting.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rackwave_smtp_proto::command::parse;
use rackwave_smtp_proto::Reply;

fn commands(c: &mut Criterion) {
    let lines: [&[u8]; 6] = [
        b"EHLO client.example.com\r\n",
        b"MAIL FROM:<newsletter+bounce@example.com> SIZE=2048 BODY=8BITMIME\r\n",
        b"RCPT TO:<someone.with.a.long.name@recipient-domain.example>\r\n",
        b"DATA\r\n",
        b"BDAT 65536 LAST\r\n",
        b"AUTH PLAIN AGJlbmNoAGJlbmNocGFzcw==\r\n",
    ];
    let mut g = c.benchmark_group("smtp_command");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_transaction", |b| {
        b.iter(|| {
            for l in lines {
                black_box(parse(black_box(l)).unwrap());
            }
        })
    });
    g.finish();
}

fn replies(c: &mut Criterion) {
    c.bench_function("smtp_reply_write", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            Reply::new(250, "2.0.0", "OK queued as 0123456789ABCDEF").write_to(&mut out);
            black_box(&out);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = commands, replies
}
criterion_main!(benches);
