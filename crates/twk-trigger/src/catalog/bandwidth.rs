//! Bandwidth: messaging callbacks (always a JSON list of callbacks, `User-Agent:
//! BandwidthAPI/v2`), 2FA callbacks (one standardized object with a `platform`; seeds
//! `bandwidth-2fa-webhooks.txt`, `bandwidth-callbacks-basic-auth.txt`) and voice callbacks
//! (one object with an `eventType`; `Bandwidth/api-docs` `site/docs/voice/webhooks/`).

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::{digits, rfc3339_ms};
use serde_json::json;
use twk_providers::Provider;

const UA: &str = "BandwidthAPI/v2";

pub(super) fn events() -> Vec<EventSpec> {
    let p = Provider::Bandwidth;
    vec![
        EventSpec::new(
            p,
            "message-received",
            "An inbound SMS to your number",
            message,
        ),
        EventSpec::new(p, "message-sending", "An MMS is being sent", message),
        EventSpec::new(p, "message-sent", "The message left Bandwidth", message),
        EventSpec::new(
            p,
            "message-delivered",
            "The carrier delivered the message",
            message,
        ),
        EventSpec::new(
            p,
            "message-failed",
            "The message failed (errorCode 4432, forbidden to country)",
            message,
        ),
        EventSpec::new(p, "message-read", "The RBM message was read", message),
        EventSpec::new(
            p,
            "2fa.message-delivered",
            "2FA code delivered (North America: retried 24 h; international: never)",
            two_factor,
        )
        .with_params("to=+E164 (default +1…: North America)"),
        EventSpec::new(
            p,
            "2fa.message-failed",
            "2FA code failed (North America: retried 24 h; international: never)",
            two_factor,
        )
        .with_params("to=+E164 (default +1…: North America)"),
        EventSpec::new(
            p,
            "voice.initiate",
            "An inbound call: Bandwidth runs the BXML the app answers (callbackTimeout 15 s)",
            voice,
        ),
        EventSpec::new(
            p,
            "voice.answer",
            "An outbound call was answered: Bandwidth runs the BXML the app answers",
            voice,
        ),
        EventSpec::new(
            p,
            "voice.gather",
            "The caller pressed digits for a Gather: Bandwidth runs the BXML the app answers",
            voice,
        ),
        EventSpec::new(
            p,
            "voice.disconnect",
            "The call ended (asynchronous: the answer's body is ignored)",
            voice,
        ),
    ]
}

/// A voice callback (`voice/webhooks/*.mdx`): one JSON object named by `eventType`, with the
/// fields every voice event carries and those of its own.
fn voice(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let event_type = b.event.trim_start_matches("voice.");
    let call_id = format!("c-{}", crate::ids::guid());
    let account = digits(7);
    let inbound = event_type == "initiate";
    let (from, to) = (na_number(), na_number());
    let mut cb = json!({
        "eventType": event_type,
        "eventTime": rfc3339_ms(b.now),
        "accountId": account,
        "applicationId": crate::ids::guid(),
        "from": from,
        "to": to,
        "direction": if inbound { "inbound" } else { "outbound" },
        "callId": call_id,
        "callUrl": format!("https://voice.bandwidth.com/api/v2/accounts/{account}/calls/{call_id}"),
        "startTime": rfc3339_ms(b.now - 3),
        "tag": "twk-trigger",
    });
    if !inbound {
        cb["answerTime"] = json!(rfc3339_ms(b.now - 2));
    }
    match event_type {
        "gather" => {
            cb["digits"] = json!("1");
            cb["terminatingDigit"] = json!("#");
        }
        "disconnect" => {
            cb["endTime"] = json!(rfc3339_ms(b.now));
            cb["cause"] = json!("hangup");
        }
        _ => {}
    }
    let id = format!("{call_id}:{event_type}");
    Ok(
        Draft::post(Provider::Bandwidth, b.event, id, Body::Json(cb))
            .header("User-Agent", UA)
            .with_content_type("application/json; charset=utf-8"),
    )
}

fn na_number() -> String {
    format!("+1919{}", digits(7))
}

fn message(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let id = format!("{}{}", b.now, crate::ids::alnum("", 12).to_lowercase());
    let inbound = b.event == "message-received";
    let (owner, to, from) = if inbound {
        let mine = na_number();
        (mine.clone(), mine, na_number())
    } else {
        let mine = na_number();
        (mine.clone(), na_number(), mine)
    };
    let text = if inbound {
        "Hello from twk's trigger"
    } else {
        ""
    };
    let mut cb = json!({
        "type": b.event,
        "time": rfc3339_ms(b.now),
        "description": description(b.event),
        "to": to,
        "message": {
            "id": id,
            "owner": owner,
            "applicationId": crate::ids::guid(),
            "time": rfc3339_ms(b.now - 1),
            "segmentCount": 1,
            "direction": if inbound { "in" } else { "out" },
            "to": [to],
            "from": from,
            "text": text,
            "media": [],
            "tag": "twk-trigger",
        },
    });
    if b.event == "message-failed" {
        cb["errorCode"] = json!(4432);
    }
    Ok(
        Draft::post(Provider::Bandwidth, b.event, id, Body::Json(json!([cb])))
            .header("User-Agent", UA)
            .with_content_type("application/json; charset=utf-8"),
    )
}

fn description(event: &str) -> &'static str {
    match event {
        "message-received" => "Incoming message received",
        "message-sending" => "Message is sending to carrier",
        "message-sent" => "Message was sent to the carrier",
        "message-delivered" => "Message delivered to carrier.",
        "message-failed" => "forbidden to country",
        _ => "Message was read",
    }
}

/// The 2FA platform's standardized callback. `--set to=+44…` makes it international: the
/// platform is chosen from the destination's country code, as the 2FA platform does.
fn two_factor(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let to = b.params.take("to").unwrap_or_else(na_number);
    if !to.starts_with('+') || to.len() < 3 || !to[1..].bytes().all(|c| c.is_ascii_digit()) {
        return Err(TriggerError::BadSet {
            field: "to".to_owned(),
            why: format!("{to:?} is not an E.164 number like +15551234567"),
        });
    }
    let north_america = to.starts_with("+1");
    let kind = b.event.trim_start_matches("2fa.");
    let id = format!("{}{}", b.now, crate::ids::alnum("", 12).to_lowercase());
    let mut cb = json!({
        "type": kind,
        "time": rfc3339_ms(b.now),
        "description": if kind == "message-failed" {
            // The international platform may say "No error" even on failure (seed).
            if north_america { "Message failed" } else { "No error" }
        } else {
            "Message delivered to carrier."
        },
        "platform": if north_america { "NorthAmericaSMS" } else { "GlobalSMS" },
        "message": {"id": id},
    });
    if kind == "message-failed" {
        cb["errorCode"] = json!(if north_america { 4720 } else { 4505 });
    }
    Ok(
        Draft::post(Provider::Bandwidth, b.event, id, Body::Json(cb))
            .header("User-Agent", UA)
            .with_content_type("application/json; charset=utf-8"),
    )
}
