//! twk-providers: webhook provider knowledge for twk.
//!
//! Given one captured request (method, the public URL exactly as the sender used it, headers in
//! order with raw byte values, raw body) and the secrets the developer configured, this crate
//! says which provider sent it, which event it is, whether its signature or credentials hold,
//! and when they do not, why: expected vs received signature, the exact string that was signed,
//! and which plausible mistake (http vs https, a port, the localhost URL instead of the public
//! one, a missing path prefix, a re-encoded body, the wrong key handling, a secondary token)
//! would have matched. It also produces the signature header(s) for every scheme, which
//! `twk-tunnel sign` and `replay --resign` use. For the telephony callbacks whose answer the
//! provider runs (Bandwidth's BXML, Twilio's TwiML) it also says what the answer must be and
//! what is wrong with the one given ([`answer`]), and how long each provider waits for it.
//!
//! Providers: Twilio (`X-Twilio-Signature`, including Verify Push webhooks), Authy OneTouch
//! callbacks (`X-Authy-Signature`), Authy event webhooks (HS256 JWT in the `body` field),
//! Bandwidth (messaging, 2FA and voice callbacks; Basic auth), Stripe, GitHub, Slack, Shopify,
//! Standard Webhooks and Svix. See `docs/signatures.md` for each scheme.
//!
//! What it is **not**: it is sans-IO. It opens no sockets, reads no files and does no network
//! I/O; the only ambient input it can read is the process environment, and only when you call
//! [`Secrets::from_env`]. The caller supplies the clock ([`VerifyOptions::now_unix`]). It does
//! not forward, store or replay requests (that is `twk-agent` and `twk-capture`).
//!
//! Secrets live in [`Secret`], whose `Debug`/`Display` print `Secret(***)`. Every MAC
//! comparison is constant time (`subtle`).
//!
//! # Example
//!
//! ```
//! use twk_providers::{analyze, sign, Provider, RequestView, Secret, Secrets, SignOptions,
//!     Verdict, VerifyOptions};
//!
//! let mut secrets = Secrets::new();
//! secrets.set(Provider::Github, Secret::new("It's a Secret to Everybody"));
//! let body = b"Hello, World!";
//! let req = RequestView::new("POST", "https://example.com/hook", body);
//! // Produce the header GitHub would send…
//! let headers = sign(Provider::Github, &req, &secrets, &SignOptions::default()).unwrap();
//! assert_eq!(headers[0].1,
//!     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
//! // …and check it.
//! let signed = req.clone().with_header("X-Hub-Signature-256", headers[0].1.as_bytes());
//! let analysis = analyze(&signed, &secrets, &VerifyOptions::at(1_700_000_000));
//! assert_eq!(analysis.provider, Some(Provider::Github));
//! assert_eq!(analysis.verdict, Verdict::Valid);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod analysis;
pub mod answer;
mod carried;
mod check;
mod delivery;
mod detect;
mod form;
mod request;
mod secret;
mod url;
mod util;

mod authy_onetouch;
mod authy_webhook;
mod bandwidth;
mod github;
mod shopify;
mod slack;
mod standard_webhooks;
mod stripe;
mod svix;
mod twilio;

pub use analysis::{
    Analysis, AnswerLimit, Diagnosis, Event, ParseProviderError, Provider, SecretSource, SignError,
    SignOptions, Signed, UNRECOGNISED, Verdict, VerifyOptions,
};
pub use delivery::delivery_id;
pub use detect::detect;
pub use request::{OwnedRequest, RequestView, set_header};
pub use secret::{Secret, Secrets, SecretsError, no_secret_message};
pub use util::escape_bytes;

/// Decodes an `Authorization: Basic base64(user:password)` value into (user, password);
/// `None` for another scheme or a malformed value. The one Basic decoder of twk.
pub fn decode_basic(value: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(value).ok()?;
    bandwidth::basic_credentials(s.trim()).ok()
}

/// The 23 public Authy event-webhook event names, in the order the Authy webhooks demo lists
/// them.
pub const AUTHY_WEBHOOK_EVENTS: [&str; 23] = authy_webhook::EVENTS;

/// What each of [`AUTHY_WEBHOOK_EVENTS`] means, in the same order.
pub const AUTHY_WEBHOOK_DESCRIPTIONS: [&str; 23] = authy_webhook::DESCRIPTIONS;

/// Context shared by the per-provider analyzers.
pub(crate) struct Cx<'a, 'r> {
    pub req: &'a RequestView<'r>,
    pub secrets: &'a Secrets,
    pub opts: &'a VerifyOptions,
}

