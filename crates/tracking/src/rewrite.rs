//! Tracked links and the open pixel, written into the HTML parts of a
//! message with a streaming HTML rewriter (`lol_html`), never with
//! regular expressions.
//!
//! A message is read once ([`Prepared::new`]): its HTML body parts at any
//! depth of `multipart/alternative`, `related` and `mixed` (attachments and
//! attached messages are left alone), each decoded from its transfer
//! encoding but kept in its own charset, which the rewriter reads and
//! writes as it is. Then each recipient's copy is rendered
//! ([`Prepared::render`]): every part rewritten with that recipient's
//! tokens, encoded as it was and put back in place, the rest of the message
//! byte for byte as it came.
//!
//! Clicks: every `<a href>` to an `http`/`https` URL, except links to an
//! unsubscribe page (the URL says `unsubscribe`), links to our own
//! endpoints and links the author marks with `data-rw-notrack`; at most
//! [`MAX_TRACKED_LINKS`] per part. Opens: a 1x1 image before `</body>`, or
//! at the end of the part when it has none.

use std::cell::Cell;
use std::rc::Rc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use encoding_rs::Encoding as Charset;
use lol_html::html_content::{ContentType, EndTag};
use lol_html::{
    element, end, AsciiCompatibleEncoding, EndTagHandler, HtmlRewriter, MemorySettings, Settings,
};
use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};

use crate::{Link, Recipient, TrackingKey, MAX_TRACKED_URL_LEN};

/// Links tracked in one HTML part at most; the others stay as written.
pub const MAX_TRACKED_LINKS: usize = 5_000;
/// Memory one part's rewriting may use.
const REWRITER_MEMORY: usize = 32 * 1024 * 1024;
/// The attribute an author puts on a link that must not be tracked.
const NO_TRACK: &str = "data-rw-notrack";

/// What to track in a recipient's copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    pub opens: bool,
    pub clicks: bool,
}

/// Why a message was not rewritten (it then goes out as it came).
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("the message could not be parsed as MIME")]
    Unparseable,
    #[error("an HTML part could not be decoded: {0}")]
    Decoding(String),
    #[error("an HTML part has charset {0:?}, which the rewriter cannot read")]
    Charset(String),
    #[error("rewriting an HTML part failed: {0}")]
    Html(String),
}

/// One HTML part of a message: where its body is, how it is encoded, and
/// its decoded bytes (still in its charset).
struct HtmlPart {
    start: usize,
    end: usize,
    encoding: Encoding,
    charset: AsciiCompatibleEncoding,
    decoded: Vec<u8>,
}

/// A message read once, ready to be rendered for each recipient.
pub struct Prepared {
    parts: Vec<HtmlPart>,
}

impl Prepared {
    /// Finds and decodes the HTML body parts of `message`.
    pub fn new(message: &[u8]) -> Result<Prepared, RewriteError> {
        let parsed = MessageParser::default()
            .parse(message)
            .ok_or(RewriteError::Unparseable)?;
        let mut parts = Vec::new();
        for &id in &parsed.html_body {
            let Some(part) = parsed.parts.get(id as usize) else {
                continue;
            };
            if !matches!(part.body, PartType::Html(_)) {
                continue;
            }
            let (start, end) = (part.offset_body as usize, part.offset_end as usize);
            let raw = message
                .get(start..end)
                .ok_or_else(|| RewriteError::Decoding("part offsets out of range".into()))?;
            let decoded = match part.encoding {
                Encoding::None => raw.to_vec(),
                Encoding::QuotedPrintable => {
                    quoted_printable::decode(raw, quoted_printable::ParseMode::Robust)
                        .map_err(|e| RewriteError::Decoding(e.to_string()))?
                }
                Encoding::Base64 => {
                    let compact: Vec<u8> = raw
                        .iter()
                        .copied()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect();
                    B64.decode(compact)
                        .map_err(|e| RewriteError::Decoding(e.to_string()))?
                }
            };
            let label = part
                .content_type()
                .and_then(|ct| ct.attribute("charset"))
                .unwrap_or("utf-8");
            let charset = Charset::for_label_no_replacement(label.as_bytes())
                .and_then(AsciiCompatibleEncoding::new)
                .ok_or_else(|| RewriteError::Charset(label.to_string()))?;
            parts.push(HtmlPart {
                start,
                end,
                encoding: part.encoding,
                charset,
                decoded,
            });
        }
        parts.sort_by_key(|p| p.start);
        Ok(Prepared { parts })
    }

