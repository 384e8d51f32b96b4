//! The header section of a submitted message: its structure checked
//! (RFC 5322 §2.2), its size capped, and the trace and missing fields a
//! submission server adds (RFC 5321 §4.4, RFC 6409 §8).

/// Why a message's header section was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Missing,
    Malformed(usize),
    NoFrom,
    /// Larger than the cap, in octets.
    TooLarge(usize),
}

/// Which fields the client supplied (present, whether or not their value
/// parses: adding a second Date would break RFC 5322 §3.6).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub(crate) date: bool,
    pub(crate) message_id: bool,
    /// From fields (RFC 5322 §3.6: exactly one).
    pub(crate) from: usize,
    /// The sender brought its own unsubscribe fields (RFC 2369, RFC 8058).
    pub(crate) list_unsubscribe: bool,
}

/// Checks the header section's structure: every line before the first
/// empty line is `name: value` (name of printable ASCII without colon) or
/// a folded continuation, a From field is present, and the section is at
/// most `max_bytes` octets. Reads at most `max_bytes` + one line.
pub(crate) fn check_header_section(
    message: &[u8],
    max_bytes: usize,
) -> Result<HeaderFields, HeaderError> {
    let mut lines = 0usize;
    let mut size = 0usize;
    let mut fields = HeaderFields::default();
    for (i, raw) in message.split_inclusive(|b| *b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        size += raw.len();
        if size > max_bytes {
            return Err(HeaderError::TooLarge(max_bytes));
        }
        lines += 1;
        if line[0] == b' ' || line[0] == b'\t' {
            if i == 0 {
                return Err(HeaderError::Malformed(1));
            }
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(HeaderError::Malformed(i + 1));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
            return Err(HeaderError::Malformed(i + 1));
        }
        fields.from += usize::from(name.eq_ignore_ascii_case(b"from"));
        fields.date |= name.eq_ignore_ascii_case(b"date");
        fields.message_id |= name.eq_ignore_ascii_case(b"message-id");
        fields.list_unsubscribe |= name.eq_ignore_ascii_case(b"list-unsubscribe")
            || name.eq_ignore_ascii_case(b"list-unsubscribe-post");
    }
    if lines == 0 {
        return Err(HeaderError::Missing);
    }
    if fields.from == 0 {
        return Err(HeaderError::NoFrom);
    }
    Ok(fields)
}

/// Each field of the header section: its name and the byte range of the
/// whole field (folded lines and the final CRLF included).
fn fields(message: &[u8]) -> Vec<(&[u8], std::ops::Range<usize>)> {
    let mut out: Vec<(&[u8], std::ops::Range<usize>)> = Vec::new();
    let mut at = 0;
    for raw in message.split_inclusive(|b| *b == b'\n') {
        let start = at;
        at += raw.len();
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, range)) = out.last_mut() {
                range.end = at;
            }
            continue;
        }
        let name = line.split(|b| *b == b':').next().unwrap_or(line);
        out.push((name, start..at));
    }
    out
}

/// The unfolded, trimmed value of the first field named `name`.
pub(crate) fn field_value(message: &[u8], name: &str) -> Option<String> {
    let (_, range) = fields(message)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))?;
    let field = &message[range];
    let colon = field.iter().position(|b| *b == b':')?;
    let value: Vec<u8> = field[colon + 1..]
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    Some(String::from_utf8_lossy(&value).trim().to_string())
}

/// Removes every field named `name` (a control field meant for us, not
/// for the recipient); the value of the first one.
pub(crate) fn take_field(message: &mut Vec<u8>, name: &str) -> Option<String> {
    let value = field_value(message, name)?;
    let ranges: Vec<_> = fields(message)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, r)| r)
        .collect();
    for r in ranges.into_iter().rev() {
        message.drain(r);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn header_sections() {
        assert_eq!(
            check_header_section(b"From: a@b.c\r\nSubject: x\r\n\r\nbody", MAX),
            Ok(HeaderFields {
                from: 1,
                ..HeaderFields::default()
            })
        );
        assert_eq!(
            check_header_section(
                b"From: a@b.c\r\nSubject: x\r\n\tfolded\r\nDATE: junk\r\nmessage-id:\r\n\r\n",
                MAX
            ),
            Ok(HeaderFields {
                date: true,
                message_id: true,
                from: 1,
                list_unsubscribe: false,
            })
        );
        assert_eq!(
            check_header_section(b"\r\nbody only", MAX),
            Err(HeaderError::Missing)
        );
        assert_eq!(check_header_section(b"", MAX), Err(HeaderError::Missing));
        assert_eq!(
            check_header_section(b"From: a@b.c\r\nthis is not a header\r\n\r\n", MAX),
            Err(HeaderError::Malformed(2))
        );
        assert_eq!(
            check_header_section(b" folded first\r\nFrom: a@b.c\r\n\r\n", MAX),
            Err(HeaderError::Malformed(1))
        );
        assert_eq!(
            check_header_section(b"Bad Name: x\r\nFrom: a@b.c\r\n\r\n", MAX),
            Err(HeaderError::Malformed(1))
        );
        assert_eq!(
            check_header_section(b"Subject: x\r\n\r\n", MAX),
            Err(HeaderError::NoFrom)
        );
    }

    #[test]
    fn fields_are_read_unfolded_and_taken_out_whole() {
        let mut m = b"From: a@b.c\r\nX-Rackwave-Tracking: unsubscribe=off;\r\n\topens=on\r\nSubject: x\r\nx-rackwave-tracking: second\r\n\r\nX-Rackwave-Tracking: body\r\n".to_vec();
        assert_eq!(field_value(&m, "subject").as_deref(), Some("x"));
        assert_eq!(
            take_field(&mut m, "X-Rackwave-Tracking").as_deref(),
            Some("unsubscribe=off;\topens=on")
        );
        assert_eq!(
            m,
            b"From: a@b.c\r\nSubject: x\r\n\r\nX-Rackwave-Tracking: body\r\n".to_vec()
        );
        assert_eq!(take_field(&mut m, "X-Rackwave-Tracking"), None);
    }

    #[test]
    fn the_cap_counts_the_header_section_only() {
        let mut m = b"From: a@b.c\r\n".to_vec();
        for i in 0..1000 {
            m.extend_from_slice(format!("X-Line-{i}: some value\r\n").as_bytes());
        }
        let header_len = m.len();
        m.extend_from_slice(b"\r\n");
        m.extend_from_slice(&vec![b'x'; 100_000]);
        assert!(check_header_section(&m, header_len).is_ok());
        assert_eq!(
            check_header_section(&m, header_len - 1),
            Err(HeaderError::TooLarge(header_len - 1))
        );
    }
}
