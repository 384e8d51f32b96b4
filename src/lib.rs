//! The `rackwave` binary's library: the configuration assembled from every
//! part's section ([`config`]), the wiring of those parts into one running
//! server ([`server`]), and the command line ([`cli`]). Every part lives in
//! its own crate:
//!
//! - `rackwave-core`: ids, the clock, platforms, the typed event model;
//! - `rackwave-smtp-proto`: SMTP without I/O (and its tokio glue);
//! - `rackwave-queue`: the durable spool;
//! - `rackwave-store`: shared state behind storage traits;
//! - `rackwave-accounts`: workspaces, credentials, sender domains;
//! - `rackwave-intake`: the one path from a submission to the spool;
//! - `rackwave-smtp-server`: the submission server;
//! - `rackwave-delivery`: the delivery engine;
//! - `rackwave-events`: the event log and webhooks;
//! - `rackwave-http`: the HTTP APIs;
//! - `rackwave-bench`: the load generator and sink.

pub mod cli;
pub mod config;
mod logging;
mod metrics;
mod node;
pub mod server;
mod tls;

pub use logging::init as init_logging;
