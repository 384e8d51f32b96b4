//! Parsing of SMTP command lines (RFC 5321 §4.1 and the extensions we
//! advertise). Pure functions over bytes, no I/O, so they are unit tested and
//! benchmarked on their own. The submission server and the benchmark sink
//! both read their commands with [`parse`].

use crate::address::is_mailbox;
use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: String,
        params: MailParams,
    },
    Rcpt {
        to: String,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy,
    Expn,
    StartTls,
    Auth {
        mechanism: AuthMechanism,
        initial: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMechanism {
    Plain,
    Login,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// RFC 1870 SIZE= declared by the client.
    pub size: Option<u64>,
    pub body: Body,
    /// RFC 6531 SMTPUTF8.
    pub smtputf8: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
    /// RFC 3030 BINARYMIME: only with BDAT; we do not advertise it, so it is
    /// refused, but we recognize it to say why.
    BinaryMime,
}

/// Why a command line was refused; each maps to one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Verb not recognized (500 5.5.1).
    Unrecognized,
    /// Verb known, arguments malformed (501 5.5.4).
    Syntax(&'static str),
    /// Address malformed (501 5.1.3 for recipients, 5.1.7 for senders).
    BadAddress { sender: bool },
    /// A MAIL or RCPT parameter we did not advertise (555 5.5.4).
    UnknownParameter(String),
}

impl ParseError {
    pub fn reply(&self) -> Reply {
        match self {
            ParseError::Unrecognized => Reply::new(500, "5.5.1", "Command unrecognized"),
            ParseError::Syntax(what) => Reply::new(501, "5.5.4", format!("Syntax: {what}")),
            ParseError::BadAddress { sender: true } => {
                Reply::new(501, "5.1.7", "Bad sender address syntax")
            }
            ParseError::BadAddress { sender: false } => {
                Reply::new(501, "5.1.3", "Bad recipient address syntax")
            }
            ParseError::UnknownParameter(p) => Reply::new(
                555,
                "5.5.4",
                format!(
                    "Parameter {} not recognized",
                    p.chars().take(64).collect::<String>()
                ),
            ),
        }
    }
}

/// Parses one command line (with or without its CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = trim_crlf(line);
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("invalid UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    if verb.len() > 10 {
        return Err(ParseError::Unrecognized);
    }
    let verb = verb.to_ascii_uppercase();
    let no_args = |cmd: Command, syntax: &'static str| {
        if rest.trim().is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::Syntax(syntax))
        }
    };
    match verb.as_str() {
        "EHLO" | "HELO" => {
            let domain = rest.trim();
            if domain.is_empty() || domain.contains(char::is_whitespace) || domain.len() > 255 {
                return Err(ParseError::Syntax(if verb == "EHLO" {
                    "EHLO domain"
                } else {
                    "HELO domain"
                }));
            }
            let domain = domain.to_string();
            Ok(if verb == "EHLO" {
                Command::Ehlo(domain)
            } else {
                Command::Helo(domain)
            })
        }
        "MAIL" => {
            let arg =
                strip_prefix_ci(rest, "FROM:").ok_or(ParseError::Syntax("MAIL FROM:<address>"))?;
            let (path, params) = split_path(arg).ok_or(ParseError::BadAddress { sender: true })?;
            let from = if path == "<>" {
                String::new()
            } else {
                parse_path(path).ok_or(ParseError::BadAddress { sender: true })?
            };
            Ok(Command::Mail {
                from,
                params: parse_mail_params(params)?,
            })
        }
        "RCPT" => {
            let arg =
                strip_prefix_ci(rest, "TO:").ok_or(ParseError::Syntax("RCPT TO:<address>"))?;
            let (path, params) = split_path(arg).ok_or(ParseError::BadAddress { sender: false })?;
            let to = parse_path(path).ok_or(ParseError::BadAddress { sender: false })?;
            if let Some(p) = params.split_ascii_whitespace().next() {
                return Err(ParseError::UnknownParameter(p.to_string()));
            }
            Ok(Command::Rcpt { to })
        }
        "DATA" => no_args(Command::Data, "DATA takes no arguments"),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_args(Command::Rset, "RSET takes no arguments"),
        // NOOP, HELP, VRFY and EXPN may carry any argument; it is ignored.
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit, "QUIT takes no arguments"),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "STARTTLS" => no_args(Command::StartTls, "STARTTLS takes no arguments"),
        "AUTH" => {
            let mut parts = rest.split_ascii_whitespace();
            let mech = parts
                .next()
                .ok_or(ParseError::Syntax("AUTH mechanism [initial-response]"))?;
            let initial = parts.next().map(str::to_string);
            if parts.next().is_some() {
                return Err(ParseError::Syntax("AUTH mechanism [initial-response]"));
            }
            let mechanism = match mech.to_ascii_uppercase().as_str() {
                "PLAIN" => AuthMechanism::Plain,
                "LOGIN" => AuthMechanism::Login,
                other => AuthMechanism::Other(other.to_string()),
            };
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(ParseError::Unrecognized),
    }
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s[prefix.len()..].trim_start())
}

