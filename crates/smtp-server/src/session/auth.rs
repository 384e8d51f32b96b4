//! AUTH PLAIN and LOGIN (RFC 4954, RFC 4616).
//!
//! Refused in clear text from a non-loopback peer (538), delayed more with
//! every failure from one address, and locked out after too many.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use rackwave_smtp_proto::command::AuthMechanism;
use rackwave_smtp_proto::io::Line;
use rackwave_smtp_proto::Reply;

use super::{Authenticated, Flow, ReadStop, Session};

/// Credentials decoded from a SASL exchange.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: String,
    pub password: String,
}

/// Why a SASL response was not usable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaslError {
    Cancelled,
    BadBase64,
    Malformed,
}

impl SaslError {
    fn reply(&self) -> Reply {
        match self {
            SaslError::Cancelled => Reply::new(501, "5.7.0", "Authentication cancelled"),
            SaslError::BadBase64 => Reply::new(501, "5.5.2", "Invalid base64 data"),
            SaslError::Malformed => Reply::new(501, "5.5.2", "Malformed authentication response"),
        }
    }
}

/// Decodes one base64 SASL response line ("=" is the empty response of
/// RFC 4954 §4, "*" cancels).
pub(crate) fn decode_response(line: &str) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_end_matches(['\r', '\n']);
    match line {
        "*" => Err(SaslError::Cancelled),
        "=" => Ok(Vec::new()),
        _ => BASE64.decode(line).map_err(|_| SaslError::BadBase64),
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. Acting for another
/// identity is not supported, so authzid must be empty or the same user.
pub(crate) fn parse_plain(decoded: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = decoded.split(|b| *b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed);
    let (authz, username, password) = (text(authz)?, text(user)?, text(pass)?);
    if username.is_empty() || (!authz.is_empty() && authz != username) {
        return Err(SaslError::Malformed);
    }
    Ok(Credentials { username, password })
}

impl Session {
    pub(crate) async fn auth(&mut self, mechanism: AuthMechanism, initial: Option<String>) -> Flow {
        let ctx = self.ctx.clone();
        let Some(sub) = ctx.submission() else {
            // An MX takes mail without AUTH and offers none.
            return self.refuse("syntax", Reply::new(502, "5.5.1", "AUTH not available"));
        };
        if self.auth.is_some() {
            return self.refuse("bad_sequence", Reply::bad_sequence("Already authenticated"));
        }
        if !matches!(&self.helo, Some(h) if h.esmtp) {
            return self.refuse("bad_sequence", Reply::bad_sequence("Send EHLO first"));
        }
        if self.tx.is_some() {
            return self.refuse(
                "bad_sequence",
                Reply::bad_sequence("AUTH not permitted during a mail transaction"),
            );
        }
        if !self.auth_allowed_here() {
            return self.refuse("encryption_required", Reply::encryption_required());
        }
        if sub.auth_guard.is_locked(self.peer.ip()) {
            return self.refuse("auth_locked_out", Reply::auth_locked_out());
        }
        let credentials = match mechanism {
            AuthMechanism::Plain => {
                let response = match initial {
                    Some(r) => Ok(r),
                    None => self.challenge("").await,
                };
                match response {
                    Ok(r) => decode_response(&r).and_then(|d| parse_plain(&d)),
                    Err(stop) => return self.stop(stop),
                }
            }
            AuthMechanism::Login => {
                // "Username:" and "Password:" in base64, as clients expect.
                let user = match initial {
                    Some(r) => Ok(r),
                    None => self.challenge("VXNlcm5hbWU6").await,
                };
                let user = match user {
                    Ok(r) => decode_response(&r),
                    Err(stop) => return self.stop(stop),
                };
                match user {
                    Ok(user) => match self.challenge("UGFzc3dvcmQ6").await {
                        Ok(pass) => decode_response(&pass).and_then(|pass| {
                            Ok(Credentials {
                                username: String::from_utf8(user)
                                    .map_err(|_| SaslError::Malformed)?,
                                password: String::from_utf8(pass)
                                    .map_err(|_| SaslError::Malformed)?,
                            })
                        }),
                        Err(stop) => return self.stop(stop),
                    },
                    Err(e) => Err(e),
                }
            }
            AuthMechanism::Other(_) => {
                return self.refuse(
                    "syntax",
                    Reply::new(504, "5.5.4", "Unrecognized authentication mechanism"),
                )
            }
        };
        let credentials = match credentials {
            Ok(c) => c,
            Err(e) => return self.refuse("syntax", e.reply()),
        };
        let verified = sub
            .accounts
            .verify_smtp(&credentials.username, &credentials.password)
            .await;
        let account = match verified {
            Ok(Some(account)) => account,
            Ok(None) => {
                self.ctx.metrics.auth_failures.inc();
                let delay = sub.auth_guard.failed(self.peer.ip());
                tracing::info!(peer = %self.peer, "SMTP authentication failed");
                // The delay is real time on purpose: it slows the guesser.
                let _ = self.flush().await;
                tokio::time::sleep(delay).await;
                return self.refuse("auth_failed", Reply::bad_credentials());
            }
            Err(e) => {
                tracing::error!(error = %e, "credential check failed");
                return self.refuse(
                    "tempfail",
                    Reply::new(454, "4.7.0", "Temporary authentication failure"),
                );
            }
        };
        let workspace = match sub.accounts.workspace(&account.workspace_id).await {
            Ok(Some(ws)) => ws,
            _ => {
                return self.refuse(
                    "tempfail",
                    Reply::new(454, "4.7.0", "Temporary authentication failure"),
                )
            }
        };
        self.auth = Some(Authenticated { account, workspace });
        self.reply(Reply::new(235, "2.7.0", "Authentication successful"))
    }

    /// Sends a 334 challenge and reads the client's response line.
    async fn challenge(&mut self, text: &str) -> Result<String, ReadStop> {
        self.out
            .extend_from_slice(format!("334 {text}\r\n").as_bytes());
        self.flush().await.map_err(|_| ReadStop::Io)?;
        match self
            .read_line_timed(super::MAX_LINE * 4, self.ctx.config.command_timeout())
            .await?
        {
            Line::Complete(bytes) => String::from_utf8(bytes).map_err(|_| ReadStop::Io),
            Line::TooLong | Line::Eof => Err(ReadStop::Io),
        }
    }

    /// Ends the session after a read stopped in the middle of a step.
    pub(crate) fn stop(&mut self, stop: ReadStop) -> Flow {
        if let ReadStop::Timeout = stop {
            let reply = Reply::timeout(&self.ctx.config.hostname);
            self.push(&reply);
        }
        Flow::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_variants() {
        assert_eq!(
            parse_plain(b"\0user\0pass"),
            Ok(Credentials {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert!(parse_plain(b"user\0user\0pass").is_ok());
        assert_eq!(parse_plain(b"admin\0user\0pass"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0\0pass"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"userpass"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0u\0p\0x"), Err(SaslError::Malformed));
    }

    #[test]
    fn responses() {
        assert_eq!(decode_response("*\r\n"), Err(SaslError::Cancelled));
        assert_eq!(decode_response("="), Ok(vec![]));
        assert_eq!(decode_response("!!!"), Err(SaslError::BadBase64));
        assert_eq!(decode_response("dXNlcg==\r\n"), Ok(b"user".to_vec()));
    }
}
