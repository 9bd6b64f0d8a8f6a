//! The public data model: providers, verdicts, events, analyses and signing options.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A webhook sender twk knows. Serialized as its stable lowercase id (see [`Provider::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Twilio `X-Twilio-Signature` (HMAC-SHA1), including Verify Push webhooks.
    Twilio,
    /// Authy OneTouch callbacks (`X-Authy-Signature` + nonce, HMAC-SHA256).
    AuthyOnetouch,
    /// Authy event webhooks (HS256 JWT in the body field `body`).
    AuthyWebhook,
    /// Bandwidth messaging, 2FA and voice callbacks (HTTP Basic auth).
    Bandwidth,
    /// Stripe `Stripe-Signature`.
    Stripe,
    /// GitHub `X-Hub-Signature-256` (and legacy `X-Hub-Signature`).
    Github,
    /// Slack `X-Slack-Signature` (`v0`).
    Slack,
    /// Shopify `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// Standard Webhooks (`webhook-id` / `webhook-timestamp` / `webhook-signature`).
    StandardWebhooks,
    /// Svix (`svix-id` / `svix-timestamp` / `svix-signature`).
    Svix,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 10] = [
        Provider::Twilio,
        Provider::AuthyOnetouch,
        Provider::AuthyWebhook,
        Provider::Bandwidth,
        Provider::Stripe,
        Provider::Github,
        Provider::Slack,
        Provider::Shopify,
        Provider::StandardWebhooks,
        Provider::Svix,
    ];

    /// The headers that carry this provider's signature (lowercase). They are replayable
    /// credentials: shared outputs redact them. Authy's webhooks sign a JWT in the body;
    /// Bandwidth's callbacks otherwise use Basic auth (`Authorization`).
    pub const fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Provider::Twilio => &["x-twilio-signature"],
            Provider::AuthyOnetouch => &["x-authy-signature"],
            Provider::AuthyWebhook => &[],
            Provider::Bandwidth => &["x-bandwidth-signature-hmac-sha256"],
            Provider::Stripe => &["stripe-signature"],
            Provider::Github => &["x-hub-signature-256", "x-hub-signature"],
            Provider::Slack => &["x-slack-signature"],
            Provider::Shopify => &["x-shopify-hmac-sha256"],
            Provider::StandardWebhooks => &["webhook-signature"],
            Provider::Svix => &["svix-signature"],
        }
    }

    /// The stable lowercase id (`twilio`, `authy-onetouch`, `authy-webhook`, `bandwidth`,
    /// `stripe`, `github`, `slack`, `shopify`, `standard-webhooks`, `svix`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::AuthyOnetouch => "authy-onetouch",
            Provider::AuthyWebhook => "authy-webhook",
            Provider::Bandwidth => "bandwidth",
            Provider::Stripe => "stripe",
            Provider::Github => "github",
            Provider::Slack => "slack",
            Provider::Shopify => "shopify",
            Provider::StandardWebhooks => "standard-webhooks",
            Provider::Svix => "svix",
        }
    }

    /// A human name (`Twilio`, `Authy OneTouch`, …).
    pub const fn display_name(self) -> &'static str {
        match self {
            Provider::Twilio => "Twilio",
            Provider::AuthyOnetouch => "Authy OneTouch",
            Provider::AuthyWebhook => "Authy webhooks",
            Provider::Bandwidth => "Bandwidth",
            Provider::Stripe => "Stripe",
            Provider::Github => "GitHub",
            Provider::Slack => "Slack",
            Provider::Shopify => "Shopify",
            Provider::StandardWebhooks => "Standard Webhooks",
            Provider::Svix => "Svix",
        }
    }

    /// Whether the signature covers the URL the sender called (Twilio; Authy OneTouch signs
    /// it without the query). Only these need the exact public URL to check or sign; for the
    /// others the URL plays no part.
    pub const fn signs_url(self) -> bool {
        matches!(self, Provider::Twilio | Provider::AuthyOnetouch)
    }

    /// What the provider's console calls the value twk needs (`auth token`, `webhook
    /// secret`, …), for messages.
    pub const fn secret_name(self) -> &'static str {
        match self {
            Provider::Twilio => "auth token",
            Provider::AuthyOnetouch => "API key",
            Provider::AuthyWebhook => "webhook signing key",
            Provider::Bandwidth => "callback credentials",
            Provider::Stripe | Provider::Github => "webhook secret",
            Provider::Slack => "signing secret",
            Provider::Shopify => "app client secret",
            Provider::StandardWebhooks | Provider::Svix => "signing secret",
        }
    }

    /// The environment variable [`crate::Secrets::from_env`] reads this provider's secret
    /// from (the name the provider's own SDKs and docs use).
    pub const fn secret_env_var(self) -> &'static str {
        match self {
            Provider::Twilio => "TWILIO_AUTH_TOKEN",
            Provider::AuthyOnetouch => "AUTHY_API_KEY",
            Provider::AuthyWebhook => "AUTHY_WEBHOOK_SIGNING_KEY",
            Provider::Bandwidth => "BANDWIDTH_CALLBACK_CREDENTIALS",
            Provider::Stripe => "STRIPE_WEBHOOK_SECRET",
            Provider::Github => "GITHUB_WEBHOOK_SECRET",
            Provider::Slack => "SLACK_SIGNING_SECRET",
            Provider::Shopify => "SHOPIFY_API_SECRET",
            Provider::StandardWebhooks => "STANDARD_WEBHOOKS_SECRET",
            Provider::Svix => "SVIX_WEBHOOK_SECRET",
        }
    }

    /// How long the provider waits for the answer to a webhook, and what it does when none
    /// comes in time; `None` where twk's sources give no figure (Stripe, Authy).
    pub const fn answer_limit(self) -> Option<AnswerLimit> {
        const fn limit(secs: u64, otherwise: &'static str) -> Option<AnswerLimit> {
            Some(AnswerLimit {
                within: std::time::Duration::from_secs(secs),
                otherwise,
            })
        }
        match self {
            Provider::Slack => limit(
                3,
                "Slack counts the event failed and sends it again, up to 3 times \
                 (X-Slack-Retry-Num, X-Slack-Retry-Reason: http_timeout): answer first, \
                 then do the work",
            ),
            Provider::Shopify => limit(
                5,
                "Shopify counts the delivery failed (1 s to connect, 5 s in all) and retries \
                 it, 8 times over 4 h",
            ),
            Provider::Github => limit(
                10,
                "GitHub counts the delivery failed and does not redeliver it by itself",
            ),
            Provider::Bandwidth => limit(
                10,
                "Bandwidth counts the callback failed: messaging and North-American 2FA \
                 callbacks are retried for 24 h, international 2FA callbacks never (voice \
                 callbacks wait 15 s: answer::answer_limit)",
            ),
            Provider::Twilio => limit(
                15,
                "Twilio gives up after 15 s in all, connecting included (error 11205; #rt= \
                 and #tt= in the URL change it) and uses the fallback URL",
            ),
            Provider::StandardWebhooks | Provider::Svix => limit(
                15,
                "the sender may count the delivery failed and retry it (the specification \
                 recommends waiting 15 to 30 s)",
            ),
            Provider::Stripe | Provider::AuthyOnetouch | Provider::AuthyWebhook => None,
        }
    }

    /// Whether the scheme carries a timestamp checked against a tolerance.
    pub const fn is_timestamped(self) -> bool {
        matches!(
            self,
            Provider::Stripe | Provider::Slack | Provider::StandardWebhooks | Provider::Svix
        )
    }
}

