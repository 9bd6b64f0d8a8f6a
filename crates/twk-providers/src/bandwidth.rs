//! Bandwidth callbacks: messaging (a JSON array, each element's `type`), 2FA (one object with
//! `platform`), voice (`eventType`). Authentication is HTTP Basic after a 401 challenge; the
//! credentials are checked against the configured `user:pass`.

use crate::Cx;
use crate::analysis::{Analysis, Diagnosis, Event, Provider, SignError, Signed, Verdict};
use crate::request::RequestView;
use crate::secret::Secret;
use crate::url::UrlParts;
use crate::util::{abbrev, b64, b64_decode_strict, ct_eq, json_str};
use serde_json::{Map, Value};

/// North America vs international, as the 2FA platform classifies destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Region {
    /// `+1` destinations: retried for 24 h.
    NorthAmerica,
    /// Any other country code: never retried.
    International,
}

impl Region {
    fn id(self) -> &'static str {
        match self {
            Region::NorthAmerica => "north_america",
            Region::International => "international",
        }
    }

    fn retry(self) -> &'static str {
        match self {
            Region::NorthAmerica => "north america: retried for 24 h",
            Region::International => "international: not retried",
        }
    }
}

/// Classifies an E.164 number: `+1…` is North America, any other `+…` international.
pub(crate) fn classify(number: &str) -> Option<Region> {
    let n = number.trim();
    if n.starts_with("+1") {
        Some(Region::NorthAmerica)
    } else if n.starts_with('+') && n.len() > 2 {
        Some(Region::International)
    } else {
        None
    }
}

fn classify_platform(platform: &str) -> Option<Region> {
    match platform {
        "NorthAmericaSMS" => Some(Region::NorthAmerica),
        "GlobalSMS" => Some(Region::International),
        _ => None,
    }
}

/// Whether an unauthenticated request looks like a Bandwidth callback.
pub(crate) fn looks_like(req: &RequestView<'_>) -> bool {
    if req
        .header_str("user-agent")
        .is_some_and(|ua| ua.starts_with("BandwidthAPI"))
    {
        return true;
    }
    match req.json() {
        Some(Value::Array(items)) => items.first().is_some_and(|e| {
            e.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("message-") || t.ends_with("-response"))
                && e.get("message").is_some_and(Value::is_object)
        }),
        Some(v @ Value::Object(_)) => {
            v.get("platform")
                .and_then(Value::as_str)
                .is_some_and(|p| classify_platform(p).is_some())
                || (v.get("eventType").is_some()
                    && (v.get("callId").is_some() || v.get("accountId").is_some()))
        }
        _ => false,
    }
}

/// Names the event.
pub(crate) fn event(req: &RequestView<'_>) -> Option<Event> {
    let from_query;
    let v: &Value = if req.is_get() {
        let pairs = UrlParts::parse(req.url)?.query_pairs();
        from_query = Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
        &from_query
    } else {
        req.json()?
    };
    match v {
        Value::Array(items) => {
            let first = items.first()?;
            let mut e = messaging_event(first, None)?;
            if items.len() > 1 {
                e.summary.push_str(&format!(" (+{} more)", items.len() - 1));
                e.details
                    .insert("callbacks".to_owned(), Value::from(items.len()));
            }
            Some(e)
        }
        Value::Object(o) if o.contains_key("platform") => {
            let region = o
                .get("platform")
                .and_then(Value::as_str)
                .and_then(classify_platform);
            let mut e = messaging_event(v, region)?;
            e.details
                .insert("kind".to_owned(), Value::String("2fa".to_owned()));
            Some(e)
        }
        Value::Object(o) if o.contains_key("eventType") => Some(voice_event(o)),
        Value::Object(o) if o.contains_key("type") && o.contains_key("message") => {
            let mut e = messaging_event(v, None)?;
            e.details.insert(
                "warning".to_owned(),
                Value::String("messaging callbacks are normally a JSON array".to_owned()),
            );
            Some(e)
        }
        _ => None,
    }
}

/// One messaging or 2FA callback object.
fn messaging_event(v: &Value, platform_region: Option<Region>) -> Option<Event> {
    let t = v.get("type").and_then(Value::as_str)?;
    let to = v
        .get("to")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| match v.pointer("/message/to") {
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        });
    let region = platform_region.or_else(|| to.as_deref().and_then(classify));
    let mut summary = t.to_owned();
    if let Some(to) = &to {
        summary.push_str(&format!(" · {}", abbrev(to, 3)));
    } else if let Some(p) = v.get("platform").and_then(Value::as_str) {
        summary.push_str(&format!(" · {p}"));
    }
    if let Some(r) = region {
        summary.push_str(&format!(" · {}", r.retry()));
    }
    if let Some(code) = v.get("errorCode").and_then(json_str) {
        summary.push_str(&format!(" · error {code}"));
        if let Some(d) = v.get("description").and_then(Value::as_str) {
            summary.push_str(&format!(" ({d})"));
        }
    }
    let mut e = Event::new(t, summary);
    e.id = v
        .pointer("/message/id")
        .and_then(json_str)
        .map(|id| format!("{id}:{t}"));
    if let Value::Object(m) = v {
        e.details = m.clone();
    }
    if let Some(r) = region {
        e.details
            .insert("region".to_owned(), Value::String(r.id().to_owned()));
        e.details
            .insert("retry".to_owned(), Value::String(r.retry().to_owned()));
    }
    Some(e)
}

