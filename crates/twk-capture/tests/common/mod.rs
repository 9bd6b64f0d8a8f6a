//! Helpers shared by the store tests.
#![allow(dead_code, clippy::unwrap_used)]

use twk_capture::{CapturedBody, Exchange, Header, Message, Side, Store, StoreOptions, Timings};

pub fn body(bytes: &[u8]) -> CapturedBody {
    CapturedBody::from_bytes(bytes)
}

pub fn headers(h: &[(&str, &str)]) -> Vec<Header> {
    h.iter()
        .map(|(n, v)| Header {
            name: (*n).to_owned(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

/// A plausible exchange received at `at_ms`.
pub fn exchange(tunnel: &str, at_ms: i64, path: &str, body_bytes: &[u8]) -> Exchange {
    Exchange {
        id: None,
        tunnel: tunnel.to_owned(),
        request_id: format!("req-{at_ms}"),
        public_url: format!("https://{tunnel}.twk.example{path}"),
        remote_addr: Some("203.0.113.7:51234".into()),
        method: "POST".into(),
        path: path.to_owned(),
        target: "http://127.0.0.1:3000".into(),
        request: Message {
            headers: headers(&[
                ("host", "127.0.0.1:3000"),
                ("content-type", "application/json"),
                ("content-length", &body_bytes.len().to_string()),
            ]),
            body: body(body_bytes),
        },
        status: Some(200),
        response: Some(Message {
            headers: headers(&[("content-type", "text/plain")]),
            body: body(b"ok"),
        }),
        timings: Timings {
            received_ms: at_ms,
            forwarded_ms: Some(at_ms + 2),
            first_byte_ms: Some(at_ms + 10),
            done_ms: Some(at_ms + 12),
        },
        ..Default::default()
    }
}

pub fn with_event(mut ex: Exchange, provider: &str, event: &str, verdict: &str) -> Exchange {
    ex.provider = Some(provider.into());
    ex.event = Some(event.into());
    ex.verdict = Some(verdict.parse().expect("a verdict id"));
    ex
}

pub fn failed(mut ex: Exchange, side: Side) -> Exchange {
    ex.status = None;
    ex.response = None;
    ex.failure = Some(twk_capture::Failure {
        side,
        message: "connection refused".into(),
    });
    ex
}

pub fn open(dir: &std::path::Path) -> Store {
    Store::open(&StoreOptions::new(dir.join("twk"))).unwrap()
}
