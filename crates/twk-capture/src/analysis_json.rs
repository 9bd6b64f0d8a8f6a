//! The provider crate's analysis of an exchange, kept as the JSON text it was written to once.
//!
//! Every exchange carries its analysis to the store and, for one field (the provider's event
//! id), to the `--json` line; only the views that show an analysis whole (the inspector's
//! signature tab, `log ID`) read it back. As a `serde_json::Value` it was built for each
//! exchange (a map per object, its keys hashed with SipHash and each one a `String`: 4.5k
//! instructions), walked to weigh it, written out again to text for the store (3.5k) and
//! dropped (docs/performance.md, twenty-third round). As text it is written once, where the
//! typed analysis is (3.6k), and stored as it is.
//!
//! It is not a sanitizer: the text is the analysis as it was, untrusted characters included.
//! Serialized through `twk_sanitize`'s JSON writer it is escaped like any other string.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// An analysis as JSON text, with the provider's event id read out of it.
#[derive(Debug, Clone)]
pub struct AnalysisJson {
    text: Box<RawValue>,
    /// `event.id` of the analysis: the `--json` line's `event_id` and the plain line's
    /// `[id]`, read once instead of parsing the text for each line.
    event_id: Option<String>,
}

/// The one field read out of an analysis's text.
#[derive(Deserialize)]
struct EventIdOnly {
    #[serde(default)]
    event: Option<EventId>,
}

#[derive(Deserialize)]
struct EventId {
    #[serde(default)]
    id: Option<String>,
}

impl AnalysisJson {
    /// The analysis written as JSON; `None` if it cannot be (a map with keys that are not
    /// strings: no analysis has one).
    pub fn of(analysis: &twk_providers::Analysis) -> Option<Self> {
        let text = serde_json::value::to_raw_value(analysis).ok()?;
        let event_id = analysis.event.as_ref().and_then(|e| e.id.clone());
        Some(AnalysisJson { text, event_id })
    }

    /// Any JSON value as an analysis (a stored one, or one made up by a test).
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        Self::parse(serde_json::to_string(value).ok()?).ok()
    }

    /// Text read back from the store: it must be JSON.
    pub fn parse(text: String) -> serde_json::Result<Self> {
        RawValue::from_string(text).map(Self::with_event_id)
    }

    /// JSON text already checked, with its `event.id` read out of it.
    fn with_event_id(text: Box<RawValue>) -> Self {
        let event_id = serde_json::from_str::<EventIdOnly>(text.get())
            .ok()
            .and_then(|e| e.event?.id);
        AnalysisJson { text, event_id }
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.text.get()
    }

    /// The provider's id of the event (`evt_…`, a delivery id), when the analysis has one.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// The analysis parsed, for a view that shows its fields.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.text.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for AnalysisJson {
    fn eq(&self, other: &Self) -> bool {
        self.text.get() == other.text.get()
    }
}

impl Eq for AnalysisJson {}

impl Serialize for AnalysisJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.text.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AnalysisJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self::with_event_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twk_providers::{Analysis, Verdict};

    fn stripe_like() -> Analysis {
        let text = r#"{"provider":"stripe","event":{"name":"payment_intent.succeeded",
            "summary":"pi_1","id":"evt_1\u009b31m","details":{}},"verdict":"invalid",
            "matched_variant":null,"signed_string":"1.{}","skew_secs":3,
            "diagnosis":null,"notes":["a \u001b[2J note"]}"#;
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn written_once_it_reads_back_as_the_analysis_it_was() {
        let a = stripe_like();
        let json = AnalysisJson::of(&a).unwrap();
        assert_eq!(json.event_id(), Some("evt_1\u{9b}31m"));
        assert_eq!(json.value(), serde_json::to_value(&a).unwrap());
        let back = AnalysisJson::parse(json.text().to_owned()).unwrap();
        assert_eq!(back, json);
        assert_eq!(back.event_id(), json.event_id());
        let typed: Analysis = serde_json::from_str(back.text()).unwrap();
        assert_eq!(typed.verdict, Verdict::Invalid);
    }

    #[test]
    fn stored_text_that_is_not_json_is_refused() {
        assert!(AnalysisJson::parse("{\"event\":".to_owned()).is_err());
        assert!(AnalysisJson::parse(String::new()).is_err());
        // Any JSON is kept as it is; only an object's `event.id` string is read out of it.
        for (text, id) in [
            ("[1,2]", None),
            ("{\"event\":{\"id\":7}}", None),
            ("{\"event\":null}", None),
            ("{\"event\":{\"id\":\"m-1\"},\"x\":[{}]}", Some("m-1")),
        ] {
            let json = AnalysisJson::parse(text.to_owned()).unwrap();
            assert_eq!((json.text(), json.event_id()), (text, id));
        }
    }

    #[test]
    fn it_serializes_as_its_text_and_through_the_sanitizer_escaped() {
        let json = AnalysisJson::of(&stripe_like()).unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), json.text());
        let safe = twk_sanitize::json_string(&json).unwrap();
        assert!(
            !safe.contains('\u{9b}') && !safe.contains('\u{1b}'),
            "{safe}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            json.value()
        );
        let round: AnalysisJson = serde_json::from_str(&safe).unwrap();
        assert_eq!(round.value(), json.value());
    }
}
