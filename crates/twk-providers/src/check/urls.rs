//! URL mistakes: the URLs a sender may have signed instead of the one checked. Schemes that
//! sign the full URL (Twilio, Authy OneTouch) fail on any byte of difference, and the URL an
//! app rebuilds behind a tunnel or proxy rarely equals the one configured at the sender.

use crate::Cx;
use crate::request::RequestView;
use crate::url::{UrlParts, is_local_host, split_host_port};

/// A URL the sender may have signed instead of the one given.
#[derive(Debug, Clone)]
pub(crate) struct UrlMistake {
    pub label: String,
    pub why: String,
    pub url: String,
}

/// The mistakes found so far. Each URL is kept once, with the first explanation, so the steps
/// run from the most specific explanation to the most general.
struct Found<'a> {
    /// The URL checked: never a mistake of itself.
    checked: &'a str,
    out: Vec<UrlMistake>,
}

impl Found<'_> {
    fn push(&mut self, label: impl Into<String>, url: String, why: String) {
        if url != self.checked && !self.out.iter().any(|m| m.url == url) {
            self.out.push(UrlMistake {
                label: label.into(),
                why,
                url,
            });
        }
    }
}

/// URLs the sender may have signed instead of `req.url`: the other scheme, without a port or
/// with another port the sender may have used, a trailing slash, the query, a path prefix; the URL rebuilt from `Host`,
/// `X-Forwarded-*` and twk's `x-twk-*` metadata; and the caller's alternate URLs.
pub(crate) fn url_mistakes(cx: &Cx<'_, '_>) -> Vec<UrlMistake> {
    let req = cx.req;
    let Some(p) = UrlParts::parse(req.url) else {
        return Vec::new();
    };
    let mut found = Found {
        checked: req.url,
        out: Vec::new(),
    };
    other_scheme(&p, &mut found);
    port_removed(&p, &mut found);
    for (port, source) in sender_ports(req) {
        other_port(&p, port, source, &mut found);
    }
    trailing_slash(&p, &mut found);
    query_removed(&p, &mut found);
    prefix_removed(&p, &mut found);
    let fwd = ForwardedUrl::from_headers(req);
    host_header_url(req, &p, &mut found);
    forwarded_url(&fwd, &p, &mut found);
    forwarded_prefix_added(&fwd, &p, &mut found);
    relay_public_url(req, &mut found);
    alternates(&cx.opts.alternate_urls, &p, &mut found);
    found.out
}

/// http ↔ https: the provider's configured URL, a redirect or a TLS-terminating proxy (a
/// tunnel hands the app plain http) makes the scheme the app sees differ from the signed one.
fn other_scheme(p: &UrlParts<'_>, found: &mut Found<'_>) {
    let other = if p.scheme.eq_ignore_ascii_case("https") {
        "http"
    } else if p.scheme.eq_ignore_ascii_case("http") {
        "https"
    } else {
        return;
    };
    let u = UrlParts {
        scheme: other,
        ..*p
    }
    .build();
    let why = format!(
        "the signature matches {u}: the sender used {other}:// while the URL checked \
         uses {}://. The URL configured at the provider uses the other scheme, or a \
         redirect or TLS-terminating proxy changed it, or your code rebuilds the URL \
         with the wrong scheme (behind a tunnel the app sees http)",
        p.scheme
    );
    found.push(format!("scheme {other}"), u, why);
}

/// The port dropped: the port the local app listens on leaks into a rebuilt URL, but the
/// public URL the sender signed has none.
fn port_removed(p: &UrlParts<'_>, found: &mut Found<'_>) {
    let Some(port) = p.port else { return };
    let u = UrlParts { port: None, ..*p }.build();
    let why = format!(
        "the signature matches {u}: the sender's URL has no port, the URL checked has \
         :{port} (the port the local app listens on is not part of the public URL)"
    );
    found.push("port removed", u, why);
}

/// Ports development servers and tunnels commonly listen on, tried after the ports the request
/// names (which may be absent: `verify` is often given the signature header alone): 80 and 443
/// written out explicitly, 3000 (Node, Rails, Next.js), 4040 (ngrok's local inspector, easy to
/// paste by mistake), 5000 (Flask), 8000 (Django, uvicorn, `python -m http.server`), 8080 and
/// 8443 (the usual alternates for http and https), 8787 (wrangler dev) and 9999 (a common pick
/// for a throwaway server; the port of the report that asked for this check). A fixed list, so
/// each costs one more HMAC per candidate URL variant.
const COMMON_PORTS: [u16; 10] = [80, 443, 3000, 4040, 5000, 8000, 8080, 8443, 8787, 9999];

