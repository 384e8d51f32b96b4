//! The real `rackwave` binary: `250 OK queued` means durable. SIGKILL it
//! right after the replies (with other transactions still in flight), start
//! it again, and every acknowledged message must be there. Also: SIGTERM
//! shuts down gracefully, and a broken config fails with one clear line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rackwave_testkit::binary::{wait_ready, Ports, Running};
use rackwave_testkit::dns;
use rackwave_testkit::*;
use serde_json::{json, Value};

/// The `rackwave` binary under test, serving `config`.
fn spawn(config: &std::path::Path) -> rackwave_testkit::binary::Running {
    rackwave_testkit::binary::spawn(env!("CARGO_BIN_EXE_rackwave"), config)
}

/// A config for the real binary; `delivery` is the `[delivery]` table.
fn write_config(dir: &Path, ports: &Ports, delivery: &str) -> std::path::PathBuf {
    ports.write_config(
        dir,
        &format!("[storage]\npath = \"data\"\n\n[delivery]\n{delivery}"),
    )
}

async fn admin(http: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    api(&format!("http://{http}"), ADMIN_TOKEN, method, path, body).await
}

/// Starts the real binary on free ports in `dir`, with `delivery` as its
/// `[delivery]` table, and waits until it is ready.
async fn start(dir: &Path, delivery: &str) -> (Ports, PathBuf, Running) {
    let ports = Ports::free();
    let config = write_config(dir, &ports, delivery);
    let child = spawn(&config);
    wait_ready(ports.http).await;
    (ports, config, child)
}

