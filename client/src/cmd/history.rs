//! `twk-tunnel log`, `replay` and `export` (capture issue). Placeholder until it lands.

use std::process::ExitCode;

/// Arguments of `twk-tunnel log`.
#[derive(Debug, clap::Args)]
pub struct LogArgs {}

/// Arguments of `twk-tunnel replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}

/// Arguments of `twk-tunnel export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {}

/// Runs `log`.
pub async fn run_log(_args: LogArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("log is not implemented yet")
}

/// Runs `replay`.
pub async fn run_replay(_args: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("replay is not implemented yet")
}

/// Runs `export`.
pub async fn run_export(_args: ExportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("export is not implemented yet")
}
