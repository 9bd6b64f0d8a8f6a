//! Requests the relay kept while this client was offline, handed over on reconnect
//! (`twk_protocol::kept`): opened with the client's key, turned into an exchange marked
//! `missed` (the 503 the sender got, the time the relay received it), and acknowledged only
//! once the observer has it stored. Never forwarded to the target: delivering one to the app
//! is a replay the user (or `--deliver-missed`) asks for.

use crate::forward::{AgentBody, Shared};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use std::sync::Arc;
use twk_capture::{CapturedBody, Exchange, Failure, Header, Message, Side, Timings};
use twk_protocol::kept::KeptRequest;

/// The largest sealed hand-off accepted (a kept body is base64 inside the box).
const MAX_SEALED: usize = 96 * 1024 * 1024;

/// The client's answer to a request from the relay itself (a hand-off, a notice).
pub(crate) fn answer(status: StatusCode, why: &str) -> Response<AgentBody> {
    twk_transport::body::text_response(status, format!("twk: {why}\n"), "client")
}

/// The whole body of a request from the relay itself, at most `max` bytes; else the 400 that
/// says `what` did not arrive whole.
pub(crate) async fn whole_body(
    req: Request<Incoming>,
    max: usize,
    what: &str,
) -> Result<bytes::Bytes, Response<AgentBody>> {
    match http_body_util::Limited::new(req.into_body(), max)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(answer(
            StatusCode::BAD_REQUEST,
            &format!("{what} did not arrive whole"),
        )),
    }
}

/// Handles one hand-off from the relay.
pub(crate) async fn receive(shared: Arc<Shared>, req: Request<Incoming>) -> Response<AgentBody> {
    let Some(key) = shared.cfg().owner_key.as_ref() else {
        return answer(StatusCode::UNPROCESSABLE_ENTITY, "this client keeps no key");
    };
    let sealed = match whole_body(req, MAX_SEALED, "the kept request").await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let kept = match key.open(&sealed) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "a kept request does not open with this client's key");
            return answer(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
        }
    };
    let request_id = kept.request_id.clone();
    let s = shared.clone();
    let Some(ex) = shared
        .analyse(kept.body.len(), move || exchange(&s, kept))
        .await
    else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "not recorded; keep it");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.observer().missed(ex, tx);
    match rx.await {
        Ok(true) => answer(StatusCode::NO_CONTENT, "recorded"),
        _ => {
            tracing::warn!(
                request_id,
                "a kept request could not be recorded; the relay keeps it"
            );
            answer(StatusCode::SERVICE_UNAVAILABLE, "not recorded; keep it")
        }
    }
}

/// The kept request's headers as a live request's reach the app (`Host`, the forwarding
/// headers), in order; a header the relay kept that `http` cannot hold goes as it was.
fn as_for_the_target(cfg: &crate::AgentConfig, k: &KeptRequest) -> Vec<Header> {
    let mut map = http::HeaderMap::with_capacity(k.headers.len());
    for (name, value) in &k.headers {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) else {
            return k
                .headers
                .iter()
                .map(|(name, value)| Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect();
        };
        map.append(n, v);
    }
    crate::forward::kept_for_the_target(cfg, &mut map, &k.public_url, &k.path, &k.remote_addr);
    crate::forward::headers_to_vec(&map)
}

/// The exchange of a kept request: the sender's request as the relay received it, the 503
/// it was answered, marked `missed`.
fn exchange(shared: &Shared, k: KeptRequest) -> Exchange {
    let cfg = shared.cfg();
    let headers = as_for_the_target(cfg, &k);
    let mut ex = Exchange {
        tunnel: shared.name(),
        request_id: k.request_id,
        public_url: k.public_url,
        remote_addr: Some(k.remote_addr),
        method: k.method,
        path: k.path,
        target: cfg.target.url(),
        request: Message {
            headers,
            body: CapturedBody::capped(&k.body, cfg.capture_cap),
        },
        status: Some(k.answered),
        timings: Timings {
            received_ms: k.received_ms,
            forwarded_ms: None,
            first_byte_ms: None,
            done_ms: Some(k.received_ms),
        },
        failure: Some(Failure {
            side: Side::Tunnel,
            message: "arrived while twk-tunnel was offline: the relay answered the sender 503 \
                      + Retry-After and kept the request for this client"
                .to_owned(),
        }),
        missed: true,
        ..Exchange::default()
    };
    // Checked as of when it arrived: a timestamped signature was fresh then.
    crate::forward::annotate_live(&mut ex, cfg, k.received_ms / 1000);
    ex
}
