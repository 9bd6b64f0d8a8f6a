//! Authy's APIs as the seed demo (`authy-webhooks-api-demo.txt`) and the reporting post use
//! them: the Webhooks API (`/dashboard/json/application/webhooks`: create, list, delete),
//! signed with the API signing key (`X-Authy-Signature` + `X-Authy-Signature-Nonce`,
//! checked by `twk-providers`' Authy verifier) and carrying `app_api_key` and
//! `access_key`; the reporting API's events endpoint (`/protected/json/reporting/events`,
//! `X-Authy-API-Key`); and the phone-verification start the demo fires events with.

use crate::Shared;
use crate::deliver::{self, FireRequest};
use crate::model::{AuthyWebhook, guid, iso_ms, token};
use crate::store::EventQuery;
use crate::wire::{ApiRequest, ApiResponse, check_url};
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use subtle::ConstantTimeEq as _;
use twk_providers::{
    AUTHY_WEBHOOK_EVENTS, Provider, RequestView, Secret, Secrets, Verdict, VerifyOptions,
};

/// The Webhooks API collection.
pub(crate) const WEBHOOKS: &str = "/dashboard/json/application/webhooks";
pub(crate) const WEBHOOKS_SLASH: &str = "/dashboard/json/application/webhooks/";
const REPORTING_EVENTS: &str = "/protected/json/reporting/events";
const VERIFICATION_START: &str = "/protected/json/phones/verification/start";
/// The reporting API's page size bound (its docs: default 50, maximum 100).
const MAX_PER_PAGE: i64 = 100;
/// The most webhooks an application may have (Authy's own bound is not published).
const MAX_WEBHOOKS: usize = 100;

/// Authy's error document.
fn error(status: StatusCode, code: &str, message: &str) -> ApiResponse {
    ApiResponse::json(
        status,
        json!({
            "message": message,
            "success": false,
            "errors": {"message": message},
            "error_code": code,
        }),
    )
}

/// Whether `path` belongs to the emulated Authy APIs.
pub(crate) fn is_authy_path(path: &str) -> bool {
    path == WEBHOOKS || path.starts_with(WEBHOOKS_SLASH) || path.starts_with("/protected/")
}

/// A refusal made in Twilio's shape (an oversized or malformed body), in Authy's.
pub(crate) fn reshape(r: ApiResponse) -> ApiResponse {
    let message = r
        .body
        .as_ref()
        .and_then(|b| b["message"].as_str())
        .unwrap_or("Bad request")
        .to_owned();
    error(r.status, "60000", &message)
}

fn bad_request(message: &str) -> ApiResponse {
    error(StatusCode::BAD_REQUEST, "60000", message)
}

fn unauthorized(message: &str) -> ApiResponse {
    error(StatusCode::UNAUTHORIZED, "60001", message)
}

fn same(given: Option<&str>, key: &Secret) -> bool {
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(key.expose())))
}

/// Checks `app_api_key`, `access_key` and the request's signature.
fn authenticate(sh: &Shared, req: &ApiRequest) -> Result<(), ApiResponse> {
    let c = &sh.creds;
    if !same(req.param("app_api_key"), &c.authy_api_key) {
        return Err(unauthorized("Invalid API key"));
    }
    if !same(req.param("access_key"), &c.authy_access_key) {
        return Err(unauthorized("Invalid access key"));
    }
    let (Some(_), Some(_)) = (
        req.header("x-authy-signature"),
        req.header("x-authy-signature-nonce"),
    ) else {
        return Err(unauthorized(
            "Missing X-Authy-Signature or X-Authy-Signature-Nonce",
        ));
    };
    match signature_verdict(sh, req) {
        Verdict::Valid => Ok(()),
        _ => Err(unauthorized("Invalid signature")),
    }
}

/// The verdict of `twk-providers`' Authy verifier with the API signing key, over the URL
/// the client called. A GET's parameters may come in its body (the demo sends them with
/// `curl -X GET -d`): they are signed all the same, so they are moved into the query the
/// verifier reads for a GET.
fn signature_verdict(sh: &Shared, req: &ApiRequest) -> Verdict {
    let mut url = format!("{}{}", sh.base_for(req), req.path);
    let get = req.method == http::Method::GET;
    let all: Vec<&(String, String)> = req.query.iter().chain(&req.form).collect();
    if get && !all.is_empty() {
        let q = serde_urlencoded::to_string(&all).unwrap_or_default();
        url = format!("{url}?{q}");
    }
    let body: &[u8] = if get { b"" } else { &req.body };
    let mut view = RequestView::new(req.method.as_str(), &url, body);
    for (k, v) in &req.headers {
        if get && k == http::header::CONTENT_TYPE {
            continue;
        }
        view = view.with_header(k.as_str(), v.as_bytes());
    }
    if !get && req.header("content-type").is_none() && !req.form.is_empty() {
        view = view.with_header("content-type", b"application/x-www-form-urlencoded");
    }
    let secrets = Secrets::new().with(Provider::AuthyOnetouch, sh.creds.authy_signing_key.clone());
    let opts = VerifyOptions {
        provider: Some(Provider::AuthyOnetouch),
        ..VerifyOptions::at(sh.now())
    };
    twk_providers::analyze(&view, &secrets, &opts).verdict
}

