//! An SMTP sink: a real, fast SMTP server that accepts (or, when scripted,
//! refuses) mail and throws it away or keeps it for inspection.
//!
//! # Why it exists
//!
//! Two users need a remote SMTP server that Rackwave does not control:
//!
//! - `rackwave bench sink`, a load-test target in the spirit of Postfix's
//!   `smtp-sink`: it takes thousands of messages per second, counts them
//!   with atomics and stores nothing (`keep_messages: false`);
//! - the delivery-engine tests, where several sinks on different
//!   `127.0.0.x` addresses play the remote MX hosts of a test DNS zone.
//!   There the sink keeps every accepted message ([`Sink::received`]) and
//!   replies as a script says, so a test can make the first MX defer, the
//!   second one hang, a recipient bounce, and so on.
//!
//! The sink is real SMTP over real sockets (ESMTP, PIPELINING, SIZE,
//! 8BITMIME, SMTPUTF8, STARTTLS with a self-signed certificate generated at
//! start, optionally CHUNKING/BDAT), so the client under test is exercised
//! exactly as it would be against a remote MTA. It is deliberately strict
//! where a client bug would otherwise go unnoticed: commands out of order
//! get `503`, MAIL parameters for extensions that were not advertised get
//! `555`, a SIZE over the advertised limit gets `552`.
//!
//! # Scripting
//!
//! Every reply the sink gives at a [`Step`] of the session (greeting, EHLO,
//! MAIL, RCPT, DATA, end of data, STARTTLS) can be replaced by an
//! [`Action`]: a reply of your choosing ([`Action::Reply`], which may be
//! multi-line), a reply after a delay ([`Action::Delay`]), no reply at all
//! while the connection stays open ([`Action::Silent`], for timeouts), or
//! dropping the connection ([`Action::Close`]).
//!
//! A [`Script`] is an ordered list of rules. At each step the sink takes the
//! first rule for that step whose conditions hold and that has not used up
//! its firings; when no rule applies the default reply is given. Conditions
//! are set with builder methods that apply to the rule added last:
//!
//! - [`Script::on_connection`]: only on the N-th connection (1-based, in
//!   accept order);
//! - [`Script::on_message`]: only for the N-th transaction of the sink
//!   (transactions are numbered by MAIL command, 1-based, across all
//!   connections, whether or not the MAIL was accepted);
//! - [`Script::on_message_in_connection`]: only for the N-th transaction of
//!   its connection;
//! - [`Script::with_rcpt_containing`]: at RCPT, only when the recipient
//!   contains the text (ASCII case-insensitive); at DATA and end of data,
//!   when any accepted recipient does;
//! - [`Script::times`]: fire at most N times in all (counted atomically, so
//!   exact even with concurrent connections);
//! - [`Script::share`]: fire with this probability (for benchmarks).
//!
//! ```
//! use rackwave_bench::sink::{Action, Script, Step};
//! let script = Script::default()
//!     // The first connection is refused at the greeting, later ones work.
//!     .on(Step::Greeting, Action::reply("421 4.7.0 Try again later"))
//!     .on_connection(1)
//!     // One message is deferred once at end of data.
//!     .on(Step::EndOfData, Action::reply("451 4.3.0 Try later"))
//!     .times(1)
//!     // Recipients containing "bad" do not exist.
//!     .on_rcpt_containing("bad", Action::reply("550 5.1.1 User unknown"))
//!     // 10% of all messages are deferred (benchmarks).
//!     .fail_share(Step::EndOfData, 0.1, "451 4.3.0 Random deferral");
//! # let _ = script;
//! ```
//!
//! Reply semantics follow SMTP: a `421` reply at any step closes the
//! connection after it is sent; a non-`220` greeting makes every later
//! command but QUIT get `503`; a refused MAIL starts no transaction, a
//! refused RCPT adds no recipient, a refused DATA reads no message, and a
//! message counts as received only when end of data (or `BDAT … LAST`) got
//! a `2xx`.
//!
//! Replies are written in batches: the sink answers every command already
//! buffered from a pipelining client and flushes once when it has to wait
//! for more input, which keeps it fast and answers pipelined commands in
//! order.
//!
//! For BDAT (only with `chunking`), intermediate chunks get
//! `250 2.0.0 <n> octets received` and are not scriptable; the `LAST`
//! chunk is answered as [`Step::EndOfData`]. [`Step::Data`] applies to the
//! DATA command only.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rackwave_smtp_proto::command::{self, Body as BodyParam, Command, MailParams};
use rackwave_smtp_proto::data::{data_line, DataLine};
use rackwave_smtp_proto::ehlo::Extensions;
use rackwave_smtp_proto::io::{read_line_into, LineEnd, Stream};
use rackwave_smtp_proto::RemoteReply;
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

type SmtpStream = Stream<tokio_rustls::server::TlsStream<TcpStream>>;