/// Splits `<path> params` at the closing bracket (which may not be inside a
/// quoted local part).
fn split_path(arg: &str) -> Option<(&str, &str)> {
    if !arg.starts_with('<') {
        return None;
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in arg.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let rest = &arg[i + 1..];
                if !rest.is_empty() && !rest.starts_with(' ') {
                    return None;
                }
                return Some((&arg[..=i], rest.trim()));
            }
            _ => {}
        }
    }
    None
}

/// `<[@route,@route:]local@domain>` to `local@domain`; the source route of
/// RFC 5321 §4.1.2 is accepted and ignored, as §3.3 requires.
fn parse_path(path: &str) -> Option<String> {
    let inner = path.strip_prefix('<')?.strip_suffix('>')?;
    let inner = if inner.starts_with('@') {
        &inner[inner.find(':')? + 1..]
    } else {
        inner
    };
    is_mailbox(inner).then(|| inner.to_string())
}

fn parse_mail_params(params: &str) -> Result<MailParams, ParseError> {
    let mut out = MailParams::default();
    for param in params.split_ascii_whitespace() {
        let (key, value) = match param.find('=') {
            Some(i) => (&param[..i], Some(&param[i + 1..])),
            None => (param, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                let size = v
                    .parse::<u64>()
                    .map_err(|_| ParseError::Syntax("SIZE=<octets>"))?;
                out.size = Some(size);
            }
            ("BODY", Some(v)) => {
                out.body = match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(ParseError::Syntax("BODY=7BIT or BODY=8BITMIME")),
                };
            }
            ("SMTPUTF8", None) => out.smtputf8 = true,
            // RFC 4954 §5: AUTH=<> or the submitter; recorded, not trusted.
            ("AUTH", Some(_)) => {}
            _ => return Err(ParseError::UnknownParameter(param.to_string())),
        }
    }
    Ok(out)
}

