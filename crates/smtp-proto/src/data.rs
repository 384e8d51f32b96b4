//! Message data on the wire (RFC 5321 §4.5.2): dot-stuffing when sending,
//! its reverse when receiving, and the end-of-data line.

/// One line of DATA as received (with its line ending).
#[derive(Debug, PartialEq, Eq)]
pub enum DataLine<'a> {
    /// `.` CRLF: the end of the data. Only CRLF.CRLF ends the data; a
    /// bare-LF variant must not, or a message could smuggle a second one
    /// past the receiver (SMTP smuggling).
    End,
    /// A line of the message, its leading transparency dot removed.
    Content(&'a [u8]),
}

/// Classifies one received line of DATA.
pub fn data_line(line: &[u8]) -> DataLine<'_> {
    if line == b".\r\n" {
        return DataLine::End;
    }
    DataLine::Content(line.strip_prefix(b".").unwrap_or(line))
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
    fn stuffed_lines_come_back_and_only_crlf_dot_crlf_ends() {
        let stuffed = dot_stuff(b"a\r\n.b\r\n..c\r\n");
        let mut back = Vec::new();
        let mut ended = false;
        for line in stuffed.split_inclusive(|b| *b == b'\n') {
            match data_line(line) {
                DataLine::End => ended = true,
                DataLine::Content(c) => back.extend_from_slice(c),
            }
        }
        assert!(ended);
        assert_eq!(back, b"a\r\n.b\r\n..c\r\n");
        assert_eq!(data_line(b".\n"), DataLine::Content(b"\n"));
        assert_eq!(data_line(b"..\r\n"), DataLine::Content(b".\r\n"));
    }
}
