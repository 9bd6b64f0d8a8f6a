//! Bodies the sender may have signed instead of the bytes received: a proxy or a body-parser
//! middleware between the sender and here often re-encodes the body, and a raw-body signature
//! then fails although the secret is right.

use crate::util::parse_json;

/// Bodies the sender may have signed instead of the bytes received: JSON re-serialised
/// (compact, pretty, with `\uXXXX` escapes), trailing newline, CRLF/LF, form re-encoded.
pub(crate) fn body_variants(body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut out: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut push = |label: &str, why: &str, b: Vec<u8>| {
        if b != body && !out.iter().any(|(_, _, x)| *x == b) {
            out.push((label.to_owned(), why.to_owned(), b));
        }
    };
    const REENCODED: &str = "the body was re-encoded between the sender and here: the \
        signature matches the body";
    if let Some(v) = parse_json(body) {
        if let Ok(b) = serde_json::to_vec(&v) {
            push(
                "JSON compact",
                &format!(
                    "{REENCODED} as compact JSON. Something parsed the JSON and \
                     re-serialised it (a proxy, a body-parser middleware): verify the raw \
                     bytes before parsing"
                ),
                b.clone(),
            );
            push(
                "JSON non-ASCII escaped",
                &format!(
                    "{REENCODED} with non-ASCII characters escaped as \\uXXXX (as GitHub \
                     sends it): the body was parsed and re-serialised"
                ),
                escape_non_ascii(&b),
            );
        }
        if let Ok(b) = serde_json::to_vec_pretty(&v) {
            push(
                "JSON pretty",
                &format!(
                    "{REENCODED} pretty-printed: something parsed and re-formatted the JSON \
                     (verify the raw bytes before parsing)"
                ),
                b,
            );
        }
    } else if !body.is_empty()
        && body.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
        && body.contains(&b'=')
    {
        let pairs = crate::form::decode_pairs(body);
        if let Ok(s) = serde_urlencoded::to_string(&pairs) {
            push(
                "form re-encoded",
                &format!(
                    "{REENCODED} re-encoded as a form: the form was parsed and re-encoded \
                     (percent-escapes changed); verify the raw bytes"
                ),
                s.clone().into_bytes(),
            );
            push(
                "form re-encoded %20",
                &format!(
                    "{REENCODED} re-encoded as a form with %20 for spaces: the form was \
                     parsed and re-encoded"
                ),
                s.replace('+', "%20").into_bytes(),
            );
        }
    }
    if body.ends_with(b"\n") {
        let trimmed = body
            .strip_suffix(b"\r\n")
            .or_else(|| body.strip_suffix(b"\n"));
        if let Some(t) = trimmed {
            push(
                "trailing newline removed",
                &format!("{REENCODED} without its trailing newline (a newline was appended)"),
                t.to_vec(),
            );
        }
    } else {
        let mut b = body.to_vec();
        b.push(b'\n');
        push(
            "trailing newline added",
            &format!("{REENCODED} with a trailing newline (the newline was lost)"),
            b,
        );
    }
    if body.windows(2).any(|w| w == b"\r\n") {
        push(
            "CRLF to LF",
            &format!("{REENCODED} with LF line endings (CRLF was introduced on the way)"),
            replace_bytes(body, b"\r\n", b"\n"),
        );
    } else if body.contains(&b'\n') {
        push(
            "LF to CRLF",
            &format!("{REENCODED} with CRLF line endings (they were converted to LF)"),
            replace_bytes(body, b"\n", b"\r\n"),
        );
    }
    out
}

fn escape_non_ascii(json: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(json);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
    }
    out.into_bytes()
}

fn replace_bytes(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}
