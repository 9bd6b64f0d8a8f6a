//! `twk-tunnel verify` and `twk-tunnel sign`: check or produce a webhook signature from the
//! command line, without a tunnel. Thin over `twk-providers`.
//!
//! Exit codes: `verify` 0 when valid, 1 for every other verdict, 2 for usage errors (clap's
//! own, a bad `-H` line, an unreadable body file). `sign` 0 on success, 2 when the request or
//! secret cannot be signed.

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use twk_providers::{
    Analysis, OwnedRequest, Provider, Secret, Secrets, SignOptions, Verdict, VerifyOptions,
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
    /// Bandwidth Basic auth.
    #[arg(long, env = "TWK_SECRET", hide_env_values = true)]
    secret: String,
    /// Twilio secondary auth token (only used to explain a failure).
    #[arg(long, env = "TWILIO_SECONDARY_AUTH_TOKEN", hide_env_values = true)]
    secondary_secret: Option<String>,
    /// HTTP method of the request.
    #[arg(long, default_value = "POST")]
    method: String,
    /// The public URL exactly as the sender called it (scheme, host, port, path, query).
    #[arg(long)]
    url: String,
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
pub struct VerifyArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// The current time as Unix seconds (default: now), for timestamp tolerances.
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
}

/// Arguments of `twk-tunnel sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Unix timestamp to sign with (default: now) where the scheme has one.
    #[arg(long, value_name = "UNIX")]
    timestamp: Option<i64>,
    /// Message id (Standard Webhooks/Svix) or nonce (Authy OneTouch); default: the request's
    /// own, else derived from the timestamp and body.
    #[arg(long)]
    id: Option<String>,
    /// Print one JSON object {headers, url, body} instead of `Name: value` lines.
    #[arg(long)]
    json: bool,
}

/// A usage error: printed, exit 2.
struct Usage(String);

fn usage(msg: String) -> anyhow::Result<ExitCode> {
    eprintln!("twk-tunnel: {}", clean(&msg));
    Ok(ExitCode::from(crate::usage::USAGE))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Parses one `-H 'Name: value'`.
fn parse_header(line: &str) -> Result<(String, Vec<u8>), Usage> {
    let bad = || Usage(format!("bad header {line:?}: expected 'Name: value'"));
    let (name, value) = line.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad());
    }
    Ok((name.to_owned(), value.trim().as_bytes().to_vec()))
}

fn read_body(args: &RequestArgs) -> Result<Vec<u8>, Usage> {
    match (&args.body, &args.body_file) {
        (Some(b), _) => Ok(b.clone().into_bytes()),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Usage(format!("cannot read the body from stdin: {e}")))?;
            Ok(buf)
        }
        (None, Some(p)) => std::fs::read(p)
            .map_err(|e| Usage(format!("cannot read body file {}: {e}", p.display()))),
        (None, None) => Ok(Vec::new()),
    }
}

fn build_request(args: &RequestArgs) -> Result<OwnedRequest, Usage> {
    let mut req = OwnedRequest::new(args.method.clone(), args.url.clone(), read_body(args)?);
    for h in &args.headers {
        let (n, v) = parse_header(h)?;
        req = req.with_header(n, v);
    }
    Ok(req)
}

fn secrets(args: &RequestArgs) -> Secrets {
    let mut s = Secrets::for_all(&Secret::new(args.secret.clone()));
    if let Some(sec) = &args.secondary_secret {
        s.set_twilio_secondary(Secret::new(sec.clone()));
    }
    s
}

/// Runs `verify`.
pub fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let req = match build_request(&args.request) {
        Ok(r) => r,
        Err(Usage(m)) => return usage(m),
    };
    let mut opts = VerifyOptions::at(args.now.unwrap_or_else(now_unix))
        .with_tolerance(args.tolerance)
        .with_provider(args.request.provider.0);
    opts.alternate_urls = args.alternate_urls.clone();
    let analysis = twk_providers::analyze(&req.view(), &secrets(&args.request), &opts);
    if args.json {
        println!(
            "{}",
            twk_sanitize::json_string(&analysis).context("serialising the analysis")?
        );
    } else {
        print!("{}", render(&analysis));
    }
    Ok(if analysis.verdict == Verdict::Valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

/// Runs `sign`.
pub fn run_sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let req = match build_request(&args.request) {
        Ok(r) => r,
        Err(Usage(m)) => return usage(m),
    };
    let Some(provider) = args
        .request
        .provider
        .0
        .or_else(|| twk_providers::detect(&req.view()))
    else {
        return usage("cannot detect the provider from this request: pass --provider".to_owned());
    };
    let opts = SignOptions {
        timestamp: Some(args.timestamp.unwrap_or_else(now_unix)),
        id: args.id.clone(),
    };
    let signed =
        match twk_providers::sign_request(provider, &req.view(), &secrets(&args.request), &opts) {
            Ok(s) => s,
            Err(e) => return usage(e.to_string()),
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
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    for (n, v) in &signed.headers {
        println!("{n}: {v}");
    }
    if let Some(url) = &signed.url {
        eprintln!(
            "twk-tunnel: note: {provider} signs this body through the URL; send it to {}",
            clean(url)
        );
    }
    if let Some(body) = &signed.body {
        // The signature lives in the body (Authy event webhooks): print the new body after a
        // blank line, like an HTTP message.
        println!();
        println!("{}", String::from_utf8_lossy(body));
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
}
