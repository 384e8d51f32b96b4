//! `rackwave bench smtp`: an ESMTP load generator. It speaks plain ESMTP
//! (EHLO, optional STARTTLS or implicit TLS, optional AUTH PLAIN, optional
//! PIPELINING), so it can be pointed at Postfix or any other MTA as well as
//! at Rackwave.
//!
//! Every run is bounded: by a message count and by a duration.
//!
//! Each message carries an `X-Rackwave-Bench-Sent` header with its
//! submission time, so a [`Sink`](super::sink::Sink) behind the server
//! under test can measure submission-to-arrival latency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Args;
use rackwave_smtp_proto::data::dot_stuff;
use rackwave_smtp_proto::io::read_reply;
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::percentiles::latency_ms;
use super::progress::{self, Progress};

#[derive(Args, Debug, Clone)]
pub struct SmtpBenchArgs {
    /// Server to load, HOST:PORT.
    #[arg(long)]
    pub target: SocketAddr,
    /// Messages to send in all.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Message size in octets (headers included).
    #[arg(long, default_value_t = 2048)]
    pub size: usize,
    /// Send this file as the message instead of generated text (line
    /// endings are made CRLF and lines starting with a dot are stuffed).
    #[arg(long, value_name = "PATH", conflicts_with = "size")]
    pub message_file: Option<PathBuf>,
    /// Recipients per message.
    #[arg(long, default_value_t = 1)]
    pub recipients: usize,
    /// AUTH PLAIN credentials, USER:PASS.
    #[arg(long)]
    pub auth: Option<String>,
    /// Upgrade each connection with STARTTLS (any certificate is accepted).
    #[arg(long, conflicts_with = "tls")]
    pub starttls: bool,
    /// Implicit TLS from the first byte (port 465 style; any certificate is
    /// accepted).
    #[arg(long)]
    pub tls: bool,
    /// Send MAIL, RCPT and DATA in one write (RFC 2920).
    #[arg(long)]
    pub pipelining: bool,
    /// Messages per connection before reconnecting (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub per_connection: u64,
    /// Stop after this many seconds even if messages remain.
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// Domain of the generated recipients.
    #[arg(long, default_value = "sink.test")]
    pub to_domain: String,
    /// Spread the recipients round-robin over this many domains,
    /// `d0.<to-domain>` to `d<N-1>.<to-domain>` (1: `<to-domain>` itself),
    /// so that an MTA relaying them keeps one queue per destination domain
    /// as it would in production.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub domains: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub messages_ok: u64,
    pub messages_failed: u64,
    pub elapsed_secs: f64,
    pub messages_per_sec: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// Replies other than the expected ones, by code (0: connection error).
    pub errors_by_code: BTreeMap<u16, u64>,
}

#[derive(Default)]
struct Shared {
    latencies_us: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<u16, u64>>,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl SmtpBenchArgs {
    /// The recipient domains, in round-robin order (see `--domains`).
    pub fn destination_domains(&self) -> Vec<String> {
        destination_domains(&self.to_domain, self.domains)
    }
}

/// `to_domain` alone for one domain, else `d0.<to_domain>` to
/// `d<n-1>.<to_domain>`: subdomains, so one DNS zone and one transport-map
/// entry for the parent cover them all.
pub fn destination_domains(to_domain: &str, n: u32) -> Vec<String> {
    if n <= 1 {
        return vec![to_domain.to_string()];
    }
    let to_domain = to_domain.trim_end_matches('.');
    (0..n).map(|i| format!("d{i}.{to_domain}")).collect()
}

/// The message to send, dot-stuffed and terminated by `.CRLF`: the file
/// given by `--message-file`, or generated text of `--size` octets.
pub fn load_body(args: &SmtpBenchArgs) -> std::io::Result<Vec<u8>> {
    let raw = match &args.message_file {
        Some(path) => {
            let raw = std::fs::read(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if raw.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: empty message file", path.display()),
                ));
            }
            crlf(&raw)
        }
        None => build_message(args.size),
    };
    Ok(dot_stuff(&raw))
}

/// Every line ending (LF, CR or CRLF) as CRLF.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Runs the load as `args` say, with a progress bar on stderr when it is a
/// terminal (and not `--json`). Fails only when the message file cannot be
/// read.
pub async fn run(args: SmtpBenchArgs) -> std::io::Result<Summary> {
    let bar = progress::wanted(args.json);
    run_with(args, bar).await
}

