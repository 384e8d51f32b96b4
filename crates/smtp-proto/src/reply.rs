//! SMTP replies: a code, an RFC 3463 enhanced status code and text.
//!
//! [`Reply`] is a reply we send: every reply the server sends is built
//! here, so the exact wording of each refusal lives in one place (apps and
//! tests match on them). [`RemoteReply`] is a reply we receive, parsed once
//! here for the delivery client, the load generator, the bounce classifier
//! and the tests.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code (RFC 2034); absent only on the greeting and
    /// the EHLO capability list, as RFC 2034 §3 allows.
    pub status: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (greeting, EHLO).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status: None,
            lines,
        }
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form (CRLF-terminated, `-` on all but the last line).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(sep as u8);
            if let Some(status) = self.status {
                out.extend_from_slice(status.as_bytes());
                out.push(b' ');
            }
            // Text never carries CR or LF: a reply must not be able to
            // inject a second reply.
            out.extend(line.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
    }

    // The replies of PRODUCT.md and RFC 5321, by name.

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }
    pub fn bye(host: &str) -> Reply {
        Reply::new(221, "2.0.0", format!("{host} closing connection"))
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, "5.7.0", "Authentication required")
    }
    pub fn encryption_required() -> Reply {
        Reply::new(
            538,
            "5.7.11",
            "Encryption required for requested authentication mechanism",
        )
    }
    pub fn bad_credentials() -> Reply {
        Reply::new(535, "5.7.8", "Authentication credentials invalid")
    }
    pub fn auth_locked_out() -> Reply {
        Reply::new(
            454,
            "4.7.0",
            "Too many failed authentication attempts from your address, try again later",
        )
    }
    pub fn quota_exceeded() -> Reply {
        Reply::new(550, "5.4.5", "Daily sending quota exceeded")
    }
    pub fn too_large(limit: u64) -> Reply {
        Reply::new(
            552,
            "5.3.4",
            format!("Message size exceeds fixed maximum message size of {limit} octets"),
        )
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Too many recipients")
    }
    pub fn bad_sequence(text: &str) -> Reply {
        Reply::new(503, "5.5.1", text.to_string())
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Line too long")
    }
    pub fn timeout(host: &str) -> Reply {
        Reply::new(
            421,
            "4.4.2",
            format!("{host} timeout exceeded, closing connection"),
        )
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "Too many errors, closing connection")
    }
    pub fn shutting_down(host: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{host} service shutting down, closing connection"),
        )
    }
    pub fn temporary_failure() -> Reply {
        Reply::new(
            451,
            "4.3.0",
            "Temporary local problem, please try again later",
        )
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::new();
        self.write_to(&mut buf);
        f.write_str(String::from_utf8_lossy(&buf).trim_end())
    }
}

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    /// Parses `5.1.1` (or qmail/IronPort's `#5.1.1`). The class must be 2, 4
    /// or 5, subject and detail 1 to 3 digits.
    pub fn parse(s: &str) -> Option<Enhanced> {
        let s = s.strip_prefix('#').unwrap_or(s);
        let mut parts = s.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let digits = |p: &str, max: usize| {
            !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
        };
        if !(digits(class, 1) && digits(subject, 3) && digits(detail, 3)) {
            return None;
        }
        let class: u8 = class.parse().ok()?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(Enhanced {
            class,
            subject: subject.parse().ok()?,
            detail: detail.parse().ok()?,
        })
    }

    /// qmail and IronPort put the code in the text: `... (#5.1.1)`.
    pub fn find_in_text(text: &str) -> Option<Enhanced> {
        text.match_indices('#').find_map(|(i, _)| {
            let rest = &text[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            Enhanced::parse(&rest[..end])
        })
    }
}

/// Splits a raw reply line like `550-5.1.1 The email account...` or
/// `421 4.7.0 [TSS04] Messages ...` into (code, enhanced, text); `None` if
/// it does not start with a 3-digit code followed by a space, a hyphen
/// (continuation line) or the end of the line.
///
/// The enhanced code is the first word of the text if it has the RFC 3463
/// form (`5.1.1`, also IronPort's `#5.1.0`); it is returned without `#`.
pub fn parse_reply_line(line: &str) -> Option<(u16, Option<String>, String)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let bytes = line.as_bytes();
    if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 3 && !matches!(bytes[3], b' ' | b'-' | b'\t') {
        return None;
    }
    let code: u16 = line[..3].parse().ok()?;
    let rest = line.get(4..).unwrap_or("").trim_start();
    let first = rest.split_whitespace().next().unwrap_or("");
    match Enhanced::parse(first) {
        Some(_) => {
            let enhanced = first.strip_prefix('#').unwrap_or(first).to_string();
            let text = rest[first.len()..].trim().to_string();
            Some((code, Some(enhanced), text))
        }
        None => Some((code, None, rest.trim().to_string())),
    }
}

/// A reply as received from a remote server (the delivery client's view of
/// the MX, the load generator's of the server under test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    pub code: u16,
    /// The first enhanced status code of the reply, without `#`.
    pub enhanced: Option<String>,
    /// The text of all lines, without codes, joined with a space.
    pub text: String,
    /// The reply as received, lines joined with `\n`, for logs.
    pub raw: String,
}

