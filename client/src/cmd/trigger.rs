//! `twk-tunnel trigger PROVIDER EVENT`: send the webhook a provider would send — same
//! fields, same signature, same sender behaviour — through the running tunnel (or `--to`
//! anywhere), and say what the provider would make of the answer. Thin over `twk-trigger`.
//!
//! Exit codes: 0 delivered (a 2xx in the end), 1 not delivered (lost, or the provider would
//! retry later), 2 usage (unknown provider or event, a bad `--set`, no tunnel to send to).

use crate::config::Config;
use crate::runtime::{self, LiveTunnel};
use crate::usage::{UsageExt as _, usage_error};
use anyhow::Context as _;
use clap::builder::PossibleValuesParser;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use twk_providers::{Provider, Secret};
use twk_sanitize::clean;
use twk_trigger::{AttemptReport, Fate, FireOptions, Leg, Next, Set};

/// Arguments of `twk-tunnel trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// Provider whose webhook to send (`--list` shows them with their events).
    #[arg(value_name = "PROVIDER", value_parser = provider_ids())]
    provider: Option<String>,
    /// Event to send, e.g. payment_intent.succeeded, factor.verified, message-delivered.
    #[arg(value_name = "EVENT")]
    event: Option<String>,
    /// List the providers and their events (only PROVIDER's with one) instead of sending.
    #[arg(long)]
    list: bool,
    /// Send here instead of the running tunnel's public URL (any http:// or https:// URL,
    /// e.g. straight to the app).
    #[arg(long, value_name = "URL", value_parser = parse_to)]
    to: Option<String>,
    /// Path (and query) appended to the running tunnel's public URL.
    #[arg(long, value_name = "PATH", default_value = "/", conflicts_with = "to")]
    path: String,
    /// Which running tunnel to send through when several are running.
    #[arg(long, value_name = "NAME", conflicts_with = "to")]
    name: Option<String>,
    /// Override a field: a dot path into JSON (data.object.amount=2000), a key of a form
    /// body (MessageStatus=failed), or an event parameter (version=v1 for Twilio Verify
    /// Push, to=+447700900123 for a Bandwidth 2FA callback). The value is JSON when it parses
    /// as JSON, else a string. Repeatable.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    sets: Vec<String>,
    /// The secret to sign with (else the provider's environment variable, then the config
    /// file's [secrets], as for `verify`; else twk's test secret for the provider, made once
    /// and kept in the data directory, which the tunnel checks too; it is printed). Bandwidth:
    /// the callback's `user:password` (none configured: no credentials).
    #[arg(
        long,
        value_name = "[PROVIDER=]SECRET",
        env = "TWK_SECRET",
        hide_env_values = true
    )]
    secret: Vec<String>,
    /// Behave like the provider's sender: its deadline, the Basic-auth challenge, its
    /// retries (the default).
    #[arg(long, overrides_with = "no_sender_behaviour")]
    sender_behaviour: bool,
    /// Send one signed request (credentials up front), no challenge, no retries, 30 s
    /// deadline. The last of the two flags wins.
    #[arg(long, overrides_with = "sender_behaviour")]
    no_sender_behaviour: bool,
    /// Wait for the provider's retries, this many times faster than real time (3600: a day
    /// in 24 s). Without it, trigger stops at the first later retry and says when it would
    /// come.
    #[arg(long, value_name = "FACTOR", value_parser = parse_speed)]
    retry_speed: Option<f64>,
    /// Override the sender's deadline (e.g. 2s).
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline)]
    deadline: Option<Duration>,
    /// Certificates (PEM) to trust for an https:// destination with a private CA.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Fire through the running emulator (`twk-tunnel emulate`, or a tunnel's --emulate):
    /// it delivers the event to every enabled webhook registered with it and subscribed to
    /// the event, each in its version and method, signed with that webhook's key (twilio:
    /// Verify Push events; authy-webhook: the 23 Authy events).
    #[arg(long, conflicts_with_all = ["to", "name", "secret", "retry_speed", "deadline", "ca"])]
    emulator: bool,
    /// With --emulator: only this Verify service's webhooks.
    #[arg(long, value_name = "VA…", requires = "emulator")]
    service: Option<String>,
    /// One JSON object per attempt (NDJSON); with --emulator, one per webhook delivery.
    #[arg(long)]
    json: bool,
    /// Config file with [secrets] (default: $XDG_CONFIG_HOME/twk/config.toml).
    #[arg(long, value_name = "FILE", env = "TWK_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory whose test secrets to sign with when no secret is configured. Without
    /// it: the data directory of the running tunnel the webhook goes through (so that the
    /// tunnel checks the same secret), else $TWK_DATA_DIR, else `data_dir` from the config,
    /// else $XDG_DATA_HOME/twk.
    // No `env`: clap would make TWK_DATA_DIR count as this flag, over the tunnel's directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn provider_ids() -> PossibleValuesParser {
    PossibleValuesParser::new(Provider::ALL.iter().map(|p| p.as_str()))
}

