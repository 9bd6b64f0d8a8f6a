//! The shared verification driver: try the variants the SDKs accept, then, when none matches,
//! the plausible mistakes, and turn the result into a verdict and a diagnosis.

use crate::Cx;
use crate::model::{Analysis, Diagnosis, Provider, Verdict};
use crate::url::UrlParts;
use crate::util::{escape_bytes, parse_json};
use std::borrow::Cow;

/// How a scheme builds its signed string for one variant (most schemes have one way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The documented way.
    Canonical,
    /// Twilio: `key+value` strings sorted (a known SDK bug), not keys.
    TwilioKeyValueSort,
    /// Twilio: repeated keys in received order, no de-duplication (twilio-ruby).
    TwilioGivenOrder,
    /// Twilio: repeated keys joined with `,` (twilio-csharp `NameValueCollection`).
    TwilioCommaJoin,
    /// Twilio: only the first value of a repeated key (twilio-go, twilio-java).
    TwilioFirstOnly,
    /// Authy: parameters sorted by key only (node snippet's stable sort).
    AuthyKeySort,
    /// Authy: Java `URLEncoder` percent-encoding.
    AuthyJava,
    /// Authy: empty parameter string (authy-python's test literal quirk).
    AuthyEmptyParams,
}

/// One way the request might have been signed.
#[derive(Debug, Clone)]
pub(crate) struct Variant<'a> {
    /// Short label (`as-is`, `port-stripped`, `scheme https`, …).
    pub label: String,
    /// For mistakes: what differs, in plain words.
    pub why: String,
    pub key: Cow<'a, [u8]>,
    pub url: Cow<'a, str>,
    pub body: Cow<'a, [u8]>,
    pub mode: Mode,
}

impl<'a> Variant<'a> {
    pub fn base(label: &str, key: &'a [u8], url: &'a str, body: &'a [u8]) -> Self {
        Variant {
            label: label.to_owned(),
            why: String::new(),
            key: Cow::Borrowed(key),
            url: Cow::Borrowed(url),
            body: Cow::Borrowed(body),
            mode: Mode::Canonical,
        }
    }

    pub fn named(&self, label: impl Into<String>, why: impl Into<String>) -> Self {
        Variant {
            label: label.into(),
            why: why.into(),
            ..self.clone()
        }
    }

    pub fn with_url(mut self, url: String) -> Self {
        self.url = Cow::Owned(url);
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = Cow::Owned(body);
        self
    }

    pub fn with_key(mut self, key: Vec<u8>) -> Self {
        self.key = Cow::Owned(key);
        self
    }

    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
}

/// A computed signature and the exact bytes it covers.
#[derive(Debug, Clone)]
pub(crate) struct Computed {
    pub signed: Vec<u8>,
    pub sig: String,
}

/// What [`run`] found.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The accepted variant that matched.
    pub matched: Option<(String, Computed)>,
    /// The first accepted variant's computation (what "expected" shows).
    pub primary: Option<Computed>,
    /// The plausible mistake that matched: (label, why, computed).
    pub cause: Option<(String, String, Computed)>,
    /// Labels of everything checked.
    pub checked: Vec<String>,
}

