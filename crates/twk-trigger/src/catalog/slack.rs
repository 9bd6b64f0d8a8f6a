//! Slack: Events API callbacks (JSON), slash commands and interactive payloads (forms), all
//! signed `v0=` over `v0:timestamp:body` with `X-Slack-Request-Timestamp`.

use super::{Build, EventSpec};
use crate::TriggerError;
use crate::draft::{Body, Draft};
use crate::ids::{alnum, digits};
use serde_json::json;
use twk_providers::Provider;

const UA: &str = "Slackbot 1.0 (+https://api.slack.com/robots)";

pub(super) fn events() -> Vec<EventSpec> {
    let p = Provider::Slack;
    vec![
        EventSpec::new(
            p,
            "url_verification",
            "The challenge Slack sends when you set the Request URL",
            url_verification,
        ),
        EventSpec::new(
            p,
            "app_mention",
            "Someone mentioned your app",
            event_callback,
        ),
        EventSpec::new(
            p,
            "message",
            "A message in a channel the app is in",
            event_callback,
        ),
        EventSpec::new(p, "reaction_added", "A reaction was added", event_callback),
        EventSpec::new(
            p,
            "slash_command",
            "A slash command (/twk hello)",
            slash_command,
        ),
        EventSpec::new(
            p,
            "block_actions",
            "A button in a message was clicked",
            block_actions,
        ),
    ]
}

fn team() -> String {
    format!("T{}", alnum("", 8).to_uppercase())
}

fn url_verification(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let challenge = alnum("", 48);
    let body = json!({"token": alnum("", 24), "challenge": challenge, "type": "url_verification"});
    Ok(Draft::post(Provider::Slack, b.event, challenge, Body::Json(body)).header("User-Agent", UA))
}

fn event_callback(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let id = alnum("Ev", 9).to_uppercase();
    let ts = format!("{}.{}", b.now, digits(6));
    let channel = format!("C{}", alnum("", 8).to_uppercase());
    let user = format!("U{}", alnum("", 8).to_uppercase());
    let event = match b.event {
        "reaction_added" => json!({
            "type": "reaction_added", "user": user, "reaction": "tada",
            "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": ts,
        }),
        kind => json!({
            "type": kind, "user": user, "channel": channel, "ts": ts, "event_ts": ts,
            "text": if kind == "app_mention" { "<@U0LAN0Z89> is it working?" } else { "hello" },
            "channel_type": "channel",
        }),
    };
    let body = json!({
        "token": alnum("", 24),
        "team_id": team(),
        "api_app_id": format!("A{}", alnum("", 8).to_uppercase()),
        "event": event,
        "type": "event_callback",
        "event_id": id,
        "event_time": b.now,
        "authorizations": [{"team_id": team(), "user_id": user, "is_bot": true}],
    });
    Ok(Draft::post(Provider::Slack, b.event, id, Body::Json(body)).header("User-Agent", UA))
}

fn pair(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

fn slash_command(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let trigger = format!(
        "{}.{}.{}",
        digits(13),
        digits(12),
        alnum("", 32).to_lowercase()
    );
    let form = vec![
        pair("token", alnum("", 24)),
        pair("team_id", team()),
        pair("team_domain", "twk-test"),
        pair("channel_id", format!("C{}", alnum("", 8).to_uppercase())),
        pair("channel_name", "general"),
        pair("user_id", format!("U{}", alnum("", 8).to_uppercase())),
        pair("user_name", "jane"),
        pair("command", "/twk"),
        pair("text", "hello world"),
        pair("api_app_id", format!("A{}", alnum("", 8).to_uppercase())),
        pair("is_enterprise_install", "false"),
        pair(
            "response_url",
            "https://hooks.slack.com/commands/T0000/0000/XXXXXXXX",
        ),
        pair("trigger_id", trigger.clone()),
    ];
    Ok(Draft::post(Provider::Slack, b.event, trigger, Body::Form(form)).header("User-Agent", UA))
}

fn block_actions(b: &mut Build<'_>) -> Result<Draft, TriggerError> {
    let trigger = format!(
        "{}.{}.{}",
        digits(13),
        digits(12),
        alnum("", 32).to_lowercase()
    );
    let payload = json!({
        "type": "block_actions",
        "user": {"id": format!("U{}", alnum("", 8).to_uppercase()), "username": "jane"},
        "api_app_id": format!("A{}", alnum("", 8).to_uppercase()),
        "team": {"id": team(), "domain": "twk-test"},
        "trigger_id": trigger,
        "actions": [{"action_id": "approve", "block_id": "b1", "type": "button",
                     "value": "approve", "action_ts": format!("{}.{}", b.now, digits(6))}],
    });
    let form = vec![pair("payload", payload.to_string())];
    Ok(Draft::post(Provider::Slack, b.event, trigger, Body::Form(form)).header("User-Agent", UA))
}
