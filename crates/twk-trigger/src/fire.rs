//! Fires one drafted webhook the way its provider's sender would: signs each attempt afresh
//! (new timestamp, same event id), answers a Basic challenge, applies the deadline, and
//! retries on the provider's schedule — compressed by `retry_speed`, or, without it,
//! stops at the first retry and says when the provider would make it.

use crate::TriggerError;
use crate::draft::Draft;
use crate::http::{Destination, Reply, attempt};
use crate::sender::{Answer, Next, RetryReason, Sender, human};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Full;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twk_providers::{Provider, RequestView, Secret, SignOptions, sign_with_secret};

/// How to fire.
#[derive(Debug, Clone)]
pub struct FireOptions {
    /// Destination URL (a tunnel's public URL and path, or the app itself).
    pub url: String,
    /// The provider secret to sign with (Bandwidth: `user:password`, sent after a
    /// challenge; `None` there means the application has no credentials).
    pub secret: Option<Secret>,
    /// Behave like the provider's sender (challenge, deadline, retries). Off: one signed
    /// request with any credentials sent up front, and a 30 s deadline.
    pub sender_behaviour: bool,
    /// Run the retry schedule this many times faster (3600: a day in 24 s). `None`: stop at
    /// the first retry and report when it would come.
    pub retry_speed: Option<f64>,
    /// Override the sender's deadline.
    pub deadline: Option<Duration>,
    /// Extra trusted certificates (PEM) for an `https://` destination.
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// Which leg of a delivery an attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// A plain delivery.
    Plain,
    /// The first leg of a Basic-auth sender: no credentials.
    Unauthenticated,
    /// The leg after a challenge, with credentials.
    WithCredentials,
}

impl Leg {
    /// `plain`, `unauthenticated`, `with_credentials`.
    pub fn as_str(self) -> &'static str {
        match self {
            Leg::Plain => "plain",
            Leg::Unauthenticated => "unauthenticated",
            Leg::WithCredentials => "with_credentials",
        }
    }
}

/// How the delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// A 2xx.
    Delivered,
    /// Not yet: the provider retries after `after` (not waited for without `retry_speed`).
    WillRetry {
        /// On the provider's clock.
        after: Duration,
    },
    /// The provider gives up.
    Lost {
        /// In its terms.
        why: String,
    },
}

impl Fate {
    /// `delivered`, `will_retry`, `lost`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Fate::Delivered => "delivered",
            Fate::WillRetry { .. } => "will_retry",
            Fate::Lost { .. } => "lost",
        }
    }
}

/// One attempt, as `trigger` prints it.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// 1-based; the credentials leg of a challenge shares its number.
    pub n: u32,
    /// Which leg.
    pub leg: Leg,
    /// When it was sent, Unix ms.
    pub sent_unix_ms: u64,
    /// The URL it went to (Twilio JSON adds `bodySHA256`).
    pub url: String,
    /// What came back.
    pub reply: Reply,
    /// What the provider does next.
    pub next: Next,
    /// The deadline that applied.
    pub deadline: Duration,
    /// The sender's own words for what happened.
    pub says: String,
    /// How the delivery ended, when this attempt ended it.
    pub fate: Option<Fate>,
    /// What the provider could not run in a 2xx answer to a callback whose answer it runs
    /// (BXML, TwiML): empty when it can, or when it does not run the answer.
    pub answer_problems: Vec<String>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Fires `draft`; `report` is called after every attempt, in order.
