//! The events Twilio sends: Verify Push webhooks (v1/v2), messaging and call status callbacks,
//! Event Streams CloudEvents; and whether an unsigned request still looks like Twilio.

use crate::analysis::Event;
use crate::request::RequestView;
use crate::url::UrlParts;
use crate::util::abbrev;
use serde_json::{Map, Value};

/// Verify Push event types (`type`).
pub(crate) const VERIFY_PUSH_EVENTS: [&str; 5] = [
    "factor.created",
    "factor.verified",
    "factor.deleted",
    "challenge.approved",
    "challenge.denied",
];

/// Verify Push fields that carry JSON strings.
const JSON_FIELDS: [&str; 4] = [
    "challenge_details",
    "challenge_hidden_details",
    "challenge_metadata",
    "factor_metadata",
];

/// Fields only v2 Verify Push webhooks carry.
const V2_FIELDS: [&str; 6] = [
    "factor_type",
    "factor_friendly_name",
    "factor_metadata",
    "challenge_details",
    "challenge_hidden_details",
    "challenge_metadata",
];

/// The parameter names [`looks_like`] looks for.
const DETECTED_BY: [&str; 7] = [
    "AccountSid",
    "CallSid",
    "MessageSid",
    "SmsSid",
    "account_sid",
    "service_sid",
    "type",
];

/// Whether a request without a signature still looks like Twilio: by its parameter names
/// (values are never decoded, and no name is kept: a large body costs one pass).
pub(crate) fn looks_like(req: &RequestView<'_>) -> bool {
    if req.has_header("i-twilio-idempotency-token") {
        return true;
    }
    let mut seen = [false; DETECTED_BY.len()];
    let mut note = |key: &[u8]| {
        if let Some(i) = DETECTED_BY.iter().position(|n| n.as_bytes() == key) {
            seen[i] = true;
        }
    };
    if req.is_get() {
        // A GET without a query has nothing to look at: its URL is not parsed (~1.4k
        // instructions of every such request, twenty-third round).
        if !req.url.contains('?') {
            return false;
        }
        for (k, _) in UrlParts::parse(req.url)
            .map(|p| p.query_pairs())
            .unwrap_or_default()
        {
            note(k.as_bytes());
        }
    } else if req.may_be_form() {
        crate::form::each_key(req.body, note);
    }
    let [account, call, message, sms, account_sid, service_sid, kind] = seen;
    (account && (call || message || sms)) || (account_sid && service_sid && kind)
}

pub(crate) fn form_or_query(req: &RequestView<'_>) -> Vec<(String, String)> {
    if req.is_get() {
        UrlParts::parse(req.url)
            .map(|p| p.query_pairs())
            .unwrap_or_default()
    } else if req.is_json() {
        Vec::new()
    } else {
        crate::form::decode_pairs_upto(req.body, crate::form::NAMING_FIELDS)
    }
}

