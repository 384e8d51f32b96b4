//! SMS end to end through Telnxo: `MESSAGES` single-part SMS (20,000 by
//! default) accepted by the service (`Telnxo::send_sms`, what `POST
//! /telnxo/v1/sms` calls after parsing its JSON) from `CALLERS` concurrent
//! callers (200), queued durably, dispatched through the SMPP connector on
//! one bind with a window of `WINDOW` (100) to the test SMSC over loopback,
//! and settled by the SMSC's receipts (decimal ids against the hex ids of
//! its `submit_sm_resp`). Prints the acceptance rate, the rate of
//! `submit_sm` as the SMSC saw them (first to last), the time until every
//! message is `delivered`, and how many receipts matched their message.
//! The server runs in process with the shipped configuration but for the
//! SMS connector (and a manual clock, which nothing here waits on).
//!
//! Then WhatsApp: `WA_MESSAGES` templates (5,000) sent through the Cloud
//! API connector to the test kit's Graph API, and for each a `delivered`
//! and a `read` status posted as Meta does, signed, from `CALLERS`
//! concurrent HTTP clients to `/telnxo/v1/whatsapp/callback`: callbacks
//! ingested per second (each answered `200` only once durable), and how
//! many messages ended `read`.
//!
//! `cargo bench --bench telnxo`, or `MESSAGES=50000 WINDOW=10 cargo bench
//! --bench telnxo`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rackwave_store::{Channel, CommStatus};
use rackwave_telnxo::ConnectorKind;
use rackwave_testkit::graph::{self, GraphServer};
use rackwave_testkit::smsc::{Smsc, SmscOptions};
use serde_json::json;

const APP_SECRET: &str = "bench-app-secret";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let messages: usize = env_or("MESSAGES", 20_000);
    let callers: usize = env_or("CALLERS", 200);
    let window: usize = env_or("WINDOW", 100);
    // Every destination delivers.
    let smsc = Smsc::start(SmscOptions {
        stat_rule: Arc::new(|_| ("DELIVRD".to_string(), "000".to_string())),
        ..SmscOptions::default()
    })
    .await;
    let graph_api = GraphServer::start("1234567890", "token").await;
    let ts = rackwave_testkit::start_with(|c| {
        graph_api.configure(c, APP_SECRET, "v");
        c.telnxo.sms.connector = ConnectorKind::Smpp;
        c.telnxo.sms.smpp.port = smsc.addr().port();
        c.telnxo.sms.smpp.system_id = "rackwave".into();
        c.telnxo.sms.smpp.password = "secret".into();
        c.telnxo.sms.smpp.window = window;
    })
    .await;
    let ws = ts.create_workspace("bench", None).await;
    let (s, _) = ts
        .admin(
            "POST",
            "/telnxo/v1/numbers",
            Some(json!({"workspace_id": ws, "number": "+14155550100", "channels": ["sms", "whatsapp"]})),
        )
        .await;
    assert_eq!(s, 201);
    let telnxo = ts.server.as_ref().unwrap().telnxo.clone();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let (telnxo, ws) = (telnxo.clone(), ws.clone());
        tasks.spawn(async move {
            let mut i = caller;
            while i < messages {
                let to = format!("+9198{:08}", i);
                telnxo
                    .send_sms(&ws, "+14155550100", &to, "Your one-time code is 481516")
                    .await
                    .expect("accepted");
                i += callers;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let accepted_in = started.elapsed();

    // Until every message has its receipt applied.
    let delivered = loop {
        let mut delivered = 0;
        let mut cursor = None;
        loop {
            let page = telnxo
                .messages(&ws, Some(Channel::Sms), cursor.as_deref(), 500)
                .await
                .unwrap();
            delivered += page
                .items
                .iter()
                .filter(|m| m.status == CommStatus::Delivered)
                .count();
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if delivered == messages || started.elapsed() > Duration::from_secs(600) {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let all_in = started.elapsed();
    let submits = smsc.submits();
    let (first, last) = (submits.first().map(|s| s.at), submits.last().map(|s| s.at));
    let submit_secs = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    println!(
        "telnxo sms, window {window}, {messages} messages, {callers} callers: accepted at {:.0} msg/s ({:.2} s); \
         submit_sm at {:.0}/s ({} submits over {:.2} s); all delivered after {:.2} s ({:.0} msg/s end to end); \
         receipts matched {delivered} of {messages} ({:.1} %), SMSC sent {} receipts",
        messages as f64 / accepted_in.as_secs_f64(),
        accepted_in.as_secs_f64(),
        submits.len() as f64 / submit_secs.max(1e-9),
        submits.len(),
        submit_secs,
        all_in.as_secs_f64(),
        messages as f64 / all_in.as_secs_f64(),
        delivered as f64 * 100.0 / messages as f64,
        smsc.receipts_sent(),
    );

    whatsapp(&ts, &telnxo, &ws, &graph_api, callers).await;
}

async fn whatsapp(
    ts: &rackwave_testkit::TestServer,
    telnxo: &rackwave_telnxo::Telnxo,
    ws: &str,
    graph_api: &GraphServer,
    callers: usize,
) {
    let messages: usize = env_or("WA_MESSAGES", 5_000);
    let mut ids = Vec::with_capacity(messages);
    for i in 0..messages {
        let m = telnxo
            .send_whatsapp(
                ws,
                None,
                &format!("+9197{:08}", i),
                rackwave_telnxo::connectors::WhatsappContent::Template {
                    name: "order_update".into(),
                    language: "en_US".into(),
                    components: serde_json::Value::Null,
                },
            )
            .await
            .expect("accepted");
        ids.push(m.id);
    }
    // Until every one is sent and recorded with its wamid.
    loop {
        let mut sent = 0;
        for id in &ids {
            if telnxo.message(ws, id).await.unwrap().status == CommStatus::Sent {
                sent += 1;
            }
        }
        if sent == messages {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut bodies = Vec::with_capacity(messages * 2);
    for (n, sent) in graph_api.sent().into_iter().enumerate() {
        let wamid = sent.wamid.expect("a wamid");
        let to = sent.body["to"].as_str().unwrap().to_string();
        for (i, status) in ["delivered", "read"].into_iter().enumerate() {
            let at = 1_780_825_200 + (n * 2 + i) as i64;
            bodies.push(graph::status_callback(&wamid, status, &to, at, None));
        }
    }
    let bodies = Arc::new(bodies);
    let url = format!("{}/telnxo/v1/whatsapp/callback", ts.http);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let (bodies, url) = (bodies.clone(), url.clone());
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut i = caller;
            while i < bodies.len() {
                let body = bodies[i].clone();
                let status = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(
                        "X-Hub-Signature-256",
                        graph::sign(APP_SECRET, body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 200);
                i += callers;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let took = started.elapsed();
    let mut read = 0;
    for id in &ids {
        if telnxo.message(ws, id).await.unwrap().status == CommStatus::Read {
            read += 1;
        }
    }
    println!(
        "whatsapp callbacks: {} signed status callbacks from {callers} clients in {:.2} s = {:.0} callbacks/s; {read} of {messages} messages read",
        bodies.len(),
        took.as_secs_f64(),
        bodies.len() as f64 / took.as_secs_f64(),
    );
}
