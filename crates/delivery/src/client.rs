//! The outbound SMTP client: one connection to one remote host, reused for
//! several messages.
//!
//! Written on tokio and tokio-rustls rather than lettre because delivery
//! needs what lettre's transport hides: every reply verbatim (code, enhanced
//! status and text, for bounce classification and the attempt log), the
//! RFC 5321 §4.5.3.2 timeout of each step, PIPELINING of MAIL/RCPT/DATA, a
//! TLS policy per destination with the negotiated version in the log, and
//! RSET between messages of different senders on one connection.

use std::net::SocketAddr;
use std::time::Duration;

use rackwave_smtp_proto::data::dot_stuff;
use rackwave_smtp_proto::ehlo::Extensions;
use rackwave_smtp_proto::io::{read_reply, ReplyError, Stream};
use rackwave_smtp_proto::RemoteReply;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The protocol step a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    EndOfData,
}

impl Step {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Greeting => "greeting",
            Step::Ehlo => "EHLO",
            Step::StartTls => "STARTTLS",
            Step::Mail => "MAIL FROM",
            Step::Rcpt => "RCPT TO",
            Step::Data => "DATA",
            Step::EndOfData => "end of data",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The server answered with a refusal.
    #[error("{} refused: {}", step.as_str(), reply.raw)]
    Rejected { step: Step, reply: RemoteReply },
    #[error("{} timed out", step.as_str())]
    Timeout { step: Step },
    #[error("{}: {message}", step.as_str())]
    Io { step: Step, message: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{}: malformed reply {line:?}", step.as_str())]
    Protocol { step: Step, line: String },
}

impl ClientError {
    /// Whether the connection can still be used after this error.
    pub(crate) fn connection_usable(&self) -> bool {
        matches!(self, ClientError::Rejected { step, reply }
            if matches!(step, Step::Mail | Step::Rcpt | Step::Data | Step::EndOfData) && reply.code != 421)
    }
}

/// Timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    pub data: Duration,
}

pub(crate) struct Connection {
    io: BufReader<Stream<TlsStream<TcpStream>>>,
    pub(crate) peer: SocketAddr,
    pub(crate) host: String,
    /// What the server announced in its EHLO reply.
    pub(crate) capabilities: Extensions,
    /// Negotiated TLS version, e.g. `TLSv1_3`, once STARTTLS succeeded.
    pub tls: Option<String>,
    ehlo_name: String,
    timeouts: Timeouts,
}

/// A message to send on an open connection.
pub(crate) struct Envelope<'a> {
    pub mail_from: &'a str,
    pub rcpt_to: &'a str,
    /// Whether the envelope or headers need SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    pub eight_bit: bool,
}

