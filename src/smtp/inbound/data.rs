//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030), then acceptance: the
//! header check, trace headers, the durable enqueue and the quota commit.
//!
//! `250 OK queued as …` is sent only after the spool has fsynced the
//! message: a crash after that reply loses nothing.

use std::time::Duration;

use mail_parser::MessageParser;
use rackwave_queue::Submission;
use tokio::io::AsyncReadExt;

use super::session::{Flow, Line, ReadStop, Session, MAX_LINE};
use crate::clock::{rfc5322, MS_PER_DAY};
use crate::ids::random_hex;
use crate::smtp::reply::Reply;

/// What was wrong with the received data, found while reading it; the
/// whole message is still read so the session stays in step.
#[derive(Debug, Default)]
struct DataFlaws {
    oversize: bool,
    long_line: bool,
    bare_lf: bool,
}

/// Why a message's header section was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeaderError {
    Missing,
    Malformed(usize),
    NoFrom,
}

impl HeaderError {
    fn reply(&self) -> Reply {
        let text = match self {
            HeaderError::Missing => "Message has no header section".to_string(),
            HeaderError::Malformed(n) => {
                format!("Message header line {n} is not a valid header field (RFC 5322 §2.2)")
            }
            HeaderError::NoFrom => "Message has no From header field (RFC 5322 §3.6)".into(),
        };
        Reply::new(554, "5.6.0", text)
    }
}

/// Which fields the client supplied (present, whether or not their value
/// parses: adding a second Date would break RFC 5322 §3.6).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct HeaderFields {
    pub date: bool,
    pub message_id: bool,
}

/// Checks the header section's structure: every line before the first
/// empty line is `name: value` (name of printable ASCII without colon) or
/// a folded continuation, and a From field is present.
pub(super) fn check_header_section(message: &[u8]) -> Result<HeaderFields, HeaderError> {
    let mut lines = 0usize;
    let mut from = false;
    let mut fields = HeaderFields::default();
    for (i, line) in message.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        lines += 1;
        if line[0] == b' ' || line[0] == b'\t' {
            if i == 0 {
                return Err(HeaderError::Malformed(1));
            }
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(HeaderError::Malformed(i + 1));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
            return Err(HeaderError::Malformed(i + 1));
        }
        from |= name.eq_ignore_ascii_case(b"from");
        fields.date |= name.eq_ignore_ascii_case(b"date");
        fields.message_id |= name.eq_ignore_ascii_case(b"message-id");
    }
    if lines == 0 {
        return Err(HeaderError::Missing);
    }
    if !from {
        return Err(HeaderError::NoFrom);
    }
    Ok(fields)
}

