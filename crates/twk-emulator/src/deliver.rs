//! Firing an event: one event, built once by `twk-trigger` (so every webhook gets the same
//! factor, challenge and user), delivered to each enabled webhook subscribed to it in that
//! webhook's shape (v1 keeps the legacy fields), by its method (GET puts the fields in the
//! query), signed with the account's auth token over the registered URL (Twilio) or with
//! the webhook's own `WSK_` key (Authy), by `twk-trigger`'s sender; then recorded for the
//! reporting API. Also the control endpoint other processes fire through.

use crate::model::{Api, EventRecord, Method, Version, guid, now_ms};
use crate::wire::{ApiRequest, ApiResponse};
use crate::{EmulatorError, Shared};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use twk_providers::Secret;
use twk_trigger::{Body, Draft, Fate, FireOptions, Set};

/// The control endpoint (bearer token: [`crate::Emulator::control_token`]).
pub(crate) const CONTROL_PATH: &str = "/twk/v1/fire";

/// What to fire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FireRequest {
    /// Through which API.
    #[serde(with = "api_name")]
    pub api: Api,
    /// The event (`challenge.approved`, `phone_verification_started`).
    pub event: String,
    /// Field overrides (`--set`), as `twk-trigger` applies them.
    #[serde(default)]
    pub sets: Vec<(String, String)>,
    /// Only this Verify service's webhooks.
    #[serde(default)]
    pub service_sid: Option<String>,
}

/// One webhook's delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    /// The webhook (`YW…` or `WH_…`).
    pub webhook: String,
    /// Where it went.
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// `v1`/`v2` for Verify.
    pub version: Option<String>,
    /// The last answer's status, if any.
    pub status: Option<u16>,
    /// How many attempts were made.
    pub attempts: u32,
    /// `delivered`, `will_retry` or `lost`.
    pub fate: String,
    /// The sender's words for the last attempt.
    pub says: String,
}

/// One fired event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fired {
    /// The event.
    pub event: String,
    /// Its id in the reporting API.
    pub request_id: String,
    /// When, Unix ms.
    pub time_ms: i64,
    /// One per webhook it went to; empty when none is subscribed (or all are disabled).
    pub deliveries: Vec<Delivery>,
}