/// `--to`, checked before anything is sent (a usage error, exit 2); `localhost:3000` gets
/// the URL it most likely meant as a hint.
fn parse_to(s: &str) -> Result<String, String> {
    twk_trigger::check_destination(s).map_err(|why| {
        if s.contains("://") {
            why
        } else {
            format!("{why} (e.g. http://{s})")
        }
    })?;
    Ok(s.to_owned())
}

fn parse_deadline(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("the deadline must be longer than 0".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=1e7).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a factor between 1 and 10000000")),
    }
}

/// Runs `trigger`.
pub async fn run(args: TriggerArgs) -> anyhow::Result<ExitCode> {
    let provider: Option<Provider> = args.provider.as_deref().and_then(|p| p.parse().ok());
    if args.list {
        out!(raw "{}", list(provider))?;
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(provider), Some(event)) = (provider, args.event.as_deref()) else {
        return Err(usage_error(
            "trigger needs PROVIDER and EVENT, e.g. `twk-tunnel trigger stripe \
             payment_intent.succeeded` (`twk-tunnel trigger --list` shows them)",
        ));
    };
    let spec = twk_trigger::find(provider, event).usage()?;
    let sets = args
        .sets
        .iter()
        .map(|s| s.parse::<Set>())
        .collect::<Result<Vec<_>, _>>()
        .usage()?;
    if args.emulator {
        let pairs = sets.into_iter().map(|s| (s.path, s.value)).collect();
        return super::emulate::trigger(provider, spec.name, pairs, args.service, args.json).await;
    }
    let draft = twk_trigger::build(&spec, sets, super::verify::now_unix()).usage()?;
    let (url, via) = destination(&args)?;
    let secret = secret(&args, provider, via.as_ref())?;
    let extra_ca_pem = match &args.ca {
        Some(p) => Some(
            std::fs::read(p)
                .with_context(|| format!("reading {}", p.display()))
                .usage()?,
        ),
        None => None,
    };
    let opts = FireOptions {
        url,
        secret,
        sender_behaviour: !args.no_sender_behaviour,
        retry_speed: args.retry_speed,
        deadline: args.deadline,
        extra_ca_pem,
    };
    // `log --event` matches the name twk records, which may not be the catalog's: found once,
    // not per attempt (it takes an analysis of the request).
    let recorded_event = draft.recorded_event();
    if !args.json {
        let recorded = recorded_event
            .as_ref()
            .filter(|e| **e != draft.event)
            .map(|e| format!("  (recorded as event {})", clean(e)))
            .unwrap_or_default();
        // Sent either way: a reader gone already changes nothing for the provider's sender.
        let _ = out!(
            "→ {} {} {} → {}{}{recorded}",
            provider.as_str(),
            clean(&draft.event),
            clean(&draft.id),
            clean(&twk_trigger::shown_url(&opts.url)),
            via.map(|v| format!("  (tunnel {})", clean(&v.name)))
                .unwrap_or_default()
        );
    }
    let json = args.json;
    let mut unusable = Vec::new();
    let fate = twk_trigger::fire(&draft, &opts, |a| {
        // A reader gone mid-way does not stop the provider's sender: its fate still counts.
        let _ = if json {
            out!("{}", attempt_json(&draft, recorded_event.as_deref(), a))
        } else {
            out!("{}", attempt_line(a))
        };
        unusable.clone_from(&a.answer_problems);
    })
    .await
    .context("sending the webhook")?;
    if !json {
        // The exit code is the fate, whether or not the reader stayed to read it.
        let _ = out!("{}", fate_line(&fate, &unusable));
    }
    Ok(match fate {
        Fate::Delivered => ExitCode::SUCCESS,
        Fate::WillRetry { .. } | Fate::Lost { .. } => ExitCode::FAILURE,
    })
}

