//! The command line: `rackwave serve` and `rackwave admin …`.

pub mod admin;
pub mod storage;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rackwave",
    version,
    about = "Rackwave: a mail transfer agent with an embedded management plane"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole system (SMTP, HTTP, spool) from a config file.
    Serve {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Call the admin API of a running server.
    Admin(admin::AdminArgs),
    /// Load testing.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The shared state's databases.
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Brings the PostgreSQL databases of `[storage.postgres]` to this
    /// binary's schema (each database once, however many parts share it);
    /// refuses a database whose schema is newer. With `--from sled --to
    /// postgres`, then copies this node's store (the node stopped) into
    /// them, empty, and checks every family of records read back.
    Migrate {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The backend to copy the shared state from (with `--to`).
        #[arg(long, value_enum, requires = "to")]
        from: Option<storage::Backend>,
        /// The backend to copy the shared state into (with `--from`).
        #[arg(long, value_enum, requires = "from")]
        to: Option<storage::Backend>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Drive an SMTP server (Rackwave, Postfix, …) with messages.
    Smtp(rackwave_bench::smtp::SmtpBenchArgs),
    /// Drive Rackwave's HTTP send API (MigoSMTP) with messages.
    Http(rackwave_bench::http::HttpBenchArgs),
    /// A fast SMTP sink standing in for the remote MX.
    Sink(rackwave_bench::sink_cmd::SinkArgs),
    /// End to end: start a sink, drive messages through the MTA under test
    /// (which relays to the sink), report acceptance and delivery.
    E2e(rackwave_bench::e2e::E2eArgs),
}