/// A webhook as the Webhooks API shows it. The seed's list answer carries `signing_key`
/// too (the demo reads the `WSK_` key from the list), so both create and list show it.
fn webhook_json(sh: &Shared, w: &AuthyWebhook) -> Value {
    json!({
        "id": w.id,
        "name": w.name,
        "account_sid": sh.creds.account_sid,
        "service_id": sh.creds.authy_app_id,
        "url": w.url,
        "signing_key": w.signing_key.expose_str().unwrap_or_default(),
        "events": w.events,
    })
}

/// `/dashboard/json/application/webhooks[/{id}]`.
pub(crate) fn webhooks(sh: &Shared, req: &ApiRequest) -> ApiResponse {
    if let Err(denied) = authenticate(sh, req) {
        return denied;
    }
    let id = req
        .path
        .strip_prefix(WEBHOOKS_SLASH)
        .filter(|s| !s.is_empty());
    let out = match (req.method.as_str(), id) {
        ("POST", None) => create(sh, req),
        ("GET", None) => list(sh),
        ("DELETE", Some(id)) => delete(sh, id),
        _ => Err(error(StatusCode::NOT_FOUND, "60000", "Not found")),
    };
    out.unwrap_or_else(|e| e)
}

fn create(sh: &Shared, req: &ApiRequest) -> Result<ApiResponse, ApiResponse> {
    let name = req
        .param("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad_request("name is required"))?;
    if name.chars().count() > 64 {
        return Err(bad_request("name is longer than 64 characters"));
    }
    let url = req
        .param("url")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad_request("url is required"))?;
    check_url(url).map_err(|why| bad_request(&format!("url is invalid: {why}")))?;
    let mut events: Vec<String> = Vec::new();
    for e in req
        .params("events[]")
        .into_iter()
        .chain(req.params("events"))
    {
        if !AUTHY_WEBHOOK_EVENTS.contains(&e) {
            return Err(bad_request(&format!(
                "events contains an unknown event {e:?}; one of {}",
                AUTHY_WEBHOOK_EVENTS.join(", ")
            )));
        }
        if !events.iter().any(|x| x == e) {
            events.push(e.to_owned());
        }
    }
    if events.is_empty() {
        return Err(bad_request("events is required: at least one event"));
    }
    let w = AuthyWebhook {
        id: format!("WH_{}", guid()),
        name: name.to_owned(),
        url: url.to_owned(),
        events,
        signing_key: Secret::new(token("WSK_", 40)),
        created: sh.now(),
    };
    // Counted and inserted under one lock: concurrent creates cannot pass the bound.
    let full = sh.store(|st| {
        if st.authy_webhooks()?.len() >= MAX_WEBHOOKS {
            return Ok(true);
        }
        st.insert_authy(&w).map(|()| false)
    })?;
    if full {
        return Err(bad_request(&format!(
            "this application has {MAX_WEBHOOKS} webhooks, the most the emulator keeps"
        )));
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({"webhook": webhook_json(sh, &w), "message": "Webhook created", "success": true}),
    ))
}

fn list(sh: &Shared) -> Result<ApiResponse, ApiResponse> {
    let all = sh.store(|st| st.authy_webhooks())?;
    let rows: Vec<Value> = all.iter().map(|w| webhook_json(sh, w)).collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({"webhooks": rows, "message": "Webhooks retrieved", "success": true}),
    ))
}

fn delete(sh: &Shared, id: &str) -> Result<ApiResponse, ApiResponse> {
    match sh.store(|st| st.delete_authy(id))? {
        true => Ok(ApiResponse::json(
            StatusCode::OK,
            json!({"message": "Webhook deleted", "success": true}),
        )),
        false => Err(error(StatusCode::NOT_FOUND, "60000", "Webhook not found")),
    }
}

