//! Twilio: Verify Push webhooks (seed `twilio-verify-push-webhooks.txt`, v1 and v2 field
//! sets), messaging and call status callbacks, and Verify events as Event Streams deliver
//! them (CloudEvents JSON, signed through `bodySHA256`).

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::{digits, rfc3339, twilio_sid};
use serde_json::json;
use twk_providers::Provider;

/// The Verify Push event types, as the seed's table lists them.
pub const VERIFY_PUSH_EVENTS: [&str; 5] = [
    "factor.created",
    "factor.verified",
    "factor.deleted",
    "challenge.approved",
    "challenge.denied",
];

/// The fields a legacy (v1) Verify Push webhook carries, as the seed lists them
/// (`challenge_sid` for challenge events only).
pub const VERIFY_PUSH_V1_FIELDS: [&str; 7] = [
    "uuid",
    "type",
    "account_sid",
    "service_sid",
    "entity_identity",
    "factor_sid",
    "challenge_sid",
];

const UA: &str = "TwilioProxy/1.1";

pub(super) fn events() -> Vec<EventSpec> {
    let p = Provider::Twilio;
    let mut v: Vec<EventSpec> = VERIFY_PUSH_EVENTS
        .iter()
        .zip([
            "Verify Push: a factor was created (not yet able to receive challenges)",
            "Verify Push: a factor was verified and can receive challenges",
            "Verify Push: a factor was deleted",
            "Verify Push: the user approved a challenge",
            "Verify Push: the user denied a challenge",
        ])
        .map(|(name, about)| {
            EventSpec::new(p, name, about, verify_push).with_params("version=v1|v2 (default v2)")
        })
        .collect();
    v.extend([
        EventSpec::new(
            p,
            "message.delivered",
            "Messaging status callback: the SMS reached the handset",
            message_status,
        ),
        EventSpec::new(
            p,
            "message.failed",
            "Messaging status callback: the SMS failed (ErrorCode 30003)",
            message_status,
        ),
        EventSpec::new(
            p,
            "message.received",
            "An incoming SMS to your number",
            message_received,
        ),
        EventSpec::new(
            p,
            "call.ringing",
            "An incoming call: Twilio asks the Voice URL for TwiML",
            incoming_call,
        ),
        EventSpec::new(
            p,
            "call.completed",
            "Voice status callback: the call ended",
            call_status,
        ),
        EventSpec::new(
            p,
            "com.twilio.accountsecurity.verify.verification.approved",
            "Verify event over Event Streams (CloudEvents JSON, bodySHA256)",
            verify_event,
        ),
        EventSpec::new(
            p,
            "com.twilio.accountsecurity.verify.verification.pending",
            "Verify event over Event Streams (CloudEvents JSON, bodySHA256)",
            verify_event,
        ),
    ]);
    v
}

