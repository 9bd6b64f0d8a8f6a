//! `twk-tunnel verify` and `twk-tunnel sign`: check or produce a webhook signature from the
//! command line, without a tunnel; `verify ID` re-checks an exchange from the capture store
//! (e.g. with another secret). Thin over `twk-providers`.
//!
//! Secrets come from the same places as for the tunnel and `replay` (flag, environment,
//! config file: [`crate::config::Config::secrets`]); a bare `--secret VALUE` is used for
//! whichever provider the request is from.
//!
//! Exit codes: `verify` 0 when valid, 1 for every other verdict, 2 for usage errors (clap's
//! own, a bad `-H` line, an unreadable body file, a URL-signing scheme without `--url`, an id
//! that is not in the store, an unreadable config or store). `sign` 0 on success, 2 when the
//! request or secret cannot be signed.

use crate::cmd::history::StoreArgs;
use crate::config::{Config, with_test_secrets};
use crate::usage::{UsageExt as _, usage_error};
use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use twk_providers::{
    Analysis, OwnedRequest, Provider, Secret, SecretSource, Secrets, SecretsError, SignOptions,
    Verdict, VerifyOptions,
};
use twk_sanitize::clean;

/// `auto` or a provider id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderChoice(Option<Provider>);

fn provider_parser() -> impl clap::builder::TypedValueParser<Value = ProviderChoice> {
    // The ids come from the providers crate: a new provider is offered without editing this.
    let ids = std::iter::once("auto").chain(Provider::ALL.iter().map(|p| p.as_str()));
    PossibleValuesParser::new(ids)
        .map(|s| ProviderChoice(if s == "auto" { None } else { s.parse().ok() }))
}

/// The request both subcommands take.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// Provider whose scheme to use; `auto` detects it from the headers and body.
    #[arg(long, default_value = "auto", value_parser = provider_parser())]
    provider: ProviderChoice,
    /// The secret: auth token, signing secret, `whsec_…`, `WSK_…`, or `user:pass` for
    /// Bandwidth Basic auth. A bare VALUE is used for whichever provider the request is from;
    /// PROVIDER=VALUE names one (repeatable, like the tunnel's --secret). Without it: the
    /// providers' environment variables and the config file's [secrets], as for the tunnel.
    #[arg(
        long = "secret",
        env = "TWK_SECRET",
        hide_env_values = true,
        value_name = "[PROVIDER=]VALUE"
    )]
    secrets: Vec<String>,
    /// Twilio secondary auth token (only used to explain a failure).
    #[arg(long, env = "TWILIO_SECONDARY_AUTH_TOKEN", hide_env_values = true)]
    secondary_secret: Option<String>,
    /// HTTP method of the request.
    #[arg(long, default_value = "POST")]
    method: String,
    /// The public URL exactly as the sender called it (scheme, host, port, path, query).
    /// Needed only where the signature covers it (Twilio, Authy OneTouch).
    #[arg(long)]
    url: Option<String>,
    /// A request header, `Name: value`; repeat for several, in order.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The raw body, as text.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the raw body from a file (`-` for stdin), byte for byte.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
}

