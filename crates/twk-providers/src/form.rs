//! Form (`application/x-www-form-urlencoded`) decoding, percent-encoding and JSON flattening.

use serde_json::Value;

/// Decodes a form body or query string into ordered pairs. Never fails: `+` is a space,
/// invalid percent-escapes are kept literally, invalid UTF-8 becomes U+FFFD.
pub(crate) fn decode_pairs(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &part[..0]),
            };
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (form rules), lossy UTF-8.
pub(crate) fn percent_decode(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => decode_escape(&mut out, data, &mut i),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Handles a `%` at `data[*i]`: decodes `%XX` when two hex digits follow, else keeps `%`.
fn decode_escape(out: &mut Vec<u8>, data: &[u8], i: &mut usize) {
    let hi = data.get(*i + 1).and_then(|b| (*b as char).to_digit(16));
    let lo = data.get(*i + 2).and_then(|b| (*b as char).to_digit(16));
    match (hi, lo) {
        (Some(h), Some(l)) => {
            out.push((h * 16 + l) as u8);
            *i += 3;
        }
        _ => {
            out.push(b'%');
            *i += 1;
        }
    }
}

/// Which percent-encoder to use for canonical parameter strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// RFC 3986 unreserved kept (`A-Z a-z 0-9 - . _ ~`), space as `+` (node `qs` + the Authy
    /// snippet's `%20`→`+`; python `quote` + `%20`→`+`).
    Rfc3986Plus,
    /// Java `URLEncoder`: `A-Z a-z 0-9 . - * _` kept, space as `+`.
    JavaUrlEncoder,
}

/// Percent-encodes a string.
pub(crate) fn encode(s: &str, enc: Encoding) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || match enc {
                Encoding::Rfc3986Plus => matches!(b, b'-' | b'.' | b'_' | b'~'),
                Encoding::JavaUrlEncoder => matches!(b, b'-' | b'.' | b'_' | b'*'),
            };
        if keep {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Flattens JSON PHP/`qs`-style: `{"a":{"b":1}}` → `a[b]=1`, arrays as `a[]`, `null` as an
/// empty value, booleans as `true`/`false`; empty objects and arrays produce nothing.
pub(crate) fn flatten_json(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = v {
        for (k, v) in map {
            flatten_into(k.clone(), v, &mut out);
        }
    }
    out
}

fn flatten_into(key: String, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(format!("{key}[{k}]"), v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                flatten_into(format!("{key}[]"), v, out);
            }
        }
        Value::Null => out.push((key, String::new())),
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::String(s) => out.push((key, s.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_a_browser_form() {
        assert_eq!(
            decode_pairs(b"a=1&b=x+y%2B&c&=v&d=%zz%4"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y+".into()),
                ("c".into(), String::new()),
                (String::new(), "v".into()),
                ("d".into(), "%zz%4".into()),
            ]
        );
        assert_eq!(percent_decode(b"%C3%B1%ff"), "ñ\u{fffd}");
    }

    #[test]
    fn encoders_differ_only_where_documented() {
        assert_eq!(encode("val|ue&2", Encoding::Rfc3986Plus), "val%7Cue%262");
        assert_eq!(encode("a b~*", Encoding::Rfc3986Plus), "a+b~%2A");
        assert_eq!(encode("a b~*", Encoding::JavaUrlEncoder), "a+b%7E*");
        assert_eq!(encode("foo[bar]", Encoding::Rfc3986Plus), "foo%5Bbar%5D");
    }

    #[test]
    fn flattens_nested_json() {
        let v: Value = serde_json::from_str(
            r#"{"qux":"net","foo":{"bar":{"biz":"foo"}},"e":{},"n":null,"l":[1,true]}"#,
        )
        .unwrap_or(Value::Null);
        assert_eq!(
            flatten_json(&v),
            vec![
                ("qux".into(), "net".into()),
                ("foo[bar][biz]".into(), "foo".into()),
                ("n".into(), String::new()),
                ("l[]".into(), "1".into()),
                ("l[]".into(), "true".into()),
            ]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode_pairs(&data);
            let _ = percent_decode(&data);
            if let Ok(v) = serde_json::from_slice::<Value>(&data) {
                let _ = flatten_json(&v);
            }
        }

        #[test]
        fn encode_then_decode_roundtrips(s in "\\PC{0,40}") {
            for enc in [Encoding::Rfc3986Plus, Encoding::JavaUrlEncoder] {
                let e = encode(&s, enc);
                proptest::prop_assert!(e.is_ascii());
                proptest::prop_assert_eq!(percent_decode(e.as_bytes()), s.clone());
            }
        }
    }
}
