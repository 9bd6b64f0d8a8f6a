//! `twk-tunnel emulate`: a local Twilio Verify and Authy for the webhook-management APIs
//! (thin over `twk-emulator`), its runtime file, and `trigger --emulator`, which fires an
//! event through it to every registered webhook.
//!
//! Exit codes of `trigger --emulator`: 0 delivered to every subscribed webhook (at least
//! one), 1 not delivered to some or none subscribed, 2 usage (no emulator running, a
//! provider the emulator does not serve).

use crate::config::Config;
use crate::runtime::{self, LiveEmulator, Published};
use crate::usage::{UsageExt as _, usage_error};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twk_emulator::model::Api;
use twk_emulator::{Emulator, EmulatorConfig, FireRequest, Fired};
use twk_providers::{Provider, Secret};
use twk_sanitize::clean;

/// The emulator's default address (`--listen`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8788";

/// Arguments of `twk-tunnel emulate`.
#[derive(Debug, clap::Args)]
pub struct EmulateArgs {
    /// Where to listen (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The emulated account's SID (default: one generated on first start and kept).
    #[arg(long, value_name = "AC…")]
    account_sid: Option<String>,
    /// The emulated account's auth token: Basic-auth password and `X-Twilio-Signature` key
    /// (default: generated and kept).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TWK_EMULATOR_AUTH_TOKEN",
        hide_env_values = true,
        value_parser = secret_arg
    )]
    auth_token: Option<Secret>,
    /// Where state is kept (default: the capture store's directory).
    #[arg(long, value_name = "DIR", env = "TWK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Certificates (PEM) to trust for https:// webhook URLs with a private CA.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/twk/config.toml).
    #[arg(long, value_name = "FILE", env = "TWK_CONFIG")]
    config: Option<PathBuf>,
    /// Print the emulated credentials as environment assignments (for an app's `.env`, or
    /// `eval`) and exit, without listening: the same ones a running emulator (or a tunnel's
    /// --emulate) takes.
    #[arg(long)]
    credentials: bool,
}

/// A secret from the command line or the environment, masked from then on.
fn secret_arg(s: &str) -> Result<Secret, String> {
    match s.is_empty() {
        true => Err("the auth token is empty".to_owned()),
        false => Ok(Secret::new(s)),
    }
}

/// The emulator's configuration for a state directory. A listening address off loopback is
/// allowed (a container, a VM) but warned about: the APIs and the control endpoint then face
/// the network.
pub fn config(
    listen: SocketAddr,
    data_dir: &Path,
    account_sid: Option<String>,
    auth_token: Option<Secret>,
    ca: Option<&Path>,
) -> anyhow::Result<EmulatorConfig> {
    if !listen.ip().is_loopback() {
        say!(
            "twk: warning: the emulator listens on {listen}, not loopback: anyone who can \
             reach it can call its APIs with the printed credentials"
        );
    }
    if let Some(sid) = &account_sid
        && !(sid.len() == 34 && sid.starts_with("AC"))
    {
        return Err(usage_error(format!(
            "--account-sid {:?} is not an account SID (AC and 32 hex digits)",
            clean(sid)
        )));
    }
    let extra_ca_pem = ca
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()
        .usage()?;
    Ok(EmulatorConfig {
        listen,
        state_path: data_dir.join("emulator.sqlite"),
        account_sid,
        auth_token,
        extra_ca_pem,
    })
}

/// Starts the emulator and publishes its runtime file.
pub async fn start(cfg: EmulatorConfig) -> anyhow::Result<(Emulator, Option<Published>)> {
    let emulator = Emulator::start(cfg)
        .await
        .context("starting the emulator")?;
    let live = LiveEmulator {
        base_url: emulator.base_url().to_owned(),
        control_token: emulator
            .control_token()
            .expose_str()
            .unwrap_or_default()
            .to_owned(),
        pid: std::process::id(),
    };
    let published = match Published::write(&live) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "no runtime file: `trigger --emulator` cannot find this emulator");
            None
        }
    };
    Ok((emulator, published))
}

/// What to tell the user: where it is, the credentials, how to point the SDKs at it. The
/// credentials are the emulator's own (local, generated), printed as `stripe listen` prints
/// its signing secret: the app needs them.
pub fn banner(e: &Emulator) -> String {
    let c = e.credentials();
    let (verify, authy) = e.counts();
    let show = |s: &Secret| s.expose_str().unwrap_or_default().to_owned();
    format!(
        "twk emulator: Twilio Verify v2 and Authy APIs on {base}\n  \
         TWILIO_ACCOUNT_SID={sid}\n  \
         TWILIO_AUTH_TOKEN={token}   (also the X-Twilio-Signature key)\n  \
         API key {key} / {key_secret}\n  \
         Authy: app_api_key={api} access_key={access} API signing key={signing} app id {app}\n  \
         {verify} Verify and {authy} Authy webhooks registered; state kept in the data directory\n  \
         Python: client.verify.base_url = \"{base}\"   (docs/emulator.md for the other SDKs)\n  \
         Fire: twk-tunnel trigger twilio challenge.approved --emulator",
        base = e.base_url(),
        sid = c.account_sid,
        token = show(&c.auth_token),
        key = c.api_key_sid,
        key_secret = show(&c.api_key_secret),
        api = show(&c.authy_api_key),
        access = show(&c.authy_access_key),
        signing = show(&c.authy_signing_key),
        app = c.authy_app_id,
    )
}