/// Names the event: Verify Push, messaging/call status, CloudEvents.
pub(crate) fn event(req: &RequestView<'_>) -> Option<Event> {
    if let Some(v) = req.json() {
        let first = match v {
            Value::Array(items) => items.first(),
            other => Some(other),
        };
        if let Some(obj) = first
            && let Some(t) = obj.get("type").and_then(Value::as_str)
        {
            let mut e = Event::new(t, t);
            if obj.get("specversion").is_some() {
                let source = obj.get("source").and_then(Value::as_str).unwrap_or("");
                e.summary = format!("{t} · {}", abbrev(source, 40));
            }
            e.id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
            if let Value::Object(m) = obj {
                e.details = crate::util::details_of(m, req.body);
            }
            return Some(e);
        }
        return None;
    }
    let params = form_or_query(req);
    let get = |k: &str| {
        params
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    };
    if let Some(t) = get("type")
        && (get("entity_identity").is_some() || get("factor_sid").is_some())
    {
        return Some(verify_push_event(t, &params));
    }
    let route = |a: Option<&str>, b: Option<&str>| -> String {
        format!("{} → {}", a.unwrap_or("?"), b.unwrap_or("?"))
    };
    if let Some(status) = get("MessageStatus").or_else(|| get("SmsStatus")) {
        let sid = get("MessageSid").or_else(|| get("SmsSid")).unwrap_or("");
        let name = if status == "received" {
            "message.received".to_owned()
        } else {
            format!("message.{status}")
        };
        let mut summary = format!(
            "{name} · {} · {}",
            abbrev(sid, 8),
            route(get("From"), get("To"))
        );
        if let Some(code) = get("ErrorCode") {
            summary.push_str(&format!(" · error {code}"));
        }
        let mut e = Event::new(name, summary);
        e.id = Some(sid.to_owned()).filter(|s| !s.is_empty());
        e.details = string_map(&params);
        return Some(e);
    }
    if let Some(status) = get("CallStatus") {
        let sid = get("CallSid").unwrap_or("");
        let name = format!("call.{status}");
        let summary = format!(
            "{name} · {} · {}",
            abbrev(sid, 8),
            route(get("From"), get("To"))
        );
        let mut e = Event::new(name, summary);
        e.id = Some(sid.to_owned()).filter(|s| !s.is_empty());
        e.details = string_map(&params);
        return Some(e);
    }
    if get("AccountSid").is_some() {
        let mut e = Event::new("webhook", "Twilio webhook");
        e.details = string_map(&params);
        return Some(e);
    }
    None
}

fn string_map(params: &[(String, String)]) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in params {
        m.entry(k.clone())
            .or_insert_with(|| Value::String(v.clone()));
    }
    m
}

/// A Verify Push webhook: `type`, entity, factor, and the JSON-string fields decoded.
fn verify_push_event(t: &str, params: &[(String, String)]) -> Event {
    let get = |k: &str| {
        params
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    };
    let mut details = Map::new();
    for (k, v) in params {
        let value = if JSON_FIELDS.contains(&k.as_str()) {
            serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.clone()))
        } else {
            Value::String(v.clone())
        };
        details.entry(k.clone()).or_insert(value);
    }
    let v2 = V2_FIELDS.iter().any(|f| get(f).is_some());
    details.insert(
        "webhook_version".to_owned(),
        Value::String(if v2 { "v2" } else { "v1" }.to_owned()),
    );
    if !VERIFY_PUSH_EVENTS.contains(&t) {
        details.insert(
            "undocumented_type".to_owned(),
            Value::String(format!(
                "{t} is not one of the documented Verify Push events ({})",
                VERIFY_PUSH_EVENTS.join(", ")
            )),
        );
    }
    let mut summary = t.to_owned();
    if let Some(entity) = get("entity_identity") {
        summary.push_str(&format!(" · entity {}", abbrev(entity, 4)));
    }
    if let Some(factor) = get("factor_sid") {
        summary.push_str(&format!(" · factor {}", abbrev(factor, 2)));
    }
    if t.starts_with("challenge.")
        && let Some(Value::Object(d)) = details.get("challenge_details")
        && let Some(msg) = d.get("message").and_then(Value::as_str)
    {
        summary.push_str(&format!(" · “{}”", abbrev(msg, 32)));
    }
    if !v2 {
        summary.push_str(" · v1 (legacy)");
    }
    let mut e = Event::new(t, summary);
    e.id = get("uuid").map(str::to_owned);
    e.details = details;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio posts forms: a body declared as another media type is not read for form
    /// fields (a 1 MiB upload was scanned for them), one without a Content-Type still is.
    #[test]
    fn form_fields_are_read_from_forms_and_undeclared_bodies_only() {
        let form = b"AccountSid=AC123&MessageSid=SM456&MessageStatus=delivered";
        let with = |ct: Option<&[u8]>| {
            let headers = ct.map(|c| vec![("content-type", c)]).unwrap_or_default();
            looks_like(&RequestView::with_headers(
                "POST",
                "https://x.example/status",
                headers,
                form,
            ))
        };
        assert!(with(Some(
            b"application/x-www-form-urlencoded; charset=UTF-8"
        )));
        assert!(with(None));
        assert!(!with(Some(b"text/plain")));
        assert!(!with(Some(b"multipart/form-data; boundary=x")));
    }
}
