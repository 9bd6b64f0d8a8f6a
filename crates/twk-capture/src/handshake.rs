//! The Basic-auth challenge as one handshake, and the lints that catch the mistakes that lose
//! callbacks (issue 6).
//!
//! Bandwidth (and Twilio with credentials in the callback URL) first send a callback without
//! `Authorization`; the receiver must answer 401 **with** `WWW-Authenticate: Basic realm="…"`;
//! the sender then resends the same request with `Authorization: Basic …`. A 401 without the
//! header makes Bandwidth give up: the callback is lost without a trace.
//!
//! # Pairing rule
//! Leg 1 is an exchange that sent no credentials and was answered 401 (with or without a
//! challenge). Leg 2 is an exchange that sent Basic credentials. They pair when they came
//! from the same sender IP (from `remote_addr`), on the same tunnel, with the same method,
//! the same path (and query) and the same request-body SHA-256, and leg 2 was received at
//! most 60 s after leg 1 (`0 ≤ t2 − t1 ≤ 60 000 ms`). A leg 1 pairs with one leg 2 at most:
//! the most recent open leg 1 wins (or, when a leg 2 was stored before its leg 1, the
//! earliest open leg 2). Replays and exchanges without a sender address never pair.
//!
//! Both rows get a [`Handshake`]: `{leg: Leg::Challenge, with: <leg 2 id>}` and `{leg: Leg::Retry, with: <leg 1
//! id>}`. A leg 1 still waiting has `with: None`. A leg 2 candidate that never paired is not
//! part of a handshake (it carries the `preemptive-credentials` lint instead).
//!
//! # Lints
//! See [`LintCode`] for the table. All lints are computed by the store on insert and stored,
//! except `retry-never-came`, which depends on the clock and is computed at read time
//! ([`crate::Store::get`], [`crate::Store::list`], `log`) relative to now. Pairing-dependent
//! lints (`preemptive-credentials`) are recomputed on the partner row when a pairing arrives.

use crate::exchange::{Exchange, ExchangeId, Header};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::fmt;
use std::str::FromStr;

/// Longest gap between leg 1 and leg 2 that still pairs: 60 s.
pub const HANDSHAKE_WINDOW_MS: i64 = 60_000;

/// One of the two legs of a Basic-auth handshake. Shown and exported as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Leg {
    /// Leg 1: the request without credentials, answered 401 with the challenge.
    Challenge,
    /// Leg 2: the retry with credentials.
    Retry,
}

impl Leg {
    /// `1` or `2`.
    pub const fn number(self) -> u8 {
        match self {
            Leg::Challenge => 1,
            Leg::Retry => 2,
        }
    }

    /// The leg for a stored number.
    pub const fn from_number(n: i64) -> Option<Leg> {
        match n {
            1 => Some(Leg::Challenge),
            2 => Some(Leg::Retry),
            _ => None,
        }
    }

    /// The other leg of the pair.
    pub const fn other(self) -> Leg {
        match self {
            Leg::Challenge => Leg::Retry,
            Leg::Retry => Leg::Challenge,
        }
    }
}

impl From<Leg> for u8 {
    fn from(l: Leg) -> u8 {
        l.number()
    }
}

impl TryFrom<u8> for Leg {
    type Error = String;
    fn try_from(n: u8) -> Result<Leg, String> {
        Leg::from_number(i64::from(n)).ok_or_else(|| format!("no handshake leg {n}"))
    }
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// Where an exchange stands in a Basic-auth handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// Which leg this exchange is.
    pub leg: Leg,
    /// The other leg's id; `None` for a leg 1 still waiting for (or never getting) its retry.
    /// May name a row that retention has since removed.
    pub with: Option<ExchangeId>,
}

/// How bad a lint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The callback is (or will be) lost.
    Error,
    /// Probably wrong; check it.
    Warning,
    /// Worth knowing; usually fine.
    Info,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The glyph beside a lint's label: `⚠` for errors and warnings, `i` for info (the same
    /// the inspector shows).
    pub const fn mark(self) -> &'static str {
        match self {
            Severity::Error | Severity::Warning => "⚠",
            Severity::Info => "i",
        }
    }
}

