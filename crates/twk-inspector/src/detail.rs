//! The detail pane's content: one list of display lines per tab, built once when an exchange
//! is loaded (so drawing a frame only slices them).
//!
//! Secrets: header values that carry credentials or signatures (the capture crate's
//! [`twk_capture::redact`] rule: `Authorization`, cookies, every `*signature*` header, …) are
//! shown as `[REDACTED]` in the Request and Response tabs unless the user reveals them with
//! `s`. The Signature tab shows the expected and received signatures (comparing them is its
//! purpose; a signature is not the secret), and Basic-auth passwords are always masked.

use crate::body::{self, BodyKind};
use crate::sanitize::{clean, clean_line, clean_lines};
use base64::Engine as _;
use jiff::tz::TimeZone;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use serde::Deserialize;
use twk_capture::{Exchange, Header, Lint, LintCode, Message, Severity, StoredExchange, redact};
use twk_providers::Verdict;

/// The detail tabs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tab {
    /// Request head and pretty body.
    #[default]
    Request,
    /// Response head and pretty body.
    Response,
    /// Signature verdict and diagnosis.
    Signature,
    /// Basic-auth handshake timeline and lints.
    Auth,
    /// Timings.
    Timing,
}

impl Tab {
    /// All tabs in display order.
    pub const ALL: [Tab; 5] = [
        Tab::Request,
        Tab::Response,
        Tab::Signature,
        Tab::Auth,
        Tab::Timing,
    ];

    /// Title shown in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Request => "Request",
            Tab::Response => "Response",
            Tab::Signature => "Signature",
            Tab::Auth => "Auth",
            Tab::Timing => "Timing",
        }
    }

    /// Position in [`Tab::ALL`].
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The next tab (wrapping).
    pub fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    /// The previous tab (wrapping).
    pub fn prev(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }
}

/// A loaded exchange and its rendered tabs.
#[derive(Debug, Clone)]
pub struct Detail {
    /// The exchange as stored.
    pub stored: StoredExchange,
    /// The other leg of its Basic-auth handshake, when it has one still stored.
    pub partner: Option<StoredExchange>,
    /// Whether secret headers are shown.
    pub revealed: bool,
    /// One header line for the pane title.
    pub title: String,
    /// The exchange's lints for the pane title (`⚠ code +N`), shown on every tab.
    pub lint_badge: Option<Span<'static>>,
    /// Rendered Request tab.
    pub request: Vec<Line<'static>>,
    /// Rendered Response tab.
    pub response: Vec<Line<'static>>,
    /// Rendered Signature tab.
    pub signature: Vec<Line<'static>>,
    /// Rendered Auth tab.
    pub auth: Vec<Line<'static>>,
    /// Rendered Timing tab.
    pub timing: Vec<Line<'static>>,
}

impl Detail {
    /// Renders every tab of `stored`; `partner` is the other leg of its Basic-auth handshake.
    pub fn build(
        stored: StoredExchange,
        partner: Option<StoredExchange>,
        revealed: bool,
        tz: &TimeZone,
    ) -> Detail {
        let ex = &stored.exchange;
        let title = clean_line(
            &format!(
                "#{} {} {} → {}",
                stored.id(),
                ex.method,
                ex.path,
                ex.status
                    .map_or("no response".to_owned(), |s| s.to_string())
            ),
            512,
        );
        Detail {
            request: request_tab(ex, revealed),
            response: response_tab(ex, revealed),
            signature: signature_tab(ex),
            auth: auth_tab(&stored, partner.as_ref(), tz),
            timing: timing_tab(&stored, tz),
            lint_badge: lint_badge(stored.lints.as_deref().unwrap_or_default()),
            title,
            revealed,
            stored,
            partner,
        }
    }

    /// The lines of `tab`.
    pub fn lines(&self, tab: Tab) -> &[Line<'static>] {
        match tab {
            Tab::Request => &self.request,
            Tab::Response => &self.response,
            Tab::Signature => &self.signature,
            Tab::Auth => &self.auth,
            Tab::Timing => &self.timing,
        }
    }

    /// The exchange id.
    pub fn id(&self) -> twk_capture::ExchangeId {
        self.stored.id()
    }
}

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

fn key() -> Style {
    Style::new().fg(Color::Cyan)
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

fn kv(k: &str, v: &str) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{:<14}", clean_line(k, 14)), key()),
        Span::raw(clean(v)),
    ])
}

