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
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::classify::parse_reply_line;

/// A complete reply from the remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    pub code: u16,
    pub enhanced: Option<String>,
    /// Text of all lines, joined with a space, without codes.
    pub text: String,
    /// The reply as received, lines joined with `\n`, for the log.
    pub raw: String,
}

impl RemoteReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// The protocol step a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
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
    pub fn as_str(self) -> &'static str {
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
pub enum ClientError {
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
    pub fn connection_usable(&self) -> bool {
        matches!(self, ClientError::Rejected { step, reply }
            if matches!(step, Step::Mail | Step::Rcpt | Step::Data | Step::EndOfData) && reply.code != 421)
    }
}

/// What the server announced in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub pipelining: bool,
    pub starttls: bool,
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
}

impl Capabilities {
    fn parse(reply: &RemoteReply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.raw.lines().skip(1) {
            let kw = line.get(4..).unwrap_or("").trim();
            let mut parts = kw.split_ascii_whitespace();
            match parts.next().map(|k| k.to_ascii_uppercase()).as_deref() {
                Some("PIPELINING") => caps.pipelining = true,
                Some("STARTTLS") => caps.starttls = true,
                Some("8BITMIME") => caps.eight_bit_mime = true,
                Some("SMTPUTF8") => caps.smtputf8 = true,
                Some("SIZE") => {
                    caps.size = parts.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0)
                }
                _ => {}
            }
        }
        caps
    }
}

enum Stream {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
    /// Only while the TCP stream is inside the TLS handshake.
    Detached,
}

/// Timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    pub data: Duration,
}

pub struct Connection {
    stream: Stream,
    pub peer: SocketAddr,
    pub host: String,
    pub capabilities: Capabilities,
    /// Negotiated TLS version, e.g. `TLSv1_3`, once STARTTLS succeeded.
    pub tls: Option<String>,
    ehlo_name: String,
    timeouts: Timeouts,
}

/// A message to send on an open connection.
pub struct Envelope<'a> {
    pub mail_from: &'a str,
    pub rcpt_to: &'a str,
    /// Whether the envelope or headers need SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    pub eight_bit: bool,
}

impl Connection {
    /// Connects, reads the greeting and says EHLO (HELO if EHLO is refused).
    pub async fn open(
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
            stream: Stream::Plain(BufReader::new(tcp)),
            peer,
            host: host.to_string(),
            capabilities: Capabilities::default(),
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
            self.capabilities = Capabilities::parse(&reply);
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
        self.capabilities = Capabilities::default();
        Ok(())
    }

    /// Upgrades to TLS (RFC 3207) and says EHLO again.
    pub async fn starttls(&mut self, connector: &TlsConnector) -> Result<(), ClientError> {
        let reply = self.command("STARTTLS", Step::StartTls).await?;
        if reply.code != 220 {
            return Err(ClientError::Rejected {
                step: Step::StartTls,
                reply,
            });
        }
        let plain = match std::mem::replace(&mut self.stream, Stream::Detached) {
            Stream::Plain(s) => s.into_inner(),
            _ => return Err(ClientError::Tls("TLS already active".into())),
        };
        let name = ServerName::try_from(self.host.trim_end_matches('.').to_string())
            .unwrap_or_else(|_| ServerName::from(self.peer.ip()));
        let tls = tokio::time::timeout(self.timeouts.command, connector.connect(name, plain))
            .await
            .map_err(|_| ClientError::Tls("handshake timed out".into()))?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        self.tls = tls.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
        self.stream = Stream::Tls(Box::new(BufReader::new(tls)));
        self.ehlo().await
    }

