//! HTTP as the emulated APIs speak it: a parsed request (form parameters from the query
//! and the body), JSON answers, Twilio's error document (`code`, `message`, `more_info`,
//! `status`) and its list paging (`meta` with `first_page_url`, `next_page_url`, …).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

/// One API request, its body read and its parameters decoded. Its `Debug` shows the method
/// and path only: headers and parameters carry credentials.
pub struct ApiRequest {
    /// Method.
    pub method: Method,
    /// Path, percent-encoded as received.
    pub path: String,
    /// Query parameters in order (repeated keys kept).
    pub query: Vec<(String, String)>,
    /// Form body parameters in order (repeated keys kept); empty for other bodies.
    pub form: Vec<(String, String)>,
    /// The raw body.
    pub body: Bytes,
    /// Headers.
    pub headers: HeaderMap,
}

impl std::fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ApiRequest {
    /// The first value of `name`, body before query (Twilio reads both).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .chain(&self.query)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`EventTypes=a&EventTypes=b`).
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .chain(&self.query)
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs; `Err` says why not.
pub fn decode_form(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map_err(|e| format!("the parameters are not valid form encoding ({e})"))
}

/// One answer.
#[derive(Debug)]
pub struct ApiResponse {
    /// Status.
    pub status: StatusCode,
    /// Extra headers (besides `Content-Type: application/json`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// JSON body; `None` for 204.
    pub body: Option<Value>,
}

impl ApiResponse {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: Value) -> ApiResponse {
        ApiResponse {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// `204 No Content` (a Twilio delete).
    pub fn no_content() -> ApiResponse {
        ApiResponse {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> ApiResponse {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

/// Twilio's error codes the emulator answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioCode {
    /// 20001: a required parameter is missing.
    MissingParameter,
    /// 20003: authentication failed.
    Authenticate,
    /// 20404: no such resource.
    NotFound,
    /// 60200: Verify's "Invalid parameter".
    InvalidParameter,
    /// 20429-like: the request is too large (emulator's own guard).
    TooLarge,
}

impl TwilioCode {
    fn number(self) -> u32 {
        match self {
            TwilioCode::MissingParameter => 20001,
            TwilioCode::Authenticate => 20003,
            TwilioCode::NotFound => 20404,
            TwilioCode::InvalidParameter => 60200,
            TwilioCode::TooLarge => 20413,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            TwilioCode::MissingParameter | TwilioCode::InvalidParameter => StatusCode::BAD_REQUEST,
            TwilioCode::Authenticate => StatusCode::UNAUTHORIZED,
            TwilioCode::NotFound => StatusCode::NOT_FOUND,
            TwilioCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// Twilio's error document, as every Twilio REST API answers a failure.
pub fn twilio_error(code: TwilioCode, message: impl Into<String>) -> ApiResponse {
    let status = code.status();
    let n = code.number();
    let mut r = ApiResponse::json(
        status,
        json!({
            "code": n,
            "message": message.into(),
            "more_info": format!("https://www.twilio.com/docs/errors/{n}"),
            "status": status.as_u16(),
        }),
    );
    if code == TwilioCode::Authenticate {
        r = r.with_header(header::WWW_AUTHENTICATE, "Basic realm=\"Twilio API\"");
    }
    r
}

/// `404` for a path or resource that is not there, in Twilio's words.
pub fn not_found(path: &str) -> ApiResponse {
    twilio_error(
        TwilioCode::NotFound,
        format!("The requested resource {path} was not found"),
    )
}

/// A required form parameter, or Twilio's 20001.
pub fn required<'r>(req: &'r ApiRequest, name: &str) -> Result<&'r str, ApiResponse> {
    match req.param(name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(twilio_error(
            TwilioCode::MissingParameter,
            format!("Missing required parameter {name} in the post body"),
        )),
    }
}

/// Twilio's 60200 for a parameter with a value it does not take.
pub fn invalid(name: &str, why: impl std::fmt::Display) -> ApiResponse {
    twilio_error(
        TwilioCode::InvalidParameter,
        format!("Invalid parameter {name}: {why}"),
    )
}

/// One page of a Twilio list: which rows, and the URLs of its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 0-based page index.
    pub page: i64,
    /// Rows per page, 1..=1000 (default 50).
    pub size: i64,
}

impl Page {
    /// `PageSize` and `Page` from the request, validated as Twilio documents them.
    pub fn from_request(req: &ApiRequest) -> Result<Page, ApiResponse> {
        let num = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| match req
            .param(name)
        {
            None | Some("") => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(invalid(
                    name,
                    format!(
                        "{v:?} is not a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        };
        Ok(Page {
            size: num("PageSize", 50, 1..=1000)?,
            page: num("Page", 0, 0..=1_000_000)?,
        })
    }

    /// Rows to skip.
    pub fn offset(self) -> i64 {
        self.page.saturating_mul(self.size)
    }

    /// The list document: `{key: rows, meta: {...}}` for the list at `list_url`.
    pub fn document(self, key: &str, list_url: &str, rows: Vec<Value>, total: i64) -> Value {
        let at = |page: i64| format!("{list_url}?PageSize={}&Page={page}", self.size);
        let more = self.offset().saturating_add(self.size) < total;
        json!({
            key: rows,
            "meta": {
                "page": self.page,
                "page_size": self.size,
                "first_page_url": at(0),
                "previous_page_url": (self.page > 0).then(|| at(self.page - 1)),
                "url": at(self.page),
                "next_page_url": more.then(|| at(self.page + 1)),
                "key": key,
            }
        })
    }
}

/// An absolute `http://` or `https://` URL with a host, or why not.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("the URL must start with http:// or https://".to_owned()),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err("the URL has no host".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: &str) -> ApiRequest {
        ApiRequest {
            method: Method::GET,
            path: "/".into(),
            query: decode_form(query.as_bytes()).expect("q"),
            form: Vec::new(),
            body: Bytes::new(),
            headers: HeaderMap::new(),
        }
    }

    #[test]
    fn paging_links_follow_twilio_and_stop_at_the_end() {
        let p = Page::from_request(&req("PageSize=2&Page=1")).expect("page");
        let doc = p.document("webhooks", "http://e/v2/x", vec![json!(1), json!(2)], 5);
        assert_eq!(
            doc["meta"]["next_page_url"],
            "http://e/v2/x?PageSize=2&Page=2"
        );
        assert_eq!(
            doc["meta"]["previous_page_url"],
            "http://e/v2/x?PageSize=2&Page=0"
        );
        assert_eq!(doc["meta"]["key"], "webhooks");
        let last = Page { page: 2, size: 2 }.document("w", "u", vec![], 5);
        assert!(last["meta"]["next_page_url"].is_null());
        let first = Page::from_request(&req("")).expect("defaults");
        assert_eq!(first, Page { page: 0, size: 50 });
    }

    #[test]
    fn bad_page_sizes_are_twilio_errors() {
        for q in ["PageSize=0", "PageSize=1001", "PageSize=x", "Page=-1"] {
            let r = Page::from_request(&req(q)).expect_err(q);
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            assert_eq!(
                r.body.as_ref().map(|b| b["code"].clone()),
                Some(json!(60200))
            );
        }
    }

    #[test]
    fn a_missing_parameter_is_20001_in_twilio_words() {
        let r = required(&req("A=1"), "FriendlyName").expect_err("missing");
        let b = r.body.expect("body");
        assert_eq!(b["code"], 20001);
        assert_eq!(b["status"], 400);
        assert_eq!(
            b["message"],
            "Missing required parameter FriendlyName in the post body"
        );
        assert_eq!(b["more_info"], "https://www.twilio.com/docs/errors/20001");
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(check_url("https://h.example/x?y=1").is_ok());
        for bad in ["/relative", "ftp://h/x", "http://", "not a url"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
