//! The command line of `twk-relay`.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (journald, log shippers).
    Json,
}

/// Public URL form handed to tunnel clients.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Style {
    /// https://<name>.<domain> (needs wildcard DNS and a wildcard certificate)
    Subdomain,
    /// https://<domain>/t/<name>
    Path,
}

/// The twk relay: public webhooks in, multiplexed over one websocket per tunnel client.
#[derive(Debug, Parser)]
#[command(
    name = "twk-relay",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: Args,
}

/// Commands besides serving.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Manage tunnel tokens (the file keeps only their hashes).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(twk_cli::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --dir.
    Man(twk_cli::ManArgs),
}

/// `twk-relay token …`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Create a token, print it once, and store only its hash.
    Add {
        /// A name for it: who or what uses it (e.g. alice, ci, laptop-2).
        label: String,
        #[command(flatten)]
        files: TokenFiles,
    },
    /// List tokens: label, created, last tunnel connect.
    List {
        #[command(flatten)]
        files: TokenFiles,
        /// One JSON object per token.
        #[arg(long)]
        json: bool,
    },
    /// Remove a token. A running relay picks this up within a second (or on SIGHUP), closes
    /// that token's tunnels and frees its names.
    Revoke {
        /// The label given to `token add`.
        label: String,
        #[command(flatten)]
        files: TokenFiles,
    },
}

/// The files the token commands work on.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenFiles {
    /// The tokens file (default: $STATE_DIRECTORY/tokens under systemd, else
    /// $XDG_STATE_HOME/twk/relay-tokens).
    #[arg(long, env = "TWK_RELAY_TOKENS_FILE")]
    pub(crate) tokens_file: Option<PathBuf>,
    /// The relay's state file, read for the last use of each token.
    #[arg(long, env = "TWK_RELAY_STATE_FILE")]
    pub(crate) state_file: Option<PathBuf>,
}

