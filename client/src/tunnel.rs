//! `twk-tunnel <TARGET>`: run the tunnel (embedded relay when none is configured).

use crate::config::Config;
use crate::output::{OutputMode, Printer};
use crate::usage::{UsageExt, usage_error};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use twk_agent::{AgentConfig, AgentError, HostHeader, RelayUrl, Target};
use twk_agent::{ConnState, Observer};
use twk_capture::{Exchange, Recorder};
use twk_trigger::LiveTestSecrets;

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
    /// Relay to connect to (wss://relay.example.com). Several nodes of one relay cluster:
    /// comma separated or repeated, tried in turn when one fails. Without it, an embedded
    /// relay runs on 127.0.0.1.
    #[arg(long, env = "TWK_RELAY", value_delimiter = ',')]
    pub relay: Vec<String>,
    /// Tunnel token for the relay. Prefer env TWK_TOKEN or the config file: a --token on the
    /// command line is visible to every user of this machine in `ps`.
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
    /// Certificates (PEM) to trust for a wss:// relay with a private certificate: its CA, or
    /// the relay's self-signed certificate itself.
    #[arg(long)]
    pub relay_ca: Option<PathBuf>,
    /// Deadline for the local target's answer, e.g. 9s (embedded relay; a remote relay sets its own).
    #[arg(long, default_value = "9s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Cap on a request body in bytes (embedded relay).
    #[arg(long, default_value_t = twk_protocol::limits::DEFAULT_MAX_BODY)]
    pub max_body: u64,
    /// Provider secret for signature checks, PROVIDER=VALUE (repeatable), e.g.
    /// `--secret stripe=whsec_…`. Also from env (STRIPE_WEBHOOK_SECRET, …) and the config file.
    #[arg(long = "secret", value_name = "PROVIDER=VALUE")]
    pub secrets: Vec<String>,
    /// Capture directory (default: `data_dir` from the config, else $XDG_DATA_HOME/twk).
    #[arg(long, value_name = "DIR", env = "TWK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/twk/config.toml).
    #[arg(long, value_name = "FILE", env = "TWK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Do not record exchanges on disk.
    #[arg(long)]
    pub no_capture: bool,
    /// Answer the Basic-auth challenge in twk: requests without these credentials get 401 with
    /// `WWW-Authenticate: Basic realm="…"`, as Bandwidth's callbacks expect. `user:password`.
    /// Also the Bandwidth secret for verdicts unless `--secret bandwidth=…` names another.
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "TWK_BASIC_AUTH",
        hide_env_values = true
    )]
    pub basic_auth: Option<String>,
    /// Realm of the Basic-auth challenge.
    #[arg(long, value_name = "REALM")]
    pub realm: Option<String>,
    /// Remove `Authorization` before forwarding an authenticated request to the local app.
    #[arg(long)]
    pub strip_auth: bool,
    /// Deliver requests that arrived while this tunnel was offline (kept by the relay) to the
    /// local target once, in order, as replays linked to their missed rows. Without it they
    /// are recorded only (`log --missed`; replay them with `replay ID` or the inspector).
    #[arg(long)]
    pub deliver_missed: bool,
    /// Also run the local Twilio Verify / Authy emulator (docs/emulator.md) in this process,
    /// on --emulate-listen; `trigger … --emulator` fires through it.
    #[arg(long)]
    pub emulate: bool,
    /// Where --emulate's emulator listens (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = crate::cmd::emulate::DEFAULT_LISTEN)]
    pub emulate_listen: std::net::SocketAddr,
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

/// The tunnel's link as the inspector shows it: one watch channel carries every change.
#[derive(Debug, Clone)]
pub struct Link {
    /// Connection state.
    pub conn: ConnState,
    /// Last relay round trip in ms, once measured.
    pub rtt_ms: Option<u64>,
}

/// Fans the agent's reports out to the printer (or inspector), the capture store and the
/// link watch.
struct TunnelObserver {
    printer: Option<Arc<Printer>>,
    recorder: Option<Recorder>,
    link: watch::Sender<Link>,
    /// Requests in flight, for the inspector (bounded: under a flood, rows are skipped,
    /// never forwarding).
    flights: Option<mpsc::Sender<twk_inspector::Msg>>,
    /// The local target, for the runtime file.
    target: String,
    /// The data directory, for the runtime file (`trigger` signs with its test secrets).
    data_dir: Option<PathBuf>,
    /// This tunnel's runtime file while connected (`trigger` finds the public URL there).
    published: std::sync::Mutex<Option<crate::runtime::Published>>,
    /// What happens to requests that arrived while offline.
    missed: crate::missed::MissedPolicy,
}