fn section(title: &str) -> Line<'static> {
    Line::styled(clean_line(title, 256), bold())
}

fn header_lines(headers: &[Header], revealed: bool) -> Vec<Line<'static>> {
    if headers.is_empty() {
        return vec![Line::styled("(no headers)", dim())];
    }
    headers
        .iter()
        .map(|h| {
            let shown = if revealed {
                std::borrow::Cow::Borrowed(h.value.as_slice())
            } else {
                redact::redact_value(&h.name, &h.value)
            };
            let masked = !revealed && redact::is_secret_header(&h.name);
            let value = String::from_utf8_lossy(&shown);
            Line::from(vec![
                Span::styled(clean_line(&h.name, 128), key()),
                Span::styled(": ", dim()),
                Span::styled(
                    clean(&value),
                    if masked {
                        Style::new().fg(Color::Yellow)
                    } else {
                        Style::new()
                    },
                ),
            ])
        })
        .collect()
}

fn message_lines(m: &Message, revealed: bool) -> Vec<Line<'static>> {
    let mut out = vec![section(&format!("Headers ({})", m.headers.len()))];
    out.extend(header_lines(&m.headers, revealed));
    if !revealed && m.headers.iter().any(|h| redact::is_secret_header(&h.name)) {
        out.push(Line::styled(
            "(secret values redacted: press s to reveal)",
            dim(),
        ));
    }
    out.push(Line::raw(""));
    let (kind, lines) = body::render(&m.headers, &m.body);
    let label = if kind == BodyKind::Empty {
        "Body".to_owned()
    } else {
        format!("Body ({}, {} bytes)", kind.label(), m.body.len)
    };
    out.push(section(&label));
    out.extend(lines);
    out
}

fn request_tab(ex: &Exchange, revealed: bool) -> Vec<Line<'static>> {
    let mut out = vec![
        Line::from(vec![
            Span::styled(clean_line(&ex.method, 32), bold()),
            Span::raw(" "),
            Span::raw(clean(&ex.path)),
        ]),
        kv("public URL", &ex.public_url),
        kv("from", ex.remote_addr.as_deref().unwrap_or("-")),
        kv("target", &ex.target),
    ];
    if let Some(of) = ex.replay_of {
        out.push(kv("replay of", &format!("#{of}")));
    }
    out.push(Line::raw(""));
    out.extend(message_lines(&ex.request, revealed));
    out
}

fn response_tab(ex: &Exchange, revealed: bool) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    if let Some(f) = &ex.failure {
        let side = match f.side {
            twk_capture::Side::Sender => "sender",
            twk_capture::Side::Tunnel => "tunnel",
            twk_capture::Side::Target => "local target",
        };
        out.push(Line::styled(
            format!("failed ({side}): {}", clean(&f.message)),
            Style::new().fg(Color::Red),
        ));
        out.push(Line::raw(""));
    }
    match (&ex.response, ex.status) {
        (Some(m), status) => {
            out.push(Line::from(vec![
                Span::styled("Status ", key()),
                status_span(status),
            ]));
            out.push(Line::raw(""));
            out.extend(message_lines(m, revealed));
        }
        (None, _) => out.push(Line::styled("No response came back.", dim())),
    }
    out
}

/// A coloured status code.
pub fn status_span(status: Option<u16>) -> Span<'static> {
    match status {
        None => Span::styled("---", Style::new().fg(Color::Red)),
        Some(s) => {
            let color = match s {
                200..=299 => Color::Green,
                300..=399 => Color::Cyan,
                400..=499 => Color::Yellow,
                _ => Color::Red,
            };
            Span::styled(s.to_string(), Style::new().fg(color))
        }
    }
}

