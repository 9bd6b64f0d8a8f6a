//! Edit-then-replay: a captured request as an editable HTTP/1.1-style message, and the parser
//! that reads the edit back, refusing anything that could not be sent safely (so an invalid
//! edit is reported, never sent).
//!
//! ```
//! use twk_inspector::edit::parse;
//! let e = parse("POST /hook?x=1 HTTP/1.1\nContent-Type: text/plain\n\nhello").unwrap();
//! assert_eq!((e.method.as_str(), e.path.as_str(), e.body.as_slice()), ("POST", "/hook?x=1", &b"hello"[..]));
//! ```

use twk_capture::{Exchange, Header};

/// Headers the replay recomputes: dropped from the edit text.
const RECOMPUTED: [&str; 2] = ["content-length", "transfer-encoding"];

/// Largest edited message accepted.
pub const MAX_EDIT_BYTES: usize = 16 * 1024 * 1024;

/// Why an edit cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The body is not UTF-8 text, so it cannot be edited as text.
    #[error(
        "the body is binary and cannot be edited as text (use `twk-tunnel replay --body-file`)"
    )]
    BinaryBody,
    /// The captured body is only a prefix of the original.
    #[error("the captured body was truncated; editing it would send a different body")]
    TruncatedBody,
    /// The relay refused the request before reading its body.
    #[error(
        "the relay refused this request before reading its body (use `twk-tunnel replay --body-file`)"
    )]
    BodyNeverRead,
    /// The first line is not `METHOD /path [HTTP/1.1]`.
    #[error("line 1 must be `METHOD /path HTTP/1.1`, found {0:?}")]
    RequestLine(String),
    /// The method has characters HTTP does not allow.
    #[error("method {0:?} is not a valid HTTP method")]
    Method(String),
    /// The path is not origin-form or has forbidden characters.
    #[error("path {0:?} must start with / and contain no spaces or control characters")]
    Path(String),
    /// A header line without `:` or with a bad name or value.
    #[error("line {line}: {reason}")]
    Header {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file is too large.
    #[error("the edited message is larger than {MAX_EDIT_BYTES} bytes")]
    TooLarge,
    /// Nothing was written.
    #[error("the edited message is empty: nothing sent")]
    Empty,
}

/// A request read back from the editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// Method.
    pub method: String,
    /// Path and query (origin form).
    pub path: String,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Body bytes (exactly what follows the blank line).
    pub body: Vec<u8>,
}

impl Edited {
    /// `original` with this edit applied (method, path, public URL path, headers, body);
    /// `id` cleared and `replay_of` set to the original's id.
    pub fn apply_to(&self, original: &Exchange) -> Exchange {
        let mut ex = original.clone();
        if ex.path != self.path {
            // Keep the public URL consistent with the new path (same scheme and host).
            let prefix_len = ex.public_url.len().saturating_sub(ex.path.len());
            if ex.public_url.ends_with(&ex.path) {
                let base = ex
                    .public_url
                    .get(..prefix_len)
                    .unwrap_or_default()
                    .to_owned();
                ex.public_url = format!("{base}{}", self.path);
            }
        }
        ex.method = self.method.clone();
        ex.path = self.path.clone();
        ex.request.headers = self.headers.clone();
        ex.request.body = twk_capture::CapturedBody {
            len: self.body.len() as u64,
            bytes: self.body.clone(),
            sha256: String::new(),
            truncated: false,
        };
        ex.replay_of = original.id;
        ex.id = None;
        ex
    }
}