    /// Whether there is anything to rewrite.
    pub fn has_html(&self) -> bool {
        !self.parts.is_empty()
    }

    /// `message` (the one this was prepared from) with `who`'s links.
    pub fn render(
        &self,
        message: &[u8],
        switches: Switches,
        key: &TrackingKey,
        base_url: &str,
        who: &Recipient,
    ) -> Result<Vec<u8>, RewriteError> {
        let base = base_url.trim_end_matches('/');
        let mut out = Vec::with_capacity(message.len() + 4096);
        let mut at = 0;
        for part in &self.parts {
            let html = rewrite_html(&part.decoded, part.charset, switches, key, base, who)?;
            out.extend_from_slice(&message[at..part.start]);
            let raw = &message[part.start..part.end];
            out.extend_from_slice(&encode(&html, part.encoding, raw));
            at = part.end;
        }
        out.extend_from_slice(&message[at..]);
        Ok(out)
    }
}

/// `html` in the transfer encoding of the part it replaces (`raw`), with
/// CRLF line ends and the same final line break as before.
fn encode(html: &[u8], encoding: Encoding, raw: &[u8]) -> Vec<u8> {
    let mut body = match encoding {
        Encoding::None => html.to_vec(),
        Encoding::QuotedPrintable => {
            let text = quoted_printable::encode_to_str(html);
            text.replace("\r\n", "\n")
                .replace('\n', "\r\n")
                .into_bytes()
        }
        Encoding::Base64 => {
            let text = B64.encode(html);
            let mut out = Vec::with_capacity(text.len() + text.len() / 38);
            for (i, line) in text.as_bytes().chunks(76).enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(line);
            }
            out
        }
    };
    let had_break = raw.ends_with(b"\n");
    let has_break = body.ends_with(b"\n");
    if had_break && !has_break {
        body.extend_from_slice(b"\r\n");
    } else if !had_break && has_break {
        while body.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            body.pop();
        }
    }
    body
}

/// Runs the rewriter over one part.
fn rewrite_html(
    input: &[u8],
    charset: AsciiCompatibleEncoding,
    switches: Switches,
    key: &TrackingKey,
    base: &str,
    who: &Recipient,
) -> Result<Vec<u8>, RewriteError> {
    let pixel = format!(
        "<img src=\"{base}/o/{}\" width=\"1\" height=\"1\" alt=\"\" \
         style=\"display:block;width:1px;height:1px;border:0\">",
        key.sign(&Link::Open, who)
    );
    let pixel_placed = Rc::new(Cell::new(false));
    let tracked = Cell::new(0usize);
    let mut elements = Vec::new();
    if switches.clicks {
        elements.push(element!("a[href]", |el| {
            if tracked.get() >= MAX_TRACKED_LINKS || el.has_attribute(NO_TRACK) {
                return Ok(());
            }
            let Some(href) = el.get_attribute("href") else {
                return Ok(());
            };
            let url = decode_entities(href.trim());
            if !trackable(&url, base) {
                return Ok(());
            }
            let token = key.sign(&Link::Click(url), who);
            el.set_attribute("href", &format!("{base}/c/{token}"))?;
            tracked.set(tracked.get() + 1);
            Ok(())
        }));
    }
    if switches.opens {
        let placed = pixel_placed.clone();
        let pixel = pixel.clone();
        elements.push(element!("body", move |el| {
            let placed = placed.clone();
            let pixel = pixel.clone();
            // The first </body> gets the pixel; an unclosed body gets it
            // at the end of the part (below).
            if let Some(handlers) = el.end_tag_handlers() {
                let handler: EndTagHandler<'static> = Box::new(move |end: &mut EndTag<'_>| {
                    if !placed.get() {
                        end.before(&pixel, ContentType::Html);
                        placed.set(true);
                    }
                    Ok(())
                });
                handlers.push(handler);
            }
            Ok(())
        }));
    }
    let mut document = Vec::new();
    if switches.opens {
        let placed = pixel_placed.clone();
        document.push(end!(move |end| {
            if !placed.get() {
                end.append(&pixel, ContentType::Html);
            }
            Ok(())
        }));
    }
    let mut settings = Settings::new()
        .with_encoding(charset)
        .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(REWRITER_MEMORY));
    for handler in elements {
        settings = settings.append_element_content_handler(handler);
    }
    for handler in document {
        settings = settings.append_document_content_handler(handler);
    }
    let mut out = Vec::with_capacity(input.len() + 1024);
    let mut rewriter = HtmlRewriter::new(settings, |chunk: &[u8]| out.extend_from_slice(chunk));
    rewriter
        .write(input)
        .map_err(|e| RewriteError::Html(e.to_string()))?;
    rewriter
        .end()
        .map_err(|e| RewriteError::Html(e.to_string()))?;
    Ok(out)
}