impl RemoteReply {
    /// Builds a reply from its lines (without line endings); `None` if a
    /// line is not a reply line. The code is the first line's (RFC 5321
    /// §4.2.1: every line of a reply has the same code).
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<RemoteReply> {
        let mut code = None;
        let mut enhanced = None;
        let mut texts: Vec<String> = Vec::new();
        let mut raw: Vec<&str> = Vec::new();
        for line in lines {
            let (c, e, t) = parse_reply_line(line)?;
            code.get_or_insert(c);
            if enhanced.is_none() {
                enhanced = e;
            }
            if !t.is_empty() {
                texts.push(t);
            }
            raw.push(line.trim_end_matches(['\r', '\n']));
        }
        Some(RemoteReply {
            code: code?,
            enhanced,
            text: texts.join(" "),
            raw: raw.join("\n"),
        })
    }

    /// A reply made up for a refusal decided locally, so it is classified
    /// and logged like a remote one.
    pub fn synthetic(code: u16, enhanced: &str, text: &str) -> RemoteReply {
        RemoteReply {
            code,
            enhanced: Some(enhanced.to_string()),
            text: text.to_string(),
            raw: format!("{code} {enhanced} {text}"),
        }
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// Each line's text after the code and its separator (the enhanced
    /// code included), as written.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.raw.split('\n').map(|l| l.get(4..).unwrap_or(""))
    }

    /// Whether another line of the same reply follows `line` (`250-…`).
    pub fn continues(line: &str) -> bool {
        line.as_bytes().get(3) == Some(&b'-')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multiline_wire_form() {
        let mut out = Vec::new();
        Reply::quota_exceeded().write_to(&mut out);
        assert_eq!(out, b"550 5.4.5 Daily sending quota exceeded\r\n");
        let mut out = Vec::new();
        Reply::plain(250, vec!["a".into(), "b".into()]).write_to(&mut out);
        assert_eq!(out, b"250-a\r\n250 b\r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let mut out = Vec::new();
        Reply::new(250, "2.0.0", "x\r\n250 y").write_to(&mut out);
        assert_eq!(out, b"250 2.0.0 x250 y\r\n");
    }
    #[test]
    fn parse_reply_line_variants() {
        assert_eq!(
            parse_reply_line("550-5.1.1 The email account that you tried to reach does not exist."),
            Some((
                550,
                Some("5.1.1".into()),
                "The email account that you tried to reach does not exist.".into()
            ))
        );
        assert_eq!(
            parse_reply_line(
                "421 4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred\r\n"
            ),
            Some((
                421,
                Some("4.7.0".into()),
                "[TSS04] Messages from 203.0.113.5 temporarily deferred".into()
            ))
        );
        // No enhanced code.
        assert_eq!(
            parse_reply_line("550 Requested action not taken: mailbox unavailable"),
            Some((
                550,
                None,
                "Requested action not taken: mailbox unavailable".into()
            ))
        );
        assert_eq!(
            parse_reply_line("554 30 Sorry"),
            Some((554, None, "30 Sorry".into()))
        );
        assert_eq!(
            parse_reply_line("250-PIPELINING"),
            Some((250, None, "PIPELINING".into()))
        );
        assert_eq!(parse_reply_line("250"), Some((250, None, String::new())));
        assert_eq!(
            parse_reply_line("250 2.0.0"),
            Some((250, Some("2.0.0".into()), String::new()))
        );
        // IronPort's '#'.
        assert_eq!(
            parse_reply_line("550 #5.1.0 Address rejected"),
            Some((550, Some("5.1.0".into()), "Address rejected".into()))
        );
        // Not enhanced codes.
        assert_eq!(
            parse_reply_line("421 4.16.55.1 x"),
            Some((421, None, "4.16.55.1 x".into()))
        );
        assert_eq!(
            parse_reply_line("550 3.1.1 x"),
            Some((550, None, "3.1.1 x".into()))
        );
        // Not replies.
        assert_eq!(parse_reply_line(""), None);
        assert_eq!(parse_reply_line("55"), None);
        assert_eq!(parse_reply_line("5500 x"), None);
        assert_eq!(parse_reply_line("abc def"), None);
        assert_eq!(parse_reply_line("Service unavailable"), None);
    }

    #[test]
    fn remote_replies_from_lines() {
        let r =
            RemoteReply::from_lines(["250-mx.example", "250-PIPELINING", "250 SIZE 1000"]).unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.raw, "250-mx.example\n250-PIPELINING\n250 SIZE 1000");
        assert_eq!(
            r.lines().collect::<Vec<_>>(),
            ["mx.example", "PIPELINING", "SIZE 1000"]
        );
        assert!(RemoteReply::continues("250-x") && !RemoteReply::continues("250 x"));
        assert!(RemoteReply::from_lines(["not a reply"]).is_none());
        assert!(RemoteReply::from_lines(std::iter::empty()).is_none());
        let s = RemoteReply::synthetic(550, "5.1.2", "no such domain");
        assert_eq!(RemoteReply::from_lines([s.raw.as_str()]).unwrap(), s);
    }
}
