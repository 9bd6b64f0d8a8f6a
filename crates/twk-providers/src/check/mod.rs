//! The shared verification driver: try the variants the SDKs accept, then, when none matches,
//! the plausible mistakes, and turn the result into a verdict and a diagnosis.
//!
//! The mistakes themselves live beside it, one module per dimension: [`urls`] (what URL the
//! sender signed), [`bodies`] (how the body was re-encoded) and [`keys`] (which key was used).

mod bodies;
mod keys;
mod urls;

pub(crate) use bodies::body_variants;
pub(crate) use keys::key_variants;
pub(crate) use urls::{url_hints, url_mistakes};

use crate::Cx;
use crate::analysis::{Analysis, Diagnosis, Provider, Verdict};
use crate::util::escape_bytes;
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
    /// Twilio: the canonical string, MACed with the algorithm the settings header does not
    /// name (SHA-1 vs SHA-256).
    TwilioOtherAlgorithm,
    /// Authy: parameters sorted by key only (node snippet's stable sort).
    AuthyKeySort,
    /// Authy: Java `URLEncoder` percent-encoding.
    AuthyJava,
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

    /// The plausible mistakes around this variant for a scheme that signs the body with a
    /// key: each way the body may have been re-encoded, then each way the key may have been
    /// mishandled ([`body_variants`], [`key_variants`]).
    pub fn body_and_key_mistakes(
        &self,
        cx: &Cx<'_, '_>,
        provider: Provider,
        body: &[u8],
        key: &[u8],
    ) -> Vec<Variant<'a>> {
        let mut out: Vec<Variant<'a>> = body_variants(body)
            .into_iter()
            .map(|(label, why, b)| self.named(label, why).with_body(b))
            .collect();
        out.extend(
            key_variants(cx, provider, key)
                .into_iter()
                .map(|(label, why, k)| self.named(label, why).with_key(k)),
        );
        out
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
    /// Labels of everything checked, each once, in the order first tried.
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
        note_checked(&mut out.checked, &v.label);
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
        note_checked(&mut out.checked, &v.label);
        let Some(c) = compute(v) else { continue };
        if matches(&c.sig) {
            out.cause = Some((v.label.clone(), v.why.clone(), c));
            return out;
        }
    }
    out
}

/// Adds `label` to `checked` unless it is there already: several variants can share a label
/// (every caller-supplied alternate is an "alternate URL"), and a list that repeats itself
/// reads like a bug. Linear, but the lists are a few dozen labels.
fn note_checked(checked: &mut Vec<String>, label: &str) {
    if !checked.iter().any(|c| c == label) {
        checked.push(label.to_owned());
    }
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