impl Connection {
    /// Connects, reads the greeting and says EHLO (HELO if EHLO is refused).
    pub(crate) async fn open(
        peer: SocketAddr,
        host: &str,
        ehlo_name: &str,
        timeouts: Timeouts,
    ) -> Result<Connection, ClientError> {
        let tcp = match tokio::time::timeout(timeouts.connect, TcpStream::connect(peer)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(ClientError::Io {
                    step: Step::Connect,
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    step: Step::Connect,
                })
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection {
            io: BufReader::new(Stream::Plain(tcp)),
            peer,
            host: host.to_string(),
            capabilities: Extensions::default(),
            tls: None,
            ehlo_name: ehlo_name.to_string(),
            timeouts,
        };
        let greeting = conn.read_reply(Step::Greeting, timeouts.command).await?;
        if greeting.code != 220 {
            return Err(ClientError::Rejected {
                step: Step::Greeting,
                reply: greeting,
            });
        }
        conn.ehlo().await?;
        Ok(conn)
    }

    async fn ehlo(&mut self) -> Result<(), ClientError> {
        let reply = self
            .command(&format!("EHLO {}", self.ehlo_name), Step::Ehlo)
            .await?;
        if reply.code == 250 {
            self.capabilities = Extensions::parse(&reply);
            return Ok(());
        }
        // RFC 5321 §3.2: fall back to HELO if EHLO is not understood.
        let reply = self
            .command(&format!("HELO {}", self.ehlo_name), Step::Ehlo)
            .await?;
        if reply.code != 250 {
            return Err(ClientError::Rejected {
                step: Step::Ehlo,
                reply,
            });
        }
        self.capabilities = Extensions::default();
        Ok(())
    }

    /// Upgrades to TLS (RFC 3207) and says EHLO again.
    pub(crate) async fn starttls(&mut self, connector: &TlsConnector) -> Result<(), ClientError> {
        let reply = self.command("STARTTLS", Step::StartTls).await?;
        if reply.code != 220 {
            return Err(ClientError::Rejected {
                step: Step::StartTls,
                reply,
            });
        }
        // Anything the server sent ahead of the handshake is dropped with
        // the old buffer (RFC 3207 §4.2).
        let Some(plain) = self.io.get_mut().take_plain() else {
            return Err(ClientError::Tls("TLS already active".into()));
        };
        let name = rackwave_smtp_proto::tls::server_name(&self.host, self.peer.ip());
        let tls = tokio::time::timeout(self.timeouts.command, connector.connect(name, plain))
            .await
            .map_err(|_| ClientError::Tls("handshake timed out".into()))?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        self.tls = tls.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
        self.io = BufReader::new(Stream::Tls(Box::new(tls)));
        self.ehlo().await
    }

    /// Sends one message: MAIL, RCPT, DATA (pipelined when offered), the
    /// data dot-stuffed, and returns the final reply. `on_data` is called
    /// when the data starts to flow (the moment of `email.sent`).
    pub(crate) async fn send(
        &mut self,
        envelope: &Envelope<'_>,
        data: &[u8],
        on_data: impl FnOnce(),
    ) -> Result<RemoteReply, ClientError> {
        let mut mail = format!("MAIL FROM:<{}>", envelope.mail_from);
        if let Some(max) = self.capabilities.size {
            if data.len() as u64 > max {
                return Err(ClientError::Rejected {
                    step: Step::Mail,
                    reply: RemoteReply::synthetic(
                        552,
                        "5.3.4",
                        &format!(
                            "message size {} exceeds the remote limit of {max}",
                            data.len()
                        ),
                    ),
                });
            }
            mail.push_str(&format!(" SIZE={}", data.len()));
        }
        if envelope.eight_bit && self.capabilities.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if envelope.smtputf8 {
            if !self.capabilities.smtputf8 {
                return Err(ClientError::Rejected {
                    step: Step::Mail,
                    reply: RemoteReply::synthetic(
                        553,
                        "5.6.7",
                        "the remote server does not support SMTPUTF8, required by this message",
                    ),
                });
            }
            mail.push_str(" SMTPUTF8");
        }
        if self.capabilities.pipelining {
            self.write(
                format!("{mail}\r\nRCPT TO:<{}>\r\nDATA\r\n", envelope.rcpt_to).as_bytes(),
                Step::Mail,
            )
            .await?;
            // Read all three replies, but report the first refusal: a
            // server that refuses RCPT with 421 and hangs up must be logged
            // with its 421, not with the lost DATA reply.
            let m = self.read_reply(Step::Mail, self.timeouts.command).await?;
            let r = self.read_reply(Step::Rcpt, self.timeouts.command).await;
            let d = match &r {
                Ok(_) => Some(self.read_reply(Step::Data, self.timeouts.command).await),
                Err(_) => None,
            };
            refused(Step::Mail, m, &[250])?;
            refused(Step::Rcpt, r?, &[250, 251])?;
            refused(Step::Data, d.expect("read after RCPT")?, &[354])?;
        } else {
            let m = self.command(&mail, Step::Mail).await?;
            refused(Step::Mail, m, &[250])?;
            let r = self
                .command(&format!("RCPT TO:<{}>", envelope.rcpt_to), Step::Rcpt)
                .await?;
            refused(Step::Rcpt, r, &[250, 251])?;
            let d = self.command("DATA", Step::Data).await?;
            refused(Step::Data, d, &[354])?;
        }
        on_data();
        let stuffed = dot_stuff(data);
        self.write(&stuffed, Step::EndOfData).await?;
        let done = self.read_reply(Step::EndOfData, self.timeouts.data).await?;
        if done.code != 250 {
            return Err(ClientError::Rejected {
                step: Step::EndOfData,
                reply: done,
            });
        }
        Ok(done)
    }

    /// Resets the transaction after a refusal so the connection can carry
    /// the next message.
    pub(crate) async fn rset(&mut self) -> Result<(), ClientError> {
        let reply = self.command("RSET", Step::Mail).await?;
        if reply.code != 250 {
            return Err(ClientError::Rejected {
                step: Step::Mail,
                reply,
            });
        }
        Ok(())
    }

    pub(crate) async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.write(b"QUIT\r\n", Step::Mail).await;
            let _ = self.read_reply(Step::Mail, Duration::from_secs(5)).await;
        })
        .await;
    }

    async fn command(&mut self, line: &str, step: Step) -> Result<RemoteReply, ClientError> {
        self.write(format!("{line}\r\n").as_bytes(), step).await?;
        self.read_reply(step, self.timeouts.command).await
    }

    async fn write(&mut self, bytes: &[u8], step: Step) -> Result<(), ClientError> {
        let io_err = |e: std::io::Error| ClientError::Io {
            step,
            message: e.to_string(),
        };
        let write = async {
            let io = self.io.get_mut();
            io.write_all(bytes).await?;
            io.flush().await
        };
        match tokio::time::timeout(self.timeouts.data, write).await {
            Ok(r) => r.map_err(io_err),
            Err(_) => Err(ClientError::Timeout { step }),
        }
    }

    async fn read_reply(
        &mut self,
        step: Step,
        timeout: Duration,
    ) -> Result<RemoteReply, ClientError> {
        match tokio::time::timeout(timeout, read_reply(&mut self.io)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(ReplyError::Io(e))) => Err(ClientError::Io {
                step,
                message: e.to_string(),
            }),
            Ok(Err(ReplyError::Closed)) => Err(ClientError::Io {
                step,
                message: "connection closed by remote".into(),
            }),
            Ok(Err(ReplyError::Malformed(line))) => Err(ClientError::Protocol { step, line }),
            Err(_) => Err(ClientError::Timeout { step }),
        }
    }
}

/// `Err(Rejected)` unless the reply's code is one of `ok`.
fn refused(step: Step, reply: RemoteReply, ok: &[u16]) -> Result<(), ClientError> {
    if ok.contains(&reply.code) {
        Ok(())
    } else {
        Err(ClientError::Rejected { step, reply })
    }
}