impl TunnelObserver {
    /// Publishes (or withdraws) the public URL for `trigger`; a failure costs only that.
    fn publish(&self, state: &ConnState) {
        let Ok(mut slot) = self.published.lock() else {
            return;
        };
        match state {
            ConnState::Connected { name, public_url } => {
                let live = crate::runtime::LiveTunnel {
                    name: name.clone(),
                    public_url: public_url.clone(),
                    target: self.target.clone(),
                    pid: std::process::id(),
                    data_dir: self.data_dir.clone(),
                };
                let written = match slot.as_ref() {
                    Some(p) => p.rewrite(&live),
                    None => crate::runtime::Published::write(&live).map(|p| *slot = Some(p)),
                };
                if let Err(e) = written {
                    tracing::warn!(
                        error = %twk_sanitize::error_chain(e.as_ref()),
                        "cannot publish the tunnel's URL for `trigger`"
                    );
                }
            }
            ConnState::Stopped => *slot = None,
            // Reconnecting keeps the file: the URL usually comes back the same.
            ConnState::Connecting { .. } | ConnState::Reconnecting { .. } => {}
        }
    }
}

/// The inspector's in-flight row of a request whose head just arrived.
fn in_flight(ex: &Exchange) -> twk_inspector::InFlight {
    let head = ex.request_view(&[]);
    let provider = twk_providers::detect(&head);
    let header = |name: &str| {
        head.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    twk_inspector::InFlight {
        request_id: ex.request_id.clone(),
        received_ms: ex.timings.received_ms,
        method: ex.method.clone(),
        path: ex.path.clone(),
        provider: provider.map(|p| p.as_str().to_owned()),
        // The events a head names; others are in the body, which has not arrived yet.
        event: header("x-github-event").or_else(|| header("x-shopify-topic")),
        done_ms: None,
    }
}

impl Observer for TunnelObserver {
    fn connection(&self, state: &ConnState) {
        // Published before "ready" is printed: a script that waits for it can trigger.
        self.publish(state);
        if let Some(p) = &self.printer {
            p.connection(state);
        }
        self.link.send_modify(|l| l.conn = state.clone());
    }

    fn rtt(&self, rtt: Duration) {
        let ms = u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX).max(1);
        self.link.send_if_modified(|l| {
            let changed = l.rtt_ms != Some(ms);
            l.rtt_ms = Some(ms);
            changed
        });
    }

    fn refused_unlisted(&self, count: u64) {
        if let Some(p) = &self.printer {
            p.refused_unlisted(count);
        }
        if let Some(tx) = &self.flights {
            let _ = tx.try_send(twk_inspector::Msg::Notice(
                crate::output::unlisted_words(count),
                twk_inspector::Level::Error,
            ));
        }
    }

    fn unkept(&self, unkept: &twk_protocol::refused::Unkept) {
        if let Some(p) = &self.printer {
            p.unkept(unkept);
        }
        if let Some(tx) = &self.flights {
            let _ = tx.try_send(twk_inspector::Msg::Unkept {
                words: crate::output::unkept_words(unkept),
                count: unkept.total(),
            });
        }
    }

    fn started(&self, exchange: &Exchange) {
        if let Some(tx) = &self.flights {
            let _ = tx.try_send(twk_inspector::Msg::Started(Box::new(in_flight(exchange))));
        }
    }

    fn missed(&self, exchange: Exchange, recorded: tokio::sync::oneshot::Sender<bool>) {
        // Without a store it cannot be kept here: the relay keeps it for a client that can.
        let Some(recorder) = self.recorder.clone() else {
            let _ = recorded.send(false);
            return;
        };
        let (printer, policy) = (self.printer.clone(), self.missed.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let ok =
                crate::missed::record(&recorder, printer.as_ref(), &policy, &runtime, exchange);
            let _ = recorded.send(ok);
        });
    }

    fn exchange(&self, exchange: Exchange) {
        if let Some(tx) = &self.flights {
            let _ = tx.try_send(twk_inspector::Msg::Finished {
                request_id: exchange.request_id.clone(),
            });
        }
        let Some(recorder) = &self.recorder else {
            if let Some(p) = &self.printer {
                p.exchange(exchange);
            }
            return;
        };
        let Some(printer) = &self.printer else {
            recorder.record(exchange);
            return;
        };
        // Render now, print with the stable store id once the writer assigned it (never blocks
        // forwarding, and the bodies are not copied for the sake of one line).
        let line = printer.prepare(&exchange);
        let pending = recorder.record(exchange);
        printer.emit_stored(line, pending);
    }
}

