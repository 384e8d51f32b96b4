//! SMTP replies: a code, an RFC 3463 enhanced status code and text. Every
//! reply the server sends is built here, so the exact wording of each refusal
//! lives in one place (apps and tests match on them).

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
}