impl Session {
    pub(super) async fn data(&mut self) -> Flow {
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
        let mut body = Vec::with_capacity(
            self.tx
                .as_ref()
                .and_then(|t| t.params.size)
                .map_or(16 * 1024, |s| (s as usize).min(max)),
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
            // Only CRLF.CRLF ends the data: a bare-LF variant must not, or
            // the message could smuggle a second one past us (SMTP smuggling).
            if line == b".\r\n" {
                break;
            }
            if !line.ends_with(b"\r\n") {
                flaws.bare_lf = true;
            }
            let content = line.strip_prefix(b".").unwrap_or(&line);
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
        if flaws.long_line {
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
        if flaws.bare_lf {
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

    pub(super) async fn bdat(&mut self, size: u64, last: bool) -> Flow {
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

    /// Prepends a DKIM signature when the workspace has a key for the
    /// `From:` domain. Signing is CPU work, so it runs off the I/O threads;
    /// a signing failure is logged and the message goes out unsigned rather
    /// than being refused.
    async fn dkim_sign(&self, workspace_id: &str, domain: String, message: Vec<u8>) -> Vec<u8> {
        let domains = self.ctx.services.domains.clone();
        let ws = workspace_id.to_string();
        let signed = tokio::task::spawn_blocking(move || {
            let header = domains.sign(&ws, &domain, &message);
            (header, message, domain)
        })
        .await;
        match signed {
            Ok((Ok(Some(header)), message, _)) => {
                let mut out = Vec::with_capacity(header.len() + message.len() + 2);
                out.extend_from_slice(header.as_bytes());
                if !header.ends_with("\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(&message);
                out
            }
            Ok((Ok(None), message, _)) => message,
            Ok((Err(e), message, domain)) => {
                tracing::warn!(error = %e, domain, "DKIM signing failed; sending unsigned");
                message
            }
            Err(e) => panic!("DKIM signing task panicked: {e}"),
        }
    }

    /// Checks, stamps and durably queues a complete message, then answers.
    async fn accept(&mut self, body: Vec<u8>) -> Flow {
        let fields = match check_header_section(&body) {
            Ok(fields) => fields,
            Err(e) => {
                self.reset_transaction();
                return self.refuse("header", e.reply());
            }
        };
        let Some(parsed) = MessageParser::default().parse_headers(&body) else {
            self.reset_transaction();
            return self.refuse("header", HeaderError::Missing.reply());
        };
        let subject = parsed.subject().map(str::to_string);
        let from_domain = parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase());
        drop(parsed);

        let (Some(mut tx), Some(auth), Some(helo)) = (self.tx.take(), &self.auth, &self.helo)
        else {
            return self.refuse("bad_sequence", Reply::bad_sequence("No transaction"));
        };
        let now = self.ctx.services.clock.now_ms();
        let queue_id = rackwave_queue::new_queue_id();
        let host = &self.ctx.config.hostname;
        let protocol = match (helo.esmtp, self.is_tls()) {
            (true, true) => "ESMTPSA",
            (true, false) => "ESMTPA",
            (false, _) => "SMTP",
        };
        let mut stamped = Vec::with_capacity(body.len() + 256);
        stamped.extend_from_slice(
            format!(
                "Received: from {} ([{}])\r\n\tby {host} (Rackwave) with {protocol}\r\n\tid {queue_id}; {}\r\n",
                helo.name.replace(['\r', '\n'], ""),
                self.peer.ip(),
                rfc5322(now)
            )
            .as_bytes(),
        );
        // RFC 6409 §8: a submission server may add what the client left out.
        if !fields.message_id {
            stamped.extend_from_slice(
                format!("Message-ID: <{}.{queue_id}@{host}>\r\n", random_hex(8)).as_bytes(),
            );
        }
        if !fields.date {
            stamped.extend_from_slice(format!("Date: {}\r\n", rfc5322(now)).as_bytes());
        }
        stamped.extend_from_slice(&body);
        drop(body);
        if let Some(domain) = from_domain {
            stamped = self.dkim_sign(&auth.workspace.id, domain, stamped).await;
        }

        let recipients = tx.recipients.len() as u64;
        let submission = Submission {
            queue_id: Some(queue_id),
            workspace_id: auth.workspace.id.clone(),
            submitter: auth.account.username.clone(),
            mail_from: tx.from.clone(),
            recipients: std::mem::take(&mut tx.recipients),
            subject,
            body: stamped,
            received_at_ms: now,
        };
        match self.ctx.services.spool.enqueue(submission).await {
            Ok(enqueued) => {
                self.ctx
                    .services
                    .quotas
                    .commit(tx.reservation, now.div_euclid(MS_PER_DAY));
                self.ctx.services.metrics.smtp_messages_accepted.inc();
                self.ctx
                    .services
                    .metrics
                    .smtp_recipients_accepted
                    .inc_by(recipients);
                self.ctx.services.new_mail.notify_one();
                self.reply(Reply::new(
                    250,
                    "2.0.0",
                    format!("OK queued as {}", enqueued.queue_id),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "enqueue failed");
                // Dropping the transaction releases its quota reservation.
                drop(tx);
                self.refuse("tempfail", Reply::temporary_failure())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sections() {
        assert_eq!(
            check_header_section(b"From: a@b.c\r\nSubject: x\r\n\r\nbody"),
            Ok(HeaderFields::default())
        );
        assert_eq!(
            check_header_section(
                b"From: a@b.c\r\nSubject: x\r\n\tfolded\r\nDATE: junk\r\nmessage-id:\r\n\r\n"
            ),
            Ok(HeaderFields {
                date: true,
                message_id: true
            })
        );
        assert_eq!(
            check_header_section(b"\r\nbody only"),
            Err(HeaderError::Missing)
        );
        assert_eq!(check_header_section(b""), Err(HeaderError::Missing));
        assert_eq!(
            check_header_section(b"From: a@b.c\r\nthis is not a header\r\n\r\n"),
            Err(HeaderError::Malformed(2))
        );
        assert_eq!(
            check_header_section(b" folded first\r\nFrom: a@b.c\r\n\r\n"),
            Err(HeaderError::Malformed(1))
        );
        assert_eq!(
            check_header_section(b"Bad Name: x\r\nFrom: a@b.c\r\n\r\n"),
            Err(HeaderError::Malformed(1))
        );
        assert_eq!(
            check_header_section(b"Subject: x\r\n\r\n"),
            Err(HeaderError::NoFrom)
        );
    }
}
