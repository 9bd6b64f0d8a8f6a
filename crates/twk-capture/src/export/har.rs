//! HAR 1.2 (<http://www.softwareishard.com/blog/har-12-spec/>) that browser devtools import.
//!
//! Bodies round-trip: UTF-8 bodies are stored as text; others as base64 with
//! `"encoding": "base64"` (standard on `response.content`; on `request.postData` as in the
//! HAR 1.3 draft). A truncated stored body is marked with `_truncated`, its true `size`, and
//! `_sha256`. twk's own fields live under `_twk` on each entry (HAR custom fields start with
//! `_`). Secret headers are redacted unless asked otherwise.
//!
//! `request.url` is the public URL the sender called, so `Host` is set to that URL's
//! authority: the recorded `Host` is the one the local app saw (`localhost:3000` when twk
//! rewrote it), and a HAR whose URL and `Host` disagree replays to the wrong virtual host.
//! [`HarOptions::keep_host`] keeps the recorded value.

use super::{BodyText, body_text};
use crate::exchange::{Header, Message};
use crate::query::StoredExchange;
use crate::redact::{form_decode, redact_headers, redact_query};
use crate::time::rfc3339_ms;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// A whole HAR document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Har {
    /// The log.
    pub log: Log,
}

/// `log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// Always `1.2`.
    pub version: String,
    /// The tool that wrote the file.
    pub creator: Creator,
    /// One entry per exchange.
    pub entries: Vec<Entry>,
}

/// `log.creator`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Creator {
    /// `twk`.
    pub name: String,
    /// twk-capture's version.
    pub version: String,
}

/// `{name, value}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `log.entries[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When the relay received the request (ISO 8601).
    pub started_date_time: String,
    /// Total time in ms (sum of the non-negative `timings`).
    pub time: f64,
    /// The request.
    pub request: Request,
    /// The response (status 0 when none came back).
    pub response: Response,
    /// Empty (no cache involved).
    pub cache: serde_json::Map<String, serde_json::Value>,
    /// Phase timings.
    pub timings: Timings,
    /// Free text (failure message).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comment: Option<String>,
    /// twk's fields.
    #[serde(rename = "_twk", default, skip_serializing_if = "Option::is_none")]
    pub twk: Option<serde_json::Value>,
}

/// `request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Method.
    pub method: String,
    /// Absolute URL (the public URL the sender used).
    pub url: String,
    /// `HTTP/1.1`.
    pub http_version: String,
    /// Not parsed (always empty: cookies are secrets).
    pub cookies: Vec<NameValue>,
    /// Headers in order.
    pub headers: Vec<NameValue>,
    /// Decoded query parameters.
    pub query_string: Vec<NameValue>,
    /// The body, when there is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub post_data: Option<PostData>,
    /// `-1` (unknown).
    pub headers_size: i64,
    /// True body length.
    pub body_size: i64,
}

/// `request.postData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    /// Content-Type.
    pub mime_type: String,
    /// Body text (base64 when `encoding` is `base64`).
    pub text: String,
    /// `base64` for non-UTF-8 bodies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encoding: Option<String>,
    /// Set when the stored body is only a prefix.
    #[serde(
        rename = "_truncated",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub truncated: Option<bool>,
    /// SHA-256 of the complete body.
    #[serde(rename = "_sha256", skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

/// `response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Status (0 when no response came back).
    pub status: u16,
    /// Reason phrase.
    pub status_text: String,
    /// `HTTP/1.1`.
    pub http_version: String,
    /// Always empty.
    pub cookies: Vec<NameValue>,
    /// Headers in order.
    pub headers: Vec<NameValue>,
    /// The body.
    pub content: Content,
    /// `Location` header, if any.
    #[serde(rename = "redirectURL")]
    pub redirect_url: String,
    /// `-1` (unknown).
    pub headers_size: i64,
    /// True body length (`-1` without a response).
    pub body_size: i64,
}