/// Tries `accepted` in order; when none matches, tries `mistakes`. `matches` must compare in
/// constant time.
pub(crate) fn run<'a>(
    accepted: &[Variant<'a>],
    mistakes: &[Variant<'a>],
    compute: impl Fn(&Variant<'a>) -> Option<Computed>,
    matches: impl Fn(&str) -> bool,
) -> Outcome {
    let mut out = Outcome::default();
    for v in accepted {
        out.checked.push(v.label.clone());
        let Some(c) = compute(v) else { continue };
        if out.primary.is_none() {
            out.primary = Some(c.clone());
        }
        if matches(&c.sig) {
            out.matched = Some((v.label.clone(), c));
            return out;
        }
    }
    for v in mistakes {
        out.checked.push(v.label.clone());
        let Some(c) = compute(v) else { continue };
        if matches(&c.sig) {
            out.cause = Some((v.label.clone(), v.why.clone(), c));
            return out;
        }
    }
    out
}

/// Applies an [`Outcome`] to an analysis: `valid` with the matched variant, else `invalid`
/// with a diagnosis whose summary is `summary`.
pub(crate) fn conclude(
    mut a: Analysis,
    out: Outcome,
    received: &str,
    summary: &str,
    hints: Vec<String>,
) -> Analysis {
    if let Some((label, c)) = out.matched {
        a.verdict = Verdict::Valid;
        a.matched_variant = Some(label);
        a.signed_string = Some(escape_bytes(&c.signed));
        return a;
    }
    a.verdict = Verdict::Invalid;
    a.signed_string = out.primary.as_ref().map(|c| escape_bytes(&c.signed));
    let likely_cause = out.cause.map(|(label, why, _)| {
        if why.is_empty() {
            format!("the signature matches when {label}")
        } else {
            why
        }
    });
    let mut summary = summary.to_owned();
    if likely_cause.is_none() {
        summary.push_str(
            " None of the usual mistakes explains it: the secret is probably not the one this \
             sender signs with (or the request was modified in transit).",
        );
    }
    a.diagnosis = Some(Diagnosis {
        summary,
        expected: out.primary.as_ref().map(|c| c.sig.clone()),
        received: Some(received.to_owned()),
        signed_string: a.signed_string.clone(),
        likely_cause,
        hints,
        checked: out.checked,
    });
    a
}

/// A URL the sender may have signed instead of the one given.
#[derive(Debug, Clone)]
pub(crate) struct UrlMistake {
    pub label: String,
    pub why: String,
    pub url: String,
}

/// URLs the sender may have signed instead of `req.url`: the other scheme, with/without a
/// port, a trailing slash, the query, a path prefix; the URL rebuilt from `Host`,
/// `X-Forwarded-*` and twk's `x-twk-*` metadata; and the caller's alternate URLs.
pub(crate) fn url_mistakes(cx: &Cx<'_, '_>) -> Vec<UrlMistake> {
    let req = cx.req;
    let mut out: Vec<UrlMistake> = Vec::new();
    let Some(p) = UrlParts::parse(req.url) else {
        return out;
    };
    let mut push = |label: String, url: String, why: String| {
        if url != req.url && !out.iter().any(|m| m.url == url) {
            out.push(UrlMistake { label, why, url });
        }
    };

    // Scheme.
    let other = if p.scheme.eq_ignore_ascii_case("https") {
        Some("http")
    } else if p.scheme.eq_ignore_ascii_case("http") {
        Some("https")
    } else {
        None
    };
    if let Some(other) = other {
        let u = UrlParts { scheme: other, ..p }.build();
        push(
            format!("scheme {other}"),
            u.clone(),
            format!(
                "the signature matches {u}: the sender used {other}:// while the URL checked \
                 uses {}://. The URL configured at the provider uses the other scheme, or a \
                 redirect or TLS-terminating proxy changed it, or your code rebuilds the URL \
                 with the wrong scheme (behind a tunnel the app sees http)",
                p.scheme
            ),
        );
    }
    // Port.
    if let Some(port) = p.port {
        let u = UrlParts { port: None, ..p }.build();
        push(
            "port removed".to_owned(),
            u.clone(),
            format!(
                "the signature matches {u}: the sender's URL has no port, the URL checked has \
                 :{port} (the port the local app listens on is not part of the public URL)"
            ),
        );
    }
    // Trailing slash.
    if p.path.len() > 1 && p.path.ends_with('/') {
        let path = &p.path[..p.path.len() - 1];
        let u = UrlParts { path, ..p }.build();
        push(
            "trailing slash removed".to_owned(),
            u.clone(),
            format!("the signature matches {u}: the sender's URL has no trailing slash"),
        );
    } else if !p.path.is_empty() && !p.path.ends_with('/') {
        let path = format!("{}/", p.path);
        let u = UrlParts { path: &path, ..p }.build();
        push(
            "trailing slash added".to_owned(),
            u.clone(),
            format!("the signature matches {u}: the sender's URL ends with a slash"),
        );
    }
    // Query.
    if let Some(q) = p.query {
        let u = UrlParts { query: None, ..p }.build();
        push(
            "query removed".to_owned(),
            u.clone(),
            format!(
                "the signature matches {u}: the sender signed the URL without the query \
                 string ?{q}"
            ),
        );
    }
    // Path prefix dropped (the URL checked has a prefix the sender did not use).
    let segments: Vec<&str> = p.path.split('/').filter(|s| !s.is_empty()).collect();
    for k in 1..segments.len().min(4) {
        let prefix: String = segments[..k].iter().map(|s| format!("/{s}")).collect();
        if let Some(rest) = p.path.strip_prefix(prefix.as_str()) {
            let u = UrlParts { path: rest, ..p }.build();
            push(
                format!("path prefix {prefix} removed"),
                u.clone(),
                format!(
                    "the signature matches {u}: the sender's URL has no {prefix} prefix, the \
                     URL checked has it"
                ),
            );
        }
    }
    // Headers: Host, X-Forwarded-*, twk metadata.
    let host = req.header_str("host").filter(|h| !h.is_empty());
    let fwd_host = req
        .header_str("x-forwarded-host")
        .or_else(|| req.header_str("x-twk-host"))
        .map(|h| h.split(',').next().unwrap_or(h).trim())
        .filter(|h| !h.is_empty());
    let fwd_proto = req
        .header_str("x-forwarded-proto")
        .or_else(|| req.header_str("x-twk-proto"))
        .map(|h| h.split(',').next().unwrap_or(h).trim())
        .filter(|h| !h.is_empty());
    let fwd_prefix = req
        .header_str("x-forwarded-prefix")
        .or_else(|| req.header_str("x-twk-forwarded-prefix"))
        .filter(|h| h.starts_with('/'));
    let tail = |path: &str| -> String {
        let mut s = path.to_owned();
        if let Some(q) = p.query {
            s.push('?');
            s.push_str(q);
        }
        s
    };
    if let Some(h) = host {
        let scheme = if crate::url::is_local_host(h.split(':').next().unwrap_or(h)) {
            "http"
        } else {
            p.scheme
        };
        let u = format!("{scheme}://{h}{}", tail(p.path));
        let local = crate::url::is_local_host(h.split(':').next().unwrap_or(h));
        push(
            "Host header URL".to_owned(),
            u.clone(),
            if local {
                format!(
                    "the signature matches {u}, the local URL your app sees (Host: {h}). The \
                     request was signed for that URL, not the public one"
                )
            } else {
                format!("the signature matches {u}, built from the Host header ({h})")
            },
        );
    }
    if fwd_host.is_some() || fwd_proto.is_some() || fwd_prefix.is_some() {
        let scheme = fwd_proto.unwrap_or(p.scheme);
        let h = fwd_host.map_or_else(|| p.origin_host(), str::to_owned);
        let path = format!("{}{}", fwd_prefix.unwrap_or(""), p.path);
        let u = format!("{scheme}://{h}{}", tail(&path));
        push(
            "X-Forwarded-* URL".to_owned(),
            u.clone(),
            format!(
                "the signature matches {u}, the URL rebuilt from the X-Forwarded-* headers: \
                 validate against the URL the proxy received"
            ),
        );
    }
    if let Some(prefix) = fwd_prefix {
        let path = format!("{prefix}{}", p.path);
        let u = UrlParts { path: &path, ..p }.build();
        push(
            "forwarded prefix added".to_owned(),
            u.clone(),
            format!(
                "the signature matches {u}: the URL checked is missing the path prefix \
                 {prefix} that the sender used (a proxy or the tunnel stripped it)"
            ),
        );
    }
    if let Some(public) = req.header_str("x-twk-public-url") {
        push(
            "x-twk-public-url".to_owned(),
            public.to_owned(),
            format!(
                "the signature matches the public URL the relay received ({public}): validate \
                 against that, not the URL checked"
            ),
        );
    }
    // Caller-supplied alternates, as-is and with the request's path appended.
    for alt in &cx.opts.alternate_urls {
        push(
            "alternate URL".to_owned(),
            alt.clone(),
            format!("the signature matches the alternate URL {alt}"),
        );
        if let Some(ap) = UrlParts::parse(alt) {
            let prefix = ap.path.trim_end_matches('/');
            let path = format!("{prefix}{}", p.path);
            let u = UrlParts {
                path: &path,
                query: p.query,
                fragment: None,
                ..ap
            }
            .build();
            let missing_prefix = !prefix.is_empty() && !p.path.starts_with(prefix);
            push(
                "alternate origin".to_owned(),
                u.clone(),
                if missing_prefix {
                    format!(
                        "the signature matches {u}: the URL checked is missing the path \
                         prefix {prefix} (the tunnel's path route) that the sender used"
                    )
                } else {
                    format!(
                        "the signature matches {u}: the sender used the origin {}, not {}",
                        ap.origin(),
                        p.origin()
                    )
                },
            );
        }
    }
    out
}

impl UrlParts<'_> {
    /// `host[:port]`.
    fn origin_host(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.to_owned(),
        }
    }
}

