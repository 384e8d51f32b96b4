//! A billing run over many active subscriptions, all due for renewal:
//! each gets its renewal invoice (numbered, with GST), its
//! `invoice_created` event and its notification queued, while the
//! notification engine mails them (with the invoice PDF) through the
//! intake. The shipped configuration (`config.toml`), with the data
//! directory in a temporary directory, loopback port 0, the periodic cycle
//! off so that the run measured is the one asked for over HTTP
//! (`POST /admin/v1/billing/run`), and delivery off (the emails stay
//! queued: `example.test` is nobody's). The clients, workspaces and
//! subscriptions are written straight into the database before the server
//! opens it (signing 100,000 clients up would measure argon2). A second
//! run must create nothing.
//!
//! `cargo bench --bench billing_run` (100,000 subscriptions), or
//! `cargo bench --bench billing_run -- N`.

use std::time::Instant;

use rackwave::config::Config;
use rackwave::server::Server;
use rackwave_core::Clock;
use rackwave_store::{Client, Database, Subscription, SubscriptionStatus, Workspace};
use serde_json::Value;

/// 2026-06-07T09:39:00Z.
const START_MS: i64 = 1_780_825_140_000;
const BATCH: usize = 1000;

/// Resident and peak resident memory of this process, in MB; the peak is
/// reset to the current size after reading.
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    let now = (field("VmRSS:"), field("VmHWM:"));
    // "5" resets the peak (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    now
}

async fn run(server: &Server) -> (Value, f64) {
    let t = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("http://{}/admin/v1/billing/run", server.http_addr))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .expect("billing run");
    assert!(resp.status().is_success(), "{}", resp.status());
    let report: Value = resp.json().await.expect("report");
    (report, t.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = rackwave_bench::positional_arg(1, 100_000) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::load(std::path::Path::new("config.toml")).expect("config.toml");
    config.storage.path = dir.path().join("data");
    config.smtp.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.listen_tls = None;
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.inbound.listen = None;
    config.billing.cycle_secs = 0;
    config.delivery.enabled = false;
    // NOTIFICATIONS_OFF=1: the run alone (notices are dropped unsent).
    let mailing = std::env::var_os("NOTIFICATIONS_OFF").is_none();
    config.notifications.enabled = mailing;
    let plan = config
        .billing
        .plans
        .iter()
        .find(|p| p.platform == "migosmtp")
        .expect("a migosmtp plan in config.toml")
        .clone();

    // Seed: n clients, each with a workspace and an active subscription
    // whose period ends now.
    let t = Instant::now();
    {
        let db = Database::open(&dir.path().join("data").join("db"), config.storage.cache_mb)
            .expect("database");
        let store = db.store().expect("store");
        for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH) {
            let mut tx = store.begin().await.expect("tx");
            for &i in chunk {
                let client = format!("cus_{i:016x}");
                let ws = format!("ws_{i:016x}");
                tx.insert_client(&Client {
                    id: client.clone(),
                    email: format!("client{i}@example.test"),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                    name: format!("Client {i}"),
                    company: None,
                    address: "1 Test Road".into(),
                    // Half in the seller's state, half elsewhere.
                    state_code: if i % 2 == 0 { "27" } else { "29" }.into(),
                    gstin: None,
                    created_at_ms: START_MS - 40 * 86_400_000,
                    credit_paise: 0,
                    contacts: Vec::new(),
                    session_epoch: 0,
                    reset_requested_at_ms: None,
                })
                .await
                .expect("client");
                tx.insert_workspace(&Workspace {
                    id: ws.clone(),
                    name: format!("Client {i}"),
                    daily_quota: plan.daily_quota,
                    created_at: "2026-04-28T09:39:00Z".into(),
                    allow_unverified_senders: false,
                    tracking: Default::default(),
                    suspended: None,
                })
                .await
                .expect("workspace");
                tx.put_subscription(&Subscription {
                    id: format!("sub_{i:016x}"),
                    client_id: client,
                    platform: "migosmtp".into(),
                    plan_id: plan.id.clone(),
                    status: SubscriptionStatus::Active,
                    workspace_id: ws,
                    period_start_ms: START_MS - 30 * 86_400_000,
                    period_end_ms: START_MS,
                    created_at_ms: START_MS - 40 * 86_400_000,
                    suspension_reason: None,
                    suspended_from: None,
                    cancelled_at_ms: None,
                    next_plan_id: None,
                    suspended_for: None,
                })
                .await
                .expect("subscription");
            }
            tx.commit_eventually().await.expect("commit");
        }
        store.flush().await.expect("flush");
    }
    println!(
        "seeded {n} active subscriptions in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let server = Server::start(config, Clock::manual(START_MS))
        .await
        .expect("server starts");
    let (rss_before, _) = memory_mb();
    let started = Instant::now();
    let (report, secs) = run(&server).await;
    let (rss_after, peak) = memory_mb();
    println!(
        "run 1: {secs:.1} s, {:.0} subscriptions/s; RSS {rss_before:.0} -> {rss_after:.0} MB, peak {peak:.0} MB; {report}",
        n as f64 / secs
    );
    assert_eq!(report["renewed"], n, "every subscription renewed");
    let (again, secs) = run(&server).await;
    println!("run 2: {secs:.2} s; {again}");
    assert_eq!(again["invoiced"], 0, "a second run creates nothing");
    // Until every invoice's email is queued for delivery.
    let mailed = |v: &Value| v["depth"].as_u64().unwrap_or(0);
    if mailing {
        wait_for_mail(&server, n as u64, started, mailed).await;
    }
    server.shutdown().await;
}

/// Waits until the queue holds `n` messages; says when and how much memory.
async fn wait_for_mail(server: &Server, n: u64, started: Instant, mailed: impl Fn(&Value) -> u64) {
    loop {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/admin/v1/queue", server.http_addr))
            .bearer_auth(&server.admin_token)
            .send()
            .await
            .expect("queue");
        let queue: Value = resp.json().await.expect("queue");
        if mailed(&queue) >= n {
            let (rss, peak) = memory_mb();
            println!(
                "all {n} notification emails queued {:.1} s after run 1 started; RSS {rss:.0} MB, peak after run 1 {peak:.0} MB",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
