//! Attempt grouping: deliveries of the same event share a group key; the store numbers them
//! 1, 2, 3… in arrival order.
//!
//! Keys (all scoped by tunnel name): the provider's delivery identity
//! ([`twk_providers::delivery_id`]: idempotency tokens, delivery ids, event ids, where each
//! provider keeps them); otherwise, for a non-empty body: method + path + body SHA-256,
//! grouped only with an earlier delivery less than 24 h before (see [`BODY_HASH_WINDOW_MS`]).
//! The provider knowledge lives in `twk-providers`; this module is the grouping policy.
//!
//! Replays (`replay_of` set) are not deliveries and are never grouped.

use crate::exchange::Exchange;

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
    group_key_with(ex, &ex.request.body.sha256)
}

/// [`group_key`] with the request body's SHA-256 as the store computed it (a producer may
/// leave a complete body's hash to the writer).
pub(crate) fn group_key_with(ex: &Exchange, body_sha256: &str) -> Option<GroupKey> {
    if ex.replay_of.is_some() {
        return None;
    }
    let scoped = |k: String| GroupKey {
        key: format!("{}\u{1f}{}", ex.tunnel, k),
        windowed: false,
    };
    let body = &ex.request.body;
    // Body-derived ids need the whole body: a kept prefix counts as no body.
    let complete: &[u8] = if body.truncated { &[] } else { &body.bytes };
    if let Some(id) = twk_providers::delivery_id(&ex.request_view(complete)) {
        return Some(scoped(id));
    }
    if body.len == 0 || body_sha256.is_empty() {
        return None;
    }
    Some(GroupKey {
        key: format!(
            "{}\u{1f}body:{} {}:{}",
            ex.tunnel, ex.method, ex.path, body_sha256
        ),
        windowed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{CapturedBody, Header, Message, Timings};

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
