//! Delivery identity: what a provider keeps the same when it sends the same webhook again
//! (a retry or a redelivery), so the capture store can number attempts. This is not
//! [`crate::Event::id`]: a Twilio message's `sent` and `delivered` callbacks share the message
//! SID (the event's id) but are two deliveries, each with its own idempotency token.

use crate::RequestView;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

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
    if let Some(k) = json_key(req.body) {
        return Some(k);
    }
    let form = req.header_str("content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if form {
        // Without a string per field: the capture writer runs this on every form it stores.
        return crate::form::values_of(req.body, "uuid")
            .find(|v| !v.is_empty())
            .map(|v| format!("uuid:{v}"));
    }
    None
}

/// A JSON body's top-level fields, their values left unparsed: the capture writer runs this
/// on every body it stores, and a 1 MiB JSON body parsed whole is ~22 MB of values.
type Fields<'a> = HashMap<Cow<'a, str>, &'a RawValue>;

/// A top-level field's value when it is a string.
fn text<'a>(f: &Fields<'a>, name: &str) -> Option<Cow<'a, str>> {
    serde_json::from_str::<Cow<'a, str>>(f.get(name)?.get()).ok()
}

/// Rules 4–6 for a JSON body (an object, or an array of one Bandwidth callback).
fn json_key(body: &[u8]) -> Option<String> {
    match body.trim_ascii_start().first()? {
        b'{' => {
            let f: Fields<'_> = serde_json::from_slice(body).ok()?;
            stripe_key(&f)
                .or_else(|| bandwidth_key(&f))
                .or_else(|| text(&f, "uuid").map(|u| format!("uuid:{u}")))
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
            let [only] = items.as_slice() else {
                return None;
            };
            bandwidth_key(&serde_json::from_str(only.get()).ok()?)
        }
        _ => None,
    }
}

fn stripe_key(f: &Fields<'_>) -> Option<String> {
    let id = text(f, "id")?;
    (text(f, "object")? == "event" && id.starts_with("evt_")).then(|| format!("stripe:{id}"))
}

fn bandwidth_key(f: &Fields<'_>) -> Option<String> {
    let ty = text(f, "type")?;
    let message: Fields<'_> = serde_json::from_str(f.get("message")?.get()).ok()?;
    let id = text(&message, "id")?;
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

    #[test]
    fn json_bodies_are_read_by_their_top_level_fields() {
        let key = |body: &str| delivery_id(&req(Vec::new(), body.as_bytes()));
        let stripe = r#"{"id":"evt_\u0031","object":"event","data":{"object":{"id":"pi_1"}}}"#;
        assert_eq!(key(stripe).as_deref(), Some("stripe:evt_1"));
        let bandwidth = r#"[{"type":"message-delivered","message":{"id":"m-1","to":["+1"]}}]"#;
        assert_eq!(
            key(bandwidth).as_deref(),
            Some("bandwidth:m-1:message-delivered")
        );
        let two = r#"[{"type":"a","message":{"id":"1"}},{"type":"b","message":{"id":"2"}}]"#;
        assert_eq!(key(two), None);
        // A field of another type does not hide the others.
        assert_eq!(key(r#"{"id":5,"uuid":"u-9"}"#).as_deref(), Some("uuid:u-9"));
        assert_eq!(key(r#"{"id":"evt_1","object":"event""#), None);
        assert_eq!(key(r#"  {"uuid":"u"}  "#).as_deref(), Some("uuid:u"));
    }
}