/// Whether the full-screen inspector runs.
pub fn wants_tui(args: &TunnelArgs) -> bool {
    !args.no_tui && !args.json && std::io::stdout().is_terminal()
}

/// The tunnel's options once the command line, the environment and the config file are
/// merged, every one of them checked: nothing has started yet.
struct Settings {
    args: TunnelArgs,
    target: Target,
    secrets: Arc<twk_providers::Secrets>,
    /// twk's test secrets of the data directory, as they are now; `None` when there is no
    /// data directory at all (no HOME).
    test_secrets: Option<Arc<LiveTestSecrets>>,
    mode: OutputMode,
    /// `--relay` (the first), or `None` for the embedded relay.
    relay: Option<RelayUrl>,
    /// The other `--relay` URLs: nodes of the same cluster, tried in turn.
    fallback_relays: Vec<RelayUrl>,
    basic_auth: Option<twk_agent::BasicAuth>,
    /// The `--relay-ca` file's PEM, certificates checked.
    relay_ca: Option<Vec<u8>>,
    /// Where captures go, unless `--no-capture`.
    store: Option<twk_capture::StoreOptions>,
}

/// Step 1: the target, the config file, the precedence of flags over the file, and every
/// option checked. All errors here are the user's to fix (exit 2).
fn settings(mut args: TunnelArgs) -> anyhow::Result<Settings> {
    let Some(target) = args.target.as_deref() else {
        return Err(usage_error("missing TARGET: e.g. `twk-tunnel 3000`"));
    };
    let target = Target::parse(target).usage()?;
    let config = Config::load(args.config.as_deref()).usage()?;
    if args.relay.is_empty() {
        args.relay = config
            .relay
            .iter()
            .flat_map(|r| r.split(','))
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
    }
    args.token = args
        .token
        .take()
        .or_else(|| config.token.as_ref().map(|t| t.expose().to_string()));
    args.name = args.name.take().or_else(|| config.name.clone());
    if let Some(name) = &args.name {
        twk_protocol::validate_name(name)
            .with_context(|| format!("invalid --name {name:?}"))
            .usage()?;
    }
    let env = |k: &str| std::env::var(k).ok();
    let basic = config.basic_auth(args.basic_auth.as_deref(), env);
    let secrets = config
        .secrets(&args.secrets, basic.as_deref(), env)
        .usage()?;
    let mut relays = args
        .relay
        .iter()
        .map(|url| RelayUrl::parse(url).map_err(anyhow::Error::msg).usage())
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter();
    let relay = relays.next();
    let fallback_relays = relays.collect();
    let store = match args.no_capture {
        true => None,
        false => Some(config.store_options(args.data_dir.as_deref()).usage()?),
    };
    let test_secrets = config
        .test_secrets(args.data_dir.as_deref())
        .ok()
        .map(|file| Arc::new(watch_test_secrets(file)));
    Ok(Settings {
        basic_auth: basic_auth(basic.as_deref(), &args, &config).usage()?,
        relay_ca: args.relay_ca.as_deref().map(relay_ca).transpose().usage()?,
        mode: if args.json {
            OutputMode::Json
        } else {
            OutputMode::Plain
        },
        args,
        target,
        secrets: Arc::new(secrets),
        test_secrets,
        relay,
        fallback_relays,
        store,
    })
}

/// twk's test secrets of `file` as they are now; a file that is there but cannot be used is
/// said on stderr at start (naming it) and counts as none until it is fixed.
fn watch_test_secrets(file: twk_trigger::TestSecrets) -> LiveTestSecrets {
    if let Err(e) = file.load() {
        say!(
            "twk-tunnel: warning: {}; webhooks signed with a test secret show \"no secret\" \
             until it is fixed",
            twk_sanitize::clean(&twk_sanitize::error_chain(&e))
        );
    }
    LiveTestSecrets::new(file)
}

