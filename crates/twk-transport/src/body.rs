//! The body type both ends of the tunnel use, and the short plain-text answers twk itself gives.

use bytes::Bytes;
use http_body_util::BodyExt;

/// Error carried by boxed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A streaming body on any leg of the tunnel.
pub type TunnelBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body of fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> TunnelBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A short plain-text answer produced by twk itself, marked with
/// [`twk_protocol::ERROR_SOURCE_HEADER`] = `source` (`relay` or `client`) so senders, tests and
/// the inspector can tell it from the app's own answers.
pub fn text_response(
    status: http::StatusCode,
    body: impl Into<String>,
    source: &'static str,
) -> http::Response<TunnelBody> {
    let mut r = http::Response::new(full(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        twk_protocol::ERROR_SOURCE_HEADER,
        http::HeaderValue::from_static(source),
    );
    r
}
