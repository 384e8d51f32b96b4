//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030); the complete message goes
//! to the intake pipeline, and its answer becomes the reply.
//!
//! `250 OK queued as …` is sent only after the spool has fsynced the
//! message: a crash after that reply loses nothing.

use std::time::Duration;

use rackwave_intake::{Source, Submission};
use rackwave_smtp_proto::data::{data_line, DataLine};
use rackwave_smtp_proto::io::Line;
use rackwave_smtp_proto::Reply;
use tokio::io::AsyncReadExt;

use super::{Flow, ReadStop, Session, MAX_LINE};
use crate::Role;

/// What was wrong with the received data, found while reading it; the
/// whole message is still read so the session stays in step.
#[derive(Debug, Default)]
struct DataFlaws {
    oversize: bool,
    long_line: bool,
    bare_lf: bool,
}

impl Session {
    pub(crate) async fn data(&mut self) -> Flow {
        match &self.tx {
            None => return self.refuse("bad_sequence", Reply::bad_sequence("Need MAIL command")),
            Some(tx) if tx.recipients.is_empty() => {
                return self.refuse(
                    "bad_sequence",
                    Reply::new(554, "5.5.1", "No valid recipients"),
                )
            }
            Some(tx) if tx.chunks.is_some() => {
                return self.refuse(
                    "bad_sequence",
                    Reply::bad_sequence("DATA not permitted after BDAT"),
                )
            }
            Some(_) => {}
        }
        self.push(&Reply::plain(
            354,
            vec!["Start mail input; end with <CRLF>.<CRLF>".into()],
        ));
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        let max = self.ctx.config.max_message_size as usize;
        let timeout = self.ctx.config.data_timeout();
        // Room for the announced SIZE, up to a point: a client may
        // announce more than it sends.
        let mut body = Vec::with_capacity(
            self.tx
                .as_ref()
                .and_then(|t| t.params.size)
                .map_or(16 * 1024, |s| (s as usize).min(max).min(1 << 20)),
        );
        let mut flaws = DataFlaws::default();
        loop {
            let line = match self.read_line_timed(MAX_LINE, timeout).await {
                Ok(Line::Complete(line)) => line,
                Ok(Line::TooLong) => {
                    flaws.long_line = true;
                    continue;
                }
                // A connection lost mid-DATA queues nothing.
                Ok(Line::Eof) | Err(ReadStop::Io) | Err(ReadStop::Shutdown) => return Flow::Close,
                Err(stop @ ReadStop::Timeout) => return self.stop(stop),
            };
            let content = match data_line(&line) {
                DataLine::End => break,
                DataLine::Content(content) => content,
            };
            if !line.ends_with(b"\r\n") {
                flaws.bare_lf = true;
            }
            if body.len() + content.len() > max {
                flaws.oversize = true;
            } else if !flaws.oversize {
                body.extend_from_slice(content);
            }
        }
        if flaws.oversize {
            self.reset_transaction();
            return self.refuse("size", Reply::too_large(max as u64));
        }
        // The MX takes what mail systems send it as it is: a report is
        // read, not relayed, and refusing one would lose it.
        let strict = self.ctx.submission().is_some();
        if flaws.long_line && strict {
            self.reset_transaction();
            return self.refuse(
                "line_too_long",
                Reply::new(
                    554,
                    "5.6.0",
                    format!("Message has a line longer than {MAX_LINE} octets"),
                ),
            );
        }
        if flaws.bare_lf && strict {
            self.reset_transaction();
            return self.refuse(
                "bare_lf",
                Reply::new(
                    554,
                    "5.6.0",
                    "Message has bare LF line endings (RFC 5321 §2.3.8)",
                ),
            );
        }
        self.accept(body).await
    }