/// The verdict mark of the list: (symbol, style).
pub fn verdict_mark(verdict: Option<Verdict>) -> (&'static str, Style) {
    match verdict {
        Some(Verdict::Valid) => ("✓", Style::new().fg(Color::Green)),
        Some(Verdict::Invalid) => (
            "✗",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Some(Verdict::Malformed) => ("✗", Style::new().fg(Color::Magenta)),
        Some(Verdict::Stale) => ("!", Style::new().fg(Color::Yellow)),
        Some(Verdict::NoSecret) => ("?", Style::new().fg(Color::Blue)),
        Some(Verdict::Unsigned) | None => ("–", dim()),
    }
}

/// The provider crate's analysis, read leniently from the stored JSON (unknown fields and
/// missing fields are fine).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AnalysisView {
    provider: Option<String>,
    event: Option<EventView>,
    verdict: Option<Verdict>,
    matched_variant: Option<String>,
    signed_string: Option<String>,
    skew_secs: Option<i64>,
    diagnosis: Option<DiagnosisView>,
    notes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventView {
    name: Option<String>,
    summary: Option<String>,
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DiagnosisView {
    summary: Option<String>,
    expected: Option<String>,
    received: Option<String>,
    signed_string: Option<String>,
    likely_cause: Option<String>,
    hints: Vec<String>,
    checked: Vec<String>,
}

fn verdict_words(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid: the signature matches",
        Verdict::Invalid => "invalid: the signature does not match",
        Verdict::Stale => "stale: the signature matches but the timestamp is too old",
        Verdict::Unsigned => "unsigned: the request carries no signature",
        Verdict::NoSecret => "no secret: configure the provider's secret to check this",
        Verdict::Malformed => "malformed: the signature header cannot be parsed",
    }
}

/// Width prose (diagnosis, hints, notes) is wrapped at.
const PROSE_WIDTH: usize = 100;

/// Word-wraps one display line at `width` characters (long words are split).
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for word in line.split(' ') {
        let mut word = word.to_owned();
        let mut wlen = word.chars().count();
        while wlen > width {
            if cur_len > 0 {
                out.push(std::mem::take(&mut cur));
                cur_len = 0;
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            wlen -= width;
            out.push(head);
        }
        let sep = usize::from(cur_len > 0);
        if cur_len + sep + wlen > width && cur_len > 0 {
            out.push(std::mem::take(&mut cur));
            cur_len = 0;
        }
        if cur_len > 0 {
            cur.push(' ');
            cur_len += 1;
        }
        cur.push_str(&word);
        cur_len += wlen;
    }
    if cur_len > 0 || out.is_empty() {
        out.push(cur);
    }
    out
}

fn wrapped(label: &str, text: &str, style: Style) -> Vec<Line<'static>> {
    let mut out = vec![Line::styled(format!("{label}:"), key())];
    out.extend(
        clean_lines(text)
            .iter()
            .flat_map(|l| wrap(l, PROSE_WIDTH))
            .map(|l| Line::styled(format!("  {l}"), style)),
    );
    out
}

fn signature_tab(ex: &Exchange) -> Vec<Line<'static>> {
    let verdict = ex.verdict;
    let (mark, style) = verdict_mark(verdict);
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{mark} "), style),
        Span::styled(
            verdict.map_or("not checked", verdict_words).to_owned(),
            style.add_modifier(Modifier::BOLD),
        ),
    ])];
    let Some(json) = &ex.analysis else {
        out.push(Line::raw(""));
        out.push(Line::styled(
            "No analysis stored for this exchange (no provider recognised, or recorded without one).",
            dim(),
        ));
        return out;
    };
    let a: AnalysisView = match serde_json::from_value(json.clone()) {
        Ok(a) => a,
        Err(_) => {
            out.push(Line::styled("analysis (raw):", key()));
            let pretty = serde_json::to_string_pretty(json).unwrap_or_default();
            out.extend(clean_lines(&pretty).into_iter().map(Line::from));
            return out;
        }
    };
    out.push(Line::raw(""));
    out.push(kv(
        "provider",
        a.provider
            .as_deref()
            .or(ex.provider.as_deref())
            .unwrap_or("unknown"),
    ));
    if let Some(e) = &a.event {
        let name = e.name.as_deref().unwrap_or("-");
        out.push(kv("event", name));
        if let Some(s) = &e.summary {
            out.push(kv("summary", s));
        }
        if let Some(id) = &e.id {
            out.push(kv("delivery id", id));
        }
    }
    if let Some(v) = &a.matched_variant {
        out.push(kv("matched", v));
    }
    if let Some(s) = a.skew_secs {
        out.push(kv("clock skew", &format!("{s} s (now − signed timestamp)")));
    }
    if let Some(d) = &a.diagnosis {
        out.push(Line::raw(""));
        if let Some(s) = &d.summary {
            out.extend(wrapped("diagnosis", s, Style::new()));
        }
        if let Some(s) = &d.likely_cause {
            out.extend(wrapped("likely cause", s, Style::new().fg(Color::Yellow)));
        }
        if let Some(s) = &d.expected {
            out.push(kv("expected", s));
        }
        if let Some(s) = &d.received {
            out.push(kv("received", s));
        }
        for h in &d.hints {
            out.extend(wrapped("hint", h, dim()));
        }
        if !d.checked.is_empty() {
            out.push(kv("checked", &d.checked.join(", ")));
        }
    }
    let signed = a.signed_string.as_deref().or(a
        .diagnosis
        .as_ref()
        .and_then(|d| d.signed_string.as_deref()));
    if let Some(s) = signed {
        out.push(Line::raw(""));
        // Cut at a fixed width, never at spaces, so every character stays visible.
        out.push(Line::styled(
            "signed string (escaped; cut every 100 characters):",
            key(),
        ));
        for l in clean_lines(s) {
            let chars: Vec<char> = l.chars().collect();
            for chunk in chars.chunks(PROSE_WIDTH) {
                out.push(Line::styled(
                    format!("  {}", chunk.iter().collect::<String>()),
                    Style::new().fg(Color::Gray),
                ));
            }
        }
    }
    for n in &a.notes {
        out.extend(wrapped("note", n, dim()));
    }
    if a.verdict.is_some_and(|v| Some(v) != verdict) {
        out.push(kv("stored verdict", verdict.map_or("-", Verdict::as_str)));
    }
    out
}

