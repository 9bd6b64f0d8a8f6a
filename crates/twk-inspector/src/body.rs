//! Pretty rendering of bodies by content type: JSON, form fields as a table, XML indented, a
//! JWT decoded into header and claims (never verified here), hex for binary, text otherwise.
//!
//! Every produced line went through [`crate::sanitize`]; nothing here can fail or panic on
//! hostile input (malformed JSON, unbalanced XML, broken base64 all fall back to plain text).

use crate::sanitize::{clean_line, clean_lines};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use twk_capture::{CapturedBody, Header};

/// Most lines a rendered body keeps (the rest is summarised in one line).
pub const MAX_BODY_LINES: usize = 5_000;
/// Most bytes shown as a hex dump.
pub const MAX_HEX_BYTES: usize = 64 * 1024;
/// Widest key column in the form table.
const MAX_KEY_WIDTH: usize = 32;

/// base64url, padding optional (JWT segments).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a body was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// Pretty-printed JSON.
    Json,
    /// `application/x-www-form-urlencoded` as a key/value table.
    Form,
    /// Indented XML.
    Xml,
    /// A JWT decoded into header and claims.
    Jwt,
    /// Plain text.
    Text,
    /// Hex dump.
    Binary,
}

impl BodyKind {
    /// Label shown above the body.
    pub fn label(self) -> &'static str {
        match self {
            BodyKind::Empty => "empty",
            BodyKind::Json => "JSON",
            BodyKind::Form => "form",
            BodyKind::Xml => "XML",
            BodyKind::Jwt => "JWT",
            BodyKind::Text => "text",
            BodyKind::Binary => "binary",
        }
    }
}

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

fn key_style() -> Style {
    Style::new().fg(Color::Cyan)
}

/// The content type's essence (`application/json`), lowercase, from the headers.
pub fn content_type(headers: &[Header]) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| {
            let v = String::from_utf8_lossy(&h.value);
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Renders a body for display, choosing the format from the content type and the bytes.
pub fn render(headers: &[Header], body: &CapturedBody) -> (BodyKind, Vec<Line<'static>>) {
    let bytes = body.bytes.as_slice();
    let (kind, mut lines) = if bytes.is_empty() {
        (BodyKind::Empty, vec![Line::styled("(no body)", dim())])
    } else {
        render_bytes(content_type(headers).as_deref(), bytes, body.truncated)
    };
    if lines.len() > MAX_BODY_LINES {
        let more = lines.len() - MAX_BODY_LINES;
        lines.truncate(MAX_BODY_LINES);
        lines.push(Line::styled(format!("… {more} more lines"), dim()));
    }
    if let Some(why) = body.shortfall() {
        lines.push(Line::styled(
            format!("… body {why}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    (kind, lines)
}

/// The text of a body, if it is text: valid UTF-8 (a cut multi-byte tail of a truncated body
/// is tolerated) without NUL and with few other control characters.
pub fn as_text(bytes: &[u8], truncated: bool) -> Option<&str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(bytes.get(..e.valid_up_to())?).ok()?
        }
        Err(_) => return None,
    };
    let controls = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{1b}'))
        .count();
    if text.contains('\0') || controls * 10 > text.chars().count().max(1) {
        return None;
    }
    Some(text)
}

fn render_bytes(ct: Option<&str>, bytes: &[u8], truncated: bool) -> (BodyKind, Vec<Line<'static>>) {
    let Some(text) = as_text(bytes, truncated) else {
        return (BodyKind::Binary, hex_dump(bytes));
    };
    let ct = ct.unwrap_or_default();
    let trimmed = text.trim();
    let json_like = ct.contains("json") || trimmed.starts_with('{') || trimmed.starts_with('[');
    if json_like && let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let mut lines = json_lines(&v, 0);
        lines.extend(embedded_jwts_json(&v));
        return (BodyKind::Json, lines);
    }
    if let Some(lines) = jwt_lines(trimmed) {
        return (BodyKind::Jwt, lines);
    }
    if (ct == "application/x-www-form-urlencoded" || (ct.is_empty() && looks_like_form(trimmed)))
        && let Some(lines) = form_table(bytes)
    {
        return (BodyKind::Form, lines);
    }
    if ct.contains("xml")
        || trimmed.starts_with("<?xml")
        || (trimmed.starts_with('<') && trimmed.ends_with('>'))
    {
        return (BodyKind::Xml, xml_lines(text));
    }
    (BodyKind::Text, plain(text))
}

fn plain(text: &str) -> Vec<Line<'static>> {
    let mut lines = clean_lines(text);
    if lines.last().is_some_and(String::is_empty) && lines.len() > 1 {
        lines.pop();
    }
    lines.into_iter().map(Line::from).collect()
}

