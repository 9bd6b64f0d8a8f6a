//! Authy event webhooks: the POST body has a field `body` whose value is a JWT signed HS256
//! with the webhook's signing key (the `WSK_…` string itself, as UTF-8). HS256 is pinned.

use crate::Cx;
use crate::analysis::{Analysis, Event, Provider, SignError, SignOptions, Signed, Verdict};
use crate::check::{self, Computed, Variant};
use crate::form::decode_pairs;
use crate::request::RequestView;
use crate::secret::Secret;
use crate::util::{b64_decode_lenient, b64url, b64url_decode, ct_eq, hmac_sha256, json_str};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

/// The 23 public Authy webhook events (AuthySE/webhooks-api README).
pub(crate) const EVENTS: [&str; 23] = [
    "account_recovery_approved",
    "account_recovery_canceled",
    "account_recovery_started",
    "custom_message_not_allowed",
    "device_registration_completed",
    "one_touch_request_responded",
    "phone_change_canceled",
    "phone_change_pin_sent",
    "phone_change_requested",
    "phone_verification_code_is_invalid",
    "phone_verification_code_is_valid",
    "phone_verification_failed",
    "phone_verification_not_found",
    "phone_verification_started",
    "suspended_account",
    "token_invalid",
    "token_verified",
    "too_many_code_verifications",
    "too_many_phone_verifications",
    "totp_token_sent",
    "user_added",
    "user_phone_changed",
    "user_removed",
];

/// One-line descriptions, same order as [`EVENTS`].
pub(crate) const DESCRIPTIONS: [&str; 23] = [
    "account recovery approved",
    "account recovery canceled",
    "account recovery started",
    "custom message not allowed",
    "Authy app registered on a device",
    "OneTouch request answered",
    "phone change canceled",
    "phone change PIN sent",
    "phone change requested",
    "phone verification code is invalid",
    "phone verification code is valid",
    "phone verification failed",
    "phone verification not found",
    "phone verification started",
    "account suspended",
    "token invalid",
    "token verified",
    "too many code verifications",
    "too many phone verifications",
    "TOTP token sent",
    "user added",
    "user phone changed",
    "user removed",
];

/// Where the JWT was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envelope {
    /// JSON object field `body`.
    Json,
    /// Form field `body`.
    Form,
    /// The whole body is the JWT.
    Raw,
}

/// Whether `s` looks like a compact JWS whose header names an `alg`.
fn looks_like_jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    b64url_decode(h)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v.get("alg").is_some())
}

/// How every compact JWT begins: its header is a JSON object, and `{"` (or `{ `) is `eyJ`
/// (`eyA`) in base64url. A header with other whitespace after `{` would not be found here.
const JWT_START: &[u8] = b"ey";

/// Finds the JWT: JSON or form field `body`, or the whole body.
fn find_jwt(req: &RequestView<'_>) -> Option<(String, Envelope)> {
    if let Some(Value::Object(m)) = req.json() {
        if let Some(Value::String(s)) = m.get("body") {
            return Some((s.trim().to_owned(), Envelope::Json));
        }
        return None;
    }
    // Every request that is not JSON comes through here: look at its first bytes before
    // anything reads the whole body (a 1 MiB upload is neither a JWT nor a form with `body=`).
    let body = req.body.trim_ascii();
    if body.starts_with(JWT_START)
        && let Ok(text) = std::str::from_utf8(body)
        && looks_like_jwt(text)
    {
        return Some((text.to_owned(), Envelope::Raw));
    }
    if req.may_be_form()
        && (body.starts_with(b"body=") || memchr::memmem::find(body, b"&body=").is_some())
    {
        return crate::form::value_of(req.body, "body")
            .map(|v| (v.trim().to_owned(), Envelope::Form));
    }
    None
}

/// Whether the request carries an Authy webhook JWT.
pub(crate) fn looks_like(req: &RequestView<'_>) -> bool {
    find_jwt(req).is_some_and(|(jwt, _)| looks_like_jwt(&jwt))
}

/// The `iat` of the claims `sign` would sign: the JWT's in the body (unverified: only to
/// re-sign it unchanged), else a JSON claims body's.
pub(crate) fn carried_iat(req: &RequestView<'_>) -> Option<i64> {
    let claims = match find_jwt(req) {
        Some((jwt, _)) => peek_claims(&jwt)?,
        None => return req.json()?.get("iat")?.as_i64(),
    };
    claims.get("iat")?.as_i64()
}

/// Claims decoded without verification (for naming the event only).
fn peek_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&b64url_decode(payload)?).ok()
}