mod api_name {
    use crate::model::Api;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(api: &Api, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(api.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Api, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn fire_error(e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Fire(e.to_string())
}

/// Webhooks delivered to at once (each may take a sender's whole deadline).
const AT_ONCE: usize = 8;

/// Fires `req` (see the module docs): the event is recorded first, then delivered to every
/// subscribed webhook, [`AT_ONCE`] at a time; a webhook that cannot be sent to is a `lost`
/// delivery, not a failure of the others.
pub(crate) async fn fire(sh: &Shared, req: FireRequest) -> Result<Fired, EmulatorError> {
    let (base, record, to) = prepare(sh, &req)?;
    finish(sh, &base, record, to).await
}

/// Like [`fire`], but only the recording is waited for: the deliveries go on in the
/// background (an API call that causes an event answers at once, as Authy's do).
pub(crate) fn fire_detached(sh: &Arc<Shared>, req: FireRequest) -> Result<String, EmulatorError> {
    let (base, record, to) = prepare(sh, &req)?;
    let id = record.request_id.clone();
    let sh = Arc::clone(sh);
    tokio::spawn(async move {
        if let Err(e) = finish(&sh, &base, record, to).await {
            tracing::warn!(error = %e, "emulator delivery");
        }
    });
    Ok(id)
}

/// The webhooks an event goes to, read once when it is fired.
enum Recipients {
    Verify(Vec<crate::model::Webhook>),
    Authy(Vec<crate::model::AuthyWebhook>),
}

/// Delivers a prepared event and records how each delivery went.
async fn finish(
    sh: &Shared,
    base: &Draft,
    record: EventRecord,
    to: Recipients,
) -> Result<Fired, EmulatorError> {
    let deliveries = match to {
        Recipients::Verify(hooks) => verify(sh, base, &hooks).await?,
        Recipients::Authy(hooks) => authy(sh, base, hooks).await,
    };
    let done = serde_json::to_value(&deliveries).unwrap_or(Value::Null);
    sh.with_store(|st| st.set_deliveries(&record.request_id, &done))?;
    Ok(Fired {
        event: record.event,
        request_id: record.request_id,
        time_ms: record.time_ms,
        deliveries,
    })
}

/// Builds the event once and records it (its deliveries still empty), with the webhooks it
/// goes to.
fn prepare(
    sh: &Shared,
    req: &FireRequest,
) -> Result<(Draft, EventRecord, Recipients), EmulatorError> {
    let provider = req.api.provider();
    if Api::serving(provider, &req.event) != Some(req.api) {
        return Err(fire_error(format!(
            "{:?} is not a Verify webhook event; one of {}",
            req.event,
            twk_trigger::VERIFY_PUSH_EVENTS.join(", ")
        )));
    }
    let spec = twk_trigger::find(provider, &req.event).map_err(fire_error)?;
    let now = now_ms();
    let mut sets = vec![set("account_sid", &sh.creds.account_sid)];
    let to = if req.api == Api::Authy {
        sets.push(set("app_id", &sh.creds.authy_app_id));
        Recipients::Authy(authy_hooks(sh, &req.event)?)
    } else {
        sets.push(set("version", "v2"));
        let hooks = verify_hooks(sh, req.service_sid.as_deref(), &req.event)?;
        // The reporting API names the event's service: the one asked for, else that of the
        // first webhook it goes to (each delivery carries its own webhook's); an event that
        // goes to none keeps the catalog's placeholder.
        let service = match &req.service_sid {
            Some(s) => Some(s.clone()),
            None => hooks.first().map(|w| w.service_sid.clone()),
        };
        if let Some(s) = service {
            sets.push(set("service_sid", &s));
        }
        Recipients::Verify(hooks)
    };
    // A Verify event's shape is each webhook's `version`, not the caller's.
    let own = |k: &str| req.api == Api::Verify && k == "version";
    sets.extend(
        req.sets
            .iter()
            .filter(|(k, _)| !own(k))
            .map(|(k, v)| set(k, v)),
    );
    let base = twk_trigger::build(&spec, sets, now / 1000).map_err(fire_error)?;
    let record = EventRecord {
        api: req.api,
        event: req.event.clone(),
        time_ms: now,
        request_id: guid(),
        objects: objects(&base),
        deliveries: Value::Array(Vec::new()),
    };
    sh.with_store(|st| st.insert_event(&record))?;
    Ok((base, record, to))
}

/// How many webhooks `event` would go to now (the inspector falls back to a direct send
/// when none).
pub(crate) fn subscribed(sh: &Shared, api: Api, event: &str) -> Result<usize, EmulatorError> {
    Ok(match api {
        Api::Verify => verify_hooks(sh, None, event)?.len(),
        Api::Authy => authy_hooks(sh, event)?.len(),
    })
}

/// The enabled Verify webhooks (of one service, when given) subscribed to `event`.
fn verify_hooks(
    sh: &Shared,
    service: Option<&str>,
    event: &str,
) -> Result<Vec<crate::model::Webhook>, EmulatorError> {
    let mut hooks = sh.with_store(|st| st.all_webhooks(service))?;
    hooks.retain(|w| w.wants(event));
    Ok(hooks)
}

/// The Authy webhooks subscribed to `event`.
fn authy_hooks(sh: &Shared, event: &str) -> Result<Vec<crate::model::AuthyWebhook>, EmulatorError> {
    let mut hooks = sh.with_store(|st| st.authy_webhooks())?;
    hooks.retain(|w| w.wants(event));
    Ok(hooks)
}

fn set(path: &str, value: &str) -> Set {
    Set {
        path: path.to_owned(),
        value: value.to_owned(),
    }
}

/// What the event was about, for the reporting API: the form fields, or the JWT's
/// `objects` claim (all claims when it has none).
fn objects(d: &Draft) -> Value {
    match &d.body {
        Body::Form(pairs) => Value::Object(
            pairs
                .iter()
                .filter(|(k, _)| k != "uuid")
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        ),
        Body::Json(v) | Body::JwtClaims(v) => v.get("objects").cloned().unwrap_or(v.clone()),
    }
}

/// One webhook's copy of the event: its draft, URL and key, and what to call it.
struct Job {
    draft: Draft,
    url: String,
    secret: Secret,
    webhook: String,
    version: Option<String>,
}

async fn verify(
    sh: &Shared,
    base: &Draft,
    hooks: &[crate::model::Webhook],
) -> Result<Vec<Delivery>, EmulatorError> {
    let mut jobs = Vec::new();
    for w in hooks {
        let mut d = base.clone();
        let uuid = guid();
        d.set(&set("service_sid", &w.service_sid))
            .map_err(fire_error)?;
        d.set(&set("uuid", &uuid)).map_err(fire_error)?;
        d.id = uuid;
        // Each delivery is its own request to Twilio's sender, not a retry of another.
        for (k, v) in &mut d.headers {
            if k.eq_ignore_ascii_case("I-Twilio-Idempotency-Token") {
                *v = guid();
            }
        }
        if w.version == Version::V1
            && let Body::Form(pairs) = &mut d.body
        {
            pairs.retain(|(k, _)| twk_trigger::VERIFY_PUSH_V1_FIELDS.contains(&k.as_str()));
        }
        let (draft, url) = match w.method {
            Method::Post => (d, w.url.clone()),
            Method::Get => as_get(d, &w.url)?,
        };
        jobs.push(Job {
            draft,
            url,
            secret: sh.creds.auth_token.clone(),
            webhook: w.sid.clone(),
            version: Some(w.version.as_str().to_owned()),
        });
    }
    Ok(deliver_all(sh, jobs).await)
}

async fn authy(sh: &Shared, base: &Draft, hooks: Vec<crate::model::AuthyWebhook>) -> Vec<Delivery> {
    let jobs = hooks
        .into_iter()
        .map(|w| Job {
            draft: base.clone(),
            url: w.url,
            secret: w.signing_key,
            webhook: w.id,
            version: None,
        })
        .collect();
    deliver_all(sh, jobs).await
}

/// Sends every job, [`AT_ONCE`] at a time; results in the jobs' order.
async fn deliver_all(sh: &Shared, jobs: Vec<Job>) -> Vec<Delivery> {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(jobs)
        .map(|job| send(sh, job))
        .buffered(AT_ONCE)
        .collect()
        .await
}

/// A sender configured for GET puts the fields in the URL's query (Twilio then signs the
/// URL alone, as for any GET webhook).
fn as_get(mut d: Draft, url: &str) -> Result<(Draft, String), EmulatorError> {
    let Body::Form(pairs) = std::mem::replace(&mut d.body, Body::Form(Vec::new())) else {
        return Err(fire_error("only form webhooks can be sent by GET"));
    };
    let query = serde_urlencoded::to_string(&pairs).map_err(fire_error)?;
    let sep = if url.contains('?') { '&' } else { '?' };
    d.method = "GET";
    d.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    Ok((d, format!("{url}{sep}{query}")))
}

/// One webhook's delivery by its provider's sender; whatever goes wrong is that delivery's
/// fate. Its URL is kept with any password masked (it is printed and stored).
async fn send(sh: &Shared, job: Job) -> Delivery {
    let opts = FireOptions {
        url: job.url.clone(),
        secret: Some(job.secret),
        sender_behaviour: true,
        retry_speed: None,
        deadline: None,
        extra_ca_pem: sh.extra_ca_pem.clone(),
    };
    let mut last = None;
    let fate = twk_trigger::fire(&job.draft, &opts, |a| last = Some(a.clone())).await;
    let status = last.as_ref().and_then(|a| match a.reply.answer {
        twk_trigger::Answer::Status { code, .. } => Some(code),
        _ => None,
    });
    let (fate, says) = match (fate, &last) {
        (Ok(Fate::Lost { why }), _) => ("lost".to_owned(), why),
        (Ok(f), Some(a)) => (f.as_str().to_owned(), a.says.clone()),
        (Ok(f), None) => (f.as_str().to_owned(), String::new()),
        (Err(e), _) => ("lost".to_owned(), format!("not sent: {e}")),
    };
    Delivery {
        webhook: job.webhook,
        url: twk_trigger::shown_url(&job.url),
        method: job.draft.method.to_owned(),
        version: job.version,
        status,
        attempts: last.as_ref().map_or(0, |a| a.n),
        fate,
        says,
    }
}

/// `POST /twk/v1/fire` with `Authorization: Bearer <control token>` and a JSON
/// [`FireRequest`]; answers the [`Fired`] document.
pub(crate) async fn control(sh: &Shared, req: &ApiRequest) -> ApiResponse {
    let token = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if req.method != http::Method::POST || !sh.is_control_token(token.as_bytes()) {
        return ApiResponse::json(
            StatusCode::UNAUTHORIZED,
            json!({"error": "the control endpoint needs this run's token (see the runtime file)"}),
        );
    }
    let fire_req: FireRequest = match serde_json::from_slice(&req.body) {
        Ok(r) => r,
        Err(e) => {
            return ApiResponse::json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("not a fire request: {e}")}),
            );
        }
    };
    match fire(sh, fire_req).await {
        Ok(f) => ApiResponse::json(StatusCode::OK, serde_json::to_value(f).unwrap_or_default()),
        Err(e) => ApiResponse::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": e.to_string()}),
        ),
    }
}