/// The Basic-auth user of an `Authorization: Basic …` header (password never returned).
pub fn basic_auth_user(headers: &[Header]) -> Option<String> {
    let h = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))?;
    let v = std::str::from_utf8(&h.value).ok()?;
    let (scheme, cred) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(cred.trim())
        .ok()?;
    let text = String::from_utf8_lossy(&decoded);
    Some(
        text.split_once(':')
            .map_or(text.as_ref(), |(u, _)| u)
            .to_owned(),
    )
}

/// The mark of a lint severity in the list and the detail: (glyph, style).
pub fn severity_mark(sev: Severity) -> (&'static str, Style) {
    match sev {
        Severity::Error => (
            "⚠",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Severity::Warning => ("⚠", Style::new().fg(Color::Yellow)),
        Severity::Info => ("i", Style::new().fg(Color::Blue)),
    }
}

/// A short label of a lint for the list's marks column.
pub fn lint_label(code: LintCode) -> &'static str {
    match code {
        LintCode::Unauthorized401WithoutChallenge => "bare 401",
        LintCode::ChallengeNotBasic => "not Basic",
        LintCode::CredentialsMismatch => "mismatch",
        LintCode::RetryNeverCame => "no retry",
        LintCode::PortNotAccepted => "port",
        LintCode::PreemptiveCredentials => "preemptive",
    }
}

/// The style of a lint's mark. The mistake that silently loses callbacks
/// (`401-without-www-authenticate`) is white on red so that it cannot be missed.
pub fn lint_style(code: LintCode) -> Style {
    match code {
        LintCode::Unauthorized401WithoutChallenge => Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD),
        c => severity_mark(c.severity()).1,
    }
}

/// The pane-title badge of an exchange's lints: the first (most severe) code and how many more.
fn lint_badge(lints: &[Lint]) -> Option<Span<'static>> {
    let first = lints.first()?;
    let (glyph, _) = severity_mark(first.severity);
    let more = match lints.len() {
        0 | 1 => String::new(),
        n => format!(" +{}", n - 1),
    };
    Some(Span::styled(
        format!("{glyph} {}{more} (4 Auth) ", first.code),
        lint_style(first.code),
    ))
}