/// How long a provider waits for a webhook's answer ([`Provider::answer_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimit {
    /// The longest the provider waits.
    pub within: std::time::Duration,
    /// What it does when the answer comes later, in words.
    pub otherwise: &'static str,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Provider::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown provider {0:?} (expected one of: twilio, authy-onetouch, authy-webhook, bandwidth, \
     stripe, github, slack, shopify, standard-webhooks, svix)"
)]
pub struct ParseProviderError(pub String);

impl FromStr for Provider {
    type Err = ParseProviderError;

    /// Parses a provider id. Case-insensitive; `_` and `-` are interchangeable; a few aliases
    /// are accepted (`authy` and `onetouch` → authy-onetouch, `standardwebhooks` →
    /// standard-webhooks).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let p = match norm.as_str() {
            "twilio" | "twilio-verify-push" | "verify-push" => Provider::Twilio,
            "authy-onetouch" | "authy-one-touch" | "onetouch" | "authy" => Provider::AuthyOnetouch,
            "authy-webhook" | "authy-webhooks" => Provider::AuthyWebhook,
            "bandwidth" => Provider::Bandwidth,
            "stripe" => Provider::Stripe,
            "github" => Provider::Github,
            "slack" => Provider::Slack,
            "shopify" => Provider::Shopify,
            "standard-webhooks" | "standardwebhooks" | "standard-webhook" => {
                Provider::StandardWebhooks
            }
            "svix" => Provider::Svix,
            _ => return Err(ParseProviderError(s.to_owned())),
        };
        Ok(p)
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;

    /// The snake_case id, as [`Verdict::as_str`] writes it (stored and filtered as text).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
                format!("unknown verdict {s:?}: expected one of {}", all.join(", "))
            })
    }
}