/// `response.content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// True body length.
    pub size: i64,
    /// Content-Type.
    pub mime_type: String,
    /// Body text (base64 when `encoding` is `base64`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text: Option<String>,
    /// `base64` for non-UTF-8 bodies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encoding: Option<String>,
    /// Set when the stored body is only a prefix.
    #[serde(
        rename = "_truncated",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub truncated: Option<bool>,
    /// SHA-256 of the complete body.
    #[serde(rename = "_sha256", skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

/// `timings` in ms; `-1` means not applicable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// -1.
    pub blocked: f64,
    /// -1.
    pub dns: f64,
    /// -1.
    pub connect: f64,
    /// Relay receipt → forwarded to the target (the tunnel leg).
    pub send: f64,
    /// Forwarded → first response byte.
    pub wait: f64,
    /// First byte → done.
    pub receive: f64,
    /// -1.
    pub ssl: f64,
}

/// What a HAR keeps of the recorded request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HarOptions {
    /// Keep secret-bearing headers instead of redacting them.
    pub reveal_secrets: bool,
    /// Keep the recorded `Host` (the one the local app saw) instead of the URL's authority.
    pub keep_host: bool,
}

impl Har {
    /// A HAR of these exchanges.
    pub fn of<'a>(xs: impl IntoIterator<Item = &'a StoredExchange>, opts: HarOptions) -> Har {
        Har {
            log: Log {
                version: "1.2".into(),
                creator: creator(),
                entries: xs.into_iter().map(|x| entry(x, opts)).collect(),
            },
        }
    }
}

