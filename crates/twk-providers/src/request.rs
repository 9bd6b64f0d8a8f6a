//! The borrowed request view every function of this crate takes.

/// One captured request, borrowed: method, the public URL exactly as the sender used it,
/// headers in order (name, raw value bytes: values may be non-UTF-8), raw body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView<'a> {
    /// HTTP method as received (`POST`, `GET`, …).
    pub method: &'a str,
    /// The public URL the sender called, byte for byte (scheme, userinfo, host, port, path,
    /// query). Not the URL the local app sees.
    pub url: &'a str,
    /// Headers in received order; names compare case-insensitively.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The raw body.
    pub body: &'a [u8],
    /// The body parsed as JSON on first use: detection and the checks read it many times.
    /// It stays the JSON of the body the view was made with: make a new view for another
    /// body rather than assigning to `body`.
    json: JsonOnce,
}

/// A body's JSON, parsed once. Two views of the same request are equal whether or not either
/// has parsed it yet.
#[derive(Clone, Default)]
struct JsonOnce(std::sync::OnceLock<Option<serde_json::Value>>);

impl PartialEq for JsonOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for JsonOnce {}

impl std::fmt::Debug for JsonOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

impl<'a> RequestView<'a> {
    /// A request without headers.
    pub fn new(method: &'a str, url: &'a str, body: &'a [u8]) -> Self {
        Self::with_headers(method, url, Vec::new(), body)
    }

    /// A request with its headers in received order.
    pub fn with_headers(
        method: &'a str,
        url: &'a str,
        headers: Vec<(&'a str, &'a [u8])>,
        body: &'a [u8],
    ) -> Self {
        RequestView {
            method,
            url,
            headers,
            body,
            json: JsonOnce::default(),
        }
    }

    /// The body as JSON (any JSON value), parsed on the first call only; `None` when it is not
    /// JSON.
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json
            .0
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }

    /// Appends a header (builder style).
    #[must_use]
    pub fn with_header(mut self, name: &'a str, value: &'a [u8]) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The first header named `name`, if its value is UTF-8, trimmed of surrounding
    /// whitespace.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// Whether a header named `name` is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The media type of `Content-Type`, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        let ct = self.header_str("content-type")?;
        let media = ct.split(';').next().unwrap_or("").trim();
        Some(media.to_ascii_lowercase())
    }

    /// True when `Content-Type` is JSON (`application/json`, `*/*+json`).
    pub fn is_json(&self) -> bool {
        self.media_type()
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
    }

    /// True when `Content-Type` is `application/x-www-form-urlencoded`.
    pub fn is_form(&self) -> bool {
        self.media_type()
            .is_some_and(|m| m == "application/x-www-form-urlencoded")
    }

    /// False when `Content-Type` names a media type other than a form: such a body carries no
    /// form fields, and detection need not read it (a 1 MiB upload was scanned for `&body=`).
    /// A request without `Content-Type` may still be a form.
    pub fn may_be_form(&self) -> bool {
        self.media_type()
            .is_none_or(|m| m.is_empty() || m == "application/x-www-form-urlencoded")
    }

    /// True for `GET` (any case).
    pub(crate) fn is_get(&self) -> bool {
        self.method.eq_ignore_ascii_case("GET")
    }
}

/// An owned request, for callers that build one (the CLI, tests, replay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRequest {
    /// HTTP method.
    pub method: String,
    /// The public URL the sender called.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl OwnedRequest {
    /// A request without headers.
    pub fn new(
        method: impl Into<String>,
        url: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        OwnedRequest {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Appends a header (builder style).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a header, replacing every existing header of that name (case-insensitive).
    pub fn set_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        set_header(&mut self.headers, name, value.into());
    }

    /// Applies a [`crate::Signed`]: sets its headers and replaces URL and body when given.
    pub fn apply(&mut self, signed: &crate::Signed) {
        for (n, v) in &signed.headers {
            self.set_header(n, v.as_bytes());
        }
        if let Some(url) = &signed.url {
            self.url.clone_from(url);
        }
        if let Some(body) = &signed.body {
            self.body.clone_from(body);
        }
    }

    /// A borrowed view of this request.
    pub fn view(&self) -> RequestView<'_> {
        RequestView::with_headers(
            &self.method,
            &self.url,
            self.headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect(),
            &self.body,
        )
    }
}

/// Sets header `name` in an ordered header list: the first header of that name
/// (case-insensitive) takes the value in place, later ones are removed; appended when absent.
pub fn set_header(headers: &mut Vec<(String, Vec<u8>)>, name: &str, value: Vec<u8>) {
    let mut placed = false;
    headers.retain_mut(|(n, v)| {
        if !n.eq_ignore_ascii_case(name) {
            return true;
        }
        if placed {
            return false;
        }
        placed = true;
        *v = value.clone();
        true
    });
    if !placed {
        headers.push((name.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_is_parsed_once_and_does_not_change_equality() {
        let parsed = RequestView::new("POST", "https://x.example/", br#"{"a":[1,2]}"#);
        let fresh = parsed.clone();
        let first = parsed.json().map(std::ptr::from_ref);
        assert_eq!(parsed.json(), Some(&serde_json::json!({"a": [1, 2]})));
        // The second call hands out the value the first one parsed.
        assert_eq!(parsed.json().map(std::ptr::from_ref), first);
        assert_eq!(parsed, fresh);
        assert_eq!(RequestView::new("POST", "/", b"not json").json(), None);
        assert_eq!(
            RequestView::new("POST", "/", b" 7 ").json(),
            Some(&serde_json::json!(7))
        );
    }
}
