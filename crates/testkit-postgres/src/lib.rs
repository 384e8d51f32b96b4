//! A real PostgreSQL server for the storage tests: Debian's `postgresql`
//! package (`initdb`, `pg_ctl`), a fresh cluster in a temporary directory
//! listening on a free loopback port, stopped when dropped. Where the
//! binaries are not installed, [`Postgres::start`] prints a notice and
//! gives `None`, unless `RACKWAVE_REQUIRE_POSTGRES` is set (`.ci/run` sets
//! it), when it fails: never skipped silently.
//!
//! The cluster's superuser is `postgres_admin`; tests connect as
//! `rackwave`, an ordinary role (no superuser, no `BYPASSRLS`) owning its
//! databases, as a production deployment should: row-level security does
//! not hold for superusers.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A loopback address nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// PostgreSQL refuses to run as root: as root the cluster belongs to
    /// the `postgres` user the package creates, and its commands run as it.
    as_user: Option<&'static str>,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn numeric_id(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl Postgres {
    /// A running server; `None` (with a notice) when PostgreSQL is not
    /// installed and not required.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("RACKWAVE_REQUIRE_POSTGRES").is_none(),
                "RACKWAVE_REQUIRE_POSTGRES is set but PostgreSQL (Debian's postgresql) is not installed"
            );
            eprintln!("NOTICE: PostgreSQL not installed: PostgreSQL test skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let as_user = root.then_some("postgres");
        if let Some(user) = as_user {
            std::os::unix::fs::chown(
                dir.path(),
                Some(numeric_id("-u", user)),
                Some(numeric_id("-g", user)),
            )
            .unwrap();
        }
        let port = free_port();
        let pg = Postgres {
            dir,
            bin,
            as_user,
            port,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres_admin",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        pg.restart();
        pg.sql("postgres", "CREATE ROLE rackwave LOGIN");
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `sql` as the cluster's superuser in `database`.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres_admin",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new database owned by the `rackwave` role; its URL.
    pub fn database(&self, name: &str) -> String {
        self.sql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER rackwave"),
        );
        self.url(name)
    }

    /// The URL of `database` for the `rackwave` role (no TLS on loopback).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://rackwave@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// The server's directory (its log is `server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (fast: connections are cut), for failure tests.
    pub fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// Starts the server (again, after [`stop`](Self::stop)) on its port
    /// and data.
    pub fn restart(&self) {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}
