//! Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` (a space-separated
//! list of `v1,<base64(HMAC-SHA256(base64-decode(secret without whsec_), id.ts.body))>`),
//! ±5 minutes. Svix uses the same scheme with `svix-*` headers (see `svix.rs`).

use crate::Cx;
use crate::analysis::{Analysis, Event, Provider, SignError, SignOptions, Signed, Verdict};
use crate::check::{self, Computed, Variant};
use crate::request::RequestView;
use crate::secret::Secret;
use crate::util::{b64, b64_decode_lenient, ct_eq, field, hmac_sha256, parse_unix, sha256_hex};

const DEFAULT_TOLERANCE: u64 = 300;

/// Header names of a flavour.
struct Names {
    id: &'static str,
    ts: &'static str,
    sig: &'static str,
}

const WEBHOOK: Names = Names {
    id: "webhook-id",
    ts: "webhook-timestamp",
    sig: "webhook-signature",
};
const SVIX: Names = Names {
    id: "svix-id",
    ts: "svix-timestamp",
    sig: "svix-signature",
};

/// The key: `whsec_` stripped, the rest base64-decoded (padded or not). `None` when the rest
/// is not base64.
pub(crate) fn decode_key(secret: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(secret).ok()?;
    b64_decode_lenient(s.strip_prefix("whsec_").unwrap_or(s))
}

/// `v1,<sig>` entries of the signature header (other versions skipped).
pub(crate) fn parse_signatures(value: &str) -> (Vec<String>, Vec<String>) {
    let mut v1 = Vec::new();
    let mut other = Vec::new();
    for item in value.split(' ').filter(|s| !s.is_empty()) {
        match item.split_once(',') {
            Some(("v1", sig)) => v1.push(sig.to_owned()),
            Some((ver, _)) => other.push(ver.to_owned()),
            None => other.push(item.to_owned()),
        }
    }
    (v1, other)
}

fn compute(key: &[u8], id: &str, ts: &str, body: &[u8]) -> Computed {
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    Computed {
        sig: b64(&hmac_sha256(key, &signed)),
        signed,
    }
}

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    analyze_flavour(cx, Provider::StandardWebhooks)
}

/// Shared by Standard Webhooks and Svix: the provider's own header family first, the other as
/// a fallback (as the Svix libraries do).
pub(crate) fn analyze_flavour(cx: &Cx<'_, '_>, provider: Provider) -> Analysis {
    let req = cx.req;
    let a = Analysis::new(Some(provider), event(req, provider));
    let (own, names) = header_families(req, provider);
    let Some(raw) = req.header(names.sig) else {
        return a.verdict_with(
            Verdict::Unsigned,
            format!(
                "No {} header: the sender did not sign this request.",
                names.sig
            ),
        );
    };
    let Ok(sig_value) = std::str::from_utf8(raw).map(str::trim) else {
        return a.verdict_with(Verdict::Malformed, format!("{} is not text.", names.sig));
    };
    let (Some(id), Some(ts_str)) = (req.header_str(names.id), req.header_str(names.ts)) else {
        return a.verdict_with(
            Verdict::Malformed,
            format!(
                "{} needs {} and {} (both are part of the signed string); one is missing.",
                names.sig, names.id, names.ts
            ),
        );
    };
    let Some(ts) = parse_unix(ts_str) else {
        return a.verdict_with(
            Verdict::Malformed,
            format!("{} {ts_str:?} is not a Unix timestamp.", names.ts),
        );
    };
    let (v1, other) = parse_signatures(sig_value);
    let Some(secret) = cx.secrets.get(provider) else {
        return no_secret(a, provider);
    };
    if v1.is_empty() {
        return no_v1(a, names, &other);
    }
    let carried = Carried {
        id,
        ts: ts_str,
        v1: &v1,
    };
    let mut a = check_signature(cx, a, provider, secret.expose(), names, &carried);
    a.skew_secs = Some(cx.opts.now_unix.saturating_sub(ts));
    if a.verdict == Verdict::Valid {
        if names.sig != own.sig {
            a.notes.push(format!(
                "signed with the {} headers (the libraries accept both families)",
                names.sig.split('-').next().unwrap_or("")
            ));
        }
        let tol = cx.opts.tolerance(DEFAULT_TOLERANCE);
        if let (Some(skew), Some(tol)) = (check::stale_skew(cx.opts.now_unix, ts, tol, false), tol)
        {
            return check::mark_stale(a, skew, tol);
        }
    }
    a
}

/// (the provider's own header family, the family the request uses): its own when present or
/// when neither is, else the other one.
fn header_families(req: &RequestView<'_>, provider: Provider) -> (&'static Names, &'static Names) {
    let (own, other) = if provider == Provider::Svix {
        (&SVIX, &WEBHOOK)
    } else {
        (&WEBHOOK, &SVIX)
    };
    if req.has_header(own.sig) || !req.has_header(other.sig) {
        (own, own)
    } else {
        (own, other)
    }
}

/// `no_secret`, naming where the secret is configured.
fn no_secret(a: Analysis, provider: Provider) -> Analysis {
    a.verdict_with(Verdict::NoSecret, crate::no_secret_message(provider))
}

/// `invalid` for a signature header without any `v1` entry: only v1 can be checked.
fn no_v1(a: Analysis, names: &Names, other: &[String]) -> Analysis {
    a.verdict_with(
        Verdict::Invalid,
        format!(
            "{} has no v1 signature (found: {}); only v1 (HMAC-SHA256) is supported.",
            names.sig,
            if other.is_empty() {
                "nothing".to_owned()
            } else {
                other.join(", ")
            }
        ),
    )
}