fn pair(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

/// A Verify Push webhook. v2 (the default) adds the factor's type, friendly name and
/// metadata, and a challenge's details; v1 is the legacy subset.
fn verify_push(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let version = b.params.take("version").unwrap_or_else(|| "v2".to_owned());
    let v2 = match version.as_str() {
        "v2" => true,
        "v1" => false,
        other => {
            return Err(TriggerError::BadSet {
                field: "version".to_owned(),
                why: format!("Verify Push webhooks are v1 or v2, not {other:?}"),
            });
        }
    };
    let uuid = crate::ids::guid();
    let challenge = b.event.starts_with("challenge.");
    let mut form = vec![
        pair("uuid", uuid.clone()),
        pair("type", b.event),
        pair("account_sid", twilio_sid("AC")),
        pair("service_sid", twilio_sid("VA")),
        pair("entity_identity", crate::ids::alnum("", 32).to_lowercase()),
        pair("factor_sid", twilio_sid("YF")),
    ];
    if v2 {
        form.push(pair("factor_type", "push"));
        form.push(pair("factor_friendly_name", "John's Phone"));
        form.push(pair("factor_metadata", r#"{"os":"Android"}"#));
    }
    if challenge {
        form.push(pair("challenge_sid", twilio_sid("YC")));
    }
    if challenge && v2 {
        let details = json!({
            "message": "Hi! Mr. John Doe, would you like to sign up?",
            "date": rfc3339(b.now),
            "fields": [{"label": "Action", "value": "Sign up in portal"}],
        });
        form.push(pair("challenge_details", details.to_string()));
        form.push(pair("challenge_hidden_details", r#"{"ip":"127.0.0.1"}"#));
        form.push(pair("challenge_metadata", r#"{"os":"Android"}"#));
    }
    Ok(
        Draft::post(Provider::Twilio, b.event, uuid, Body::Form(form))
            .header("User-Agent", UA)
            .header("I-Twilio-Idempotency-Token", crate::ids::guid()),
    )
}

fn phone() -> String {
    format!("+1555{}", digits(7))
}

fn message_status(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let sid = twilio_sid("SM");
    let status = b.event.trim_start_matches("message.");
    let mut form = vec![
        pair("SmsSid", sid.clone()),
        pair("SmsStatus", status),
        pair("MessageStatus", status),
        pair("To", phone()),
        pair("MessageSid", sid.clone()),
        pair("AccountSid", twilio_sid("AC")),
        pair("From", phone()),
        pair("ApiVersion", "2010-04-01"),
    ];
    if status == "failed" {
        form.push(pair("ErrorCode", "30003"));
    }
    Ok(
        Draft::post(Provider::Twilio, b.event, sid, Body::Form(form))
            .header("User-Agent", UA)
            .header("I-Twilio-Idempotency-Token", crate::ids::guid()),
    )
}

fn message_received(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let sid = twilio_sid("SM");
    let form = vec![
        pair("ToCountry", "US"),
        pair("SmsMessageSid", sid.clone()),
        pair("NumMedia", "0"),
        pair("SmsSid", sid.clone()),
        pair("SmsStatus", "received"),
        pair("Body", "Hello from twk's trigger"),
        pair("To", phone()),
        pair("NumSegments", "1"),
        pair("MessageSid", sid.clone()),
        pair("AccountSid", twilio_sid("AC")),
        pair("From", phone()),
        pair("ApiVersion", "2010-04-01"),
    ];
    Ok(
        Draft::post(Provider::Twilio, b.event, sid, Body::Form(form))
            .header("User-Agent", UA)
            .header("I-Twilio-Idempotency-Token", crate::ids::guid()),
    )
}

/// The request to a number's Voice URL when a call comes in: Twilio runs the TwiML answered.
fn incoming_call(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let sid = twilio_sid("CA");
    let (from, to) = (phone(), phone());
    let form = vec![
        pair("AccountSid", twilio_sid("AC")),
        pair("ApiVersion", "2010-04-01"),
        pair("CallSid", sid.clone()),
        pair("CallStatus", "ringing"),
        pair("Called", to.clone()),
        pair("Caller", from.clone()),
        pair("Direction", "inbound"),
        pair("From", from),
        pair("To", to),
    ];
    Ok(
        Draft::post(Provider::Twilio, b.event, sid, Body::Form(form))
            .header("User-Agent", UA)
            .header("I-Twilio-Idempotency-Token", crate::ids::guid()),
    )
}

fn call_status(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let sid = twilio_sid("CA");
    let form = vec![
        pair("Called", phone()),
        pair("CallSid", sid.clone()),
        pair("CallStatus", "completed"),
        pair("CallDuration", "42"),
        pair("Direction", "outbound-api"),
        pair("AccountSid", twilio_sid("AC")),
        pair("From", phone()),
        pair("To", phone()),
        pair("Timestamp", rfc3339(b.now)),
        pair("ApiVersion", "2010-04-01"),
    ];
    Ok(
        Draft::post(Provider::Twilio, b.event, sid, Body::Form(form))
            .header("User-Agent", UA)
            .header("I-Twilio-Idempotency-Token", crate::ids::guid()),
    )
}

/// Event Streams posts a JSON list of CloudEvents.
fn verify_event(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let id = crate::ids::guid();
    let status = b.event.rsplit('.').next().unwrap_or("approved");
    let event = json!([{
        "specversion": "1.0",
        "type": b.event,
        "source": format!("/v2/Services/{}/Verifications/{}", twilio_sid("VA"), twilio_sid("VE")),
        "id": id,
        "dataschema": "https://events-schemas.twilio.com/AccountSecurity.VerificationStatus/1",
        "datacontenttype": "application/json",
        "time": rfc3339(b.now),
        "data": {
            "accountSid": twilio_sid("AC"),
            "serviceSid": twilio_sid("VA"),
            "verificationSid": twilio_sid("VE"),
            "channel": "sms",
            "status": status,
            "to": phone(),
            "dateCreated": rfc3339(b.now),
        },
    }]);
    Ok(
        Draft::post(Provider::Twilio, b.event, id, Body::Json(event))
            .header("User-Agent", UA)
            .header("I-Twilio-Idempotency-Token", crate::ids::guid()),
    )
}
