//! Replay: re-send a captured request to the local target (or an explicit `--to`), capture
//! the answer, and hand back a new [`Exchange`] linked to the original (`replay_of`).
//!
//! Used by `twk-tunnel replay` and the terminal inspector.
//!
//! Safety rules (reliability §2.4, §2.9):
//! - the request is built with `http` types: a header name or value with CR, LF, NUL or other
//!   forbidden bytes is rejected, so nothing can be smuggled into the HTTP/1 stream;
//! - hop-by-hop headers (`Connection` and what it lists, `Keep-Alive`, `Proxy-*`, `TE`,
//!   `Transfer-Encoding`, `Upgrade`) are stripped and `Content-Length` is recomputed;
//! - the only host contacted is the recorded local target or the explicit `to` URL
//!   (plain `http://`), once: redirects are returned, never followed;
//! - verbatim by default (the original signature headers are kept); re-signing happens only
//!   when asked ([`ReplayOptions::resign`]);
//! - sent elsewhere ([`ReplayOptions::to`] on another host than the recorded target), `Host`
//!   names that host: the recorded `Host` is the one the recorded target saw, and a request
//!   whose `Host` names another server than the one it reaches is misrouted by virtual hosts
//!   and proxies. [`ReplayOptions::keep_host`] keeps it; a `Host` header edit always wins.

use crate::forward::headers_to_vec;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use sha2::Digest as _;
use std::time::Duration;
use twk_capture::{CapturedBody, Exchange, Failure, Message, Side, Timings};
use twk_providers::{Provider, RequestView, Secret, Secrets, SignOptions};

/// Default deadline for the whole replay (connect, send, response complete).
pub const DEFAULT_REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// What to change when replaying. The default replays verbatim to the recorded target.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Send here instead of the recorded target: `http://host:port[/base]`.
    pub to: Option<String>,
    /// With `to` on another host: keep the recorded `Host` instead of naming that host.
    pub keep_host: bool,
    /// Header edits, applied in order: `(name, Some(value))` replaces every header of that
    /// name (keeping the first one's position) or appends it; `(name, None)` removes it.
    pub headers: Vec<(String, Option<String>)>,
    /// Replacement body.
    pub body: Option<Vec<u8>>,
    /// Recompute the provider's signature for the (edited) request with a fresh timestamp
    /// and the provider's secret in `secrets`: the configured one, else twk's test secret.
    pub resign: bool,
    /// Provider secrets: used for `resign`, and to give the replay its own verdict.
    pub secrets: Secrets,
    /// Deadline for the whole replay.
    pub timeout: Duration,
    /// Stored bytes per body in the returned exchange (the store caps again).
    pub capture_cap: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            to: None,
            keep_host: false,
            headers: Vec::new(),
            body: None,
            resign: false,
            secrets: Secrets::new(),
            timeout: DEFAULT_REPLAY_TIMEOUT,
            capture_cap: twk_capture::DEFAULT_BODY_CAP,
        }
    }
}

/// Why a replay could not be attempted (network failures are not errors: they come back as
/// an exchange with a [`Failure`]).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The target URL is not a plain `http://host:port[/base]` URL.
    #[error("replay target {0:?} must be an http:// URL (e.g. http://127.0.0.1:3000)")]
    BadTarget(String),
    /// A header name or value is not valid HTTP (e.g. contains CR/LF).
    #[error("header {name:?} cannot be sent: {reason}")]
    BadHeader {
        /// The header name as given.
        name: String,
        /// Why.
        reason: String,
    },
    /// The method is not valid HTTP.
    #[error("method {0:?} cannot be sent")]
    BadMethod(String),
    /// The stored body is only a prefix of the original; replaying it would not be verbatim.
    #[error("the captured body is not the whole body ({why}): pass a body file to replay it")]
    TruncatedBody {
        /// Why.
        why: twk_capture::Shortfall,
    },
    /// The relay refused the request before reading its body: only its head is known.
    #[error(
        "the relay refused this request before reading its body ({declared}): pass a body file to replay it"
    )]
    BodyNeverRead {
        /// How long it said it was, in words.
        declared: String,
    },
    /// Re-signing was asked but the provider is unknown.
    #[error("cannot re-sign: no provider recorded or detected for this exchange")]
    UnknownProvider,
    /// The provider crate could not sign.
    #[error("cannot re-sign")]
    Sign(#[from] twk_providers::SignError),
}