/// What the request carries for the signed string: message id, timestamp as sent, and the
/// `v1` signatures.
struct Carried<'a> {
    id: &'a str,
    ts: &'a str,
    v1: &'a [String],
}

/// The signature with the decoded key (or the raw secret when it is not base64), then the
/// plausible mistakes, concluded into a verdict and a diagnosis.
fn check_signature(
    cx: &Cx<'_, '_>,
    a: Analysis,
    provider: Provider,
    raw_key: &[u8],
    names: &Names,
    carried: &Carried<'_>,
) -> Analysis {
    let req = cx.req;
    let decoded = decode_key(raw_key);
    let mut hints = Vec::new();
    if decoded.is_none() {
        hints.push(
            "the configured secret is not whsec_ + base64, so it cannot be decoded; it was \
             tried as raw bytes"
                .to_owned(),
        );
    }
    let key: Vec<u8> = decoded.clone().unwrap_or_else(|| raw_key.to_vec());
    let base = Variant::base("v1", &key, "", req.body);
    let mut mistakes = Vec::new();
    for (label, why, body) in check::body_variants(req.body) {
        mistakes.push(base.named(label, why).with_body(body));
    }
    if decoded.is_some() {
        mistakes.extend(key_handling_mistakes(&base, raw_key));
    }
    for (label, why, k) in check::key_variants(cx, provider, raw_key) {
        if let Some(dk) = decode_key(&k) {
            mistakes.push(base.named(label, why).with_key(dk));
        }
    }
    let out = check::run(
        std::slice::from_ref(&base),
        &mistakes,
        |v| Some(compute(&v.key, carried.id, carried.ts, &v.body)),
        |sig| {
            carried
                .v1
                .iter()
                .fold(false, |acc, r| ct_eq(sig.as_bytes(), r.as_bytes()) | acc)
        },
    );
    check::conclude(
        a,
        out,
        &carried.v1.join(" "),
        &format!(
            "No v1 signature in {} matches base64(HMAC-SHA256(base64-decoded secret, id + \".\" \
             + timestamp + \".\" + raw body)).",
            names.sig
        ),
        hints,
    )
}

/// Other ways to turn a `whsec_…` secret into a key: Stripe uses the whole string, and some
/// hand-written validators strip the prefix but do not base64-decode.
fn key_handling_mistakes<'a>(base: &Variant<'a>, raw_key: &[u8]) -> Vec<Variant<'a>> {
    let mut out = vec![
        base.named(
            "key not decoded (Stripe style)",
            "the signature matches when the whole whsec_… string is used as the key \
             (Stripe's key handling); Standard Webhooks/Svix strip whsec_ and \
             base64-decode the rest. Is this really a Stripe webhook (try --provider \
             stripe)?",
        )
        .with_key(raw_key.to_vec()),
    ];
    if let Some(rest) = raw_key.strip_prefix(b"whsec_") {
        out.push(
            base.named(
                "key not base64-decoded",
                "the signature matches when the secret without whsec_ is used as text, \
                 not base64-decoded",
            )
            .with_key(rest.to_vec()),
        );
    }
    out
}

/// `*-id`, `*-timestamp`, `*-signature` (svix-* when `svix`).
pub(crate) fn sign(
    req: &RequestView<'_>,
    secret: &Secret,
    opts: &SignOptions,
    svix: bool,
) -> Result<Signed, SignError> {
    let provider = if svix {
        Provider::Svix
    } else {
        Provider::StandardWebhooks
    };
    let names = if svix { &SVIX } else { &WEBHOOK };
    let ts = opts
        .timestamp
        .ok_or(SignError::MissingTimestamp(provider))?;
    let key = decode_key(secret.expose()).ok_or_else(|| SignError::BadSecret {
        provider,
        reason: "expected whsec_ followed by base64".to_owned(),
    })?;
    let id = opts
        .id
        .clone()
        .or_else(|| req.header_str(names.id).map(str::to_owned))
        .or_else(|| {
            let other = if svix { &WEBHOOK } else { &SVIX };
            req.header_str(other.id).map(str::to_owned)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let mut seed = format!("{ts}.").into_bytes();
            seed.extend_from_slice(req.body);
            format!("msg_{}", &sha256_hex(&seed)[..24])
        });
    let ts = ts.to_string();
    let c = compute(&key, &id, &ts, req.body);
    Ok(Signed::headers(vec![
        (names.id.to_owned(), id),
        (names.ts.to_owned(), ts),
        (names.sig.to_owned(), format!("v1,{}", c.sig)),
    ]))
}

/// `type` · message id.
pub(crate) fn event(req: &RequestView<'_>, provider: Provider) -> Option<Event> {
    let id = req
        .header_str("svix-id")
        .or_else(|| req.header_str("webhook-id"))
        .map(str::to_owned);
    let v = req.json();
    let t = v
        .as_ref()
        .and_then(|v| field(v, "type").or_else(|| field(v, "eventType")))
        .map(str::to_owned);
    if t.is_none() && id.is_none() {
        return None;
    }
    let name = t.unwrap_or_else(|| provider.as_str().to_owned());
    let mut summary = name.clone();
    if let Some(id) = &id {
        summary.push_str(&format!(" · {id}"));
    }
    let mut e = Event::new(name, summary);
    e.id = id;
    if let Some(serde_json::Value::Object(m)) = v {
        e.details = crate::util::details_of(m, req.body);
    }
    Some(e)
}
