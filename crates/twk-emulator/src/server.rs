//! The listener: HTTP/1.1 by hyper, bodies read up to a bound, each request routed to the
//! API its path belongs to. The emulator listens on loopback by default, but it still
//! treats every byte as hostile: bounded bodies, bounded connections, a header deadline.

use crate::Shared;
use crate::wire::{ApiRequest, ApiResponse, TwilioCode, decode_form, not_found, twilio_error};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The largest request body taken (API calls are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// A body must arrive within this (a slow body would hold one of the connection slots).
const BODY_DEADLINE: Duration = Duration::from_secs(10);

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, _) = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "emulator accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "emulator connection");
            }
            drop(permit);
        });
    }
}

async fn answer(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let authy = crate::authy::is_authy_path(req.uri().path());
    let api = match read(req).await {
        Ok(api) => api,
        // Refused before routing: still in the shape of the API the path belongs to.
        Err(refused) if authy => return render(crate::authy::reshape(refused)),
        Err(refused) => return render(refused),
    };
    tracing::debug!(method = %api.method, path = %twk_sanitize::clean(&api.path), "emulator request");
    let out = route(shared, &api).await;
    render(out)
}

async fn route(shared: &Arc<Shared>, req: &ApiRequest) -> ApiResponse {
    let path = req.path.as_str();
    if path.starts_with("/v2/") {
        return crate::verify::handle(shared, req);
    }
    if path == crate::authy::WEBHOOKS || path.starts_with(crate::authy::WEBHOOKS_SLASH) {
        return crate::authy::webhooks(shared, req);
    }
    if path.starts_with("/protected/") {
        return crate::authy::protected(shared, req).await;
    }
    if path == crate::deliver::CONTROL_PATH {
        return crate::deliver::control(shared, req).await;
    }
    not_found(path)
}

/// Reads the body (bounded) and decodes the parameters.
async fn read(req: Request<Incoming>) -> Result<ApiRequest, ApiResponse> {
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(BODY_DEADLINE, Limited::new(body, MAX_BODY).collect()).await;
    let body = match read {
        Ok(Ok(b)) => b.to_bytes(),
        Err(_) => {
            let mut r = twilio_error(
                TwilioCode::TooLarge,
                "the request body did not arrive within 10 s",
            );
            r.status = StatusCode::REQUEST_TIMEOUT;
            return Err(r);
        }
        Ok(Err(_)) => {
            return Err(twilio_error(
                TwilioCode::TooLarge,
                format!("the request body is over {} KiB", MAX_BODY / 1024),
            ));
        }
    };
    let query = decode_form(parts.uri.query().unwrap_or("").as_bytes())
        .map_err(|why| crate::wire::invalid("query", why))?;
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    // curl -d without a Content-Type is still a form (the Authy demo sends GET bodies so).
    let looks_form =
        !is_form && !body.is_empty() && parts.headers.get(header::CONTENT_TYPE).is_none();
    let form = match is_form || looks_form {
        true => decode_form(&body).map_err(|why| crate::wire::invalid("body", why))?,
        false => Vec::new(),
    };
    Ok(ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        form,
        body,
        headers: parts.headers,
    })
}

fn render(r: ApiResponse) -> Response<Full<Bytes>> {
    let body = match &r.body {
        Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        None => Bytes::new(),
    };
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = r.status;
    if r.body.is_some() {
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    for (k, v) in r.headers {
        out.headers_mut().insert(k, v);
    }
    if r.status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!("emulator answered 500");
    }
    out
}
