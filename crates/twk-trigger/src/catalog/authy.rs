//! Authy: the 23 event webhooks of the Webhooks API (seed `authy-webhooks-api-demo.txt`; the
//! body field `body` carries an HS256 JWT signed with the `WSK_` key) and OneTouch callbacks
//! (`X-Authy-Signature` with a nonce, over the URL and the sorted parameters).

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::{digits, rfc3339, twilio_sid};
use serde_json::json;
use twk_providers::{AUTHY_WEBHOOK_DESCRIPTIONS, AUTHY_WEBHOOK_EVENTS, Provider};

/// The 23 events, each described as twk's analysis describes it (a JWT in the body field
/// `body`, HS256 with the `WSK_` key).
pub(super) fn webhook_events() -> Vec<EventSpec> {
    AUTHY_WEBHOOK_EVENTS
        .iter()
        .zip(AUTHY_WEBHOOK_DESCRIPTIONS)
        .map(|(name, about)| EventSpec::new(Provider::AuthyWebhook, name, about, webhook))
        .collect()
}

pub(super) fn onetouch_events() -> Vec<EventSpec> {
    ["approved", "denied"]
        .iter()
        .zip([
            "OneTouch: the user approved the push request",
            "OneTouch: the user denied the push request",
        ])
        .map(|(status, about)| {
            let name: &'static str = match *status {
                "approved" => "approval_request_status.approved",
                _ => "approval_request_status.denied",
            };
            EventSpec::new(Provider::AuthyOnetouch, name, about, onetouch)
        })
        .collect()
}

/// The claims of an event webhook. Authy's claim names are not published (providers.md
/// §2.1): these follow its reporting API's event objects — the event name, its id, the
/// app and the user it concerns — and `iat`.
fn webhook(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let id = format!("EV{}", crate::ids::alnum("", 32).to_lowercase());
    let authy_id = digits(9);
    let claims = json!({
        "id": id,
        "event": b.event,
        "iat": b.now,
        "created_at": rfc3339(b.now),
        "account_sid": twilio_sid("AC"),
        "app_id": digits(6),
        "app_name": "twk trigger",
        "objects": {
            "user": {"authy_id": authy_id.parse::<u64>().unwrap_or(0), "country_code": 1},
        },
        "authy_id": authy_id,
    });
    Ok(
        Draft::post(Provider::AuthyWebhook, b.event, id, Body::JwtClaims(claims))
            .header("User-Agent", "Authy-Webhooks/1.0"),
    )
}

/// An `approval_request_status` callback, shaped like the one in Twilio's Java sample
/// (providers.md §2.2).
fn onetouch(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let status = b.event.rsplit('.').next().unwrap_or("approved");
    let uuid = crate::ids::guid();
    let body = json!({
        "authy_id": digits(8).parse::<u64>().unwrap_or(0),
        "device_uuid": crate::ids::guid(),
        "callback_action": "approval_request_status",
        "uuid": uuid,
        "status": status,
        "approval_request": {
            "transaction": {
                "details": {"Account": "twk", "Location": "Loopback"},
                "device_details": {},
                "device_geolocation": "",
                "device_signing_time": b.now,
                "encrypted": false,
                "flagged": false,
                "hidden_details": {"ip": "127.0.0.1"},
                "message": "Log in to twk?",
                "reason": "",
                "requester_details": null,
                "status": status,
                "uuid": uuid,
                "created_at_time": b.now - 5,
                "customer_uuid": crate::ids::guid(),
            },
            "expiration_timestamp": b.now + 86_400,
            "logos": null,
            "app_id": crate::ids::alnum("", 24).to_lowercase(),
        },
        "signature": crate::ids::alnum("", 44),
    });
    Ok(
        Draft::post(Provider::AuthyOnetouch, b.event, uuid, Body::Json(body))
            .header("User-Agent", "AuthyOneTouch/1.0"),
    )
}
