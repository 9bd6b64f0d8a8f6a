//! From the command line to a relay configuration (and its ACME manager).

use crate::args::{Args, Style};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::sync::Arc;
use twk_relay::{AbuseLimits, Auth, RelayConfig, Scheme, TokenSet, UrlStyle};

/// The state directory: $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/twk.
fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several, colon-separated: the first is ours.
        return std::env::split_paths(&dir).next();
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("twk"))
}

/// The tokens file: the one named, else the default if it exists.
pub(crate) fn tokens_file(named: Option<&PathBuf>) -> Option<PathBuf> {
    if let Some(p) = named {
        return Some(p.clone());
    }
    let in_systemd = std::env::var_os("STATE_DIRECTORY").is_some_and(|d| !d.is_empty());
    let name = if in_systemd { "tokens" } else { "relay-tokens" };
    Some(state_dir()?.join(name))
}

/// Reads the accepted tokens: the tokens file (which must exist when named) and
/// TWK_RELAY_TOKENS.
pub(crate) fn load_tokens(file: Option<&PathBuf>, must_exist: bool) -> anyhow::Result<TokenSet> {
    let text = match file {
        None => String::new(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading tokens file {}", path.display()));
            }
        },
    };
    Ok(tokens_from(&text))
}

/// The accepted tokens given a tokens file's text: its entries and TWK_RELAY_TOKENS.
pub(crate) fn tokens_from(file_text: &str) -> TokenSet {
    let mut tokens = TokenSet::default();
    tokens.extend_from_file(file_text);
    if let Ok(env) = std::env::var("TWK_RELAY_TOKENS") {
        tokens.extend_from_text(&env);
    }
    tokens
}

/// Where reservations go when no --state-file is given.
pub(crate) fn default_state_file() -> Option<PathBuf> {
    let in_systemd = std::env::var_os("STATE_DIRECTORY").is_some_and(|d| !d.is_empty());
    let name = if in_systemd {
        "names.json"
    } else {
        "relay-names.json"
    };
    Some(state_dir()?.join(name))
}

/// The ACME manager, when --acme or --acme-email asks for one.
fn acme(args: &Args) -> anyhow::Result<Option<Arc<twk_acme::Acme>>> {
    if !args.acme && args.acme_email.is_none() {
        return Ok(None);
    }
    let domain =
        RelayConfig::new(args.domain.clone().unwrap_or_default(), Auth::Open).domain_host();
    let cache = match &args.acme_cache {
        Some(dir) => dir.clone(),
        None => state_dir()
            .context("no --acme-cache given and no state directory ($STATE_DIRECTORY, $HOME)")?
            .join("acme"),
    };
    let mut cfg = twk_acme::AcmeConfig::new(domain, cache);
    cfg.email = args.acme_email.clone();
    cfg.directory = match args.acme_directory.as_str() {
        "letsencrypt" => twk_acme::LETS_ENCRYPT.to_string(),
        "letsencrypt-staging" => twk_acme::LETS_ENCRYPT_STAGING.to_string(),
        url if url.starts_with("https://") || url.starts_with("http://") => url.to_string(),
        other => {
            bail!("--acme-directory {other:?}: expected letsencrypt, letsencrypt-staging or a URL")
        }
    };
    cfg.dns_hook = args.acme_dns_hook.clone();
    cfg.ca_root = args.acme_ca_root.clone();
    let acme = twk_acme::Acme::new(cfg).context("preparing ACME")?;
    Ok(Some(Arc::new(acme)))
}

/// Subdomain URLs served with `cert` need it to be for `*.domain`, or at least for some
/// `name.domain`: a tunnel URL it does not cover fails every sender's TLS handshake. With no
/// name under the domain, path URLs without `--url-style`, an error when subdomains were asked
/// for (`explicit`); with some names only, subdomain URLs and a line naming them.
fn subdomains_need_a_wildcard(
    cfg: &mut RelayConfig,
    cert: &std::path::Path,
    explicit: bool,
) -> anyhow::Result<()> {
    if cfg.url_style != UrlStyle::Subdomain {
        return Ok(());
    }
    let names = twk_transport::tls::certificate_names(cert)
        .context("reading the TLS certificate's names")?;
    let suffix = format!(".{}", cfg.domain_host());
    let wildcard = format!("*{suffix}");
    if names.contains(&wildcard) {
        return Ok(());
    }
    let shown = twk_sanitize::clean(&names.join(", "));
    if names.iter().any(|n| n.ends_with(&suffix)) {
        eprintln!(
            "twk-relay: {} is for {shown}, not {wildcard}: only tunnels of those names have a \
             URL senders can reach",
            cert.display()
        );
        return Ok(());
    }
    if explicit {
        bail!(
            "subdomain URLs need a certificate for {wildcard}, and {} is for {shown}: use a \
             wildcard certificate or --url-style path",
            cert.display()
        );
    }
    cfg.url_style = UrlStyle::Path;
    eprintln!(
        "twk-relay: {} is for {shown}, not {wildcard}: tunnels get path URLs ({}); \
         subdomain URLs need a wildcard certificate",
        cert.display(),
        cfg.public_url("NAME")
    );
    Ok(())
}

