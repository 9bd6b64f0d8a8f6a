//! `twk-tunnel log`, `replay` and `export`: the capture history on the developer's disk.

use crate::config::{Config, with_test_secrets};
use twk_agent::replay::{ReplayOptions, replay};
use twk_capture::redact::redact_headers;
use twk_providers::{SecretSource, Verdict};
use twk_trigger::TestSecrets;

use crate::usage::{UsageExt, usage_error};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twk_capture::export::curl::{CurlOptions, curl_command};
use twk_capture::export::har::{HarOptions, HarWriter};
use twk_capture::export::json::exchange_json;
use twk_capture::time::{Bound, parse_time, rfc3339_ms};
use twk_capture::{Filter, LintCode, Order, Severity, StatusFilter, Store, StoreOptions, Summary};

/// Where the capture store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Capture directory (default: `data_dir` from the config, else $XDG_DATA_HOME/twk).
    #[arg(long, value_name = "DIR", env = "TWK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/twk/config.toml).
    #[arg(long, value_name = "FILE", env = "TWK_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Filters shared by `log` and `export --har`.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Tunnel name.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Provider id (twilio, stripe, github, …).
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// Event name, e.g. device_registration_completed.
    #[arg(long, value_name = "E")]
    pub event: Option<String>,
    /// Response status: a code (404), a class (4xx, 5xx) or `none`.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<StatusFilter>,
    /// Signature verdict: valid, invalid, stale, unsigned, no_secret or malformed.
    #[arg(long, value_parser = str::parse::<Verdict>)]
    pub verdict: Option<Verdict>,
    /// Received at or after: RFC 3339, a date (2018-01-01) or an age (30m, 2h, 3d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Received at or before: RFC 3339, a date (whole day included) or an age.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Text in the URL, path, a header or a body (ASCII case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
    /// At most N exchanges, the most recent (0: all).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Only requests that arrived while twk-tunnel was offline (the relay answered 503 and
    /// kept them, sealed, until the tunnel reconnected).
    #[arg(long)]
    pub missed: bool,
    /// Only requests the relay refused itself and never forwarded (over the tunnel's rate: 429;
    /// a body declared over the relay's cap: 413), recorded from the relay's notices.
    #[arg(long)]
    pub refused: bool,
    /// Only exchanges with this lint: 401-without-www-authenticate, www-authenticate-not-basic,
    /// credentials-mismatch, retry-never-came, port-not-accepted, preemptive-credentials,
    /// slow-answer, invalid-bxml, invalid-twiml.
    #[arg(long, value_name = "CODE", value_parser = parse_lint)]
    pub lint: Option<LintCode>,
}

fn parse_lint(s: &str) -> Result<LintCode, String> {
    s.parse()
        .map_err(|e: twk_capture::UnknownLint| e.to_string())
}

fn parse_status(s: &str) -> Result<StatusFilter, String> {
    s.parse()
        .map_err(|e: twk_capture::CaptureError| e.to_string())
}

impl FilterArgs {
    fn to_filter(&self, default_limit: Option<u64>) -> anyhow::Result<Filter> {
        let now = jiff::Timestamp::now();
        let since = self
            .since
            .as_deref()
            .map(|s| parse_time(s, Bound::Since, now))
            .transpose()
            .usage()?;
        let until = self
            .until
            .as_deref()
            .map(|s| parse_time(s, Bound::Until, now))
            .transpose()
            .usage()?;
        Ok(Filter {
            name: self.name.clone(),
            provider: self.provider.clone(),
            event: self.event.clone(),
            status: self.status,
            verdict: self.verdict,
            grep: self.grep.clone(),
            lint: self.lint,
            missed: self.missed.then_some(true),
            refused: self.refused.then_some(true),
            limit: match self.limit {
                Some(0) => None,
                Some(n) => Some(n),
                None => default_limit,
            },
            order: Order::NewestFirst,
            ..Filter::default()
        }
        .between(since, until))
    }
}