/// A request ready to send, with what will be recorded about it.
#[derive(Debug)]
pub struct PreparedReplay {
    /// The request (origin-form URI, `Host` set).
    pub request: Request<Full<Bytes>>,
    /// `host:port` to connect to.
    pub authority: String,
    /// Target base URL (`http://host:port[/base]`).
    pub target: String,
    /// Path and query sent (relative to the target's base).
    pub path: String,
    /// The public URL the request claims (updated when re-signing rewrote its query).
    pub public_url: String,
}

/// Builds the replay request without sending it (also used to preview an edit).
pub fn prepare(original: &Exchange, opts: &ReplayOptions) -> Result<PreparedReplay, ReplayError> {
    let base = opts.to.as_deref().unwrap_or(&original.target);
    let (authority, base_path) = parse_target(base)?;
    let method = Method::from_bytes(original.method.as_bytes())
        .map_err(|_| ReplayError::BadMethod(original.method.clone()))?;

    let body: Vec<u8> = match &opts.body {
        Some(b) => b.clone(),
        None => {
            let b = &original.request.body;
            if original.refused && b.truncated {
                return Err(ReplayError::BodyNeverRead {
                    declared: b.unread_len_words(),
                });
            }
            if let Some(why) = b.shortfall() {
                return Err(ReplayError::TruncatedBody { why });
            }
            b.bytes.clone()
        }
    };
    let mut headers: Vec<(String, Vec<u8>)> = original
        .request
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    if opts.to.is_some()
        && !opts.keep_host
        && parse_target(&original.target).ok().map(|(a, _)| a) != Some(authority.clone())
    {
        twk_providers::set_header(&mut headers, "host", authority.as_bytes().to_vec());
    }
    for (name, value) in &opts.headers {
        match value {
            Some(v) => twk_providers::set_header(&mut headers, name, v.as_bytes().to_vec()),
            None => headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
        }
    }
    let mut path = if original.path.is_empty() {
        "/".to_owned()
    } else {
        original.path.clone()
    };
    let mut public_url = original.public_url.clone();
    let mut body = body;
    if opts.resign {
        let provider = original.known_provider();
        let view = view_of(&method, &public_url, &headers, &body);
        let provider = provider
            .or_else(|| twk_providers::detect(&view))
            .ok_or(ReplayError::UnknownProvider)?;
        let sign_opts = SignOptions {
            timestamp: Some(crate::now_ms() / 1000),
            id: None,
        };
        let secret = resign_secret(&opts.secrets, provider)
            .ok_or(twk_providers::SignError::NoSecret(provider))?;
        let signed = twk_providers::sign_with_secret(provider, &view, secret, &sign_opts)?;
        for (n, v) in &signed.headers {
            twk_providers::set_header(&mut headers, n, v.as_bytes().to_vec());
        }
        if let Some(url) = signed.url {
            // The scheme signs the public URL's query (Twilio `bodySHA256`): carry the new
            // query over to the local path.
            let new_query = url.split_once('?').map(|(_, q)| q.to_owned());
            let local = path
                .split_once('?')
                .map_or(path.as_str(), |(p, _)| p)
                .to_owned();
            path = match new_query {
                Some(q) => format!("{local}?{q}"),
                None => local,
            };
            public_url = url;
        }
        if let Some(b) = signed.body {
            body = b;
        }
    }

    let mut map = HeaderMap::new();
    for (name, value) in &headers {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| ReplayError::BadHeader {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let v = HeaderValue::from_bytes(value).map_err(|e| ReplayError::BadHeader {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        map.append(n, v);
    }
    twk_protocol::strip_hop_by_hop(&mut map);
    let had_length = map.contains_key(CONTENT_LENGTH);
    if had_length || !body.is_empty() {
        // Recompute (in place when present, so the header order stays the original's).
        map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if !map.contains_key(HOST) {
        let host = HeaderValue::from_str(&authority).map_err(|e| ReplayError::BadHeader {
            name: "host".into(),
            reason: e.to_string(),
        })?;
        map.insert(HOST, host);
    }
    let uri_text = format!("{base_path}{path}");
    let uri: http::Uri = uri_text
        .parse()
        .map_err(|e: http::uri::InvalidUri| ReplayError::BadTarget(format!("{base}{path}: {e}")))?;
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = map;
    Ok(PreparedReplay {
        request,
        target: format!("http://{authority}{base_path}"),
        authority,
        path,
        public_url,
    })
}

/// Replays `original` and returns the new exchange (not yet stored: record it with the
/// capture store). Network failures come back as an exchange with a target-side [`Failure`].
pub async fn replay(original: &Exchange, opts: &ReplayOptions) -> Result<Exchange, ReplayError> {
    let prepared = prepare(original, opts)?;
    let PreparedReplay {
        request,
        authority,
        target,
        path,
        public_url,
    } = prepared;
    let sent_headers = headers_to_vec(request.headers());
    let sent_body = request.body().clone();
    let sent_body = http_body_util::BodyExt::collect(sent_body)
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let method = request.method().as_str().to_owned();
    let received_ms = crate::now_ms();
    let mut ex = Exchange {
        id: None,
        tunnel: original.tunnel.clone(),
        request_id: format!("replay-{}-{received_ms}", original.id.unwrap_or_default()),
        public_url,
        remote_addr: None,
        method,
        path,
        target,
        request: Message {
            headers: sent_headers,
            body: CapturedBody::capped(&sent_body, opts.capture_cap),
        },
        status: None,
        response: None,
        timings: Timings {
            received_ms,
            forwarded_ms: Some(received_ms),
            first_byte_ms: None,
            done_ms: None,
        },
        failure: None,
        provider: original.provider.clone(),
        event: original.event.clone(),
        summary: original.summary.clone(),
        verdict: None,
        analysis: None,
        replay_of: original.id,
        ..Default::default()
    };
    analyze_into(&mut ex, &opts.secrets);

    let cap = opts.capture_cap;
    let outcome = tokio::time::timeout(opts.timeout, async {
        let stream = tokio::net::TcpStream::connect(authority.as_str())
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let _ = stream.set_nodelay(true);
        // The connection live forwarding uses: an app that answers before reading the body
        // is heard even if a write of the body fails first.
        let io = crate::target_io::TargetStream::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP handshake with {authority} failed: {e}"))?;
        let conn_task = tokio::spawn(conn);
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{authority} failed: {e}"))?;
        let first_byte_ms = crate::now_ms();
        let (parts, mut body) = resp.into_parts();
        let mut kept = Vec::new();
        let mut hasher = sha2::Sha256::new();
        let mut len: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("response body from {authority} failed: {e}"))?;
            if let Ok(data) = frame.into_data() {
                hasher.update(&data);
                len += data.len() as u64;
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
            }
        }
        drop(sender);
        conn_task.abort();
        let truncated = (kept.len() as u64) < len;
        Ok::<_, String>((
            parts,
            first_byte_ms,
            CapturedBody {
                bytes: kept,
                len,
                sha256: twk_capture::lower_hex(&hasher.finalize()),
                truncated,
            },
        ))
    })
    .await;
    let done_ms = crate::now_ms();
    ex.timings.done_ms = Some(done_ms);
    match outcome {
        Ok(Ok((parts, first_byte_ms, body))) => {
            let mut headers = parts.headers;
            twk_protocol::strip_hop_by_hop(&mut headers);
            ex.status = Some(parts.status.as_u16());
            ex.timings.first_byte_ms = Some(first_byte_ms);
            ex.response = Some(Message {
                headers: headers_to_vec(&headers),
                body,
            });
        }
        Ok(Err(message)) => {
            ex.failure = Some(Failure {
                side: Side::Target,
                message,
            });
        }
        Err(_) => {
            ex.failure = Some(Failure {
                side: Side::Target,
                message: format!(
                    "no complete response within {} ms",
                    opts.timeout.as_millis()
                ),
            });
        }
    }
    Ok(ex)
}

/// The secret a re-signed replay of `provider` is signed with ([`ReplayOptions::resign`]):
/// the configured one, else twk's test secret; `None` when there is neither. A webhook
/// `trigger` signed with the test secret (none configured) must be re-signed with it too, or
/// the replay of an edit would not be valid where the original was; a configured secret
/// always wins, as it does when checking.
pub fn resign_secret(secrets: &Secrets, provider: Provider) -> Option<&Secret> {
    secrets
        .get(provider)
        .or_else(|| secrets.test_secret(provider))
}

/// Gives the replay its own verdict (as the app will judge it now), as the original's provider.
fn analyze_into(ex: &mut Exchange, secrets: &Secrets) {
    let provider = ex.known_provider();
    crate::annotate(ex, secrets, crate::now_ms() / 1000, provider);
}

fn view_of<'a>(
    method: &'a Method,
    url: &'a str,
    headers: &'a [(String, Vec<u8>)],
    body: &'a [u8],
) -> RequestView<'a> {
    let mut v = RequestView::new(method.as_str(), url, body);
    for (n, val) in headers {
        v = v.with_header(n, val);
    }
    v
}