/// The stable code of a lint (its `code` in `log --json`).
///
/// | code | severity | when |
/// |---|---|---|
/// | `401-without-www-authenticate` | error | a 401 response without `WWW-Authenticate` |
/// | `www-authenticate-not-basic` | error | a 401 whose challenges are not Basic |
/// | `credentials-mismatch` | error | credentials twk rejected (`--basic-auth`), or Basic credentials the app answered 401 |
/// | `retry-never-came` | warning | a leg 1 with a Basic challenge and no leg 2 within 60 s (read time) |
/// | `port-not-accepted` | warning | public URL port not 80, 443 or ≥ 1024, on a Bandwidth request or one taking part in a Basic-auth challenge |
/// | `preemptive-credentials` | info | Basic credentials sent with no challenge before (an unpaired leg 2) |
/// | `slow-answer` | warning | the app's answer to a provider's webhook came after the provider stops waiting ([`twk_providers::answer::answer_limit`]; Slack 3 s, Shopify 5 s, GitHub and Bandwidth messaging 10 s, Bandwidth voice, Twilio and Standard Webhooks 15 s) |
/// | `invalid-bxml` | error | the app's answer to a Bandwidth synchronous voice callback is not BXML Bandwidth can run ([`twk_providers::answer`]) |
/// | `invalid-twiml` | error | the app's answer to a Twilio voice or incoming-message webhook is not TwiML Twilio can run |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LintCode {
    /// `401-without-www-authenticate`.
    #[serde(rename = "401-without-www-authenticate")]
    Unauthorized401WithoutChallenge,
    /// `www-authenticate-not-basic`.
    #[serde(rename = "www-authenticate-not-basic")]
    ChallengeNotBasic,
    /// `credentials-mismatch`.
    #[serde(rename = "credentials-mismatch")]
    CredentialsMismatch,
    /// `retry-never-came`.
    #[serde(rename = "retry-never-came")]
    RetryNeverCame,
    /// `port-not-accepted`.
    #[serde(rename = "port-not-accepted")]
    PortNotAccepted,
    /// `preemptive-credentials`.
    #[serde(rename = "preemptive-credentials")]
    PreemptiveCredentials,
    /// `slow-answer`.
    #[serde(rename = "slow-answer")]
    SlowAnswer,
    /// `invalid-bxml`.
    #[serde(rename = "invalid-bxml")]
    InvalidBxml,
    /// `invalid-twiml`.
    #[serde(rename = "invalid-twiml")]
    InvalidTwiml,
}

impl LintCode {
    /// Every code, in display order.
    pub const ALL: [LintCode; 9] = [
        LintCode::Unauthorized401WithoutChallenge,
        LintCode::ChallengeNotBasic,
        LintCode::CredentialsMismatch,
        LintCode::RetryNeverCame,
        LintCode::PortNotAccepted,
        LintCode::PreemptiveCredentials,
        LintCode::SlowAnswer,
        LintCode::InvalidBxml,
        LintCode::InvalidTwiml,
    ];

    /// The stable code text.
    pub const fn as_str(self) -> &'static str {
        match self {
            LintCode::Unauthorized401WithoutChallenge => "401-without-www-authenticate",
            LintCode::ChallengeNotBasic => "www-authenticate-not-basic",
            LintCode::CredentialsMismatch => "credentials-mismatch",
            LintCode::RetryNeverCame => "retry-never-came",
            LintCode::PortNotAccepted => "port-not-accepted",
            LintCode::PreemptiveCredentials => "preemptive-credentials",
            LintCode::SlowAnswer => "slow-answer",
            LintCode::InvalidBxml => "invalid-bxml",
            LintCode::InvalidTwiml => "invalid-twiml",
        }
    }

    /// The severity of this code.
    pub const fn severity(self) -> Severity {
        match self {
            LintCode::Unauthorized401WithoutChallenge
            | LintCode::ChallengeNotBasic
            | LintCode::CredentialsMismatch
            | LintCode::InvalidBxml
            | LintCode::InvalidTwiml => Severity::Error,
            LintCode::RetryNeverCame | LintCode::PortNotAccepted | LintCode::SlowAnswer => {
                Severity::Warning
            }
            LintCode::PreemptiveCredentials => Severity::Info,
        }
    }

    /// A short label (`bare 401`, `mismatch`, …) for a mark beside a one-line row: the
    /// inspector's list and the tunnel's `--no-tui` lines.
    pub const fn label(self) -> &'static str {
        match self {
            LintCode::Unauthorized401WithoutChallenge => "bare 401",
            LintCode::ChallengeNotBasic => "not Basic",
            LintCode::CredentialsMismatch => "mismatch",
            LintCode::RetryNeverCame => "no retry",
            LintCode::PortNotAccepted => "port",
            LintCode::PreemptiveCredentials => "preemptive",
            LintCode::SlowAnswer => "slow",
            LintCode::InvalidBxml => "bad BXML",
            LintCode::InvalidTwiml => "bad TwiML",
        }
    }

    /// Whether the lint is about the answer as a document the provider runs (BXML, TwiML):
    /// its prose belongs beside the response.
    pub const fn about_the_answer_document(self) -> bool {
        matches!(self, LintCode::InvalidBxml | LintCode::InvalidTwiml)
    }

    /// Whether the lint makes a 2xx a failed delivery: the provider cannot use the answer
    /// (TwiML Twilio cannot run). The other error lints come with a 401.
    pub const fn spoils_a_success(self) -> bool {
        matches!(self.severity(), Severity::Error) && self.about_the_answer_document()
    }

    /// Whether the lint depends on the exchange's pairing (recomputed when one arrives).
    const fn pairing_dependent(self) -> bool {
        matches!(self, LintCode::PreemptiveCredentials)
    }
}