/// The outcome of a signature or credentials check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The signature (or credentials) hold; see [`Analysis::matched_variant`].
    Valid,
    /// The signature does not match; see [`Analysis::diagnosis`].
    Invalid,
    /// The signature matches but the timestamp is outside the tolerance; see
    /// [`Analysis::skew_secs`].
    Stale,
    /// The request carries no signature or credentials.
    Unsigned,
    /// The provider is known but no secret is configured for it.
    NoSecret,
    /// A signature header (or the signed envelope) is present but cannot be parsed.
    Malformed,
}

impl Verdict {
    /// Every verdict, in order of how good the news is.
    pub const ALL: [Verdict; 6] = [
        Verdict::Valid,
        Verdict::Stale,
        Verdict::Invalid,
        Verdict::Malformed,
        Verdict::Unsigned,
        Verdict::NoSecret,
    ];

    /// The snake_case id (`valid`, `invalid`, `stale`, `unsigned`, `no_secret`, `malformed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Stale => "stale",
            Verdict::Unsigned => "unsigned",
            Verdict::NoSecret => "no_secret",
            Verdict::Malformed => "malformed",
        }
    }

    /// The verdict in words for people (`no secret` rather than `no_secret`).
    pub const fn label(self) -> &'static str {
        match self {
            Verdict::NoSecret => "no secret",
            other => other.as_str(),
        }
    }

    /// A one-character mark (`✓` valid, `✗` invalid or malformed, `!` stale, `–` unsigned,
    /// `?` no secret), the same the inspector's list shows. Always printed with
    /// [`Verdict::label`] where colour may be missing.
    pub const fn mark(self) -> &'static str {
        match self {
            Verdict::Valid => "✓",
            Verdict::Invalid | Verdict::Malformed => "✗",
            Verdict::Stale => "!",
            Verdict::Unsigned => "–",
            Verdict::NoSecret => "?",
        }
    }

    /// True only for [`Verdict::Valid`].
    pub const fn is_valid(self) -> bool {
        matches!(self, Verdict::Valid)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which secret a signature held with, for `valid` and `stale` ([`Analysis::matched_secret`]).
/// Serialized as its [`SecretSource::as_str`] id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    /// A secret given to twk for the provider (`--secret`, its environment variable, the
    /// config file).
    Configured,
    /// twk's own test secret for a provider with none configured (see
    /// [`crate::Secrets::set_test_secret`]): what `twk-tunnel trigger` signs with then.
    TwkTest,
}

impl SecretSource {
    /// Both sources.
    pub const ALL: [SecretSource; 2] = [SecretSource::Configured, SecretSource::TwkTest];

    /// The stable id: `configured` or `twk-test`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecretSource::Configured => "configured",
            SecretSource::TwkTest => "twk-test",
        }
    }

    /// In words for people: `configured secret`, `twk test secret`.
    pub const fn label(self) -> &'static str {
        match self {
            SecretSource::Configured => "configured secret",
            SecretSource::TwkTest => "twk test secret",
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretSource {
    type Err = String;

    /// The id, as [`SecretSource::as_str`] writes it (stored as text).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretSource::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown secret source {s:?}: expected configured or twk-test"))
    }
}