fn json_lines(v: &serde_json::Value, indent: usize) -> Vec<Line<'static>> {
    let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
    let pad = " ".repeat(indent);
    clean_lines(&pretty)
        .into_iter()
        .map(|l| Line::from(format!("{pad}{l}")))
        .collect()
}

fn looks_like_form(s: &str) -> bool {
    !s.is_empty()
        && s.contains('=')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=&%+-_.~*".contains(&b))
}

fn form_table(bytes: &[u8]) -> Option<Vec<Line<'static>>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).ok()?;
    if pairs.is_empty() {
        return None;
    }
    let keys: Vec<String> = pairs
        .iter()
        .map(|(k, _)| clean_line(k, MAX_KEY_WIDTH))
        .collect();
    let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(pairs.len() + 2);
    for (key, (_, value)) in keys.iter().zip(&pairs) {
        let mut value_lines = clean_lines(value).into_iter();
        let first = value_lines.next().unwrap_or_default();
        out.push(Line::from(vec![
            Span::styled(format!("{key:<width$}"), key_style()),
            Span::styled(" │ ", dim()),
            Span::raw(first),
        ]));
        for more in value_lines {
            out.push(Line::from(vec![
                Span::raw(" ".repeat(width)),
                Span::styled(" │ ", dim()),
                Span::raw(more),
            ]));
        }
        let v = value.trim();
        if (v.starts_with('{') || v.starts_with('['))
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(v)
        {
            out.push(Line::styled(
                format!("{:width$}   ↳ {key} as JSON:", ""),
                dim(),
            ));
            out.extend(json_lines(&json, width + 5));
        }
        if let Some(jwt) = jwt_lines(v) {
            out.push(Line::styled(
                format!("{:width$}   ↳ {key} as JWT:", ""),
                dim(),
            ));
            out.extend(jwt.into_iter().map(|l| indent_line(l, width + 5)));
        }
    }
    Some(out)
}

fn indent_line(line: Line<'static>, n: usize) -> Line<'static> {
    let mut spans = vec![Span::raw(" ".repeat(n))];
    spans.extend(line.spans);
    Line::from(spans).style(line.style)
}

fn embedded_jwts_json(v: &serde_json::Value) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    if let serde_json::Value::Object(map) = v {
        for (k, val) in map {
            if let Some(s) = val.as_str()
                && let Some(lines) = jwt_lines(s)
            {
                out.push(Line::styled(
                    format!("↳ field {} as JWT:", clean_line(k, MAX_KEY_WIDTH)),
                    dim(),
                ));
                out.extend(lines.into_iter().map(|l| indent_line(l, 2)));
            }
        }
    }
    out
}

/// Decodes `s` as a JWT (header and claims as JSON), or `None` when it is not one. The
/// signature is not verified here.
pub fn decode_jwt(s: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    let s = s.trim();
    if s.len() > 64 * 1024 {
        return None;
    }
    let mut parts = s.split('.');
    let (h, c, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.is_empty() || c.is_empty() {
        return None;
    }
    let b64 = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
    };
    if !(b64(h) && b64(c) && b64(sig)) {
        return None;
    }
    let header: serde_json::Value = serde_json::from_slice(&B64URL.decode(h).ok()?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&B64URL.decode(c).ok()?).ok()?;
    (header.is_object() && claims.is_object()).then_some((header, claims))
}