/// Serving: the relay itself.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on, e.g. 0.0.0.0:443 or 127.0.0.1:8080.
    #[arg(long, env = "TWK_RELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: String,
    /// Threads serving requests (default: one per CPU core). On a small machine shared with
    /// other busy processes, 1 answers faster: a request and its tunnel then never wait for
    /// another thread to wake (docs/performance.md).
    #[arg(long, env = "TWK_RELAY_WORKERS", value_name = "N")]
    pub(crate) workers: Option<std::num::NonZeroUsize>,
    /// Public domain (with port if not the default), e.g. relay.example.com.
    #[arg(long, env = "TWK_RELAY_DOMAIN", required = true)]
    pub(crate) domain: Option<String>,
    /// Obtain and renew the TLS certificate automatically (ACME), with this contact e-mail.
    /// Needs the domain's DNS pointing here and --listen on port 443 (TLS-ALPN-01).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub(crate) acme_email: Option<String>,
    /// Use ACME without giving a contact e-mail.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub(crate) acme: bool,
    /// The CA's ACME directory: `letsencrypt`, `letsencrypt-staging`, or any RFC 8555 URL.
    #[arg(long, default_value = "letsencrypt")]
    pub(crate) acme_directory: String,
    /// DNS-01 hook, called as `<hook> set|clear _acme-challenge.<domain> <value>` (return once
    /// the TXT record is published). With it, *.<domain> is obtained too and URLs are
    /// subdomains.
    #[arg(long)]
    pub(crate) acme_dns_hook: Option<PathBuf>,
    /// Where the ACME account, certificate and key are kept (0600). Default:
    /// $STATE_DIRECTORY/acme (systemd), else $XDG_STATE_HOME/twk/acme.
    #[arg(long)]
    pub(crate) acme_cache: Option<PathBuf>,
    /// Trust this root certificate (PEM) for the CA's own API (a private CA, e.g. Pebble).
    #[arg(long)]
    pub(crate) acme_ca_root: Option<PathBuf>,
    /// Log format on stderr: `text` (no colour unless stderr is a terminal) or `json`.
    #[arg(long, value_enum, default_value = "text", env = "TWK_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    /// TLS certificate chain (PEM). With --tls-key, the listener speaks HTTPS.
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// File of accepted tunnel tokens (`twk-relay token add`, or one plain token per line),
    /// re-read when it changes or on SIGHUP. Default: $STATE_DIRECTORY/tokens, else
    /// $XDG_STATE_HOME/twk/relay-tokens, if it exists. Tokens may also come from env
    /// TWK_RELAY_TOKENS (comma separated).
    #[arg(long, env = "TWK_RELAY_TOKENS_FILE")]
    pub(crate) tokens_file: Option<PathBuf>,
    /// Accept tunnel clients without a token. Only for a relay nobody else can reach.
    #[arg(long)]
    pub(crate) allow_anonymous: bool,
    /// Form of the public URLs given to clients (default: subdomain; path with ACME unless
    /// --acme-dns-hook gives a wildcard certificate, and when --domain is an IP address).
    #[arg(long, value_enum)]
    pub(crate) url_style: Option<Style>,
    /// Public URLs use https even though this listener is plain HTTP (behind a TLS proxy).
    #[arg(long)]
    pub(crate) public_https: bool,
    /// Cap on a request body in bytes (larger: 413).
    #[arg(long, default_value_t = twk_protocol::limits::DEFAULT_MAX_BODY)]
    pub(crate) max_body: u64,
    /// Deadline for the local target's answer, e.g. 9s (then 504).
    #[arg(long, default_value = "9s", value_parser = humantime::parse_duration)]
    pub(crate) request_timeout: Duration,
    /// How long in-flight requests may drain on SIGINT/SIGTERM.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) grace: Duration,
    /// Maximum number of connected tunnels.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_tunnels: usize,
    /// How long a request waits for a tunnel client that was connected within the last
    /// minute to come back (a laptop waking, Wi-Fi switching, `twk-tunnel` restarting);
    /// then 503 + Retry-After. 0 turns it off; at most 8s (below GitHub's and Bandwidth's 10 s
    /// deadlines; Slack and Shopify, at 3 s and 5 s, may give up first and send it again).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) hold: Duration,
    /// Requests held at once per tunnel; more get 503 at once.
    #[arg(long, default_value_t = twk_protocol::limits::DEFAULT_HOLD_MAX)]
    pub(crate) hold_max: usize,
    /// Where requests that arrive while a tunnel's client is offline are kept (sealed to the
    /// tunnel's owner: the relay cannot read them) until it reconnects. Default: `kept/`
    /// beside the state file.
    #[arg(long, env = "TWK_RELAY_KEEP_DIR", value_name = "DIR")]
    pub(crate) keep_dir: Option<PathBuf>,
    /// Keep nothing for offline tunnels: 503 only.
    #[arg(long, conflicts_with = "keep_dir")]
    pub(crate) no_keep: bool,
    /// Requests kept per tunnel (the oldest go first).
    #[arg(long, default_value_t = twk_protocol::limits::DEFAULT_KEEP_COUNT)]
    pub(crate) keep_max: usize,
    /// Bytes kept per tunnel (the oldest go first).
    #[arg(long, default_value_t = twk_protocol::limits::DEFAULT_KEEP_BYTES)]
    pub(crate) keep_bytes: u64,
    /// How long a kept request is kept.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub(crate) keep_ttl: Duration,
    /// How long a released tunnel name stays reserved for the token that last held it.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub(crate) name_hold: Duration,
    /// Where name reservations are kept across restarts (JSON, 0600). Default:
    /// $STATE_DIRECTORY/names.json (systemd), else $XDG_STATE_HOME/twk/relay-names.json.
    #[arg(long, env = "TWK_RELAY_STATE_FILE")]
    pub(crate) state_file: Option<PathBuf>,
    /// Keep name reservations in memory only (a restart frees every name).
    #[arg(long, conflicts_with = "state_file")]
    pub(crate) no_state_file: bool,
    /// Tunnels one token may have connected at once (0: unlimited).
    #[arg(long, default_value_t = twk_protocol::limits::MAX_TUNNELS_PER_TOKEN)]
    pub(crate) max_tunnels_per_token: usize,
    /// Requests per second into one tunnel, sustained (0: unlimited); beyond: 429.
    #[arg(long, default_value_t = twk_protocol::limits::TUNNEL_RATE)]
    pub(crate) tunnel_rate: f64,
    /// Burst allowed above --tunnel-rate.
    #[arg(long, default_value_t = twk_protocol::limits::TUNNEL_BURST)]
    pub(crate) tunnel_burst: f64,
    /// Tunnel connection attempts per source address and second (0: unlimited); beyond: 429.
    #[arg(long, default_value_t = twk_protocol::limits::UPGRADE_RATE)]
    pub(crate) upgrade_rate: f64,
    /// Burst allowed above --upgrade-rate.
    #[arg(long, default_value_t = twk_protocol::limits::UPGRADE_BURST)]
    pub(crate) upgrade_burst: f64,
    /// Wrong tokens a source address may send before it gets 429 (one more every 12 s; 0: no limit).
    #[arg(long, default_value_t = twk_protocol::limits::AUTH_FAILURE_BURST)]
    pub(crate) auth_failures: f64,
    /// Open connections per source address (0: unlimited); trusted proxies are exempt.
    #[arg(long, default_value_t = twk_protocol::limits::MAX_CONNS_PER_IP)]
    pub(crate) max_conns_per_ip: usize,
    /// A proxy in front of the relay (address or CIDR, repeatable or comma separated) whose
    /// X-Forwarded-For names the sender. Nobody else's X-Forwarded-For is believed.
    #[arg(long, value_delimiter = ',')]
    pub(crate) trust_proxy: Vec<ipnet::IpNet>,
    /// Apply the per-address and per-tunnel limits to senders on this machine (loopback) too.
    /// By default they are exempt: a proxy on this machine not named in --trust-proxy would
    /// otherwise make every sender one address.
    #[arg(long)]
    pub(crate) limit_loopback: bool,
    /// Serve /_twk/metrics (Prometheus text format) on this address, e.g. 127.0.0.1:9090.
    /// Off by default; never on the public port.
    #[arg(long, env = "TWK_RELAY_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<String>,
    /// /_twk/health also reports version, protocol and tunnel count (default: only "ok").
    #[arg(long)]
    pub(crate) health_detail: bool,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