fn parse_bdat(rest: &str) -> Result<Command, ParseError> {
    const SYNTAX: &str = "BDAT <size> [LAST]";
    let mut parts = rest.split_ascii_whitespace();
    let size = parts
        .next()
        .filter(|s| s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(ParseError::Syntax(SYNTAX))?;
    let last = match parts.next() {
        None => false,
        Some(l) if l.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(ParseError::Syntax(SYNTAX)),
    };
    if parts.next().is_some() {
        return Err(ParseError::Syntax(SYNTAX));
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(line: &str) -> (String, MailParams) {
        match parse(line.as_bytes()).unwrap() {
            Command::Mail { from, params } => (from, params),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            parse(b"ehlo client.example\r\n"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(parse(b"QuIt\r\n"), Ok(Command::Quit));
        assert_eq!(parse(b"noop anything at all\r\n"), Ok(Command::Noop));
        assert_eq!(parse(b"StartTLS\r\n"), Ok(Command::StartTls));
    }

    #[test]
    fn mail_from_with_params() {
        let (from, p) = mail("MAIL FROM:<a.b+c@example.com> SIZE=2048 BODY=8BITMIME SMTPUTF8\r\n");
        assert_eq!(from, "a.b+c@example.com");
        assert_eq!(p.size, Some(2048));
        assert_eq!(p.body, Body::EightBitMime);
        assert!(p.smtputf8);
        assert_eq!(mail("MAIL FROM:<>").0, "");
        assert_eq!(mail("mail from: <x@y.z>").0, "x@y.z");
        assert_eq!(mail("MAIL FROM:<@relay.example:x@y.z>").0, "x@y.z");
        assert_eq!(mail("MAIL FROM:<\"a >b\"@y.z>").0, "\"a >b\"@y.z");
    }

    #[test]
    fn bad_addresses_and_params() {
        for line in [
            "MAIL FROM:a@b.c",
            "MAIL FROM:<a@>",
            "MAIL FROM:<@b.c>",
            "MAIL FROM:<a b@c.d>",
            "MAIL FROM:<a..b@c.d>",
            "MAIL FROM:<a@b..c>",
            "MAIL FROM:<a@-b.c>",
            "MAIL FROM:<a@b.c",
            "MAIL FROM:<a@b.c>junk",
        ] {
            assert_eq!(
                parse(line.as_bytes()),
                Err(ParseError::BadAddress { sender: true }),
                "{line}"
            );
        }
        assert_eq!(
            parse(b"MAIL FROM:<a@b.c> RET=FULL"),
            Err(ParseError::UnknownParameter("RET=FULL".into()))
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.c> SIZE=big"),
            Err(ParseError::Syntax("SIZE=<octets>"))
        );
        assert_eq!(
            parse(b"MAIL TO:<a@b.c>"),
            Err(ParseError::Syntax("MAIL FROM:<address>"))
        );
        assert_eq!(
            parse(b"RCPT TO:<>"),
            Err(ParseError::BadAddress { sender: false })
        );
        assert_eq!(
            parse(b"RCPT TO:<a@b.c> NOTIFY=NEVER"),
            Err(ParseError::UnknownParameter("NOTIFY=NEVER".into()))
        );
    }

    #[test]
    fn bdat() {
        assert_eq!(
            parse(b"BDAT 100"),
            Ok(Command::Bdat {
                size: 100,
                last: false
            })
        );
        assert_eq!(
            parse(b"BDAT 0 LAST"),
            Ok(Command::Bdat {
                size: 0,
                last: true
            })
        );
        assert!(parse(b"BDAT").is_err());
        assert!(parse(b"BDAT -1").is_err());
        assert!(parse(b"BDAT 99999999999999999999999").is_err());
        assert!(parse(b"BDAT 1 FIRST").is_err());
    }

    #[test]
    fn auth() {
        assert_eq!(
            parse(b"AUTH PLAIN AGEAYg=="),
            Ok(Command::Auth {
                mechanism: AuthMechanism::Plain,
                initial: Some("AGEAYg==".into())
            })
        );
        assert_eq!(
            parse(b"auth login"),
            Ok(Command::Auth {
                mechanism: AuthMechanism::Login,
                initial: None
            })
        );
        assert!(parse(b"AUTH").is_err());
    }

    #[test]
    fn garbage_never_panics() {
        for line in [
            &b""[..],
            b"\r\n",
            b"\xff\xfe",
            b"MAIL",
            b"MAIL FROM:",
            b"MAIL FROM:<",
            b"RCPT TO:<\"unterminated@x>",
            b"EHLO",
            b"XYZZYXYZZYXYZZY",
            b"DATA now",
        ] {
            assert!(parse(line).is_err(), "{line:?}");
        }
    }
}
