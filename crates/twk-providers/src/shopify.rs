//! Shopify `X-Shopify-Hmac-Sha256: base64(HMAC-SHA256(app client secret, raw body))`.

use crate::Cx;
use crate::analysis::{Analysis, Event, Provider, Signed, Verdict};
use crate::check::{self, Computed, Variant};
use crate::request::RequestView;
use crate::secret::Secret;
use crate::util::{b64, b64_decode_strict, ct_eq, hmac_sha256};

const HEADER: &str = "X-Shopify-Hmac-Sha256";

fn compute(key: &[u8], body: &[u8]) -> Computed {
    Computed {
        sig: b64(&hmac_sha256(key, body)),
        signed: body.to_vec(),
    }
}

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    let req = cx.req;
    let a = Analysis::new(Some(Provider::Shopify), event(req));
    let Some(raw) = req.header(HEADER) else {
        return a.verdict_with(
            Verdict::Unsigned,
            "No X-Shopify-Hmac-Sha256 header: Shopify signs HTTPS webhook deliveries, so this \
             was not sent by Shopify (or a proxy dropped the header).",
        );
    };
    let received = match std::str::from_utf8(raw).map(str::trim) {
        Ok(s) if b64_decode_strict(s).is_some() => s,
        _ => {
            return a.verdict_with(Verdict::Malformed, "X-Shopify-Hmac-Sha256 is not base64.");
        }
    };
    let Some(secret) = cx.secrets.get(Provider::Shopify) else {
        return a.verdict_with(
            Verdict::NoSecret,
            crate::no_secret_message(Provider::Shopify),
        );
    };
    let key = secret.expose();
    let base = Variant::base("base64", key, "", req.body);
    let mistakes = base.body_and_key_mistakes(cx, Provider::Shopify, req.body, key);
    let out = check::run(
        std::slice::from_ref(&base),
        &mistakes,
        |v| Some(compute(&v.key, &v.body)),
        |sig| ct_eq(sig.as_bytes(), received.as_bytes()),
    );
    let mut hints = vec![
        "after a secret rotation Shopify may keep signing with the old secret for up to an hour"
            .to_owned(),
    ];
    if req.body.is_empty() {
        hints.push("the body is empty; Shopify's libraries reject empty bodies".to_owned());
    }
    check::conclude(
        a,
        out,
        received,
        "X-Shopify-Hmac-Sha256 does not match base64(HMAC-SHA256(app client secret, raw body)).",
        hints,
    )
}

/// `X-Shopify-Hmac-Sha256`.
pub(crate) fn sign(req: &RequestView<'_>, secret: &Secret) -> Signed {
    Signed::headers(vec![(
        HEADER.to_owned(),
        compute(secret.expose(), req.body).sig,
    )])
}

/// `X-Shopify-Topic` · shop · API version.
pub(crate) fn event(req: &RequestView<'_>) -> Option<Event> {
    let topic = req.header_str("x-shopify-topic")?;
    let mut summary = topic.to_owned();
    if let Some(shop) = req.header_str("x-shopify-shop-domain") {
        summary.push_str(&format!(" · {shop}"));
    }
    if let Some(v) = req.header_str("x-shopify-api-version") {
        summary.push_str(&format!(" · API {v}"));
    }
    let mut e = Event::new(topic, summary);
    e.id = req
        .header_str("x-shopify-webhook-id")
        .or_else(|| req.header_str("x-shopify-event-id"))
        .map(str::to_owned);
    if let Some(serde_json::Value::Object(m)) = req.json() {
        e.details = crate::util::details_of(m, req.body);
    }
    Some(e)
}
