//! Disk use in steady state, with time compressed on the injectable clock:
//! one in-process server (the shipped configuration, except `[spool]
//! retention_days = 1` and the delivery smarthost), relaying to `rackwave
//! bench sink`. Each simulated half day it accepts and delivers a batch of
//! messages, then the clock moves on twelve hours and the two retention
//! passes run (the spool's, and the event log's at its minimum of two
//! days), so the steady state of weeks is reached in minutes. Prints the
//! data directory's size after every half day: it must level off once both
//! retentions delete as much as each half day adds.
//!
//! `cargo bench --bench retention_steady` (8 days, 40,000 messages a half
//! day), or `cargo bench --bench retention_steady -- DAYS PER_HALF_DAY`.

use std::path::Path;
use std::time::Duration;

use rackwave::config::Config;
use rackwave::server::Server;
use rackwave_bench::sink::{Sink, SinkConfig};
use rackwave_bench::smtp::{run_with, SmtpBenchArgs};
use rackwave_core::{Clock, MS_PER_DAY};
use rackwave_delivery::TlsPolicy;

/// 2026-06-07T09:39:00Z.
const START_MS: i64 = 1_780_825_140_000;
const HALF_DAY_MS: i64 = MS_PER_DAY / 2;

fn size_of(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let days = rackwave_bench::positional_arg(1, 8);
    let per_half_day = rackwave_bench::positional_arg(2, 40_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = Sink::start(SinkConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .expect("sink");

    let mut config = Config::default();
    config.storage.path = dir.path().join("data");
    config.smtp.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.listen_tls = None;
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.spool.retention_days = 1.0;
    config.webhooks.retention_days = 2;
    config.delivery.shaping.smarthost = Some(sink.addr.to_string());
    config.delivery.shaping.tls = TlsPolicy::Disabled;
    config.delivery.shaping.max_connections = 20;
    config.delivery.shaping.messages_per_connection = 1000;
    let clock = Clock::manual(START_MS);
    let server = Server::start(config, clock.clone())
        .await
        .expect("server starts");
    let ws = server
        .accounts
        .create_workspace("steady", None)
        .await
        .expect("workspace");
    server
        .accounts
        .create_smtp_account(&ws.id, "steady", "a long password", u64::MAX)
        .await
        .expect("account");
    let data = dir.path().join("data");

    println!(
        "{days} simulated days, {per_half_day} messages each half day; spool retention 1 day, event log 2 days"
    );
    println!("  day   data MB     db MB  spool pruned  events pruned  accept msg/s");
    let mut sent = 0;
    let mut spool_pruned = 0;
    let mut events_pruned = 0;
    for half_day in 1..=days * 2 {
        let summary = run_with(
            SmtpBenchArgs {
                target: server.smtp_addr,
                messages: per_half_day,
                concurrency: 50,
                size: 2048,
                message_file: None,
                recipients: 1,
                auth: Some("steady:a long password".into()),
                starttls: false,
                tls: false,
                pipelining: false,
                per_connection: 0,
                duration: 600,
                to_domain: "sink.test".into(),
                domains: 1,
                json: false,
            },
            false,
        )
        .await
        .expect("load");
        sent += per_half_day;
        if !sink.wait_for_messages(sent, Duration::from_secs(600)).await {
            eprintln!("  only {} of {sent} delivered", sink.messages());
        }
        let accept_rate = summary.messages_per_sec;

        clock.advance_ms(HALF_DAY_MS);
        let pass = rackwave_queue::retention::pass(&server.spool, &clock, MS_PER_DAY)
            .await
            .expect("spool retention");
        spool_pruned += pass.pruned;
        let pruned = server
            .events
            .prune_expired()
            .await
            .expect("event retention");
        events_pruned += pruned.events;
        println!(
            "{:5.1} {:9.0} {:9.0} {:13} {:14} {:13.0}",
            half_day as f64 / 2.0,
            size_of(&data) as f64 / 1e6,
            size_of(&data.join("db")) as f64 / 1e6,
            spool_pruned,
            events_pruned,
            accept_rate,
        );
    }
    server.shutdown().await;
}