/// `180 ms` or `12.5 s`.
fn gap(ms: i64) -> String {
    if ms.abs() < 10_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// An indented `label  value` line of a leg.
fn leg_kv(label: &str, value: Vec<Span<'static>>) -> Line<'static> {
    let mut spans = vec![Span::styled(format!("      {label:<13}"), key())];
    spans.extend(value);
    Line::from(spans)
}

fn has_lint(st: &StoredExchange, code: LintCode) -> bool {
    st.lints.iter().flatten().any(|l| l.code == code)
}

/// `leg N  #id  HH:MM:SS.mmm  METHOD /path → status`.
fn leg_head(label: &str, st: &StoredExchange, tz: &TimeZone) -> Line<'static> {
    let ex = &st.exchange;
    Line::from(vec![
        Span::styled(
            format!("{label:<6}"),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!("#{:<6}", st.id()), dim()),
        Span::raw(format!("{}  ", clock(ex.timings.received_ms, tz, true))),
        Span::styled(clean_line(&ex.method, 16), bold()),
        Span::raw(" "),
        Span::raw(clean_line(&ex.path, 200)),
        Span::raw(" → "),
        status_span(ex.status),
    ])
}

/// Leg 1: no credentials, answered 401, with (or without) the challenge.
fn leg1_lines(st: &StoredExchange, tz: &TimeZone) -> Vec<Line<'static>> {
    let ex = &st.exchange;
    let lost = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    let mut out = vec![
        leg_head("leg 1", st, tz),
        leg_kv(
            "credentials",
            vec![Span::raw("none (no Authorization header)")],
        ),
        leg_kv(
            "answered by",
            vec![Span::raw(if ex.auth.is_some() {
                "twk (--basic-auth): the app never saw this request"
            } else {
                "the app"
            })],
        ),
    ];
    let challenges: Vec<&Header> = ex
        .response
        .iter()
        .flat_map(|m| m.headers.iter())
        .filter(|h| h.name.eq_ignore_ascii_case("www-authenticate"))
        .collect();
    if challenges.is_empty() {
        out.push(leg_kv(
            "challenge",
            vec![Span::styled(
                "no WWW-Authenticate: Bandwidth will not retry — this callback is lost",
                lost,
            )],
        ));
    }
    for h in &challenges {
        out.push(leg_kv(
            "challenge",
            vec![
                Span::styled("WWW-Authenticate: ", dim()),
                Span::raw(clean_line(&String::from_utf8_lossy(&h.value), 300)),
            ],
        ));
    }
    if has_lint(st, LintCode::ChallengeNotBasic) {
        out.push(leg_kv(
            "",
            vec![Span::styled(
                "not a Basic challenge: Bandwidth will not retry — this callback is lost",
                lost,
            )],
        ));
    }
    out
}

/// Leg 2 (or a lone request with credentials): who the credentials name, whether they match,
/// what the app answered.
fn leg2_lines(label: &str, st: &StoredExchange, tz: &TimeZone) -> Vec<Line<'static>> {
    let ex = &st.exchange;
    let user = ex
        .auth
        .as_ref()
        .and_then(|a| a.user.clone())
        .or_else(|| basic_auth_user(&ex.request.headers));
    let header = ex
        .request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("authorization"));
    let matched = ex.auth.as_ref().and_then(|a| a.matched);
    let creds = match (&user, header) {
        (Some(u), _) => format!("Basic, user \"{}\", password ********", clean_line(u, 64)),
        (None, true) => "Authorization present, not a decodable Basic user:password".to_owned(),
        (None, false) => "Basic (not decodable)".to_owned(),
    };
    let mut out = vec![
        leg_head(label, st, tz),
        leg_kv("credentials", vec![Span::raw(creds)]),
    ];
    if !header && matched == Some(true) {
        out.push(leg_kv(
            "",
            vec![Span::styled(
                "Authorization removed before forwarding (--strip-auth)",
                dim(),
            )],
        ));
    }
    out.push(leg_kv(
        "check",
        vec![match matched {
            Some(true) => Span::styled(
                "✓ match: the configured --basic-auth credentials; twk forwarded it to the app",
                Style::new().fg(Color::Green),
            ),
            Some(false) => Span::styled(
                "✗ mismatch: not the configured --basic-auth credentials; twk answered 401 again",
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            None => Span::styled(
                "not checked by twk (no --basic-auth): the app checks them",
                dim(),
            ),
        }],
    ));
    let app = if matched == Some(false) {
        vec![Span::styled(
            "– not forwarded: the app never saw this request",
            dim(),
        )]
    } else {
        let words = match ex.status {
            Some(200..=299) => "the app accepted the callback",
            Some(401) => "the app refused these credentials",
            Some(400..=599) => "the app answered with an error",
            Some(_) => "",
            None => "no response (tab 2 Response says why)",
        };
        vec![
            status_span(ex.status),
            Span::raw(if words.is_empty() { "" } else { "  " }),
            Span::raw(words),
        ]
    };
    out.push(leg_kv("app status", app));
    out
}