/// [`run`], with the progress bar on or off.
pub async fn run_with(args: SmtpBenchArgs, bar: bool) -> std::io::Result<Summary> {
    let body = Arc::new(load_body(&args)?);
    let domains = Arc::new(args.destination_domains());
    let tls = (args.tls || args.starttls).then(|| rackwave_smtp_proto::tls::connectors().any);
    let next = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let progress = {
        let shared = shared.clone();
        Progress::start(bar, args.messages, "submitted", move || {
            let failed = shared.failed.load(Ordering::Relaxed);
            (
                shared.ok.load(Ordering::Relaxed),
                progress::failures(failed),
            )
        })
    };
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let args = args.clone();
        let body = body.clone();
        let domains = domains.clone();
        let next = next.clone();
        let shared = shared.clone();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            while next.load(Ordering::Relaxed) < args.messages && Instant::now() < deadline {
                let conn = Worker {
                    args: &args,
                    worker,
                    body: &body,
                    domains: &domains,
                    next: &next,
                    shared: &shared,
                    deadline,
                    tls: tls.as_ref(),
                };
                // The whole connection, greeting included, is bounded by
                // the run's deadline (plus a grace for the message in
                // flight), so a silent server cannot hang the run.
                let grace = deadline + Duration::from_secs(30);
                let outcome = tokio::time::timeout_at(grace.into(), conn.connection()).await;
                let err = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(code)) => Some(code),
                    Err(_) => Some(0),
                };
                if let Some(code) = err {
                    *shared.errors.lock().unwrap().entry(code).or_default() += 1;
                    // Do not spin on a server that refuses connections.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let lat = latency_ms(std::mem::take(&mut *shared.latencies_us.lock().unwrap()));
    let ok = shared.ok.load(Ordering::Relaxed);
    let errors_by_code = std::mem::take(&mut *shared.errors.lock().unwrap());
    Ok(Summary {
        messages_ok: ok,
        messages_failed: shared.failed.load(Ordering::Relaxed),
        elapsed_secs: elapsed,
        messages_per_sec: ok as f64 / elapsed.max(1e-9),
        latency_ms_p50: lat.p50,
        latency_ms_p90: lat.p90,
        latency_ms_p99: lat.p99,
        latency_ms_max: lat.max,
        errors_by_code,
    })
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The text the generated messages are made of: one 76-column line.
pub(crate) const FILLER_LINE: &str =
    "The quick brown fox jumps over the lazy dog, again and again and again.....\r\n";

/// A message of about `size` octets with realistic headers and 76-column
/// lines.
pub fn build_message(size: usize) -> Vec<u8> {
    let mut m = b"From: Bench <bench@rackwave.test>\r\nTo: <dest@sink.test>\r\nSubject: rackwave bench\r\nDate: Sun, 7 Jun 2026 09:39:00 +0000\r\nMessage-ID: <bench@rackwave.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    while m.len() < size {
        m.extend_from_slice(FILLER_LINE.as_bytes());
    }
    m
}

/// A TCP or TLS stream.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    io: BufReader<Box<dyn Stream>>,
}

impl Conn {
    fn new(io: Box<dyn Stream>) -> Conn {
        Conn {
            io: BufReader::new(io),
        }
    }

    async fn reply(&mut self) -> Result<u16, u16> {
        read_reply(&mut self.io)
            .await
            .map(|r| r.code)
            .map_err(|_| 0u16)
    }

    async fn expect(&mut self, want: u16) -> Result<(), u16> {
        match self.reply().await? {
            c if c == want => Ok(()),
            c => Err(c),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), u16> {
        let io = self.io.get_mut();
        io.write_all(bytes).await.map_err(|_| 0u16)?;
        // A TLS stream buffers records until flushed; TCP flushes as a no-op.
        io.flush().await.map_err(|_| 0u16)
    }

    /// Wraps the stream in TLS (after STARTTLS, or at once for implicit
    /// TLS). Anything the server sent ahead is discarded, as RFC 3207 §4.2
    /// requires.
    async fn tls(self, connector: &TlsConnector, peer: SocketAddr) -> Result<Conn, u16> {
        let plain = self.io.into_inner();
        let name = ServerName::from(peer.ip());
        let tls = connector.connect(name, plain).await.map_err(|_| 0u16)?;
        Ok(Conn::new(Box::new(tls)))
    }
}

/// One connection's worth of work.
struct Worker<'a> {
    args: &'a SmtpBenchArgs,
    worker: usize,
    body: &'a [u8],
    domains: &'a [String],
    next: &'a AtomicU64,
    shared: &'a Shared,
    deadline: Instant,
    tls: Option<&'a TlsConnector>,
}