impl fmt::Display for LintCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown lint code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown lint code {0:?}; known: 401-without-www-authenticate, www-authenticate-not-basic, credentials-mismatch, retry-never-came, port-not-accepted, preemptive-credentials, slow-answer, invalid-bxml, invalid-twiml"
)]
pub struct UnknownLint(pub String);

impl FromStr for LintCode {
    type Err = UnknownLint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        LintCode::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownLint(s.to_owned()))
    }
}

/// One finding about an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lint {
    /// Stable code.
    pub code: LintCode,
    /// Severity (always `code.severity()`).
    pub severity: Severity,
    /// Plain-words explanation (never contains a password; user names are quoted and
    /// escaped, at most 64 characters).
    pub message: String,
}

impl Lint {
    pub(crate) fn new(code: LintCode, message: String) -> Lint {
        Lint {
            code,
            severity: code.severity(),
            message,
        }
    }

    /// The `retry-never-came` lint (computed at read time).
    pub(crate) fn retry_never_came() -> Lint {
        Lint::new(
            LintCode::RetryNeverCame,
            "the 401 challenge was sent but no retry with credentials came within 60 s: check \
             the credentials configured at the sender (e.g. the Bandwidth application or \
             subscription) and that it can reach this URL"
                .into(),
        )
    }
}

/// A sender that answers a `401` Basic challenge by retrying with credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeSender {
    /// Bandwidth: callbacks with credentials configured on the application.
    Bandwidth,
    /// Twilio: with `user:password@` in the callback URL.
    Twilio,
}

impl ChallengeSender {
    /// The provider's name in prose.
    pub const fn name(self) -> &'static str {
        match self {
            ChallengeSender::Bandwidth => "Bandwidth",
            ChallengeSender::Twilio => "Twilio",
        }
    }

    /// Where this sender keeps the credentials it retries with.
    pub const fn credentials_at(self) -> &'static str {
        match self {
            ChallengeSender::Bandwidth => "the Bandwidth application or subscription",
            ChallengeSender::Twilio => "the user:password@ part of the Twilio callback URL",
        }
    }
}

/// The challenge sender a stored provider name stands for (`None`: senders that do not retry
/// with credentials, or unknown).
pub fn challenge_sender(provider: Option<&str>) -> Option<ChallengeSender> {
    use twk_providers::Provider;
    // Stored names are `Provider::as_str`: compare with those, not with spelled-out ids.
    let provider = provider?;
    [
        (Provider::Bandwidth, ChallengeSender::Bandwidth),
        (Provider::Twilio, ChallengeSender::Twilio),
    ]
    .into_iter()
    .find_map(|(p, sender)| (p.as_str() == provider).then_some(sender))
}

