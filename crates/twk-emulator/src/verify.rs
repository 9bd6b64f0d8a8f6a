//! Twilio Verify v2, as `verify.twilio.com` answers it: `Services` (create, list, fetch,
//! update, delete) and each service's `Webhooks` resource (seed
//! `twilio-verify-push-webhooks.txt`), with HTTP Basic auth by the account SID and auth
//! token or an API key and secret, Twilio's paging, and its error documents.

use crate::Shared;
use crate::model::{Method, Service, Status, Version, Webhook, sid, twilio_date};
use crate::wire::{
    ApiRequest, ApiResponse, Page, TwilioCode, check_url, invalid, not_found, required,
    twilio_error,
};
use http::StatusCode;
use serde_json::{Value, json};

/// The longest webhook `FriendlyName` taken (Twilio publishes no limit for it).
const MAX_NAME: usize = 64;
/// A service's `FriendlyName`: "up to 32 characters" in Twilio's API reference.
const MAX_SERVICE_NAME: usize = 32;
/// Services per account and webhooks per service the emulator keeps (a bound on what one
/// event fans out to).
const MAX_SERVICES: i64 = 100;
const MAX_WEBHOOKS: i64 = 100;

type Answer = Result<ApiResponse, ApiResponse>;

/// Answers one request under `/v2/`.
pub(crate) fn handle(sh: &Shared, req: &ApiRequest) -> ApiResponse {
    if let Err(denied) = sh.authenticate_twilio(req) {
        return denied;
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').skip(1).collect();
    let m = &req.method;
    let out = match segs.as_slice() {
        ["Services"] if m == "POST" => create_service(sh, req),
        ["Services"] if m == "GET" => list_services(sh, req),
        ["Services", s] if m == "GET" => fetch_service(sh, s, req),
        ["Services", s] if m == "POST" => update_service(sh, s, req),
        ["Services", s] if m == "DELETE" => delete_service(sh, s, &req.path),
        ["Services", s, "Webhooks"] if m == "POST" => create_webhook(sh, s, req),
        ["Services", s, "Webhooks"] if m == "GET" => list_webhooks(sh, s, req),
        ["Services", s, "Webhooks", w] if m == "GET" => fetch_webhook(sh, s, w, req),
        ["Services", s, "Webhooks", w] if m == "POST" => update_webhook(sh, s, w, req),
        ["Services", s, "Webhooks", w] if m == "DELETE" => delete_webhook(sh, s, w, &req.path),
        _ => Err(not_found(&req.path)),
    };
    out.unwrap_or_else(|e| e)
}

fn service_json(sh: &Shared, base: &str, s: &Service) -> Value {
    let url = format!("{base}/v2/Services/{}", s.sid);
    json!({
        "sid": s.sid,
        "account_sid": sh.creds.account_sid,
        "friendly_name": s.friendly_name,
        "code_length": 6,
        "lookup_enabled": false,
        "psd2_enabled": false,
        "skip_sms_to_landlines": false,
        "dtmf_input_required": true,
        "tts_name": null,
        "do_not_share_warning_enabled": false,
        "custom_code_enabled": false,
        "push": {"include_date": true, "apn_credential_sid": null, "fcm_credential_sid": null},
        "totp": {"issuer": s.friendly_name, "time_step": 30, "code_length": 6, "skew": 1},
        "default_template_sid": null,
        "verify_event_subscription_enabled": false,
        "date_created": twilio_date(s.created),
        "date_updated": twilio_date(s.updated),
        "url": url,
        "links": {
            "webhooks": format!("{url}/Webhooks"),
            "verifications": format!("{url}/Verifications"),
            "verification_checks": format!("{url}/VerificationCheck"),
            "entities": format!("{url}/Entities"),
        },
    })
}

fn webhook_json(sh: &Shared, base: &str, w: &Webhook) -> Value {
    json!({
        "url": format!("{base}/v2/Services/{}/Webhooks/{}", w.service_sid, w.sid),
        "sid": w.sid,
        "account_sid": sh.creds.account_sid,
        "service_sid": w.service_sid,
        "friendly_name": w.friendly_name,
        "event_types": w.event_types,
        "webhook_method": w.method.as_str(),
        "webhook_url": w.url,
        "status": w.status.as_str(),
        "version": w.version.as_str(),
        "date_created": twilio_date(w.created),
        "date_updated": twilio_date(w.updated),
    })
}

fn friendly_name(v: &str, max: usize) -> Result<String, ApiResponse> {
    if v.chars().count() > max {
        return Err(invalid(
            "FriendlyName",
            format!("longer than {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

fn created(body: Value) -> Answer {
    Ok(ApiResponse::json(StatusCode::CREATED, body))
}

fn ok(body: Value) -> Answer {
    Ok(ApiResponse::json(StatusCode::OK, body))
}

fn create_service(sh: &Shared, req: &ApiRequest) -> Answer {
    let name = friendly_name(required(req, "FriendlyName")?, MAX_SERVICE_NAME)?;
    let now = sh.now();
    let s = Service {
        sid: sid("VA"),
        friendly_name: name,
        created: now,
        updated: now,
    };
    let full = sh.store(|st| {
        if st.services(0, 1)?.1 >= MAX_SERVICES {
            return Ok(true);
        }
        st.insert_service(&s).map(|()| false)
    })?;
    if full {
        return Err(invalid(
            "FriendlyName",
            format!("this account has {MAX_SERVICES} services, the most the emulator keeps"),
        ));
    }
    created(service_json(sh, &sh.base_for(req), &s))
}

fn list_services(sh: &Shared, req: &ApiRequest) -> Answer {
    let page = Page::from_request(req)?;
    let (rows, total) = sh.store(|st| st.services(page.offset(), page.size))?;
    let base = sh.base_for(req);
    let rows = rows.iter().map(|s| service_json(sh, &base, s)).collect();
    let list_url = format!("{base}/v2/Services");
    ok(page.document("services", &list_url, rows, total))
}

fn the_service(sh: &Shared, sid: &str, path: &str) -> Result<Service, ApiResponse> {
    sh.store(|st| st.service(sid))?
        .ok_or_else(|| not_found(path))
}

fn fetch_service(sh: &Shared, s: &str, req: &ApiRequest) -> Answer {
    let svc = the_service(sh, s, &req.path)?;
    ok(service_json(sh, &sh.base_for(req), &svc))
}

fn update_service(sh: &Shared, s: &str, req: &ApiRequest) -> Answer {
    let mut svc = the_service(sh, s, &req.path)?;
    if let Some(n) = req.param("FriendlyName") {
        svc.friendly_name = friendly_name(n, MAX_SERVICE_NAME)?;
    }
    svc.updated = sh.now();
    sh.store(|st| st.update_service(&svc))?;
    ok(service_json(sh, &sh.base_for(req), &svc))
}

fn delete_service(sh: &Shared, s: &str, path: &str) -> Answer {
    match sh.store(|st| st.delete_service(s))? {
        true => Ok(ApiResponse::no_content()),
        false => Err(not_found(path)),
    }
}

/// `EventTypes` as given, each one known; `None` when absent.
fn event_types(req: &ApiRequest) -> Result<Option<Vec<String>>, ApiResponse> {
    let given = req.params("EventTypes");
    if given.is_empty() {
        return Ok(None);
    }
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for e in given {
        // `*`, or one of the seed's event types (the catalog `trigger` fires).
        if e != "*" && !twk_trigger::VERIFY_PUSH_EVENTS.contains(&e) {
            return Err(invalid(
                "EventTypes",
                format!(
                    "{e:?} is not an event type; one of *, {}",
                    twk_trigger::VERIFY_PUSH_EVENTS.join(", ")
                ),
            ));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    Ok(Some(out))
}

fn parse_param<T: std::str::FromStr<Err = String>>(
    req: &ApiRequest,
    name: &str,
) -> Result<Option<T>, ApiResponse> {
    req.param(name)
        .map(|v| v.parse::<T>().map_err(|why| invalid(name, why)))
        .transpose()
}

fn webhook_url(v: &str) -> Result<String, ApiResponse> {
    check_url(v).map_err(|why| invalid("WebhookUrl", why))?;
    Ok(v.to_owned())
}

fn create_webhook(sh: &Shared, s: &str, req: &ApiRequest) -> Answer {
    let service = the_service(sh, s, &req.path)?;
    let name = friendly_name(required(req, "FriendlyName")?, MAX_NAME)?;
    let events = match event_types(req)? {
        Some(e) => e,
        None => required(req, "EventTypes").map(|_| Vec::new())?,
    };
    let url = webhook_url(required(req, "WebhookUrl")?)?;
    let now = sh.now();
    let w = Webhook {
        sid: sid("YW"),
        service_sid: service.sid,
        friendly_name: name,
        event_types: events,
        url,
        method: parse_param(req, "WebhookMethod")?.unwrap_or(Method::Post),
        status: parse_param(req, "Status")?.unwrap_or(Status::Enabled),
        version: parse_param(req, "Version")?.unwrap_or(Version::V2),
        created: now,
        updated: now,
    };
    let full = sh.store(|st| {
        if st.webhooks(&w.service_sid, 0, 1)?.1 >= MAX_WEBHOOKS {
            return Ok(true);
        }
        st.insert_webhook(&w).map(|()| false)
    })?;
    if full {
        return Err(invalid(
            "WebhookUrl",
            format!("this service has {MAX_WEBHOOKS} webhooks, the most the emulator keeps"),
        ));
    }
    created(webhook_json(sh, &sh.base_for(req), &w))
}

fn list_webhooks(sh: &Shared, s: &str, req: &ApiRequest) -> Answer {
    let service = the_service(sh, s, &req.path)?;
    let page = Page::from_request(req)?;
    let (rows, total) = sh.store(|st| st.webhooks(&service.sid, page.offset(), page.size))?;
    let base = sh.base_for(req);
    let rows = rows.iter().map(|w| webhook_json(sh, &base, w)).collect();
    let list_url = format!("{base}/v2/Services/{}/Webhooks", service.sid);
    ok(page.document("webhooks", &list_url, rows, total))
}

fn the_webhook(sh: &Shared, s: &str, w: &str, path: &str) -> Result<Webhook, ApiResponse> {
    sh.store(|st| st.webhook(s, w))?
        .ok_or_else(|| not_found(path))
}

fn fetch_webhook(sh: &Shared, s: &str, w: &str, req: &ApiRequest) -> Answer {
    let hook = the_webhook(sh, s, w, &req.path)?;
    ok(webhook_json(sh, &sh.base_for(req), &hook))
}

fn update_webhook(sh: &Shared, s: &str, w: &str, req: &ApiRequest) -> Answer {
    let mut hook = the_webhook(sh, s, w, &req.path)?;
    // Everything is checked before anything changes: a bad field leaves the webhook as it was.
    let name = req
        .param("FriendlyName")
        .map(|n| friendly_name(n, MAX_NAME))
        .transpose()?;
    let events = event_types(req)?;
    let url = req.param("WebhookUrl").map(webhook_url).transpose()?;
    let method = parse_param(req, "WebhookMethod")?;
    let status = parse_param(req, "Status")?;
    let version = parse_param(req, "Version")?;
    if let Some(v) = name {
        hook.friendly_name = v;
    }
    if let Some(v) = events {
        hook.event_types = v;
    }
    if let Some(v) = url {
        hook.url = v;
    }
    hook.method = method.unwrap_or(hook.method);
    hook.status = status.unwrap_or(hook.status);
    hook.version = version.unwrap_or(hook.version);
    hook.updated = sh.now();
    sh.store(|st| st.update_webhook(&hook))?;
    ok(webhook_json(sh, &sh.base_for(req), &hook))
}

fn delete_webhook(sh: &Shared, s: &str, w: &str, path: &str) -> Answer {
    match sh.store(|st| st.delete_webhook(s, w))? {
        true => Ok(ApiResponse::no_content()),
        false => Err(not_found(path)),
    }
}

/// `401` in Twilio's words.
pub(crate) fn unauthenticated() -> ApiResponse {
    twilio_error(
        TwilioCode::Authenticate,
        "Authentication Error - invalid username or password",
    )
}