fn jwt_lines(s: &str) -> Option<Vec<Line<'static>>> {
    let (header, claims) = decode_jwt(s)?;
    let mut out = vec![Line::styled(
        "JWT (decoded only; the signature is checked in the Signature tab)",
        dim(),
    )];
    out.push(Line::styled("header:", key_style()));
    out.extend(json_lines(&header, 2));
    out.push(Line::styled("claims:", key_style()));
    out.extend(json_lines(&claims, 2));
    for claim in ["iat", "nbf", "exp"] {
        if let Some(t) = claims.get(claim).and_then(serde_json::Value::as_i64)
            && let Ok(ts) = jiff::Timestamp::from_second(t)
        {
            out.push(Line::styled(format!("  {claim} = {ts}"), dim()));
        }
    }
    Some(out)
}

/// Indents XML by tag depth. Tolerant: unbalanced or broken markup still renders.
fn xml_lines(text: &str) -> Vec<Line<'static>> {
    const MAX_DEPTH: usize = 32;
    let mut out: Vec<String> = Vec::new();
    let mut depth: usize = 0;
    let mut rest = text;
    let pad = |d: usize| "  ".repeat(d.min(MAX_DEPTH));
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end_pat = if after.starts_with("!--") {
                "-->"
            } else if after.starts_with("![CDATA[") {
                "]]>"
            } else {
                ">"
            };
            let tag_len = match after.find(end_pat) {
                Some(i) => 1 + i + end_pat.len(),
                None => rest.len(),
            };
            let (tag, tail) = rest.split_at(tag_len);
            rest = tail;
            let is_close = tag.starts_with("</");
            let is_leaf = tag.ends_with("/>") || tag.starts_with("<?") || tag.starts_with("<!");
            if is_close {
                depth = depth.saturating_sub(1);
                out.push(format!("{}{}", pad(depth), tag));
                continue;
            }
            if is_leaf {
                out.push(format!("{}{}", pad(depth), tag));
                continue;
            }
            // `<a>text</a>` stays on one line.
            let text_len = rest.find('<').unwrap_or(rest.len());
            let (inner, after_text) = rest.split_at(text_len);
            if after_text.starts_with("</") && !inner.contains('\n') {
                let close_len = after_text.find('>').map_or(after_text.len(), |i| i + 1);
                let (close, tail) = after_text.split_at(close_len);
                out.push(format!("{}{}{}{}", pad(depth), tag, inner.trim(), close));
                rest = tail;
                continue;
            }
            out.push(format!("{}{}", pad(depth), tag));
            depth += 1;
        } else {
            let text_len = rest.find('<').unwrap_or(rest.len());
            let (inner, tail) = rest.split_at(text_len);
            rest = tail;
            let t = inner.trim();
            if !t.is_empty() {
                out.push(format!("{}{}", pad(depth), t));
            }
        }
    }
    out.iter()
        .flat_map(|l| clean_lines(l))
        .map(Line::from)
        .collect()
}

/// A classic hex dump (`offset  16 bytes  |ascii|`) of at most [`MAX_HEX_BYTES`].
pub fn hex_dump(bytes: &[u8]) -> Vec<Line<'static>> {
    let shown = bytes.get(..MAX_HEX_BYTES).unwrap_or(bytes);
    let mut out: Vec<Line<'static>> = shown
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut hex = String::with_capacity(16 * 3 + 1);
            for (j, b) in chunk.iter().enumerate() {
                if j == 8 {
                    hex.push(' ');
                }
                hex.push_str(&format!("{b:02x} "));
            }
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            Line::from(vec![
                Span::styled(format!("{:08x}  ", i * 16), dim()),
                Span::raw(format!("{hex:<49}")),
                Span::styled(format!("|{ascii}|"), dim()),
            ])
        })
        .collect();
    if bytes.len() > shown.len() {
        out.push(Line::styled(
            format!("… {} more bytes not shown", bytes.len() - shown.len()),
            dim(),
        ));
    }
    out
}

