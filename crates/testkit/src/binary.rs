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

/// Where a spawned server listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub smtp: SocketAddr,
    pub smtps: SocketAddr,
    pub http: SocketAddr,
}

impl Ports {
    /// Loopback ports free a moment ago.
    pub fn free() -> Ports {
        Ports {
            smtp: free_addr(),
            smtps: free_addr(),
            http: free_addr(),
        }
    }

    /// Writes `dir/config.toml` for the real binary: these listeners, the
    /// tests' admin token, and `tables` (the other TOML tables: `[storage]`,
    /// `[delivery]`, …). Its path.
    pub fn write_config(&self, dir: &Path, tables: &str) -> std::path::PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[smtp]\nlisten = \"{}\"\nlisten_tls = \"{}\"\nhostname = \"mx.test\"\n\n\
                 [http]\nlisten = \"{}\"\n\n[admin]\ntoken = \"{}\"\n\n{tables}\n",
                self.smtp,
                self.smtps,
                self.http,
                super::ADMIN_TOKEN
            ),
        )
        .expect("config written");
        path
    }
}

/// A running server process, killed when dropped: a test that fails
/// halfway must not leave a server behind (it would also hold the test
/// harness's output pipe open, so the run would never finish).
pub struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Untracked before it is reaped: once reaped, its pid may be reused.
        super::watchdog::untrack(self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `<bin> serve --config <config>`; `bin` is the `rackwave` binary under
/// test (`env!("CARGO_BIN_EXE_rackwave")` in the root package's tests).
pub fn spawn(bin: &str, config: &Path) -> Running {
    super::watchdog::arm();
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rackwave");
    super::watchdog::track(child.id());
    Running(child)
}

/// Waits until `GET /healthz` answers on the HTTP address.
pub async fn wait_ready(http: SocketAddr) {
    ready_unless(http, || false).await;
}

/// Waits until `GET /healthz` answers (`true`), or `exited` says the
/// process is gone (`false`).
async fn ready_unless(http: SocketAddr, mut exited: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{http}/healthz");
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return true;
            }
        }
        if exited() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

/// `rackwave serve` as a process of its own on free ports, its config the
/// listeners, the tests' admin token and `tables` (`[storage]`, `[node]`,
/// …); ready when it returns. The test server's helpers speak to it over
/// its sockets; it runs on the system clock (the `clock` is not its).
pub async fn serve(bin: &str, tables: &str) -> crate::TestServer {
    let dir = tempfile::tempdir().unwrap();
    // Free ports are free when picked; another test may bind one before
    // the process does, which then exits ("address already in use"):
    // then again on other ports.
    let mut attempts = 0;
    let (ports, path, process) = loop {
        attempts += 1;
        let ports = Ports::free();
        let path = ports.write_config(dir.path(), tables);
        let mut process = spawn(bin, &path);
        let exited = || matches!(process.try_wait(), Ok(Some(_)));
        if ready_unless(ports.http, exited).await {
            break (ports, path, process);
        }
        assert!(attempts < 5, "the server exited at start {attempts} times");
    };
    let config = rackwave::config::Config::load(&path).expect("the test's config loads");
    crate::TestServer {
        server: None,
        process: Some(process),
        dir,
        clock: rackwave_core::Clock::manual(crate::START_MS),
        smtp: ports.smtp,
        smtp_tls: ports.smtps,
        inbound: None,
        http: format!("http://{}", ports.http),
        config,
    }
}
