//! Rackwave: a mail transfer agent with an embedded management plane.
//!
//! The modules follow the path of a message and the parts of the system:
//!
//! - [`config`]: `config.toml`, validated, with one-line errors.
//! - [`smtp`]: the submission server (listener, session steps, parsing).
//! - [`quota`]: daily quotas, reserved at RCPT and committed when durable.
//! - the spool is its own crate, `rackwave-queue` (`queue/`).
//! - [`delivery`]: scheduler, MX lookup, outbound SMTP, bounce classification.
//! - [`accounts`]: workspaces, SMTP accounts, API keys.
//! - [`domains`]: sender domains and DKIM keys and signing.
//! - [`events`]: the event log and the signed, retrying webhook emitter.
//! - [`http`]: the admin API, health, metrics, OpenAPI.
//! - [`storage`]: the shared sled database: opening it, making writes durable.
//! - [`server`]: wires everything from a config and shuts it down gracefully.
//! - [`cli`]: `rackwave serve`, `rackwave admin` and `rackwave bench`.
//! - [`bench`]: the load generator behind `rackwave bench`.

pub mod accounts;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod domains;
pub mod events;
pub mod http;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod quota;
pub mod server;
pub mod smtp;
pub mod storage;

pub use rackwave_queue as queue;
