//! Tampered copies of a signed request: each changes something the signature covers, so the
//! SDK must reject it (the harness asserts that) and twk must agree.

use crate::cases::{Case, Req};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Changes the first character of a base64 or hex signature to another valid one.
fn alter(sig: &str) -> String {
    let mut chars: Vec<char> = sig.chars().collect();
    if let Some(c) = chars.first_mut() {
        *c = if *c == 'a' { 'b' } else { 'a' };
    }
    chars.into_iter().collect()
}

/// The URL with `x` added to its path.
fn longer_path(url: &str) -> String {
    match url.split_once('?') {
        Some((base, q)) => format!("{base}x?{q}"),
        None => format!("{url}x"),
    }
}

fn with_query_param(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}tampered=1")
}

fn edited(req: &Req, f: impl FnOnce(&mut Req)) -> Req {
    let mut r = req.clone();
    f(&mut r);
    r
}

fn header_edit(req: &Req, name: &str, f: impl FnOnce(&str) -> String) -> Req {
    let value = f(req.header(name).unwrap_or(""));
    edited(req, |r| r.set_header(name, &value))
}

/// The body with one more byte, or (GET) the query with one more parameter.
fn body_changed(req: &Req) -> Req {
    if req.method == "GET" {
        return edited(req, |r| r.url = with_query_param(&r.url));
    }
    match serde_json::from_str::<Value>(&req.body) {
        Ok(Value::Object(mut m)) => {
            m.insert("tampered".to_owned(), Value::from("1"));
            edited(req, |r| r.body = Value::Object(m).to_string())
        }
        _ => edited(req, |r| r.body.push_str("&tampered=1")),
    }
}

/// The first JSON array whose elements are not all alike, reversed.
fn reverse_an_array(v: &mut Value) -> bool {
    match v {
        Value::Array(items) => {
            let reversed: Vec<Value> = items.iter().rev().cloned().collect();
            if reversed != *items {
                *items = reversed;
                return true;
            }
            items.iter_mut().any(reverse_an_array)
        }
        Value::Object(m) => m.values_mut().any(reverse_an_array),
        _ => false,
    }
}

/// Stripe's `t=` plus one.
fn later_t(value: &str) -> String {
    value
        .split(',')
        .map(
            |item| match item.strip_prefix("t=").and_then(|t| t.parse::<i64>().ok()) {
                Some(t) => format!("t={}", t + 1),
                None => item.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join(",")
}

/// Every signature in a list altered (one left intact would still validate).
fn alter_all(value: &str, sep: char, inner: char) -> String {
    value
        .split(sep)
        .map(|item| match item.split_once(inner) {
            Some((k, sig)) if k == "v1" => format!("{k}{inner}{}", alter(sig)),
            _ => item.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

/// The JWT in the body with its claims or header replaced (signature kept).
fn jwt_edit(req: &Req, part: usize, f: impl FnOnce(&mut Value)) -> Req {
    let body: Value = serde_json::from_str(&req.body).unwrap();
    let token = body["body"].as_str().unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut v: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[part]).unwrap()).unwrap();
    f(&mut v);
    parts[part] = URL_SAFE_NO_PAD.encode(v.to_string());
    let token = parts.join(".");
    edited(req, |r| {
        r.body = serde_json::json!({ "body": token }).to_string()
    })
}

/// The tampered copies of `req` (signed as `case`), each with a label.
pub fn copies(case: &Case, req: &Req) -> Vec<(String, Req)> {
    let mut out: Vec<(&str, Req)> = Vec::new();
    let sig = |name: &str| header_edit(req, name, alter);
    match case.provider {
        "twilio" => {
            out.push(("params changed", body_changed(req)));
            out.push(("path changed", edited(req, |r| r.url = longer_path(&r.url))));
            out.push(("signature altered", sig("X-Twilio-Signature")));
            if case.name.contains("HMAC-SHA256") {
                let dropped = edited(req, |r| {
                    r.headers
                        .retain(|(n, _)| n != "X-Twilio-Webhooks-Signature-Settings");
                });
                out.push(("settings header dropped", dropped));
            }
        }
        "authy-onetouch" => {
            out.push(("params changed", body_changed(req)));
            out.push(("path changed", edited(req, |r| r.url = longer_path(&r.url))));
            out.push((
                "nonce changed",
                header_edit(req, "X-Authy-Signature-Nonce", |n| format!("{n}1")),
            ));
            out.push(("signature altered", sig("X-Authy-Signature")));
            if let Ok(mut v) = serde_json::from_str::<Value>(&req.body)
                && reverse_an_array(&mut v)
            {
                out.push((
                    "array elements reordered",
                    edited(req, |r| r.body = v.to_string()),
                ));
            }
        }
        "authy-webhook" => {
            out.push((
                "claims changed",
                jwt_edit(req, 1, |c| c["authy_id"] = Value::from(-1)),
            ));
            out.push((
                "alg none",
                jwt_edit(req, 0, |h| h["alg"] = Value::from("none")),
            ));
            let body: Value = serde_json::from_str(&req.body).unwrap();
            let token = body["body"].as_str().unwrap();
            let (signing_input, s) = token.rsplit_once('.').unwrap();
            let altered = serde_json::json!({ "body": format!("{signing_input}.{}", alter(s)) });
            out.push((
                "signature altered",
                edited(req, |r| r.body = altered.to_string()),
            ));
        }
        "stripe" => {
            out.push(("body changed", body_changed(req)));
            out.push((
                "timestamp changed",
                header_edit(req, "Stripe-Signature", later_t),
            ));
            out.push((
                "signatures altered",
                header_edit(req, "Stripe-Signature", |v| alter_all(v, ',', '=')),
            ));
        }
        "slack" => {
            out.push(("body changed", body_changed(req)));
            out.push((
                "timestamp changed",
                header_edit(req, "X-Slack-Request-Timestamp", |t| {
                    (t.parse::<i64>().unwrap() + 1).to_string()
                }),
            ));
            out.push((
                "signature altered",
                header_edit(req, "X-Slack-Signature", |v| {
                    format!("v0={}", alter(v.trim_start_matches("v0=")))
                }),
            ));
        }
        "github" => {
            out.push(("body changed", body_changed(req)));
            out.push((
                "signature altered",
                header_edit(req, "X-Hub-Signature-256", |v| {
                    format!("sha256={}", alter(v.trim_start_matches("sha256=")))
                }),
            ));
        }
        "shopify" => {
            out.push(("body changed", body_changed(req)));
            out.push(("signature altered", sig("X-Shopify-Hmac-Sha256")));
        }
        _ => {
            let p = if case.provider == "svix" {
                "svix"
            } else {
                "webhook"
            };
            out.push(("body changed", body_changed(req)));
            out.push((
                "id changed",
                header_edit(req, &format!("{p}-id"), |v| format!("{v}x")),
            ));
            out.push((
                "timestamp changed",
                header_edit(req, &format!("{p}-timestamp"), |t| {
                    (t.parse::<i64>().unwrap() + 1).to_string()
                }),
            ));
            out.push((
                "signatures altered",
                header_edit(req, &format!("{p}-signature"), |v| alter_all(v, ' ', ',')),
            ));
        }
    }
    out.into_iter().map(|(l, r)| (l.to_owned(), r)).collect()
}
