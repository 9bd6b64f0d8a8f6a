//! A webhook before it is signed: what a provider's sender would put on the wire for one
//! event, and the `--set FIELD=VALUE` overrides applied to it.

use crate::TriggerError;
use serde_json::Value;
use twk_providers::Provider;

/// The body of a webhook, in the form the provider encodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON document (Stripe, GitHub, Bandwidth, …).
    Json(Value),
    /// `application/x-www-form-urlencoded` pairs in the sender's order (Twilio, Slack
    /// commands).
    Form(Vec<(String, String)>),
    /// The claims of an Authy event webhook: signing turns them into an HS256 JWT carried in
    /// the body field `body`.
    JwtClaims(Value),
}

/// One unsigned webhook: provider, event, the headers its sender sets and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Who sends it.
    pub provider: Provider,
    /// The catalog's event name (`payment_intent.succeeded`, `2fa.message-failed`).
    pub event: String,
    /// The event's or delivery's id, as the provider would log it.
    pub id: String,
    /// HTTP method.
    pub method: &'static str,
    /// Unsigned headers in the sender's order (`Content-Type`, `User-Agent`, event headers).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// Stripe sends its JSON pretty-printed (two-space indent).
    pub pretty: bool,
}

impl Draft {
    /// A POST of `body` with `Content-Type` set for its encoding.
    pub fn post(provider: Provider, event: &str, id: String, body: Body) -> Draft {
        let content_type = match &body {
            Body::Json(_) | Body::JwtClaims(_) => "application/json",
            Body::Form(_) => "application/x-www-form-urlencoded",
        };
        Draft {
            provider,
            event: event.to_owned(),
            id,
            method: "POST",
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body,
            pretty: false,
        }
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Draft {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Replaces the `Content-Type` (builder style).
    pub fn with_content_type(mut self, value: &str) -> Draft {
        for (n, v) in &mut self.headers {
            if n.eq_ignore_ascii_case("content-type") {
                *v = value.to_owned();
            }
        }
        self
    }

    /// The header's value, by case-insensitive name.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's bytes as sent (before signing; Authy claims are still plain JSON here).
    pub fn body_bytes(&self) -> Result<Vec<u8>, TriggerError> {
        let encoded = match &self.body {
            Body::Json(v) | Body::JwtClaims(v) if self.pretty => serde_json::to_vec_pretty(v),
            Body::Json(v) | Body::JwtClaims(v) => serde_json::to_vec(v),
            Body::Form(pairs) => {
                return serde_urlencoded::to_string(pairs)
                    .map(String::into_bytes)
                    .map_err(|e| TriggerError::Encode(e.to_string()));
            }
        };
        encoded.map_err(|e| TriggerError::Encode(e.to_string()))
    }

    /// The headers as a request view takes them.
    pub fn header_pairs(&self) -> Vec<(&str, &[u8])> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect()
    }

    /// The event name twk records for this webhook, which `log --event` matches: the
    /// provider's own name in it, which may differ from the catalog's (`voice.initiate` is
    /// Bandwidth's `initiate`). `None` when twk names none (or the body is signed later).
    pub fn recorded_event(&self) -> Option<String> {
        if matches!(self.body, Body::JwtClaims(_)) {
            return None;
        }
        let body = self.body_bytes().ok()?;
        let view = twk_providers::RequestView::with_headers(
            self.method,
            "https://twk.invalid/",
            self.header_pairs(),
            &body,
        );
        let secrets = twk_providers::Secrets::new();
        // The event's name does not depend on the time or the signature.
        let opts = twk_providers::VerifyOptions::at(0).with_provider(Some(self.provider));
        let analysis = twk_providers::analyze(&view, &secrets, &opts);
        analysis.event.map(|e| e.name)
    }

    /// A field's value: a dot path into JSON, a key of a form.
    pub fn field(&self, path: &str) -> Option<String> {
        match &self.body {
            Body::Json(v) | Body::JwtClaims(v) => {
                let mut cur = root_for(v, path);
                for seg in path.split('.') {
                    cur = match cur {
                        Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                        Value::Object(o) => o.get(seg)?,
                        _ => return None,
                    };
                }
                Some(match cur {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            Body::Form(pairs) => pairs
                .iter()
                .find(|(k, _)| k == path)
                .map(|(_, v)| v.clone()),
        }
    }

    /// Applies one override. JSON: the dot path is created where missing and the value is
    /// parsed as JSON when it is JSON (`2000`, `true`, `{"a":1}`), else taken as a string
    /// (`'"2000"'` forces a string). Form: the key's first value is replaced, or the pair
    /// appended.
    pub fn set(&mut self, set: &Set) -> Result<(), TriggerError> {
        match &mut self.body {
            Body::Json(v) | Body::JwtClaims(v) => set_json(v, set),
            Body::Form(pairs) => {
                match pairs.iter_mut().find(|(k, _)| *k == set.path) {
                    Some((_, v)) => v.clone_from(&set.value),
                    None => pairs.push((set.path.clone(), set.value.clone())),
                }
                Ok(())
            }
        }
    }
}

/// A JSON array body (Bandwidth messaging, Twilio Event Streams) is a list of callbacks: a
/// path that does not start with an index addresses the first one.
fn root_for<'v>(v: &'v Value, path: &str) -> &'v Value {
    match v {
        Value::Array(a) if !starts_with_index(path) => a.first().unwrap_or(v),
        _ => v,
    }
}

fn starts_with_index(path: &str) -> bool {
    path.split('.')
        .next()
        .is_some_and(|s| s.parse::<usize>().is_ok())
}

fn set_json(root: &mut Value, set: &Set) -> Result<(), TriggerError> {
    let bad = |why: &str| TriggerError::BadSet {
        field: set.path.clone(),
        why: why.to_owned(),
    };
    let value = serde_json::from_str::<Value>(&set.value)
        .unwrap_or_else(|_| Value::String(set.value.clone()));
    let mut cur = match root {
        Value::Array(a) if !starts_with_index(&set.path) => a
            .first_mut()
            .ok_or_else(|| bad("the body is an empty list"))?,
        other => other,
    };
    let segs: Vec<&str> = set.path.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        cur = match cur {
            Value::Array(a) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| bad(&format!("`{seg}` indexes a list: use a number")))?;
                let len = a.len();
                a.get_mut(idx)
                    .ok_or_else(|| bad(&format!("index {idx} is past the list's {len} items")))?
            }
            Value::Object(o) => o.entry((*seg).to_owned()).or_insert(if last {
                Value::Null
            } else {
                Value::Object(serde_json::Map::new())
            }),
            _ => {
                return Err(bad(&format!(
                    "`{seg}` is inside a value that is not an object"
                )));
            }
        };
    }
    *cur = value;
    Ok(())
}

