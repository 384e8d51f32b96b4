//! The inbound session, one file per step of the protocol.

mod auth;
mod data;
mod ehlo;
mod mail;
mod rcpt;
mod session;

pub use session::Session;