/// The configured secrets with twk's test secrets as they are now: for replays, whose
/// secrets are taken once.
pub fn secrets_now(
    configured: &twk_providers::Secrets,
    test: Option<&LiveTestSecrets>,
) -> twk_providers::Secrets {
    let mut s = configured.clone();
    for (p, secret) in test.map(|t| t.all()).iter().flat_map(|all| all.iter()) {
        s.set_test_secret(*p, secret.clone());
    }
    s
}

/// The Basic-auth credentials twk enforces (`--basic-auth`, `TWK_BASIC_AUTH` or the config
/// file's `basic_auth`: [`Config::basic_auth`]) with their realm.
fn basic_auth(
    spec: Option<&str>,
    args: &TunnelArgs,
    config: &Config,
) -> anyhow::Result<Option<twk_agent::BasicAuth>> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let realm = args
        .realm
        .clone()
        .or_else(|| config.realm.clone())
        .unwrap_or_else(|| "twk".to_string());
    let auth = twk_agent::BasicAuth::parse(spec, &realm, args.strip_auth)
        .context("invalid --basic-auth")?;
    Ok(Some(auth))
}

/// The `--relay-ca` file, read and parsed now so that a wrong file is a usage error at start,
/// not a connection that fails later.
fn relay_ca(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("reading CA file {}", path.display()))?;
    twk_transport::tls::certs_from_pem(&pem)
        .with_context(|| format!("in CA file {}", path.display()))?;
    Ok(pem)
}

/// This client's key for requests the relay keeps while it is offline ([`crate::owner_key`]).
/// Only with a capture store (kept requests are recorded there); a failure costs only that
/// feature.
fn owner_key(s: &Settings) -> Option<twk_protocol::kept::OwnerKey> {
    let path = s.store.as_ref()?.data_dir.join("owner.key");
    crate::owner_key::load_or_make(&path)
        .inspect_err(|e| {
            // Said, not logged: forwarding goes on, and the fix is the user's (move the file).
            say!(
                "twk: warning: nothing will be kept while offline: {}",
                twk_sanitize::clean(&twk_sanitize::error_chain(e.as_ref()))
            );
        })
        .ok()
}

/// The capture store's writer, unless `--no-capture` or it cannot start (then a warning).
fn start_recorder(s: &Settings) -> Option<Recorder> {
    let opts = s.store.clone()?;
    match Recorder::start(opts.clone()) {
        Ok(r) => Some(r),
        Err(e) => {
            // Forwarding matters more than history: go on, and say so once.
            say!(
                "twk: warning: captures will not be recorded: {} ({})",
                twk_sanitize::clean(&twk_sanitize::error_chain(&e)),
                opts.db_path().display()
            );
            None
        }
    }
}

