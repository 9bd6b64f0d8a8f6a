//! Form (`application/x-www-form-urlencoded`) decoding, percent-encoding and JSON flattening.

use serde_json::Value;

/// Decodes a form body or query string into ordered pairs. Never fails: `+` is a space,
/// invalid percent-escapes are kept literally, invalid UTF-8 becomes U+FFFD.
pub(crate) fn decode_pairs(data: &[u8]) -> Vec<(String, String)> {
    decode_pairs_upto(data, usize::MAX)
}

/// Fields decoded for naming an event and showing its details: webhooks send tens, and
/// a hostile form of a million fields would otherwise cost ~100 bytes of memory per field.
/// Signature checks decode every field ([`decode_pairs`]).
pub(crate) const NAMING_FIELDS: usize = 1000;

/// [`decode_pairs`], the first `max` fields only.
pub(crate) fn decode_pairs_upto(data: &[u8], max: usize) -> Vec<(String, String)> {
    parts(data)
        .filter(|part| !part.is_empty())
        .take(max)
        .map(|part| {
            let (k, v) = name_value(part);
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The `&`-separated parts of a form body or query string. memchr, not a per-byte closure:
/// a body that is not a form (a 1 MiB upload, an image) goes through detection on every
/// request, and the scan is then all it costs.
fn parts(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'&', data)
        .chain(std::iter::once(data.len()))
        .map(move |end| {
            let part = &data[start..end];
            start = end + 1;
            part
        })
}

/// A part's name and value, split at its first `=` (without one, the value is empty).
fn name_value(part: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'=', part) {
        Some(i) => (&part[..i], &part[i + 1..]),
        None => (part, &part[..0]),
    }
}

/// Calls `each` with every decoded key of a form body or query string, values skipped: what
/// detection needs to recognise a sender, at a cost that does not grow with the values and
/// without an allocation per key (1 MiB of `a&a&…` is half a million keys). A part longer than
/// any key a sender uses is skipped undecoded (a 1 MiB binary body is one huge "key"). Keys
/// are decoded as [`percent_decode`] does, without its lossy UTF-8 step.
pub(crate) fn each_key(data: &[u8], mut each: impl FnMut(&[u8])) {
    const LONGEST_KEY: usize = 256;
    let mut decoded = Vec::with_capacity(LONGEST_KEY);
    for part in parts(data) {
        let head = &part[..part.len().min(LONGEST_KEY + 1)];
        let key = match memchr::memchr(b'=', head) {
            Some(i) => &part[..i],
            None if part.len() <= LONGEST_KEY => part,
            None => continue,
        };
        if !key.is_empty() {
            decoded.clear();
            percent_decode_into(&mut decoded, key);
            each(&decoded);
        }
    }
}

/// The decoded value of the first field named `name` in a form body, as [`decode_pairs`]
/// would find it.
pub(crate) fn value_of(data: &[u8], name: &str) -> Option<String> {
    values_of(data, name).next()
}

/// The decoded values of the fields named `name`, in order, without decoding the other
/// fields (a hostile body of a million fields costs a scan, not a million strings).
pub(crate) fn values_of<'d>(data: &'d [u8], name: &'d str) -> impl Iterator<Item = String> + 'd {
    // Each byte of a name is at most one `%XX` escape: a longer key cannot decode to it.
    let longest = name.len() * 3;
    let mut key = Vec::with_capacity(longest);
    parts(data)
        .filter(|part| !part.is_empty())
        .filter_map(move |part| {
            let (k, v) = name_value(part);
            if k.len() > longest {
                return None;
            }
            key.clear();
            percent_decode_into(&mut key, k);
            (key == name.as_bytes()).then(|| percent_decode(v))
        })
}

/// Decodes `%XX` escapes and `+` (form rules), lossy UTF-8.
pub(crate) fn percent_decode(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len());
    percent_decode_into(&mut out, data);
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `data` with `%XX` escapes and `+` decoded (form rules) to `out`.
fn percent_decode_into(out: &mut Vec<u8>, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => decode_escape(out, data, &mut i),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
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

/// One step of a flattened JSON key: an object member or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// An object member name.
    Key(String),
    /// An array position. Kept (not collapsed to `[]`) because authy-python sorts the
    /// parameters while the indices are still in them.
    Index(usize),
}

/// Flattens a JSON object PHP-style: `{"a":{"b":1},"l":["x"]}` → `a`,`b` = `1` and `l`,`0` =
/// `x`; `null` is an empty value, booleans are `true`/`false`, numbers as serde_json writes
/// them; empty objects and arrays produce nothing (as with PHP's and authy-python's query
/// builders). Anything but an object flattens to nothing.
pub(crate) fn flatten_json(v: &Value) -> Vec<(Vec<Segment>, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = v {
        for (k, v) in map {
            flatten_into(vec![Segment::Key(k.clone())], v, &mut out);
        }
    }
    out
}

fn flatten_into(path: Vec<Segment>, v: &Value, out: &mut Vec<(Vec<Segment>, String)>) {
    let child = |seg: Segment| {
        let mut p = path.clone();
        p.push(seg);
        p
    };
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(child(Segment::Key(k.clone())), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_into(child(Segment::Index(i)), v, out);
            }
        }
        Value::Null => out.push((path, String::new())),
        Value::Bool(b) => out.push((path, b.to_string())),
        Value::Number(n) => out.push((path, n.to_string())),
        Value::String(s) => out.push((path, s.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        each_key(data, |k| out.push(String::from_utf8_lossy(k).into_owned()));
        out
    }

    #[test]
    fn keys_are_decoded_without_the_values_and_oversized_parts_are_skipped() {
        let mut body = b"Account%53id=AC1&Call+Sid=".to_vec();
        body.extend(std::iter::repeat_n(b'x', 10_000));
        body.extend(b"&".iter().chain(std::iter::repeat_n(&b'y', 300)));
        assert_eq!(keys(&body), ["AccountSid", "Call Sid"]);
    }

    proptest::proptest! {
        /// One field's value is the one a full decode finds first.
        #[test]
        fn value_of_agrees_with_a_full_decode(
            parts in proptest::collection::vec("(body|bo%64y|b|a)(=[a-z%+.]{0,5})?", 0..6)
        ) {
            let body = parts.join("&");
            let full = decode_pairs(body.as_bytes())
                .into_iter()
                .find(|(k, _)| k == "body")
                .map(|(_, v)| v);
            proptest::prop_assert_eq!(value_of(body.as_bytes(), "body"), full);
        }
    }

    proptest::proptest! {
        /// The memchr scan finds the same keys as splitting the body byte by byte.
        #[test]
        fn the_key_scan_agrees_with_a_plain_split(
            parts in proptest::collection::vec("[a-z%+=]{0,6}|x{250,260}=?", 0..8)
        ) {
            let body = parts.join("&");
            let plain: Vec<String> = body
                .as_bytes()
                .split(|&b| b == b'&')
                .map(|part| part.split(|&b| b == b'=').next().unwrap_or(part))
                .filter(|k| !k.is_empty() && k.len() <= 256)
                .map(percent_decode)
                .collect();
            proptest::prop_assert_eq!(keys(body.as_bytes()), plain);
        }
    }

    #[test]
    fn naming_decodes_the_first_fields_only() {
        let body = format!("MessageStatus=sent{}", "&a=1".repeat(5000));
        let pairs = decode_pairs_upto(body.as_bytes(), NAMING_FIELDS);
        assert_eq!(pairs.len(), NAMING_FIELDS);
        assert_eq!(pairs[0], ("MessageStatus".into(), "sent".into()));
        assert_eq!(decode_pairs(body.as_bytes()).len(), 5001);
    }

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
            r#"{"qux":"net","foo":{"bar":{"biz":"foo"}},"e":{},"n":null,"l":[1,true],"z":[]}"#,
        )
        .unwrap_or(Value::Null);
        let key = |s: &str| Segment::Key(s.to_owned());
        assert_eq!(
            flatten_json(&v),
            vec![
                (vec![key("qux")], "net".to_owned()),
                (vec![key("foo"), key("bar"), key("biz")], "foo".to_owned()),
                (vec![key("n")], String::new()),
                (vec![key("l"), Segment::Index(0)], "1".to_owned()),
                (vec![key("l"), Segment::Index(1)], "true".to_owned()),
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