/// The request of `ex` as an editable message: request line, headers (secrets included: the
/// file is private and deleted after the edit), blank line, body. `Content-Length` is left
/// out: it is recomputed on send.
pub fn to_message(ex: &Exchange) -> Result<String, EditError> {
    let body = &ex.request.body;
    if ex.refused && body.truncated {
        return Err(EditError::BodyNeverRead);
    }
    if body.truncated || (body.bytes.len() as u64) < body.len {
        return Err(EditError::TruncatedBody);
    }
    let text = std::str::from_utf8(&body.bytes).map_err(|_| EditError::BinaryBody)?;
    let mut out = format!(
        "{} {} HTTP/1.1\n",
        ex.method,
        if ex.path.is_empty() { "/" } else { &ex.path }
    );
    for h in &ex.request.headers {
        if RECOMPUTED.contains(&h.name.to_ascii_lowercase().as_str()) {
            continue;
        }
        let v = std::str::from_utf8(&h.value).map_err(|_| EditError::Header {
            line: 0,
            reason: format!(
                "header {:?} is not UTF-8 and cannot be edited as text",
                h.name
            ),
        })?;
        out.push_str(&format!("{}: {v}\n", h.name));
    }
    out.push('\n');
    out.push_str(text);
    Ok(out)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads an edited message. Line ends may be `\n` or `\r\n`; the body is everything after the
/// first empty line, byte for byte.
pub fn parse(text: &str) -> Result<Edited, EditError> {
    if text.len() > MAX_EDIT_BYTES {
        return Err(EditError::TooLarge);
    }
    if text.trim().is_empty() {
        return Err(EditError::Empty);
    }
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => match text.find("\r\n\r\n") {
            Some(i) => (&text[..i], &text[i + 4..]),
            None => (text.trim_end_matches(['\r', '\n']), ""),
        },
    };
    // `\r\n\r\n` written by some editors: the split above found `\n\n` only if it exists.
    let head = head.strip_suffix('\r').unwrap_or(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(EditError::RequestLine(crate::sanitize::clean_line(
            first, 80,
        )));
    };
    match parts.next() {
        None | Some("HTTP/1.1") | Some("HTTP/1.0") | Some("HTTP/2") => {}
        Some(_) => {
            return Err(EditError::RequestLine(crate::sanitize::clean_line(
                first, 80,
            )));
        }
    }
    if parts.next().is_some() {
        return Err(EditError::RequestLine(crate::sanitize::clean_line(
            first, 80,
        )));
    }
    if !method.bytes().all(is_tchar) {
        return Err(EditError::Method(crate::sanitize::clean_line(method, 40)));
    }
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(EditError::Path(crate::sanitize::clean_line(path, 80)));
    }
    let mut headers = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let Some((name, value)) = line.split_once(':') else {
            return Err(EditError::Header {
                line: n,
                reason: "expected `Name: value`".into(),
            });
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(EditError::Header {
                line: n,
                reason: format!(
                    "{:?} is not a valid header name",
                    crate::sanitize::clean_line(name, 40)
                ),
            });
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(EditError::Header {
                line: n,
                reason: format!("the value of {name} contains a control character"),
            });
        }
        if RECOMPUTED.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        headers.push(Header {
            name: name.to_owned(),
            value: value.as_bytes().to_vec(),
        });
    }
    Ok(Edited {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msg = "POST /a?b=1 HTTP/1.1\nHost: x\nContent-Length: 3\nX-A:  v \n\n{\"k\":1}\n";
        let e = parse(msg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.method, "POST");
        assert_eq!(e.path, "/a?b=1");
        assert_eq!(e.headers.len(), 2);
        assert_eq!(e.headers[1].value, b"v");
        assert_eq!(e.body, b"{\"k\":1}\n");
        let crlf = parse("GET / HTTP/1.1\r\nA: b\r\n\r\nbody").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(crlf.headers[0].value, b"b");
        assert_eq!(crlf.body, b"body");
    }

    #[test]
    fn a_body_the_relay_never_read_cannot_be_edited_and_says_so() {
        let mut ex = Exchange {
            method: "POST".into(),
            path: "/hooks".into(),
            refused: true,
            ..Exchange::default()
        };
        ex.request.body.len = 30_000_000;
        ex.request.body.truncated = true;
        assert_eq!(to_message(&ex), Err(EditError::BodyNeverRead));
        ex.refused = false;
        assert_eq!(to_message(&ex), Err(EditError::TruncatedBody));
    }

    #[test]
    fn invalid_edits_are_refused() {
        assert!(matches!(parse(""), Err(EditError::Empty)));
        assert!(matches!(parse("POST"), Err(EditError::RequestLine(_))));
        assert!(matches!(
            parse("PO ST /x HTTP/1.1"),
            Err(EditError::RequestLine(_))
        ));
        assert!(matches!(parse("P@ST /x"), Err(EditError::Method(_))));
        assert!(matches!(parse("POST x"), Err(EditError::Path(_))));
        assert!(matches!(
            parse("POST /x\nno colon\n\n"),
            Err(EditError::Header { line: 2, .. })
        ));
        assert!(matches!(
            parse("POST /x\nBad Name: v\n\n"),
            Err(EditError::Header { line: 2, .. })
        ));
        assert!(matches!(
            parse("POST /x\nA: b\u{1b}c\n\n"),
            Err(EditError::Header { line: 2, .. })
        ));
    }
}