/// What the webhook is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event name, e.g. `challenge.approved`, `message-failed`, `payment_intent.succeeded`.
    pub name: String,
    /// One line, e.g. `challenge.approved · entity ff48… · factor YF…`.
    pub summary: String,
    /// The provider's delivery/event id when there is one (for de-duplication).
    pub id: Option<String>,
    /// Decoded fields worth showing (JSON-in-form fields are decoded to JSON).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    pub(crate) fn new(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Event {
            name: name.into(),
            summary: summary.into(),
            id: None,
            details: serde_json::Map::new(),
        }
    }
}

/// Why a check failed, in plain words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// One or two sentences saying what is wrong.
    pub summary: String,
    /// The signature twk computed for the request as received (the primary variant).
    pub expected: Option<String>,
    /// The signature (or credentials, masked) the request carried.
    pub received: Option<String>,
    /// The exact string that was signed for `expected`, escaped: control characters as `\n`,
    /// `\r`, `\t`, `\u{..}`, backslash as `\\`, invalid UTF-8 as `\xNN`.
    pub signed_string: Option<String>,
    /// The plausible mistake that would have matched, when one did.
    pub likely_cause: Option<String>,
    /// Further advice that does not depend on a match (e.g. "this is a localhost URL").
    pub hints: Vec<String>,
    /// Every variant and plausible mistake that was checked, by label.
    pub checked: Vec<String>,
}

/// The result of [`crate::analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The provider (detected or given); `None` when nothing was recognised.
    pub provider: Option<Provider>,
    /// The event, when the body could be understood.
    pub event: Option<Event>,
    /// The verdict.
    pub verdict: Verdict,
    /// For `valid` and `stale`: which accepted variant matched (e.g. `as-is`,
    /// `port-stripped`, `v1`).
    pub matched_variant: Option<String>,
    /// For `valid` and `stale`: which secret the signature held with; `None` for the other
    /// verdicts (and in analyses stored before twk had test secrets).
    #[serde(default)]
    pub matched_secret: Option<SecretSource>,
    /// The exact signed string (escaped like [`Diagnosis::signed_string`]) of the matched
    /// variant, or of the primary variant when nothing matched.
    pub signed_string: Option<String>,
    /// For timestamped schemes: `now - timestamp` in seconds (positive = in the past).
    pub skew_secs: Option<i64>,
    /// Present for every verdict except `valid`: what is wrong and what would have matched.
    pub diagnosis: Option<Diagnosis>,
    /// Facts worth showing alongside the verdict (retry behaviour, quirks, warnings).
    pub notes: Vec<String>,
}

/// The note of an analysis that recognised no provider, and all it says.
pub const UNRECOGNISED: &str = "no known webhook provider recognised from the headers or body; \
                                pass a provider explicitly to check it anyway";

impl Analysis {
    /// It says only that no provider was recognised (the exchange's provider, `None`, says
    /// as much): a store need not keep it with every request that is not a known webhook.
    pub fn is_unrecognised(&self) -> bool {
        self.provider.is_none()
            && self.event.is_none()
            && self.matched_variant.is_none()
            && self.signed_string.is_none()
            && self.skew_secs.is_none()
            && self.diagnosis.is_none()
            && matches!(self.notes.as_slice(), [note] if note == UNRECOGNISED)
    }

    pub(crate) fn new(provider: Option<Provider>, event: Option<Event>) -> Self {
        Analysis {
            provider,
            event,
            verdict: Verdict::Unsigned,
            matched_variant: None,
            matched_secret: None,
            signed_string: None,
            skew_secs: None,
            diagnosis: None,
            notes: Vec::new(),
        }
    }

    /// Sets a verdict with a plain-words diagnosis summary.
    pub(crate) fn verdict_with(mut self, verdict: Verdict, summary: impl Into<String>) -> Self {
        self.verdict = verdict;
        self.diagnosis = Some(Diagnosis {
            summary: summary.into(),
            ..Diagnosis::default()
        });
        self
    }

    /// One line: `provider · event · verdict (variant)`.
    pub fn headline(&self) -> String {
        let provider = self.provider.map_or("unknown", Provider::as_str);
        let mut s = format!("{provider} · ");
        match &self.event {
            Some(e) => s.push_str(&e.summary),
            None => s.push_str("(event unknown)"),
        }
        s.push_str(" · ");
        s.push_str(self.verdict.as_str());
        if let Some(v) = &self.matched_variant {
            s.push_str(" (");
            s.push_str(v);
            s.push(')');
        }
        s
    }
}

