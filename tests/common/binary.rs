//! The real `rackwave` binary, for tests that kill and restart it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `rackwave serve --config <config>`.
pub fn spawn(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rackwave"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rackwave")
}

/// Waits until `GET /healthz` answers on the HTTP address.
pub async fn wait_ready(http: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{http}/healthz");
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}