/// Arguments of `twk-tunnel verify`.
#[derive(Debug, clap::Args)]
#[command(group(
    // What to check: a recorded exchange, or a request from the flags.
    clap::ArgGroup::new("input")
        .required(true)
        .multiple(true)
        .args(["id", "url", "headers", "body", "body_file"])
))]
pub struct VerifyArgs {
    /// Re-check the recorded exchange ID (see `twk-tunnel log`) instead of a request given
    /// with --url/-H/--body: its public URL, headers and body as captured, at the time it
    /// arrived (--now to change it).
    #[arg(
        value_name = "ID",
        conflicts_with_all = ["url", "headers", "body", "body_file", "method"]
    )]
    id: Option<i64>,
    #[command(flatten)]
    request: RequestArgs,
    /// The current time as Unix seconds (default: now; for ID, when it arrived), for
    /// timestamp tolerances.
    #[arg(long, value_name = "UNIX")]
    now: Option<i64>,
    /// Timestamp tolerance in seconds (default: the scheme's, 300 s); 0 turns the check off.
    #[arg(long, value_name = "SECS")]
    tolerance: Option<u64>,
    /// Another URL the request may have been signed for (e.g. the public tunnel URL when
    /// --url is the local one); used to explain failures. Repeatable.
    #[arg(long = "alternate-url", value_name = "URL")]
    alternate_urls: Vec<String>,
    /// Print one JSON object (provider, event, verdict, matched_variant, diagnosis, …).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `twk-tunnel sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Unix timestamp to sign with where the scheme has one (default: the one the request
    /// carries, e.g. a -H 'Stripe-Signature: t=…' or -H 'X-Slack-Request-Timestamp: …', else
    /// --now).
    #[arg(long, value_name = "UNIX")]
    timestamp: Option<i64>,
    /// Message id (Standard Webhooks/Svix) or nonce (Authy OneTouch); default: the request's
    /// own (-H 'webhook-id: …', -H 'X-Authy-Signature-Nonce: …'), else the timestamp (Authy)
    /// or one derived from the timestamp and body.
    #[arg(long)]
    id: Option<String>,
    /// The current time as Unix seconds (default: now): the timestamp used when neither
    /// --timestamp nor the request gives one. Accepted like verify's, so one set of flags
    /// serves both.
    #[arg(long, value_name = "UNIX")]
    now: Option<i64>,
    /// Accepted (and ignored) like verify's --tolerance: signing has no tolerance.
    #[arg(long, value_name = "SECS")]
    tolerance: Option<u64>,
    /// Print one JSON object {headers, url, body} instead of `Name: value` lines.
    #[arg(long)]
    json: bool,
    /// Config file with [secrets] (default: $XDG_CONFIG_HOME/twk/config.toml).
    #[arg(long, value_name = "FILE", env = "TWK_CONFIG")]
    config: Option<PathBuf>,
}

/// The current time, Unix seconds.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Parses one `-H 'Name: value'`.
fn parse_header(line: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let bad = || usage_error(format!("bad header {line:?}: expected 'Name: value'"));
    let (name, value) = line.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad());
    }
    Ok((name.to_owned(), value.trim().as_bytes().to_vec()))
}

fn read_body(args: &RequestArgs) -> anyhow::Result<Vec<u8>> {
    match (&args.body, &args.body_file) {
        (Some(b), _) => Ok(b.clone().into_bytes()),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| usage_error(format!("cannot read the body from stdin: {e}")))?;
            Ok(buf)
        }
        (None, Some(p)) => std::fs::read(p)
            .map_err(|e| usage_error(format!("cannot read body file {}: {e}", p.display()))),
        (None, None) => Ok(Vec::new()),
    }
}

/// The request from the flags. Without --url the URL is empty: only schemes that sign it
/// need it, which [`require_url`] checks once the provider is known.
fn build_request(args: &RequestArgs) -> anyhow::Result<OwnedRequest> {
    let url = args.url.clone().unwrap_or_default();
    let mut req = OwnedRequest::new(args.method.clone(), url, read_body(args)?);
    for h in &args.headers {
        let (n, v) = parse_header(h)?;
        req = req.with_header(n, v);
    }
    Ok(req)
}

/// A usage error when `provider` signs the URL and none was given.
fn require_url(args: &RequestArgs, provider: Option<Provider>) -> anyhow::Result<()> {
    match provider {
        Some(p) if p.signs_url() && args.url.is_none() => Err(usage_error(format!(
            "{} signs the URL the sender called: pass --url with it exactly (scheme, host, \
             port, path, query)",
            p.display_name()
        ))),
        _ => Ok(()),
    }
}

/// Whether a --secret value names its provider (`stripe=whsec_…`) rather than being a bare
/// secret (which may itself contain `=`, e.g. base64 padding).
fn names_provider(value: &str) -> bool {
    !matches!(
        Secrets::new().insert_spec(value),
        Err(SecretsError::MissingEquals | SecretsError::UnknownProvider(_))
    )
}

/// The secrets of `verify` and `sign`: the loader every command shares (`PROVIDER=VALUE`
/// flags over the environment over the config file), then a bare `--secret VALUE` for every
/// provider no flag named (the provider may only be known once detected).
fn secrets(args: &RequestArgs, config: &Config) -> anyhow::Result<Secrets> {
    let (named, bare): (Vec<String>, Vec<String>) = args
        .secrets
        .iter()
        .cloned()
        .partition(|v| names_provider(v));
    let env = |k: &str| std::env::var(k).ok();
    let mut s = config.secrets(&named, None, env)?;
    if let Some(value) = bare.last() {
        // Only the flags: which providers they name.
        let flagged = Config::default().secrets(&named, None, |_| None)?;
        for p in Provider::ALL {
            if flagged.get(p).is_none() {
                s.set(p, Secret::new(value.clone()));
            }
        }
    }
    if let Some(sec) = &args.secondary_secret {
        s.set_twilio_secondary(Secret::new(sec.clone()));
    }
    Ok(s)
}

