//! Requests the relay refused itself (`twk_protocol::refused`), told to this client in a batch:
//! each becomes an exchange marked `refused` (its head as the relay received it, the answer
//! the sender got, no body), so that a webhook the app never saw is in the log, the inspector
//! and `--json` like any other. Never forwarded to the target.

use crate::forward::{AgentBody, Shared};
use crate::kept::{answer, whole_body};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;
use twk_capture::{CapturedBody, Exchange, Failure, Header, Message, Side, Timings};
use twk_protocol::refused::{
    MAX_BATCH_BYTES, MAX_LISTED, RefusedBatch, RefusedFor, RefusedRequest,
};

/// Handles one batch from the relay.
pub(crate) async fn receive(shared: Arc<Shared>, req: Request<Incoming>) -> Response<AgentBody> {
    let body = match whole_body(req, MAX_BATCH_BYTES, "the notice").await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let mut batch: RefusedBatch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "the relay's notice of refused requests is malformed");
            return answer(StatusCode::BAD_REQUEST, "malformed notice");
        }
    };
    within_bound(&mut batch);
    if let Some(u) = &batch.unkept {
        shared.observer().unkept(u);
    }
    for r in batch.refused {
        shared.observer().exchange(exchange(&shared, r));
    }
    if batch.unlisted > 0 {
        shared.observer().refused_unlisted(batch.unlisted);
    }
    answer(StatusCode::NO_CONTENT, "recorded")
}

/// The relay lists at most [`MAX_LISTED`] requests a batch; past it (a relay that does not
/// keep to it) the rest are counted, not recorded.
fn within_bound(batch: &mut RefusedBatch) {
    if batch.refused.len() > MAX_LISTED {
        let over = batch.refused.len() - MAX_LISTED;
        batch.refused.truncate(MAX_LISTED);
        batch.unlisted = batch.unlisted.saturating_add(over as u64);
    }
}

/// The exchange of a refused request: its head, the relay's answer, marked `refused`.
fn exchange(shared: &Shared, r: RefusedRequest) -> Exchange {
    let cfg = shared.cfg();
    let status = r.refused_for.status();
    let mut message = r.refused_for.explain(r.declared_len);
    if r.headers_cut {
        message.push_str("; some of its headers were left out of the relay's notice");
    }
    let mut ex = Exchange {
        tunnel: shared.name(),
        request_id: r.request_id,
        public_url: r.public_url,
        remote_addr: Some(r.remote_addr),
        method: r.method,
        path: r.path,
        target: cfg.target.url(),
        request: Message {
            headers: pairs(r.headers),
            body: unread_body(r.declared_len),
        },
        status: Some(status),
        response: Some(Message {
            headers: answer_headers(r.refused_for),
            body: CapturedBody::from_bytes(r.answer.as_bytes()),
        }),
        timings: Timings {
            received_ms: r.received_ms,
            forwarded_ms: None,
            first_byte_ms: Some(r.received_ms),
            done_ms: Some(r.received_ms),
        },
        failure: Some(Failure {
            side: Side::Sender,
            message,
        }),
        refused: true,
        ..Exchange::default()
    };
    // Provider and event from the head; a body signature cannot be checked without the body.
    crate::forward::annotate_live(&mut ex, cfg, r.received_ms / 1000);
    ex
}

/// The body the relay never read: its declared length, none of its bytes (`truncated`, so no
/// signature over it is judged); an empty body is known whole.
fn unread_body(declared: Option<u64>) -> CapturedBody {
    match declared {
        Some(0) => CapturedBody::from_bytes(b""),
        n => CapturedBody {
            bytes: Vec::new(),
            len: n.unwrap_or(0),
            sha256: String::new(),
            truncated: true,
        },
    }
}

fn pairs(headers: Vec<(String, Vec<u8>)>) -> Vec<Header> {
    headers
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect()
}

/// The headers of the relay's answer, as it sent them.
fn answer_headers(why: RefusedFor) -> Vec<Header> {
    let h = |name: &str, value: String| Header {
        name: name.to_owned(),
        value: value.into_bytes(),
    };
    let mut v = vec![
        h("content-type", "text/plain; charset=utf-8".to_owned()),
        h(twk_protocol::ERROR_SOURCE_HEADER, "relay".to_owned()),
    ];
    match why {
        RefusedFor::OverRate { retry_after_secs } => {
            v.push(h("retry-after", retry_after_secs.to_string()));
        }
        RefusedFor::BodyTooLarge { .. } => v.push(h("connection", "close".to_owned())),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_past_the_bound_records_the_bound_and_counts_the_rest() {
        let one = RefusedRequest {
            request_id: "r".into(),
            received_ms: 1,
            method: "GET".into(),
            path: "/".into(),
            public_url: "http://relay.test/t/a/".into(),
            remote_addr: "127.0.0.1:1".into(),
            headers: Vec::new(),
            headers_cut: false,
            declared_len: Some(0),
            refused_for: RefusedFor::OverRate {
                retry_after_secs: 1,
            },
            answer: String::new(),
        };
        let mut batch = RefusedBatch {
            refused: vec![one; MAX_LISTED + 9],
            unlisted: 5,
            unkept: None,
        };
        within_bound(&mut batch);
        assert_eq!(batch.refused.len(), MAX_LISTED);
        assert_eq!(batch.unlisted, 14);
    }

    #[test]
    fn the_relay_knows_every_providers_signature_header() {
        use twk_protocol::refused::looks_signed;
        for p in twk_providers::Provider::ALL {
            for h in p.signature_headers() {
                assert!(looks_signed([*h].into_iter()), "{p}: {h}");
            }
        }
        assert!(
            looks_signed(["Authorization"].into_iter()),
            "Bandwidth's Basic auth"
        );
        assert!(!looks_signed(["content-type", "user-agent"].into_iter()));
    }

    #[test]
    fn an_unread_body_is_judged_by_nobody_but_an_empty_one_is_whole() {
        let big = unread_body(Some(30_000_000));
        assert!(big.truncated && big.bytes.is_empty());
        assert_eq!(big.len, 30_000_000);
        let chunked = unread_body(None);
        assert!(chunked.truncated, "length unknown: never judged whole");
        let empty = unread_body(Some(0));
        assert!(!empty.truncated);
        assert_eq!(empty.sha256, CapturedBody::from_bytes(b"").sha256);
    }
}