/// The event name: a known name in `event`/`event_type`/`type`/`name`, else any string value
/// that is one of the 23 events.
fn event_name(claims: &Value) -> Option<String> {
    for k in ["event", "event_type", "event_name", "type", "name"] {
        match claims.get(k) {
            Some(Value::String(s)) => return Some(s.clone()),
            Some(Value::Object(o)) => {
                if let Some(s) = o
                    .get("name")
                    .or_else(|| o.get("type"))
                    .and_then(Value::as_str)
                {
                    return Some(s.to_owned());
                }
            }
            _ => {}
        }
    }
    find_known(claims, 0)
}

fn find_known(v: &Value, depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    match v {
        Value::String(s) if EVENTS.contains(&s.as_str()) => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(|x| find_known(x, depth + 1)),
        Value::Object(o) => o.values().find_map(|x| find_known(x, depth + 1)),
        _ => None,
    }
}

pub(crate) fn event(req: &RequestView<'_>) -> Option<Event> {
    let (jwt, _) = find_jwt(req)?;
    let claims = peek_claims(&jwt)?;
    let name = event_name(&claims).unwrap_or_else(|| "authy_webhook".to_owned());
    let mut summary = name.clone();
    match EVENTS.iter().position(|e| *e == name) {
        Some(i) => {
            summary.push_str(" · ");
            summary.push_str(DESCRIPTIONS[i]);
        }
        None => summary.push_str(" · not one of the 23 documented Authy events"),
    }
    for k in ["authy_id", "user_id", "phone_number"] {
        if let Some(v) = find_field(&claims, k, 0) {
            summary.push_str(&format!(" · {k} {v}"));
            break;
        }
    }
    let mut e = Event::new(name, summary);
    e.id = ["id", "jti", "uuid"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(json_str));
    if let Value::Object(m) = claims {
        e.details = m;
    }
    Some(e)
}

fn find_field(v: &Value, key: &str, depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let o = v.as_object()?;
    if let Some(s) = o.get(key).and_then(json_str) {
        return Some(s);
    }
    o.values().find_map(|x| find_field(x, key, depth + 1))
}

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = vec![Algorithm::HS256];
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    let req = cx.req;
    let a = Analysis::new(Some(Provider::AuthyWebhook), event(req));
    let Some((jwt, envelope)) = find_jwt(req) else {
        return a.verdict_with(
            Verdict::Unsigned,
            "No JWT found: Authy event webhooks carry a JWT in the body field `body`.",
        );
    };
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return a.verdict_with(
            Verdict::Malformed,
            "The `body` field is not a JWT (header.payload.signature).",
        );
    };
    let Some(header) = b64url_decode(h).and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return a.verdict_with(
            Verdict::Malformed,
            "The JWT header is not base64url-encoded JSON.",
        );
    };
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let Some(secret) = cx.secrets.get(Provider::AuthyWebhook) else {
        return a.verdict_with(
            Verdict::NoSecret,
            crate::no_secret_message(Provider::AuthyWebhook),
        );
    };
    let signing_input = format!("{h}.{p}");
    if alg != "HS256" {
        let mut a = a.verdict_with(
            Verdict::Invalid,
            format!(
                "The JWT says alg {alg:?}; Authy webhooks are HS256 and twk pins it, so the \
                 token is refused (alg none or an asymmetric alg here is an algorithm-confusion \
                 attempt, or the token is not from Authy)."
            ),
        );
        a.signed_string = Some(crate::util::escape_bytes(signing_input.as_bytes()));
        if let Some(d) = a.diagnosis.as_mut() {
            d.received = Some(s.to_owned());
            d.signed_string = a.signed_string.clone();
        }
        return a;
    }
    let key = secret.expose();
    let verified =
        jsonwebtoken::decode::<Value>(&jwt, &DecodingKey::from_secret(key), &validation());

    let base = Variant::base("HS256", key, "", signing_input.as_bytes());
    let mut mistakes = Vec::new();
    for (label, why, k) in check::key_variants(cx, Provider::AuthyWebhook, key) {
        mistakes.push(base.named(label, why).with_key(k));
    }
    if let Some(stripped) = key.strip_prefix(b"WSK_") {
        mistakes.push(
            base.named(
                "key without WSK_",
                "the JWT was signed with the key without its WSK_ prefix; Authy uses the whole \
                 WSK_… string as the HS256 key",
            )
            .with_key(stripped.to_vec()),
        );
    }
    if let Some(decoded) = std::str::from_utf8(key)
        .ok()
        .map(|k| k.strip_prefix("WSK_").unwrap_or(k))
        .and_then(b64_decode_lenient)
    {
        mistakes.push(
            base.named(
                "key base64-decoded",
                "the JWT was signed with the base64-decoded key bytes; Authy uses the WSK_… \
                 string itself (as UTF-8) as the HS256 key",
            )
            .with_key(decoded),
        );
    }
    let compute = |v: &Variant<'_>| {
        Some(Computed {
            sig: b64url(&hmac_sha256(&v.key, &v.body)),
            signed: v.body.to_vec(),
        })
    };
    let matches = |sig: &str| ct_eq(sig.as_bytes(), s.as_bytes());
    match verified {
        Ok(data) => {
            let out = check::run(std::slice::from_ref(&base), &[], compute, matches);
            let mut a = a;
            a.verdict = Verdict::Valid;
            a.matched_variant = Some(match envelope {
                Envelope::Json => "HS256 (JSON field body)".to_owned(),
                Envelope::Form => "HS256 (form field body)".to_owned(),
                Envelope::Raw => "HS256 (raw body)".to_owned(),
            });
            a.signed_string = out.primary.map(|c| crate::util::escape_bytes(&c.signed));
            check_times(a, &data.claims, cx)
        }
        Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
            let out = check::run(std::slice::from_ref(&base), &mistakes, compute, matches);
            check::conclude(
                a,
                out,
                s,
                "The JWT signature does not match HS256 with the configured signing key.",
                Vec::new(),
            )
        }
        Err(e) => a.verdict_with(
            Verdict::Malformed,
            format!("The JWT cannot be decoded: {e}."),
        ),
    }
}