/// Whether a link's URL is one to track.
fn trackable(url: &str, base: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && url.len() <= MAX_TRACKED_URL_LEN
        && !lower.contains("unsubscribe")
        && !url.starts_with(base)
        && !url.contains(char::is_control)
}

/// The character references an `href` may hold (`&amp;` above all),
/// decoded; anything else is kept as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..semi];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TrackingKey {
        TrackingKey::new(vec![3; 32]).unwrap()
    }

    fn who() -> Recipient {
        Recipient {
            workspace_id: "ws_1".into(),
            queue_id: "0123456789ABCDEF".into(),
            address: "ada@example.test".into(),
            list_id: None,
        }
    }

    const BASE: &str = "https://t.example.test";
    const BOTH: Switches = Switches {
        opens: true,
        clicks: true,
    };

    fn render(message: &str, switches: Switches) -> String {
        let p = Prepared::new(message.as_bytes()).unwrap();
        let out = p
            .render(message.as_bytes(), switches, &key(), BASE, &who())
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The HTML of the first HTML part of a rendered message, decoded.
    fn html_of(message: &str) -> String {
        let parsed = MessageParser::default().parse(message.as_bytes()).unwrap();
        parsed.body_html(0).unwrap().into_owned()
    }

    /// The URLs the tracked links of `html` lead to, through their tokens.
    fn click_targets(html: &str) -> Vec<String> {
        html.split(&format!("{BASE}/c/"))
            .skip(1)
            .map(|rest| {
                let token: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                    .collect();
                match key().verify(&token) {
                    Some((Link::Click(url), w)) if w == who() => url,
                    other => panic!("bad token {token}: {other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn links_and_pixel_in_a_quoted_printable_alternative() {
        let m = "From: a@b.test\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
                 --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee https://x.test/plain\r\n\
                 --b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                 <html><body><p>Gr=C3=BC=C3=9Fe <a href=3D\"https://x.test/a?b=3D1&amp;c=3D2\">a</a>\r\n\
                 <a href=3D\"mailto:x@y.test\">m</a> <a href=3D\"tel:+1\">t</a>\r\n\
                 <a href=3D\"https://x.test/unsubscribe?u=3D1\">u</a>\r\n\
                 <a data-rw-notrack href=3D\"https://x.test/private\">p</a>\r\n\
                 <a href=3D\"HTTPS://x.test/B\">B</a></p></body></html>\r\n\
                 --b1--\r\n";
        let out = render(m, BOTH);
        // The text part and the structure are untouched.
        assert!(
            out.contains("see https://x.test/plain\r\n--b1\r\n"),
            "{out}"
        );
        assert!(out.ends_with("\r\n--b1--\r\n"), "{out}");
        let html = html_of(&out);
        assert!(html.contains("Grüße"), "{html}");
        assert_eq!(
            click_targets(&html),
            ["https://x.test/a?b=1&c=2", "HTTPS://x.test/B"]
        );
        for kept in [
            "mailto:x@y.test",
            "tel:+1",
            "https://x.test/unsubscribe?u=1",
            "https://x.test/private",
        ] {
            assert!(html.contains(kept), "{kept} kept in {html}");
        }
        let pixel = html.find(&format!("{BASE}/o/")).expect("pixel");
        assert!(pixel < html.find("</body>").unwrap());
    }

    #[test]
    fn base64_latin1_html_without_body_gets_the_pixel_at_the_end() {
        let html = "<p>caf\u{e9} <a href='https://x.test/1'>1</a>";
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(html);
        let m = format!(
            "From: a@b.test\r\nContent-Type: text/html; charset=iso-8859-1\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            B64.encode(&latin1)
        );
        let out = render(&m, BOTH);
        let parsed = MessageParser::default().parse(out.as_bytes()).unwrap();
        let html = parsed.body_html(0).unwrap();
        assert!(html.contains("café"), "{html}");
        assert_eq!(click_targets(&html), ["https://x.test/1"]);
        assert!(
            html.trim_end().ends_with('>') && html.contains("/o/"),
            "{html}"
        );
        // Lines of at most 76 characters.
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        assert!(body.lines().all(|l| l.len() <= 76), "{body}");
    }

    #[test]
    fn only_what_is_switched_on_and_attachments_stay() {
        let m = "From: a@b.test\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
                 --m\r\nContent-Type: text/html\r\n\r\n<body><a href=\"https://x.test/\">x</a></body>\r\n\
                 --m\r\nContent-Type: text/html; name=\"page.html\"\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n\
                 <body><a href=\"https://x.test/attached\">x</a></body>\r\n\
                 --m--\r\n";
        let clicks_only = render(
            m,
            Switches {
                opens: false,
                clicks: true,
            },
        );
        assert!(!clicks_only.contains("/o/"));
        assert_eq!(clicks_only.matches("/c/").count(), 1, "{clicks_only}");
        assert!(clicks_only.contains("https://x.test/attached"));
        let opens_only = render(
            m,
            Switches {
                opens: true,
                clicks: false,
            },
        );
        assert!(opens_only.contains("href=\"https://x.test/\""));
        assert_eq!(opens_only.matches("/o/").count(), 1, "{opens_only}");
    }

    #[test]
    fn hostile_html_is_rewritten_or_refused_never_a_crash() {
        // 50,000 links: the first MAX_TRACKED_LINKS are tracked.
        let mut html = String::from("<html><body>");
        for i in 0..50_000 {
            html.push_str(&format!("<a href=\"https://x.test/{i}\">{i}</a>"));
        }
        html.push_str("</body></html>");
        let m = format!("From: a@b.test\r\nContent-Type: text/html\r\n\r\n{html}\r\n");
        let out = render(&m, BOTH);
        assert_eq!(out.matches("/c/").count(), MAX_TRACKED_LINKS);
        // Broken markup, a huge attribute, an unclosed body.
        let huge = "x".repeat(1_000_000);
        for broken in [
            format!("<body><a href=\"https://x.test/{huge}\">x</a>"),
            "<body><a href=\"https://x.test/<\"><<<>>>&&&;<a href=".to_string(),
            "<html><body><table><tr><td><a href=https://x.test/u>x</a>".to_string(),
        ] {
            let m = format!("From: a@b.test\r\nContent-Type: text/html\r\n\r\n{broken}\r\n");
            if let Ok(p) = Prepared::new(m.as_bytes()) {
                let _ = p.render(m.as_bytes(), BOTH, &key(), BASE, &who());
            }
        }
        // An unknown charset is refused, not guessed.
        let m = "From: a@b.test\r\nContent-Type: text/html; charset=x-klingon\r\n\r\n<p>x</p>\r\n";
        assert!(matches!(
            Prepared::new(m.as_bytes()),
            Err(RewriteError::Charset(_))
        ));
        // 100 nested multiparts.
        let mut m = String::from("From: a@b.test\r\n");
        for i in 0..100 {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n--n{i}\r\n"
            ));
        }
        m.push_str("Content-Type: text/html\r\n\r\n<a href=\"https://x.test/deep\">d</a>\r\n");
        for i in (0..100).rev() {
            m.push_str(&format!("--n{i}--\r\n"));
        }
        if let Ok(p) = Prepared::new(m.as_bytes()) {
            let _ = p.render(m.as_bytes(), BOTH, &key(), BASE, &who());
        }
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a&amp;b&#38;c&#x26;d&bogus;e&"),
            "a&b&c&d&bogus;e&"
        );
    }
}