pub async fn fire(
    draft: &Draft,
    opts: &FireOptions,
    mut report: impl FnMut(&AttemptReport),
) -> Result<Fate, TriggerError> {
    let sender = Sender::for_draft(draft);
    let expected = answer_check(draft, &opts.url)?;
    let dest = Destination::parse(&opts.url)?;
    let tls = match dest.tls {
        true => Some(
            twk_transport::tls::client_config(opts.extra_ca_pem.as_deref())
                .map_err(|e| TriggerError::Tls(e.to_string()))?,
        ),
        false => None,
    };
    let deadline = opts.deadline.unwrap_or(if opts.sender_behaviour {
        sender.deadline
    } else {
        Duration::from_secs(30)
    });
    let credentials = credentials(draft.provider, &dest, opts.secret.as_ref());
    // Bandwidth always opens without credentials (and learns from the answer whether the
    // app wants them); Twilio only when its URL carries them.
    let challenges = opts.sender_behaviour
        && sender.challenge
        && (draft.provider == Provider::Bandwidth || credentials.is_some());
    let first_leg = if challenges {
        Leg::Unauthenticated
    } else {
        Leg::Plain
    };
    let mut clock = SenderClock::start();
    let (mut n, mut leg, mut retry) = (1u32, first_leg, None);
    loop {
        let auth = match leg {
            Leg::Unauthenticated => None,
            Leg::Plain | Leg::WithCredentials => credentials.clone(),
        };
        let (request, url) = signed_request(draft, opts, &dest, auth, n, retry)?;
        let sent_unix_ms = unix_ms();
        let reply = attempt(&dest, tls.as_ref(), request, deadline).await;
        let challenged = leg == Leg::WithCredentials;
        let mut next = match opts.sender_behaviour {
            true => sender.decide(n, clock.elapsed(), &reply.answer, challenged),
            false => plain_next(&reply.answer),
        };
        if next == Next::Challenge && credentials.is_none() {
            next = Next::GivesUp {
                why: format!(
                    "the app asked for credentials and this {} application has none (set \
                     `--secret bandwidth=user:password`): this callback is lost",
                    sender.name()
                ),
            };
        }
        let step = step(&next, opts.retry_speed);
        let answer_problems = match next {
            Next::Delivered => expected
                .as_ref()
                .map(|e| answer_problems(draft.provider, e, &reply))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut says = says(&sender, &reply, &next, &step, deadline);
        if let Some(first) = answer_problems.first() {
            says = format!("{says}, but {first}");
        }
        report(&AttemptReport {
            n,
            leg,
            sent_unix_ms,
            url,
            reply,
            next,
            deadline,
            says,
            fate: match &step {
                Step::End(f) => Some(f.clone()),
                Step::Challenge | Step::Wait(..) => None,
            },
            answer_problems,
        });
        match step {
            Step::End(fate) => return Ok(fate),
            Step::Challenge => leg = Leg::WithCredentials,
            Step::Wait(after, reason) => {
                clock.wait(after, opts.retry_speed.unwrap_or(1.0)).await;
                (n, leg, retry) = (n + 1, first_leg, Some(reason));
            }
        }
    }
}

/// What the provider needs of a 2xx answer to `draft`, besides its status.
enum AnswerCheck {
    /// A document it runs (a call's or an incoming message's webhook).
    Document(twk_providers::answer::Expected),
    /// Slack's Request URL check: its challenge given back.
    SlackChallenge(String),
}

/// The check of `draft`'s answer, when the provider reads it: the same for every attempt.
fn answer_check(draft: &Draft, url: &str) -> Result<Option<AnswerCheck>, TriggerError> {
    let body = draft.body_bytes()?;
    let view = RequestView::with_headers(draft.method, url, draft.header_pairs(), &body);
    if draft.provider == Provider::Slack {
        let challenge = twk_providers::answer::url_verification_challenge(&view);
        return Ok(challenge.map(AnswerCheck::SlackChallenge));
    }
    Ok(twk_providers::answer::expected_answer(draft.provider, &view).map(AnswerCheck::Document))
}

/// What `provider` would not be able to use in `reply`, a 2xx answer, as sentences: the first
/// says who and what, the rest are the other problems.
fn answer_problems(provider: Provider, check: &AnswerCheck, reply: &Reply) -> Vec<String> {
    let Answer::Status { code, .. } = reply.answer else {
        return Vec::new();
    };
    let answer = twk_providers::answer::Answer {
        status: code,
        content_type: reply.content_type.as_deref(),
        body: &reply.body,
        len: reply.body_len,
    };
    let expected = match check {
        AnswerCheck::Document(e) => *e,
        AnswerCheck::SlackChallenge(c) => {
            return twk_providers::answer::challenge_problem(c, &answer)
                .into_iter()
                .collect();
        }
    };
    let problems = twk_providers::answer::check(expected, &answer);
    let Some((first, rest)) = problems.split_first() else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "{} cannot run the answer as {}: {first}",
        provider.display_name(),
        expected.markup()
    )];
    out.extend(rest.iter().map(ToString::to_string));
    out
}

