//! What a message received by the MX is: a delivery status notification
//! (RFC 3464), a feedback report (RFC 5965), an automatic reply, or
//! something we cannot read. Pure: bytes in, a [`Report`] out.
//!
//! Both kinds of report are a `multipart/report` (RFC 6522) whose
//! `report-type` names the machine-readable part that follows the human
//! one, then (optionally) the original message or its header section.
//! The report may itself be wrapped (a provider adding a footer in a
//! `multipart/mixed`), so it is looked for among all the parts of the
//! message, not only at the top; never inside an attached message (a
//! report about a report is not about our message).

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use crate::arf::Feedback;
use crate::dsn::Dsn;

/// Blocks (and fields per block) read from a machine-readable part at
/// most: a report names one recipient per block, and ours one recipient
/// per message.
const MAX_BLOCKS: usize = 100;
const MAX_FIELDS: usize = 100;
/// Octets of a field value kept: what a report quotes (a remote reply, a
/// user agent) ends up in the message's history, its events and their
/// webhooks, so a hostile report cannot make them large.
pub(crate) const MAX_VALUE: usize = 2048;

/// What arrived.
#[derive(Debug)]
pub enum Report {
    Delivery(Dsn),
    Feedback(Feedback),
    /// An out-of-office or other automatic reply (RFC 3834): not a bounce.
    AutoReply,
    /// Anything else (a plain-text bounce, a person writing back, garbage),
    /// and why.
    Unreadable(&'static str),
}

/// What a report returns of the original message that can name it: every
/// one of these is checked against our signature before it is believed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Original {
    /// `Return-Path:` addresses (the receiving side records our VERP
    /// envelope sender there).
    pub return_paths: Vec<String>,
    /// URLs of `List-Unsubscribe:` (ours carry a signed token naming the
    /// recipient).
    pub unsubscribe_urls: Vec<String>,
    pub message_id: Option<String>,
}

/// Reads a received message.
pub fn read(raw: &[u8]) -> Report {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Report::Unreadable("no header section");
    };
    if let Some(report) = find_report(&message) {
        return report;
    }
    if is_auto_reply(&message) {
        return Report::AutoReply;
    }
    Report::Unreadable("not a multipart/report")
}

/// The first `multipart/report` among the message's parts, read.
fn find_report(message: &Message<'_>) -> Option<Report> {
    let (at, part) = message.parts.iter().enumerate().find(|(_, p)| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
    })?;
    let report_type = part
        .content_type()
        .and_then(|ct| ct.attribute("report-type"))
        .unwrap_or("")
        .to_ascii_lowercase();
    let ids = match &part.body {
        PartType::Multipart(ids) => ids.clone(),
        _ => Vec::new(),
    };
    let mut machine = None;
    let mut original = Original::default();
    for id in ids {
        // A part never contains itself; a malformed tree must not loop.
        if id as usize == at {
            continue;
        }
        let Some(p) = message.parts.get(id as usize) else {
            continue;
        };
        let Some(ct) = p.content_type() else {
            continue;
        };
        let kind = format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase()
        );
        match kind.as_str() {
            "message/delivery-status"
            | "message/global-delivery-status"
            | "message/feedback-report"
                if machine.is_none() =>
            {
                machine = Some((kind, String::from_utf8_lossy(p.contents()).into_owned()));
            }
            "message/rfc822" | "message/global" => {
                if let PartType::Message(m) = &p.body {
                    original = original_of(m);
                }
            }
            "text/rfc822-headers" | "message/global-headers" => {
                if let Some(m) = MessageParser::default().parse_headers(p.contents()) {
                    original = original_of(&m);
                }
            }
            _ => {}
        }
    }
    let report = match (report_type.as_str(), machine) {
        ("delivery-status" | "global-delivery-status", Some((kind, text)))
            if kind.ends_with("delivery-status") =>
        {
            match Dsn::read(&text, original) {
                Some(dsn) => Report::Delivery(dsn),
                None => Report::Unreadable("delivery-status part names no recipient"),
            }
        }
        ("feedback-report", Some((kind, text))) if kind == "message/feedback-report" => {
            let sender = message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_string);
            match Feedback::read(&text, sender.as_deref(), original) {
                Some(report) => Report::Feedback(report),
                None => Report::Unreadable("feedback report without Feedback-Type"),
            }
        }
        ("delivery-status" | "global-delivery-status", _) => {
            Report::Unreadable("delivery-status report without its status part")
        }
        ("feedback-report", _) => Report::Unreadable("feedback report without its report part"),
        _ => Report::Unreadable("multipart/report of another type"),
    };
    Some(report)
}

