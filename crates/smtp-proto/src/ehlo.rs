//! The service extensions of an EHLO reply (RFC 5321 §4.1.1.1): what a
//! server announces and what a client reads back, in one type.

use crate::reply::{RemoteReply, Reply};

/// The extensions a server offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 1870: the largest message, in octets (`SIZE 0` or a bare
    /// `SIZE` announce no fixed limit and read back as `None`).
    pub size: Option<u64>,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
    /// RFC 3030 (BDAT).
    pub chunking: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 4954: the SASL mechanisms offered, e.g. `PLAIN`, `LOGIN`.
    pub auth: Vec<String>,
    /// RFC 5321 §4.1.1.8.
    pub help: bool,
}

impl Extensions {
    /// Reads the extensions from a server's EHLO reply (every line after
    /// the first is one keyword with its parameters).
    pub fn parse(reply: &RemoteReply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines().skip(1) {
            let mut parts = line.split_ascii_whitespace();
            let Some(keyword) = parts.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => ext.size = parts.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0),
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                "CHUNKING" => ext.chunking = true,
                "STARTTLS" => ext.starttls = true,
                "AUTH" => ext.auth = parts.map(|m| m.to_ascii_uppercase()).collect(),
                "HELP" => ext.help = true,
                _ => {}
            }
        }
        ext
    }

    /// The `250` reply announcing these extensions after `first_line`
    /// (`"<host> greets <client>"`).
    pub fn reply(&self, first_line: String) -> Reply {
        let mut lines = vec![first_line];
        let mut add = |on: bool, keyword: &str| {
            if on {
                lines.push(keyword.to_string());
            }
        };
        add(self.pipelining, "PIPELINING");
        if let Some(size) = self.size {
            add(true, &format!("SIZE {size}"));
        }
        add(self.eight_bit_mime, "8BITMIME");
        add(self.smtputf8, "SMTPUTF8");
        add(self.enhanced_status_codes, "ENHANCEDSTATUSCODES");
        add(self.chunking, "CHUNKING");
        add(self.starttls, "STARTTLS");
        if !self.auth.is_empty() {
            add(true, &format!("AUTH {}", self.auth.join(" ")));
        }
        add(self.help, "HELP");
        Reply::plain(250, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_announced_is_read_back() {
        let ext = Extensions {
            pipelining: true,
            size: Some(1000),
            eight_bit_mime: true,
            starttls: true,
            auth: vec!["PLAIN".into(), "LOGIN".into()],
            help: true,
            ..Extensions::default()
        };
        let reply = ext.reply("mx.example greets client".into());
        assert_eq!(
            reply.to_string(),
            "250-mx.example greets client\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 HELP"
        );
        let mut wire = Vec::new();
        reply.write_to(&mut wire);
        let text = String::from_utf8(wire).unwrap();
        let received = RemoteReply::from_lines(text.lines()).unwrap();
        assert_eq!(Extensions::parse(&received), ext);
    }

    #[test]
    fn keywords_are_case_insensitive_and_unknown_ones_ignored() {
        let r = RemoteReply::from_lines([
            "250-mx.example",
            "250-pipelining",
            "250-SIZE",
            "250-X-EXPERIMENTAL 1",
            "250 smtputf8",
        ])
        .unwrap();
        let c = Extensions::parse(&r);
        assert!(c.pipelining && c.smtputf8 && !c.starttls);
        assert_eq!(c.size, None);
    }
}