fn voice_event(o: &Map<String, Value>) -> Event {
    let t = o
        .get("eventType")
        .and_then(json_str)
        .unwrap_or_else(|| "voice".to_owned());
    let s = |k: &str| o.get(k).and_then(json_str);
    let mut summary = t.clone();
    if let Some(id) = s("callId") {
        summary.push_str(&format!(" · call {}", abbrev(&id, 12)));
    }
    if s("from").is_some() || s("to").is_some() {
        summary.push_str(&format!(
            " · {} → {}",
            s("from").unwrap_or_else(|| "?".into()),
            s("to").unwrap_or_else(|| "?".into())
        ));
    }
    if let Some(cause) = s("cause") {
        summary.push_str(&format!(" · cause {cause}"));
    }
    let mut e = Event::new(t.clone(), summary);
    e.id = s("callId").map(|id| format!("{id}:{t}:{}", s("eventTime").unwrap_or_default()));
    e.details = o.clone();
    e.details.insert(
        "retry".to_owned(),
        Value::String(
            "synchronous callbacks (answer with BXML) go to the fallback URL on failure; \
             asynchronous ones are retried once on a connection error"
                .to_owned(),
        ),
    );
    e
}

/// Parsed `Authorization: Basic` credentials, or why they could not be parsed.
pub fn basic_credentials(value: &str) -> Result<(String, String), String> {
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or_else(|| "the Authorization header has no scheme".to_owned())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(format!(
            "the Authorization scheme is {scheme:?}; Bandwidth uses Basic"
        ));
    }
    let decoded = b64_decode_strict(rest.trim())
        .ok_or_else(|| "the Basic credentials are not base64".to_owned())?;
    let text =
        String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8".to_owned())?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| "the Basic credentials have no ':' between user and password".to_owned())?;
    Ok((user.to_owned(), pass.to_owned()))
}

pub(crate) fn analyze(cx: &Cx<'_, '_>) -> Analysis {
    let req = cx.req;
    let mut a = Analysis::new(Some(Provider::Bandwidth), event(req));
    if let Some(r) = a
        .event
        .as_ref()
        .and_then(|e| e.details.get("retry"))
        .and_then(Value::as_str)
    {
        a.notes.push(format!("retry: {r}"));
    }
    if req.has_header("x-bandwidth-signature-hmac-sha256") {
        a.notes.push(
            "x-bandwidth-signature-hmac-sha256 is present (toll-free verification webhooks); \
             its canonicalisation is undocumented, so it is not checked"
                .to_owned(),
        );
    }
    let Some(auth) = req.header("authorization") else {
        a.notes.push(
            "Bandwidth first sends callbacks without credentials and expects 401 with \
             `WWW-Authenticate: Basic realm=\"…\"`; without that header it never retries with \
             credentials and the callback is lost"
                .to_owned(),
        );
        return a.verdict_with(
            Verdict::Unsigned,
            "No Authorization header: Bandwidth callbacks carry no signature; with Basic auth \
             configured, only the second attempt (after your 401 challenge) has credentials.",
        );
    };
    let Some(secret) = cx.secrets.get(Provider::Bandwidth) else {
        return a.verdict_with(
            Verdict::NoSecret,
            crate::no_secret_message(Provider::Bandwidth),
        );
    };
    let parsed = std::str::from_utf8(auth)
        .map_err(|_| "the Authorization header is not text".to_owned())
        .and_then(|v| basic_credentials(v.trim()));
    let (user, pass) = match parsed {
        Ok(c) => c,
        Err(e) => return a.verdict_with(Verdict::Malformed, format!("{}.", capitalize(&e))),
    };
    let Some((want_user, want_pass)) = secret.expose_str().and_then(|s| s.split_once(':')) else {
        return a.verdict_with(
            Verdict::Invalid,
            "The configured Bandwidth credentials are not `user:password`, so nothing can \
             match.",
        );
    };
    let user_ok = ct_eq(user.as_bytes(), want_user.as_bytes());
    let pass_ok = ct_eq(pass.as_bytes(), want_pass.as_bytes());
    if user_ok && pass_ok {
        a.verdict = Verdict::Valid;
        a.matched_variant = Some("basic-auth".to_owned());
        return a;
    }
    let summary = match (user_ok, pass_ok) {
        (true, false) => {
            format!("The Basic credentials' user {user:?} matches but the password does not.")
        }
        (false, true) => format!(
            "The password matches but the user differs: received {user:?}, configured {want_user:?}."
        ),
        _ => format!(
            "Neither user nor password match: received user {user:?}, configured {want_user:?}."
        ),
    };
    let mut likely = None;
    if pass.trim() == want_pass && user.trim() == want_user {
        likely = Some("the credentials match once surrounding whitespace is removed".to_owned());
    } else if user == want_pass && pass == want_user {
        likely = Some("user and password are swapped".to_owned());
    }
    a.verdict = Verdict::Invalid;
    a.diagnosis = Some(Diagnosis {
        summary: format!(
            "{summary} Check the callback credentials set on the Bandwidth application \
             (InboundCallbackCreds/OutboundCallbackCreds or CallbackCreds) or subscription."
        ),
        expected: Some(format!("{want_user}:***")),
        received: Some(format!("{user}:***")),
        signed_string: None,
        likely_cause: likely,
        hints: Vec::new(),
        checked: vec!["basic-auth".to_owned()],
    });
    a
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `Authorization: Basic base64(user:pass)`.
pub(crate) fn sign(secret: &Secret) -> Result<Signed, SignError> {
    let creds = secret
        .expose_str()
        .filter(|s| s.contains(':'))
        .ok_or_else(|| SignError::BadSecret {
            provider: Provider::Bandwidth,
            reason: "Bandwidth credentials must be user:password".to_owned(),
        })?;
    Ok(Signed::headers(vec![(
        "Authorization".to_owned(),
        format!("Basic {}", b64(creds.as_bytes())),
    )]))
}