/// RFC 3834 `Auto-Submitted`, and the fields and subjects of the
/// auto-responders that predate it (Exchange, vacation(1), cPanel).
fn is_auto_reply(message: &Message<'_>) -> bool {
    let header = |name: &str| {
        message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if header("Auto-Submitted").is_some_and(|v| !v.starts_with("no")) {
        return true;
    }
    if header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("Precedence").is_some_and(|v| v == "auto_reply")
    {
        return true;
    }
    let subject = message.subject().unwrap_or("").trim().to_ascii_lowercase();
    [
        "automatic reply:",
        "auto:",
        "autoreply",
        "auto reply",
        "out of office",
        "out of the office",
    ]
    .iter()
    .any(|p| subject.starts_with(p))
}

/// The identifying fields of the original message (or its header
/// section).
fn original_of(m: &Message<'_>) -> Original {
    let mut original = Original::default();
    for (name, value) in m.headers_raw() {
        let value = unfold(value);
        if name.eq_ignore_ascii_case("Return-Path") {
            if let Some(a) = angle_addresses(&value).into_iter().next() {
                original.return_paths.push(a);
            } else if !value.is_empty() {
                original.return_paths.push(value);
            }
        } else if name.eq_ignore_ascii_case("List-Unsubscribe") {
            original.unsubscribe_urls.extend(
                angle_addresses(&value)
                    .into_iter()
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://")),
            );
        } else if name.eq_ignore_ascii_case("Message-ID") && original.message_id.is_none() {
            original.message_id = angle_addresses(&value).into_iter().next();
        }
    }
    original
}

/// The `<…>` items of a field value.
pub(crate) fn angle_addresses(value: &str) -> Vec<String> {
    value
        .split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>'))
        .map(|(inside, _)| inside.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A field value with its line breaks removed.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The blocks of a machine-readable report part: groups of `Name: value`
/// fields separated by blank lines (the per-message fields, then one group
/// per recipient), with continuation lines unfolded and names lowercased.
/// Lines that are not fields are skipped.
pub(crate) fn blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                if blocks.len() == MAX_BLOCKS {
                    return blocks;
                }
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
                clip(value, MAX_VALUE);
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(' ') || current.len() == MAX_FIELDS {
            continue;
        }
        let mut value = value.trim().to_string();
        clip(&mut value, MAX_VALUE);
        current.push((name.to_ascii_lowercase(), value));
    }
    if !current.is_empty() && blocks.len() < MAX_BLOCKS {
        blocks.push(current);
    }
    blocks
}

/// Cuts `s` to at most `max` octets, at a character boundary.
pub(crate) fn clip(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// The value of field `name` (lowercase) in a block.
pub(crate) fn field<'b>(block: &'b [(String, String)], name: &str) -> Option<&'b str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The address of a typed address field (`rfc822; ada@example.com`),
/// without angle brackets.
pub(crate) fn typed_address(value: &str) -> String {
    let address = value.split_once(';').map_or(value, |(_, a)| a).trim();
    let address = address
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(address);
    address.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unfold_and_split() {
        let text = "Reporting-MTA: dns; mx.example\r\nArrival-Date: Mon,\r\n 1 Dec 2026\r\n\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nnot a field\r\n\r\nFinal-Recipient: rfc822;<c@d.example>\n";
        let b = blocks(text);
        assert_eq!(b.len(), 3);
        assert_eq!(field(&b[0], "arrival-date"), Some("Mon, 1 Dec 2026"));
        assert_eq!(field(&b[1], "action"), Some("failed"));
        assert_eq!(
            typed_address(field(&b[2], "final-recipient").unwrap()),
            "c@d.example"
        );
        assert!(blocks("").is_empty());
        let many = "A: b\n\n".repeat(10_000);
        assert_eq!(blocks(&many).len(), MAX_BLOCKS);
        // Values are cut, at a character boundary, however they grow.
        let long = format!("A: {}\n {}\n", "é".repeat(5000), "x".repeat(5000));
        let b = blocks(&long);
        assert!(b[0][0].1.len() <= MAX_VALUE && b[0][0].1.starts_with("éé"));
    }

    #[test]
    fn not_reports() {
        assert!(matches!(read(b""), Report::Unreadable(_)));
        assert!(matches!(
            read(b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n"),
            Report::Unreadable("not a multipart/report")
        ));
        assert!(matches!(
            read(b"From: a@b.example\r\nAuto-Submitted: auto-replied\r\nSubject: away\r\n\r\nback monday\r\n"),
            Report::AutoReply
        ));
        assert!(matches!(
            read(b"From: a@b.example\r\nAuto-Submitted: no\r\nSubject: Re: hi\r\n\r\nthanks\r\n"),
            Report::Unreadable(_)
        ));
        assert!(matches!(
            read(b"From: a@b.example\r\nSubject: Out of Office: hi\r\n\r\naway\r\n"),
            Report::AutoReply
        ));
    }

    #[test]
    fn nested_parts_a_hundred_deep_are_not_a_report() {
        let mut m = String::from("From: a@b.example\r\nMIME-Version: 1.0\r\n");
        for i in 0..100 {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        m.push_str("Content-Type: text/plain\r\n\r\nx\r\n");
        assert!(matches!(read(m.as_bytes()), Report::Unreadable(_)));
    }
}