/// Longest command line accepted (longer ones get `500` and are skipped).
const COMMAND_LINE_CAP: usize = 16 * 1024;
/// Longest message line accepted (a longer one fails the message with `554`).
const DATA_LINE_CAP: usize = 1024 * 1024;

/// Configuration of a [`Sink`].
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Where to listen; port 0 picks a free port (see [`Sink::addr`]).
    pub listen: SocketAddr,
    /// Name in the greeting, the EHLO reply and the TLS certificate.
    pub hostname: String,
    /// Offer STARTTLS with a self-signed certificate generated at start.
    pub starttls: bool,
    /// Advertise PIPELINING (pipelined commands are handled either way).
    pub pipelining: bool,
    /// Advertise `SIZE n` and enforce it (MAIL SIZE= and the data itself).
    pub size: Option<u64>,
    /// Advertise 8BITMIME (else `BODY=8BITMIME` gets `555`).
    pub eight_bit: bool,
    /// Advertise SMTPUTF8 (else the `SMTPUTF8` parameter gets `555`).
    pub smtputf8: bool,
    /// Advertise CHUNKING and accept BDAT.
    pub chunking: bool,
    /// Scripted replies; the default script accepts everything.
    pub script: Script,
    /// Keep every accepted message for [`Sink::received`] (tests), or only
    /// count them (benchmarks).
    pub keep_messages: bool,
    /// A session idle this long gets `421` and is closed.
    pub idle_timeout: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hostname: "sink.test".into(),
            starttls: false,
            pipelining: true,
            size: None,
            eight_bit: true,
            smtputf8: true,
            chunking: false,
            script: Script::default(),
            keep_messages: true,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl SinkConfig {
    /// The defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        SinkConfig {
            listen,
            ..SinkConfig::default()
        }
    }
}

/// A point of the SMTP session where the sink replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The greeting sent on connect.
    Greeting,
    /// The reply to EHLO or HELO.
    Ehlo,
    /// The reply to MAIL FROM.
    Mail,
    /// The reply to RCPT TO.
    Rcpt,
    /// The reply to the DATA command (`354` by default).
    Data,
    /// The reply after the message: end of data, or `BDAT … LAST`.
    EndOfData,
    /// The reply to STARTTLS (`220` by default, then the TLS handshake).
    StartTls,
}

/// What the sink does at a step instead of its default reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this reply, e.g. `"421 4.7.0 Try again later"`. Lines may be
    /// separated by `\r\n` (or `\n`) for a multi-line reply; the final CRLF
    /// is added. The reply code decides what happens next (see the module
    /// documentation).
    Reply(String),
    /// Never answer and keep the connection open (until the client closes
    /// it or the sink shuts down): for client timeouts.
    Silent,
    /// Drop the connection without a reply.
    Close,
    /// Wait, then send the reply: a slow server.
    Delay(Duration, String),
}

impl Action {
    /// `Action::Reply(text.into())`.
    pub fn reply(text: impl Into<String>) -> Action {
        Action::Reply(text.into())
    }
}

#[derive(Debug, Clone)]
struct Rule {
    step: Step,
    action: Action,
    connection: Option<u64>,
    message: Option<u64>,
    message_in_connection: Option<u64>,
    rcpt_contains: Option<String>,
    times: Option<u64>,
    share: Option<f64>,
}

/// Scripted replies: rules tried in order, the first applicable one wins.
/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Script {
    rules: Vec<Rule>,
}

impl Script {
    /// Adds a rule: at `step`, do `action`. Conditions set by the
    /// following builder calls apply to this rule.
    pub fn on(mut self, step: Step, action: Action) -> Self {
        self.rules.push(Rule {
            step,
            action,
            connection: None,
            message: None,
            message_in_connection: None,
            rcpt_contains: None,
            times: None,
            share: None,
        });
        self
    }

    /// Adds a rule for RCPT: recipients containing `needle` (ASCII
    /// case-insensitive) get `action`.
    pub fn on_rcpt_containing(self, needle: &str, action: Action) -> Self {
        self.on(Step::Rcpt, action).with_rcpt_containing(needle)
    }

    /// Adds a rule replying `reply` at `step` with probability `share`
    /// (0.0 to 1.0): random failures for benchmarks.
    pub fn fail_share(self, step: Step, share: f64, reply: &str) -> Self {
        self.on(step, Action::reply(reply)).share(share)
    }

    fn last(&mut self) -> &mut Rule {
        self.rules
            .last_mut()
            .expect("Script: add a rule with on() before setting its conditions")
    }

    /// The last rule fires at most `n` times in all.
    pub fn times(mut self, n: u64) -> Self {
        self.last().times = Some(n);
        self
    }

    /// The last rule applies only on the `n`-th connection (1-based).
    pub fn on_connection(mut self, n: u64) -> Self {
        self.last().connection = Some(n);
        self
    }

