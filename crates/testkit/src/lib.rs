//! What Rackwave's tests run against, and nothing that imitates the
//! server: the real server started in process on ephemeral loopback ports
//! with a manual clock ([`start`]) or as the real binary ([`binary`]), an
//! admin API client, a raw SMTP client for protocol edge cases
//! ([`RawSmtp`], reading replies with the protocol crate), a real DNS
//! server ([`dns`]), a webhook receiver that verifies signatures
//! ([`receiver`]), an SMPP carrier ([`smsc`]) and a time limit for a
//! whole test binary ([`watchdog`]).
//!
//! A dev-dependency only: nothing in the product depends on it.

pub mod binary;
pub mod browser;
pub use fantoccini;
pub mod delivery;
pub mod dns;
pub mod esl;
pub mod graph;
pub mod portal;
pub use rackwave_testkit_postgres as postgres;
pub mod receiver;
pub mod smsc;
pub mod watchdog;

use std::net::SocketAddr;
use std::time::Duration;

use rackwave::config::Config;
use rackwave::server::Server;
use rackwave_core::Clock;
use rackwave_smtp_proto::io::{read_line, read_reply, Line};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// 2026-06-07T09:39:00Z, the seed's example time.
pub const START_MS: i64 = 1_780_825_140_000;

pub struct TestServer {
    pub server: Option<Server>,
    /// A `rackwave serve` process instead ([`binary::serve`]): killed
    /// when dropped, before its data directory goes.
    pub process: Option<binary::Running>,
    pub dir: tempfile::TempDir,
    pub clock: Clock,
    pub smtp: SocketAddr,
    pub smtp_tls: SocketAddr,
    /// The inbound MX, when the test set `[inbound] listen`.
    pub inbound: Option<SocketAddr>,
    pub http: String,
    /// What the server was started with (for [`TestServer::restart`]).
    pub config: Config,
}

/// A config for tests: ephemeral ports, a fresh data directory, short
/// delays so failures do not slow the suite.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.storage.path = dir.join("data");
    c.smtp.listen = "127.0.0.1:0".parse().unwrap();
    c.smtp.listen_tls = Some("127.0.0.1:0".parse().unwrap());
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.token = ADMIN_TOKEN.into();
    c.smtp.hostname = "mx.rackwave.test".into();
    c.smtp.auth_failure_delay_ms = 5;
    c.smtp.shutdown_grace_secs = 5;
    c.webhooks.allow_private_targets = true;
    // Billing runs only when a test asks (POST /admin/v1/billing/run),
    // on the manual clock, never on a real timer mid-test.
    c.billing.cycle_secs = 0;
    // Tests that deliver turn the engine on with their own DNS and sinks;
    // the others must not reach for the real network.
    c.delivery.enabled = false;
    c
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    start_at(START_MS, tweak).await
}

/// [`start_with`] with the manual clock at `start_ms` (a node beside a
/// real process, whose clock is the system's).
pub async fn start_at(start_ms: i64, tweak: impl FnOnce(&mut Config)) -> TestServer {
    watchdog::arm();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let clock = Clock::manual(start_ms);
    let server = Server::start(config.clone(), clock.clone())
        .await
        .expect("server starts");
    TestServer {
        smtp: server.smtp_addr,
        smtp_tls: server.smtp_tls_addr.expect("implicit TLS listener"),
        inbound: server.inbound_addr,
        http: format!("http://{}", server.http_addr),
        server: Some(server),
        process: None,
        dir,
        clock,
        config,
    }
}

/// An SMTP account ready to send.
#[derive(Debug, Clone)]
pub struct Account {
    pub workspace_id: String,
    pub username: String,
    pub password: String,
}