/// The lints of a challenge sender's leg 1: a 401 without a challenge, or not a Basic one,
/// loses the callback.
fn challenge_lints(
    sender: ChallengeSender,
    is_401: bool,
    challenges: &[&[u8]],
    basic_challenge: bool,
) -> Vec<Lint> {
    let name = sender.name();
    let mut out = Vec::new();
    if is_401 && challenges.is_empty() {
        out.push(Lint::new(
            LintCode::Unauthorized401WithoutChallenge,
            format!(
                "401 without a WWW-Authenticate header: {name} sends the credentials from {} \
                 only after a Basic challenge, so it will not retry: this callback is lost. \
                 Answer 401 with `WWW-Authenticate: Basic realm=\"…\"` (or let twk answer the \
                 challenge: --basic-auth user:pass)",
                sender.credentials_at()
            ),
        ));
    }
    if is_401 && !challenges.is_empty() && !basic_challenge {
        let scheme = challenges
            .first()
            .map(|v| first_token(v))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "an unreadable scheme".into());
        out.push(Lint::new(
            LintCode::ChallengeNotBasic,
            format!(
                "the 401 challenges with {scheme} instead of Basic: {name} answers only a \
                 Basic challenge, so it will not retry and the callback is lost"
            ),
        ));
    }
    out
}

/// The role an exchange can play in pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// No credentials, answered 401.
    Leg1,
    /// Sent Basic credentials.
    Leg2,
}

/// What the store derives from one exchange for pairing and lints.
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    /// Pairing role and open-candidate key, when the exchange can pair.
    pub role: Option<(Role, String)>,
    /// For a leg 1 answered with a Basic challenge: when `retry-never-came` starts to apply.
    pub deadline_ms: Option<i64>,
    /// Lints that do not depend on pairing.
    pub lints: Vec<Lint>,
}

/// Analyses an exchange about to be stored. `body_sha256` is the SHA-256 of the complete
/// request body (as stored).
pub(crate) fn analyze(ex: &Exchange, body_sha256: &str) -> Analysis {
    let authz: Vec<&Header> = ex
        .request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("authorization"))
        .collect();
    let header_user = authz.iter().find_map(|h| basic_user(&h.value));
    let header_basic = authz.iter().any(|h| is_basic_scheme(&h.value));
    // `--strip-auth` removes the header before it is captured: twk's own check still knows.
    let auth_checked = ex.auth.as_ref().is_some_and(|a| a.matched.is_some());
    let has_credentials = !authz.is_empty() || auth_checked;
    let basic_credentials = header_basic || ex.auth.as_ref().is_some_and(|a| a.matched.is_some());
    let user = ex
        .auth
        .as_ref()
        .and_then(|a| a.user.clone())
        .or(header_user);
    let challenges: Vec<&[u8]> = ex
        .response
        .iter()
        .flat_map(|m| m.headers.iter())
        .filter(|h| h.name.eq_ignore_ascii_case("www-authenticate"))
        .map(|h| h.value.as_slice())
        .collect();
    let is_401 = ex.status == Some(401);
    let basic_challenge = challenges.iter().any(|v| has_basic_challenge(v));

    let sender = challenge_sender(ex.provider.as_deref());
    let mut lints = Vec::new();
    // The challenge lints are about senders that answer a 401 challenge with credentials; a
    // Stripe or GitHub webhook rejected with 401 is an ordinary refusal.
    if let Some(sender) = sender {
        lints.extend(challenge_lints(
            sender,
            is_401,
            &challenges,
            basic_challenge,
        ));
    }
    let who = match &user {
        Some(u) => format!("user {}, password ********", show_user(u)),
        None => "not a decodable Basic user:password".into(),
    };
    match ex.auth.as_ref().and_then(|a| a.matched) {
        Some(false) => lints.push(Lint::new(
            LintCode::CredentialsMismatch,
            format!(
                "the credentials sent ({who}) do not match the configured --basic-auth; twk \
                 answered 401 again and the callback did not reach the app"
            ),
        )),
        Some(true) => {}
        None if header_basic && is_401 && ex.auth.is_none() => lints.push(Lint::new(
            LintCode::CredentialsMismatch,
            format!(
                "the app answered 401 to the credentials sent ({who}): they do not match what \
                 it expects; check the user and password configured at the sender"
            ),
        )),
        None => {}
    }
    if sender == Some(ChallengeSender::Bandwidth)
        && let Some(port) = public_port(&ex.public_url)
        && !(port == 80 || port == 443 || port >= 1024)
    {
        lints.push(Lint::new(
            LintCode::PortNotAccepted,
            format!(
                "the public URL uses port {port}: Bandwidth sends callbacks only to ports 80, \
                 443 and 1024 or above, so it will not deliver to this URL"
            ),
        ));
    }

    // The provider's own lints read the request: one view serves both, so a body's JSON is
    // parsed once, and only for a provider twk knows (not on other requests).
    if let Some(provider) = ex.known_provider() {
        let req = ex.request_view(&ex.request.body.bytes);
        lints.extend(crate::answer_time::slow_answer(ex, provider, &req));
        lints.extend(crate::answer_markup::invalid_answer(ex, provider, &req));
    }

    let pairable = ex.replay_of.is_none() && ex.remote_addr.is_some();
    // A leg 1 is a 401 to a sender that answers challenges, or (sender unknown) a 401 with a
    // Basic challenge that any HTTP client could answer; a known webhook sender that never
    // retries with credentials (Stripe, GitHub, …) has no leg 1.
    let may_retry = sender.is_some() || (ex.provider.is_none() && basic_challenge);
    let role = if !pairable {
        None
    } else if !has_credentials && is_401 && may_retry {
        Some(Role::Leg1)
    } else if basic_credentials {
        Some(Role::Leg2)
    } else {
        None
    };
    let role = role.map(|r| (r, pair_key(r, ex, body_sha256)));
    // "The retry never came" is only news for a sender known to retry.
    let deadline_ms = match role {
        Some((Role::Leg1, _)) if basic_challenge && sender.is_some() => {
            Some(ex.timings.received_ms.saturating_add(HANDSHAKE_WINDOW_MS))
        }
        _ => None,
    };
    Analysis {
        role,
        deadline_ms,
        lints,
    }
}

