//! `twk-tunnel verify` and `twk-tunnel sign` (provider issue). Placeholder until it lands.

use std::process::ExitCode;

/// Arguments of `twk-tunnel verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

/// Arguments of `twk-tunnel sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {}

/// Runs `verify`.
pub fn run_verify(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("verify is not implemented yet")
}

/// Runs `sign`.
pub fn run_sign(_args: SignArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sign is not implemented yet")
}