/// Arguments of `twk-tunnel log`.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// One JSON object per line (NDJSON) instead of a table.
    #[arg(long)]
    json: bool,
    /// Show secret-bearing headers (Authorization, Cookie, signatures) in --json output.
    #[arg(long)]
    reveal_secrets: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `twk-tunnel replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Id of the exchange to replay (see `twk-tunnel log`).
    id: i64,
    /// Send to this URL (http://host:port[/base]) instead of the recorded local target. On
    /// another host, `Host` names that host (--keep-host keeps the recorded one).
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// With --to on another host: send the recorded Host header unchanged.
    #[arg(long, requires = "to")]
    keep_host: bool,
    /// Set a header ('Name: value'); 'Name:' removes it, 'Name;' sends it empty. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Replace the body with this file's bytes (`-` reads stdin).
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Recompute the provider signature (fresh timestamp) with the configured secret; with
    /// none configured for the provider, with twk's test secret for it when one exists (as
    /// `trigger` signs), never made here.
    #[arg(long)]
    resign: bool,
    /// Provider secret PROVIDER=VALUE (overrides env and config). Repeatable.
    #[arg(long = "secret", value_name = "PROVIDER=VALUE")]
    secrets: Vec<String>,
    /// Deadline for the target's complete response, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
    /// Print the new exchange as one JSON object.
    #[arg(long)]
    json: bool,
    /// Show secret-bearing headers in the output.
    #[arg(long)]
    reveal_secrets: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `twk-tunnel export`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("format").required(true).args(["har", "curl"])))]
pub struct ExportArgs {
    /// Write a HAR 1.2 file of the exchanges matching the filters (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    har: Option<PathBuf>,
    /// Print a curl command reproducing exchange ID.
    #[arg(long, value_name = "ID")]
    curl: Option<i64>,
    /// With --curl: send to this base URL instead of the recorded local target.
    #[arg(long, value_name = "URL", requires = "curl")]
    to: Option<String>,
    /// Keep the recorded Host header (the one the local app saw). By default a HAR's Host is
    /// its URL's host (the public one) and `--curl --to` names the --to host.
    #[arg(long)]
    keep_host: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// Keep secret-bearing headers (Authorization, Cookie, signatures) in the HAR file (a curl
    /// command keeps them anyway: it is made to be re-sent).
    #[arg(long)]
    reveal_secrets: bool,
    /// With --curl: replace secret-bearing headers with [REDACTED], for sharing the command
    /// (it then no longer reproduces the request).
    #[arg(long, requires = "curl")]
    redact: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Store options from flags, env and config (a usage error when they are wrong).
fn store_options(args: &StoreArgs) -> anyhow::Result<(StoreOptions, Config)> {
    let config = Config::load(args.config.as_deref()).usage()?;
    let opts = config.store_options(args.data_dir.as_deref()).usage()?;
    Ok((opts, config))
}

/// Opens the store for reading; `None` when nothing was ever captured there.
fn open_existing(opts: &StoreOptions) -> anyhow::Result<Option<Store>> {
    if !opts.db_path().exists() {
        return Ok(None);
    }
    Ok(Some(Store::open(opts).with_context(|| {
        format!("opening captures in {}", opts.data_dir.display())
    })?))
}

fn nothing_yet(opts: &StoreOptions) {
    say!(
        "twk-tunnel: no captures yet in {}",
        twk_sanitize::escape(&opts.data_dir.display().to_string())
    );
}

/// Runs `log`.
pub async fn run_log(args: LogArgs) -> anyhow::Result<ExitCode> {
    let (opts, _) = store_options(&args.store)?;
    // A wrong filter is a usage error even before anything was captured.
    let filter = args.filter.to_filter(Some(DEFAULT_LOG_LIMIT))?;
    let Some(store) = open_existing(&opts)? else {
        nothing_yet(&opts);
        return Ok(ExitCode::SUCCESS);
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let shown = if args.json {
        // Oldest first within the selection, one object per line.
        let mut rows = Vec::new();
        store.for_each(&filter, |x| {
            rows.push(x);
            Ok::<_, anyhow::Error>(())
        })?;
        for x in rows.iter().rev() {
            twk_sanitize::json_to_writer(&mut out, &exchange_json(x, args.reveal_secrets))?;
            out.write_all(b"\n")?;
        }
        rows.len()
    } else {
        let mut rows = store.list(&filter)?;
        rows.reverse();
        write_table(&mut out, &rows)?;
        if rows.is_empty() {
            writeln!(out, "(no matching exchanges)")?;
        }
        rows.len()
    };
    out.flush()?;
    // A full page may not be everything: say so on stderr (stdout stays a table or NDJSON).
    if let Some(limit) = filter.limit
        && shown as u64 >= limit
    {
        let total = store.count(&filter)?;
        if total > shown as u64 {
            say!(
                "{} of {} shown; --limit N for more (--limit 0 for all)",
                twk_inspector::topbar::group(shown as u64),
                twk_inspector::topbar::group(total)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rows `log` prints without --limit.
const DEFAULT_LOG_LIMIT: u64 = 100;

/// What the `AUTH` marks mean, printed under a table that shows any.
const AUTH_LEGEND: &str = "AUTH: \u{1f512}1>7 leg 1 (the 401 challenge), retried as #7 · \
     \u{1f512}1>? leg 1, no retry yet · \u{1f512}2<6 leg 2 (the retry with credentials) of #6 · \
     lints: ! error, ? warning, i info";

/// The `AUTH` cell of the table: a lock for a Basic-auth handshake leg (`🔒1>7`: leg 1,
/// retried as #7; `🔒1>?`: leg 1 whose retry has not come; `🔒2<6`: leg 2 of #6), then one
/// mark per lint (`!` error, `?` warning, `i` info), e.g. `🔒1>? !`. `-` when neither.
fn auth_cell(r: &Summary) -> String {
    let mut cell = match r.handshake {
        Some(h) => {
            let dir = if h.leg == twk_capture::Leg::Challenge {
                '>'
            } else {
                '<'
            };
            let other = h.with.map_or_else(|| "?".to_string(), |id| id.to_string());
            format!("\u{1f512}{}{dir}{other}", h.leg)
        }
        None => String::new(),
    };
    // The handshake's lints; `slow-answer` is marked beside the time (`MS`), the answer's
    // document beside the status (`STATUS`).
    let marks: String = r
        .lints
        .iter()
        .filter(|c| **c != LintCode::SlowAnswer && !c.about_the_answer_document())
        .map(|c| match c.severity() {
            Severity::Error => '!',
            Severity::Warning => '?',
            Severity::Info => 'i',
        })
        .collect();
    if !marks.is_empty() {
        if !cell.is_empty() {
            cell.push(' ');
        }
        cell.push_str(&marks);
    }
    if cell.is_empty() { "-".into() } else { cell }
}

/// Terminal columns of a cell: one per character, two for the (wide) lock.
fn cell_width(s: &str) -> usize {
    s.chars()
        .map(|c| if c == '\u{1f512}' { 2 } else { 1 })
        .sum()
}

/// The `MS` cell: the duration, and `slow` when the app answered after the provider stops
/// waiting (`slow-answer`).
fn ms_cell(r: &Summary) -> String {
    let ms = r.duration_ms.map_or("-".into(), |d| d.to_string());
    if r.lints.contains(&LintCode::SlowAnswer) {
        format!("{ms} slow")
    } else {
        ms
    }
}

/// The `STATUS` cell: the status, and who answered when the app never saw the request
/// (`503 missed`: kept while the tunnel was offline; `429 refused`: the relay answered it),
/// or what the provider makes of the app's answer (`200 bad BXML`, `200 bad TwiML`).
fn status_cell(r: &Summary) -> String {
    let status = match (r.status, r.failure_side) {
        (Some(s), _) => s.to_string(),
        (None, Some(side)) => format!("ERR:{}", format!("{side:?}").to_lowercase()),
        (None, None) => "-".into(),
    };
    match (r.missed, r.refused) {
        (true, _) => format!("{status} missed"),
        (_, true) => format!("{status} refused"),
        _ => match r.lints.iter().find(|c| c.about_the_answer_document()) {
            Some(c) => format!("{status} {}", c.label()),
            None => status,
        },
    }
}

fn write_table(out: &mut impl Write, rows: &[Summary]) -> std::io::Result<()> {
    let header = [
        "ID", "TIME", "NAME", "METHOD", "STATUS", "MS", "PROVIDER", "EVENT", "VERDICT", "ATT",
        "AUTH", "PATH",
    ];
    let cells: Vec<[String; 12]> = rows
        .iter()
        .map(|r| {
            let status = status_cell(r);
            let att = match (r.replay_of, r.attempt) {
                (Some(o), _) => format!("r#{o}"),
                (None, Some(a)) => a.to_string(),
                (None, None) => "-".into(),
            };
            let time = rfc3339_ms(r.received_ms);
            [
                r.id.to_string(),
                time,
                clip(&twk_sanitize::escape(&r.tunnel), 16),
                clip(&twk_sanitize::escape(&r.method), 7),
                status,
                ms_cell(r),
                clip(
                    &twk_sanitize::escape(r.provider.as_deref().unwrap_or("-")),
                    18,
                ),
                clip(&twk_sanitize::escape(r.event.as_deref().unwrap_or("-")), 32),
                verdict_cell(r.verdict, r.matched_secret),
                att,
                auth_cell(r),
                clip(&twk_sanitize::escape(&r.path), 60),
            ]
        })
        .collect();
    let mut widths = header.map(cell_width);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell_width(c));
        }
    }
    let line = |out: &mut dyn Write, cols: &[&str]| -> std::io::Result<()> {
        let last = cols.len() - 1;
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(cell_width(c)) + 2,
                ));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &header)?;
    for row in &cells {
        let cols: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &cols)?;
    }
    if rows.iter().any(|r| auth_cell(r) != "-") {
        writeln!(out)?;
        writeln!(out, "{AUTH_LEGEND}")?;
    }
    // Spell out the lints below the table, once per code present.
    let mut seen: Vec<LintCode> = rows.iter().flat_map(|r| r.lints.iter().copied()).collect();
    seen.sort();
    seen.dedup();
    if !seen.is_empty() {
        writeln!(out)?;
        for code in seen {
            let ids: Vec<String> = rows
                .iter()
                .filter(|r| r.lints.contains(&code))
                .map(|r| r.id.to_string())
                .collect();
            writeln!(
                out,
                "{} {}: {} (see `log --json --lint {}`)",
                code.severity().as_str(),
                code,
                ids.join(", "),
                code
            )?;
        }
    }
    Ok(())
}

/// A verdict as `log` and `replay` print it: its id, and `(twk-test)` after one that holds
/// only with twk's test secret (none configured); `-` when there is none.
fn verdict_cell(verdict: Option<Verdict>, secret: Option<SecretSource>) -> String {
    match (verdict, secret) {
        (None, _) => "-".to_owned(),
        (Some(v), Some(s @ SecretSource::TwkTest)) => format!("{v} ({s})"),
        (Some(v), _) => v.as_str().to_owned(),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Runs `replay`.
pub async fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (opts, config) = store_options(&args.store)?;
    let Some(mut store) = open_existing(&opts)? else {
        nothing_yet(&opts);
        return Ok(ExitCode::FAILURE);
    };
    let original = store
        .get(args.id)?
        .with_context(|| format!("no exchange with id {} (see `twk-tunnel log`)", args.id))?
        .exchange;
    let mut headers = Vec::new();
    for h in &args.headers {
        headers.push(parse_header_arg(h).usage()?);
    }
    let body = match &args.body_file {
        Some(p) => Some(read_body(p).usage()?),
        None => None,
    };
    let secrets = config
        .secrets(&args.secrets, None, |k| std::env::var(k).ok())
        .usage()?;
    // The replay's verdict as the tunnel would give it: test secrets too.
    let secrets = with_test_secrets(secrets, &TestSecrets::in_dir(&opts.data_dir));
    let ropts = ReplayOptions {
        to: args.to.clone(),
        keep_host: args.keep_host,
        headers,
        body,
        resign: args.resign,
        secrets,
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        capture_cap: opts.body_cap,
    };
    // A replay that cannot be attempted as asked (--to, -H, --resign without a secret) is the
    // user's to fix; one that was sent and failed comes back as an exchange with a failure.
    let ex = replay(&original, &ropts).await.usage()?;
    let id = store.insert(&ex).context("recording the replay")?;
    let stored = store
        .get(id)?
        .with_context(|| format!("replay {id} vanished from the store"))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        twk_sanitize::json_to_writer(&mut out, &exchange_json(&stored, args.reveal_secrets))?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_replay(&mut out, args.id, &stored, args.reveal_secrets)
}

/// The human report of a replay: status line with the new verdict (and, when it is not
/// valid, why, on stderr: for `no_secret` that names where the secret goes), the response's
/// headers and body. Exit 1 when no response came back.
fn print_replay(
    out: &mut impl Write,
    original: i64,
    stored: &twk_capture::StoredExchange,
    reveal_secrets: bool,
) -> anyhow::Result<ExitCode> {
    let ex = &stored.exchange;
    let id = stored.id();
    let took = ex
        .duration_ms()
        .map_or(String::new(), |d| format!(" in {d} ms"));
    let Some(resp) = &ex.response else {
        let why = ex
            .failure
            .as_ref()
            .map_or("no response".to_owned(), |f| f.message.clone());
        writeln!(
            out,
            "replayed #{original} as #{id}: failed{took}: {}",
            twk_sanitize::escape(&why)
        )?;
        return Ok(ExitCode::FAILURE);
    };
    let status = ex.status.unwrap_or_default();
    writeln!(
        out,
        "replayed #{original} as #{id} → {} {} {}{took} (verdict now: {})",
        twk_sanitize::escape(&ex.target),
        status,
        twk_capture::export::har::reason(status),
        verdict_cell(ex.verdict, ex.matched_secret)
    )?;
    if let Some(verdict) = ex.verdict.filter(|v| !v.is_valid())
        && let Some(why) = diagnosis_summary(ex)
    {
        say!("twk-tunnel: {verdict}: {}", twk_sanitize::escape(&why));
    }
    for h in redact_headers(&resp.headers, reveal_secrets).iter() {
        writeln!(
            out,
            "{}: {}",
            twk_sanitize::escape(&h.name),
            twk_sanitize::escape(&String::from_utf8_lossy(&h.value))
        )?;
    }
    writeln!(out)?;
    match std::str::from_utf8(&resp.body.bytes) {
        Ok(t) => writeln!(out, "{}", twk_sanitize::escape_body(t))?,
        Err(_) => writeln!(out, "<{} bytes of binary body>", resp.body.len)?,
    }
    if resp.body.truncated {
        writeln!(out, "… ({} bytes in total)", resp.body.len)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The one-line reason of a verdict, from the analysis stored with the exchange.
fn diagnosis_summary(ex: &twk_capture::Exchange) -> Option<String> {
    match ex
        .analysis
        .as_ref()?
        .value()
        .pointer_mut("/diagnosis/summary")?
        .take()
    {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

/// `Name: value` → set; `Name:` → remove; `Name;` → empty value.
fn parse_header_arg(s: &str) -> anyhow::Result<(String, Option<String>)> {
    if let Some(name) = s.strip_suffix(';')
        && !name.contains(':')
    {
        return Ok((name.trim().to_owned(), Some(String::new())));
    }
    let Some((name, value)) = s.split_once(':') else {
        anyhow::bail!(
            "header {:?} must look like 'Name: value'",
            twk_sanitize::escape(s)
        );
    };
    let name = name.trim();
    if name.is_empty() {
        anyhow::bail!("header {:?} has no name", twk_sanitize::escape(s));
    }
    let value = value.trim_start_matches([' ', '\t']);
    Ok((
        name.to_owned(),
        (!value.is_empty()).then(|| value.to_owned()),
    ))
}

fn read_body(p: &Path) -> anyhow::Result<Vec<u8>> {
    if p == Path::new("-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        return Ok(v);
    }
    std::fs::read(p).with_context(|| format!("reading body file {}", p.display()))
}

/// Runs `export`.
pub async fn run_export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (opts, _) = store_options(&args.store)?;
    let Some(store) = open_existing(&opts)? else {
        nothing_yet(&opts);
        return Ok(ExitCode::FAILURE);
    };
    if let Some(id) = args.curl {
        let x = store
            .get(id)?
            .with_context(|| format!("no exchange with id {id} (see `twk-tunnel log`)"))?;
        let cmd = curl_command(
            &x.exchange,
            &CurlOptions {
                base_url: args.to.clone(),
                // A curl command exists to re-send the request: exact unless asked to redact.
                reveal_secrets: !args.redact,
                keep_host: args.keep_host,
            },
        );
        out!(raw "{cmd}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = &args.har else {
        return Err(usage_error("pass --har FILE or --curl ID"));
    };
    let mut filter = args.filter.to_filter(None)?;
    filter.order = Order::OldestFirst;
    if let Some(limit) = filter.limit {
        // "the most recent N", written oldest first
        let total = store.count(&filter)?;
        filter.offset = total.saturating_sub(limit);
    }
    let out: Box<dyn Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        Box::new(f)
    };
    let har = HarOptions {
        reveal_secrets: args.reveal_secrets,
        keep_host: args.keep_host,
    };
    let mut w = HarWriter::new(std::io::BufWriter::new(out), har)?;
    let mut n = 0u64;
    store.for_each(&filter, |x| {
        w.push(&x)?;
        n += 1;
        Ok::<_, anyhow::Error>(())
    })?;
    w.finish()?;
    if path != Path::new("-") {
        say!(
            "wrote {n} exchanges to {}",
            twk_sanitize::escape(&path.display().to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_args() {
        let p = |s: &str| parse_header_arg(s).ok();
        assert_eq!(p("X-A: 1"), Some(("X-A".into(), Some("1".into()))));
        assert_eq!(p("X-A:"), Some(("X-A".into(), None)));
        assert_eq!(p("X-A;"), Some(("X-A".into(), Some(String::new()))));
        assert_eq!(p("X-A: a:b"), Some(("X-A".into(), Some("a:b".into()))));
        assert_eq!(p("nocolon"), None);
        assert_eq!(p(": v"), None);
    }

    #[test]
    fn sanitizes_terminal_escapes() {
        assert_eq!(twk_sanitize::escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(twk_sanitize::escape("\u{9b}x\u{202e}"), "\\u{9b}x\\u{202e}");
        assert_eq!(twk_sanitize::escape_body("a\n\tb\r"), "a\n\tb\\u{d}");
    }

    fn row(id: i64) -> Summary {
        Summary {
            id,
            tunnel: "bw".into(),
            received_ms: 0,
            method: "POST".into(),
            path: "/cb".into(),
            status: Some(401),
            duration_ms: None,
            provider: None,
            event: None,
            summary: None,
            verdict: None,
            matched_secret: None,
            attempt: Some(1),
            replay_of: None,
            missed: false,
            refused: false,
            failure_side: None,
            request_body_len: 0,
            handshake: None,
            lints: vec![],
        }
    }

    #[test]
    fn the_verdict_cell_says_when_only_twks_test_secret_held() {
        let mut r = row(3);
        r.verdict = Some(Verdict::Valid);
        r.matched_secret = Some(SecretSource::TwkTest);
        let mut out = Vec::new();
        write_table(&mut out, &[r.clone()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("valid (twk-test)"), "{text}");
        r.matched_secret = Some(SecretSource::Configured);
        assert_eq!(verdict_cell(r.verdict, r.matched_secret), "valid");
        assert_eq!(verdict_cell(Some(Verdict::NoSecret), None), "no_secret");
        assert_eq!(verdict_cell(None, None), "-");
    }

    #[test]
    fn the_status_says_when_the_app_never_saw_the_request_or_answered_what_cannot_run() {
        let mut missed = row(1);
        missed.status = Some(503);
        missed.missed = true;
        let mut refused = row(2);
        refused.status = Some(429);
        refused.refused = true;
        assert_eq!(status_cell(&missed), "503 missed");
        assert_eq!(status_cell(&refused), "429 refused");
        assert_eq!(status_cell(&row(3)), "401");
        let mut json_to_a_call = row(4);
        json_to_a_call.status = Some(200);
        json_to_a_call.lints = vec![LintCode::InvalidBxml];
        assert_eq!(status_cell(&json_to_a_call), "200 bad BXML");
        assert_eq!(auth_cell(&json_to_a_call), "-", "not a handshake lint");
    }

    #[test]
    fn a_slow_answer_is_marked_by_its_time_not_as_a_handshake_lint() {
        let mut r = row(4);
        r.duration_ms = Some(4_200);
        r.lints = vec![LintCode::SlowAnswer];
        assert_eq!(ms_cell(&r), "4200 slow");
        assert_eq!(auth_cell(&r), "-");
    }

    #[test]
    fn table_shows_handshake_locks_and_lint_marks() {
        use twk_capture::Handshake;
        let mut a = row(6);
        a.handshake = Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: Some(7),
        });
        let mut b = row(7);
        b.handshake = Some(Handshake {
            leg: twk_capture::Leg::Retry,
            with: Some(6),
        });
        let mut c = row(8);
        c.handshake = Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: None,
        });
        c.lints = vec![LintCode::RetryNeverCame];
        let mut d = row(9);
        d.lints = vec![
            LintCode::Unauthorized401WithoutChallenge,
            LintCode::PreemptiveCredentials,
        ];
        assert_eq!(auth_cell(&a), "\u{1f512}1>7");
        assert_eq!(auth_cell(&b), "\u{1f512}2<6");
        assert_eq!(auth_cell(&c), "\u{1f512}1>? ?");
        assert_eq!(auth_cell(&d), "!i");
        assert_eq!(auth_cell(&row(1)), "-");
        let mut out = Vec::new();
        write_table(&mut out, &[a, b, c, d]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().next().unwrap().contains("AUTH"), "{text}");
        assert!(text.contains(AUTH_LEGEND), "{text}");
        let mut plain = Vec::new();
        write_table(&mut plain, &[row(1)]).unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert!(
            !plain.contains("AUTH:"),
            "a legend for marks not shown: {plain}"
        );
        assert!(
            text.contains("error 401-without-www-authenticate: 9"),
            "{text}"
        );
        assert!(text.contains("warning retry-never-came: 8"), "{text}");
        assert!("credentials-mismatch".parse::<LintCode>().is_ok());
        assert!(parse_lint("nope").is_err());
    }

    #[test]
    fn filter_args_build_filters() {
        let f = FilterArgs {
            name: None,
            provider: None,
            event: Some("device_registration_completed".into()),
            status: Some(StatusFilter::Class(4)),
            verdict: None,
            since: Some("2018-01-01".into()),
            until: Some("2018-01-31".into()),
            grep: None,
            limit: Some(0),
            lint: Some(LintCode::RetryNeverCame),
            missed: true,
            refused: true,
        }
        .to_filter(Some(100))
        .ok();
        let f = f.unwrap_or_default();
        assert_eq!(f.limit, None);
        assert_eq!(f.lint, Some(LintCode::RetryNeverCame));
        assert_eq!((f.missed, f.refused), (Some(true), Some(true)));
        assert_eq!(f.since_ms, Some(1_514_764_800_000));
        assert_eq!(f.until_ms, Some(1_517_443_199_999));
        assert!(
            FilterArgs {
                since: Some("yesterday".into()),
                ..FilterArgs {
                    name: None,
                    provider: None,
                    event: None,
                    status: None,
                    verdict: None,
                    since: None,
                    until: None,
                    grep: None,
                    limit: None,
                    lint: None,
                    missed: false,
                    refused: false,
                }
            }
            .to_filter(None)
            .is_err()
        );
    }
}