/// Hints for URL-signed schemes, independent of any match.
pub(crate) fn url_hints(url: &str) -> Vec<String> {
    let mut hints = Vec::new();
    match UrlParts::parse(url) {
        Some(p) if p.is_local() => hints.push(format!(
            "{url} is a local URL. The sender signed the public URL it called (your tunnel \
             URL); check against that one"
        )),
        Some(_) => {}
        None => hints.push(format!("{url:?} is not an absolute URL")),
    }
    hints
}

/// Bodies the sender may have signed instead of the bytes received: JSON re-serialised
/// (compact, pretty, with `\uXXXX` escapes), trailing newline, CRLF/LF, form re-encoded.
pub(crate) fn body_variants(body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut out: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut push = |label: &str, why: &str, b: Vec<u8>| {
        if b != body && !out.iter().any(|(_, _, x)| *x == b) {
            out.push((label.to_owned(), why.to_owned(), b));
        }
    };
    const REENCODED: &str = "the body was re-encoded between the sender and here: the \
        signature matches the body";
    if let Some(v) = parse_json(body) {
        if let Ok(b) = serde_json::to_vec(&v) {
            push(
                "JSON compact",
                &format!(
                    "{REENCODED} as compact JSON. Something parsed the JSON and \
                     re-serialised it (a proxy, a body-parser middleware): verify the raw \
                     bytes before parsing"
                ),
                b.clone(),
            );
            push(
                "JSON non-ASCII escaped",
                &format!(
                    "{REENCODED} with non-ASCII characters escaped as \\uXXXX (as GitHub \
                     sends it): the body was parsed and re-serialised"
                ),
                escape_non_ascii(&b),
            );
        }
        if let Ok(b) = serde_json::to_vec_pretty(&v) {
            push(
                "JSON pretty",
                &format!(
                    "{REENCODED} pretty-printed: something parsed and re-formatted the JSON \
                     (verify the raw bytes before parsing)"
                ),
                b,
            );
        }
    } else if !body.is_empty()
        && body.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
        && body.contains(&b'=')
    {
        let pairs = crate::form::decode_pairs(body);
        if let Ok(s) = serde_urlencoded::to_string(&pairs) {
            push(
                "form re-encoded",
                &format!(
                    "{REENCODED} re-encoded as a form: the form was parsed and re-encoded \
                     (percent-escapes changed); verify the raw bytes"
                ),
                s.clone().into_bytes(),
            );
            push(
                "form re-encoded %20",
                &format!(
                    "{REENCODED} re-encoded as a form with %20 for spaces: the form was \
                     parsed and re-encoded"
                ),
                s.replace('+', "%20").into_bytes(),
            );
        }
    }
    if body.ends_with(b"\n") {
        let trimmed = body
            .strip_suffix(b"\r\n")
            .or_else(|| body.strip_suffix(b"\n"));
        if let Some(t) = trimmed {
            push(
                "trailing newline removed",
                &format!("{REENCODED} without its trailing newline (a newline was appended)"),
                t.to_vec(),
            );
        }
    } else {
        let mut b = body.to_vec();
        b.push(b'\n');
        push(
            "trailing newline added",
            &format!("{REENCODED} with a trailing newline (the newline was lost)"),
            b,
        );
    }
    if body.windows(2).any(|w| w == b"\r\n") {
        push(
            "CRLF to LF",
            &format!("{REENCODED} with LF line endings (CRLF was introduced on the way)"),
            replace_bytes(body, b"\r\n", b"\n"),
        );
    } else if body.contains(&b'\n') {
        push(
            "LF to CRLF",
            &format!("{REENCODED} with CRLF line endings (they were converted to LF)"),
            replace_bytes(body, b"\n", b"\r\n"),
        );
    }
    out
}

