//! Public requests: route to a tunnel, forward over HTTP/2, stream the answer back.

use crate::body::{Capped, RelayBody};
use crate::config::strip_port;
use crate::server::{State, text};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{debug, info};
use twk_protocol::{PATH_ROUTE_PREFIX, limits, meta};

/// Where a public request goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// Tunnel name.
    pub(crate) name: String,
    /// Path and query to forward (prefix removed under path routing).
    pub(crate) path_and_query: String,
    /// `/t/<name>` under path routing.
    pub(crate) prefix: Option<String>,
}

/// Routes by path (`/t/<name>/…`) first, then by subdomain (`<name>.<domain>`).
pub(crate) fn route(path_and_query: &str, host: Option<&str>, domain_host: &str) -> Option<Route> {
    if let Some(rest) = path_and_query.strip_prefix(PATH_ROUTE_PREFIX) {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let name = &rest[..end];
        if twk_protocol::validate_name(name).is_err() {
            return None;
        }
        let tail = &rest[end..];
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        return Some(Route {
            name: name.to_string(),
            path_and_query,
            prefix: Some(format!("{PATH_ROUTE_PREFIX}{name}")),
        });
    }
    let host = strip_port(host?).to_ascii_lowercase();
    let label = host.strip_suffix(domain_host)?.strip_suffix('.')?;
    if label.contains('.') || twk_protocol::validate_name(label).is_err() {
        return None;
    }
    Some(Route {
        name: label.to_string(),
        path_and_query: path_and_query.to_string(),
        prefix: None,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn set(h: &mut http::HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Forwards one public request through its tunnel.
pub(crate) async fn forward(
    state: Arc<State>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<RelayBody> {
    let received_ms = now_ms();
    if req.method() == Method::CONNECT {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "twk relay: CONNECT is not accepted\n",
        );
    }
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        return text(
            StatusCode::BAD_REQUEST,
            "twk relay: absolute-form request targets are not accepted\n",
        );
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(route) = route(&path_and_query, host.as_deref(), &state.cfg.domain_host()) else {
        return text(
            StatusCode::NOT_FOUND,
            "twk relay: no tunnel at this address; use https://<name>.<domain>/… or /t/<name>/…\n",
        );
    };
    let Some(mut sender) = state.registry.sender(&route.name) else {
        let mut r = text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "twk relay: no tunnel client is connected for '{}' (tunnel side); retry later\n",
                route.name
            ),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(limits::OFFLINE_RETRY_AFTER_SECS),
        );
        return r;
    };
    let max = state.cfg.max_body;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        // Answered before a byte of the body is read (no 100 Continue is sent).
        let mut r = text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("twk relay: request body exceeds the cap of {max} bytes (sender side)\n"),
        );
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }

    let request_id = state.next_request_id();
    let scheme = state.cfg.scheme().as_str();
    let public_host = host.clone().unwrap_or_else(|| state.cfg.domain.clone());
    let public_url = format!("{scheme}://{public_host}{path_and_query}");
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    twk_protocol::strip_hop_by_hop(&mut headers);
    // A sender must not be able to forge twk's own metadata.
    let forged: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(meta::PREFIX))
        .cloned()
        .collect();
    for k in forged {
        headers.remove(k);
    }
    headers.remove(header::EXPECT);
    set(&mut headers, meta::REQUEST_ID, &request_id);
    set(&mut headers, meta::PUBLIC_URL, &public_url);
    set(&mut headers, meta::REMOTE_ADDR, &remote.to_string());
    set(&mut headers, meta::RECEIVED_AT, &received_ms.to_string());
    set(&mut headers, meta::PROTO, scheme);
    set(&mut headers, meta::HOST, &public_host);
    set(
        &mut headers,
        meta::DEADLINE_MS,
        &state.cfg.request_timeout.as_millis().to_string(),
    );
    if let Some(p) = &route.prefix {
        set(&mut headers, meta::FORWARDED_PREFIX, p);
    }
    let uri = match http::Uri::builder()
        .scheme("http")
        .authority(format!("{}.tunnel", route.name).as_str())
        .path_and_query(route.path_and_query.as_str())
        .build()
    {
        Ok(u) => u,
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "twk relay: invalid request target\n",
            );
        }
    };
    let (capped, exceeded) = Capped::new(body, max);
    let mut out = Request::new(capped.boxed());
    *out.method_mut() = parts.method.clone();
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;

    let wait = state.cfg.request_timeout + limits::RELAY_DEADLINE_MARGIN;
    let result = tokio::time::timeout(wait, sender.send_request(out)).await;
    match result {
        Err(_) => {
            info!(request_id, "tunnel client did not answer in time");
            text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "twk relay: the tunnel client did not answer within {} s (tunnel side)\n",
                    wait.as_secs()
                ),
            )
        }
        Ok(Err(e)) => {
            if exceeded.load(Ordering::SeqCst) {
                let mut r = text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "twk relay: request body exceeds the cap of {max} bytes (sender side)\n"
                    ),
                );
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
            debug!(request_id, error = %e, "tunnel request failed");
            text(
                StatusCode::BAD_GATEWAY,
                "twk relay: the tunnel client disconnected before answering (tunnel side)\n",
            )
        }
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            twk_protocol::strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(Into::into).boxed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_routing_strips_the_prefix() {
        let r = route("/t/abc/hook?x=1", Some("relay.test"), "relay.test").unwrap();
        assert_eq!(r.name, "abc");
        assert_eq!(r.path_and_query, "/hook?x=1");
        assert_eq!(r.prefix.as_deref(), Some("/t/abc"));
        let r = route("/t/abc?x=1", None, "relay.test").unwrap();
        assert_eq!(r.path_and_query, "/?x=1");
        let r = route("/t/abc", None, "relay.test").unwrap();
        assert_eq!(r.path_and_query, "/");
        assert!(route("/t/ABC/x", None, "relay.test").is_none());
        assert!(route("/t//x", None, "relay.test").is_none());
    }

    #[test]
    fn subdomain_routing() {
        let r = route("/hook?a=b", Some("abc.relay.test:8443"), "relay.test").unwrap();
        assert_eq!(r.name, "abc");
        assert_eq!(r.path_and_query, "/hook?a=b");
        assert!(r.prefix.is_none());
        assert!(route("/", Some("relay.test"), "relay.test").is_none());
        assert!(route("/", Some("a.b.relay.test"), "relay.test").is_none());
        assert!(route("/", Some("abcrelay.test"), "relay.test").is_none());
        assert!(route("/", Some("evil.test"), "relay.test").is_none());
        assert!(route("/", None, "relay.test").is_none());
    }
}