/// The time the provider has spent on a delivery: the attempts as they ran, and each wait
/// for a retry at the provider's length however much `retry_speed` shortened it here (so a
/// horizon such as Bandwidth's 24 h ends after 24 s at 3600, not never).
struct SenderClock {
    started: Instant,
    /// Real time spent waiting, and the provider's time those waits stand for.
    slept: Duration,
    stands_for: Duration,
}

impl SenderClock {
    fn start() -> SenderClock {
        SenderClock {
            started: Instant::now(),
            slept: Duration::ZERO,
            stands_for: Duration::ZERO,
        }
    }

    fn elapsed(&self) -> Duration {
        let attempts = self.started.elapsed().saturating_sub(self.slept);
        attempts.saturating_add(self.stands_for)
    }

    /// Waits for a retry `after` from now in the provider's time, `speed` times faster.
    async fn wait(&mut self, after: Duration, speed: f64) {
        let real = Instant::now();
        tokio::time::sleep(after.div_f64(speed)).await;
        self.slept = self.slept.saturating_add(real.elapsed());
        self.stands_for = self.stands_for.saturating_add(after);
    }
}

/// What the loop does after an attempt.
enum Step {
    End(Fate),
    Challenge,
    Wait(Duration, RetryReason),
}

/// Ends the delivery, answers a challenge, or waits for a retry: a retry the provider
/// makes later is only waited for with `retry_speed` (one it makes at once always is).
fn step(next: &Next, retry_speed: Option<f64>) -> Step {
    match next {
        Next::Delivered => Step::End(Fate::Delivered),
        Next::GivesUp { why } => Step::End(Fate::Lost { why: why.clone() }),
        Next::Challenge => Step::Challenge,
        Next::Retry { after, .. } if retry_speed.is_none() && !after.is_zero() => {
            Step::End(Fate::WillRetry { after: *after })
        }
        Next::Retry { after, reason } => Step::Wait(*after, *reason),
    }
}

/// Without sender behaviour: a 2xx is delivered, anything else is not, and nothing is
/// retried.
fn plain_next(answer: &Answer) -> Next {
    match answer {
        Answer::Status { code, .. } if (200..300).contains(code) => Next::Delivered,
        Answer::Status { code, .. } => Next::GivesUp {
            why: format!("the app answered {code} (sent once: --no-sender-behaviour)"),
        },
        Answer::TimedOut => Next::GivesUp {
            why: "no answer before the deadline (sent once: --no-sender-behaviour)".to_owned(),
        },
        Answer::ConnectFailed(e) => Next::GivesUp { why: e.clone() },
    }
}

/// What the provider would make of this attempt, in a sentence.
fn says(sender: &Sender, reply: &Reply, next: &Next, step: &Step, deadline: Duration) -> String {
    let name = sender.name();
    let what = match &reply.answer {
        Answer::TimedOut => Some(format!(
            "no answer within {name}'s {} s deadline: the provider would have given up on this attempt",
            deadline.as_secs_f64()
        )),
        Answer::ConnectFailed(e) => Some(e.clone()),
        // The status is printed beside it.
        Answer::Status { .. } => None,
    };
    let then = match (next, step) {
        (Next::Delivered, _) => "delivered".to_owned(),
        (Next::Challenge, _) => {
            format!("401 with WWW-Authenticate: {name} sends it again with credentials")
        }
        // Each reason names the provider already.
        (Next::GivesUp { why }, _) => why.clone(),
        (Next::Retry { after, .. }, Step::End(_)) => {
            format!(
                "{name} will retry in {} (--retry-speed to wait for it)",
                human(*after)
            )
        }
        (Next::Retry { after, .. }, _) => format!("{name} retries {}", retry_when(*after)),
    };
    match what {
        Some(what) => format!("{what} — {then}"),
        None => then,
    }
}