/// One `--set FIELD=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Dot path (JSON) or form key.
    pub path: String,
    /// The value as typed.
    pub value: String,
}

impl std::str::FromStr for Set {
    type Err = TriggerError;

    fn from_str(s: &str) -> Result<Set, TriggerError> {
        let (path, value) = s.split_once('=').ok_or_else(|| TriggerError::BadSet {
            field: s.to_owned(),
            why: "expected FIELD=VALUE".to_owned(),
        })?;
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(TriggerError::BadSet {
                field: s.to_owned(),
                why: "the field is empty or has an empty path segment".to_owned(),
            });
        }
        Ok(Set {
            path: path.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The `--set`s of one trigger. Some name a parameter of the event rather than a field
/// (`version=v1` for Twilio Verify Push, `to=+44…` for a Bandwidth 2FA callback): the
/// event's builder takes those, and the rest are applied to the built body.
#[derive(Debug, Clone, Default)]
pub struct Params {
    sets: Vec<Set>,
}

impl Params {
    /// The overrides, in command-line order.
    pub fn new(sets: Vec<Set>) -> Params {
        Params { sets }
    }

    /// Removes and returns the last value given for a parameter.
    pub fn take(&mut self, key: &str) -> Option<String> {
        let last = self.sets.iter().rposition(|s| s.path == key)?;
        let value = self.sets.remove(last).value;
        self.sets.retain(|s| s.path != key);
        Some(value)
    }

    /// What is left: field overrides.
    pub fn into_sets(self) -> Vec<Set> {
        self.sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(s: &str) -> Set {
        s.parse().expect("valid set")
    }

    #[test]
    fn json_paths_are_created_and_values_typed() {
        let mut d = Draft::post(
            Provider::Stripe,
            "x",
            "evt".into(),
            Body::Json(json!({"data": {"object": {"amount": 1}}})),
        );
        d.set(&set("data.object.amount=2000")).expect("set");
        d.set(&set("data.object.currency=eur")).expect("set");
        d.set(&set("metadata.order=\"42\"")).expect("set");
        assert_eq!(
            d.body,
            Body::Json(
                json!({"data": {"object": {"amount": 2000, "currency": "eur"}},
                              "metadata": {"order": "42"}})
            )
        );
        assert_eq!(d.field("data.object.amount").as_deref(), Some("2000"));
    }

    #[test]
    fn a_list_body_is_addressed_through_its_first_callback() {
        let mut d = Draft::post(
            Provider::Bandwidth,
            "x",
            "m".into(),
            Body::Json(json!([{"to": "+1", "message": {"text": ""}}])),
        );
        d.set(&set("message.text=hi")).expect("set");
        d.set(&set("0.to=+44")).expect("set");
        assert_eq!(d.field("message.text").as_deref(), Some("hi"));
        assert_eq!(d.field("to").as_deref(), Some("+44"));
    }

    #[test]
    fn hostile_paths_are_refused_with_the_reason() {
        let mut d = Draft::post(
            Provider::Github,
            "x",
            "g".into(),
            Body::Json(json!({"a": [1, 2], "s": "x"})),
        );
        for (bad, why) in [
            ("a.x=1", "use a number"),
            ("a.9=1", "past the list"),
            ("s.t=1", "not an object"),
        ] {
            let e = d.set(&set(bad)).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        for bad in ["novalue", "=x", "a..b=1", ".a=1"] {
            assert!(bad.parse::<Set>().is_err(), "{bad}");
        }
    }

    #[test]
    fn form_keys_are_replaced_in_place_or_appended() {
        let mut d = Draft::post(
            Provider::Twilio,
            "x",
            "u".into(),
            Body::Form(vec![("a".into(), "1".into()), ("b".into(), "2".into())]),
        );
        d.set(&set("a=one")).expect("set");
        d.set(&set("c=3")).expect("set");
        assert_eq!(d.body_bytes().expect("bytes"), b"a=one&b=2&c=3");
    }

    #[test]
    fn parameters_are_taken_before_fields() {
        let mut p = Params::new(vec![set("version=v2"), set("x=1"), set("version=v1")]);
        assert_eq!(p.take("version").as_deref(), Some("v1"));
        assert_eq!(p.take("version"), None);
        assert_eq!(p.into_sets(), vec![set("x=1")]);
    }
}