/// The lints an exchange has on its own, before it is stored, most severe first: those that
/// need other exchanges (`preemptive-credentials`, which depends on pairing) or the clock
/// (`retry-never-came`) are left to the store. The same rules the store applies on insert,
/// for output that cannot wait for the store (the tunnel's `--no-tui` lines).
pub fn lints_of(ex: &Exchange) -> Vec<Lint> {
    // The body hash only keys pairing; no lint reads it.
    let mut lints = analyze(ex, "").lints;
    lints.sort_by_key(|l| l.code);
    lints
}

/// The lints of a row given its stored (pairing-independent plus pairing-dependent) lints
/// and its current pairing: pairing-dependent lints are recomputed.
pub(crate) fn with_pairing(mut lints: Vec<Lint>, open_leg2: bool) -> Vec<Lint> {
    lints.retain(|l| !l.code.pairing_dependent());
    if open_leg2 {
        lints.push(Lint::new(
            LintCode::PreemptiveCredentials,
            "Basic credentials were sent without a prior 401 challenge (no unauthenticated \
             first leg from this sender in the 60 s before): fine for most senders, but \
             Bandwidth always waits for the challenge first"
                .into(),
        ));
    }
    lints.sort_by_key(|l| l.code);
    lints
}

/// The open-candidate key of a role: the role (`1`/`2`) and a hash of tunnel, method, path,
/// body hash and sender IP. The other role's key for the same request is `partner_key`.
fn pair_key(role: Role, ex: &Exchange, body_sha256: &str) -> String {
    let ip = sender_ip(ex.remote_addr.as_deref().unwrap_or_default());
    let mut h = sha2::Sha256::new();
    for part in [
        ex.tunnel.as_bytes(),
        ex.method.as_bytes(),
        ex.path.as_bytes(),
        body_sha256.as_bytes(),
        ip.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let digest = crate::exchange::lower_hex(&h.finalize());
    let tag = match role {
        Role::Leg1 => '1',
        Role::Leg2 => '2',
    };
    format!("{tag}{}", digest.get(..32).unwrap_or(&digest))
}

/// The key under which the partner of `key` waits (same hash, other role).
pub(crate) fn partner_key(key: &str) -> String {
    match key.split_at_checked(1) {
        Some(("1", rest)) => format!("2{rest}"),
        Some(("2", rest)) => format!("1{rest}"),
        _ => String::new(),
    }
}

/// The IP of `ip:port` (`[v6]:port` too); the text itself when it does not parse.
fn sender_ip(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => addr.to_owned(),
    }
}