/// A replay target in `twk-tunnel`'s TARGET syntax (`3000`, `host:port`,
/// `http://host:port[/base]`) → (`host:port`, `/base` without trailing slash).
fn parse_target(base: &str) -> Result<(String, String), ReplayError> {
    let t = crate::Target::parse(base).map_err(|_| ReplayError::BadTarget(base.to_owned()))?;
    Ok((t.authority, t.base_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use twk_capture::Header;

    fn original(target: &str) -> Exchange {
        let body = b"{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"invoice.paid\"}".to_vec();
        Exchange {
            id: Some(41),
            tunnel: "t".into(),
            request_id: "r".into(),
            public_url: "https://t.example/hook?x=1".into(),
            remote_addr: None,
            method: "POST".into(),
            path: "/hook?x=1".into(),
            target: target.into(),
            request: Message {
                headers: vec![
                    Header {
                        name: "host".into(),
                        value: b"t.example".to_vec(),
                    },
                    Header {
                        name: "content-type".into(),
                        value: b"application/json".to_vec(),
                    },
                    Header {
                        name: "stripe-signature".into(),
                        value: b"t=1,v1=00".to_vec(),
                    },
                    Header {
                        name: "connection".into(),
                        value: b"x-drop-me".to_vec(),
                    },
                    Header {
                        name: "x-drop-me".into(),
                        value: b"1".to_vec(),
                    },
                    Header {
                        name: "transfer-encoding".into(),
                        value: b"chunked".to_vec(),
                    },
                    Header {
                        name: "content-length".into(),
                        value: b"999".to_vec(),
                    },
                ],
                body: CapturedBody::from_bytes(&body),
            },
            status: Some(200),
            response: None,
            timings: Timings::default(),
            failure: None,
            provider: Some("stripe".into()),
            ..Default::default()
        }
    }

    #[test]
    fn verbatim_strips_hop_by_hop_and_recomputes_length() {
        let p = prepare(
            &original("http://127.0.0.1:3000/base/"),
            &ReplayOptions::default(),
        )
        .expect("prepared");
        assert_eq!(p.authority, "127.0.0.1:3000");
        assert_eq!(p.request.uri(), "/base/hook?x=1");
        let h = p.request.headers();
        assert_eq!(h["host"], "t.example");
        assert_eq!(h["stripe-signature"], "t=1,v1=00");
        assert_eq!(h["content-length"], "53");
        for gone in ["connection", "x-drop-me", "transfer-encoding"] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["host", "content-type", "stripe-signature", "content-length"]
        );
    }

    #[test]
    fn host_names_the_server_the_replay_goes_to() {
        let o = original("http://127.0.0.1:3000");
        let host = |opts: &ReplayOptions| {
            let p = prepare(&o, opts).expect("prepared");
            p.request.headers()["host"].to_str().map(str::to_owned).ok()
        };
        let to = |url: &str| ReplayOptions {
            to: Some(url.into()),
            ..ReplayOptions::default()
        };
        // The recorded target, however it is spelled: verbatim.
        assert_eq!(
            host(&ReplayOptions::default()).as_deref(),
            Some("t.example")
        );
        assert_eq!(host(&to("127.0.0.1:3000")).as_deref(), Some("t.example"));
        // Elsewhere: that host, in the recorded header's place.
        assert_eq!(
            host(&to("http://localhost:4000")).as_deref(),
            Some("localhost:4000")
        );
        let p = prepare(&o, &to("http://localhost:4000")).expect("prepared");
        assert_eq!(
            p.request.headers().keys().next().map(|k| k.as_str()),
            Some("host")
        );
        // Unless asked to keep it, or set by hand.
        let keep = ReplayOptions {
            keep_host: true,
            ..to("http://localhost:4000")
        };
        assert_eq!(host(&keep).as_deref(), Some("t.example"));
        let edited = ReplayOptions {
            headers: vec![("Host".into(), Some("hand.example".into()))],
            ..to("http://localhost:4000")
        };
        assert_eq!(host(&edited).as_deref(), Some("hand.example"));
    }

    #[test]
    fn crlf_injection_is_rejected() {
        let opts = ReplayOptions {
            headers: vec![("x-a".into(), Some("v\r\nInjected: 1".into()))],
            ..ReplayOptions::default()
        };
        assert!(matches!(
            prepare(&original("http://127.0.0.1:3000"), &opts),
            Err(ReplayError::BadHeader { .. })
        ));
        let opts = ReplayOptions {
            headers: vec![("x-a\r\nb".into(), Some("v".into()))],
            ..ReplayOptions::default()
        };
        assert!(prepare(&original("http://127.0.0.1:3000"), &opts).is_err());
    }

    #[test]
    fn only_plain_http_targets() {
        for bad in [
            "https://127.0.0.1:3000",
            "http://user@127.0.0.1:3000",
            "http://h:1/base?q",
            "http://:3000",
            "http://h:0",
            "ftp://x",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_target("http://localhost").ok(),
            Some(("localhost:80".to_owned(), String::new()))
        );
        // The same syntax as the tunnel's TARGET.
        assert_eq!(
            parse_target("127.0.0.1:3000").ok(),
            Some(("127.0.0.1:3000".to_owned(), String::new()))
        );
    }

    #[test]
    fn a_refused_request_replays_when_its_body_is_known_and_says_why_not_otherwise() {
        let mut o = original("http://127.0.0.1:3000");
        o.refused = true;
        o.request.body = CapturedBody {
            bytes: Vec::new(),
            len: 30_000_000,
            sha256: String::new(),
            truncated: true,
        };
        let err = prepare(&o, &ReplayOptions::default()).err();
        assert!(
            matches!(&err, Some(ReplayError::BodyNeverRead { declared }) if declared == "30000000 bytes declared"),
            "{err:?}"
        );
        // A 429'd GET: no body, known whole; the app never saw it, and may now.
        o.request.body = CapturedBody::from_bytes(b"");
        assert!(prepare(&o, &ReplayOptions::default()).is_ok());
    }

    #[test]
    fn truncated_bodies_need_a_replacement() {
        let mut o = original("http://127.0.0.1:3000");
        o.request.body.truncated = true;
        assert!(matches!(
            prepare(&o, &ReplayOptions::default()),
            Err(ReplayError::TruncatedBody { .. })
        ));
        let opts = ReplayOptions {
            body: Some(b"new".to_vec()),
            ..ReplayOptions::default()
        };
        let p = prepare(&o, &opts).expect("prepared");
        assert_eq!(p.request.headers()["content-length"], "3");
    }

    #[test]
    fn header_edits_replace_in_place_and_remove() {
        let opts = ReplayOptions {
            headers: vec![
                ("Content-Type".into(), Some("text/plain".into())),
                ("stripe-signature".into(), None),
                ("x-new".into(), Some("1".into())),
            ],
            ..ReplayOptions::default()
        };
        let p = prepare(&original("http://127.0.0.1:3000"), &opts).expect("prepared");
        let names: Vec<&str> = p.request.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "content-type", "content-length", "x-new"]);
        assert_eq!(p.request.headers()["content-type"], "text/plain");
    }

    #[test]
    fn resign_without_a_secret_fails_clearly() {
        let opts = ReplayOptions {
            resign: true,
            ..ReplayOptions::default()
        };
        let err = prepare(&original("http://127.0.0.1:3000"), &opts)
            .err()
            .map(|e| twk_sanitize::error_chain(&e))
            .unwrap_or_default();
        assert_eq!(err, "cannot re-sign: no secret configured for stripe");
    }

    #[test]
    fn resign_stripe_after_a_body_edit_verifies() {
        let mut secrets = Secrets::new();
        secrets.set(Provider::Stripe, twk_providers::Secret::new("whsec_test"));
        let opts = ReplayOptions {
            resign: true,
            body: Some(
                b"{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"invoice.edited\"}".to_vec(),
            ),
            secrets: secrets.clone(),
            ..ReplayOptions::default()
        };
        let p = prepare(&original("http://127.0.0.1:3000"), &opts).expect("prepared");
        let h = p.request.headers();
        let body = p.request.body().clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let body = rt
            .block_on(body.collect())
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut view = RequestView::new("POST", &p.public_url, &body);
        for (n, v) in h {
            view = view.with_header(n.as_str(), v.as_bytes());
        }
        let a = twk_providers::analyze(
            &view,
            &secrets,
            &twk_providers::VerifyOptions::at(crate::now_ms() / 1000),
        );
        assert_eq!(a.verdict, twk_providers::Verdict::Valid, "{a:?}");
    }

    /// The verdict `secrets` give the request `opts` prepares from the test's original.
    fn verdict_of(opts: &ReplayOptions, secrets: &Secrets) -> twk_providers::Analysis {
        let p = prepare(&original("http://127.0.0.1:3000"), opts).expect("prepared");
        let body = opts.body.clone().unwrap_or_default();
        let mut view = RequestView::new("POST", &p.public_url, &body);
        for (n, v) in p.request.headers() {
            view = view.with_header(n.as_str(), v.as_bytes());
        }
        twk_providers::analyze(
            &view,
            secrets,
            &twk_providers::VerifyOptions::at(crate::now_ms() / 1000),
        )
    }

    #[test]
    fn resign_with_no_secret_configured_uses_twks_test_secret_and_a_configured_one_wins() {
        let test = twk_providers::Secret::new("whsec_twk_test");
        let edited = b"{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"x\"}".to_vec();
        let mut opts = ReplayOptions {
            resign: true,
            body: Some(edited),
            secrets: Secrets::new().with_test_secret(Provider::Stripe, test.clone()),
            ..ReplayOptions::default()
        };
        let a = verdict_of(&opts, &opts.secrets);
        assert_eq!(a.verdict, twk_providers::Verdict::Valid, "{a:?}");
        assert_eq!(a.matched_secret, Some(twk_providers::SecretSource::TwkTest));

        let configured = twk_providers::Secret::new("whsec_configured");
        opts.secrets.set(Provider::Stripe, configured.clone());
        let only = |s: twk_providers::Secret| Secrets::new().with(Provider::Stripe, s);
        let a = verdict_of(&opts, &only(configured));
        assert_eq!(a.verdict, twk_providers::Verdict::Valid, "{a:?}");
        let a = verdict_of(&opts, &only(test));
        assert_eq!(a.verdict, twk_providers::Verdict::Invalid, "{a:?}");
    }

    /// One raw HTTP/1.1 exchange on 127.0.0.1:0: returns the bytes received; answers 302.
    async fn raw_server() -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let h = tokio::spawn(async move {
            let (mut c, _) = l.accept().await.expect("accept");
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = c.read(&mut buf).await.expect("read");
                raw.extend_from_slice(buf.get(..n).unwrap_or_default());
                let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
                if n == 0 || head_end.is_some_and(|e| raw.len() >= e + 4 + 53) {
                    break;
                }
            }
            c.write_all(b"HTTP/1.1 302 Found\r\nlocation: http://elsewhere.invalid/\r\ncontent-length: 5\r\n\r\nmoved")
                .await
                .expect("write");
            raw
        });
        (format!("http://{addr}"), h)
    }

    #[tokio::test]
    async fn verbatim_replay_is_byte_identical_and_redirects_are_not_followed() {
        let (url, server) = raw_server().await;
        let o = original("http://127.0.0.1:9");
        let opts = ReplayOptions {
            to: Some(url.clone()),
            keep_host: true,
            ..ReplayOptions::default()
        };
        let ex = replay(&o, &opts).await.expect("replayed");
        let raw = server.await.expect("server");
        let mut expected = b"POST /hook?x=1 HTTP/1.1\r\nhost: t.example\r\ncontent-type: application/json\r\nstripe-signature: t=1,v1=00\r\ncontent-length: 53\r\n\r\n".to_vec();
        expected.extend_from_slice(&o.request.body.bytes);
        assert_eq!(
            String::from_utf8_lossy(&raw),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(ex.status, Some(302));
        assert_eq!(ex.replay_of, Some(41));
        assert_eq!(ex.target, url);
        assert_eq!(
            ex.response.as_ref().map(|r| r.body.bytes.clone()),
            Some(b"moved".to_vec())
        );
        assert_eq!(ex.request.body.bytes, o.request.body.bytes);
        assert!(ex.failure.is_none());
        assert_eq!(ex.verdict, Some(twk_providers::Verdict::NoSecret));
    }

    #[tokio::test]
    async fn unreachable_target_is_a_target_failure() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        drop(l);
        let ex = replay(&original(&url), &ReplayOptions::default())
            .await
            .expect("replayed");
        assert_eq!(ex.status, None);
        assert_eq!(ex.failure.map(|f| f.side), Some(Side::Target));
    }
}
