//! The DNS server the delivery tests resolve through: the bench's
//! ([`rackwave_bench::dns`], zone syntax and answers documented there),
//! plus what only tests want: a start that panics instead of returning an
//! error, the zone fixtures of this repository and one loopback address per
//! test host.

use std::net::{Ipv4Addr, SocketAddr};

pub use rackwave_bench::dns::*;

/// The text of `fixtures/zones/<file>`.
pub fn fixture(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/zones")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Starts a server on `ip` (a free port) serving `zone_text` with the
/// placeholders replaced. Panics on a zone syntax error: a test's zone is
/// part of the test.
pub async fn start(ip: Ipv4Addr, zone_text: &str, substitutions: &[(&str, &str)]) -> DnsServer {
    DnsServer::bind(SocketAddr::from((ip, 0)), zone_text, substitutions)
        .await
        .unwrap_or_else(|e| panic!("test DNS on {ip}: {e}"))
}

/// `127.0.0.x`: on Linux the whole of 127/8 is loopback, so every test
/// host can have its own address.
pub fn loopback(x: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, x)
}