/// Options of [`crate::analyze`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The current time (Unix seconds) used for timestamp tolerances. The caller supplies it:
    /// the crate never reads the clock.
    pub now_unix: i64,
    /// Timestamp tolerance in seconds. `None` = the scheme's default (300 s for Stripe, Slack,
    /// Standard Webhooks and Svix; 0 s leeway for an Authy JWT `exp`). `Some(0)` turns the
    /// timestamp check off, as the SDKs allow.
    pub tolerance_secs: Option<u64>,
    /// Check as this provider; `None` = detect it.
    pub provider: Option<Provider>,
    /// Other URLs this request may have been signed for (e.g. the public tunnel URL when
    /// `url` is what the local app saw, or the local URL). Used only to explain failures.
    pub alternate_urls: Vec<String>,
}

impl VerifyOptions {
    /// Options for checking at `now_unix`, detecting the provider, default tolerances.
    pub fn at(now_unix: i64) -> Self {
        VerifyOptions {
            now_unix,
            tolerance_secs: None,
            provider: None,
            alternate_urls: Vec::new(),
        }
    }

    /// Forces the provider (`None` = detect).
    #[must_use]
    pub fn with_provider(mut self, provider: Option<Provider>) -> Self {
        self.provider = provider;
        self
    }

    /// Sets the tolerance (`Some(0)` = off, `None` = scheme default).
    #[must_use]
    pub fn with_tolerance(mut self, tolerance_secs: Option<u64>) -> Self {
        self.tolerance_secs = tolerance_secs;
        self
    }

    /// Adds an alternate URL (see [`VerifyOptions::alternate_urls`]).
    #[must_use]
    pub fn with_alternate_url(mut self, url: impl Into<String>) -> Self {
        self.alternate_urls.push(url.into());
        self
    }

    /// The effective tolerance for a scheme whose default is `default`; `None` = check off.
    pub(crate) fn tolerance(&self, default: u64) -> Option<u64> {
        match self.tolerance_secs {
            Some(0) => None,
            Some(t) => Some(t),
            None => Some(default),
        }
    }
}

/// Options of [`crate::sign`]: values given explicitly. [`SignOptions::or_carried`] fills
/// in what the request already carries, so a given request is reproduced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignOptions {
    /// Unix timestamp to sign with (Stripe, Slack, Standard Webhooks, Svix; the nonce of Authy
    /// OneTouch when `id` is not given; a fresh `iat` for Authy JWTs). Required by the
    /// timestamped schemes.
    pub timestamp: Option<i64>,
    /// Message id (Standard Webhooks/Svix `webhook-id`) or Authy OneTouch nonce. When absent
    /// the request's existing id header is reused, else one is derived from the timestamp and
    /// body.
    pub id: Option<String>,
}

/// What [`crate::sign_request`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to set (replacing any existing header of the same name), in order.
    pub headers: Vec<(String, String)>,
    /// A new URL to send to, when the scheme signs something in the URL that had to change
    /// (Twilio `bodySHA256`).
    pub url: Option<String>,
    /// A new body, when the signature lives in the body (Authy event webhooks).
    pub body: Option<Vec<u8>>,
}

impl Signed {
    pub(crate) fn headers(headers: Vec<(String, String)>) -> Self {
        Signed {
            headers,
            url: None,
            body: None,
        }
    }
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No secret is configured for the provider.
    #[error("no secret configured for {0}")]
    NoSecret(Provider),
    /// The scheme needs a timestamp and none was given.
    #[error("{0} signatures include a timestamp: pass one")]
    MissingTimestamp(Provider),
    /// The secret cannot be used with this scheme (e.g. Svix secret is not base64).
    #[error("the {provider} secret cannot be used: {reason}")]
    BadSecret {
        /// The provider.
        provider: Provider,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// The request cannot be signed as given (e.g. a relative URL for Twilio).
    #[error("cannot sign this {provider} request: {reason}")]
    BadRequest {
        /// The provider.
        provider: Provider,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// Signing changes the URL or body, so headers alone are not enough: use
    /// [`crate::sign_request`].
    #[error("signing {0} also rewrites the URL or body: use sign_request")]
    RewritesRequest(Provider),
}
