//! What each provider's sender does with an answer: its deadline, the Basic-auth challenge,
//! and whether, when and how often it retries. Sans-IO: [`Sender::decide`] maps one
//! attempt's result to what the provider does next; `fire` carries it out.
//!
//! Sources: `../shared/reference/providers.md` and the seeds. Where a provider does not
//! publish a figure (marked *approximate* in docs/trigger.md) the value is the one its users
//! report.

use crate::draft::Draft;
use std::time::Duration;
use twk_providers::Provider;

const MIN: u64 = 60;
const HOUR: u64 = 3600;

/// Which failures a provider retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// Any answer outside 2xx, a timeout, a failed connection.
    AnyFailure,
    /// Only a failed connection or a timeout (Twilio's default `rp=ct,rt`).
    ConnectOrTimeout,
}

/// A provider's retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// It sends once; `why` says so in the provider's terms.
    Never {
        /// What the provider does instead.
        why: &'static str,
    },
    /// Retries after these delays, each counted from the previous attempt.
    Schedule {
        /// Seconds before each retry.
        delays: &'static [u64],
        /// Which failures.
        on: RetryOn,
    },
    /// Doubling delays from `first` up to `cap`, until `horizon` after the first attempt.
    Backoff {
        /// First delay, seconds.
        first: u64,
        /// Longest delay, seconds.
        cap: u64,
        /// How long after the first attempt it keeps trying, seconds.
        horizon: u64,
        /// Which failures.
        on: RetryOn,
    },
}

/// How one attempt ended, as the sender saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A response head arrived (and its body, within the deadline).
    Status {
        /// Status code.
        code: u16,
        /// The `WWW-Authenticate` header of a 401, if any.
        www_authenticate: Option<String>,
        /// Slack's `X-Slack-No-Retry: 1`.
        no_retry: bool,
    },
    /// No complete answer before the sender's deadline.
    TimedOut,
    /// The connection could not be made or broke before an answer.
    ConnectFailed(String),
}

impl Answer {
    fn is_success(&self) -> bool {
        matches!(self, Answer::Status { code, .. } if (200..300).contains(code))
    }

    fn is_connect_or_timeout(&self) -> bool {
        matches!(self, Answer::TimedOut | Answer::ConnectFailed(_))
    }
}

/// Why a retry happens, in Slack's `X-Slack-Retry-Reason` vocabulary (also shown for the
/// others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The deadline passed.
    HttpTimeout,
    /// An answer outside 2xx.
    HttpError,
    /// No connection.
    ConnectionFailed,
}

impl RetryReason {
    /// Slack's header value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::HttpTimeout => "http_timeout",
            RetryReason::HttpError => "http_error",
            RetryReason::ConnectionFailed => "connection_failed",
        }
    }
}

/// What the provider does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A 2xx: done.
    Delivered,
    /// A 401 with `WWW-Authenticate: Basic`: the same request again at once, with
    /// credentials.
    Challenge,
    /// Sends again after `after`.
    Retry {
        /// Delay on the provider's clock.
        after: Duration,
        /// Why.
        reason: RetryReason,
    },
    /// Gives up: the webhook is not delivered and will not be.
    GivesUp {
        /// In the provider's terms.
        why: String,
    },
}

/// One provider's sender.
#[derive(Debug, Clone)]
pub struct Sender {
    /// Whose.
    pub provider: Provider,
    /// How long it waits for a complete answer.
    pub deadline: Duration,
    /// Whether it answers a 401 + `WWW-Authenticate: Basic` by re-sending with credentials.
    pub challenge: bool,
    /// Its retries.
    pub retry: Retry,
}

impl Sender {
    /// The sender of `draft`: some policies depend on the webhook (a Bandwidth 2FA
    /// callback's platform, a Stripe event's `livemode`).
    pub fn for_draft(draft: &Draft) -> Sender {
        let s = |deadline: u64, challenge: bool, retry: Retry| Sender {
            provider: draft.provider,
            deadline: Duration::from_secs(deadline),
            challenge,
            retry,
        };
        let bandwidth_voice = draft.field("eventType");
        match draft.provider {
            // Voice callbacks wait callbackTimeout (15 s unless set) and are not resent for
            // 24 h like messaging ones (`voice/webhooks/about.mdx`).
            Provider::Bandwidth if let Some(event) = bandwidth_voice => s(
                15,
                true,
                Retry::Never {
                    why: if twk_providers::answer::bandwidth_sync(&event).is_some() {
                        "Bandwidth does not resend a synchronous voice callback: it tries the \
                         fallback URL, or fails the call"
                    } else {
                        "Bandwidth resends an asynchronous voice callback once, and only after \
                         a failed connection"
                    },
                },
            ),
            Provider::Bandwidth if draft.field("platform").as_deref() == Some("GlobalSMS") => s(
                10,
                true,
                Retry::Never {
                    why: "Bandwidth does not retry international 2FA callbacks",
                },
            ),
            Provider::Bandwidth => s(10, true, BANDWIDTH_24H),
            Provider::Twilio => s(
                15,
                true,
                Retry::Schedule {
                    delays: &[0],
                    on: RetryOn::ConnectOrTimeout,
                },
            ),
            Provider::AuthyWebhook | Provider::AuthyOnetouch => s(
                15,
                false,
                Retry::Never {
                    why: "Authy does not document retries; twk sends once",
                },
            ),
            Provider::Stripe if draft.field("livemode").as_deref() == Some("true") => s(
                30,
                false,
                Retry::Schedule {
                    delays: &[
                        5 * MIN,
                        25 * MIN,
                        90 * MIN,
                        2 * HOUR,
                        4 * HOUR,
                        8 * HOUR,
                        24 * HOUR,
                        24 * HOUR,
                        24 * HOUR,
                    ],
                    on: RetryOn::AnyFailure,
                },
            ),
            Provider::Stripe => s(
                30,
                false,
                Retry::Schedule {
                    delays: &[HOUR, 2 * HOUR, 3 * HOUR],
                    on: RetryOn::AnyFailure,
                },
            ),
            Provider::Github => s(
                10,
                false,
                Retry::Never {
                    why: "GitHub does not redeliver by itself: redeliver it from the webhook's Recent Deliveries",
                },
            ),
            Provider::Slack => s(
                3,
                false,
                Retry::Schedule {
                    delays: &[0, MIN, 5 * MIN],
                    on: RetryOn::AnyFailure,
                },
            ),
            Provider::Shopify => s(
                5,
                false,
                Retry::Schedule {
                    delays: &[
                        MIN,
                        2 * MIN,
                        4 * MIN,
                        8 * MIN,
                        16 * MIN,
                        32 * MIN,
                        64 * MIN,
                        113 * MIN,
                    ],
                    on: RetryOn::AnyFailure,
                },
            ),
            Provider::StandardWebhooks | Provider::Svix => s(
                15,
                false,
                Retry::Schedule {
                    delays: &[
                        5,
                        5 * MIN,
                        30 * MIN,
                        2 * HOUR,
                        5 * HOUR,
                        10 * HOUR,
                        14 * HOUR,
                        20 * HOUR,
                        24 * HOUR,
                    ],
                    on: RetryOn::AnyFailure,
                },
            ),
        }
    }