fn lint_lines(title: &str, lints: &[Lint]) -> Vec<Line<'static>> {
    if lints.is_empty() {
        return vec![Line::from(vec![
            Span::styled(format!("{title:<14}"), bold()),
            Span::styled("none", Style::new().fg(Color::Green)),
        ])];
    }
    let mut out = vec![section(&format!("{title} ({})", lints.len()))];
    for l in lints {
        let (glyph, _) = severity_mark(l.severity);
        out.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(
                format!("{glyph} {:<8}", l.severity.as_str()),
                lint_style(l.code),
            ),
            Span::raw(" "),
            Span::styled(l.code.as_str(), lint_style(l.code)),
        ]));
        out.extend(
            clean_lines(&l.message)
                .iter()
                .flat_map(|m| wrap(m, PROSE_WIDTH))
                .map(|m| Line::raw(format!("      {m}"))),
        );
    }
    out
}

fn auth_tab(
    stored: &StoredExchange,
    partner: Option<&StoredExchange>,
    tz: &TimeZone,
) -> Vec<Line<'static>> {
    let ex = &stored.exchange;
    let mut out = Vec::new();
    match stored.handshake {
        Some(h) => {
            let (leg1, leg2) = if h.leg == twk_capture::Leg::Challenge {
                (Some(stored), partner)
            } else {
                (partner, Some(stored))
            };
            let (words, style) = match (leg1, leg2) {
                (Some(a), Some(b)) => (
                    format!(
                        "two legs, retried {} after the challenge",
                        gap(b.exchange.timings.received_ms - a.exchange.timings.received_ms)
                    ),
                    Style::new(),
                ),
                _ if h.with.is_some() => (
                    format!(
                        "the other leg (#{}) is no longer stored",
                        h.with.unwrap_or_default()
                    ),
                    dim(),
                ),
                _ if has_lint(stored, LintCode::Unauthorized401WithoutChallenge) => (
                    "leg 1 only: the 401 carried no challenge, so no retry will come".to_owned(),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
                _ if has_lint(stored, LintCode::ChallengeNotBasic) => (
                    "leg 1 only: the challenge is not Basic, so Bandwidth will not retry"
                        .to_owned(),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
                _ if has_lint(stored, LintCode::RetryNeverCame) => (
                    "leg 1 only: the retry never came".to_owned(),
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ),
                _ => (
                    "leg 1 only so far: waiting for the retry".to_owned(),
                    Style::new().fg(Color::Cyan),
                ),
            };
            out.push(Line::from(vec![
                Span::styled("🔒 Basic-auth handshake: ", bold()),
                Span::styled(words, style),
            ]));
            out.push(Line::styled(
                format!("this exchange (#{}) is leg {}", stored.id(), h.leg),
                dim(),
            ));
            out.push(Line::raw(""));
            match leg1 {
                Some(l) => out.extend(leg1_lines(l, tz)),
                None => out.push(Line::from(vec![
                    Span::styled("leg 1 ", bold().fg(Color::Yellow)),
                    Span::styled(
                        format!("#{} (no longer stored)", h.with.unwrap_or_default()),
                        dim(),
                    ),
                ])),
            }
            if let (Some(a), Some(b)) = (leg1, leg2) {
                out.push(Line::styled(
                    format!(
                        "  ↓ {} later: the same request again, with credentials",
                        gap(b.exchange.timings.received_ms - a.exchange.timings.received_ms)
                    ),
                    dim(),
                ));
            }
            match leg2 {
                Some(l) => out.extend(leg2_lines("leg 2", l, tz)),
                None => {
                    let lost = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
                    let (text, style) = if h.with.is_some() {
                        (
                            format!("#{} (no longer stored)", h.with.unwrap_or_default()),
                            dim(),
                        )
                    } else if has_lint(stored, LintCode::Unauthorized401WithoutChallenge) {
                        (
                            "none: without WWW-Authenticate Bandwidth will not retry — this callback is lost".to_owned(),
                            lost,
                        )
                    } else if has_lint(stored, LintCode::ChallengeNotBasic) {
                        (
                            "none: Bandwidth answers only a Basic challenge — this callback is lost"
                                .to_owned(),
                            lost,
                        )
                    } else if has_lint(stored, LintCode::RetryNeverCame) {
                        (
                            "never came: no retry with credentials within 60 s of leg 1".to_owned(),
                            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                        )
                    } else {
                        (
                            "not yet: the sender has 60 s to retry with credentials".to_owned(),
                            Style::new().fg(Color::Cyan),
                        )
                    };
                    out.push(Line::from(vec![
                        Span::styled(
                            "leg 2 ",
                            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                        ),
                        Span::styled(text, style),
                    ]));
                }
            }
        }
        None => {
            let credentials = ex
                .request
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("authorization"))
                || ex.auth.as_ref().is_some_and(|a| a.matched.is_some());
            if credentials {
                out.push(section("Credentials without a challenge"));
                out.push(Line::styled(
                    "not part of a handshake: no unauthenticated first leg from this sender in the 60 s before",
                    dim(),
                ));
                out.push(Line::raw(""));
                out.extend(leg2_lines("this", stored, tz));
            } else {
                out.push(Line::styled(
                    "no Basic-auth handshake on this exchange",
                    dim(),
                ));
                out.push(Line::raw(""));
                out.push(kv("credentials", "none (no Authorization header)"));
                if ex.status == Some(401) {
                    out.extend(leg1_lines(stored, tz).into_iter().skip(3));
                }
            }
        }
    }
    out.push(Line::raw(""));
    out.extend(lint_lines(
        "Lints",
        stored.lints.as_deref().unwrap_or_default(),
    ));
    if let (Some(p), Some(h)) = (partner, stored.handshake) {
        if let Some(l) = p.lints.as_deref() {
            out.push(Line::raw(""));
            out.extend(lint_lines(
                &format!("Lints of leg {} (#{})", h.leg.other(), p.id()),
                l,
            ));
        }
    }
    out
}

