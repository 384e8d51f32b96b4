//! SMPP submit throughput: `MESSAGES` single-part messages (20,000 by
//! default) through the SMPP connector to the test SMSC over loopback,
//! receipts on, from `CALLERS` concurrent callers (200), once per window
//! size in `WINDOWS` (`10,100`). For each window it prints submit_sm/s,
//! the outcome of the submits, and the receipts received against the
//! submits accepted, with how many receipt ids (decimal, as the SMSC
//! writes them) turn back into an id a submit returned (hex).
//!
//! `cargo bench --bench smpp`, or e.g.
//! `MESSAGES=100000 WINDOWS=1,10,100,500 cargo bench --bench smpp`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rackwave_telnxo::connectors::smpp::{SmppConfig, SmppConnector};
use rackwave_telnxo::connectors::{OutboundSms, Report};
use rackwave_testkit::smsc::{Smsc, SmscOptions};
use tokio::sync::watch;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(messages: usize, window: usize, callers: usize) {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let (reports, mut received) = rackwave_testkit::carrier_reports(10_000);
    let (_shutdown, stop) = watch::channel(false);
    let config = SmppConfig {
        port: smsc.addr().port(),
        system_id: "rackwave".into(),
        password: "secret".into(),
        window,
        ..SmppConfig::default()
    };
    let smpp = SmppConnector::start(config, reports, stop);
    let receipts = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(report) = received.recv().await {
            if let Report::SmsReceipt(r) = report {
                ids.push(r.carrier_id);
            }
        }
        ids
    });
    while !smpp.is_bound() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (smpp, next) = (smpp.clone(), next.clone());
            tokio::spawn(async move {
                let (mut ids, mut errors) = (Vec::new(), 0usize);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= messages {
                        return (ids, errors);
                    }
                    let sms = OutboundSms {
                        message_id: format!("msg_{i}"),
                        from: "RACKWV".into(),
                        to: format!("+4477009{:05}", i % 100_000),
                        encoded: rackwave_sms::encode("Your code is 123456", 0),
                    };
                    match smpp.submit(&sms).await {
                        Ok(parts) => ids.extend(parts),
                        Err(_) => errors += 1,
                    }
                }
            })
        })
        .collect();
    let mut accepted = HashSet::new();
    let mut errors = 0;
    for task in tasks {
        let (ids, failed) = task.await.expect("caller");
        accepted.extend(ids);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();

    // The receipts trail the answers a little.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (smpp.stats().receipts as usize) < accepted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = smpp.stats();
    drop(smpp);
    let receipt_ids = receipts.await.expect("receipts");
    let matching = receipt_ids
        .iter()
        .filter(|id| {
            id.parse::<u64>()
                .is_ok_and(|n| accepted.contains(&format!("{n:X}")))
        })
        .count();
    println!(
        "window {window:>4}: {messages} submit_sm in {elapsed:.2} s = {:.0} submit_sm/s; \
         accepted {}, failed {errors}, throttled {}; receipts {} of {} submits, {matching} ids matching (decimal -> hex); \
         SMSC saw {} submits, {} receipts acknowledged",
        messages as f64 / elapsed,
        accepted.len(),
        stats.throttled,
        receipt_ids.len(),
        stats.submitted,
        smsc.submit_count(),
        smsc.deliver_acks(),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let messages = env_or("MESSAGES", 20_000usize);
    let callers = env_or("CALLERS", 200usize);
    let windows: Vec<usize> = std::env::var("WINDOWS")
        .unwrap_or_else(|_| "10,100".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    println!("SMPP: {messages} single-part messages, {callers} callers, receipts on");
    for window in windows {
        run(messages, window, callers).await;
    }
}
