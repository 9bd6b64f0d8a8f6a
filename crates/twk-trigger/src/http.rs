//! One delivery attempt over HTTP/1.1 (plain or TLS), on a fresh connection as providers'
//! senders make them, within the sender's deadline.

use crate::TriggerError;
use crate::sender::Answer;
use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The most of an answer's body kept (the rest is read, counted and dropped): a whole BXML
/// document (64 KB at most) and more, so the answer to a call can be judged.
pub const KEPT_BODY: usize = 64 * 1024 + 1;

/// Where attempts go.
#[derive(Debug, Clone)]
pub struct Destination {
    /// `http` or `https`.
    pub tls: bool,
    /// Host as in the URL (without userinfo and port).
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
    /// `Host` header: host and any explicit port.
    pub authority: String,
    /// Path and query.
    pub path_and_query: String,
    /// `user:password` from the URL's userinfo (Twilio sends it after a challenge).
    pub userinfo: Option<String>,
}

impl Destination {
    /// Parses an `http://` or `https://` URL.
    pub fn parse(url: &str) -> Result<Destination, TriggerError> {
        let bad = |why: &str| TriggerError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be http:// or https://")),
        };
        let auth = uri.authority().ok_or_else(|| bad("no host"))?.as_str();
        let (userinfo, hostport) = match auth.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, auth),
        };
        let hp: http::uri::Authority = hostport.parse().map_err(|_| bad("bad host"))?;
        let host = hp.host().trim_matches(['[', ']']).to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = hp.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Destination {
            tls,
            host,
            port,
            authority: hostport.to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            userinfo,
        })
    }
}

/// The URL as shown (printed, logged, stored in a report): a password in the userinfo is
/// masked (`https://user:***@host/…`).
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{}", &rest[auth_end..])
        }
        None => url.to_owned(),
    }
}

/// What came back from one attempt.
#[derive(Debug, Clone)]
pub struct Reply {
    /// How it ended.
    pub answer: Answer,
    /// The answer's body, up to [`KEPT_BODY`] bytes.
    pub body: Vec<u8>,
    /// The whole body's length, which `body` may be shorter than.
    pub body_len: u64,
    /// The answer's `Content-Type`.
    pub content_type: Option<Vec<u8>>,
    /// Time to the complete answer (or to the failure).
    pub took: Duration,
}

impl Reply {
    fn none(answer: Answer, took: Duration) -> Reply {
        Reply {
            answer,
            body: Vec::new(),
            body_len: 0,
            content_type: None,
            took,
        }
    }
}

/// A whole answer as read.
struct Got {
    answer: Answer,
    body: Vec<u8>,
    len: u64,
    content_type: Option<Vec<u8>>,
}

/// Sends one request and waits for the whole answer until `deadline`.
pub async fn attempt(
    dest: &Destination,
    tls: Option<&Arc<rustls::ClientConfig>>,
    request: Request<Full<Bytes>>,
    deadline: Duration,
) -> Reply {
    let start = Instant::now();
    let outcome = tokio::time::timeout(deadline, exchange(dest, tls, request)).await;
    let took = start.elapsed();
    match outcome {
        Ok(Ok(got)) => Reply {
            answer: got.answer,
            body: got.body,
            body_len: got.len,
            content_type: got.content_type,
            took,
        },
        Ok(Err(why)) => Reply::none(Answer::ConnectFailed(why), took),
        Err(_) => Reply::none(Answer::TimedOut, took),
    }
}

async fn exchange(
    dest: &Destination,
    tls: Option<&Arc<rustls::ClientConfig>>,
    request: Request<Full<Bytes>>,
) -> Result<Got, String> {
    let tcp = TcpStream::connect((dest.host.as_str(), dest.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", dest.host, dest.port))?;
    let _ = tcp.set_nodelay(true);
    match (dest.tls, tls) {
        (true, Some(cfg)) => {
            let name = rustls::pki_types::ServerName::try_from(dest.host.clone())
                .map_err(|e| format!("bad TLS server name {}: {e}", dest.host))?;
            let stream = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {} failed: {e}", dest.host))?;
            send(TokioIo::new(stream), request).await
        }
        (true, None) => Err("https needs a TLS configuration".to_owned()),
        (false, _) => send(TokioIo::new(tcp), request).await,
    }
}

async fn send<I>(io: I, request: Request<Full<Bytes>>) -> Result<Got, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(conn);
    let response = tx
        .send_request(request)
        .await
        .map_err(|e| format!("the connection broke before an answer: {e}"))?;
    let code = response.status().as_u16();
    let headers = response.headers();
    let www_authenticate = headers
        .get(header::WWW_AUTHENTICATE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let no_retry = headers
        .get("x-slack-no-retry")
        .is_some_and(|v| v.as_bytes() == b"1");
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec());
    let mut body = response.into_body();
    let (mut kept, mut len) = (Vec::new(), 0u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the answer's body broke off: {e}"))?;
        if let Some(data) = frame.data_ref() {
            let room = KEPT_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
            len = len.saturating_add(data.len() as u64);
        }
    }
    driver.abort();
    Ok(Got {
        answer: Answer::Status {
            code,
            www_authenticate,
            no_retry,
        },
        body: kept,
        len,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_with_defaults_and_userinfo() {
        let d = Destination::parse("https://user:pa%40ss@example.com/hook?x=1").expect("url");
        assert!(d.tls);
        assert_eq!((d.host.as_str(), d.port), ("example.com", 443));
        assert_eq!(d.authority, "example.com");
        assert_eq!(d.path_and_query, "/hook?x=1");
        assert_eq!(d.userinfo.as_deref(), Some("user:pa%40ss"));
        let d = Destination::parse("http://127.0.0.1:8787").expect("url");
        assert_eq!((d.port, d.path_and_query.as_str()), (8787, "/"));
        let d = Destination::parse("http://[::1]:9/x").expect("url");
        assert_eq!(d.host, "::1");
        for bad in ["ftp://x/", "localhost:3000", "http://", "not a url"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod shown_tests {
    use super::shown_url;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            shown_url("https://user:secret@example.com/a?b=1"),
            "https://user:***@example.com/a?b=1"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:1/t/x"),
            "http://127.0.0.1:1/t/x"
        );
    }
}
