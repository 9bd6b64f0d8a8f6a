//! Stripe `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]`: hex(HMAC-SHA256(the whole
//! `whsec_…` string as UTF-8, `t.body`)); any `v1` may match; tolerance 300 s (old only).

use crate::Cx;
use crate::analysis::{Analysis, Event, Provider, SignError, SignOptions, Signed, Verdict};
use crate::check::{self, Computed, Variant};
use crate::request::RequestView;
use crate::secret::Secret;
use crate::util::{b64_decode_lenient, ct_eq, field, hmac_sha256, json_str};

const HEADER: &str = "Stripe-Signature";
/// The SDKs' default tolerance.
pub(crate) const DEFAULT_TOLERANCE: u64 = 300;

/// A parsed `Stripe-Signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub t: i64,
    pub v1: Vec<String>,
    pub other_schemes: Vec<String>,
}

/// Parses the header like stripe-python: split on `,`, then on the first `=`; `t` must be an
/// integer.
pub(crate) fn parse_header(value: &str) -> Option<Header> {
    let mut t = None;
    let mut v1 = Vec::new();
    let mut other = Vec::new();
    for item in value.split(',') {
        let Some((k, v)) = item.split_once('=') else {
            continue;
        };
        match k.trim() {
            "t" => t = crate::util::parse_unix(v),
            "v1" => v1.push(v.trim().to_owned()),
            k => other.push(k.to_owned()),
        }
    }
    Some(Header {
        t: t?,
        v1,
        other_schemes: other,
    })
}

fn compute(key: &[u8], t: i64, body: &[u8]) -> Computed {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    Computed {
        sig: hex::encode(hmac_sha256(key, &signed)),
        signed,
    }
}

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    let req = cx.req;
    let a = Analysis::new(Some(Provider::Stripe), event(req));
    let Some(raw) = req.header(HEADER) else {
        return a.verdict_with(
            Verdict::Unsigned,
            "No Stripe-Signature header: Stripe signs every webhook, so this was not sent by \
             Stripe (or a proxy dropped the header).",
        );
    };
    let Some(h) = std::str::from_utf8(raw).ok().and_then(parse_header) else {
        return a.verdict_with(
            Verdict::Malformed,
            "Unable to extract timestamp and signatures from the Stripe-Signature header \
             (expected t=<unix>,v1=<hex>).",
        );
    };
    let Some(secret) = cx.secrets.get(Provider::Stripe) else {
        return a.verdict_with(
            Verdict::NoSecret,
            crate::no_secret_message(Provider::Stripe),
        );
    };
    let key = secret.expose();
    let received = h.v1.join(",");
    if h.v1.is_empty() {
        let mut a = a.verdict_with(
            Verdict::Invalid,
            format!(
                "No signatures found with expected scheme v1 (the header has only: {}). Stripe \
                 always sends v1; v0 is a legacy test-mode scheme and is ignored.",
                if h.other_schemes.is_empty() {
                    "t".to_owned()
                } else {
                    h.other_schemes.join(", ")
                }
            ),
        );
        let c = compute(key, h.t, req.body);
        a.signed_string = Some(crate::util::escape_bytes(&c.signed));
        if let Some(d) = a.diagnosis.as_mut() {
            d.expected = Some(c.sig);
            d.signed_string = a.signed_string.clone();
        }
        return a;
    }
    let base = Variant::base("v1", key, "", req.body);
    let mut mistakes = Vec::new();
    for (label, why, body) in check::body_variants(req.body) {
        mistakes.push(base.named(label, why).with_body(body));
    }
    if let Some(rest) = key.strip_prefix(b"whsec_") {
        if let Some(decoded) = std::str::from_utf8(rest).ok().and_then(b64_decode_lenient) {
            mistakes.push(
                base.named(
                    "key base64-decoded (Svix style)",
                    "the signature matches when the secret is handled the Standard \
                     Webhooks/Svix way (whsec_ stripped, the rest base64-decoded). Stripe keys \
                     the HMAC with the whole whsec_… string: is this really a Stripe webhook \
                     (try --provider svix)?",
                )
                .with_key(decoded),
            );
        }
        mistakes.push(
            base.named(
                "key without whsec_",
                "the signature matches the secret without its whsec_ prefix; Stripe uses the \
                 whole whsec_… string as the key",
            )
            .with_key(rest.to_vec()),
        );
    }
    for (label, why, k) in check::key_variants(cx, Provider::Stripe, key) {
        mistakes.push(base.named(label, why).with_key(k));
    }
    let t = h.t;
    let out = check::run(
        std::slice::from_ref(&base),
        &mistakes,
        |v| Some(compute(&v.key, t, &v.body)),
        |sig| {
            // Check every v1 without short-circuiting.
            h.v1.iter()
                .fold(false, |acc, r| ct_eq(sig.as_bytes(), r.as_bytes()) | acc)
        },
    );
    let mut hints = Vec::new();
    if h.v1.len() > 1 {
        hints.push(
            "several v1 signatures: Stripe sends one per active secret during a rotation"
                .to_owned(),
        );
    }
    if !key.starts_with(b"whsec_") {
        hints.push(
            "the configured secret does not start with whsec_: Stripe endpoint secrets do \
             (the CLI's `stripe listen` prints its own)"
                .to_owned(),
        );
    }
    let mut a = check::conclude(
        a,
        out,
        &received,
        "No v1 signature matches hex(HMAC-SHA256(whsec_ secret, t + \".\" + raw body)).",
        hints,
    );
    let skew = cx.opts.now_unix.saturating_sub(t);
    a.skew_secs = Some(skew);
    if a.verdict == Verdict::Valid {
        let tol = cx.opts.tolerance(DEFAULT_TOLERANCE);
        if let (Some(skew), Some(tol)) = (check::stale_skew(cx.opts.now_unix, t, tol, true), tol) {
            return check::mark_stale(a, skew, tol);
        }
        if skew < 0
            && let Some(tol) = tol
            && skew.unsigned_abs() > tol
        {
            a.notes.push(format!(
                "the timestamp is {} s in the future; the Stripe SDKs do not reject that",
                skew.unsigned_abs()
            ));
        }
    }
    a
}

/// `Stripe-Signature: t=<timestamp>,v1=<hex>`.
pub(crate) fn sign(
    req: &RequestView<'_>,
    secret: &Secret,
    opts: &SignOptions,
) -> Result<Signed, SignError> {
    let t = opts
        .timestamp
        .ok_or(SignError::MissingTimestamp(Provider::Stripe))?;
    let c = compute(secret.expose(), t, req.body);
    Ok(Signed::headers(vec![(
        HEADER.to_owned(),
        format!("t={t},v1={}", c.sig),
    )]))
}

/// `type` · `id` · object.
pub(crate) fn event(req: &RequestView<'_>) -> Option<Event> {
    let v = req.json()?;
    let t = field(v, "type")?;
    let mut summary = t.to_owned();
    if let Some(id) = field(v, "id") {
        summary.push_str(&format!(" · {id}"));
    }
    if let Some(obj) = v.pointer("/data/object") {
        let kind = field(obj, "object").unwrap_or("object");
        if let Some(id) = obj.get("id").and_then(json_str) {
            summary.push_str(&format!(" · {kind} {id}"));
        }
    }
    if v.get("livemode").and_then(serde_json::Value::as_bool) == Some(false) {
        summary.push_str(" · test mode");
    }
    let mut e = Event::new(t, summary);
    e.id = field(v, "id").map(str::to_owned);
    if let serde_json::Value::Object(m) = v {
        e.details = crate::util::details_of(m, req.body);
    }
    Some(e)
}