impl Worker<'_> {
    /// Greet, secure, authenticate, then send messages until the run or the
    /// per-connection budget is over.
    async fn connection(&self) -> Result<(), u16> {
        let args = self.args;
        let tcp = TcpStream::connect(args.target).await.map_err(|_| 0u16)?;
        let _ = tcp.set_nodelay(true);
        let mut c = Conn::new(Box::new(tcp));
        if let (true, Some(connector)) = (args.tls, self.tls) {
            c = c.tls(connector, args.target).await?;
        }
        c.expect(220).await?;
        c.write(b"EHLO bench.rackwave.test\r\n").await?;
        c.expect(250).await?;
        if let (true, Some(connector)) = (args.starttls, self.tls) {
            c.write(b"STARTTLS\r\n").await?;
            c.expect(220).await?;
            c = c.tls(connector, args.target).await?;
            c.write(b"EHLO bench.rackwave.test\r\n").await?;
            c.expect(250).await?;
        }
        if let Some(auth) = &args.auth {
            let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
            c.write(format!("AUTH PLAIN {token}\r\n").as_bytes())
                .await?;
            c.expect(235).await?;
        }
        let mut sent_here = 0u64;
        let mut data = Vec::with_capacity(self.body.len() + 64);
        loop {
            if args.per_connection > 0 && sent_here >= args.per_connection {
                break;
            }
            if Instant::now() >= self.deadline {
                break;
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            if n >= args.messages {
                break;
            }
            let t0 = Instant::now();
            let mut envelope = String::from("MAIL FROM:<bench@rackwave.test>\r\n");
            let per_message = args.recipients.max(1) as u64;
            for r in 0..per_message {
                // Round-robin over recipients, not messages, so that several
                // recipients per message spread too.
                let domain =
                    &self.domains[((n * per_message + r) % self.domains.len() as u64) as usize];
                envelope.push_str(&format!("RCPT TO:<u{}-{n}-{r}@{domain}>\r\n", self.worker));
            }
            let outcome: Result<(), u16> = async {
                if args.pipelining {
                    envelope.push_str("DATA\r\n");
                    c.write(envelope.as_bytes()).await?;
                    c.expect(250).await?;
                    for _ in 0..args.recipients.max(1) {
                        c.expect(250).await?;
                    }
                    c.expect(354).await?;
                } else {
                    let mut lines = envelope.split_inclusive("\r\n");
                    c.write(lines.next().unwrap_or_default().as_bytes()).await?;
                    c.expect(250).await?;
                    for line in lines {
                        c.write(line.as_bytes()).await?;
                        c.expect(250).await?;
                    }
                    c.write(b"DATA\r\n").await?;
                    c.expect(354).await?;
                }
                // Stamped with the submission time, so a `rackwave bench
                // sink` behind the server under test can measure
                // end-to-end latency. The body ends with `.CRLF` already.
                data.clear();
                data.extend_from_slice(
                    format!("{}: {}\r\n", super::sink::SENT_HEADER, unix_micros()).as_bytes(),
                );
                data.extend_from_slice(self.body);
                c.write(&data).await?;
                c.expect(250).await
            }
            .await;
            match outcome {
                Ok(()) => {
                    self.shared.ok.fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .latencies_us
                        .lock()
                        .unwrap()
                        .push(t0.elapsed().as_micros() as u64);
                    sent_here += 1;
                }
                Err(code) => {
                    self.shared.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(code);
                }
            }
        }
        let _ = c.write(b"QUIT\r\n").await;
        let _ = c.reply().await;
        Ok(())
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "messages: {} ok, {} failed in {:.2} s",
            self.messages_ok, self.messages_failed, self.elapsed_secs
        )?;
        writeln!(f, "rate:     {:.0} messages/s", self.messages_per_sec)?;
        writeln!(
            f,
            "latency:  p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (MAIL to final reply)",
            self.latency_ms_p50, self.latency_ms_p90, self.latency_ms_p99, self.latency_ms_max
        )?;
        if !self.errors_by_code.is_empty() {
            let e: Vec<String> = self
                .errors_by_code
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            writeln!(f, "errors:   {} (0 = connection error)", e.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::SmtpBenchArgs,
    }

    fn args(extra: &[&str]) -> super::SmtpBenchArgs {
        let mut argv = vec!["bench", "--target", "127.0.0.1:25"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).args
    }

    #[test]
    fn message_file_is_made_crlf_and_dot_stuffed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.eml");
        std::fs::write(&path, "Subject: x\n\n.hidden\r\nlast").unwrap();
        let body = super::load_body(&args(&["--message-file", path.to_str().unwrap()])).unwrap();
        assert_eq!(body, b"Subject: x\r\n\r\n..hidden\r\nlast\r\n.\r\n");
    }

    #[test]
    fn generated_message_has_the_size_and_the_terminator() {
        let body = super::load_body(&args(&["--size", "4096"])).unwrap();
        assert!(body.len() >= 4096 && body.len() < 4096 + 100);
        assert!(body.ends_with(b"\r\n.\r\n"));
    }

    #[test]
    fn one_domain_is_the_recipient_domain_itself_and_more_are_subdomains() {
        assert_eq!(args(&[]).destination_domains(), ["sink.test"]);
        assert_eq!(
            args(&["--domains", "3", "--to-domain", "example.test."]).destination_domains(),
            ["d0.example.test", "d1.example.test", "d2.example.test"]
        );
        assert!(
            Cli::try_parse_from(["bench", "--target", "127.0.0.1:25", "--domains", "0"]).is_err()
        );
    }

    #[test]
    fn size_and_message_file_conflict_and_tls_modes_exclude_each_other() {
        assert!(Cli::try_parse_from([
            "bench",
            "--target",
            "127.0.0.1:25",
            "--size",
            "10",
            "--message-file",
            "x"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["bench", "--target", "127.0.0.1:25", "--tls", "--starttls"])
                .is_err()
        );
    }
}
