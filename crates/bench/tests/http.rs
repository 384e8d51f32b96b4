//! `rackwave bench http` against the real server: what it counts as queued
//! is what the server queued, one request a message or a batch a request,
//! and a refused key shows as the first error.

use clap::Parser;
use rackwave_bench::http::{self, HttpBenchArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: HttpBenchArgs,
}

fn args(target: &str, key: &str, extra: &[&str]) -> HttpBenchArgs {
    let mut argv = vec!["bench", "--target", target, "--key", key, "--json"];
    argv.extend_from_slice(extra);
    Cli::parse_from(argv).args
}

#[tokio::test]
async fn bench_http_counts_what_the_server_queued() {
    let ts = rackwave_testkit::start().await;
    let ws = ts.create_workspace("bench", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;

    let single = http::run_with(
        args(&ts.http, &key, &["--messages", "30", "--concurrency", "4"]),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        (single.messages_ok, single.messages_failed, single.requests),
        (30, 0, 30),
        "{single}"
    );
    assert!(single.first_error.is_none() && single.latency_ms_max > 0.0);

    // 20 messages in batches of 8: 8, 8 and the last 4.
    let batch = http::run_with(
        args(
            &ts.http,
            &key,
            &["--messages", "20", "--concurrency", "2", "--batch", "8"],
        ),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        (batch.messages_ok, batch.messages_failed, batch.requests),
        (20, 0, 3),
        "{batch}"
    );

    let logged = ts.messages(&ws).await;
    assert_eq!(logged.len(), 50);

    let refused = http::run_with(
        args(
            &ts.http,
            "not-a-key",
            &["--messages", "3", "--concurrency", "1"],
        ),
        false,
    )
    .await
    .unwrap();
    assert_eq!((refused.messages_ok, refused.messages_failed), (0, 3));
    assert_eq!(refused.errors_by_status.get(&401), Some(&3), "{refused}");
    assert!(refused.first_error.unwrap().starts_with("401: "));
}