/// `HH:MM:SS.mmm` in `tz`.
pub fn clock(ms: i64, tz: &TimeZone, millis: bool) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => {
            let z = ts.to_zoned(tz.clone());
            if millis {
                z.strftime("%H:%M:%S%.3f").to_string()
            } else {
                z.strftime("%H:%M:%S").to_string()
            }
        }
        Err(_) => "??:??:??".to_owned(),
    }
}

fn timing_tab(stored: &StoredExchange, tz: &TimeZone) -> Vec<Line<'static>> {
    let ex = &stored.exchange;
    let t = &ex.timings;
    let date = jiff::Timestamp::from_millisecond(t.received_ms)
        .map(|ts| ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %Z").to_string())
        .unwrap_or_default();
    let mut out = vec![kv("date", &date)];
    let points = [
        ("received", Some(t.received_ms)),
        ("forwarded", t.forwarded_ms),
        ("first byte", t.first_byte_ms),
        ("done", t.done_ms),
    ];
    let total = t
        .done_ms
        .map(|d| d.saturating_sub(t.received_ms))
        .unwrap_or(0)
        .max(1);
    for (label, at) in points {
        match at {
            Some(at) => {
                let delta = at.saturating_sub(t.received_ms);
                let bar = usize::try_from((delta.clamp(0, total) * 40) / total).unwrap_or(0);
                out.push(Line::from(vec![
                    Span::styled(format!("{label:<14}"), key()),
                    Span::raw(format!("{}  +{delta:>6} ms  ", clock(at, tz, true))),
                    Span::styled("█".repeat(bar), Style::new().fg(Color::Blue)),
                ]));
            }
            None => out.push(kv(label, "-")),
        }
    }
    out.push(Line::raw(""));
    out.push(kv(
        "total",
        &ex.duration_ms()
            .map_or("-".to_owned(), |d| format!("{d} ms")),
    ));
    out.push(kv("tunnel", &ex.tunnel));
    out.push(kv("request id", &ex.request_id));
    if let Some(a) = stored.attempt {
        out.push(kv("attempt", &a.to_string()));
    }
    if let Some(g) = &stored.group_key {
        out.push(kv("group", g));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_cycle() {
        assert_eq!(Tab::Timing.next(), Tab::Request);
        assert_eq!(Tab::Request.prev(), Tab::Timing);
        assert_eq!(Tab::Signature.index(), 2);
    }

    #[test]
    fn wraps_words() {
        assert_eq!(wrap("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghijkl", 8), vec!["abcdefgh", "ijkl"]);
        assert_eq!(wrap("", 8), vec![""]);
    }

    #[test]
    fn basic_user_only() {
        let h = vec![Header {
            name: "Authorization".into(),
            value: b"Basic YWxpY2U6czNjcmV0".to_vec(),
        }];
        assert_eq!(basic_auth_user(&h).as_deref(), Some("alice"));
        let bad = vec![Header {
            name: "authorization".into(),
            value: b"Basic !!!".to_vec(),
        }];
        assert_eq!(basic_auth_user(&bad), None);
    }
}