/// Ports the sender's configured URL may have had, each with where it was found: first the
/// ones the request itself names (an HTTP client puts a non-default port in `Host`; proxies
/// and the twk relay pass it on), then [`COMMON_PORTS`]. At most one port per header, from a
/// fixed set of headers, so a hostile request cannot make the check try more than a handful.
fn sender_ports(req: &RequestView<'_>) -> Vec<(u16, &'static str)> {
    let from_headers = [
        (
            req.header_str("host").and_then(host_port),
            "the port in the Host header",
        ),
        (
            req.header_str("x-forwarded-port").map(first_entry),
            "the X-Forwarded-Port header",
        ),
        (
            req.header_str("x-forwarded-host")
                .map(first_entry)
                .and_then(host_port),
            "the port in X-Forwarded-Host",
        ),
        (
            req.header_str("forwarded")
                .and_then(forwarded_host)
                .and_then(host_port),
            "the port in the Forwarded header's host",
        ),
        (
            req.header_str("x-twk-host").and_then(host_port),
            "the port in x-twk-host, the Host the relay received",
        ),
        (
            req.header_str("x-twk-public-url")
                .and_then(UrlParts::parse)
                .and_then(|u| u.port),
            "the port of x-twk-public-url, the URL the relay received",
        ),
    ];
    let named = from_headers
        .into_iter()
        .filter_map(|(port, source)| Some((port.and_then(port_number)?, source)));
    let common = COMMON_PORTS
        .into_iter()
        .map(|port| (port, "a port development servers commonly use"));
    let mut out: Vec<(u16, &'static str)> = Vec::new();
    for (port, source) in named.chain(common) {
        if !out.iter().any(|(p, _)| *p == port) {
            out.push((port, source));
        }
    }
    out
}

/// The URL checked with `port` instead of its own: the sender signs the URL configured on
/// its side, port included, and a proxy, tunnel or rebuilt URL drops or changes it.
fn other_port(p: &UrlParts<'_>, port: u16, source: &str, found: &mut Found<'_>) {
    if p.port.and_then(port_number) == Some(port) {
        return;
    }
    let port_text = port.to_string();
    let u = UrlParts {
        port: Some(&port_text),
        ..*p
    }
    .build();
    let current = match p.port {
        Some(own) => format!(":{own}"),
        None => format!("no port (so the default, {})", p.default_port()),
    };
    let why = format!(
        "signed for port {port}: the signature matches {u}. The URL configured at the sender \
         has :{port} ({source}) while the URL checked has {current}; check against the URL \
         the sender was configured with, port included"
    );
    found.push(format!("port {port}"), u, why);
}

/// A port as a number: 1 to 65535, digits only (no sign, no spaces).
fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|p| *p != 0)
}

/// The port text of `host[:port]`, if any.
fn host_port(host: &str) -> Option<&str> {
    split_host_port(host).1
}

/// The first entry of a comma-separated header (one entry per proxy): the one closest to the
/// sender.
fn first_entry(value: &str) -> &str {
    value.split(',').next().unwrap_or(value).trim()
}

