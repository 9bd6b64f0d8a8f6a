//! Attempt grouping: deliveries of the same event share a group key; the store numbers them
//! 1, 2, 3… in arrival order.
//!
//! Keys, first match wins (all scoped by tunnel name):
//! 1. `I-Twilio-Idempotency-Token` header (Twilio);
//! 2. `X-GitHub-Delivery` header (GitHub; redeliveries keep it);
//! 3. `webhook-id` / `svix-id` header (Standard Webhooks / Svix);
//! 4. a JSON body that is a Stripe event (`"object": "event"`, `"id": "evt_…"`): the event id;
//! 5. a Bandwidth callback (JSON object or one-element array with `type` and `message.id`):
//!    message id + type;
//! 6. a `uuid` field in a form or JSON body (Twilio Verify push / Authy);
//! 7. otherwise, for a non-empty body: method + path + body SHA-256, grouped only with an
//!    earlier delivery less than 24 h before (see [`BODY_HASH_WINDOW_MS`]).
//!
//! Replays (`replay_of` set) are not deliveries and are never grouped.

use crate::model::Exchange;

/// How far back a body-hash match counts as the same event.
pub const BODY_HASH_WINDOW_MS: i64 = 24 * 3_600_000;

/// A group key and whether it only holds within [`BODY_HASH_WINDOW_MS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    /// The key, e.g. `stripe:evt_123`, prefixed by the tunnel name.
    pub key: String,
    /// True for the body-hash fallback (time-windowed).
    pub windowed: bool,
}

/// Computes the attempt group key of an exchange, if it has one.
pub fn group_key(ex: &Exchange) -> Option<GroupKey> {
    if ex.replay_of.is_some() {
        return None;
    }
    let scoped = |k: String| GroupKey {
        key: format!("{}\u{1f}{}", ex.tunnel, k),
        windowed: false,
    };
    let header = |name: &str| {
        ex.request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 512)
    };
    if let Some(v) = header("i-twilio-idempotency-token") {
        return Some(scoped(format!("twilio-idempotency:{v}")));
    }
    if let Some(v) = header("x-github-delivery") {
        return Some(scoped(format!("github:{v}")));
    }
    if let Some(v) = header("webhook-id").or_else(|| header("svix-id")) {
        return Some(scoped(format!("webhook-id:{v}")));
    }
    let body = &ex.request.body;
    let complete = !body.truncated;
    if complete && let Some(json) = parse_json_body(&body.bytes) {
        if let Some(k) = stripe_key(&json).or_else(|| bandwidth_key(&json)) {
            return Some(scoped(k));
        }
        if let Some(u) = json.get("uuid").and_then(|v| v.as_str()) {
            return Some(scoped(format!("uuid:{u}")));
        }
    }
    if complete
        && is_form(ex)
        && let Some(u) = form_field(&body.bytes, "uuid")
    {
        return Some(scoped(format!("uuid:{u}")));
    }
    if body.len == 0 || body.sha256.is_empty() {
        return None;
    }
    Some(GroupKey {
        key: format!(
            "{}\u{1f}body:{} {}:{}",
            ex.tunnel, ex.method, ex.path, body.sha256
        ),
        windowed: true,
    })
}

fn parse_json_body(bytes: &[u8]) -> Option<serde_json::Value> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' && *first != b'[' {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

fn stripe_key(v: &serde_json::Value) -> Option<String> {
    let id = v.get("id")?.as_str()?;
    (v.get("object")?.as_str()? == "event" && id.starts_with("evt_"))
        .then(|| format!("stripe:{id}"))
}

fn bandwidth_key(v: &serde_json::Value) -> Option<String> {
    let obj = match v {
        serde_json::Value::Array(a) if a.len() == 1 => a.first()?,
        other => other,
    };
    let ty = obj.get("type")?.as_str()?;
    let id = obj.get("message")?.get("id")?.as_str()?;
    Some(format!("bandwidth:{id}:{ty}"))
}

fn is_form(ex: &Exchange) -> bool {
    ex.request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-type")
            && h.value
                .to_ascii_lowercase()
                .starts_with(b"application/x-www-form-urlencoded")
    })
}

/// Value of `field` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], field: &str) -> Option<String> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let mut it = pair.splitn(2, |b| *b == b'=');
        let k = percent_decode(it.next()?);
        (k == field.as_bytes())
            .then(|| {
                String::from_utf8_lossy(&percent_decode(it.next().unwrap_or(b""))).into_owned()
            })
            .filter(|v| !v.is_empty())
    })
}

/// Decodes `%XX` escapes and `+` (form encoding). Invalid escapes are kept literally.
pub(crate) fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CapturedBody, Header, Message, Timings};

    fn ex(headers: &[(&str, &str)], body: &str) -> Exchange {
        Exchange {
            id: None,
            tunnel: "t".into(),
            request_id: "r".into(),
            public_url: "https://x/hook".into(),
            remote_addr: None,
            method: "POST".into(),
            path: "/hook".into(),
            target: "http://127.0.0.1:3000".into(),
            request: Message {
                headers: headers
                    .iter()
                    .map(|(n, v)| Header {
                        name: (*n).into(),
                        value: v.as_bytes().to_vec(),
                    })
                    .collect(),
                body: CapturedBody {
                    bytes: body.as_bytes().to_vec(),
                    len: body.len() as u64,
                    sha256: if body.is_empty() {
                        String::new()
                    } else {
                        "abc".into()
                    },
                    truncated: false,
                },
            },
            status: None,
            response: None,
            timings: Timings::default(),
            ..Default::default()
        }
    }

    fn key(e: &Exchange) -> Option<String> {
        group_key(e).map(|k| k.key.replace('\u{1f}', "|"))
    }

    #[test]
    fn keys_by_provider() {
        assert_eq!(
            key(&ex(&[("I-Twilio-Idempotency-Token", "tok")], "a=b")).as_deref(),
            Some("t|twilio-idempotency:tok")
        );
        assert_eq!(
            key(&ex(&[("X-GitHub-Delivery", "g-1")], "{}")).as_deref(),
            Some("t|github:g-1")
        );
        assert_eq!(
            key(&ex(&[("svix-id", "msg_1")], "{}")).as_deref(),
            Some("t|webhook-id:msg_1")
        );
        assert_eq!(
            key(&ex(&[], r#"{"id":"evt_1","object":"event","type":"x"}"#)).as_deref(),
            Some("t|stripe:evt_1")
        );
        assert_eq!(
            key(&ex(
                &[],
                r#"[{"type":"message-delivered","message":{"id":"m1"}}]"#
            ))
            .as_deref(),
            Some("t|bandwidth:m1:message-delivered")
        );
        assert_eq!(
            key(&ex(
                &[("Content-Type", "application/x-www-form-urlencoded")],
                "type=factor.created&uuid=YF%2B1"
            ))
            .as_deref(),
            Some("t|uuid:YF+1")
        );
        assert_eq!(
            key(&ex(&[], "plain")).as_deref(),
            Some("t|body:POST /hook:abc")
        );
        assert_eq!(key(&ex(&[], "")), None);
    }

    #[test]
    fn replays_are_not_grouped() {
        let mut e = ex(&[("X-GitHub-Delivery", "g-1")], "{}");
        e.replay_of = Some(3);
        assert_eq!(group_key(&e), None);
    }
}
