//! `twk-tunnel`: forwards webhooks from a twk relay to a local target, records and inspects them.

/// `eprintln!` that never panics: a closed stderr (`2>&1 | head -1`) made the tunnel exit 101
/// at its next status line, though forwarding needs no terminal.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that returns the write's error instead of panicking: a reader that stopped
/// reading (`sign … | head -1`) ends the command quietly (`broken_pipe`), where `println!`
/// panicked (exit 101). `out!(raw …)` writes without the newline, as `print!`.
macro_rules! out {
    (raw $($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

mod cmd;
mod config;
mod missed;
mod output;
mod owner_key;
mod runtime;
mod tui;
mod tunnel;
mod usage;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: 10–25 % less CPU per forwarded request and ~35 %
/// more requests/s at 1,000 connections, at the same peak memory (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line of `twk-tunnel`.
#[derive(Debug, Parser)]
#[command(
    name = "twk-tunnel",
    version,
    about = "Webhook tunnel and inspector: public webhooks to your localhost, checked and recorded",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tunnel: tunnel::TunnelArgs,
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
    /// Send the webhook a provider would send (signed, with its sender's behaviour) through
    /// the running tunnel, or --to anywhere; --list shows providers and events.
    Trigger(cmd::trigger::TriggerArgs),
    /// Run a local Twilio Verify / Authy: the webhook-management and reporting APIs, and
    /// events delivered to the webhooks registered with it (docs/emulator.md).
    Emulate(cmd::emulate::EmulateArgs),
    /// Export recorded exchanges (HAR, curl).
    Export(cmd::history::ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(twk_cli::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --dir.
    Man(twk_cli::ManArgs),
}

/// Logs go to stderr, or to a file while the inspector owns the terminal. Returns the guard
/// that flushes the file writer on exit.
fn init_logging(to_file: bool) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || twk_transport::logging::filter("warn");
    if to_file {
        let dir = twk_capture::paths::default_data_dir()
            .unwrap_or_else(|_| std::env::temp_dir().join("twk"));
        if std::fs::create_dir_all(&dir).is_ok() {
            let appender = tracing_appender::rolling::never(&dir, "twk-tunnel.log");
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter());
            tracing_subscriber::registry().with(layer).init();
            twk_transport::logging::narrow_log_gate();
            return Some(guard);
        }
    }
    use std::io::IsTerminal;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter());
    tracing_subscriber::registry().with(layer).init();
    twk_transport::logging::narrow_log_gate();
    None
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_guard = init_logging(cli.command.is_none() && tunnel::wants_tui(&cli.tunnel));
    let result = match cli.command {
        Some(Command::Verify(a)) => cmd::verify::run_verify(a),
        Some(Command::Sign(a)) => cmd::verify::run_sign(a),
        Some(Command::Log(a)) => cmd::history::run_log(a).await,
        Some(Command::Replay(a)) => cmd::history::run_replay(a).await,
        Some(Command::Export(a)) => cmd::history::run_export(a).await,
        Some(Command::Trigger(a)) => cmd::trigger::run(a).await,
        Some(Command::Emulate(a)) => cmd::emulate::run(a).await,
        Some(Command::Completions(a)) => twk_cli::completions(&a, Cli::command())
            .map(|()| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
        Some(Command::Man(a)) => twk_cli::man(&a, Cli::command())
            .map(|()| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
        None => tunnel::run(cli.tunnel).await,
    };
    match result {
        Ok(code) => code,
        // A reader that stopped reading (`log --json | head`) is not an error.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say!(
                "twk-tunnel: {}",
                twk_sanitize::clean(&twk_sanitize::error_chain(e.as_ref()))
            );
            usage::exit_code(&e)
        }
    }
}

/// True when `e` comes from writing to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
    })
}
