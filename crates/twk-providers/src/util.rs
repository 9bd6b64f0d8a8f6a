//! Small helpers: MACs, constant-time comparison, encodings, escaping.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// HMAC-SHA256. HMAC accepts keys of any length, so the error branch is unreachable; it
/// returns an empty MAC (which never matches) rather than panicking.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// HMAC-SHA1 (Twilio, GitHub legacy).
pub(crate) fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    match Hmac::<Sha1>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Constant-time equality of two byte strings (length is not hidden).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Standard base64 with padding.
pub(crate) fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// base64url without padding (JWT).
pub(crate) fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes standard base64, with or without padding.
pub(crate) fn b64_decode_lenient(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

/// Decodes strict standard base64 (padded).
pub(crate) fn b64_decode_strict(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

/// Decodes base64url without padding (JWT segments).
pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Escapes bytes for display: printable text stays as is, `\n` `\r` `\t` `\\` are escaped,
/// other control and invisible formatting characters become `\u{..}`, bytes that are not
/// UTF-8 become `\xNN`. The result never contains raw control characters.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() || is_invisible(c) => {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Zero-width and bidirectional-control characters that would make a displayed string lie.
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2069 | 0xFEFF)
}

/// The first `n` characters followed by `…` when longer.
pub(crate) fn abbrev(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n).collect();
        out.push('…');
        out
    }
}

/// A JSON value as a display string (strings without quotes).
pub(crate) fn json_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses the body as JSON, if it is.
/// Bodies up to this size keep their whole JSON as an event's details.
const WHOLE_DETAILS: usize = 64 * 1024;

/// An event's details from a JSON object `body` parsed into `m`: all of it for a webhook-sized
/// body; for a larger one its top-level strings, numbers and booleans only, since a copy of a
/// 1 MiB body's values is ~22 MB while the body itself is kept with the exchange anyway.
pub(crate) fn details_of(
    m: &serde_json::Map<String, serde_json::Value>,
    body: &[u8],
) -> serde_json::Map<String, serde_json::Value> {
    if body.len() <= WHOLE_DETAILS {
        return m.clone();
    }
    m.iter()
        .filter(|(_, v)| !(v.is_object() || v.is_array()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn parse_json(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// A string field of a JSON object.
pub(crate) fn field<'v>(v: &'v serde_json::Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(serde_json::Value::as_str)
}

/// Parses a decimal Unix timestamp (surrounding whitespace allowed).
pub(crate) fn parse_unix(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_large_bodys_details_keep_its_top_level_scalars_only() {
        let v = serde_json::json!({"id": "evt_1", "n": 3, "ok": true, "data": {"big": [1, 2]}});
        let m = v.as_object().cloned().unwrap_or_default();
        assert_eq!(details_of(&m, b"{}").len(), 4);
        let large = details_of(&m, &vec![b' '; 64 * 1024 + 1]);
        let keys: Vec<&str> = large.keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "n", "ok"]);
    }
    use super::*;

    #[test]
    fn escape_never_leaves_control_chars() {
        let s = escape_bytes(b"a\nb\r\t\x00\x1b\xff\\ \xc3\xb1");
        assert_eq!(s, "a\\nb\\r\\t\\u{0}\\u{1b}\\xff\\\\ ñ");
        assert!(!s.chars().any(char::is_control));
        assert_eq!(escape_bytes("x\u{202e}y".as_bytes()), "x\\u{202e}y");
    }

    #[test]
    fn abbrev_counts_chars() {
        assert_eq!(abbrev("ff483d1f", 4), "ff48…");
        assert_eq!(abbrev("ab", 4), "ab");
        assert_eq!(abbrev("ñññññ", 2), "ññ…");
    }

    #[test]
    fn unix_parsing_is_strict() {
        assert_eq!(parse_unix(" 12345 "), Some(12345));
        assert_eq!(parse_unix("-1"), None);
        assert_eq!(parse_unix("1e5"), None);
        assert_eq!(parse_unix("99999999999999999999999"), None);
    }
}
