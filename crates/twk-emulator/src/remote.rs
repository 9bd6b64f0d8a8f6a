//! Firing through another process's emulator: `POST /twk/v1/fire` with its control token
//! (from its runtime file), over one plain HTTP/1.1 connection on loopback.

use crate::EmulatorError;
use crate::deliver::{CONTROL_PATH, FireRequest, Fired};
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Deliveries can wait out one slow webhook after another; the emulator answers when all
/// are done.
const DEADLINE: Duration = Duration::from_secs(120);
const MAX_ANSWER: usize = 4 * 1024 * 1024;

fn remote(e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Fire(format!("the emulator: {e}"))
}

/// Asks the emulator at `base_url` (`http://host:port`) to fire `req`.
pub async fn fire_remote(
    base_url: &str,
    control_token: &str,
    req: &FireRequest,
) -> Result<Fired, EmulatorError> {
    let uri: http::Uri = base_url.parse().map_err(remote)?;
    let authority = uri
        .authority()
        .ok_or_else(|| remote("its URL has no host"))?
        .clone();
    let body = serde_json::to_vec(req).map_err(remote)?;
    let request = Request::post(CONTROL_PATH)
        .header(header::HOST, authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {control_token}"))
        .body(Full::new(Bytes::from(body)))
        .map_err(remote)?;
    let exchange = async {
        let port = authority.port_u16().unwrap_or(80);
        // `[::1]` in a URL is `::1` to connect to.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(remote)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(remote)?;
        tokio::spawn(conn);
        let answer = send.send_request(request).await.map_err(remote)?;
        let status = answer.status();
        let bytes = Limited::new(answer.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(remote)?
            .to_bytes();
        if !status.is_success() {
            let why = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("answered {status}"));
            return Err(EmulatorError::Refused(why));
        }
        serde_json::from_slice::<Fired>(&bytes).map_err(remote)
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| remote("no answer within 120 s"))?
}
