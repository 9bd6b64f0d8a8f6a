//! Standard Webhooks and Svix: `{type, timestamp, data}` bodies with `webhook-id`,
//! `webhook-timestamp`, `webhook-signature` (Svix: `svix-*`), the message id kept across
//! retries.

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::{alnum, rfc3339_ms};
use serde_json::json;
use twk_providers::Provider;

pub(super) fn events(p: Provider) -> Vec<EventSpec> {
    [
        (
            "user.created",
            "An example application event: a user signed up",
        ),
        (
            "user.deleted",
            "An example application event: a user was deleted",
        ),
        (
            "invoice.paid",
            "An example application event: an invoice was paid",
        ),
        (
            "subscription.canceled",
            "An example application event: a subscription ended",
        ),
    ]
    .into_iter()
    .map(|(name, about)| EventSpec::new(p, name, about, event))
    .collect()
}

fn event(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let provider = b.provider;
    let object = b.event.split('.').next().unwrap_or("object");
    let body = json!({
        "type": b.event,
        "timestamp": rfc3339_ms(b.now),
        "data": {
            "id": alnum(&format!("{}_", &object[..object.len().min(3)]), 16),
            "object": object,
            "email": "jane@example.com",
        },
    });
    let id = alnum("msg_", 27);
    let ua = if provider == Provider::Svix {
        "Svix-Webhooks/1.76"
    } else {
        "Standard-Webhooks/1.0"
    };
    Ok(Draft::post(provider, b.event, id, Body::Json(body)).header("User-Agent", ua))
}
