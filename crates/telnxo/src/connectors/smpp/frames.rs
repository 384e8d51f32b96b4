//! PDU framing on the wire: rusmpp's codec encodes, but decoding is ours so
//! that a PDU rusmpp cannot read costs that PDU only. The length prefix is
//! trusted to cut the stream into frames; a frame whose body is malformed
//! still has a command id and a sequence number to answer with a
//! `generic_nack`. Only a length that cannot be a PDU breaks the framing,
//! and that is the one case that drops the connection.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rusmpp::decode::DecodeWithLength;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::Command;
use tokio_util::bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The 16-byte header: length, id, status, sequence number.
const HEADER: usize = 16;
/// Beyond any PDU we take: a 64 KiB `message_payload` and the rest.
const MAX_PDU: usize = 70_000;

/// What one frame of the stream held.
#[derive(Debug)]
pub(super) enum Incoming {
    Command(Box<Command>),
    /// The header was readable, the body was not.
    Malformed {
        command_id: u32,
        sequence: u32,
        error: String,
    },
}

#[derive(Debug, Default)]
pub(super) struct Frames {
    encoder: CommandCodec,
}

impl Decoder for Frames {
    type Item = Incoming;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, io::Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if !(HEADER..=MAX_PDU).contains(&length) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("command_length {length} is no PDU's"),
            ));
        }
        if src.len() < length {
            src.reserve(length - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(length);
        frame.advance(4);
        let word = |at: usize| {
            u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        let (command_id, sequence) = (word(0), word(8));
        // The decoder is someone else's code fed by someone else's bytes:
        // a panic in it must cost the frame, not the session task.
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            Command::decode(&mut frame, length - 4).map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|_| Err("the decoder panicked".to_string()));
        Ok(Some(match decoded {
            Ok((command, _)) => Incoming::Command(Box::new(command)),
            Err(error) => Incoming::Malformed {
                command_id,
                sequence,
                error,
            },
        }))
    }
}

impl Encoder<Command> for Frames {
    type Error = io::Error;

    fn encode(&mut self, command: Command, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.encoder.encode(&command, dst).map_err(|e| match e {
            rusmpp::tokio_codec::EncodeError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u32, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut v = ((HEADER + body.len()) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_bad_body_costs_one_frame() {
        let mut buf = BytesMut::new();
        // A submit_sm_resp whose message_id has no terminating NUL, then an
        // enquire_link: the second still decodes.
        buf.extend_from_slice(&frame(0x8000_0004, 7, b"ABC"));
        buf.extend_from_slice(&frame(0x0000_0015, 8, b""));
        let mut codec = Frames::default();
        match codec.decode(&mut buf).unwrap() {
            Some(Incoming::Malformed {
                command_id,
                sequence,
                ..
            }) => assert_eq!((command_id, sequence), (0x8000_0004, 7)),
            other => panic!("{other:?}"),
        }
        match codec.decode(&mut buf).unwrap() {
            Some(Incoming::Command(c)) => assert_eq!(c.sequence_number(), 8),
            other => panic!("{other:?}"),
        }
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn an_impossible_length_breaks_the_framing() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        assert!(Frames::default().decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
        assert!(Frames::default().decode(&mut buf).is_err());
    }

    #[test]
    fn waits_for_a_whole_frame() {
        let whole = frame(0x0000_0015, 1, b"");
        let mut buf = BytesMut::from(&whole[..10]);
        assert!(Frames::default().decode(&mut buf).unwrap().is_none());
    }
}
