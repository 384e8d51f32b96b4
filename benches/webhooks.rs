//! Webhook emitter throughput and latency: one in-process server (system
//! clock, its own data directory), ten endpoints on one local receiver that
//! verifies every signature, N events emitted by concurrent producers.
//! Prints events/s, deliveries/s and the p50/p99/max time from `emit` to
//! the receiver having the POST.
//!
//! `cargo bench --bench webhooks` (N = 2000), or
//! `cargo bench --bench webhooks -- 10000` for another N.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rackwave::config::Config;
use rackwave::server::Server;
use rackwave_core::event::{EmailQueued, MessageRef};
use rackwave_core::{Clock, Product, Timestamp};
use rackwave_testkit::receiver::{self, Receiver};

const ENDPOINTS: usize = 10;
const PRODUCERS: usize = 16;
/// Events per second of the latency phase.
const RATE: usize = 100;

fn data(i: usize) -> EmailQueued {
    EmailQueued {
        message: MessageRef {
            message_id: format!("msg_{i:016x}"),
            queue_id: format!("{i:016X}"),
            to: format!("r{i}@example.test"),
            from: "app@example.test".into(),
            subject: Some("bench".into()),
            status: Default::default(),
            ..Default::default()
        },
        queued_at: Timestamp(1_780_825_140_000),
    }
}

async fn wait_all(rx: &Receiver, total: usize) -> Vec<receiver::Received> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = (0, Instant::now());
    while rx.total() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = rx.total();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(10) {
            eprintln!("  stalled at {now}/{total} received");
            last.1 = Instant::now();
        }
    }
    rx.all()
}

fn report(received: &[receiver::Received], emitted: &HashMap<String, Instant>, note: &str) {
    let mut latencies: Vec<Duration> = received
        .iter()
        .filter_map(|r| {
            emitted
                .get(&r.webhook_id)
                .map(|t| r.at.saturating_duration_since(*t))
        })
        .collect();
    latencies.sort();
    println!(
        "  event -> received POST {note}: p50 {:.1?}  p99 {:.1?}  max {:.1?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    let unverified = received.iter().filter(|r| !r.verified()).count();
    println!("  signatures failing verification: {unverified}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.path = dir.path().join("data");
    config.smtp.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.listen_tls = None;
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.token = "bench-admin-token".into();
    config.delivery.enabled = false;
    config.webhooks.allow_private_targets = true;
    let server = Server::start(config, Clock::System).await.expect("server");
    let ws = server
        .accounts
        .create_workspace("bench", None)
        .await
        .unwrap()
        .id;
    let rx = Receiver::start().await;
    for i in 0..ENDPOINTS {
        let path = format!("ep{i}");
        let ep = server
            .events
            .create_endpoint(
                &ws,
                Product::Migosmtp,
                rackwave_events::NewEndpoint {
                    url: rx.url(&path),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        rx.set_secrets(&path, &[&ep.secrets[0].secret]);
    }

    println!("webhooks bench: {ENDPOINTS} endpoints on one local receiver");
    // Phase 1, throughput: N events as fast as 16 producers can emit them.
    let emitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let events = server.events.clone();
        let ws = ws.clone();
        let emitted = emitted.clone();
        producers.push(tokio::spawn(async move {
            for i in (p..n).step_by(PRODUCERS) {
                let at = Instant::now();
                let ev = events.emit(&ws, data(i)).await.unwrap();
                emitted.lock().unwrap().insert(ev.id, at);
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let emit_elapsed = started.elapsed();
    let received = wait_all(&rx, n * ENDPOINTS).await;
    let elapsed = received
        .iter()
        .map(|r| r.at)
        .max()
        .map(|last| last - started)
        .unwrap_or_default();
    println!("throughput: {n} events emitted at once by {PRODUCERS} producers");
    println!(
        "  emitted (durable) in {:.2?}: {:.0} events/s",
        emit_elapsed,
        n as f64 / emit_elapsed.as_secs_f64()
    );
    println!(
        "  all {}/{} POSTs received in {:.2?}: {:.0} events/s, {:.0} deliveries/s",
        received.len(),
        n * ENDPOINTS,
        elapsed,
        n as f64 / elapsed.as_secs_f64(),
        received.len() as f64 / elapsed.as_secs_f64()
    );
    report(&received, &emitted.lock().unwrap(), "(backlog included)");

    // Phase 2, latency: a steady RATE events/s, below saturation.
    let before = rx.total();
    let emitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latency_events = RATE * 5;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / RATE as u32);
    let mut tasks = Vec::new();
    for i in 0..latency_events {
        ticker.tick().await;
        let events = server.events.clone();
        let ws = ws.clone();
        let emitted = emitted.clone();
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let ev = events.emit(&ws, data(n + i)).await.unwrap();
            emitted.lock().unwrap().insert(ev.id, at);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = wait_all(&rx, before + latency_events * ENDPOINTS).await;
    println!(
        "latency: {latency_events} events at {RATE} events/s ({} deliveries/s)",
        RATE * ENDPOINTS
    );
    report(&all[before..], &emitted.lock().unwrap(), "");
    rx.release();
    server.shutdown().await;
}
