//! Slack `X-Slack-Signature: v0=<hex(HMAC-SHA256(signing secret, "v0:" + ts + ":" + body))>`
//! with `X-Slack-Request-Timestamp`; rejected when `|now - ts| > 300`.

use crate::Cx;
use crate::analysis::{Analysis, Event, Provider, SignError, SignOptions, Signed, Verdict};
use crate::check::{self, Computed, Variant};
use crate::request::RequestView;
use crate::secret::Secret;
use crate::util::{ct_eq, field, hmac_sha256, parse_unix};
use serde_json::{Map, Value};

const SIG: &str = "X-Slack-Signature";
const TS: &str = "X-Slack-Request-Timestamp";
const DEFAULT_TOLERANCE: u64 = 300;

fn compute(key: &[u8], ts: &str, body: &[u8]) -> Computed {
    let mut signed = format!("v0:{ts}:").into_bytes();
    signed.extend_from_slice(body);
    Computed {
        sig: format!("v0={}", hex::encode(hmac_sha256(key, &signed))),
        signed,
    }
}

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    let req = cx.req;
    let mut a = Analysis::new(Some(Provider::Slack), event(req));
    if let Some(n) = req.header_str("x-slack-retry-num") {
        let reason = req.header_str("x-slack-retry-reason").unwrap_or("?");
        a.notes.push(format!(
            "Slack retry #{n} (reason {reason}): answer 2xx within 3 s, or send \
             X-Slack-No-Retry: 1"
        ));
    }
    let Some(raw) = req.header(SIG) else {
        return a.verdict_with(
            Verdict::Unsigned,
            "No X-Slack-Signature header: Slack signs every request, so this was not sent by \
             Slack (or a proxy dropped the header).",
        );
    };
    let received = match std::str::from_utf8(raw).map(str::trim) {
        Ok(s) if s.starts_with("v0=") => s,
        _ => {
            return a.verdict_with(
                Verdict::Malformed,
                "X-Slack-Signature must look like v0=<hex>.",
            );
        }
    };
    let Some(ts_str) = req.header_str(TS) else {
        return a.verdict_with(
            Verdict::Malformed,
            "X-Slack-Request-Timestamp is missing or not text: it is part of the signed string.",
        );
    };
    let Some(ts) = parse_unix(ts_str) else {
        return a.verdict_with(
            Verdict::Malformed,
            format!("X-Slack-Request-Timestamp {ts_str:?} is not a Unix timestamp."),
        );
    };
    let Some(secret) = cx.secrets.get(Provider::Slack) else {
        return a.verdict_with(Verdict::NoSecret, crate::no_secret_message(Provider::Slack));
    };
    let key = secret.expose();
    let base = Variant::base("v0", key, "", req.body);
    let mistakes = base.body_and_key_mistakes(cx, Provider::Slack, req.body, key);
    let out = check::run(
        std::slice::from_ref(&base),
        &mistakes,
        |v| Some(compute(&v.key, ts_str, &v.body)),
        |sig| ct_eq(sig.as_bytes(), received.as_bytes()),
    );
    let mut hints = Vec::new();
    if key.len() != 32 || !key.iter().all(u8::is_ascii_alphanumeric) {
        hints.push(
            "Slack signing secrets are 32 alphanumeric characters; the configured one is not \
             (is it the verification token or the client secret?)"
                .to_owned(),
        );
    }
    let mut a = check::conclude(
        a,
        out,
        received,
        "X-Slack-Signature does not match v0=hex(HMAC-SHA256(signing secret, \"v0:\" + \
         timestamp + \":\" + raw body)).",
        hints,
    );
    a.skew_secs = Some(cx.opts.now_unix.saturating_sub(ts));
    if a.verdict == Verdict::Valid {
        let tol = cx.opts.tolerance(DEFAULT_TOLERANCE);
        if let (Some(skew), Some(tol)) = (check::stale_skew(cx.opts.now_unix, ts, tol, false), tol)
        {
            return check::mark_stale(a, skew, tol);
        }
    }
    a
}

/// `X-Slack-Request-Timestamp` and `X-Slack-Signature`.
pub(crate) fn sign(
    req: &RequestView<'_>,
    secret: &Secret,
    opts: &SignOptions,
) -> Result<Signed, SignError> {
    let ts = opts
        .timestamp
        .ok_or(SignError::MissingTimestamp(Provider::Slack))?
        .to_string();
    let c = compute(secret.expose(), &ts, req.body);
    Ok(Signed::headers(vec![
        (TS.to_owned(), ts),
        (SIG.to_owned(), c.sig),
    ]))
}

/// Slash commands, interactive payloads, Events API callbacks.
pub(crate) fn event(req: &RequestView<'_>) -> Option<Event> {
    if let Some(v) = req.json() {
        return json_event(v, req.body);
    }
    let pairs = crate::form::decode_pairs_upto(req.body, crate::form::NAMING_FIELDS);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    };
    if let Some(payload) = get("payload")
        && let Ok(v) = serde_json::from_str::<Value>(payload)
    {
        return json_event(&v, payload.as_bytes());
    }
    let command = get("command")?;
    let mut summary = format!("slash_command {command}");
    if let Some(team) = get("team_domain") {
        summary.push_str(&format!(" · {team}"));
    }
    if let Some(ch) = get("channel_name") {
        summary.push_str(&format!(" · #{ch}"));
    }
    if let Some(user) = get("user_name") {
        summary.push_str(&format!(" · by {user}"));
    }
    let mut e = Event::new("slash_command", summary);
    e.id = get("trigger_id").map(str::to_owned);
    let mut m = Map::new();
    for (k, v) in &pairs {
        if k != "token" {
            m.entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
    }
    e.details = m;
    Some(e)
}

fn json_event(v: &Value, body: &[u8]) -> Option<Event> {
    let t = field(v, "type")?.to_owned();
    let name = match (t.as_str(), v.pointer("/event/type").and_then(Value::as_str)) {
        ("event_callback", Some(inner)) => inner.to_owned(),
        _ => t.clone(),
    };
    let mut summary = name.clone();
    if let Some(team) =
        field(v, "team_id").or_else(|| v.pointer("/team/domain").and_then(Value::as_str))
    {
        summary.push_str(&format!(" · {team}"));
    }
    let mut e = Event::new(name, summary);
    e.id = field(v, "event_id")
        .or_else(|| field(v, "trigger_id"))
        .map(str::to_owned);
    if let Value::Object(m) = v {
        let mut m = crate::util::details_of(m, body);
        m.remove("token");
        e.details = m;
    }
    Some(e)
}
