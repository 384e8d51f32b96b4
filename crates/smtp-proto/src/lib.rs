//! SMTP as a protocol, without I/O: commands ([`command`]), replies to send
//! and replies received ([`reply`]), EHLO extensions ([`ehlo`]), message
//! data transparency ([`data`]) and addresses ([`address`]).
//!
//! One crate serves every side that speaks SMTP: the submission server, the
//! delivery client, the bounce classifier, the load generator, the sink and
//! the tests. Nothing else in the tree parses SMTP.
//!
//! With the `tokio` feature, [`io`] adds the socket side every one of them
//! shares (capped line reading, reply reading, the plain-or-TLS stream);
//! with `tls`, [`tls`] adds rustls configurations for servers and clients.

pub mod address;
pub mod command;
pub mod data;
pub mod ehlo;
#[cfg(feature = "tokio")]
pub mod io;
pub mod reply;
#[cfg(feature = "tls")]
pub mod tls;

pub use reply::{Enhanced, RemoteReply, Reply};