/// The `host=` parameter of the first element of an RFC 7239 `Forwarded` header, unquoted.
fn forwarded_host(value: &str) -> Option<&str> {
    first_entry(value).split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("host")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// A trailing slash removed or added: frameworks and proxies normalise it, senders keep
/// whatever was typed into their configuration.
fn trailing_slash(p: &UrlParts<'_>, found: &mut Found<'_>) {
    if p.path.len() > 1 && p.path.ends_with('/') {
        let path = &p.path[..p.path.len() - 1];
        let u = UrlParts { path, ..*p }.build();
        let why = format!("the signature matches {u}: the sender's URL has no trailing slash");
        found.push("trailing slash removed", u, why);
    } else if !p.path.is_empty() && !p.path.ends_with('/') {
        let path = format!("{}/", p.path);
        let u = UrlParts { path: &path, ..*p }.build();
        let why = format!("the signature matches {u}: the sender's URL ends with a slash");
        found.push("trailing slash added", u, why);
    }
}

/// The query dropped: a query added on the way (or by the caller) is not in the signed URL.
fn query_removed(p: &UrlParts<'_>, found: &mut Found<'_>) {
    let Some(q) = p.query else { return };
    let u = UrlParts { query: None, ..*p }.build();
    let why = format!(
        "the signature matches {u}: the sender signed the URL without the query \
         string ?{q}"
    );
    found.push("query removed", u, why);
}

/// A leading path prefix (1–3 segments) dropped: the URL checked has a prefix the sender did
/// not use, e.g. a mount point or the tunnel's `/t/<name>` route added back by the caller.
fn prefix_removed(p: &UrlParts<'_>, found: &mut Found<'_>) {
    let segments: Vec<&str> = p.path.split('/').filter(|s| !s.is_empty()).collect();
    for k in 1..segments.len().min(4) {
        let prefix: String = segments[..k].iter().map(|s| format!("/{s}")).collect();
        if let Some(rest) = p.path.strip_prefix(prefix.as_str()) {
            let u = UrlParts { path: rest, ..*p }.build();
            let why = format!(
                "the signature matches {u}: the sender's URL has no {prefix} prefix, the \
                 URL checked has it"
            );
            found.push(format!("path prefix {prefix} removed"), u, why);
        }
    }
}

/// The path (as given) followed by the checked URL's query, for URLs rebuilt from headers.
fn with_query(path: &str, p: &UrlParts<'_>) -> String {
    let mut s = path.to_owned();
    if let Some(q) = p.query {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// The URL rebuilt from `Host`: a sender configured with the local URL (or an app checking
/// against it) signs what the local app sees, not the public URL.
fn host_header_url(req: &RequestView<'_>, p: &UrlParts<'_>, found: &mut Found<'_>) {
    let Some(h) = req.header_str("host").filter(|h| !h.is_empty()) else {
        return;
    };
    let local = is_local_host(h.split(':').next().unwrap_or(h));
    // A local Host is reached over plain http whatever the public scheme was.
    let scheme = if local { "http" } else { p.scheme };
    let u = format!("{scheme}://{h}{}", with_query(p.path, p));
    let why = if local {
        format!(
            "the signature matches {u}, the local URL your app sees (Host: {h}). The \
             request was signed for that URL, not the public one"
        )
    } else {
        format!("the signature matches {u}, built from the Host header ({h})")
    };
    found.push("Host header URL", u, why);
}

/// What proxies (`X-Forwarded-*`) or the twk relay (`x-twk-*`) say about the public URL.
struct ForwardedUrl<'a> {
    host: Option<&'a str>,
    proto: Option<&'a str>,
    prefix: Option<&'a str>,
}

impl<'a> ForwardedUrl<'a> {
    /// The standard header first, twk's metadata as the fallback; of a comma-separated list
    /// (one entry per proxy) the first entry, the one closest to the sender.
    fn from_headers(req: &RequestView<'a>) -> Self {
        let host = req
            .header_str("x-forwarded-host")
            .or_else(|| req.header_str("x-twk-host"))
            .map(first_entry)
            .filter(|h| !h.is_empty());
        let proto = req
            .header_str("x-forwarded-proto")
            .or_else(|| req.header_str("x-twk-proto"))
            .map(first_entry)
            .filter(|h| !h.is_empty());
        let prefix = req
            .header_str("x-forwarded-prefix")
            .or_else(|| req.header_str("x-twk-forwarded-prefix"))
            .filter(|h| h.starts_with('/'));
        ForwardedUrl {
            host,
            proto,
            prefix,
        }
    }
}

/// The URL rebuilt from the forwarded scheme, host and prefix: what the proxy received, which
/// is what the sender signed.
fn forwarded_url(fwd: &ForwardedUrl<'_>, p: &UrlParts<'_>, found: &mut Found<'_>) {
    if fwd.host.is_none() && fwd.proto.is_none() && fwd.prefix.is_none() {
        return;
    }
    let scheme = fwd.proto.unwrap_or(p.scheme);
    let h = fwd.host.map_or_else(|| p.origin_host(), str::to_owned);
    let path = format!("{}{}", fwd.prefix.unwrap_or(""), p.path);
    let u = format!("{scheme}://{h}{}", with_query(&path, p));
    let why = format!(
        "the signature matches {u}, the URL rebuilt from the X-Forwarded-* headers: \
         validate against the URL the proxy received"
    );
    found.push("X-Forwarded-* URL", u, why);
}

/// The forwarded prefix put back alone: a proxy or the tunnel's path routing stripped it
/// before the app saw the request.
fn forwarded_prefix_added(fwd: &ForwardedUrl<'_>, p: &UrlParts<'_>, found: &mut Found<'_>) {
    let Some(prefix) = fwd.prefix else { return };
    let path = format!("{prefix}{}", p.path);
    let u = UrlParts { path: &path, ..*p }.build();
    let why = format!(
        "the signature matches {u}: the URL checked is missing the path prefix \
         {prefix} that the sender used (a proxy or the tunnel stripped it)"
    );
    found.push("forwarded prefix added", u, why);
}

/// The exact public URL the twk relay received (`x-twk-public-url`).
fn relay_public_url(req: &RequestView<'_>, found: &mut Found<'_>) {
    let Some(public) = req.header_str("x-twk-public-url") else {
        return;
    };
    let why = format!(
        "the signature matches the public URL the relay received ({public}): validate \
         against that, not the URL checked"
    );
    found.push("x-twk-public-url", public.to_owned(), why);
}

/// The caller's alternate URLs, as-is and as their origin (and path) followed by the request's
/// path: the second form finds a tunnel URL whose path route the URL checked lacks.
fn alternates(alternate_urls: &[String], p: &UrlParts<'_>, found: &mut Found<'_>) {
    for alt in alternate_urls {
        let why = format!("the signature matches the alternate URL {alt}");
        found.push("alternate URL", alt.clone(), why);
        if let Some(ap) = UrlParts::parse(alt) {
            alternate_origin(&ap, p, found);
        }
    }
}

/// One alternate's origin and path prefix followed by the checked URL's path and query.
fn alternate_origin(ap: &UrlParts<'_>, p: &UrlParts<'_>, found: &mut Found<'_>) {
    let prefix = ap.path.trim_end_matches('/');
    let path = format!("{prefix}{}", p.path);
    let u = UrlParts {
        path: &path,
        query: p.query,
        fragment: None,
        ..*ap
    }
    .build();
    let missing_prefix = !prefix.is_empty() && !p.path.starts_with(prefix);
    let why = if missing_prefix {
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
    };
    found.push("alternate origin", u, why);
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