/// The secrets of `verify`: [`secrets`], and twk's test secrets of the data directory for
/// the providers they leave without one (as the tunnel checks).
fn verify_secrets(args: &VerifyArgs, config: &Config) -> anyhow::Result<Secrets> {
    let s = secrets(&args.request, config).usage()?;
    Ok(match config.test_secrets(args.store.data_dir.as_deref()) {
        Ok(file) => with_test_secrets(s, &file),
        // No data directory at all (no HOME): no test secrets either.
        Err(_) => s,
    })
}

/// Runs `verify`.
pub fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let checked = match args.id {
        Some(id) => check_stored(&args, id),
        None => check_given(&args),
    };
    let analysis = checked?;
    // The exit code is the verdict, whether or not the reader stayed to read it.
    let _ = if args.json {
        out!(
            "{}",
            twk_sanitize::json_string(&analysis).context("serialising the analysis")?
        )
    } else {
        out!(raw "{}", render(&analysis))
    };
    Ok(if analysis.verdict == Verdict::Valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn verify_options(args: &VerifyArgs, now: i64, provider: Option<Provider>) -> VerifyOptions {
    let mut opts = VerifyOptions::at(args.now.unwrap_or(now))
        .with_tolerance(args.tolerance)
        .with_provider(provider);
    opts.alternate_urls = args.alternate_urls.clone();
    opts
}

/// `verify --url … -H … --body …`: the request from the flags.
fn check_given(args: &VerifyArgs) -> anyhow::Result<Analysis> {
    let req = build_request(&args.request)?;
    let provider = args
        .request
        .provider
        .0
        .or_else(|| twk_providers::detect(&req.view()));
    require_url(&args.request, provider)?;
    let config = Config::load(args.store.config.as_deref()).usage()?;
    let secrets = verify_secrets(args, &config)?;
    let opts = verify_options(args, now_unix(), args.request.provider.0);
    Ok(twk_providers::analyze(&req.view(), &secrets, &opts))
}

/// `verify ID`: the exchange as recorded, checked as the tunnel checks it (with the local
/// URL the app saw as an alternate), as the provider given or recorded, at the time it
/// arrived unless --now says otherwise.
fn check_stored(args: &VerifyArgs, id: i64) -> anyhow::Result<Analysis> {
    let config = Config::load(args.store.config.as_deref()).usage()?;
    let opts = config
        .store_options(args.store.data_dir.as_deref())
        .usage()?;
    if !opts.db_path().exists() {
        return Err(usage_error(format!(
            "no captures yet in {}",
            opts.data_dir.display()
        )));
    }
    let store = twk_capture::Store::open(&opts)
        .with_context(|| format!("opening captures in {}", opts.data_dir.display()))
        .usage()?;
    let ex = store
        .get(id)
        .context("reading the capture store")
        .usage()?
        .ok_or_else(|| usage_error(format!("no exchange with id {id} (see `twk-tunnel log`)")))?
        .exchange;
    let provider = args
        .request
        .provider
        .0
        .or_else(|| ex.provider.as_deref().and_then(|p| p.parse().ok()));
    let secrets = verify_secrets(args, &config)?;
    let at = verify_options(args, ex.timings.received_ms / 1000, provider);
    Ok(twk_agent::analyze_exchange(&ex, &secrets, at))
}

/// Human-readable report; every piece of request-derived text goes through the sanitizer.
fn render(a: &Analysis) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        out.push_str(&format!("{label:<10} {}\n", clean(value)));
    };
    match a.provider {
        Some(p) => line("provider", &format!("{p} ({})", p.display_name())),
        None => line("provider", "unknown"),
    }
    if let Some(e) = &a.event {
        line("event", &e.summary);
    }
    let mut verdict = a.verdict.to_string();
    if let Some(v) = &a.matched_variant {
        verdict.push_str(&format!(" (matched: {v})"));
    }
    line("verdict", &verdict);
    if a.matched_secret == Some(SecretSource::TwkTest) {
        line(
            "secret",
            "twk's test secret for this provider (no secret configured for it; `twk-tunnel \
             trigger` signs with it)",
        );
    }
    if let Some(skew) = a.skew_secs
        && a.verdict == Verdict::Stale
    {
        line("skew", &format!("{skew} s"));
    }
    if let Some(d) = &a.diagnosis {
        line("why", &d.summary);
        if let Some(x) = &d.expected {
            line("expected", x);
        }
        if let Some(x) = &d.received {
            line("received", x);
        }
        if let Some(x) = &d.signed_string {
            line("signed", x);
        }
        if let Some(x) = &d.likely_cause {
            line("likely", x);
        }
        for h in &d.hints {
            line("hint", h);
        }
        if !d.checked.is_empty() {
            line(
                "checked",
                &format!("{} variants: {}", d.checked.len(), d.checked.join(", ")),
            );
        }
    } else if let Some(s) = &a.signed_string {
        line("signed", s);
    }
    for n in &a.notes {
        line("note", n);
    }
    out
}

