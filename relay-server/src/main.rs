//! `twk-relay`: the public side of twk. Accepts webhooks and tunnel clients on one port.

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use twk_relay::{Auth, RelayConfig, Scheme, TokenSet, UrlStyle};

/// Public URL form handed to tunnel clients.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Style {
    /// https://<name>.<domain> (needs wildcard DNS and a wildcard certificate)
    Subdomain,
    /// https://<domain>/t/<name>
    Path,
}

/// The twk relay: public webhooks in, multiplexed over one websocket per tunnel client.
#[derive(Debug, Parser)]
#[command(name = "twk-relay", version, about)]
struct Args {
    /// Address to listen on, e.g. 0.0.0.0:443 or 127.0.0.1:8080.
    #[arg(long, env = "TWK_RELAY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Public domain (with port if not the default), e.g. relay.example.com.
    #[arg(long, env = "TWK_RELAY_DOMAIN")]
    domain: String,
    /// TLS certificate chain (PEM). With --tls-key, the listener speaks HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// File of accepted tunnel tokens, one per line (kept only as hashes in memory).
    /// Tokens may also come from env TWK_RELAY_TOKENS (comma separated).
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Accept tunnel clients without a token. Only for a relay nobody else can reach.
    #[arg(long)]
    allow_anonymous: bool,
    /// Form of the public URLs given to clients.
    #[arg(long, value_enum, default_value = "subdomain")]
    url_style: Style,
    /// Public URLs use https even though this listener is plain HTTP (behind a TLS proxy).
    #[arg(long)]
    public_https: bool,
    /// Cap on a request body in bytes (larger: 413).
    #[arg(long, default_value_t = twk_protocol::limits::DEFAULT_MAX_BODY)]
    max_body: u64,
    /// Deadline for the local target's answer, e.g. 9s (then 504).
    #[arg(long, default_value = "9s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// How long in-flight requests may drain on SIGINT/SIGTERM.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// Maximum number of connected tunnels.
    #[arg(long, default_value_t = 10_000)]
    max_tunnels: usize,
}

fn config(args: &Args) -> anyhow::Result<RelayConfig> {
    let mut tokens = TokenSet::default();
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading tokens file {}", path.display()))?;
        tokens.extend_from_text(&text);
    }
    if let Ok(env) = std::env::var("TWK_RELAY_TOKENS") {
        tokens.extend_from_text(&env);
    }
    let auth = match (tokens.is_empty(), args.allow_anonymous) {
        (false, _) => Auth::Tokens(tokens),
        (true, true) => Auth::Open,
        (true, false) => bail!(
            "no tunnel tokens configured: pass --tokens-file or set TWK_RELAY_TOKENS \
             (or --allow-anonymous for a relay nobody else can reach)"
        ),
    };
    let mut cfg = RelayConfig::new(args.domain.clone(), auth);
    cfg.url_style = match args.url_style {
        Style::Subdomain => UrlStyle::Subdomain,
        Style::Path => UrlStyle::Path,
    };
    if args.public_https {
        cfg.public_scheme = Scheme::Https;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        cfg.tls = Some(
            twk_transport::tls::server_config_from_files(cert, key)
                .context("loading the TLS certificate and key")?,
        );
    }
    cfg.max_body = args.max_body;
    cfg.request_timeout = args.request_timeout;
    cfg.shutdown_grace = args.grace;
    cfg.max_tunnels = args.max_tunnels;
    cfg.validate().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

async fn run(args: Args, cfg: RelayConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, domain = %cfg.domain, tls = cfg.tls.is_some(), "relay started");
    let shutdown = CancellationToken::new();
    tokio::spawn(twk_transport::cancel_on_signal(shutdown.clone()));
    twk_relay::serve(listener, cfg, shutdown)
        .await
        .context("relay stopped")?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TWK_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("twk-relay: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(args, cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twk-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