/// The plain text of rendered lines (for tests and docs).
pub fn lines_text(lines: &[Line<'_>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bytes: &[u8]) -> CapturedBody {
        CapturedBody {
            bytes: bytes.to_vec(),
            len: bytes.len() as u64,
            sha256: String::new(),
            truncated: false,
        }
    }

    fn ct(v: &str) -> Vec<Header> {
        vec![Header {
            name: "Content-Type".into(),
            value: v.as_bytes().to_vec(),
        }]
    }

    fn text(headers: &[Header], b: &[u8]) -> (BodyKind, Vec<String>) {
        let (k, lines) = render(headers, &body(b));
        (k, lines_text(&lines))
    }

    #[test]
    fn json_is_pretty() {
        let (k, t) = text(&ct("application/json"), br#"{"a":1,"b":[true]}"#);
        assert_eq!(k, BodyKind::Json);
        assert_eq!(
            t,
            vec!["{", "  \"a\": 1,", "  \"b\": [", "    true", "  ]", "}"]
        );
    }

    #[test]
    fn form_is_a_table() {
        let (k, t) = text(
            &ct("application/x-www-form-urlencoded; charset=utf-8"),
            b"MessageSid=SM1&Body=hello+there&X=%7B%22a%22%3A1%7D",
        );
        assert_eq!(k, BodyKind::Form);
        assert_eq!(t[0], "MessageSid │ SM1");
        assert_eq!(t[1], "Body       │ hello there");
        assert!(t.iter().any(|l| l.contains("X as JSON")));
    }

    #[test]
    fn jwt_is_decoded() {
        let h = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let c = B64URL.encode(br#"{"sub":"42","iat":1700000000}"#);
        let jwt = format!("{h}.{c}.c2ln");
        let (k, t) = text(&[], jwt.as_bytes());
        assert_eq!(k, BodyKind::Jwt);
        assert!(t.iter().any(|l| l.contains("\"alg\": \"HS256\"")));
        assert!(t.iter().any(|l| l.contains("iat = 2023-11-14T22:13:20Z")));
        // In a form field (Authy event webhooks).
        let (k, t) = text(
            &ct("application/x-www-form-urlencoded"),
            format!("body={jwt}").as_bytes(),
        );
        assert_eq!(k, BodyKind::Form);
        assert!(t.iter().any(|l| l.contains("\"sub\": \"42\"")));
        assert!(decode_jwt("a.b.c").is_none());
        assert!(decode_jwt("....").is_none());
    }

    #[test]
    fn xml_is_indented() {
        let (k, t) = text(
            &ct("application/xml"),
            b"<?xml version=\"1.0\"?><Response><Say voice=\"alice\">Hi</Say><Hangup/></Response>",
        );
        assert_eq!(k, BodyKind::Xml);
        assert_eq!(
            t,
            vec![
                "<?xml version=\"1.0\"?>",
                "<Response>",
                "  <Say voice=\"alice\">Hi</Say>",
                "  <Hangup/>",
                "</Response>"
            ]
        );
        // Broken markup does not panic.
        let _ = text(&ct("text/xml"), b"<a><b></a></c><<<>");
        let _ = text(&ct("text/xml"), b"<!-- unterminated");
    }

    #[test]
    fn binary_is_hex() {
        let (k, t) = text(&[], &[0u8, 1, 2, 0xff, b'A']);
        assert_eq!(k, BodyKind::Binary);
        assert!(t[0].starts_with("00000000  00 01 02 ff 41"));
        assert!(t[0].ends_with("|....A|"));
    }

    #[test]
    fn hostile_text_is_clean() {
        let (_, t) = text(
            &ct("text/plain"),
            "a\u{1b}[2J\u{9b}6n\u{202e}b\r\nc".as_bytes(),
        );
        for l in &t {
            assert!(
                l.chars()
                    .all(|c| !c.is_control() && !crate::sanitize::is_unsafe(c)),
                "{l:?}"
            );
        }
    }

    #[test]
    fn truncated_is_flagged() {
        let b = CapturedBody {
            bytes: b"abc".to_vec(),
            len: 10,
            sha256: String::new(),
            truncated: true,
        };
        let (_, lines) = render(&[], &b);
        assert!(
            lines_text(&lines)
                .last()
                .is_some_and(|l| l.contains("3 of 10 bytes"))
        );
    }
}
