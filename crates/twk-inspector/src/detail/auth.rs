//! The Auth tab: the Basic-auth challenge handshake as a timeline of its two legs, what the
//! credentials were checked against, and the lints of both legs.

use crate::sanitize::{clean_line, clean_lines};
use crate::style::{
    bold, clock, dim, key, kv, lint_style, millis, prose_width, section, severity_mark,
    status_span, wrap,
};
use base64::Engine as _;
use jiff::tz::TimeZone;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use twk_capture::{Handshake, Header, Leg, Lint, LintCode, StoredExchange, challenge_sender};

/// The Basic-auth user of an `Authorization: Basic …` header (password never returned).
pub(crate) fn basic_auth_user(headers: &[Header]) -> Option<String> {
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

/// An indented `label  value` line of a leg.
fn leg_kv(label: &str, value: Vec<Span<'static>>) -> Line<'static> {
    let mut spans = vec![Span::styled(format!("      {label:<13}"), key())];
    spans.extend(value);
    Line::from(spans)
}

/// The sender in prose ("Bandwidth", "Twilio"; "the sender" when it is not one that answers
/// challenges).
fn sender(st: &StoredExchange) -> &'static str {
    challenge_sender(st.exchange.provider.as_deref()).map_or("the sender", |s| s.name())
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
        Span::raw(clean_line(
            &twk_capture::redact::redact_query(&ex.path, false),
            200,
        )),
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
        // Lost only for a sender that waits for the challenge; otherwise a plain refusal.
        let (text, style) = if has_lint(st, LintCode::Unauthorized401WithoutChallenge) {
            (
                format!(
                    "no WWW-Authenticate: {} will not retry — this callback is lost",
                    sender(st)
                ),
                lost,
            )
        } else {
            (
                "none (a plain refusal: this sender does not retry with credentials)".to_owned(),
                dim(),
            )
        };
        out.push(leg_kv("challenge", vec![Span::styled(text, style)]));
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
                format!(
                    "not a Basic challenge: {} will not retry — this callback is lost",
                    sender(st)
                ),
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

/// The stored lints `which` picks, as a `Lints` block; nothing when it picks none (a tab
/// that shows some of an exchange's lints says nothing of the others).
pub(super) fn lints_block(
    stored: &StoredExchange,
    which: impl Fn(LintCode) -> bool,
    pane: u16,
) -> Vec<Line<'static>> {
    let picked: Vec<Lint> = stored
        .lints
        .iter()
        .flatten()
        .filter(|l| which(l.code))
        .cloned()
        .collect();
    if picked.is_empty() {
        return Vec::new();
    }
    lint_lines("Lints", &picked, pane)
}

pub(super) fn lint_lines(title: &str, lints: &[Lint], pane: u16) -> Vec<Line<'static>> {
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
                .flat_map(|m| wrap(m, prose_width(pane, 6)))
                .map(|m| Line::raw(format!("      {m}"))),
        );
    }
    out
}

/// The Auth tab, its lints' prose wrapped to fit a pane `pane` columns wide.
pub(super) fn auth_tab(
    stored: &StoredExchange,
    partner: Option<&StoredExchange>,
    tz: &TimeZone,
    pane: u16,
) -> Vec<Line<'static>> {
    let mut out = match stored.handshake {
        Some(h) => handshake_lines(stored, partner, h, tz),
        None => lone_lines(stored, tz),
    };
    out.push(Line::raw(""));
    out.extend(lint_lines(
        "Lints",
        stored.lints.as_deref().unwrap_or_default(),
        pane,
    ));
    if let (Some(p), Some(h)) = (partner, stored.handshake)
        && let Some(l) = p.lints.as_deref()
    {
        out.push(Line::raw(""));
        out.extend(lint_lines(
            &format!("Lints of leg {} (#{})", h.leg.other(), p.id()),
            l,
            pane,
        ));
    }
    out
}

fn lost() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

fn waiting() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

/// Both legs of a handshake (or what is left of them) as a timeline.
fn handshake_lines(
    stored: &StoredExchange,
    partner: Option<&StoredExchange>,
    h: Handshake,
    tz: &TimeZone,
) -> Vec<Line<'static>> {
    let (leg1, leg2) = if h.leg == Leg::Challenge {
        (Some(stored), partner)
    } else {
        (partner, Some(stored))
    };
    let (words, style) = handshake_summary(stored, h, leg1, leg2);
    let mut out = vec![
        Line::from(vec![
            Span::styled("🔒 Basic-auth handshake: ", bold()),
            Span::styled(words, style),
        ]),
        Line::styled(
            format!("this exchange (#{}) is leg {}", stored.id(), h.leg),
            dim(),
        ),
        Line::raw(""),
    ];
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
                millis(b.exchange.timings.received_ms - a.exchange.timings.received_ms)
            ),
            dim(),
        ));
    }
    match leg2 {
        Some(l) => out.extend(leg2_lines("leg 2", l, tz)),
        None => {
            let (text, style) = missing_leg2(stored, h);
            out.push(Line::from(vec![
                Span::styled("leg 2 ", waiting()),
                Span::styled(text, style),
            ]));
        }
    }
    out
}

/// The handshake's state in a few words for the tab's first line.
fn handshake_summary(
    stored: &StoredExchange,
    h: Handshake,
    leg1: Option<&StoredExchange>,
    leg2: Option<&StoredExchange>,
) -> (String, Style) {
    match (leg1, leg2) {
        (Some(a), Some(b)) => (
            format!(
                "two legs, retried {} after the challenge",
                millis(b.exchange.timings.received_ms - a.exchange.timings.received_ms)
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
            lost(),
        ),
        _ if has_lint(stored, LintCode::ChallengeNotBasic) => (
            format!(
                "leg 1 only: the challenge is not Basic, so {} will not retry",
                sender(stored)
            ),
            lost(),
        ),
        _ if has_lint(stored, LintCode::RetryNeverCame) => {
            ("leg 1 only: the retry never came".to_owned(), waiting())
        }
        _ => (
            "leg 1 only so far: waiting for the retry".to_owned(),
            Style::new().fg(Color::Cyan),
        ),
    }
}

/// Why leg 2 is not shown: gone, never coming (the lint says why), or not yet.
fn missing_leg2(stored: &StoredExchange, h: Handshake) -> (String, Style) {
    if h.with.is_some() {
        (
            format!("#{} (no longer stored)", h.with.unwrap_or_default()),
            dim(),
        )
    } else if has_lint(stored, LintCode::Unauthorized401WithoutChallenge) {
        (
            format!(
                "none: without WWW-Authenticate {} will not retry — this callback is lost",
                sender(stored)
            ),
            lost(),
        )
    } else if has_lint(stored, LintCode::ChallengeNotBasic) {
        (
            format!(
                "none: {} answers only a Basic challenge — this callback is lost",
                sender(stored)
            ),
            lost(),
        )
    } else if has_lint(stored, LintCode::RetryNeverCame) {
        (
            "never came: no retry with credentials within 60 s of leg 1".to_owned(),
            waiting(),
        )
    } else {
        (
            "not yet: the sender has 60 s to retry with credentials".to_owned(),
            Style::new().fg(Color::Cyan),
        )
    }
}

/// An exchange outside any handshake: credentials sent up front, or none at all.
fn lone_lines(stored: &StoredExchange, tz: &TimeZone) -> Vec<Line<'static>> {
    let ex = &stored.exchange;
    let credentials = ex
        .request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("authorization"))
        || ex.auth.as_ref().is_some_and(|a| a.matched.is_some());
    let mut out = Vec::new();
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