    /// The provider's name as people say it.
    pub fn name(&self) -> &'static str {
        self.provider.display_name()
    }

    /// What the sender does after attempt `n` (1-based, challenge legs not counted) that
    /// ended with `answer`, `elapsed` after the first attempt; `challenged` when this was
    /// already the leg with credentials.
    pub fn decide(&self, n: u32, elapsed: Duration, answer: &Answer, challenged: bool) -> Next {
        if answer.is_success() {
            return Next::Delivered;
        }
        if let Answer::Status {
            code: 401,
            www_authenticate,
            ..
        } = answer
            && self.challenge
            && !challenged
        {
            return match www_authenticate {
                Some(v) if v.trim_start().to_ascii_lowercase().starts_with("basic") => {
                    Next::Challenge
                }
                Some(v) => Next::GivesUp {
                    why: format!(
                        "{} only answers a Basic challenge, not `{v}`: this callback is lost",
                        self.name()
                    ),
                },
                None => Next::GivesUp {
                    why: format!(
                        "{} got 401 without WWW-Authenticate, so it does not send the \
                         credentials: this callback is lost",
                        self.name()
                    ),
                },
            };
        }
        let reason = match answer {
            Answer::TimedOut => RetryReason::HttpTimeout,
            Answer::ConnectFailed(_) => RetryReason::ConnectionFailed,
            Answer::Status { .. } => RetryReason::HttpError,
        };
        if matches!(answer, Answer::Status { no_retry: true, .. }) {
            return Next::GivesUp {
                why: "the app answered X-Slack-No-Retry: 1, so Slack does not retry".to_owned(),
            };
        }
        self.retry_after(n, elapsed, answer, reason)
    }

    fn retry_after(&self, n: u32, elapsed: Duration, answer: &Answer, reason: RetryReason) -> Next {
        let gives_up = |why: String| Next::GivesUp { why };
        let covered = |on: RetryOn| on == RetryOn::AnyFailure || answer.is_connect_or_timeout();
        let idx = usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX);
        match &self.retry {
            Retry::Never { why } => gives_up(format!("{why}: this webhook is lost")),
            Retry::Schedule { on, .. } if !covered(*on) => gives_up(format!(
                "{} does not retry an answer outside 2xx (error 11200, HTTP retrieval failure)",
                self.name()
            )),
            Retry::Schedule { delays, .. } => match delays.get(idx) {
                Some(secs) => Next::Retry {
                    after: Duration::from_secs(*secs),
                    reason,
                },
                None => gives_up(format!(
                    "{} gave up after {n} attempts: this webhook is lost",
                    self.name()
                )),
            },
            Retry::Backoff {
                first,
                cap,
                horizon,
                on,
            } => {
                if !covered(*on) {
                    return gives_up(format!("{} does not retry this answer", self.name()));
                }
                let delay = first.saturating_mul(1u64 << idx.min(30)).min(*cap);
                if elapsed.as_secs().saturating_add(delay) > *horizon {
                    return gives_up(format!(
                        "{} stopped retrying {} after the first attempt ({n} attempts): this \
                         callback is lost",
                        self.name(),
                        human(Duration::from_secs(*horizon))
                    ));
                }
                Next::Retry {
                    after: Duration::from_secs(delay),
                    reason,
                }
            }
        }
    }
}

/// Bandwidth retries messaging and North-American 2FA callbacks "over the next 24 hours";
/// its backoff is not published: doubling from a minute, at most an hour apart.
const BANDWIDTH_24H: Retry = Retry::Backoff {
    first: MIN,
    cap: HOUR,
    horizon: 24 * HOUR,
    on: RetryOn::AnyFailure,
};

/// `~1 h`, `~5 min`, `~30 s`, `at once`: a provider's delay as the output says it.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "at once".to_owned(),
        1..=59 => format!("~{s} s"),
        60..=3569 => format!("~{} min", (s + 30) / 60),
        _ => format!("~{} h", (s + 1800) / 3600),
    }
}

#[cfg(test)]
mod tests;
