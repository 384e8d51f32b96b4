//! The vocabulary every part of Rackwave shares, and nothing else: the
//! injectable [`Clock`], random ids and secrets, the platforms and products,
//! the typed event model of `seeds/webhook-event-types.txt` ([`event`]),
//! the page-size rule of every listing ([`page`]) and the kinds of error an
//! API answers with ([`ErrorKind`]).
//!
//! Nothing here does I/O; every other crate depends on this one.

mod clock;
pub mod event;
pub mod html;
mod ids;
pub mod money;
mod net;
pub mod page;
mod platform;

pub use clock::{rfc3339, rfc5322, Clock, Timestamp, MS_PER_DAY};
pub use ids::{random_hex, set_id_node, time_ordered_id, time_ordered_ids_after, ID_NODES};
pub use net::IpNetwork;
pub use platform::{Platform, Product};

/// What kind of failure an error is, as far as a caller of an API cares:
/// its own mistake (`Invalid`, `NotFound`, `Conflict`) or ours
/// (`Unavailable`, `Internal`). Every crate's error type says which of its
/// variants is which ([`Classify`]), so the HTTP plane maps errors to
/// statuses in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule.
    Invalid,
    /// What the request names does not exist (or belongs to another tenant).
    NotFound,
    /// The request conflicts with the current state (a name already taken).
    Conflict,
    /// A dependency failed for now (storage, a shutdown): try again.
    Unavailable,
    /// A bug or corrupt data.
    Internal,
}

/// An error that knows its [`ErrorKind`].
pub trait Classify: std::error::Error {
    fn kind(&self) -> ErrorKind;
}