fn retry_when(after: Duration) -> String {
    match human(after).as_str() {
        "at once" => "at once".to_owned(),
        h => format!("in {h}"),
    }
}

/// The `Authorization` value a credentials leg carries: Bandwidth's `user:password`, or the
/// userinfo of a Twilio URL.
fn credentials(provider: Provider, dest: &Destination, secret: Option<&Secret>) -> Option<String> {
    let basic = |userinfo: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(userinfo)
        )
    };
    match provider {
        Provider::Bandwidth => secret.and_then(Secret::expose_str).map(basic),
        Provider::Twilio => dest.userinfo.as_deref().map(|u| {
            let decoded = u
                .split(':')
                .map(|part| percent_encoding::percent_decode_str(part).decode_utf8_lossy())
                .collect::<Vec<_>>()
                .join(":");
            basic(&decoded)
        }),
        _ => None,
    }
}

/// The request of attempt `n`, signed now.
fn signed_request(
    draft: &Draft,
    opts: &FireOptions,
    dest: &Destination,
    authorization: Option<String>,
    n: u32,
    retry: Option<RetryReason>,
) -> Result<(Request<Full<Bytes>>, String), TriggerError> {
    let mut url = opts.url.clone();
    let mut body = draft.body_bytes()?;
    let mut headers = draft.headers.clone();
    if draft.provider == Provider::Slack && n > 1 {
        headers.push(("X-Slack-Retry-Num".to_owned(), (n - 1).to_string()));
        let reason = retry.map_or("unknown_error", RetryReason::as_str);
        headers.push(("X-Slack-Retry-Reason".to_owned(), reason.to_owned()));
    }
    if draft.provider != Provider::Bandwidth {
        let secret = opts
            .secret
            .as_ref()
            .ok_or(TriggerError::NoSecret(draft.provider))?;
        let now = i64::try_from(unix_ms() / 1000).unwrap_or(i64::MAX);
        let sign_opts = SignOptions {
            timestamp: Some(now),
            id: matches!(draft.provider, Provider::StandardWebhooks | Provider::Svix)
                .then(|| draft.id.clone()),
        };
        let view = RequestView::with_headers(
            draft.method,
            &url,
            headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .collect(),
            &body,
        );
        let signed = sign_with_secret(draft.provider, &view, secret, &sign_opts)
            .map_err(|e| TriggerError::Sign(e.to_string()))?;
        for (k, v) in signed.headers {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
            headers.push((k, v));
        }
        if let Some(u) = signed.url {
            url = u;
        }
        if let Some(b) = signed.body {
            body = b;
        }
    }
    let path = Destination::parse(&url)?.path_and_query;
    let mut builder = Request::builder()
        .method(draft.method)
        .uri(path)
        .header(http::header::HOST, &dest.authority);
    for (k, v) in &headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| TriggerError::Encode(format!("bad header name {k:?}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| TriggerError::Encode(format!("bad value for header {k}")))?;
        builder = builder.header(name, value);
    }
    if let Some(a) = authorization {
        let value = HeaderValue::from_str(&a)
            .map_err(|_| TriggerError::Encode("bad credentials".to_owned()))?;
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| TriggerError::Encode(e.to_string()))?;
    Ok((request, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twilio_urls_userinfo_is_percent_decoded_into_basic_credentials() {
        let dest = Destination::parse("https://us%40er:p%3As+s@app.example/hook").expect("url");
        let header = credentials(Provider::Twilio, &dest, None).expect("credentials");
        let b64 = header.strip_prefix("Basic ").expect("basic");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        // `+` is not a space in a URL's userinfo (only in form bodies).
        assert_eq!(decoded, b"us@er:p:s+s");
        assert!(credentials(Provider::Stripe, &dest, None).is_none());
    }
}
