//! `twk-relay`: the public side of twk. Accepts webhooks and tunnel clients on one port.

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use twk_relay::{AbuseLimits, Auth, RelayConfig, Scheme, TokenSet, UrlStyle};

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
    /// How long a released tunnel name stays reserved for the token that last held it.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    name_hold: Duration,
    /// Where name reservations are kept across restarts (JSON, 0600). Default:
    /// $STATE_DIRECTORY/names.json (systemd), else $XDG_STATE_HOME/twk/relay-names.json.
    #[arg(long, env = "TWK_RELAY_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Keep name reservations in memory only (a restart frees every name).
    #[arg(long, conflicts_with = "state_file")]
    no_state_file: bool,
    /// Tunnels one token may have connected at once (0: unlimited).
    #[arg(long, default_value_t = twk_protocol::limits::MAX_TUNNELS_PER_TOKEN)]
    max_tunnels_per_token: usize,
    /// Requests per second into one tunnel, sustained (0: unlimited); beyond: 429.
    #[arg(long, default_value_t = twk_protocol::limits::TUNNEL_RATE)]
    tunnel_rate: f64,
    /// Burst allowed above --tunnel-rate.
    #[arg(long, default_value_t = twk_protocol::limits::TUNNEL_BURST)]
    tunnel_burst: f64,
    /// Tunnel connection attempts per source address and second (0: unlimited); beyond: 429.
    #[arg(long, default_value_t = twk_protocol::limits::UPGRADE_RATE)]
    upgrade_rate: f64,
    /// Burst allowed above --upgrade-rate.
    #[arg(long, default_value_t = twk_protocol::limits::UPGRADE_BURST)]
    upgrade_burst: f64,
    /// Wrong tokens a source address may send before it gets 429 (one more every 12 s; 0: no limit).
    #[arg(long, default_value_t = twk_protocol::limits::AUTH_FAILURE_BURST)]
    auth_failures: f64,
    /// Open connections per source address (0: unlimited); trusted proxies are exempt.
    #[arg(long, default_value_t = twk_protocol::limits::MAX_CONNS_PER_IP)]
    max_conns_per_ip: usize,
    /// A proxy in front of the relay (address or CIDR, repeatable or comma separated) whose
    /// X-Forwarded-For names the sender. Nobody else's X-Forwarded-For is believed.
    #[arg(long, value_delimiter = ',')]
    trust_proxy: Vec<ipnet::IpNet>,
    /// Apply the per-address and per-tunnel limits to senders on this machine (loopback) too.
    /// By default they are exempt: a proxy on this machine not named in --trust-proxy would
    /// otherwise make every sender one address.
    #[arg(long)]
    limit_loopback: bool,
    /// /_twk/health also reports version, protocol and tunnel count (default: only "ok").
    #[arg(long)]
    health_detail: bool,
}

/// Where reservations go when no --state-file is given.
fn default_state_file() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several, colon-separated: the first is ours.
        let first = std::env::split_paths(&dir).next()?;
        return Some(first.join("names.json"));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("twk").join("relay-names.json"))
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
    cfg.name_hold = args.name_hold;
    cfg.state_file = if args.no_state_file {
        None
    } else {
        args.state_file.clone().or_else(default_state_file)
    };
    cfg.abuse = AbuseLimits {
        upgrade_rate: args.upgrade_rate,
        upgrade_burst: args.upgrade_burst,
        auth_failure_burst: args.auth_failures,
        auth_failure_refill: twk_protocol::limits::AUTH_FAILURE_REFILL,
        max_conns_per_ip: args.max_conns_per_ip,
        max_tunnels_per_token: args.max_tunnels_per_token,
        tunnel_rate: args.tunnel_rate,
        tunnel_burst: args.tunnel_burst,
        exempt_loopback: !args.limit_loopback,
    };
    cfg.trust_proxy = args.trust_proxy.clone();
    cfg.health_detail = args.health_detail;
    cfg.validate().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

/// Raises the open-file soft limit to the hard limit: at the usual 1024, a thousand idle
/// connections from one address starve real webhooks.
fn raise_open_files() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

async fn run(args: Args, cfg: RelayConfig) -> anyhow::Result<()> {
    raise_open_files();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    tracing::info!(
        %addr,
        domain = %cfg.domain,
        tls = cfg.tls.is_some(),
        state_file = ?cfg.state_file,
        "relay started"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(twk_transport::cancel_on_signal(shutdown.clone()));
    twk_relay::serve(listener, cfg, shutdown)
        .await
        .context("relay stopped")?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(twk_transport::logging::filter("info")),
        )
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