/// A NumericDate claim: `None` when absent, `Err` when present but not a number. A
/// fractional value counts as its whole seconds, as PyJWT's `int()` does.
fn time_claim(claims: &Value, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("the JWT claim {name} is {v}, not a NumericDate (seconds)")),
    }
}

/// After a valid signature: `exp`, `nbf` and `iat` against the clock, as RFC 7519 and PyJWT
/// check them (leeway = tolerance, default 0 s; `0` given explicitly turns the check off):
/// expired once `now >= exp` (exp is the first second the token is no longer valid), not yet
/// valid while `nbf > now` or `iat > now` (a token issued in the future).
fn check_times(a: Analysis, claims: &Value, cx: &Cx<'_, '_>) -> Analysis {
    let Some(leeway) = cx.opts.tolerance(0) else {
        return a;
    };
    let leeway_i = i64::try_from(leeway).unwrap_or(i64::MAX);
    let now = cx.opts.now_unix;
    let claim = |name| time_claim(claims, name);
    let (exp, nbf, iat) = match (claim("exp"), claim("nbf"), claim("iat")) {
        (Ok(exp), Ok(nbf), Ok(iat)) => (exp, nbf, iat),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return a.verdict_with(
                Verdict::Malformed,
                format!("{e}; the SDKs reject such a token."),
            );
        }
    };
    if let Some(exp) = exp
        && now.saturating_sub(leeway_i) >= exp
    {
        let skew = now.saturating_sub(exp);
        return stale(
            a,
            skew,
            leeway,
            format!(
                "The JWT signature is correct but it expired {skew} s ago (exp {exp}, leeway \
                 {leeway} s; a token is expired from the second exp on)."
            ),
        );
    }
    for (name, t) in [("nbf", nbf), ("iat", iat)] {
        if let Some(t) = t
            && t > now.saturating_add(leeway_i)
        {
            let skew = now.saturating_sub(t);
            let what = if name == "nbf" {
                format!("it is not valid before {t}")
            } else {
                format!("it was issued in the future (iat {t})")
            };
            return stale(
                a,
                skew,
                leeway,
                format!(
                    "The JWT signature is correct but {what}: {} s from now, leeway {leeway} s \
                     (is the sender's or this machine's clock wrong?).",
                    skew.unsigned_abs()
                ),
            );
        }
    }
    a
}

/// `stale` with a JWT-specific summary.
fn stale(a: Analysis, skew: i64, leeway: u64, summary: String) -> Analysis {
    let mut a = check::mark_stale(a, skew, leeway);
    if let Some(d) = a.diagnosis.as_mut() {
        d.summary = summary;
    }
    a
}