/// `NAME=value` lines, named as Twilio's samples and the Authy demo's `demo.env` name them.
fn env_lines(c: &twk_emulator::Credentials) -> String {
    let show = |s: &Secret| s.expose_str().unwrap_or_default().to_owned();
    [
        ("TWILIO_ACCOUNT_SID", c.account_sid.clone()),
        ("TWILIO_AUTH_TOKEN", show(&c.auth_token)),
        ("TWILIO_API_KEY", c.api_key_sid.clone()),
        ("TWILIO_API_SECRET", show(&c.api_key_secret)),
        ("WEBHOOKS_APP_API_KEY", show(&c.authy_api_key)),
        ("WEBHOOKS_AUTHY_API_KEY", show(&c.authy_api_key)),
        ("WEBHOOKS_ACCESS_KEY", show(&c.authy_access_key)),
        ("WEBHOOKS_API_SIGNING_KEY", show(&c.authy_signing_key)),
        ("WEBHOOKS_AUTHY_APP_ID", c.authy_app_id.clone()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}\n"))
    .collect()
}

/// Runs `emulate` until Ctrl-C.
pub async fn run(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    let file = Config::load(args.config.as_deref()).usage()?;
    let store = file.store_options(args.data_dir.as_deref()).usage()?;
    let cfg = config(
        args.listen,
        &store.data_dir,
        args.account_sid,
        args.auth_token,
        args.ca.as_deref(),
    )?;
    if args.credentials {
        let c = twk_emulator::stored_credentials(&cfg).context("reading the emulator's state")?;
        out!(raw "{}", env_lines(&c))?;
        return Ok(ExitCode::SUCCESS);
    }
    let (emulator, _published) = start(cfg).await?;
    out!("{}", banner(&emulator))?;
    out!("ready")?;
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(ExitCode::SUCCESS)
}

/// The API the emulator fires `provider`'s `event` through.
fn api_of(provider: Provider, event: &str) -> anyhow::Result<Api> {
    Api::serving(provider, event).ok_or_else(|| {
        usage_error(format!(
            "the emulator fires Twilio Verify Push events (twilio: {}) and Authy events \
             (authy-webhook), not {} {}",
            twk_trigger::VERIFY_PUSH_EVENTS.join(", "),
            provider.as_str(),
            clean(event)
        ))
    })
}

/// `trigger PROVIDER EVENT --emulator`: fire through the one running emulator.
pub async fn trigger(
    provider: Provider,
    event: &str,
    sets: Vec<(String, String)>,
    service_sid: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let api = api_of(provider, event)?;
    if service_sid.is_some() && api != Api::Verify {
        return Err(usage_error(
            "--service picks a Verify service: it is for twilio events",
        ));
    }
    let live: Vec<LiveEmulator> = runtime::live().usage()?;
    let em = match live.as_slice() {
        [] => {
            return Err(usage_error(
                "no running emulator: start one (`twk-tunnel emulate`, or `twk-tunnel 3000 \
                 --emulate`)",
            ));
        }
        [one] => one,
        several => {
            let all: Vec<String> = several
                .iter()
                .map(|e| format!("{} (pid {})", e.base_url, e.pid))
                .collect();
            return Err(usage_error(format!(
                "several emulators are running: stop all but one ({})",
                all.join(", ")
            )));
        }
    };
    let req = FireRequest {
        api,
        event: event.to_owned(),
        sets,
        service_sid,
    };
    // Refused (an unknown event): usage. Not reached or no answer: a run-time failure, and
    // some webhooks may have been delivered meanwhile.
    let fired = match twk_emulator::fire_remote(&em.base_url, &em.control_token, &req).await {
        Ok(f) => f,
        Err(e @ twk_emulator::EmulatorError::Refused(_)) => return Err(usage_error(e.to_string())),
        Err(e) => return Err(anyhow::Error::new(e).context("firing through the emulator")),
    };
    // The exit code is how the deliveries went, whether or not the reader stayed to read it.
    let _ = print_fired(provider, &em.base_url, &fired, json);
    let all =
        !fired.deliveries.is_empty() && fired.deliveries.iter().all(|d| d.fate == "delivered");
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_fired(provider: Provider, base: &str, f: &Fired, json: bool) -> std::io::Result<()> {
    if json {
        for d in &f.deliveries {
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["provider"] = provider.as_str().into();
            v["event"] = f.event.clone().into();
            v["request_id"] = f.request_id.clone().into();
            out!("{}", twk_sanitize::json_string(&v).unwrap_or_default())?;
        }
        return Ok(());
    }
    out!(
        "→ {} {} via the emulator ({}), event {}",
        provider.as_str(),
        clean(&f.event),
        clean(base),
        clean(&f.request_id)
    )?;
    for d in &f.deliveries {
        let status = d
            .status
            .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        out!(
            "  {} {}{} {} → {status}: {}",
            clean(&d.webhook),
            d.method,
            d.version
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default(),
            clean(&d.url),
            clean(&d.says)
        )?;
    }
    match f.deliveries.len() {
        0 => out!(
            "✗ no enabled webhook is subscribed to {}: nothing was sent",
            clean(&f.event)
        ),
        n => {
            let ok = f
                .deliveries
                .iter()
                .filter(|d| d.fate == "delivered")
                .count();
            out!(
                "{} delivered to {ok} of {n} webhooks",
                if ok == n { "✓" } else { "✗" }
            )
        }
    }
}
