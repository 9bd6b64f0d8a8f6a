//! What the emulator keeps: Verify services and their webhooks, Authy webhooks, and the
//! events it delivered. Field values Twilio spells as strings (`enabled`, `v2`, `POST`) are
//! enums here and strings only on the wire.

use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use twk_providers::Secret;

/// A Verify webhook's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Delivered to (the default).
    Enabled,
    /// Kept, but gets nothing.
    Disabled,
}

/// A Verify webhook's payload `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The legacy field subset.
    V1,
    /// All fields (the default).
    V2,
}

/// A Verify webhook's `webhook_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Parameters in the query string.
    Get,
    /// A form body (the default).
    Post,
}

/// Which emulated API an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Twilio Verify (Push) webhooks.
    Verify,
    /// Authy event webhooks.
    Authy,
}

macro_rules! wire_enum {
    ($t:ty, $what:literal, $($v:path => $s:literal),+) => {
        impl $t {
            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($v),)+
                    other => Err(format!(
                        "{} must be one of {}, not {:?}",
                        $what,
                        [$($s),+].join(", "),
                        other
                    )),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(Status, "Status", Status::Enabled => "enabled", Status::Disabled => "disabled");
wire_enum!(Version, "Version", Version::V1 => "v1", Version::V2 => "v2");
wire_enum!(Method, "WebhookMethod", Method::Get => "GET", Method::Post => "POST");
wire_enum!(Api, "api", Api::Verify => "verify", Api::Authy => "authy");

impl Api {
    /// The API that serves `provider`'s `event`: Verify for Twilio's Verify Push events,
    /// Authy for Authy's event webhooks; `None` for anything else.
    pub fn serving(provider: twk_providers::Provider, event: &str) -> Option<Api> {
        use twk_providers::Provider;
        match provider {
            Provider::Twilio if twk_trigger::VERIFY_PUSH_EVENTS.contains(&event) => {
                Some(Api::Verify)
            }
            Provider::AuthyWebhook => Some(Api::Authy),
            _ => None,
        }
    }

    /// The provider whose webhooks this API sends.
    pub fn provider(self) -> twk_providers::Provider {
        match self {
            Api::Verify => twk_providers::Provider::Twilio,
            Api::Authy => twk_providers::Provider::AuthyWebhook,
        }
    }
}

/// A Verify service (`VA…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `VA` + 32 hex.
    pub sid: String,
    /// As given.
    pub friendly_name: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
}

/// A Verify webhook (`YW…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `YW` + 32 hex.
    pub sid: String,
    /// Its service.
    pub service_sid: String,
    /// As given.
    pub friendly_name: String,
    /// Subscribed event types, `*` for all, in the order given.
    pub event_types: Vec<String>,
    /// Where events go (Twilio signs over exactly this URL).
    pub url: String,
    /// How.
    pub method: Method,
    /// Enabled or not.
    pub status: Status,
    /// Payload shape.
    pub version: Version,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
}

impl Webhook {
    /// Whether it gets `event` now: enabled and subscribed (`*` included).
    pub fn wants(&self, event: &str) -> bool {
        self.status == Status::Enabled && self.event_types.iter().any(|e| e == "*" || e == event)
    }
}

/// An Authy event webhook (`WH_…`), with its own `WSK_` signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthyWebhook {
    /// `WH_` + a GUID.
    pub id: String,
    /// As given.
    pub name: String,
    /// Where events go.
    pub url: String,
    /// Subscribed event names.
    pub events: Vec<String>,
    /// The HS256 key of its JWTs (`WSK_…`), shown once, on create.
    pub signing_key: Secret,
    /// Unix seconds.
    pub created: i64,
}

impl AuthyWebhook {
    /// Whether it gets `event` (Authy webhooks have no enabled flag).
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

/// An event the emulator delivered, as the reporting API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Through which API.
    pub api: Api,
    /// `challenge.approved`, `phone_verification_started`, …
    pub event: String,
    /// When, Unix milliseconds.
    pub time_ms: i64,
    /// A GUID per event.
    pub request_id: String,
    /// What it was about (the fields or claims sent).
    pub objects: Value,
    /// One entry per webhook it went to: id, URL, status, fate.
    pub deliveries: Value,
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as Twilio's `date_created` (the SDKs parse exactly this).
pub fn twilio_date(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// ISO 8601 with milliseconds, as Authy's reporting API prints `time`.
pub fn iso_ms(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `prefix` + 32 lowercase hex: a Twilio SID.
pub fn sid(prefix: &str) -> String {
    twk_trigger::ids::twilio_sid(prefix)
}

/// A random GUID (version 4).
pub fn guid() -> String {
    twk_trigger::ids::guid()
}

/// `prefix` + `n` random letters and digits (keys: `WSK_…`, auth tokens).
pub fn token(prefix: &str, n: usize) -> String {
    twk_trigger::ids::alnum(prefix, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_bad_ones_say_what_is_allowed() {
        for s in ["enabled", "disabled"] {
            assert_eq!(s.parse::<Status>().map(Status::as_str), Ok(s));
        }
        let e = "Enabled".parse::<Status>().expect_err("case matters");
        assert!(e.contains("enabled, disabled"), "{e}");
        assert_eq!("v1".parse::<Version>(), Ok(Version::V1));
        assert!("v3".parse::<Version>().is_err());
        assert_eq!("GET".parse::<Method>(), Ok(Method::Get));
    }

    #[test]
    fn a_webhook_wants_what_it_subscribed_to_while_enabled() {
        let mut w = Webhook {
            sid: sid("YW"),
            service_sid: sid("VA"),
            friendly_name: "w".into(),
            event_types: vec!["challenge.approved".into()],
            url: "http://x/".into(),
            method: Method::Post,
            status: Status::Enabled,
            version: Version::V2,
            created: 0,
            updated: 0,
        };
        assert!(w.wants("challenge.approved") && !w.wants("factor.created"));
        w.event_types = vec!["*".into()];
        assert!(w.wants("factor.created"));
        w.status = Status::Disabled;
        assert!(!w.wants("challenge.approved"));
    }

    #[test]
    fn twilio_dates_have_no_fraction() {
        assert_eq!(twilio_date(1_438_286_400), "2015-07-30T20:00:00Z");
        assert_eq!(iso_ms(1_514_764_800_123), "2018-01-01T00:00:00.123Z");
        assert_eq!(sid("YW").len(), 34);
    }
}
