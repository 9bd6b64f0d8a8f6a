//! `twk-tunnel`: forwards webhooks from a twk relay to a local target, records and inspects them.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Command line of `twk-tunnel`.
#[derive(Debug, Parser)]
#[command(name = "twk-tunnel", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a webhook's signature and name its provider and event.
    Verify(cmd::verify::VerifyArgs),
    /// Print the signature header(s) that make a request valid.
    Sign(cmd::verify::SignArgs),
    /// Query recorded exchanges.
    Log(cmd::history::LogArgs),
    /// Re-send a recorded request to the local target.
    Replay(cmd::history::ReplayArgs),
    /// Export recorded exchanges (HAR, curl).
    Export(cmd::history::ExportArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Verify(a)) => cmd::verify::run_verify(a),
        Some(Command::Sign(a)) => cmd::verify::run_sign(a),
        Some(Command::Log(a)) => cmd::history::run_log(a).await,
        Some(Command::Replay(a)) => cmd::history::run_replay(a).await,
        Some(Command::Export(a)) => cmd::history::run_export(a).await,
        None => Ok(ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("twk-tunnel: {e:#}");
            ExitCode::FAILURE
        }
    }
}