    /// The last rule applies only to the `n`-th transaction of the sink
    /// (numbered by MAIL command, 1-based, across connections).
    pub fn on_message(mut self, n: u64) -> Self {
        self.last().message = Some(n);
        self
    }

    /// The last rule applies only to the `n`-th transaction (1-based) of
    /// each connection.
    pub fn on_message_in_connection(mut self, n: u64) -> Self {
        self.last().message_in_connection = Some(n);
        self
    }

    /// The last rule applies only when the recipient (at RCPT) or any
    /// accepted recipient (at DATA and end of data) contains `needle`,
    /// ASCII case-insensitive. It never applies at other steps.
    pub fn with_rcpt_containing(mut self, needle: &str) -> Self {
        self.last().rcpt_contains = Some(needle.to_ascii_lowercase());
        self
    }

    /// The last rule fires with probability `p` each time it could.
    pub fn share(mut self, p: f64) -> Self {
        self.last().share = Some(p.clamp(0.0, 1.0));
        self
    }

    /// Whether the script has no rules (the sink accepts everything).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A message the sink accepted (kept only with `keep_messages`).
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The reverse path, without angle brackets (empty for `<>`).
    pub mail_from: String,
    /// MAIL parameters as sent.
    pub mail_params: MailParams,
    /// Accepted recipients, without angle brackets, in order.
    pub rcpt_to: Vec<String>,
    /// The message, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// Whether the session was in TLS.
    pub tls: bool,
    /// The connection number (1-based, in accept order).
    pub connection: u64,
    /// The transaction number (1-based across the sink; the `n` of
    /// `queued as <n>`).
    pub number: u64,
    /// The EHLO (or HELO) argument.
    pub ehlo: String,
    /// When end of data was accepted.
    pub at: Instant,
}

/// Timing of the messages that carried the bench header.
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    /// The longest time between two consecutive arrivals (zero until the
    /// second): how long the MTA under test stalled at worst, which a rate
    /// averaged over the run hides.
    pub max_gap: Duration,
    pub latencies_us: Vec<u64>,
}

/// Counters, for `rackwave bench sink` output.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SinkStats {
    pub messages: u64,
    pub recipients: u64,
    pub bytes: u64,
    pub connections: u64,
    pub max_concurrent_connections: u64,
    pub max_messages_per_connection: u64,
}

struct Shared {
    config: SinkConfig,
    tls: Option<TlsAcceptor>,
    /// Firings per rule, parallel to `config.script.rules`.
    fired: Vec<AtomicU64>,
    ehlo_plain: String,
    ehlo_tls: String,
    connections: AtomicU64,
    active: AtomicU64,
    peak: AtomicU64,
    transactions: AtomicU64,
    messages: AtomicU64,
    recipients: AtomicU64,
    bytes: AtomicU64,
    max_per_connection: AtomicU64,
    received: Mutex<Vec<ReceivedMessage>>,
    arrivals: Mutex<Arrivals>,
}