/// The request, provider and secrets of `sign`, or why it cannot sign.
fn sign_inputs(args: &SignArgs) -> anyhow::Result<(OwnedRequest, Provider, Secrets)> {
    let req = build_request(&args.request)?;
    let provider = args
        .request
        .provider
        .0
        .or_else(|| twk_providers::detect(&req.view()))
        .ok_or_else(|| {
            usage_error("cannot detect the provider from this request: pass --provider".to_owned())
        })?;
    require_url(&args.request, Some(provider))?;
    let config = Config::load(args.config.as_deref()).usage()?;
    let secrets = secrets(&args.request, &config).usage()?;
    Ok((req, provider, secrets))
}

/// Runs `sign`.
pub fn run_sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let (req, provider, secrets) = sign_inputs(&args)?;
    // What the flags give, else what the request carries, else the clock: a given request is
    // reproduced, not re-stamped.
    let opts = SignOptions {
        timestamp: args.timestamp,
        id: args.id.clone(),
    }
    .or_carried(provider, &req.view(), args.now.unwrap_or_else(now_unix));
    let signed = match twk_providers::sign_request(provider, &req.view(), &secrets, &opts) {
        Ok(s) => s,
        Err(e) => return Err(usage_error(e.to_string())),
    };
    if args.json {
        let body = signed
            .body
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let headers: serde_json::Map<String, serde_json::Value> = signed
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let v = serde_json::json!({
            "provider": provider,
            "headers": headers,
            "url": signed.url,
            "body": body,
        });
        out!("{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    for (n, v) in &signed.headers {
        out!("{n}: {v}")?;
    }
    if let Some(url) = &signed.url {
        say!(
            "twk-tunnel: note: {provider} signs this body through the URL; send it to {}",
            clean(url)
        );
    }
    if let Some(body) = &signed.body {
        // The signature lives in the body (Authy event webhooks): print the new body after a
        // blank line, like an HTTP message.
        out!()?;
        out!("{}", String::from_utf8_lossy(body))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines() {
        assert!(matches!(
            parse_header("X-Twilio-Signature:  abc= "),
            Ok((n, v)) if n == "X-Twilio-Signature" && v == b"abc="
        ));
        assert!(
            matches!(parse_header("Stripe-Signature: t=1,v1=a:b"), Ok((_, v)) if v == b"t=1,v1=a:b")
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("bad name: v").is_err());
    }

    #[test]
    fn a_secret_flag_names_its_provider_or_is_bare() {
        assert!(names_provider("stripe=whsec_x"));
        assert!(names_provider("twilio-secondary=t"));
        // Named, and refused later with a message that says why.
        assert!(names_provider("bandwidth=nocolon"));
        assert!(!names_provider("whsec_abc=="));
        assert!(!names_provider("12345"));
        assert!(!names_provider("user:pa=ss"));
    }

    #[test]
    fn a_named_secret_beats_a_bare_one_for_its_provider() {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            request: RequestArgs,
        }
        use clap::Parser as _;
        let cmd = Cmd::try_parse_from([
            "verify",
            "--secret",
            "bare",
            "--secret",
            "stripe=whsec_named",
            "--body",
            "{}",
        ])
        .expect("parses");
        let s = secrets(&cmd.request, &Config::default()).expect("loads");
        let get = |p| s.get(p).and_then(|x| x.expose_str()).map(str::to_owned);
        assert_eq!(get(Provider::Stripe).as_deref(), Some("whsec_named"));
        assert_eq!(get(Provider::Github).as_deref(), Some("bare"));
        assert_eq!(get(Provider::Twilio).as_deref(), Some("bare"));
    }

    #[test]
    fn only_url_signing_schemes_need_the_url() {
        let signing: Vec<Provider> = Provider::ALL
            .into_iter()
            .filter(|p| p.signs_url())
            .collect();
        assert_eq!(signing, [Provider::Twilio, Provider::AuthyOnetouch]);
    }
}