/// The relay to dial: `--relay`, or an embedded one on loopback (then also its serve task).
async fn relay(
    s: &Settings,
    tui: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<(RelayUrl, Option<EmbeddedRelay>)> {
    if let Some(url) = &s.relay {
        // Flags for the embedded relay only: a remote relay sets its own.
        let ignored: Vec<&str> = [
            (
                s.args.request_timeout != twk_protocol::limits::DEFAULT_REQUEST_TIMEOUT,
                "--request-timeout",
            ),
            (
                s.args.max_body != twk_protocol::limits::DEFAULT_MAX_BODY,
                "--max-body",
            ),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect();
        if !ignored.is_empty() {
            say!(
                "twk-tunnel: {} set the embedded relay's limits and do nothing with --relay: \
                 the relay's own (twk-relay --request-timeout, --max-body) apply",
                ignored.join(" and ")
            );
        }
        return Ok((url.clone(), None));
    }
    let listener = bind_embedded(s.args.embedded_port).await?;
    let addr = listener
        .local_addr()
        .context("reading the embedded relay address")?;
    let mut cfg = twk_relay::RelayConfig::new(addr.to_string(), twk_relay::Auth::Open);
    cfg.url_style = twk_relay::UrlStyle::Path;
    cfg.request_timeout = s.args.request_timeout;
    cfg.max_body = s.args.max_body;
    cfg.shutdown_grace = Duration::from_secs(5);
    // Loopback only, one user: the public relay's abuse limits would only get in the way.
    cfg.abuse = twk_relay::AbuseLimits::none();
    cfg.health_detail = true;
    // Only --request-timeout and --max-body come from the user here.
    cfg.validate().map_err(anyhow::Error::msg).usage()?;
    if !tui {
        say!(
            "twk: no relay configured (--relay / TWK_RELAY): using an embedded relay on {addr}. \
             It is loopback only: providers cannot reach this URL; run twk-relay on a server \
             (docs/deploy.md) and pass --relay."
        );
    }
    tracing::info!(%addr, "embedded relay started (loopback only, no token needed)");
    let task = tokio::spawn(twk_relay::serve(listener, cfg, shutdown.child_token()));
    let url = RelayUrl::parse(&format!("http://{addr}")).map_err(anyhow::Error::msg)?;
    Ok((url, Some(task)))
}

/// The embedded relay's serve task.
type EmbeddedRelay = tokio::task::JoinHandle<Result<(), twk_relay::RelayError>>;

/// Step 2: the agent's configuration.
fn agent_config(s: &Settings, relay: RelayUrl, recorder: Option<&Recorder>) -> AgentConfig {
    let args = &s.args;
    let mut cfg = AgentConfig::new(relay, s.target.clone());
    cfg.fallback_relays.clone_from(&s.fallback_relays);
    cfg.token = args.token.clone();
    cfg.name = args.name.clone();
    cfg.host_header = args.host_header();
    cfg.request_timeout = args.request_timeout;
    cfg.secrets = s.secrets.clone();
    cfg.test_secrets = s
        .test_secrets
        .clone()
        .map(|live| -> twk_agent::TestSecretLookup { Arc::new(move |p| live.get(p)) });
    cfg.basic_auth = s.basic_auth.clone();
    cfg.extra_ca_pem = s.relay_ca.clone();
    cfg.owner_key = owner_key(s);
    if let Some(r) = recorder {
        cfg.capture_cap = r.options().body_cap;
    }
    // Only the capture store reads a body's hash.
    cfg.hash_bodies = recorder.is_some();
    cfg
}

/// Runs the agent to its end, with the inspector in front of it when `tui` has a store to
/// read; returns how the agent ended.
async fn drive(
    s: &Settings,
    cfg: AgentConfig,
    recorder: Option<Recorder>,
    tui: bool,
    embedded: bool,
    emulator: Option<twk_emulator::Handle>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Result<(), AgentError>, Option<Arc<Printer>>)> {
    // Missed requests delivered later reach the app with the Host a live one would have.
    let keep_host = cfg.host_header == HostHeader::Preserve;
    let (link_tx, link_rx) = watch::channel(Link {
        conn: ConnState::Connecting { attempt: 0 },
        rtt_ms: None,
    });
    let printer = (!tui).then(|| Arc::new(Printer::new(s.mode, s.target.url())));
    let (flights_tx, flights_rx) = mpsc::channel(1024);
    let observer = Arc::new(TunnelObserver {
        printer: printer.clone(),
        recorder: recorder.clone(),
        link: link_tx,
        flights: tui.then_some(flights_tx),
        target: s.target.url(),
        // Absolute: `trigger` may run elsewhere than a relative `--data-dir` means.
        data_dir: s
            .test_secrets
            .as_ref()
            .and_then(|t| t.file().path().parent())
            .and_then(|d| std::path::absolute(d).ok()),
        published: std::sync::Mutex::new(None),
        missed: crate::missed::MissedPolicy {
            deliver: s
                .args
                .deliver_missed
                .then(|| twk_agent::replay::ReplayOptions {
                    // The app this tunnel forwards to now, as a live request would reach it
                    // (the row records the target of the hand-off, as `D` replays it).
                    to: Some(s.target.url()),
                    keep_host,
                    secrets: (*s.secrets).clone(),
                    capture_cap: recorder.as_ref().map_or(1 << 20, |r| r.options().body_cap),
                    ..Default::default()
                }),
            test_secrets: s.test_secrets.clone(),
        },
    });
    let agent = forward_on_own_thread(cfg, observer, shutdown.clone())?;
    let result = match (tui, recorder) {
        (true, Some(recorder)) => {
            let ctx = crate::tui::TuiContext {
                recorder,
                link: link_rx,
                flights: flights_rx,
                target: s.target.url(),
                keep_host,
                secrets: s.secrets.clone(),
                test_secrets: s.test_secrets.clone(),
                shutdown: shutdown.clone(),
                embedded,
                relay_ca: s.relay_ca.clone(),
                emulator,
            };
            let ui = crate::tui::run(ctx).await;
            shutdown.cancel();
            let agent_result = agent.await.context("forwarding thread")?;
            ui?;
            agent_result
        }
        _ => {
            drop(link_rx);
            agent.await.context("forwarding thread")?
        }
    };
    Ok((result, printer))
}

/// Runs the tunnel's forwarding on a thread of its own with a single-threaded runtime, and
/// hands back its result.
///
/// Every request crosses several tasks (the HTTP/2 stream, the target connection, the
/// recording): on a multi-threaded runtime each hand-off could wake the other worker, a
/// context switch that cost more than the forwarding itself (docs/performance.md). One
/// thread keeps them on one core's cache; the inspector and the recorder live elsewhere, so
/// drawing the screen never delays a webhook.
fn forward_on_own_thread(
    cfg: AgentConfig,
    observer: Arc<TunnelObserver>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<Result<(), AgentError>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("twk-forward")
        .build()
        .context("cannot start the forwarding runtime")?;
    std::thread::Builder::new()
        .name("twk-forward".into())
        .spawn(move || {
            let result = rt.block_on(twk_agent::run(cfg, observer, shutdown.clone()));
            // A tunnel that ended in error also ends the inspector, so that the reason is
            // printed instead of a "stopped" bar waiting for `q`.
            if result.is_err() {
                shutdown.cancel();
            }
            let _ = tx.send(result);
        })
        .context("cannot start the forwarding thread")?;
    Ok(rx)
}

/// How the agent's end becomes the process's: success, or the refusal with what to do.
fn exit(result: Result<(), AgentError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ AgentError::Unauthorized(_)) => Err(anyhow::Error::new(e)
            .context("the relay did not accept this tunnel; check --token / TWK_TOKEN")),
        Err(e @ AgentError::NameTaken(_)) => Err(anyhow::Error::new(e).context(
            "another token holds this name; pick another --name or stop the other tunnel",
        )),
        // The CA file was checked at start; rustls may still refuse one of its certificates.
        Err(e @ AgentError::Tls(_)) => Err(e).usage(),
        Err(e) => Err(e.into()),
    }
}