/// `--to`, or the running tunnel's public URL and path (with the tunnel).
fn destination(args: &TriggerArgs) -> anyhow::Result<(String, Option<LiveTunnel>)> {
    // A fragment is never sent: signed over it (Twilio signs the URL), the request would
    // arrive with a signature for a URL it does not carry.
    for (flag, v) in [
        ("--path", Some(args.path.as_str())),
        ("--to", args.to.as_deref()),
    ] {
        if v.is_some_and(|v| v.contains('#')) {
            return Err(usage_error(format!(
                "{flag} has a fragment (`#…`), which no HTTP request carries: leave it out"
            )));
        }
    }
    if let Some(to) = &args.to {
        return Ok((to.clone(), None));
    }
    let live = runtime::live().usage()?;
    let pick = pick_tunnel(&live, args.name.as_deref())?;
    let base = pick.public_url.trim_end_matches('/');
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    Ok((format!("{base}{path}"), Some(pick.clone())))
}

fn pick_tunnel<'a>(live: &'a [LiveTunnel], name: Option<&str>) -> anyhow::Result<&'a LiveTunnel> {
    let names = || {
        live.iter()
            .map(|t| format!("{} ({})", t.name, t.public_url))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, live) {
        (Some(n), _) => {
            let mut named = live.iter().filter(|t| t.name == n);
            match (named.next(), named.next()) {
                (Some(one), None) => Ok(one),
                (Some(_), Some(_)) => Err(usage_error(format!(
                    "several running tunnels are named {n:?} (on different relays): pass --to \
                     with the URL of the one to send to ({})",
                    names()
                ))),
                (None, _) => Err(usage_error(format!(
                    "no running tunnel is named {n:?}; running: {}",
                    if live.is_empty() {
                        "none".to_owned()
                    } else {
                        names()
                    }
                ))),
            }
        }
        (None, []) => Err(usage_error(
            "no running twk-tunnel to send through: start one (`twk-tunnel 3000`) or pass \
             --to URL",
        )),
        (None, [one]) => Ok(one),
        (None, _) => Err(usage_error(format!(
            "several tunnels are running: pick one with --name ({})",
            names()
        ))),
    }
}

/// The secret for `provider` from the shared loader, else twk's test secret for it (said on
/// stderr). Bandwidth without credentials sends none.
fn secret(
    args: &TriggerArgs,
    provider: Provider,
    via: Option<&LiveTunnel>,
) -> anyhow::Result<Option<Secret>> {
    let config = Config::load(args.config.as_deref()).usage()?;
    let (named, bare): (Vec<String>, Vec<String>) = args.secret.iter().cloned().partition(|v| {
        v.split_once('=')
            .is_some_and(|(p, _)| p.parse::<Provider>().is_ok())
    });
    let env = |k: &str| std::env::var(k).ok();
    let secrets = config.secrets(&named, None, env).usage()?;
    if let Some(bare) = bare.last() {
        return Ok(Some(Secret::new(bare.clone())));
    }
    if let Some(s) = secrets.get(provider) {
        return Ok(Some(s.clone()));
    }
    if provider == Provider::Bandwidth {
        return Ok(None);
    }
    let file = test_secrets_file(args, &config, via, env)?;
    // A file twk cannot read or parse is the user's to fix (exit 2); one it cannot write
    // is a failure at run time.
    let test = match file.get_or_make(provider) {
        Ok(t) => t,
        Err(e @ twk_trigger::TestSecretsError::Write { .. }) => return Err(e.into()),
        Err(e) => return Err(e).usage(),
    };
    say!("{}", test_secret_message(provider, &test, file.path()));
    Ok(Some(test.secret))
}

/// The environment variable naming the data directory.
const DATA_DIR_ENV: &str = "TWK_DATA_DIR";