/// Whether an `Authorization` value uses the Basic scheme.
fn is_basic_scheme(value: &[u8]) -> bool {
    let t = value.trim_ascii_start();
    t.len() >= 5
        && t.get(..5).is_some_and(|s| s.eq_ignore_ascii_case(b"basic"))
        && t.get(5).is_none_or(|c| c.is_ascii_whitespace())
}

/// The user of `Basic base64(user:pass)`; the password is dropped at once.
fn basic_user(value: &[u8]) -> Option<String> {
    twk_providers::decode_basic(value).map(|(user, _)| user)
}

/// Whether a `WWW-Authenticate` value holds a Basic challenge (RFC 7235 allows several
/// challenges per value, separated by commas, and several values).
fn has_basic_challenge(value: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(value) else {
        return false;
    };
    s.split(',').any(|piece| {
        let p = piece.trim_start();
        let tok: String = p.chars().take_while(|c| is_token_char(*c)).collect();
        tok.eq_ignore_ascii_case("basic")
            && !p.get(tok.len()..).unwrap_or_default().starts_with('=')
    })
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The leading auth-scheme token of a challenge, limited to token characters (safe to show)
/// and 32 characters.
fn first_token(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_start()
        .chars()
        .take_while(|c| is_token_char(*c))
        .take(32)
        .collect()
}

/// A user name for a message: escaped (no control or format characters reach a terminal)
/// and clipped to 64 characters.
fn show_user(u: &str) -> String {
    twk_sanitize::quoted(u, 64)
}

/// The port of a public URL: explicit, else 80 for `http`/`ws` and 443 for `https`/`wss`.
/// `None` when the URL cannot be read.
pub fn public_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let explicit = match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1.strip_prefix(':'),
        None => hostport.rsplit_once(':').map(|(_, p)| p),
    };
    match explicit {
        Some(p) if !p.is_empty() => p.parse().ok(),
        _ => match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(public_port("https://a.example/x"), Some(443));
        assert_eq!(public_port("http://a.example?x"), Some(80));
        assert_eq!(public_port("http://a.example:8080/x"), Some(8080));
        assert_eq!(public_port("https://u:p@a.example:444/x"), Some(444));
        assert_eq!(public_port("http://[::1]:81/"), Some(81));
        assert_eq!(public_port("http://[::1]/"), Some(80));
        assert_eq!(public_port("http://a.example:/"), Some(80));
        assert_eq!(public_port("http://a.example:99999/"), None);
        assert_eq!(public_port("nonsense"), None);
        assert_eq!(public_port("ftp://a.example/"), None);
    }

    #[test]
    fn challenges() {
        assert!(has_basic_challenge(b"Basic realm=\"x\""));
        assert!(has_basic_challenge(b"basic"));
        assert!(has_basic_challenge(
            b"Digest realm=\"a\", nonce=\"b\", Basic realm=\"c\""
        ));
        assert!(!has_basic_challenge(b"Bearer realm=\"basic\""));
        assert!(!has_basic_challenge(b"Digest realm=\"x\", basic=1"));
        assert!(!has_basic_challenge(b"Basically"));
        assert!(!has_basic_challenge(b"\xff"));
        assert_eq!(first_token(b"Bearer\x1b[31m realm"), "Bearer");
        assert!(is_basic_scheme(b"Basic abc"));
        assert!(is_basic_scheme(b"basic"));
        assert!(!is_basic_scheme(b"Basically x"));
        assert!(!is_basic_scheme(b"Bearer x"));
    }

    #[test]
    fn codes_round_trip() {
        for c in LintCode::ALL {
            assert_eq!(c.as_str().parse::<LintCode>(), Ok(c));
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::Value::String(c.as_str().into()))
            );
        }
        assert!("nope".parse::<LintCode>().is_err());
        assert!("a,b".parse::<LintCode>().is_err());
    }

    #[test]
    fn user_names_are_escaped_and_clipped() {
        assert_eq!(show_user("bob"), "\"bob\"");
        assert_eq!(show_user("a\"\x1b[2J"), "\"a\\\"\\u{1b}[2J\"");
        assert_eq!(show_user(&"x".repeat(100)).chars().count(), 64 + 3);
        assert_eq!(partner_key("1abc"), "2abc");
        assert_eq!(partner_key("2abc"), "1abc");
        assert_eq!(partner_key(""), "");
    }
}