/// `/protected/json/…`: authenticated by `X-Authy-API-Key` (or `api_key`).
pub(crate) async fn protected(sh: &Arc<Shared>, req: &ApiRequest) -> ApiResponse {
    let key = req
        .header("x-authy-api-key")
        .or_else(|| req.param("api_key"));
    if !same(key, &sh.creds.authy_api_key) {
        return unauthorized("Invalid API key");
    }
    let out = match (req.method.as_str(), req.path.as_str()) {
        ("GET", REPORTING_EVENTS) => reporting(sh, req),
        ("POST", VERIFICATION_START) => verification_start(sh, req),
        _ => Err(error(StatusCode::NOT_FOUND, "60000", "Not found")),
    };
    out.unwrap_or_else(|e| e)
}

/// A `query[time][gte]` bound: ISO 8601 (`2018-01-01T00:00:00.000Z`) or a date.
fn time_bound(v: &str) -> Result<i64, ApiResponse> {
    let bad = || bad_request(&format!("query time {v:?} is not an ISO 8601 time"));
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let d: jiff::civil::Date = v.parse().map_err(|_| bad())?;
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| bad())
}

/// `query[event][eq]`, `query[event][in][]`, `query[time][gte|gt|lte|lt]`, `page`,
/// `per_page`.
fn event_query(req: &ApiRequest) -> Result<EventQuery, ApiResponse> {
    let mut q = EventQuery::default();
    for (k, v) in req.query.iter().chain(&req.form) {
        match k.as_str() {
            "query[event][eq]" | "query[event][in][]" | "query[event][in]" => {
                q.events.push(v.clone());
            }
            "query[time][gte]" => q.since_ms = Some(time_bound(v)?),
            "query[time][gt]" => q.since_ms = Some(time_bound(v)? + 1),
            "query[time][lte]" => q.until_ms = Some(time_bound(v)?),
            "query[time][lt]" => q.until_ms = Some(time_bound(v)? - 1),
            k if k.starts_with("query[") => {
                return Err(bad_request(&format!(
                    "unsupported query {k:?}: the emulator filters by event (eq, in) and time \
                     (gte, gt, lte, lt)"
                )));
            }
            _ => {}
        }
    }
    let num = |name: &str, default: i64, max: i64| match req.param(name) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad_request(&format!(
                "{name} must be a number from 1 to {max}"
            ))),
        },
    };
    let page = num("page", 1, 1_000_000)?;
    q.limit = num("per_page", 50, MAX_PER_PAGE)?;
    q.offset = (page - 1).saturating_mul(q.limit);
    Ok(q)
}

fn reporting(sh: &Shared, req: &ApiRequest) -> Result<ApiResponse, ApiResponse> {
    let q = event_query(req)?;
    let (rows, total) = sh.store(|st| st.events(&q))?;
    let events: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "event": e.event,
                "time": iso_ms(e.time_ms),
                "request_id": e.request_id,
                "objects": e.objects,
                "api": e.api.as_str(),
                "deliveries": e.deliveries,
            })
        })
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({
            "success": true,
            "events": events,
            "page": q.offset / q.limit + 1,
            "per_page": q.limit,
            "total": total,
        }),
    ))
}

/// Starts a (pretend) phone verification: nothing is sent, but the
/// `phone_verification_started` event fires, as it does at Authy.
fn verification_start(sh: &Arc<Shared>, req: &ApiRequest) -> Result<ApiResponse, ApiResponse> {
    let phone = req.param("phone_number").filter(|p| !p.is_empty());
    let country = req.param("country_code").filter(|p| !p.is_empty());
    let (Some(phone), Some(country)) = (phone, country) else {
        return Err(bad_request("phone_number and country_code are required"));
    };
    let digits = |s: &str, max: usize| s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(phone, 20) || !digits(country, 4) {
        return Err(bad_request(
            "phone_number (up to 20 digits) and country_code (up to 4 digits) must be digits",
        ));
    }
    let via = req.param("via").unwrap_or("sms");
    if !matches!(via, "sms" | "call") {
        return Err(bad_request("via must be sms or call"));
    }
    let uuid = guid();
    // As JSON strings: a set value that parses as JSON is taken as JSON, and a phone
    // number is not a number.
    let text = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let sets = vec![
        ("objects.phone_number".to_owned(), text(phone)),
        ("objects.country_code".to_owned(), text(country)),
        ("objects.via".to_owned(), text(via)),
    ];
    let fired = FireRequest {
        api: crate::model::Api::Authy,
        event: "phone_verification_started".to_owned(),
        sets,
        service_sid: None,
    };
    deliver::fire_detached(sh, fired).map_err(|e| bad_request(&e.to_string()))?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({
            "carrier": "twk emulator",
            "is_cellphone": true,
            "message": format!("Text message sent to +{country} {phone}."),
            "seconds_to_expire": 599,
            "uuid": uuid,
            "success": true,
        }),
    ))
}