fn creator() -> Creator {
    Creator {
        name: "twk".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Streams a HAR document: entries are written as they come, so exporting many large
/// exchanges does not hold them all in memory.
pub struct HarWriter<W: Write> {
    out: W,
    first: bool,
    opts: HarOptions,
}

impl<W: Write> HarWriter<W> {
    /// Writes the document head.
    pub fn new(mut out: W, opts: HarOptions) -> std::io::Result<Self> {
        let creator = serde_json::to_string(&creator()).map_err(std::io::Error::other)?;
        write!(
            out,
            "{{\"log\":{{\"version\":\"1.2\",\"creator\":{creator},\"entries\":["
        )?;
        Ok(HarWriter {
            out,
            first: true,
            opts,
        })
    }

    /// Appends one entry.
    pub fn push(&mut self, x: &StoredExchange) -> std::io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        self.out.write_all(b"\n")?;
        // The one sanitizer's JSON: a HAR goes to a terminal as often as to a file, and it
        // carries a sender's bytes (bidi, C1 and invisible characters as `\uXXXX`).
        twk_sanitize::json_to_writer(&mut self.out, &entry(x, self.opts))
            .map_err(std::io::Error::other)
    }

    /// Closes the document and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(b"\n]}}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The HAR entry of one exchange.
pub fn entry(x: &StoredExchange, opts: HarOptions) -> Entry {
    let reveal_secrets = opts.reveal_secrets;
    let ex = &x.exchange;
    let t = &ex.timings;
    let total = ex.duration_ms().unwrap_or(0).max(0);
    let (send, wait, receive) = match (t.forwarded_ms, t.first_byte_ms, t.done_ms) {
        (Some(f), Some(fb), Some(d)) => (
            f.saturating_sub(t.received_ms).max(0),
            fb.saturating_sub(f).max(0),
            d.saturating_sub(fb).max(0),
        ),
        (Some(f), None, Some(d)) => (
            f.saturating_sub(t.received_ms).max(0),
            d.saturating_sub(f).max(0),
            0,
        ),
        _ => (0, total, 0),
    };
    let url = if ex.public_url.is_empty() {
        format!("{}{}", ex.target.trim_end_matches('/'), ex.path)
    } else {
        ex.public_url.clone()
    };
    let url = redact_query(&url, reveal_secrets).into_owned();
    let req_headers = match super::authority_of(&url).filter(|_| !opts.keep_host) {
        Some(authority) => name_values(
            &super::with_host(&ex.request.headers, authority),
            reveal_secrets,
        ),
        None => name_values(&ex.request.headers, reveal_secrets),
    };
    let post_data = (ex.request.body.len > 0 || !ex.request.body.bytes.is_empty()).then(|| {
        let (text, encoding) = text_and_encoding(&ex.request.body.bytes);
        PostData {
            mime_type: content_type(&ex.request.headers),
            text,
            encoding,
            truncated: ex.request.body.truncated.then_some(true),
            sha256: ex
                .request
                .body
                .truncated
                .then(|| ex.request.body.sha256.clone()),
        }
    });
    let response = match &ex.response {
        Some(m) => response(ex.status.unwrap_or(0), m, reveal_secrets),
        None => Response {
            status: 0,
            status_text: String::new(),
            http_version: "HTTP/1.1".into(),
            cookies: vec![],
            headers: vec![],
            content: Content {
                size: 0,
                mime_type: String::new(),
                text: None,
                encoding: None,
                truncated: None,
                sha256: None,
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: -1,
        },
    };
    Entry {
        started_date_time: rfc3339_ms(t.received_ms),
        time: (send + wait + receive) as f64,
        request: Request {
            method: ex.method.clone(),
            url: url.clone(),
            http_version: "HTTP/1.1".into(),
            cookies: vec![],
            headers: req_headers,
            query_string: query_string(&url),
            post_data,
            headers_size: -1,
            body_size: i64::try_from(ex.request.body.len).unwrap_or(i64::MAX),
        },
        response,
        cache: serde_json::Map::new(),
        timings: Timings {
            blocked: -1.0,
            dns: -1.0,
            connect: -1.0,
            send: send as f64,
            wait: wait as f64,
            receive: receive as f64,
            ssl: -1.0,
        },
        comment: ex
            .failure
            .as_ref()
            .map(|f| format!("failed ({:?}): {}", f.side, f.message)),
        twk: Some(serde_json::json!({
            "id": ex.id,
            "name": ex.tunnel,
            "path": redact_query(&ex.path, reveal_secrets),
            "target": ex.target,
            "provider": ex.provider,
            "event": ex.event,
            "verdict": ex.verdict,
            "attempt": x.attempt,
            "replayOf": ex.replay_of,
            "failure": ex.failure,
        })),
    }
}

fn response(status: u16, m: &Message, reveal_secrets: bool) -> Response {
    let (text, encoding) = text_and_encoding(&m.body.bytes);
    Response {
        status,
        status_text: reason(status).into(),
        http_version: "HTTP/1.1".into(),
        cookies: vec![],
        headers: name_values(&m.headers, reveal_secrets),
        content: Content {
            size: i64::try_from(m.body.len).unwrap_or(i64::MAX),
            mime_type: content_type(&m.headers),
            text: Some(text),
            encoding,
            truncated: m.body.truncated.then_some(true),
            sha256: m.body.truncated.then(|| m.body.sha256.clone()),
        },
        redirect_url: m
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("location"))
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .unwrap_or_default(),
        headers_size: -1,
        body_size: i64::try_from(m.body.len).unwrap_or(i64::MAX),
    }
}

fn text_and_encoding(bytes: &[u8]) -> (String, Option<String>) {
    match body_text(bytes) {
        BodyText::Text(t) => (t, None),
        BodyText::Base64(b) => (b, Some("base64".into())),
    }
}

fn name_values(h: &[Header], reveal: bool) -> Vec<NameValue> {
    redact_headers(h, reveal)
        .iter()
        .map(|h| NameValue {
            name: h.name.clone(),
            value: String::from_utf8_lossy(&h.value).into_owned(),
        })
        .collect()
}

fn content_type(h: &[Header]) -> String {
    h.iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        .unwrap_or_default()
}

fn query_string(url: &str) -> Vec<NameValue> {
    let Some((_, q)) = url.split_once('?') else {
        return vec![];
    };
    let q = q.split('#').next().unwrap_or_default();
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            NameValue {
                name: String::from_utf8_lossy(&form_decode(k.as_bytes())).into_owned(),
                value: String::from_utf8_lossy(&form_decode(v.as_bytes())).into_owned(),
            }
        })
        .collect()
}

/// Reason phrase of common status codes.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}