    /// Sends one message: MAIL, RCPT, DATA (pipelined when offered), the
    /// data dot-stuffed, and returns the final reply. `on_data` is called
    /// when the data starts to flow (the moment of `email.sent`).
    pub async fn send(
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
                    reply: synthetic(
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
                    reply: synthetic(
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
    pub async fn rset(&mut self) -> Result<(), ClientError> {
        let reply = self.command("RSET", Step::Mail).await?;
        if reply.code != 250 {
            return Err(ClientError::Rejected {
                step: Step::Mail,
                reply,
            });
        }
        Ok(())
    }

    pub async fn quit(mut self) {
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
            match &mut self.stream {
                Stream::Plain(s) => {
                    s.get_mut().write_all(bytes).await?;
                    s.get_mut().flush().await
                }
                Stream::Tls(s) => {
                    s.get_mut().write_all(bytes).await?;
                    s.get_mut().flush().await
                }
                Stream::Detached => Err(std::io::ErrorKind::NotConnected.into()),
            }
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
        let read = async {
            let mut lines: Vec<String> = Vec::new();
            loop {
                let mut line = String::new();
                let n = match &mut self.stream {
                    Stream::Plain(s) => read_limited(s, &mut line).await,
                    Stream::Tls(s) => read_limited(s.as_mut(), &mut line).await,
                    Stream::Detached => Err(std::io::ErrorKind::NotConnected.into()),
                }
                .map_err(|e| ClientError::Io {
                    step,
                    message: e.to_string(),
                })?;
                if n == 0 {
                    return Err(ClientError::Io {
                        step,
                        message: "connection closed by remote".into(),
                    });
                }
                let line = line.trim_end_matches(['\r', '\n']).to_string();
                let more = line.as_bytes().get(3) == Some(&b'-');
                if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                    return Err(ClientError::Protocol { step, line });
                }
                lines.push(line);
                if !more || lines.len() > 100 {
                    break;
                }
            }
            let code: u16 = lines[0][..3].parse().unwrap_or(0);
            let mut enhanced = None;
            let mut texts = Vec::new();
            for l in &lines {
                if let Some((_, e, text)) = parse_reply_line(l) {
                    if enhanced.is_none() {
                        enhanced = e;
                    }
                    texts.push(text);
                }
            }
            Ok(RemoteReply {
                code,
                enhanced,
                text: texts.join(" "),
                raw: lines.join("\n"),
            })
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout { step }),
        }
    }
}

/// Reads one line of at most 8 KiB (a hostile server cannot make us buffer
/// without bound).
async fn read_limited<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut String,
) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut limited = r.take(8192);
    limited.read_line(out).await
}

/// `Err(Rejected)` unless the reply's code is one of `ok`.
fn refused(step: Step, reply: RemoteReply, ok: &[u16]) -> Result<(), ClientError> {
    if ok.contains(&reply.code) {
        Ok(())
    } else {
        Err(ClientError::Rejected { step, reply })
    }
}

/// A reply we make up for a refusal decided locally (so it is classified
/// and logged like a remote one).
pub fn synthetic(code: u16, enhanced: &str, text: &str) -> RemoteReply {
    RemoteReply {
        code,
        enhanced: Some(enhanced.to_string()),
        text: text.to_string(),
        raw: format!("{code} {enhanced} {text}"),
    }
}

/// RFC 5321 §4.5.2 transparency, CRLF line endings, and the final dot.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 8);
    let mut at_line_start = true;
    for &b in data {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// TLS client configurations: one that checks certificates against the
/// web PKI, one that accepts any (opportunistic TLS, RFC 7435 §3: an
/// unauthenticated encrypted channel beats clear text).
pub fn tls_connectors() -> (TlsConnector, TlsConnector) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let verified = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let any = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    (
        TlsConnector::from(Arc::new(verified)),
        TlsConnector::from(Arc::new(any)),
    )
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".x"), b"..x\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
    }

    #[test]
    fn capabilities() {
        let r = RemoteReply {
            code: 250,
            enhanced: None,
            text: String::new(),
            raw: "250-mx.example\n250-PIPELINING\n250-SIZE 1000\n250-STARTTLS\n250 8BITMIME".into(),
        };
        let c = Capabilities::parse(&r);
        assert!(c.pipelining && c.starttls && c.eight_bit_mime && !c.smtputf8);
        assert_eq!(c.size, Some(1000));
    }
}