fn escape_non_ascii(json: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(json);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
    }
    out.into_bytes()
}

fn replace_bytes(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// Keys the sender may have used instead of the configured one: the configured secret
/// trimmed of whitespace, and the secrets configured for the other providers.
pub(crate) fn key_variants(
    cx: &Cx<'_, '_>,
    provider: Provider,
    key: &[u8],
) -> Vec<(String, String, Vec<u8>)> {
    let mut out: Vec<(String, String, Vec<u8>)> = Vec::new();
    let trimmed = key.trim_ascii();
    if trimmed.len() != key.len() {
        out.push((
            "secret trimmed".to_owned(),
            "the signature matches the configured secret without its surrounding whitespace: \
             the configured value has a stray space or newline (e.g. read from a file)"
                .to_owned(),
            trimmed.to_vec(),
        ));
    }
    for other in cx.secrets.configured() {
        if other == provider {
            continue;
        }
        let Some(s) = cx.secrets.get(other) else {
            continue;
        };
        if s.expose() == key || out.iter().any(|(_, _, k)| k == s.expose()) {
            continue;
        }
        out.push((
            format!("{other} secret"),
            format!(
                "the signature matches the secret configured for {other}: the wrong secret is \
                 configured for {provider} (or the request is really from {other})"
            ),
            s.expose().to_vec(),
        ));
    }
    out
}

/// Skew-based staleness: `Some(skew)` when outside the tolerance. `past_only` follows SDKs
/// (Stripe) that reject only old timestamps.
pub(crate) fn stale_skew(
    now: i64,
    ts: i64,
    tolerance: Option<u64>,
    past_only: bool,
) -> Option<i64> {
    let tol = i64::try_from(tolerance?).unwrap_or(i64::MAX);
    let skew = now.saturating_sub(ts);
    let out = if past_only {
        skew > tol
    } else {
        skew > tol || skew < tol.saturating_neg()
    };
    out.then_some(skew)
}

/// Describes a skew in plain words.
pub(crate) fn describe_skew(skew: i64, tolerance: u64) -> String {
    if skew >= 0 {
        format!(
            "the timestamp is {skew} s old; the tolerance is {tolerance} s (a replay of an old request? re-sign it with a fresh timestamp)"
        )
    } else {
        format!(
            "the timestamp is {} s in the future; the tolerance is {tolerance} s (is the sender's or this machine's clock wrong?)",
            skew.unsigned_abs()
        )
    }
}

/// Marks an analysis stale after a signature matched.
pub(crate) fn mark_stale(mut a: Analysis, skew: i64, tolerance: u64) -> Analysis {
    a.verdict = Verdict::Stale;
    a.skew_secs = Some(skew);
    a.diagnosis = Some(Diagnosis {
        summary: format!(
            "The signature is correct but {}.",
            describe_skew(skew, tolerance)
        ),
        signed_string: a.signed_string.clone(),
        ..Diagnosis::default()
    });
    a
}