/// Running as one node of several (see docs/scaling.md).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Cluster")]
pub(crate) struct ClusterArgs {
    /// Join a relay cluster coordinated by NATS JetStream: server URLs, comma separated or
    /// repeated (nats://host:4222, tls://host:4222; user:password@ or token@ in the URL if
    /// needed: then give it in TWK_RELAY_CLUSTER, not on the command line, which every local
    /// user can read). Without it the relay runs alone.
    #[arg(
        long = "cluster",
        env = "TWK_RELAY_CLUSTER",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub(crate) cluster_servers: Vec<String>,
    /// The peer listener: other nodes send requests for tunnels held here to this address.
    /// Keep it on a private network between the nodes.
    #[arg(long = "cluster-listen", default_value = "127.0.0.1:0")]
    pub(crate) cluster_listen: String,
    /// The URL other nodes reach the peer listener at (default: http://<bound address>).
    #[arg(long = "cluster-advertise")]
    pub(crate) cluster_advertise: Option<String>,
    /// A NATS credentials file (.creds).
    #[arg(long = "cluster-creds", env = "TWK_RELAY_CLUSTER_CREDS")]
    pub(crate) cluster_creds: Option<std::path::PathBuf>,
    /// A CA certificate (PEM) for TLS to NATS.
    #[arg(long = "cluster-ca")]
    pub(crate) cluster_ca: Option<std::path::PathBuf>,
    /// How long a tunnel name (and a node) stays registered without renewal: a dead node's
    /// names are free after this; renewed every third of it.
    #[arg(long = "cluster-lease", value_parser = humantime::parse_duration, default_value = "10s")]
    pub(crate) cluster_lease: std::time::Duration,
}
