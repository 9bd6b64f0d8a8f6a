//! `twk-relay`: the public side of twk. Accepts webhooks and tunnel clients on one port.
//!
//! It allocates with the system's allocator, not mimalloc as the client does: since the relay
//! drives HTTP/2 itself, glibc's halves its peak under concurrent 1 MiB bodies (45 → 23 MiB)
//! and lowers it at 1,000 connections, for ~5 % of throughput (docs/performance.md, eleventh
//! round).

mod args;
mod config;
mod token;

use anyhow::Context;
use args::{Args, Cli, Command, LogFormat};
use clap::{CommandFactory, Parser};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use twk_relay::RelayConfig;

/// Raises the open-file soft limit to the hard limit: at the usual 1024, a thousand idle
/// connections from one address starve real webhooks.
fn raise_open_files() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

async fn run(
    args: Args,
    mut cfg: RelayConfig,
    acme: Option<Arc<twk_acme::Acme>>,
) -> anyhow::Result<()> {
    raise_open_files();
    let shutdown = CancellationToken::new();
    let mut tokens_file = None;
    if let (twk_relay::Auth::Tokens(set), Some(path)) =
        (&cfg.auth, config::tokens_file(args.tokens_file.as_ref()))
    {
        // Tokens added or revoked with `twk-relay token` take effect without a restart.
        let (tx, rx) = tokio::sync::watch::channel(set.clone());
        cfg.token_updates = Some(rx);
        tokens_file = Some((path.clone(), tx.clone()));
        tokio::spawn(token::watch_file(path, tx, shutdown.clone()));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let metrics = match &args.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the metrics address {a}"))?,
        ),
        None => None,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        if let Some(m) = &metrics {
            writeln!(
                out,
                "metrics on {}",
                m.local_addr().context("metrics address")?
            )?;
        }
        out.flush()?;
    }
    tracing::info!(
        %addr,
        domain = %cfg.domain,
        tls = cfg.tls.is_some(),
        acme = acme.is_some(),
        state_file = ?cfg.state_file,
        "relay started"
    );
    tokio::spawn(twk_transport::cancel_on_signal(shutdown.clone()));
    if let Some(acme) = acme {
        let stop = shutdown.clone();
        tokio::spawn(async move { acme.run(stop).await });
    }
    let peer = join_cluster(&args.cluster, &mut cfg, &shutdown).await?;
    if let (Some(cluster), Some((path, tx))) = (&cfg.cluster, tokens_file) {
        tokio::spawn(token::share_in_cluster(
            cluster.clone(),
            path,
            tx,
            shutdown.clone(),
        ));
    }
    twk_relay::serve_node(listener, metrics, peer, cfg, shutdown)
        .await
        .context("relay stopped")?;
    Ok(())
}

/// With --cluster: binds the peer listener and joins the cluster (NATS must answer now).
async fn join_cluster(
    args: &args::ClusterArgs,
    cfg: &mut RelayConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if args.cluster_servers.is_empty() {
        return Ok(None);
    }
    let peer = tokio::net::TcpListener::bind(&args.cluster_listen)
        .await
        .with_context(|| format!("binding the cluster peer address {}", args.cluster_listen))?;
    let bound = peer.local_addr().context("cluster peer address")?;
    let advertise = args
        .cluster_advertise
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let cluster = twk_cluster::Cluster::join(
        twk_cluster::ClusterConfig {
            servers: args.cluster_servers.clone(),
            creds: args.cluster_creds.clone(),
            ca: args.cluster_ca.clone(),
            advertise,
            lease: args.cluster_lease,
        },
        shutdown.child_token(),
    )
    .await
    .context("joining the relay cluster")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "cluster node {} peers on {bound}", cluster.node())?;
    out.flush()?;
    cfg.cluster = Some(cluster);
    Ok(Some(peer))
}

/// Logs to stderr: colour only on a terminal, JSON on request, never the token.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = twk_transport::logging::filter("info");
    let layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry().with(layer).init();
    twk_transport::logging::narrow_log_gate();
}

/// Prints an error and each of its causes once, on one line.
fn report(e: &anyhow::Error) {
    eprintln!(
        "twk-relay: {}",
        twk_sanitize::clean(&twk_sanitize::error_chain(e.as_ref()))
    );
}

/// `twk-relay token …`. A malformed label is a usage error (2); a label taken or unknown is a
/// lookup in the file's current state (like `twk-tunnel replay` of an unknown id): 1.
fn token_main(cmd: args::TokenCmd) -> ExitCode {
    let Err(e) = token::run(cmd) else {
        return ExitCode::SUCCESS;
    };
    report(&e);
    match e.downcast_ref::<twk_relay::TokenFileError>() {
        Some(twk_relay::TokenFileError::Label(_)) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// Serving: configuration errors exit 2, failures at run time 1.
async fn serve_main(args: Args) -> ExitCode {
    init_logging(args.log_format);
    let (cfg, acme) = match config::config(&args) {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            return ExitCode::from(2);
        }
    };
    match run(args, cfg, acme).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = cli.serve.workers {
        runtime.worker_threads(n.get());
    }
    match runtime.build() {
        Ok(rt) => rt.block_on(dispatch(cli)),
        Err(e) => {
            report(&anyhow::Error::from(e).context("cannot start the async runtime"));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> ExitCode {
    let generated = match cli.command {
        Some(Command::Token(cmd)) => return token_main(cmd),
        Some(Command::Completions(a)) => twk_cli::completions(&a, Cli::command()),
        Some(Command::Man(a)) => twk_cli::man(&a, Cli::command()),
        None => return serve_main(cli.serve).await,
    };
    match generated {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
