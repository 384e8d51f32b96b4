//! The `rackwave` binary: parses the command line and hands over to the
//! library.

use std::process::ExitCode;

use clap::Parser;
use rackwave::cli::{BenchCommand, Cli, Command, StorageCommand};
use rackwave::config::Config;

/// mimalloc instead of the system allocator: the spool's writer thread and
/// sled allocate and free many small nodes per message, where glibc's
/// malloc spent about a third of the writer's time (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            rackwave::init_logging(&config.node.id());
            match rackwave::server::run(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(BenchCommand::Smtp(args)) => {
            let json = args.json;
            match rackwave_bench::smtp::run(args).await {
                Ok(summary) => report(&summary, json, summary.messages_ok > 0),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(BenchCommand::Http(args)) => {
            let json = args.json;
            match rackwave_bench::http::run(args).await {
                Ok(summary) => report(&summary, json, summary.messages_ok > 0),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(BenchCommand::E2e(args)) => {
            let json = args.smtp.json;
            match rackwave_bench::e2e::run(args).await {
                Ok(summary) => report(&summary, json, summary.complete()),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(BenchCommand::Sink(args)) => {
            let json = args.json;
            match rackwave_bench::sink_cmd::run(args).await {
                Ok(summary) => report(&summary, json, !summary.timed_out),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Storage(StorageCommand::Migrate { config, from, to }) => {
            print_json(rackwave::cli::storage::migrate(&config, from.zip(to)).await)
        }
        Command::Admin(args) => print_json(rackwave::cli::admin::run(args).await),
    }
}

/// Prints a command's JSON answer, or its error; the exit code says which.
fn print_json<E: std::fmt::Display>(answer: Result<serde_json::Value, E>) -> ExitCode {
    match answer {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("JSON value serializes")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a benchmark summary as text or JSON; the exit code says whether
/// the run achieved anything.
fn report<T: serde::Serialize + std::fmt::Display>(summary: &T, json: bool, ok: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).expect("summary serializes")
        );
    } else {
        print!("{summary}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