/// Whose test secrets: `--data-dir`, else the tunnel's it goes through (so that the tunnel
/// checks the same secret, whatever `TWK_DATA_DIR` says in this shell), else `TWK_DATA_DIR`
/// (`env` looks it up), else the config's `data_dir` or the default.
fn test_secrets_file(
    args: &TriggerArgs,
    config: &Config,
    via: Option<&LiveTunnel>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<twk_trigger::TestSecrets> {
    let published = via.and_then(|t| t.data_dir.as_deref());
    let dir = match (&args.data_dir, published) {
        (Some(flag), _) => Some(flag.clone()),
        (None, Some(dir)) => return Ok(twk_trigger::TestSecrets::in_dir(dir)),
        (None, None) => env(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };
    config
        .test_secrets(dir.as_deref())
        .context("locating twk's test secrets (set HOME, or pass --data-dir or --secret)")
        .usage()
}

/// The one stderr message of a webhook signed with twk's test secret: the provider, the
/// secret (the app needs it), where it is kept, and that the tunnel checks it already.
fn test_secret_message(provider: Provider, test: &twk_trigger::TestSecret, path: &Path) -> String {
    let value = clean(test.secret.expose_str().unwrap_or_default());
    format!(
        "twk: no {name} {what} configured: signed with twk's test secret for {name}, {value} \
         ({made}kept in {path}); twk-tunnel checks it already; give your app the same one \
         (e.g. {var}={value})",
        name = provider.display_name(),
        what = provider.secret_name(),
        made = if test.made_now { "made now, " } else { "" },
        path = twk_sanitize::escape(&path.display().to_string()),
        var = provider.secret_env_var(),
    )
}

fn leg_label(leg: Leg) -> &'static str {
    match leg {
        Leg::Plain => "",
        Leg::Unauthenticated => " without credentials",
        Leg::WithCredentials => " with credentials",
    }
}

fn attempt_line(a: &AttemptReport) -> String {
    let result = match &a.reply.answer {
        twk_trigger::Answer::Status { code, .. } => code.to_string(),
        twk_trigger::Answer::TimedOut => "timeout".to_owned(),
        twk_trigger::Answer::ConnectFailed(_) => "no connection".to_owned(),
    };
    format!(
        "  #{} POST{} → {result} in {} ms: {}",
        a.n,
        leg_label(a.leg),
        a.reply.took.as_millis(),
        clean(&a.says)
    )
}

/// The last line: the fate, and for a delivered call or message the provider could not run
/// the answer of, every problem (the first names the provider and the document).
fn fate_line(fate: &Fate, unusable: &[String]) -> String {
    match fate {
        Fate::Delivered => match unusable.split_first() {
            Some((first, rest)) => {
                let mut line = format!("⚠ delivered, but {}", clean(first));
                for more in rest {
                    line.push_str(&format!("\n  also: {}", clean(more)));
                }
                line
            }
            None => "✓ delivered".to_owned(),
        },
        Fate::WillRetry { after } => format!(
            "… not delivered yet: the provider retries in {}",
            twk_trigger::human(*after)
        ),
        Fate::Lost { why } => format!("✗ not delivered: {}", clean(why)),
    }
}

/// One NDJSON object per attempt; the last carries `fate`.
fn attempt_json(
    draft: &twk_trigger::Draft,
    recorded_event: Option<&str>,
    a: &AttemptReport,
) -> String {
    let (outcome, status, error) = match &a.reply.answer {
        twk_trigger::Answer::Status { code, .. } => ("answered", Some(*code), None),
        twk_trigger::Answer::TimedOut => ("timeout", None, None),
        twk_trigger::Answer::ConnectFailed(e) => ("connect_failed", None, Some(e.clone())),
    };
    let (next, retry_in_ms) = match &a.next {
        Next::Delivered => ("delivered", None),
        Next::Challenge => ("challenge", None),
        Next::Retry { after, .. } => (
            "retry",
            Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
        ),
        Next::GivesUp { .. } => ("gives_up", None),
    };
    let fate = a.fate.as_ref().map(Fate::as_str);
    let mut v = json!({
        "provider": draft.provider.as_str(),
        "event": draft.event,
        "recorded_event": recorded_event,
        "id": draft.id,
        "attempt": a.n,
        "leg": a.leg.as_str(),
        "url": twk_trigger::shown_url(&a.url),
        "sent_at_ms": a.sent_unix_ms,
        "outcome": outcome,
        "status": status,
        "took_ms": u64::try_from(a.reply.took.as_millis()).unwrap_or(u64::MAX),
        "deadline_ms": u64::try_from(a.deadline.as_millis()).unwrap_or(u64::MAX),
        "next": next,
        "says": a.says,
    });
    let extra = [
        ("error", error.map(Value::from)),
        ("retry_in_ms", retry_in_ms.map(Value::from)),
        ("fate", fate.map(Value::from)),
        (
            "answer_problems",
            (!a.answer_problems.is_empty()).then(|| Value::from(a.answer_problems.clone())),
        ),
    ];
    for (k, val) in extra {
        if let Some(val) = val {
            v[k] = val;
        }
    }
    twk_sanitize::json_string(&v).unwrap_or_default()
}

/// `trigger --list [PROVIDER]`.
fn list(only: Option<Provider>) -> String {
    let mut out = String::new();
    for p in Provider::ALL {
        if only.is_some_and(|o| o != p) {
            continue;
        }
        out.push_str(&format!("{} ({})\n", p.as_str(), p.display_name()));
        for spec in twk_trigger::events(p) {
            let params = if spec.params.is_empty() {
                String::new()
            } else {
                format!("  [--set {}]", spec.params)
            };
            out.push_str(&format!("  {:<58} {}{params}\n", spec.name, spec.about));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_is_picked_by_name_or_being_the_only_one() {
        let t = |name: &str, pid| LiveTunnel {
            name: name.into(),
            public_url: format!("http://127.0.0.1:1/t/{name}"),
            target: "http://localhost:3000".into(),
            pid,
            data_dir: None,
        };
        assert!(pick_tunnel(&[], None).is_err());
        let one = [t("a", 1)];
        assert_eq!(pick_tunnel(&one, None).expect("one").name, "a");
        let two = [t("a", 1), t("b", 2)];
        let e = pick_tunnel(&two, None).expect_err("ambiguous").to_string();
        assert!(e.contains("--name") && e.contains("b (http"), "{e}");
        assert_eq!(pick_tunnel(&two, Some("b")).expect("b").name, "b");
        assert!(pick_tunnel(&two, Some("c")).is_err());
        // Two tunnels of one name (two embedded relays): which one is not guessed.
        let mut same = [t("a", 1), t("a", 2)];
        same[1].public_url = "http://127.0.0.1:2/t/a".into();
        let e = pick_tunnel(&same, Some("a"))
            .expect_err("ambiguous")
            .to_string();
        assert!(
            e.contains("several running tunnels are named") && e.contains("--to"),
            "{e}"
        );
    }

    #[test]
    fn a_fragment_is_refused_as_no_request_carries_it() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: TriggerArgs,
        }
        for argv in [
            &["t", "stripe", "x", "--to", "http://127.0.0.1:9/h#frag"][..],
            &["t", "stripe", "x", "--path", "/h#f"],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            let e = destination(&cli.args).expect_err("a fragment").to_string();
            assert!(e.contains("fragment"), "{e}");
        }
    }

    #[test]
    fn the_test_secret_message_names_the_provider_the_secret_and_the_tunnel() {
        let test = twk_trigger::TestSecret {
            secret: Secret::new("whsec_abc123"),
            made_now: true,
        };
        let path = Path::new("/home/u/.local/share/twk/test-secrets.toml");
        let m = test_secret_message(Provider::Stripe, &test, path);
        assert_eq!(
            m,
            "twk: no Stripe webhook secret configured: signed with twk's test secret for \
             Stripe, whsec_abc123 (made now, kept in /home/u/.local/share/twk/test-secrets.toml); \
             twk-tunnel checks it already; give your app the same one (e.g. \
             STRIPE_WEBHOOK_SECRET=whsec_abc123)"
        );
        let again = twk_trigger::TestSecret {
            made_now: false,
            ..test
        };
        assert!(
            test_secret_message(Provider::Stripe, &again, path)
                .contains("whsec_abc123 (kept in /home/u/")
        );
        assert!(!m.contains('\n'), "one line");
    }

    #[test]
    fn the_data_dir_flag_wins_then_the_tunnels_then_twk_data_dir() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: TriggerArgs,
        }
        let args = |extra: &[&str]| {
            let argv = [&["trigger", "stripe", "invoice.paid"][..], extra].concat();
            <Cli as clap::Parser>::try_parse_from(argv)
                .expect("parsed")
                .args
        };
        let tunnel = LiveTunnel {
            name: "t".into(),
            public_url: "http://127.0.0.1:1/t/t".into(),
            target: "http://localhost:3000".into(),
            pid: 1,
            data_dir: Some("/tunnel".into()),
        };
        let env = |k: &str| (k == DATA_DIR_ENV).then(|| "/env".to_owned());
        let dir = |args: &TriggerArgs, via: Option<&LiveTunnel>| {
            test_secrets_file(args, &Config::default(), via, env)
                .expect("located")
                .path()
                .parent()
                .map(Path::to_path_buf)
        };
        let flag = args(&["--data-dir", "/flag"]);
        assert_eq!(dir(&flag, Some(&tunnel)), Some("/flag".into()));
        assert_eq!(dir(&args(&[]), Some(&tunnel)), Some("/tunnel".into()));
        assert_eq!(dir(&args(&[]), None), Some("/env".into()));
    }

    #[test]
    fn the_list_names_every_provider_and_the_seed_events() {
        let all = list(None);
        for p in Provider::ALL {
            assert!(all.contains(p.as_str()), "{p:?}");
        }
        for e in twk_trigger::VERIFY_PUSH_EVENTS {
            assert!(all.contains(e), "{e}");
        }
        let one = list(Some(Provider::Bandwidth));
        assert!(one.contains("2fa.message-failed") && !one.contains("stripe"));
    }
}