impl TestServer {
    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        api(&self.http, ADMIN_TOKEN, method, path, body).await
    }

    /// One call with a platform API key (see [`api`]).
    pub async fn call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        api(&self.http, key, method, path, body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.admin("GET", path, None).await
    }

    /// A new API key of `platform` (`migosmtp`, `telnxo`) for a workspace.
    pub async fn create_api_key(&self, workspace_id: &str, platform: &str) -> String {
        let (s, k) = self
            .admin(
                "POST",
                &format!("/admin/v1/workspaces/{workspace_id}/api-keys"),
                Some(serde_json::json!({"platform": platform})),
            )
            .await;
        assert_eq!(s, 201, "{k}");
        k["key"].as_str().unwrap().to_string()
    }

    pub async fn create_workspace(&self, name: &str, daily_quota: Option<u64>) -> String {
        let (status, ws) = self
            .admin(
                "POST",
                "/admin/v1/workspaces",
                Some(json!({"name": name, "daily_quota": daily_quota})),
            )
            .await;
        assert_eq!(status, 201, "{ws}");
        ws["id"].as_str().unwrap().to_string()
    }

    pub async fn create_account_in(
        &self,
        workspace_id: &str,
        username: &str,
        quota: u64,
    ) -> Account {
        let password = format!("pw-{username}-secret");
        let (status, body) = self
            .admin(
                "POST",
                &format!("/admin/v1/workspaces/{workspace_id}/smtp-accounts"),
                Some(json!({"username": username, "password": password, "daily_quota": quota})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Account {
            workspace_id: workspace_id.to_string(),
            username: username.to_string(),
            password,
        }
    }

    /// A new workspace with one SMTP account.
    pub async fn create_account(&self, username: &str, quota: u64) -> Account {
        let ws = self
            .create_workspace(&format!("ws of {username}"), None)
            .await;
        self.create_account_in(&ws, username, quota).await
    }

    /// Messages of a workspace (all pages).
    pub async fn messages(&self, workspace_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/admin/v1/messages?workspace={workspace_id}&limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.get(&path).await;
            assert_eq!(status, 200, "{page}");
            out.extend(page["messages"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    pub async fn raw(&self) -> RawSmtp<TcpStream> {
        RawSmtp::connect(self.smtp).await
    }

    /// A raw session already greeted and authenticated (loopback, clear text).
    pub async fn authed(&self, account: &Account) -> RawSmtp<TcpStream> {
        RawSmtp::login(self.smtp, &account.username, &account.password).await
    }

    /// Stops the server as on SIGTERM and starts it again on the same data
    /// directory and clock (new ports).
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = Server::start(self.config.clone(), self.clock.clone())
            .await
            .expect("server restarts");
        self.smtp = server.smtp_addr;
        self.smtp_tls = server.smtp_tls_addr.expect("implicit TLS listener");
        self.inbound = server.inbound_addr;
        self.http = format!("http://{}", server.http_addr);
        self.server = Some(server);
    }

    /// Stops the server as `rackwave serve` does on SIGTERM.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// The one-click unsubscribe a mailbox provider makes (RFC 8058 §3.2):
/// `POST` to the `List-Unsubscribe` URL with `List-Unsubscribe=One-Click`.
pub async fn one_click(url: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
}

/// One HTTP call with a bearer token (admin token or platform API key)
/// to the server at `base` (`http://host:port`); the status and JSON body.
pub async fn api(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    // A server that stops answering fails the test instead of hanging it.
    let resp = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// base64 of `\0user\0password` (RFC 4616).
pub fn plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// A message with the headers a client would send.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Sun, 7 Jun 2026 09:39:00 +0000\r\n\r\n{body}\r\n"
    )
}

/// A reply: code and the text of all its lines.
#[derive(Debug, Clone)]
pub struct SmtpReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl SmtpReply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A minimal SMTP client over any stream: sends lines, reads replies.
pub struct RawSmtp<S> {
    io: BufReader<S>,
}

impl RawSmtp<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> RawSmtp<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect to SMTP");
        RawSmtp::new(tcp)
    }

    /// Connected, greeted and authenticated with AUTH PLAIN.
    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> RawSmtp<TcpStream> {
        let mut s = RawSmtp::connect(addr).await;
        s.expect(220).await;
        s.cmd_expect("EHLO client.test", 250).await;
        s.cmd_expect(&format!("AUTH PLAIN {}", plain(user, password)), 235)
            .await;
        s
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawSmtp<S> {
    pub fn new(stream: S) -> RawSmtp<S> {
        RawSmtp {
            io: BufReader::new(stream),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.expect("write");
        self.io.get_mut().flush().await.expect("flush");
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads one (possibly multi-line) reply; `None` when the server closed.
    /// Anything but a well-formed reply fails the test.
    pub async fn reply(&mut self) -> Option<SmtpReply> {
        let read = tokio::time::timeout(Duration::from_secs(20), read_reply(&mut self.io))
            .await
            .expect("reply within 20 s");
        match read {
            Ok(r) => Some(SmtpReply {
                code: r.code,
                lines: r.lines().map(str::to_string).collect(),
            }),
            Err(rackwave_smtp_proto::io::ReplyError::Malformed(line)) => {
                panic!("malformed reply line {line:?}")
            }
            Err(_) => None,
        }
    }

    pub async fn expect(&mut self, code: u16) -> SmtpReply {
        let r = self
            .reply()
            .await
            .expect("a reply, not a closed connection");
        assert_eq!(r.code, code, "expected {code}, got {r:?}");
        r
    }

    pub async fn cmd(&mut self, line: &str) -> SmtpReply {
        self.send(line).await;
        self.reply()
            .await
            .expect("a reply, not a closed connection")
    }

    pub async fn cmd_expect(&mut self, line: &str, code: u16) -> SmtpReply {
        let r = self.cmd(line).await;
        assert_eq!(r.code, code, "{line}: expected {code}, got {r:?}");
        r
    }

    /// True once the server has closed the connection.
    pub async fn closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(20), read_line(&mut self.io, 1 << 20)).await,
            Ok(Ok(Line::Eof)) | Ok(Err(_))
        )
    }

    /// MAIL, RCPTs, DATA and the message; returns the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], data: &str) -> SmtpReply {
        self.cmd_expect(&format!("MAIL FROM:<{from}>"), 250).await;
        for rcpt in to {
            self.cmd_expect(&format!("RCPT TO:<{rcpt}>"), 250).await;
        }
        self.cmd_expect("DATA", 354).await;
        let mut body = data.replace("\r\n.", "\r\n..");
        if !body.ends_with("\r\n") {
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        self.send_raw(body.as_bytes()).await;
        self.reply().await.expect("reply to end of data")
    }

    pub fn into_inner(self) -> S {
        self.io.into_inner()
    }
}

/// The queue id from `250 2.0.0 OK queued as <id>`.
pub fn queue_id(reply: &SmtpReply) -> String {
    reply
        .text()
        .rsplit(' ')
        .next()
        .expect("queue id in reply")
        .to_string()
}

/// A connector's report channel read by a test in place of the Telnxo
/// service: every report counts as recorded as soon as it is forwarded.
pub fn carrier_reports(
    capacity: usize,
) -> (
    rackwave_telnxo::connectors::Reports,
    tokio::sync::mpsc::Receiver<rackwave_telnxo::connectors::Report>,
) {
    let (reports, mut handed) = rackwave_telnxo::connectors::Reports::channel(capacity);
    let (forward, received) = tokio::sync::mpsc::channel(capacity);
    tokio::spawn(async move {
        while let Some(h) = handed.recv().await {
            if forward.send(h.done()).await.is_err() {
                break;
            }
        }
    });
    (reports, received)
}
