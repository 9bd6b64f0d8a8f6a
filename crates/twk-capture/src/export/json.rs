//! The `log --json` object of one exchange (one line of NDJSON).
//!
//! Shape (stable; fields may be added):
//! `id`, `time` (RFC 3339), `name`, `method`, `url` (public URL), `path`, `target`,
//! `remote_addr`, `status`, `duration_ms`, `provider`, `event`, `summary`, `verdict`,
//! `secret` (which secret a `valid` or `stale` signature held with: `configured`, or
//! `twk-test` for twk's test secret of a provider with none configured; else null),
//! `attempt`, `replay_of`, `missed` (true: kept by the relay while the client was offline),
//! `failure` ({`side`, `message`} or null), `timings` (Unix ms),
//! `request` and `response` (null when none came back), each
//! {`headers`: [[name, value], …] in order, `body` (UTF-8 text) or `body_base64`,
//! `body_len`, `body_sha256`, `body_truncated`},
//! `handshake` (`{"leg": 1|2, "with": <the other leg's id or null>}`, or `null` when the
//! exchange is not part of a Basic-auth handshake: the key is always present),
//! `lints` (always an array, `[]` when none: `[{"code", "severity", "message"}]`, with
//! `retry-never-came` judged at export time) and `auth` (twk's own Basic-auth check:
//! `{"user", "matched"}`, or `null` when twk did not enforce; never a password).
//! A header value that is not UTF-8 is shown lossily, with its bytes in base64 as a third
//! element (`[name, lossy, base64]`), so that the export stays byte-exact; secret headers
//! are redacted unless `reveal_secrets`.

use super::{BodyText, body_text};
use crate::exchange::Message;
use crate::query::StoredExchange;
use crate::redact::{redact_headers, redact_query};
use crate::time::rfc3339_ms;
use serde_json::{Map, Value, json};

/// Builds the JSON object of one exchange.
pub fn exchange_json(sx: &StoredExchange, reveal_secrets: bool) -> Value {
    let ex = &sx.exchange;
    json!({
        "id": ex.id,
        "time": rfc3339_ms(ex.timings.received_ms),
        "name": ex.tunnel,
        "method": ex.method,
        "url": redact_query(&ex.public_url, reveal_secrets),
        "path": redact_query(&ex.path, reveal_secrets),
        "target": ex.target,
        "remote_addr": ex.remote_addr,
        "status": ex.status,
        "duration_ms": ex.duration_ms(),
        "provider": ex.provider,
        "event": ex.event,
        "summary": ex.summary,
        "verdict": ex.verdict,
        "secret": ex.matched_secret,
        "attempt": sx.attempt,
        "replay_of": ex.replay_of,
        "missed": ex.missed,
        "refused": ex.refused,
        "failure": ex.failure.as_ref().map(|f| json!({"side": f.side, "message": f.message})),
        "timings": {
            "received_ms": ex.timings.received_ms,
            "forwarded_ms": ex.timings.forwarded_ms,
            "first_byte_ms": ex.timings.first_byte_ms,
            "done_ms": ex.timings.done_ms,
        },
        "request": message_json(&ex.request, reveal_secrets),
        "response": ex.response.as_ref().map(|m| message_json(m, reveal_secrets)),
        "handshake": sx.handshake.map(|h| json!({"leg": h.leg.number(), "with": h.with})),
        "lints": sx.lints.iter().flatten().map(|l| json!({
            "code": l.code.as_str(),
            "severity": l.severity.as_str(),
            "message": l.message,
        })).collect::<Vec<_>>(),
        "auth": ex.auth.as_ref().map(|a| json!({"user": a.user, "matched": a.matched})),
    })
}

/// The `request`/`response` object.
pub fn message_json(m: &Message, reveal_secrets: bool) -> Value {
    let headers: Vec<Value> = redact_headers(&m.headers, reveal_secrets)
        .iter()
        .map(|h| match body_text(&h.value) {
            BodyText::Text(v) => json!([h.name, v]),
            BodyText::Base64(b) => json!([h.name, String::from_utf8_lossy(&h.value), b]),
        })
        .collect();
    let mut o = Map::new();
    o.insert("headers".into(), Value::Array(headers));
    match body_text(&m.body.bytes) {
        BodyText::Text(t) => o.insert("body".into(), Value::String(t)),
        BodyText::Base64(b) => o.insert("body_base64".into(), Value::String(b)),
    };
    o.insert("body_len".into(), json!(m.body.len));
    o.insert("body_sha256".into(), json!(m.body.sha256));
    o.insert("body_truncated".into(), json!(m.body.truncated));
    Value::Object(o)
}
