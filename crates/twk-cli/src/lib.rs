//! twk-cli: what twk's two binaries (`twk-tunnel`, `twk-relay`) share on the command line:
//! `completions SHELL` and `man`, what an installed binary needs beside itself (as ripgrep and
//! the Stripe CLI ship them), generated from the binary's own clap definition so they cannot
//! drift from it.
//!
//! What it is NOT: it does not parse either binary's arguments or run anything; each binary
//! owns its clap definition and hands it over as a [`clap::Command`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command into DIR (e.g. twk-tunnel.1, twk-tunnel-log.1, …) instead of
    /// printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Why a completion script or a man page could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// Writing to stdout failed (e.g. a closed pipe).
    #[error("writing to stdout")]
    Stdout(#[source] std::io::Error),
    /// Writing the pages into a directory failed.
    #[error("writing man pages into {dir}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Rendering a page failed.
    #[error("rendering the man page")]
    Render(#[source] std::io::Error),
}

/// Prints the completion script for `cmd` to stdout.
pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<(), ShellError> {
    let name = cmd.get_name().to_owned();
    // Into a buffer first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    write_stdout(&script)
}

/// Prints the main man page (roff) to stdout, or writes every page into `--dir`.
pub fn man(args: &ManArgs, cmd: clap::Command) -> Result<(), ShellError> {
    if let Some(dir) = &args.dir {
        return write_pages(cmd, dir);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(ShellError::Render)?;
    write_stdout(&page)
}

fn write_pages(cmd: clap::Command, dir: &Path) -> Result<(), ShellError> {
    let fail = |source| ShellError::Dir {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    clap_mangen::generate_to(cmd, dir).map_err(fail)
}

fn write_stdout(bytes: &[u8]) -> Result<(), ShellError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(ShellError::Stdout)
}
