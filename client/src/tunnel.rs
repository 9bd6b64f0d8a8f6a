//! `twk-tunnel <TARGET>`: run the tunnel (embedded relay when none is configured).

use crate::output::{OutputMode, Printer};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use twk_agent::{AgentConfig, AgentError, HostHeader, RelayUrl, Target};

/// How the Host header reaches the local target.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HostHeaderArg {
    /// Host is the target's host:port.
    Rewrite,
    /// Host is the public host the sender used.
    Preserve,
}

/// Options of the tunnel itself.
#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// Local target: a port (3000), host:port (localhost:3000) or a URL (http://localhost:3000).
    #[arg(value_name = "TARGET", required = true)]
    pub target: Option<String>,
    /// Relay to connect to (wss://relay.example.com). Without it, an embedded relay runs on
    /// 127.0.0.1.
    #[arg(long, env = "TWK_RELAY")]
    pub relay: Option<String>,
    /// Tunnel token for the relay.
    #[arg(long, env = "TWK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tunnel name to claim (the relay assigns a random one otherwise).
    #[arg(long, env = "TWK_NAME")]
    pub name: Option<String>,
    /// Host header towards the local target.
    #[arg(long, value_enum, default_value = "rewrite")]
    pub host_header: HostHeaderArg,
    /// Plain line output instead of the terminal inspector.
    #[arg(long)]
    pub no_tui: bool,
    /// NDJSON output (one JSON object per line).
    #[arg(long)]
    pub json: bool,
    /// Port of the embedded relay (a free port is used if it is taken).
    #[arg(long, default_value_t = 8787)]
    pub embedded_port: u16,
    /// Extra CA certificate (PEM) to trust for a wss:// relay with a private certificate.
    #[arg(long)]
    pub relay_ca: Option<PathBuf>,
    /// Deadline for the local target's answer, e.g. 9s (embedded relay; a remote relay sets its own).
    #[arg(long, default_value = "9s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Cap on a request body in bytes (embedded relay).
    #[arg(long, default_value_t = twk_protocol::limits::DEFAULT_MAX_BODY)]
    pub max_body: u64,
}

impl TunnelArgs {
    fn host_header(&self) -> HostHeader {
        match self.host_header {
            HostHeaderArg::Rewrite => HostHeader::Rewrite,
            HostHeaderArg::Preserve => HostHeader::Preserve,
        }
    }
}

/// Binds the embedded relay's port: the requested one, or any free one if it is taken.
async fn bind_embedded(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .context("binding the embedded relay on a free loopback port")
        }
        Err(e) => Err(e).with_context(|| format!("binding the embedded relay on 127.0.0.1:{port}")),
    }
}

/// Runs the tunnel until SIGINT/SIGTERM or a fatal refusal.
pub async fn run(args: TunnelArgs) -> anyhow::Result<ExitCode> {
    let Some(target) = args.target.as_deref() else {
        bail!("missing TARGET: e.g. `twk-tunnel 3000`");
    };
    let target = Target::parse(target)?;
    let mode = if args.json {
        OutputMode::Json
    } else {
        OutputMode::Plain
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::signals(shutdown.clone()));

    let mut embedded = None;
    let relay = match &args.relay {
        Some(url) => RelayUrl::parse(url).map_err(anyhow::Error::msg)?,
        None => {
            let listener = bind_embedded(args.embedded_port).await?;
            let addr = listener
                .local_addr()
                .context("reading the embedded relay address")?;
            let mut cfg = twk_relay::RelayConfig::new(addr.to_string(), twk_relay::Auth::Open);
            cfg.url_style = twk_relay::UrlStyle::Path;
            cfg.request_timeout = args.request_timeout;
            cfg.max_body = args.max_body;
            cfg.shutdown_grace = Duration::from_secs(5);
            cfg.validate().map_err(anyhow::Error::msg)?;
            eprintln!(
                "twk: no relay configured (--relay / TWK_RELAY); started an embedded relay on {addr} \
                 (loopback only, no token needed)"
            );
            let token = shutdown.child_token();
            embedded = Some(tokio::spawn(twk_relay::serve(listener, cfg, token)));
            RelayUrl::parse(&format!("http://{addr}")).map_err(anyhow::Error::msg)?
        }
    };
    let mut cfg = AgentConfig::new(relay, target.clone());
    cfg.token = args.token.clone();
    cfg.name = args.name.clone();
    cfg.host_header = args.host_header();
    cfg.request_timeout = args.request_timeout;
    if let Some(path) = &args.relay_ca {
        cfg.extra_ca_pem = Some(
            std::fs::read(path).with_context(|| format!("reading CA file {}", path.display()))?,
        );
    }
    if let Some(name) = &cfg.name {
        twk_protocol::validate_name(name).with_context(|| format!("invalid --name {name:?}"))?;
    }
    let printer = Arc::new(Printer::new(mode, target.url()));
    let result = twk_agent::run(cfg, printer.clone(), shutdown.clone()).await;
    shutdown.cancel();
    printer.flush();
    if let Some(task) = embedded {
        let _ = task.await;
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ AgentError::Unauthorized(_)) => Err(anyhow::Error::new(e)
            .context("the relay did not accept this tunnel; check --token / TWK_TOKEN")),
        Err(e @ AgentError::NameTaken(_)) => Err(anyhow::Error::new(e).context(
            "another token holds this name; pick another --name or stop the other tunnel",
        )),
        Err(e) => Err(e.into()),
    }
}