/// Re-signs the JWT in the body (or wraps a JSON claims body as `{"body": jwt}`).
pub(crate) fn sign(
    req: &RequestView<'_>,
    secret: &Secret,
    opts: &SignOptions,
) -> Result<Signed, SignError> {
    let bad = |reason: String| SignError::BadRequest {
        provider: Provider::AuthyWebhook,
        reason,
    };
    let (mut claims, envelope) = match find_jwt(req) {
        Some((jwt, env)) => (
            peek_claims(&jwt).ok_or_else(|| bad("the JWT payload is not base64url JSON".into()))?,
            Some(env),
        ),
        None => match serde_json::from_slice::<Value>(req.body) {
            Ok(v @ Value::Object(_)) => (v, None),
            _ => {
                return Err(bad(
                    "the body has no JWT in a `body` field and is not a JSON object of claims"
                        .into(),
                ));
            }
        },
    };
    if let Some(ts) = opts.timestamp
        && let Value::Object(m) = &mut claims
    {
        shift_times(m, ts);
    }
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose()),
    )
    .map_err(|e| bad(format!("cannot encode the JWT: {e}")))?;
    let mut headers = Vec::new();
    let body = match envelope {
        Some(Envelope::Raw) => jwt.into_bytes(),
        Some(Envelope::Form) => {
            let pairs: Vec<(String, String)> = decode_pairs(req.body)
                .into_iter()
                .map(|(k, v)| {
                    if k == "body" {
                        (k, jwt.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            serde_urlencoded::to_string(&pairs)
                .map_err(|e| bad(format!("cannot encode the form: {e}")))?
                .into_bytes()
        }
        Some(Envelope::Json) => {
            let mut v: Value = serde_json::from_slice(req.body)
                .map_err(|e| bad(format!("the body is not JSON: {e}")))?;
            if let Value::Object(m) = &mut v {
                m.insert("body".to_owned(), Value::String(jwt));
            }
            serde_json::to_vec(&v).map_err(|e| bad(format!("cannot encode JSON: {e}")))?
        }
        None => {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            let mut m = Map::new();
            m.insert("body".to_owned(), Value::String(jwt));
            serde_json::to_vec(&Value::Object(m))
                .map_err(|e| bad(format!("cannot encode JSON: {e}")))?
        }
    };
    Ok(Signed {
        headers,
        url: None,
        body: Some(body),
    })
}

/// Moves `iat` to `ts` and shifts `exp`/`nbf` by the same amount.
fn shift_times(m: &mut Map<String, Value>, ts: i64) {
    let Some(iat) = m.get("iat").and_then(Value::as_i64) else {
        return;
    };
    let delta = ts.saturating_sub(iat);
    m.insert("iat".to_owned(), Value::from(ts));
    for k in ["exp", "nbf"] {
        if let Some(t) = m.get(k).and_then(Value::as_i64) {
            m.insert(k.to_owned(), Value::from(t.saturating_add(delta)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn jwt() -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256"}"#),
            b64(r#"{"event":"x"}"#)
        )
    }

    fn found(body: &[u8]) -> Option<(String, Envelope)> {
        find_jwt(&RequestView::new("POST", "https://x.example/a", body))
    }

    #[test]
    fn the_jwt_is_found_raw_in_a_form_or_in_json() {
        let t = jwt();
        assert_eq!(
            found(format!(" {t}\n").as_bytes()),
            Some((t.clone(), Envelope::Raw))
        );
        let form = format!("body={t}");
        assert_eq!(found(form.as_bytes()), Some((t.clone(), Envelope::Form)));
        // A form whose first key starts like a JWT is still read as a form.
        let form = format!("eyes=2&body={t}");
        assert_eq!(found(form.as_bytes()), Some((t.clone(), Envelope::Form)));
        let json = format!(r#"{{"body":"{t}"}}"#);
        assert_eq!(found(json.as_bytes()), Some((t, Envelope::Json)));
    }

    #[test]
    fn a_body_declared_as_something_other_than_a_form_has_no_form_field() {
        let form = format!("a=1&body={}", jwt());
        let with = |ct: &'static [u8]| {
            find_jwt(&RequestView::with_headers(
                "POST",
                "https://x.example/a",
                vec![("content-type", ct)],
                form.as_bytes(),
            ))
            .map(|(_, e)| e)
        };
        assert_eq!(
            with(b"application/x-www-form-urlencoded"),
            Some(Envelope::Form)
        );
        assert_eq!(
            with(b"Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            Some(Envelope::Form)
        );
        assert_eq!(with(b"application/octet-stream"), None);
        assert_eq!(with(b"text/plain"), None);
        assert_eq!(
            found(form.as_bytes()).map(|(_, e)| e),
            Some(Envelope::Form),
            "no Content-Type"
        );
    }

    #[test]
    fn large_bodies_that_are_no_jwt_are_not_taken_for_one() {
        assert_eq!(found(&vec![b'x'; 1 << 20]), None);
        let mut almost = b"eyJhbGciOiJIUzI1NiJ9".to_vec();
        almost.extend(vec![b'.'; 1 << 20]);
        assert_eq!(found(&almost), None);
        assert_eq!(found(&[0xff; 64]), None);
    }
}
