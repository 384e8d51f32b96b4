//! Load testing: `rackwave bench smtp` drives any ESMTP server,
//! `rackwave bench http` drives Rackwave's HTTP send API,
//! `rackwave bench sink` stands in for the remote MX (with [`dns`], also for
//! the DNS that points at it), and `rackwave bench e2e` does both at once to
//! measure a relay end to end.

pub mod dns;
pub mod e2e;
pub mod http;
mod percentiles;
mod progress;
pub mod sink;
pub mod sink_cmd;
pub mod smtp;

/// The `n`th positional argument of a `cargo bench -- …` run (flags such
/// as `--bench` skipped), as a number, else `default`.
pub fn positional_arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}