/// Creates a workspace with an SMTP account `user` in it; its id.
async fn tenant(http: SocketAddr, user: &str, password: &str, daily_quota: u64) -> String {
    let (s, ws) = admin(
        http,
        "POST",
        "/admin/v1/workspaces",
        Some(json!({"name": user})),
    )
    .await;
    assert_eq!(s, 201);
    let ws = ws["id"].as_str().unwrap().to_string();
    let (s, _) = admin(
        http,
        "POST",
        &format!("/admin/v1/workspaces/{ws}/smtp-accounts"),
        Some(json!({"username": user, "password": password, "daily_quota": daily_quota})),
    )
    .await;
    assert_eq!(s, 201);
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_250_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Held queue: this test is about acceptance.
    let (ports, config, mut child) = start(dir.path(), "enabled = false").await;
    tenant(ports.http, "durable", "durable-pass", 100_000).await;

    // Eight sessions send as fast as they can; the moment 40 messages have
    // been acknowledged the server is killed, mid-flight for the others.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let (kill_tx, mut kill_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut senders = Vec::new();
    for n in 0..8 {
        let acked = acked.clone();
        let kill_tx = kill_tx.clone();
        let smtp = ports.smtp;
        senders.push(tokio::spawn(async move {
            let mut s = RawSmtp::login(smtp, "durable", "durable-pass").await;
            for i in 0.. {
                let to = format!("r{n}-{i}@dest.test");
                let data = message("app@src.test", &to, &format!("m {n} {i}"), "durable body");
                s.send(&format!(
                    "MAIL FROM:<app@src.test>\r\nRCPT TO:<{to}>\r\nDATA"
                ))
                .await;
                let ok = async {
                    for code in [250, 250, 354] {
                        if s.reply().await?.code != code {
                            return None;
                        }
                    }
                    s.send_raw(format!("{data}.\r\n").as_bytes()).await;
                    s.reply().await
                }
                .await;
                match ok {
                    Some(r) if r.code == 250 => {
                        let n_acked = {
                            let mut a = acked.lock().unwrap();
                            a.push(queue_id(&r));
                            a.len()
                        };
                        if n_acked >= 40 {
                            let _ = kill_tx.try_send(());
                        }
                    }
                    _ => return, // the server died under us
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), kill_rx.recv())
        .await
        .expect("40 messages acknowledged within a minute");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);

    let mut child = spawn(&config);
    wait_ready(ports.http).await;
    for qid in &acked {
        let (s, page) = admin(
            ports.http,
            "GET",
            &format!("/admin/v1/messages?queue_id={qid}"),
            None,
        )
        .await;
        assert_eq!(s, 200);
        let msgs = page["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 1, "acknowledged {qid} lost after SIGKILL");
        assert_eq!(msgs[0]["status"], "queued");
    }
    let (_, counts) = admin(ports.http, "GET", "/admin/v1/queue", None).await;
    assert!(
        counts["queued"].as_u64().unwrap() >= acked.len() as u64,
        "{counts}"
    );

    // SIGTERM: a graceful stop that exits 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful shutdown exits 0, got {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// "201 Created" from the admin API means durable too: SIGKILL the server
/// right after creating a workspace, an SMTP account, an API key and a
/// sender domain (no mail, so no spool commit flushes them by the way, and
/// sled's own once-a-second flush has not come yet), and all four are there
/// after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_admin_writes_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let (ports, config, mut child) = start(dir.path(), "enabled = false").await;
    let ws = tenant(ports.http, "kept", "kept-password", 10).await;
    let (s, key) = admin(
        ports.http,
        "POST",
        &format!("/admin/v1/workspaces/{ws}/api-keys"),
        Some(json!({"platform": "migosmtp"})),
    )
    .await;
    assert_eq!(s, 201);
    let key = key["key"].as_str().unwrap().to_string();
    let (s, _) = admin(
        ports.http,
        "POST",
        &format!("/admin/v1/workspaces/{ws}/domains"),
        Some(json!({"domain": "kept.test", "algorithm": "ed25519"})),
    )
    .await;
    assert_eq!(s, 201);
    child.kill().unwrap();
    child.wait().unwrap();

    let mut child = spawn(&config);
    wait_ready(ports.http).await;
    let (s, got) = admin(
        ports.http,
        "GET",
        &format!("/admin/v1/workspaces/{ws}"),
        None,
    )
    .await;
    assert_eq!((s, got["name"].as_str()), (200, Some("kept")));
    let mut smtp = RawSmtp::login(ports.smtp, "kept", "kept-password").await;
    smtp.cmd_expect("QUIT", 221).await;
    let (s, _) = api(
        &format!("http://{}", ports.http),
        &key,
        "GET",
        "/migosmtp/v1/webhooks",
        None,
    )
    .await;
    assert_eq!(s, 200, "the API key survived");
    let (s, domains) = admin(
        ports.http,
        "GET",
        &format!("/admin/v1/workspaces/{ws}/domains"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(domains.to_string().contains("kept.test"), "{domains}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn broken_config_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[smtp]\nlisten = \"127.0.0.1:0\"\nmax_recipent = 5\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rackwave"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("bad.toml:3"), "{stderr}");
    assert!(lines[0].contains("max_recipent"), "{stderr}");

    let missing = Command::new(env!("CARGO_BIN_EXE_rackwave"))
        .args(["serve", "--config", "/nonexistent/rackwave.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/rackwave.toml"));
}

/// SIGKILL while messages are being delivered; after a restart every
/// message still ends delivered (a message whose 250 from the remote
/// arrived just before the kill may be delivered twice: at least once,
/// never lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_then_everything_is_delivered() {
    use rackwave_bench::sink::{Action, Script, Sink, SinkConfig, Step};
    let sink = Sink::start(SinkConfig {
        listen: SocketAddr::new(std::net::IpAddr::V4(dns::loopback(41)), 0),
        // A slow remote, so the kill lands mid-delivery.
        script: Script::default().on(
            Step::EndOfData,
            Action::Delay(Duration::from_millis(40), "250 2.0.0 Ok".into()),
        ),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let dns = dns::start(
        dns::loopback(53),
        &dns::fixture("delivery.zone"),
        &[("{SINK1}", "127.0.0.41")],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (ports, config, mut child) = start(
        dir.path(),
        &format!(
            "nameservers = [\"{}\"]\nsmtp_port = {}\npoll_interval_ms = 50\nretry_schedule_secs = [1]\n[delivery.shaping]\nmax_connections = 2\nmessages_per_connection = 10\n",
            dns.addr,
            sink.addr.port()
        ),
    )
    .await;
    tenant(ports.http, "killer", "killer-pass", 1000).await;
    let rcpts: Vec<String> = (0..60).map(|i| format!("r{i}@example.test")).collect();
    let mut s = RawSmtp::login(ports.smtp, "killer", "killer-pass").await;
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let r = s
        .send_mail(
            "app@src.test",
            &refs,
            &message("app@src.test", "r0@example.test", "kill me", "body"),
        )
        .await;
    assert_eq!(r.code, 250);
    let qid = queue_id(&r);
    drop(s);

    assert!(
        sink.wait_for_messages(8, Duration::from_secs(30)).await,
        "delivery started"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let before_restart = sink.messages();
    assert!(
        before_restart < 60,
        "the kill came too late to test anything"
    );

    let mut child = spawn(&config);
    wait_ready(ports.http).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = admin(
            ports.http,
            "GET",
            &format!("/admin/v1/messages?queue_id={qid}"),
            None,
        )
        .await;
        let msgs = page["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 60);
        if msgs.iter().all(|m| m["status"] == "delivered") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered after restart: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got: Vec<String> = sink
        .received()
        .into_iter()
        .flat_map(|m| m.rcpt_to)
        .collect();
    let total = got.len();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 60, "every recipient reached the remote");
    // At most the messages in flight at the kill repeat: per connection
    // (2 here) the one whose 250 was on its way and the one before it,
    // whose settlement is written while the next message is sent.
    assert!(total - 60 <= 4, "{} duplicates", total - 60);
    child.kill().unwrap();
    child.wait().unwrap();
}