/// A running sink. Dropping it shuts it down.
pub struct Sink {
    /// The bound address (the real port when `listen` had port 0).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl Sink {
    /// Binds `config.listen`, generates the TLS certificate if STARTTLS is
    /// offered, and serves in background tasks.
    pub async fn start(config: SinkConfig) -> io::Result<Sink> {
        let tls = if config.starttls {
            Some(
                rackwave_smtp_proto::tls::self_signed_acceptor(&config.hostname)
                    .map_err(io::Error::other)?,
            )
        } else {
            None
        };
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let fired = config
            .script
            .rules
            .iter()
            .map(|_| AtomicU64::new(0))
            .collect();
        let shared = Arc::new(Shared {
            ehlo_plain: ehlo_reply(&config, false),
            ehlo_tls: ehlo_reply(&config, true),
            config,
            tls,
            fired,
            connections: AtomicU64::new(0),
            active: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            recipients: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            max_per_connection: AtomicU64::new(0),
            received: Mutex::new(Vec::new()),
            arrivals: Mutex::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        tracing::debug!(%addr, "SMTP sink listening");
        Ok(Sink {
            addr,
            shared,
            accept,
        })
    }

    /// Accepted messages, in order of acceptance (empty unless
    /// `keep_messages`).
    pub fn received(&self) -> Vec<ReceivedMessage> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Messages accepted (a `2xx` to end of data).
    pub fn messages(&self) -> u64 {
        self.shared.messages.load(Ordering::Acquire)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// The most messages accepted on one connection.
    pub fn max_messages_per_connection(&self) -> u64 {
        self.shared.max_per_connection.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn active_connections(&self) -> u64 {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// The most connections open at once.
    pub fn max_concurrent_connections(&self) -> u64 {
        self.shared.peak.load(Ordering::Relaxed)
    }

    /// Arrivals of messages stamped by `rackwave bench smtp`: first and
    /// last arrival and each message's submission-to-arrival latency.
    pub fn arrivals(&self) -> Arrivals {
        self.shared.arrivals.lock().unwrap().clone()
    }

    /// All counters at once.
    pub fn stats(&self) -> SinkStats {
        let s = &self.shared;
        SinkStats {
            messages: s.messages.load(Ordering::Acquire),
            recipients: s.recipients.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            connections: s.connections.load(Ordering::Relaxed),
            max_concurrent_connections: s.peak.load(Ordering::Relaxed),
            max_messages_per_connection: s.max_per_connection.load(Ordering::Relaxed),
        }
    }

    /// Waits until at least `n` messages were accepted; false on timeout.
    pub async fn wait_for_messages(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.messages() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops accepting and closes every session (abruptly: no reply).
    pub fn shutdown(&self) {
        self.accept.abort();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Starts one sink per config, all on one port, on different addresses
/// (e.g. `127.0.0.21` and `127.0.0.22`): DNS gives a client only the
/// addresses of the MX hosts, and it connects to all of them on the same
/// SMTP port, so the sinks playing them must share it. The port of the
/// first config is used for all if it is not 0; otherwise a free port is
/// picked, retrying when it is taken on one of the other addresses.
pub async fn start_on_same_port(configs: Vec<SinkConfig>) -> io::Result<Vec<Sink>> {
    let Some(first) = configs.first() else {
        return Ok(Vec::new());
    };
    let fixed = first.listen.port();
    let mut last_err = None;
    for _ in 0..if fixed == 0 { 50 } else { 1 } {
        let mut sinks = Vec::with_capacity(configs.len());
        let mut port = fixed;
        let mut failed = None;
        for config in &configs {
            let mut config = config.clone();
            config.listen.set_port(port);
            match Sink::start(config).await {
                Ok(sink) => {
                    port = sink.addr.port();
                    sinks.push(sink);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => return Ok(sinks),
            Some(e) if fixed == 0 && e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
            Some(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
}

/// The EHLO reply, as configured, before or after STARTTLS.
fn ehlo_reply(config: &SinkConfig, tls: bool) -> String {
    let extensions = Extensions {
        pipelining: config.pipelining,
        size: config.size,
        eight_bit_mime: config.eight_bit,
        smtputf8: config.smtputf8,
        enhanced_status_codes: true,
        chunking: config.chunking,
        starttls: config.starttls && !tls,
        auth: Vec::new(),
        help: false,
    };
    extensions.reply(config.hostname.clone()).to_string()
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Sessions live in this set, so aborting this task (shutdown, drop)
    // drops the listener and aborts every session.
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let number = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    let active = shared.active.fetch_add(1, Ordering::Relaxed) + 1;
                    shared.peak.fetch_max(active, Ordering::Relaxed);
                    // Created here so that an abort before the first poll
                    // still decrements the count.
                    let guard = ActiveGuard(shared.clone());
                    let shared = shared.clone();
                    sessions.spawn(async move {
                        let _guard = guard;
                        Session::new(shared, tcp, number).run().await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %e, "SMTP sink accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// Decrements the active-connection count when a session ends (or is
/// aborted).
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// After a reply: go on (with the reply code) or end the session.
enum Flow {
    Go(u16),
    Stop,
}

struct Transaction {
    number: u64,
    mail_from: String,
    params: MailParams,
    rcpts: Vec<String>,
    /// BDAT chunks so far (`Some` once BDAT was used).
    chunks: Option<Body>,
}

#[derive(Default)]
struct Body {
    data: Vec<u8>,
    size: u64,
    /// From a `X-Rackwave-Bench-Sent:` header: when the load generator
    /// submitted the message (µs since the epoch).
    sent_us: Option<u64>,
    in_header: bool,
}

/// The header `rackwave bench smtp` stamps into every message, so the sink
/// can tell how long the message took from submission to arrival.
pub const SENT_HEADER: &str = "X-Rackwave-Bench-Sent";

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Body {
    fn new() -> Body {
        Body {
            in_header: true,
            ..Body::default()
        }
    }

    /// Looks for the bench header while the header section lasts.
    fn scan_header(&mut self, line: &[u8]) {
        if !self.in_header {
            return;
        }
        if line == b"\r\n" || line == b"\n" {
            self.in_header = false;
            return;
        }
        let name = SENT_HEADER.as_bytes();
        if line.len() > name.len() + 1
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()] == b':'
        {
            self.sent_us = std::str::from_utf8(&line[name.len() + 1..])
                .ok()
                .and_then(|v| v.trim().parse().ok());
        }
    }
}

/// The conditions a rule is checked against.
struct Ctx<'a> {
    message: Option<u64>,
    message_in_connection: Option<u64>,
    rcpt: Option<&'a str>,
    rcpts: &'a [String],
}

impl Ctx<'static> {
    fn none() -> Self {
        Ctx {
            message: None,
            message_in_connection: None,
            rcpt: None,
            rcpts: &[],
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    io: BufReader<SmtpStream>,
    out: Vec<u8>,
    connection: u64,
    tls: bool,
    ehlo: String,
    refuse_all: bool,
    txns_here: u64,
    accepted_here: u64,
    txn: Option<Transaction>,
}

impl Session {
    fn new(shared: Arc<Shared>, tcp: TcpStream, connection: u64) -> Self {
        Session {
            shared,
            io: BufReader::with_capacity(16 * 1024, SmtpStream::Plain(tcp)),
            out: Vec::with_capacity(1024),
            connection,
            tls: false,
            ehlo: String::new(),
            refuse_all: false,
            txns_here: 0,
            accepted_here: 0,
            txn: None,
        }
    }

    async fn run(mut self) {
        match self.serve().await {
            // Sends what is queued, e.g. a final 421.
            Ok(()) => {
                let _ = self.flush().await;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                let _ = self.reply("421 4.4.2 Error: timeout exceeded").await;
            }
            Err(e) => {
                tracing::trace!(connection = self.connection, error = %e, "sink session ended");
            }
        }
        let _ = self.io.get_mut().shutdown().await;
    }

    /// The session; returns when it is over.
    async fn serve(&mut self) -> io::Result<()> {
        let greeting = format!("220 {} ESMTP Rackwave sink", self.shared.config.hostname);
        match self.step(Step::Greeting, &Ctx::none(), &greeting).await? {
            Flow::Stop => return Ok(()),
            Flow::Go(220) => {}
            Flow::Go(_) => self.refuse_all = true,
        }
        let mut line = Vec::with_capacity(512);
        loop {
            match self.read_line(&mut line, COMMAND_LINE_CAP).await? {
                LineEnd::Eof => return Ok(()),
                LineEnd::TooLong => {
                    self.push("500 5.5.2 Error: line too long");
                    continue;
                }
                LineEnd::Complete => {}
            }
            let parsed = command::parse(&line);
            if self.refuse_all && parsed != Ok(Command::Quit) {
                self.push("503 5.5.1 Error: no service");
                continue;
            }
            let cmd = match parsed {
                Ok(cmd) => cmd,
                Err(e) => {
                    let reply = e.reply();
                    self.push(&reply.to_string());
                    continue;
                }
            };
            let flow = match cmd {
                Command::Ehlo(name) => self.ehlo(name, true).await?,
                Command::Helo(name) => self.ehlo(name, false).await?,
                Command::Mail { from, params } => self.mail(from, params).await?,
                Command::Rcpt { to } => self.rcpt(to).await?,
                Command::Data => self.data().await?,
                Command::Bdat { size, last } => self.bdat(size, last).await?,
                Command::StartTls => self.starttls().await?,
                Command::Rset => {
                    self.txn = None;
                    self.push("250 2.0.0 Ok");
                    Flow::Go(250)
                }
                Command::Noop => {
                    self.push("250 2.0.0 Ok");
                    Flow::Go(250)
                }
                Command::Vrfy => {
                    self.push("252 2.0.0 Cannot VRFY user");
                    Flow::Go(252)
                }
                Command::Help => {
                    self.push("214 2.0.0 See RFC 5321");
                    Flow::Go(214)
                }
                Command::Quit => {
                    self.reply("221 2.0.0 Bye").await?;
                    Flow::Stop
                }
                Command::Expn | Command::Auth { .. } => {
                    self.push("502 5.5.1 Error: command not implemented");
                    Flow::Go(502)
                }
            };
            if let Flow::Stop = flow {
                return Ok(());
            }
        }
    }

    async fn ehlo(&mut self, name: String, esmtp: bool) -> io::Result<Flow> {
        self.txn = None;
        let default = if !esmtp {
            format!("250 {}", self.shared.config.hostname)
        } else if self.tls {
            self.shared.ehlo_tls.clone()
        } else {
            self.shared.ehlo_plain.clone()
        };
        let flow = self.step(Step::Ehlo, &Ctx::none(), &default).await?;
        if let Flow::Go(250) = flow {
            self.ehlo = name;
        }
        Ok(flow)
    }

    async fn mail(&mut self, from: String, params: MailParams) -> io::Result<Flow> {
        if self.ehlo.is_empty() {
            self.push("503 5.5.1 Error: send HELO/EHLO first");
            return Ok(Flow::Go(503));
        }
        if self.txn.is_some() {
            self.push("503 5.5.1 Error: nested MAIL command");
            return Ok(Flow::Go(503));
        }
        // Parameters of extensions that were not advertised are refused:
        // a client bug must not go unnoticed.
        let config = &self.shared.config;
        let refusal = if params
            .size
            .is_some_and(|n| config.size.is_some_and(|max| n > max))
        {
            Some("552 5.3.4 Message size exceeds fixed limit")
        } else if params.body == BodyParam::BinaryMime
            || (params.body == BodyParam::EightBitMime && !config.eight_bit)
        {
            Some("555 5.5.4 Unsupported option: BODY")
        } else if params.smtputf8 && !config.smtputf8 {
            Some("555 5.5.4 Unsupported option: SMTPUTF8")
        } else {
            None
        };
        if let Some(r) = refusal {
            self.push(r);
            return Ok(Flow::Go(reply_code(r)));
        }
        let number = self.shared.transactions.fetch_add(1, Ordering::Relaxed) + 1;
        self.txns_here += 1;
        let ctx = Ctx {
            message: Some(number),
            message_in_connection: Some(self.txns_here),
            rcpt: None,
            rcpts: &[],
        };
        let flow = self.step(Step::Mail, &ctx, "250 2.1.0 Ok").await?;
        if let Flow::Go(200..=299) = flow {
            self.txn = Some(Transaction {
                number,
                mail_from: from,
                params,
                rcpts: Vec::new(),
                chunks: None,
            });
        }
        Ok(flow)
    }

    async fn rcpt(&mut self, to: String) -> io::Result<Flow> {
        let Some(txn) = &self.txn else {
            self.push("503 5.5.1 Error: need MAIL command");
            return Ok(Flow::Go(503));
        };
        let ctx = Ctx {
            message: Some(txn.number),
            message_in_connection: Some(self.txns_here),
            rcpt: Some(&to),
            rcpts: &[],
        };
        let flow = self.step(Step::Rcpt, &ctx, "250 2.1.5 Ok").await?;
        if let (Flow::Go(200..=299), Some(txn)) = (&flow, &mut self.txn) {
            txn.rcpts.push(to);
        }
        Ok(flow)
    }

    /// Checks that a transaction with recipients is open; else replies.
    fn ready_for_data(&mut self) -> Option<u16> {
        match &self.txn {
            None => {
                self.push("503 5.5.1 Error: need MAIL command");
                Some(503)
            }
            Some(t) if t.rcpts.is_empty() => {
                self.push("554 5.5.1 Error: no valid recipients");
                Some(554)
            }
            Some(_) => None,
        }
    }

    async fn data(&mut self) -> io::Result<Flow> {
        if let Some(code) = self.ready_for_data() {
            return Ok(Flow::Go(code));
        }
        let txn = self.txn.as_ref().expect("checked");
        if txn.chunks.is_some() {
            self.push("503 5.5.1 Error: DATA after BDAT");
            return Ok(Flow::Go(503));
        }
        let number = txn.number;
        let rcpts = txn.rcpts.clone();
        let ctx = Ctx {
            message: Some(number),
            message_in_connection: Some(self.txns_here),
            rcpt: None,
            rcpts: &rcpts,
        };
        let flow = self
            .step(Step::Data, &ctx, "354 End data with <CR><LF>.<CR><LF>")
            .await?;
        if !matches!(flow, Flow::Go(354)) {
            return Ok(flow);
        }
        // The message.
        let keep = self.shared.config.keep_messages;
        let limit = self.shared.config.size;
        let mut body = Body::new();
        let mut too_long = false;
        let mut line = Vec::with_capacity(1024);
        loop {
            match self.read_line(&mut line, DATA_LINE_CAP).await? {
                LineEnd::Eof => return Ok(Flow::Stop),
                LineEnd::TooLong => {
                    too_long = true;
                    continue;
                }
                LineEnd::Complete => {}
            }
            let content = match data_line(&line) {
                DataLine::End => break,
                DataLine::Content(content) => content,
            };
            body.scan_header(content);
            body.size += content.len() as u64;
            let within = limit.is_none_or(|max| body.size <= max);
            if keep && within && !too_long {
                body.data.extend_from_slice(content);
            }
        }
        let refusal = if too_long {
            Some("554 5.6.0 Error: message line too long")
        } else if limit.is_some_and(|max| body.size > max) {
            Some("552 5.3.4 Message size exceeds fixed limit")
        } else {
            None
        };
        self.end_of_data(body, refusal).await
    }

    async fn bdat(&mut self, size: u64, last: bool) -> io::Result<Flow> {
        if !self.shared.config.chunking {
            // The chunk follows the command whatever we answer: skip it.
            if !self.read_exact(size, None).await? {
                return Ok(Flow::Stop);
            }
            self.push("502 5.5.1 Error: BDAT not offered");
            return Ok(Flow::Go(502));
        }
        let refused = self.ready_for_data();
        let keep = self.shared.config.keep_messages && refused.is_none();
        let mut chunk = Vec::new();
        if !self.read_exact(size, keep.then_some(&mut chunk)).await? {
            return Ok(Flow::Stop);
        }
        if let Some(code) = refused {
            return Ok(Flow::Go(code));
        }
        let txn = self.txn.as_mut().expect("checked");
        let body = txn.chunks.get_or_insert_with(Body::default);
        body.size += size;
        body.data.extend_from_slice(&chunk);
        if !last {
            self.push(&format!("250 2.0.0 {size} octets received"));
            return Ok(Flow::Go(250));
        }
        let body = txn.chunks.take().expect("set above");
        let refusal = match self.shared.config.size {
            Some(max) if body.size > max => Some("552 5.3.4 Message size exceeds fixed limit"),
            _ => None,
        };
        self.end_of_data(body, refusal).await
    }

    /// Answers the end of a message and records it when accepted. The
    /// transaction ends either way.
    async fn end_of_data(&mut self, body: Body, refusal: Option<&str>) -> io::Result<Flow> {
        let txn = self.txn.take().expect("a transaction at end of data");
        if let Some(r) = refusal {
            self.push(r);
            return Ok(Flow::Go(reply_code(r)));
        }
        let ctx = Ctx {
            message: Some(txn.number),
            message_in_connection: Some(self.txns_here),
            rcpt: None,
            rcpts: &txn.rcpts,
        };
        let default = format!("250 2.0.0 Ok: queued as {}", txn.number);
        let flow = self.step(Step::EndOfData, &ctx, &default).await?;
        if let Flow::Go(200..=299) = flow {
            let shared = &self.shared;
            self.accepted_here += 1;
            shared
                .max_per_connection
                .fetch_max(self.accepted_here, Ordering::Relaxed);
            shared
                .recipients
                .fetch_add(txn.rcpts.len() as u64, Ordering::Relaxed);
            shared.bytes.fetch_add(body.size, Ordering::Relaxed);
            if let Some(sent) = body.sent_us {
                let mut arrivals = shared.arrivals.lock().unwrap();
                // Read under the lock, so arrivals are ordered and every gap
                // is between two consecutive ones, whatever the connection.
                let now = Instant::now();
                arrivals.first.get_or_insert(now);
                if let Some(last) = arrivals.last {
                    arrivals.max_gap = arrivals.max_gap.max(now.saturating_duration_since(last));
                }
                arrivals.last = Some(now);
                arrivals.latencies_us.push(now_us().saturating_sub(sent));
            }
            if shared.config.keep_messages {
                shared.received.lock().unwrap().push(ReceivedMessage {
                    mail_from: txn.mail_from,
                    mail_params: txn.params,
                    rcpt_to: txn.rcpts,
                    data: body.data,
                    tls: self.tls,
                    connection: self.connection,
                    number: txn.number,
                    ehlo: self.ehlo.clone(),
                    at: Instant::now(),
                });
            }
            // Counted last, so that a waiter sees the message in received().
            shared.messages.fetch_add(1, Ordering::Release);
        }
        Ok(flow)
    }

    async fn starttls(&mut self) -> io::Result<Flow> {
        if self.tls {
            self.push("503 5.5.1 Error: TLS already active");
            return Ok(Flow::Go(503));
        }
        let Some(acceptor) = self.shared.tls.clone() else {
            self.push("502 5.5.1 Error: STARTTLS not offered");
            return Ok(Flow::Go(502));
        };
        let flow = self
            .step(Step::StartTls, &Ctx::none(), "220 2.0.0 Ready to start TLS")
            .await?;
        if !matches!(flow, Flow::Go(220)) {
            return Ok(flow);
        }
        self.flush().await?;
        // Anything the client pipelined after STARTTLS is discarded
        // (RFC 3207 section 4.2; CVE-2011-0411).
        let Some(tcp) = self.io.get_mut().take_plain() else {
            return Ok(Flow::Stop);
        };
        let handshake = acceptor.accept(tcp);
        let tls = match tokio::time::timeout(self.shared.config.idle_timeout, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(connection = self.connection, error = %e, "sink TLS handshake failed");
                return Ok(Flow::Stop);
            }
            Err(_) => return Ok(Flow::Stop),
        };
        self.io = BufReader::with_capacity(16 * 1024, SmtpStream::Tls(Box::new(tls)));
        self.tls = true;
        self.ehlo.clear();
        self.txn = None;
        Ok(Flow::Go(220))
    }

    /// Replies at `step`: the first applicable rule's action, or `default`.
    async fn step(&mut self, step: Step, ctx: &Ctx<'_>, default: &str) -> io::Result<Flow> {
        let action = self.pick(step, ctx);
        match action {
            None => {
                self.push(default);
                Ok(self.after(reply_code(default)))
            }
            Some(Action::Reply(text)) => {
                self.push(&text);
                Ok(self.after(reply_code(&text)))
            }
            Some(Action::Delay(wait, text)) => {
                self.flush().await?;
                tokio::time::sleep(wait).await;
                self.push(&text);
                Ok(self.after(reply_code(&text)))
            }
            Some(Action::Close) => {
                self.flush().await?;
                Ok(Flow::Stop)
            }
            Some(Action::Silent) => {
                self.flush().await?;
                // Read and ignore everything until the client gives up.
                let mut scratch = [0u8; 4096];
                while self.io.read(&mut scratch).await? > 0 {}
                Ok(Flow::Stop)
            }
        }
    }

    /// `421` closes the connection (`run` flushes the reply first);
    /// everything else goes on.
    fn after(&self, code: u16) -> Flow {
        if code == 421 {
            Flow::Stop
        } else {
            Flow::Go(code)
        }
    }

    fn pick(&self, step: Step, ctx: &Ctx<'_>) -> Option<Action> {
        let rules = &self.shared.config.script.rules;
        for (i, rule) in rules.iter().enumerate() {
            if rule.step != step
                || rule.connection.is_some_and(|n| n != self.connection)
                || rule.message.is_some_and(|n| ctx.message != Some(n))
                || rule
                    .message_in_connection
                    .is_some_and(|n| ctx.message_in_connection != Some(n))
            {
                continue;
            }
            if let Some(needle) = &rule.rcpt_contains {
                let hit = |a: &str| a.to_ascii_lowercase().contains(needle.as_str());
                let matched = match ctx.rcpt {
                    Some(r) => hit(r),
                    None => ctx.rcpts.iter().any(|r| hit(r)),
                };
                if !matched {
                    continue;
                }
            }
            if let Some(p) = rule.share {
                if rand::random::<f64>() >= p {
                    continue;
                }
            }
            let fired = &self.shared.fired[i];
            match rule.times {
                Some(max) => {
                    let claimed = fired
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                            (f < max).then_some(f + 1)
                        })
                        .is_ok();
                    if !claimed {
                        continue;
                    }
                }
                None => {
                    fired.fetch_add(1, Ordering::Relaxed);
                }
            }
            return Some(rule.action.clone());
        }
        None
    }

    /// Queues a reply; `text` may hold several lines.
    fn push(&mut self, text: &str) {
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            self.out.extend_from_slice(line.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Queues a reply and sends everything queued.
    async fn reply(&mut self, text: &str) -> io::Result<()> {
        self.push(text);
        self.flush().await
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            let conn = self.io.get_mut();
            conn.write_all(&self.out).await?;
            conn.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Fills the read buffer, flushing queued replies first when no whole
    /// line is buffered (the client is waiting for them). Times out after
    /// the idle timeout.
    async fn fill(&mut self) -> io::Result<usize> {
        if !self.out.is_empty() && !self.io.buffer().contains(&b'\n') {
            self.flush().await?;
        }
        let idle = self.shared.config.idle_timeout;
        match tokio::time::timeout(
            idle,
            std::future::poll_fn(|cx| Pin::new(&mut self.io).poll_fill_buf(cx).map_ok(|b| b.len())),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Reads one line (with its line ending) into `line`, keeping at most
    /// `cap` bytes; the rest of a longer line is skipped.
    async fn read_line(&mut self, line: &mut Vec<u8>, cap: usize) -> io::Result<LineEnd> {
        // A whole line already buffered is read at once: no flush is due
        // (the client sent more before waiting) and no timer is armed (a
        // timer per line of message data costs the sink a tenth of its
        // rate).
        if !self.io.buffer().contains(&b'\n') {
            // Replies queued for a pipelining client go out before we wait.
            if self.fill().await? == 0 {
                line.clear();
                return Ok(LineEnd::Eof);
            }
            if !self.io.buffer().contains(&b'\n') {
                let idle = self.shared.config.idle_timeout;
                return match tokio::time::timeout(idle, read_line_into(&mut self.io, line, cap))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(io::ErrorKind::TimedOut.into()),
                };
            }
        }
        read_line_into(&mut self.io, line, cap).await
    }

    /// Reads exactly `n` bytes (a BDAT chunk), into `into` if given.
    /// False if the connection ended first.
    async fn read_exact(&mut self, mut n: u64, mut into: Option<&mut Vec<u8>>) -> io::Result<bool> {
        while n > 0 {
            if self.fill().await? == 0 {
                return Ok(false);
            }
            let buf = self.io.buffer();
            let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            if let Some(v) = into.as_deref_mut() {
                v.extend_from_slice(&buf[..take]);
            }
            Pin::new(&mut self.io).consume(take);
            n -= take as u64;
        }
        Ok(true)
    }
}

/// The reply code at the start of `text` (0 if it is not a reply).
fn reply_code(text: &str) -> u16 {
    RemoteReply::from_lines(text.lines().take(1)).map_or(0, |r| r.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_lists_extensions() {
        let config = SinkConfig {
            starttls: true,
            size: Some(1000),
            chunking: true,
            ..SinkConfig::default()
        };
        let plain = ehlo_reply(&config, false);
        assert!(plain.starts_with("250-sink.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"));
        assert!(plain.contains("250-ENHANCEDSTATUSCODES\r\n"));
        assert!(plain.ends_with("250 STARTTLS"));
        assert!(!ehlo_reply(&config, true).contains("STARTTLS"));
    }

    #[test]
    fn codes() {
        assert_eq!(reply_code("421 4.7.0 later"), 421);
        assert_eq!(reply_code("250-a\r\n250 b"), 250);
        assert_eq!(reply_code("oops"), 0);
    }
}