/// The relay configuration, and the ACME manager that serves its certificate, if any.
pub(crate) fn config(args: &Args) -> anyhow::Result<(RelayConfig, Option<Arc<twk_acme::Acme>>)> {
    let file = tokens_file(args.tokens_file.as_ref());
    let tokens = load_tokens(file.as_ref(), args.tokens_file.is_some())?;
    let auth = match (tokens.is_empty(), args.allow_anonymous) {
        (false, _) => Auth::Tokens(tokens),
        (true, true) => Auth::Open,
        (true, false) => bail!(
            "no tunnel tokens configured: create one with `twk-relay token add <label>`, pass \
             --tokens-file or set TWK_RELAY_TOKENS (or --allow-anonymous for a relay nobody \
             else can reach)"
        ),
    };
    let mut cfg = RelayConfig::new(args.domain.clone().unwrap_or_default(), auth);
    let acme = acme(args)?;
    let wildcard = args.acme_dns_hook.is_some();
    // An IP address has no subdomains: `shop.127.0.0.1` resolves nowhere.
    let ip_domain = is_ip_literal(args.domain.as_deref().unwrap_or_default());
    cfg.url_style = match (args.url_style, &acme) {
        (Some(Style::Subdomain), _) if ip_domain => bail!(
            "subdomain URLs need a DNS name, and --domain is an IP address: use --url-style path"
        ),
        (None, _) if ip_domain => UrlStyle::Path,
        (Some(Style::Subdomain), Some(_)) if !wildcard => bail!(
            "subdomain URLs need a wildcard certificate: pass --acme-dns-hook, or use --url-style path"
        ),
        (Some(Style::Subdomain), _) => UrlStyle::Subdomain,
        (Some(Style::Path), _) => UrlStyle::Path,
        (None, Some(_)) if !wildcard => UrlStyle::Path,
        (None, _) => UrlStyle::Subdomain,
    };
    if args.public_https {
        cfg.public_scheme = Scheme::Https;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        cfg.tls = Some(
            twk_transport::tls::server_config_from_files(cert, key)
                .context("loading the TLS certificate and key")?,
        );
        subdomains_need_a_wildcard(&mut cfg, cert, args.url_style.is_some())?;
    }
    if let Some(acme) = &acme {
        cfg.tls = Some(acme.server_config().context("ACME TLS configuration")?);
    }
    cfg.max_body = args.max_body;
    cfg.request_timeout = args.request_timeout;
    cfg.shutdown_grace = args.grace;
    cfg.max_tunnels = args.max_tunnels;
    cfg.name_hold = args.name_hold;
    cfg.hold = args.hold;
    cfg.hold_max = args.hold_max;
    cfg.state_file = if args.no_state_file {
        None
    } else {
        args.state_file.clone().or_else(default_state_file)
    };
    // Kept requests live beside the state (an owner's key is in the state file: without
    // it nothing can be sealed, so no state file means nothing kept unless --keep-dir).
    cfg.keep_dir = match (&args.keep_dir, args.no_keep) {
        (_, true) => None,
        (Some(d), false) => Some(d.clone()),
        (None, false) => cfg
            .state_file
            .as_ref()
            .and_then(|f| f.parent())
            .map(|d| d.join("kept")),
    };
    cfg.keep = twk_relay::KeepLimits {
        count: args.keep_max,
        bytes: args.keep_bytes,
        ttl: args.keep_ttl,
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
    Ok((cfg, acme))
}

/// True when `domain` (with a port or not) is an IPv4 or IPv6 address, not a name.
fn is_ip_literal(domain: &str) -> bool {
    let host = match domain.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => domain.rsplit_once(':').map_or(domain, |(h, _)| h),
    };
    host.parse::<std::net::IpAddr>().is_ok() || domain.parse::<std::net::IpAddr>().is_ok()
}
