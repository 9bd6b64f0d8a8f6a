//! Delivery identity: what a provider keeps the same when it sends the same webhook again
//! (a retry or a redelivery), so the capture store can number attempts. This is not
//! [`crate::Event::id`]: a Twilio message's `sent` and `delivered` callbacks share the message
//! SID (the event's id) but are two deliveries, each with its own idempotency token.

use crate::RequestView;

/// Longest header value taken as an identity (longer ones are not ids).
const MAX_ID_LEN: usize = 512;

/// The delivery identity of a request, first match wins:
/// 1. `I-Twilio-Idempotency-Token` (Twilio);
/// 2. `X-GitHub-Delivery` (GitHub; redeliveries keep it);
/// 3. `webhook-id` / `svix-id` (Standard Webhooks / Svix);
/// 4. a JSON body that is a Stripe event (`"object": "event"`, `"id": "evt_…"`): the event id;
/// 5. a Bandwidth callback (JSON object or one-element array with `type` and `message.id`):
///    message id and type;
/// 6. a `uuid` field in a JSON or form body (Twilio Verify push / Authy).
///
/// `req.body` must be the complete body (pass an empty one when only a prefix was kept).
pub fn delivery_id(req: &RequestView<'_>) -> Option<String> {
    let header = |name: &str| {
        req.header_str(name)
            .filter(|v| !v.is_empty() && v.len() <= MAX_ID_LEN)
    };
    if let Some(v) = header("i-twilio-idempotency-token") {
        return Some(format!("twilio-idempotency:{v}"));
    }
    if let Some(v) = header("x-github-delivery") {
        return Some(format!("github:{v}"));
    }
    if let Some(v) = header("webhook-id").or_else(|| header("svix-id")) {
        return Some(format!("webhook-id:{v}"));
    }
    if let Some(json) = req.json().filter(|v| v.is_object() || v.is_array()) {
        if let Some(k) = stripe_key(json).or_else(|| bandwidth_key(json)) {
            return Some(k);
        }
        if let Some(u) = json.get("uuid").and_then(|v| v.as_str()) {
            return Some(format!("uuid:{u}"));
        }
    }
    let form = req.header_str("content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if form {
        // The first non-empty `uuid`, without a string per field (the capture writer runs
        // this on every form it stores).
        let mut start = 0;
        while let Some(at) = crate::form::value_at(&req.body[start..], "uuid") {
            let (value, next) = (at.value, start + at.end);
            if !value.is_empty() {
                return Some(format!("uuid:{value}"));
            }
            start = next;
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(headers: Vec<(&'a str, &'a [u8])>, body: &'a [u8]) -> RequestView<'a> {
        RequestView::with_headers("POST", "https://x.example/hook", headers, body)
    }

    #[test]
    fn twilio_callbacks_of_one_message_are_different_deliveries() {
        let form: &[u8] = b"MessageSid=SM1&MessageStatus=sent";
        let ct: &[u8] = b"application/x-www-form-urlencoded";
        let sent = req(
            vec![
                ("content-type", ct),
                ("i-twilio-idempotency-token", b"tok-1"),
            ],
            form,
        );
        let delivered = req(
            vec![
                ("content-type", ct),
                ("i-twilio-idempotency-token", b"tok-2"),
            ],
            b"MessageSid=SM1&MessageStatus=delivered",
        );
        assert_ne!(delivery_id(&sent), delivery_id(&delivered));
        assert_eq!(
            delivery_id(&sent).as_deref(),
            Some("twilio-idempotency:tok-1")
        );
    }

    #[test]
    fn body_ids_and_hostile_headers() {
        let stripe = br#"{"id":"evt_1","object":"event","type":"x"}"#;
        assert_eq!(
            delivery_id(&req(vec![], stripe)).as_deref(),
            Some("stripe:evt_1")
        );
        let bw = br#"[{"type":"message-delivered","message":{"id":"m1"}}]"#;
        assert_eq!(
            delivery_id(&req(vec![], bw)).as_deref(),
            Some("bandwidth:m1:message-delivered")
        );
        let long = vec![b'a'; MAX_ID_LEN + 1];
        assert_eq!(
            delivery_id(&req(vec![("x-github-delivery", &long)], b"")),
            None
        );
        let form = req(
            vec![(
                "content-type",
                b"application/x-www-form-urlencoded; charset=utf-8",
            )],
            b"a=1&uuid=u%2D1",
        );
        assert_eq!(delivery_id(&form).as_deref(), Some("uuid:u-1"));
        // The first non-empty one, as a full decode would find it.
        let ct: &[u8] = b"application/x-www-form-urlencoded";
        let form = req(
            vec![("content-type", ct)],
            b"uuid=&a=1&uu%69d=second&uuid=third",
        );
        assert_eq!(delivery_id(&form).as_deref(), Some("uuid:second"));
        let form = req(vec![("content-type", ct)], b"uuid=&uuid");
        assert_eq!(delivery_id(&form), None);
    }
}
