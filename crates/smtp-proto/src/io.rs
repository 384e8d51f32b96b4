//! SMTP over tokio, shared by every side that holds a socket: the
//! submission server, the delivery client, the load generator, the sink
//! and the tests. Line reading with a hard cap, reply reading, and the
//! stream that is plain TCP until STARTTLS and TLS after.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::reply::RemoteReply;

/// The result of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line with its line ending.
    Complete(Vec<u8>),
    /// Longer than the limit; the whole line was consumed and dropped.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

/// Reads up to and including LF. A line over `max` octets is consumed to
/// its end and reported as [`Line::TooLong`] without buffering it, so a
/// hostile peer cannot grow memory with one endless line.
pub async fn read_line<R: AsyncBufRead + Unpin>(io: &mut R, max: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    Ok(match read_line_into(io, &mut line, max).await? {
        LineEnd::Complete => Line::Complete(line),
        LineEnd::TooLong => Line::TooLong,
        LineEnd::Eof => Line::Eof,
    })
}

/// How [`read_line_into`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// `line` holds the line with its line ending.
    Complete,
    /// Longer than the limit; consumed to its end, `line` is empty.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

/// [`read_line`] into a buffer the caller reuses (it is cleared first), for
/// readers that take many lines (a sink at benchmark rates).
pub async fn read_line_into<R: AsyncBufRead + Unpin>(
    io: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineEnd> {
    line.clear();
    let mut too_long = false;
    loop {
        let buf = io.fill_buf().await?;
        if buf.is_empty() {
            line.clear();
            return Ok(LineEnd::Eof);
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        if !too_long && line.len() + chunk.len() > max {
            too_long = true;
            line.clear();
        }
        if !too_long {
            line.extend_from_slice(chunk);
        }
        let n = chunk.len();
        io.consume(n);
        if done {
            return Ok(if too_long {
                LineEnd::TooLong
            } else {
                LineEnd::Complete
            });
        }
    }
}

/// Longest reply line read, in octets: RFC 5321 §4.5.3.1.5 allows 512; a
/// hostile server cannot make us buffer without bound.
pub const MAX_REPLY_LINE: usize = 8192;
/// Most lines of one reply.
pub const MAX_REPLY_LINES: usize = 100;

/// Why a reply could not be read.
#[derive(Debug)]
pub enum ReplyError {
    Io(io::Error),
    /// The peer closed the connection.
    Closed,
    /// A line that is not a reply line (or too long, or too many).
    Malformed(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Io(e) => write!(f, "{e}"),
            ReplyError::Closed => f.write_str("connection closed by remote"),
            ReplyError::Malformed(line) => write!(f, "malformed reply {line:?}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Reads one complete (possibly multi-line) reply.
pub async fn read_reply<R: AsyncBufRead + Unpin>(io: &mut R) -> Result<RemoteReply, ReplyError> {
    let mut lines: Vec<String> = Vec::new();
    loop {
        let line = match read_line(io, MAX_REPLY_LINE)
            .await
            .map_err(ReplyError::Io)?
        {
            Line::Complete(bytes) => String::from_utf8_lossy(&bytes)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            Line::TooLong => return Err(ReplyError::Malformed("(line too long)".into())),
            Line::Eof => return Err(ReplyError::Closed),
        };
        let more = RemoteReply::continues(&line);
        lines.push(line);
        if !more {
            break;
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::Malformed("(too many lines)".into()));
        }
    }
    RemoteReply::from_lines(lines.iter().map(String::as_str)).ok_or_else(|| {
        ReplyError::Malformed(
            lines
                .iter()
                .find(|l| RemoteReply::from_lines([l.as_str()]).is_none())
                .cloned()
                .unwrap_or_default(),
        )
    })
}

/// The connection under a session: plain TCP until STARTTLS, TLS after (or
/// from the start on an implicit-TLS port). `T` is the TLS stream type of
/// the side using it (tokio-rustls' server or client stream).
pub enum Stream<T> {
    Plain(TcpStream),
    Tls(Box<T>),
    /// Left behind while the TCP stream is inside the TLS handshake; every
    /// operation on it fails.
    Detached,
}

fn detached() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "stream detached for TLS upgrade",
    )
}

impl<T> Stream<T> {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Takes the TCP stream out for the TLS handshake (leaving
    /// `Detached`); `None` if the stream is not plain TCP.
    pub fn take_plain(&mut self) -> Option<TcpStream> {
        match std::mem::replace(self, Stream::Detached) {
            Stream::Plain(tcp) => Some(tcp),
            other => {
                *self = other;
                None
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_capped_and_consumed_whole() {
        let mut input: &[u8] = b"short\r\nthis line is far too long\r\nnext\r\npartial";
        assert_eq!(
            read_line(&mut input, 16).await.unwrap(),
            Line::Complete(b"short\r\n".to_vec())
        );
        assert_eq!(read_line(&mut input, 16).await.unwrap(), Line::TooLong);
        assert_eq!(
            read_line(&mut input, 16).await.unwrap(),
            Line::Complete(b"next\r\n".to_vec())
        );
        assert_eq!(read_line(&mut input, 16).await.unwrap(), Line::Eof);
    }

    #[tokio::test]
    async fn replies_multi_line_malformed_and_closed() {
        let mut input: &[u8] = b"250-first\r\n250 2.0.0 second\r\n421 bye\r\nnonsense\r\n";
        let r = read_reply(&mut input).await.unwrap();
        assert_eq!((r.code, r.enhanced.as_deref()), (250, Some("2.0.0")));
        assert_eq!(r.text, "first second");
        assert_eq!(read_reply(&mut input).await.unwrap().code, 421);
        assert!(
            matches!(read_reply(&mut input).await, Err(ReplyError::Malformed(l)) if l == "nonsense")
        );
        assert!(matches!(
            read_reply(&mut input).await,
            Err(ReplyError::Closed)
        ));
        let endless = "250-x\r\n".repeat(200);
        assert!(matches!(
            read_reply(&mut endless.as_bytes()).await,
            Err(ReplyError::Malformed(_))
        ));
    }
}
