//! One SMTP session: the command loop, line reading with limits and
//! timeouts, reply buffering for PIPELINING, and the session state.
//!
//! State is explicit: `helo` (greeted or not), `auth` (who), `tx` (the mail
//! transaction in progress, with its quota reservation). The steps of the
//! protocol live beside this file, one per command family.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::watch;

use rackwave_accounts::{SmtpAccount, Workspace};
use rackwave_inbound::Mailbox;
use rackwave_intake::Reservation;
use rackwave_smtp_proto::command::{self, Command, MailParams};
use rackwave_smtp_proto::io::{read_line, Line};
use rackwave_smtp_proto::Reply;
use tokio::net::TcpStream;

use crate::SmtpServer;

mod auth;
mod data;
mod ehlo;
mod mail;
mod rcpt;

/// The connection under a session.
pub(crate) type SmtpStream =
    rackwave_smtp_proto::io::Stream<tokio_rustls::server::TlsStream<TcpStream>>;

/// Longest line accepted, in octets including CRLF (RFC 5321 §4.5.3.1.6).
pub(crate) const MAX_LINE: usize = 1000;
pub(crate) const READ_BUFFER: usize = 8 * 1024;

pub(crate) struct Session {
    pub(crate) ctx: Arc<SmtpServer>,
    pub(crate) io: BufReader<SmtpStream>,
    pub(crate) peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    pub(crate) out: Vec<u8>,
    pub(crate) helo: Option<Helo>,
    pub(crate) auth: Option<Authenticated>,
    pub(crate) tx: Option<Transaction>,
    errors: u32,
}

pub(crate) struct Helo {
    pub name: String,
    pub esmtp: bool,
}

pub(crate) struct Authenticated {
    pub account: SmtpAccount,
    pub workspace: Workspace,
}

/// A mail transaction: from MAIL to the end of DATA or BDAT LAST.
pub(crate) struct Transaction {
    pub from: String,
    pub params: MailParams,
    pub recipients: Vec<String>,
    /// Submission: the quota reserved for the recipients so far.
    pub reservation: Option<Reservation>,
    /// The MX: what each recipient is (parallel to `recipients`).
    pub mailboxes: Vec<Mailbox>,
    /// Chunks received so far with BDAT (RFC 3030); `None` until the first.
    pub chunks: Option<Vec<u8>>,
}

/// What the command loop does after a step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// Why reading stopped early.
pub(crate) enum ReadStop {
    Timeout,
    Shutdown,
    Io,
}

