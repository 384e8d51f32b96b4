//! EHLO/HELO (RFC 5321 §4.1.1.1) and STARTTLS (RFC 3207).

use rackwave_smtp_proto::ehlo::Extensions;
use rackwave_smtp_proto::io::Stream;
use rackwave_smtp_proto::Reply;
use tokio::io::BufReader;

use super::{Flow, Helo, Session, READ_BUFFER};

impl Session {
    pub(crate) fn ehlo(&mut self, name: String, esmtp: bool) -> Flow {
        // A new EHLO resets any transaction in progress (§4.1.4).
        self.reset_transaction();
        let host = &self.ctx.config.hostname;
        let reply = if esmtp {
            let extensions = Extensions {
                pipelining: true,
                size: Some(self.ctx.config.max_message_size),
                eight_bit_mime: true,
                smtputf8: true,
                enhanced_status_codes: true,
                chunking: true,
                starttls: !self.is_tls(),
                // AUTH is offered only where it may be used (RFC 4954 §4):
                // over TLS, or from the networks allowed clear-text AUTH.
                auth: if self.auth_allowed_here() {
                    vec!["PLAIN".into(), "LOGIN".into()]
                } else {
                    Vec::new()
                },
                help: true,
            };
            extensions.reply(format!("{host} greets {name} [{}]", self.peer.ip()))
        } else {
            Reply::plain(250, vec![format!("{host} greets {name}")])
        };
        self.helo = Some(Helo { name, esmtp });
        self.reply(reply)
    }

    pub(crate) fn auth_allowed_here(&self) -> bool {
        if self.ctx.submission().is_none() {
            return false;
        }
        self.is_tls()
            || self
                .ctx
                .config
                .plaintext_auth_networks
                .iter()
                .any(|n| n.contains(self.peer.ip()))
    }

    pub(crate) async fn starttls(&mut self) -> Flow {
        if self.is_tls() {
            return self.refuse("bad_sequence", Reply::bad_sequence("TLS already active"));
        }
        if self.tx.is_some() {
            return self.refuse(
                "bad_sequence",
                Reply::bad_sequence("STARTTLS not permitted during a mail transaction"),
            );
        }
        self.push(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        // Anything the client pipelined after STARTTLS arrived in clear
        // text and must not be executed under TLS (the CVE-2011-0411
        // command injection): it is dropped with the old buffer.
        if !self.io.buffer().is_empty() {
            tracing::debug!(peer = %self.peer, "discarding plaintext pipelined after STARTTLS");
        }
        let Some(tcp) = self.io.get_mut().take_plain() else {
            return Flow::Close;
        };
        let handshake = self.ctx.tls.accept(tcp);
        match tokio::time::timeout(self.ctx.config.command_timeout(), handshake).await {
            Ok(Ok(tls)) => {
                self.io = BufReader::with_capacity(READ_BUFFER, Stream::Tls(Box::new(tls)));
                // RFC 3207 §4.2: forget everything learnt before TLS.
                self.helo = None;
                self.auth = None;
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }
}