    pub(crate) async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let max = self.ctx.config.max_message_size;
        // The chunk follows the command whatever we answer, so read it first.
        let usable = match &self.tx {
            Some(tx) if !tx.recipients.is_empty() => {
                let have = tx.chunks.as_ref().map_or(0, |c| c.len() as u64);
                have + size <= max
            }
            _ => false,
        };
        let mut chunk = Vec::new();
        let timeout = self.ctx.config.data_timeout();
        if let Err(stop) = self
            .read_chunk(size, usable.then_some(&mut chunk), timeout)
            .await
        {
            return self.stop(stop);
        }
        let Some(tx) = &mut self.tx else {
            return self.refuse("bad_sequence", Reply::bad_sequence("Need MAIL command"));
        };
        if tx.recipients.is_empty() {
            return self.refuse(
                "bad_sequence",
                Reply::new(554, "5.5.1", "No valid recipients"),
            );
        }
        if !usable {
            self.reset_transaction();
            return self.refuse("size", Reply::too_large(max));
        }
        let chunks = tx.chunks.get_or_insert_with(Vec::new);
        chunks.extend_from_slice(&chunk);
        if !last {
            return self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
        }
        let body = std::mem::take(chunks);
        self.accept(body).await
    }

    /// Reads and drops a BDAT chunk that follows a refused command (the
    /// client sends it whatever we answer), then refuses.
    pub(crate) async fn refuse_chunk(
        &mut self,
        size: u64,
        reason: &'static str,
        reply: Reply,
    ) -> Flow {
        let timeout = self.ctx.config.data_timeout();
        if let Err(stop) = self.read_chunk(size, None, timeout).await {
            return self.stop(stop);
        }
        self.refuse(reason, reply)
    }

    /// Reads exactly `size` octets, keeping them only when `into` is given.
    async fn read_chunk(
        &mut self,
        size: u64,
        mut into: Option<&mut Vec<u8>>,
        timeout: Duration,
    ) -> Result<(), ReadStop> {
        let mut left = size;
        let mut buf = vec![0u8; 64 * 1024.min(size as usize).max(1)];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = match tokio::time::timeout(timeout, self.io.read(&mut buf[..want])).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadStop::Io),
                Ok(Ok(n)) => n,
                Err(_) => return Err(ReadStop::Timeout),
            };
            if let Some(v) = into.as_deref_mut() {
                v.extend_from_slice(&buf[..n]);
            }
            left -= n as u64;
        }
        Ok(())
    }

    /// Hands a complete message to the intake (or, on the MX, to the
    /// inbound service) and answers with its verdict.
    async fn accept(&mut self, body: Vec<u8>) -> Flow {
        let ctx = self.ctx.clone();
        let sub = match &ctx.role {
            Role::Submission(sub) => sub,
            Role::Mx(inbound) => return self.mx_accept(inbound, body).await,
        };
        // Suspended while the data came in: refused at the final dot.
        if self.workspace_suspended() {
            return self.refuse("suspended", Reply::new(554, "5.7.1", "account suspended"));
        }
        let (Some(mut tx), Some(auth), Some(helo)) = (self.tx.take(), &self.auth, &self.helo)
        else {
            return self.refuse("bad_sequence", Reply::bad_sequence("No transaction"));
        };

        let submission = Submission {
            source: Source::Smtp {
                helo: helo.name.clone(),
                peer: self.peer.ip(),
                esmtp: helo.esmtp,
                tls: self.is_tls(),
            },
            workspace_id: auth.workspace.id.clone(),
            submitter: auth.account.username.clone(),
            mail_from: std::mem::take(&mut tx.from),
            recipients: std::mem::take(&mut tx.recipients),
            message: body,
            reservation: tx.reservation,
            tags: Vec::new(),
            metadata: Default::default(),
            tracking: Default::default(),
            sender_rules: None,
        };
        match sub.intake.submit(submission).await {
            Ok(accepted) => self.reply(Reply::new(
                250,
                "2.0.0",
                format!("OK queued as {}", accepted.queue_id),
            )),
            Err(refusal) => {
                let (code, status) = refusal.smtp_codes();
                self.refuse(refusal.reason, Reply::new(code, status, refusal.text))
            }
        }
    }
}

impl Session {
    /// A message received by the MX: read and recorded (or dropped with a
    /// log line: a report we cannot use is still taken, so its sender does
    /// not retry it); `451` only when it could not be stored.
    async fn mx_accept(&mut self, inbound: &rackwave_inbound::Inbound, body: Vec<u8>) -> Flow {
        let Some(tx) = self.tx.take() else {
            return self.refuse("bad_sequence", Reply::bad_sequence("No transaction"));
        };
        let received = rackwave_inbound::Received {
            mail_from: &tx.from,
            mailboxes: &tx.mailboxes,
            message: body,
        };
        match inbound.receive(received).await {
            Ok(outcome) => {
                tracing::debug!(peer = %self.peer, outcome = outcome.label(), "inbound message");
                self.reply(Reply::new(250, "2.0.0", "OK"))
            }
            Err(r) => self.refuse("tempfail", Reply::new(r.code, r.enhanced, r.text)),
        }
    }
}