/// Analyzes one request: detects (or takes) the provider, names the event and checks the
/// signature or credentials against `secrets`.
///
/// Never panics and never fails: problems with the request are reported in the returned
/// [`Analysis`] (`malformed`, `unsigned`, …). When `opts.provider` is `None` the provider is
/// detected with [`detect`]; when nothing matches, [`Analysis::provider`] is `None` and the
/// verdict is `unsigned`.
///
/// A provider with no secret in `secrets` but a test secret ([`Secrets::set_test_secret`])
/// is checked with that: `valid` (or `stale`) when the signature holds with it, with
/// [`Analysis::matched_secret`] saying so; otherwise exactly what it would be without it
/// (`no_secret`).
pub fn analyze(req: &RequestView<'_>, secrets: &Secrets, opts: &VerifyOptions) -> Analysis {
    let Some(provider) = opts.provider.or_else(|| detect(req)) else {
        let mut a = Analysis::new(None, None);
        a.notes.push(analysis::UNRECOGNISED.to_owned());
        return a;
    };
    let test = secrets
        .test_secret(provider)
        .filter(|_| secrets.get(provider).is_none());
    let analysis = match test.and_then(|t| held_with_test_secret(provider, req, t, opts)) {
        Some(a) => a,
        None => {
            let a = analyze_as(provider, &Cx { req, secrets, opts });
            held_with(a, SecretSource::Configured)
        }
    };
    tracing::debug!(
        provider = provider.as_str(),
        verdict = analysis.verdict.as_str(),
        secret = analysis.matched_secret.map(SecretSource::as_str),
        "analyzed webhook"
    );
    analysis
}

fn analyze_as(provider: Provider, cx: &Cx<'_, '_>) -> Analysis {
    match provider {
        Provider::Twilio => twilio::analyze(cx),
        Provider::AuthyOnetouch => authy_onetouch::analyze(cx),
        Provider::AuthyWebhook => authy_webhook::analyze(cx),
        Provider::Bandwidth => bandwidth::analyze(cx),
        Provider::Stripe => stripe::analyze(cx),
        Provider::Github => github::analyze(cx),
        Provider::Slack => slack::analyze(cx),
        Provider::Shopify => shopify::analyze(cx),
        Provider::StandardWebhooks => standard_webhooks::analyze(cx),
        Provider::Svix => svix::analyze(cx),
    }
}

/// `a`, saying which secret its signature held with when it held (`valid`, `stale`).
fn held_with(mut a: Analysis, source: SecretSource) -> Analysis {
    if matches!(a.verdict, Verdict::Valid | Verdict::Stale) {
        a.matched_secret = Some(source);
    }
    a
}

/// The analysis with twk's test secret as the provider's only secret, when the signature
/// holds with it. Anything else (`invalid`, unsigned, …) is thrown away: the secret was
/// never the developer's, so a mismatch only means the webhook came from elsewhere.
fn held_with_test_secret(
    provider: Provider,
    req: &RequestView<'_>,
    test: &Secret,
    opts: &VerifyOptions,
) -> Option<Analysis> {
    let only = Secrets::new().with(provider, test.clone());
    let a = analyze_as(
        provider,
        &Cx {
            req,
            secrets: &only,
            opts,
        },
    );
    let a = held_with(a, SecretSource::TwkTest);
    a.matched_secret.is_some().then_some(a)
}

/// Produces the signature header(s) that make `req` valid for `provider`, using the secret
/// configured for that provider in `secrets`.
///
/// Returns `(name, value)` pairs in the order the provider sends them. Fails with
/// [`SignError::RewritesRequest`] when signing also needs a new URL or body (Twilio JSON
/// bodies carry their hash in the URL; Authy event webhooks carry the JWT in the body): use
/// [`sign_request`] for those.
pub fn sign(
    provider: Provider,
    req: &RequestView<'_>,
    secrets: &Secrets,
    opts: &SignOptions,
) -> Result<Vec<(String, String)>, SignError> {
    let signed = sign_request(provider, req, secrets, opts)?;
    if signed.url.is_some() || signed.body.is_some() {
        return Err(SignError::RewritesRequest(provider));
    }
    Ok(signed.headers)
}

/// Like [`sign`], but also returns the new URL and/or body when the scheme needs them
/// (Twilio JSON bodies: a fresh `bodySHA256` query parameter; Authy event webhooks: a
/// re-signed JWT in the body's `body` field). Used by edit-and-replay re-signing.
pub fn sign_request(
    provider: Provider,
    req: &RequestView<'_>,
    secrets: &Secrets,
    opts: &SignOptions,
) -> Result<Signed, SignError> {
    let secret = secrets.get(provider).ok_or(SignError::NoSecret(provider))?;
    sign_with_secret(provider, req, secret, opts)
}

/// Like [`sign_request`] with one explicit secret instead of a [`Secrets`] set.
pub fn sign_with_secret(
    provider: Provider,
    req: &RequestView<'_>,
    secret: &Secret,
    opts: &SignOptions,
) -> Result<Signed, SignError> {
    match provider {
        Provider::Twilio => twilio::sign(req, secret),
        Provider::AuthyOnetouch => authy_onetouch::sign(req, secret, opts),
        Provider::AuthyWebhook => authy_webhook::sign(req, secret, opts),
        Provider::Bandwidth => bandwidth::sign(secret),
        Provider::Stripe => stripe::sign(req, secret, opts),
        Provider::Github => Ok(github::sign(req, secret)),
        Provider::Slack => slack::sign(req, secret, opts),
        Provider::Shopify => Ok(shopify::sign(req, secret)),
        Provider::StandardWebhooks => standard_webhooks::sign(req, secret, opts, false),
        Provider::Svix => standard_webhooks::sign(req, secret, opts, true),
    }
}