/// Runs the tunnel until SIGINT/SIGTERM or a fatal refusal.
/// `--emulate`: the emulator, kept in the capture store's directory, its banner on stderr
/// (stdout may be NDJSON).
async fn emulator(
    s: &Settings,
) -> anyhow::Result<Option<(twk_emulator::Emulator, Option<crate::runtime::Published>)>> {
    if !s.args.emulate {
        return Ok(None);
    }
    let data_dir = match &s.store {
        Some(o) => o.data_dir.clone(),
        None => {
            twk_capture::StoreOptions::at(s.args.data_dir.as_deref())
                .context("locating the data directory for the emulator")?
                .data_dir
        }
    };
    let token = std::env::var("TWK_EMULATOR_AUTH_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(twk_providers::Secret::new);
    let mut cfg = crate::cmd::emulate::config(s.args.emulate_listen, &data_dir, None, token, None)?;
    // Deliveries go to the tunnel's public URL: a relay with a private CA is trusted here too.
    cfg.extra_ca_pem.clone_from(&s.relay_ca);
    let started = crate::cmd::emulate::start(cfg).await?;
    say!("{}", crate::cmd::emulate::banner(&started.0));
    Ok(Some(started))
}

pub async fn run(args: TunnelArgs) -> anyhow::Result<ExitCode> {
    let s = settings(args)?;
    let recorder = start_recorder(&s);
    // The inspector reads the capture store; without one, fall back to plain lines.
    let tui = wants_tui(&s.args) && recorder.is_some();
    let emulator = emulator(&s).await?;
    let handle = emulator.as_ref().map(|(e, _)| e.handle());
    let shutdown = CancellationToken::new();
    tokio::spawn(twk_transport::cancel_on_signal(shutdown.clone()));
    let (relay, embedded) = relay(&s, tui, &shutdown).await?;
    let cfg = agent_config(&s, relay, recorder.as_ref());
    let store = recorder.clone();
    let (result, printer) = drive(
        &s,
        cfg,
        recorder,
        tui,
        embedded.is_some(),
        handle,
        &shutdown,
    )
    .await?;
    drop(emulator);
    shutdown.cancel();
    if let Some(p) = &printer {
        p.flush();
    }
    // The writer may be gathering the last exchanges (up to 10 ms): the process must not end
    // before they are stored. Lines already waited for theirs; the inspector has none.
    if let Some(r) = &store {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), r.flush()).await;
    }
    if let Some(task) = embedded {
        let _ = task.await;
    }
    exit(result)
}