impl Session {
    pub(crate) fn new(
        ctx: Arc<SmtpServer>,
        stream: SmtpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Session {
        Session {
            ctx,
            io: BufReader::with_capacity(READ_BUFFER, stream),
            peer,
            shutdown,
            out: Vec::with_capacity(512),
            helo: None,
            auth: None,
            tx: None,
            errors: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        let host = self.ctx.config.hostname.clone();
        self.out
            .extend_from_slice(format!("220 {host} ESMTP Rackwave ready\r\n").as_bytes());
        loop {
            let line = match self.read_command().await {
                Ok(line) => line,
                Err(ReadStop::Timeout) => {
                    self.push(&Reply::timeout(&host));
                    break;
                }
                Err(ReadStop::Shutdown) => {
                    self.push(&Reply::shutting_down(&host));
                    break;
                }
                Err(ReadStop::Io) => return,
            };
            let flow = match line {
                Line::Eof => break,
                Line::TooLong => self.refuse("line_too_long", Reply::line_too_long()),
                Line::Complete(bytes) => match command::parse(&bytes) {
                    Ok(cmd) => self.dispatch(cmd).await,
                    Err(e) => self.refuse("syntax", e.reply()),
                },
            };
            if flow == Flow::Close {
                break;
            }
        }
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.io.get_mut().shutdown()).await;
        // Dropping `tx` releases any quota still reserved.
    }

    async fn dispatch(&mut self, cmd: Command) -> Flow {
        let transaction = matches!(
            cmd,
            Command::Mail { .. } | Command::Rcpt { .. } | Command::Data | Command::Bdat { .. }
        );
        let refusal = if !transaction {
            None
        } else if self.credentials_revoked() {
            Some((
                "revoked",
                Reply::new(
                    530,
                    "5.7.0",
                    "Authentication required: these credentials were revoked",
                ),
            ))
        } else if self.workspace_suspended() {
            Some(("suspended", Reply::new(554, "5.7.1", "account suspended")))
        } else {
            None
        };
        if let Some((reason, reply)) = refusal {
            return match cmd {
                // The chunk follows whatever we answer: read it first.
                Command::Bdat { size, .. } => self.refuse_chunk(size, reason, reply).await,
                _ => self.refuse(reason, reply),
            };
        }
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true),
            Command::Helo(name) => self.ehlo(name, false),
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial).await,
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to } => self.rcpt(to).await,
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::Rset => {
                self.reset_transaction();
                self.reply(Reply::ok())
            }
            Command::Noop => self.reply(Reply::ok()),
            Command::Quit => {
                self.push(&Reply::bye(&self.ctx.config.hostname));
                Flow::Close
            }
            Command::Help => self.reply(Reply::new(
                214,
                "2.0.0",
                if self.ctx.submission().is_some() {
                    "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY"
                } else {
                    "Commands: EHLO HELO STARTTLS MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY"
                },
            )),
            // Answered without saying whether a mailbox exists (RFC 5321 §3.5.3).
            Command::Vrfy => self.reply(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn => self.refuse("expn", Reply::new(502, "5.5.1", "EXPN not available")),
        }
    }

    /// Drops the transaction; its quota reservation is released.
    pub(crate) fn reset_transaction(&mut self) {
        if let Some(mut tx) = self.tx.take() {
            if let (Some(sub), Some(reservation)) = (self.ctx.submission(), &mut tx.reservation) {
                sub.intake.quotas().release_all(reservation);
            }
        }
    }

    /// Queues a reply; counts errors and closes after too many.
    pub(crate) fn reply(&mut self, reply: Reply) -> Flow {
        self.push(&reply);
        if reply.is_error() && reply.code != 421 {
            self.errors += 1;
            if self.errors >= self.ctx.config.max_errors {
                self.push(&Reply::too_many_errors());
                return Flow::Close;
            }
        }
        if reply.code == 421 {
            return Flow::Close;
        }
        Flow::Continue
    }

    /// A refusal, counted in the metrics by reason.
    /// Whether the session's account was deleted since it authenticated;
    /// if so the session is no longer authenticated and its transaction
    /// (with its quota reservation) is dropped.
    fn credentials_revoked(&mut self) -> bool {
        let revoked = match (self.ctx.submission(), &self.auth) {
            (Some(sub), Some(a)) => sub.accounts.revoked(&a.account),
            _ => false,
        };
        if revoked {
            self.auth = None;
            self.tx = None;
        }
        revoked
    }

    /// Whether the session's workspace was suspended (its subscription);
    /// if so its transaction (with its quota reservation) is dropped. Open
    /// sessions stop at their next command.
    pub(crate) fn workspace_suspended(&mut self) -> bool {
        let suspended = match (self.ctx.submission(), &self.auth) {
            (Some(sub), Some(a)) => sub.accounts.is_suspended(&a.workspace.id),
            _ => false,
        };
        if suspended {
            self.reset_transaction();
        }
        suspended
    }

    pub(crate) fn refuse(&mut self, reason: &'static str, reply: Reply) -> Flow {
        self.ctx.metrics.refused(reason);
        self.reply(reply)
    }

    pub(crate) fn push(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    /// Sends the replies queued so far.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.io.get_mut().write_all(&self.out).await?;
            self.io.get_mut().flush().await
        };
        let result = match tokio::time::timeout(self.ctx.config.command_timeout(), write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        };
        self.out.clear();
        result
    }

    /// Reads the next command line. Replies are flushed only when the
    /// client has nothing more pipelined, so a pipelined batch gets its
    /// replies in one write (RFC 2920). A shutdown interrupts the wait only
    /// between transactions.
    async fn read_command(&mut self) -> Result<Line, ReadStop> {
        if self.io.buffer().is_empty() {
            self.flush().await.map_err(|_| ReadStop::Io)?;
        }
        let timeout = self.ctx.config.command_timeout();
        let idle = self.tx.is_none();
        let mut shutdown = self.shutdown.clone();
        let read = tokio::time::timeout(timeout, read_line(&mut self.io, MAX_LINE));
        tokio::select! {
            biased;
            r = read => match r {
                Ok(Ok(line)) => Ok(line),
                Ok(Err(_)) => Err(ReadStop::Io),
                Err(_) => Err(ReadStop::Timeout),
            },
            _ = shutdown.wait_for(|s| *s), if idle => Err(ReadStop::Shutdown),
        }
    }

    /// Reads one line of message data or an AUTH response, under the data
    /// timeout.
    pub(crate) async fn read_line_timed(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Line, ReadStop> {
        // A whole line already buffered (message data usually is) is read
        // without arming a timer: one per line is measurable.
        if self.io.buffer().contains(&b'\n') {
            return read_line(&mut self.io, max).await.map_err(|_| ReadStop::Io);
        }
        match tokio::time::timeout(timeout, read_line(&mut self.io, max)).await {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(_)) => Err(ReadStop::Io),
            Err(_) => Err(ReadStop::Timeout),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.io.get_ref().is_tls()
    }
}
