//! What tracking costs a message: a 50 KB newsletter (HTML with 150 links
//! and images in a quoted-printable `multipart/alternative` beside its
//! text) read once and rendered for one recipient, links wrapped and the
//! pixel placed, and the rendering alone (what each further recipient of
//! the same message costs).
//!
//!   cargo bench -p rackwave-tracking --bench rewrite

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rackwave_tracking::{Prepared, Recipient, Switches, TrackingKey};

fn newsletter() -> Vec<u8> {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><style>p{margin:0}</style></head><body>\
         <table width=\"100%\"><tr><td><h1>This week at Acme</h1>",
    );
    let mut i = 0;
    while html.len() < 50_000 {
        html.push_str(&format!(
            "<tr><td><img src=\"https://cdn.acme.test/img/{i}.png\" width=\"600\" alt=\"Story {i}\">\
             <p>Grüße from story {i}: lorem ipsum dolor sit amet, consectetur adipiscing elit, \
             sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. \
             <a href=\"https://www.acme.test/stories/{i}?utm_source=news&amp;utm_medium=email\">Read more</a></p></td></tr>"
        ));
        i += 1;
    }
    html.push_str(
        "<p><a href=\"https://www.acme.test/unsubscribe?u=1\">Unsubscribe</a></p></td></tr></table></body></html>",
    );
    let qp = quoted_printable::encode_to_str(html.as_bytes());
    format!(
        "From: news@acme.test\r\nTo: ada@example.test\r\nSubject: This week\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis week at Acme: https://www.acme.test/\r\n\
         --b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         {}\r\n--b--\r\n",
        qp.replace('\n', "\r\n")
    )
    .into_bytes()
}

fn rewrite(c: &mut Criterion) {
    let message = newsletter();
    let key = TrackingKey::new(vec![9; 32]).unwrap();
    let who = Recipient {
        workspace_id: "ws_0123456789abcdef".into(),
        queue_id: "0123456789ABCDEF".into(),
        address: "ada@example.test".into(),
        list_id: None,
    };
    let on = Switches {
        opens: true,
        clicks: true,
    };
    let base = "https://t.acme.test";
    let mut g = c.benchmark_group("tracking");
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("newsletter_50k_read_and_render", |b| {
        b.iter(|| {
            let p = Prepared::new(&message).unwrap();
            p.render(&message, on, &key, base, &who).unwrap()
        })
    });
    let prepared = Prepared::new(&message).unwrap();
    g.bench_function("newsletter_50k_render_per_recipient", |b| {
        b.iter(|| prepared.render(&message, on, &key, base, &who).unwrap())
    });
    g.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
