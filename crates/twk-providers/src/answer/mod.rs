//! What a telephony callback's answer must be, and whether the app's answer is it.
//!
//! Bandwidth runs the BXML its synchronous voice callbacks are answered with, and Twilio the
//! TwiML of its voice and incoming-message webhooks (anchors.md gap 10): a JSON answer, an
//! empty one, `<say>` for `<Say>` or `<Bxml>` for `<Response>` fails the call, while every
//! tunnel shows a 200. [`expected_answer`] says which requests expect a document and
//! [`check`] what is wrong with the answer given. Slack's Request URL check, whose answer
//! must give its challenge back, is [`url_verification_challenge`] and
//! [`challenge_problem`].
//!
//! What it is not: a validator of attributes and values (Twilio's 12200 also covers those),
//! of SSML inside `<Say>`/`<SpeakSentence>`, or of nouns below the first level of nesting;
//! nor does it run the document. A status callback whose answer the provider ignores expects
//! nothing here.

mod document;
mod schema;
mod slack;

use crate::analysis::{AnswerLimit, Provider};
use crate::request::RequestView;
use crate::url::UrlParts;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

pub use document::Problem;
pub use slack::{challenge_problem, url_verification_challenge};

/// A callback whose answer the provider runs as a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A Bandwidth synchronous voice callback: `<Response>` with BXML verbs.
    Bxml(BxmlEvent),
    /// A Twilio voice webhook (incoming call, `<Gather>`/`<Dial>`/`<Record>` action): TwiML.
    TwimlVoice,
    /// A Twilio incoming SMS/MMS webhook: messaging TwiML, or nothing for no reply.
    TwimlMessaging,
}

/// Which verbs a Bandwidth synchronous callback's answer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BxmlEvent {
    /// `answer`, `initiate`, `gather`, `redirect`, … : any verb; an answer is required.
    Call,
    /// `transferAnswer`: runs for the called party, so no Bridge, Conference, Forward or
    /// Transfer.
    TransferAnswer,
    /// `conferenceCreated`, `conferenceMemberJoin`/`Exit`, `conferenceRedirect`: only
    /// PlayAudio, SpeakSentence and the recording verbs, or an empty answer.
    Conference,
}

impl Expected {
    /// `BXML` or `TwiML`.
    pub const fn markup(self) -> &'static str {
        match self {
            Expected::Bxml(_) => "BXML",
            Expected::TwimlVoice | Expected::TwimlMessaging => "TwiML",
        }
    }

    /// What the provider does with an answer whose first problem is `first`, in words;
    /// `None` when the problem says it already (`text/plain` read aloud or sent as a reply).
    pub fn otherwise(self, first: &Problem) -> Option<String> {
        if let Expected::Bxml(_) = self {
            return Some(match first {
                Problem::Status(_) => "Bandwidth counts the callback failed: it tries the \
                                       fallback URL, or fails the call (a disconnect event with \
                                       cause callback-error)"
                    .to_owned(),
                _ => "Bandwidth fails the call on invalid BXML (a disconnect event with cause \
                      invalid-bxml)"
                    .to_owned(),
            });
        }
        let logs = match first {
            Problem::PlainSpoken | Problem::PlainReplied => return None,
            Problem::Status(_) => "error 11200 (HTTP retrieval failure)",
            Problem::NoContentType | Problem::ContentType(_) => {
                "error 12300 (invalid Content-Type)"
            }
            Problem::Unknown { .. } | Problem::Misplaced { .. } => {
                return Some(
                    "Twilio logs warning 12200 (schema validation) and does not run it".to_owned(),
                );
            }
            _ => "error 12100 (document parse failure)",
        };
        Some(match self {
            Expected::TwimlMessaging => format!("Twilio logs {logs} and sends no reply"),
            _ => format!(
                "Twilio logs {logs} and the caller hears an application error, unless a \
                 fallback URL answers"
            ),
        })
    }
}

/// Bandwidth's synchronous voice events (each page's "Expected Response" is BXML;
/// `recordingComplete` is the SDK's spelling of `recordComplete`).
const BANDWIDTH_SYNC: [(&str, BxmlEvent); 14] = [
    ("answer", BxmlEvent::Call),
    ("initiate", BxmlEvent::Call),
    ("gather", BxmlEvent::Call),
    ("redirect", BxmlEvent::Call),
    ("recordComplete", BxmlEvent::Call),
    ("recordingComplete", BxmlEvent::Call),
    ("transferComplete", BxmlEvent::Call),
    ("bridgeComplete", BxmlEvent::Call),
    ("bridgeTargetComplete", BxmlEvent::Call),
    ("transferAnswer", BxmlEvent::TransferAnswer),
    ("conferenceCreated", BxmlEvent::Conference),
    ("conferenceMemberJoin", BxmlEvent::Conference),
    ("conferenceMemberExit", BxmlEvent::Conference),
    ("conferenceRedirect", BxmlEvent::Conference),
];

/// Bandwidth's answer to `<Refer>`: synchronous when the REFER failed, else not.
const REFER_COMPLETE: &str = "referComplete";

/// An answer the whole BXML verb set may be run from.
const CALL: Expected = Expected::Bxml(BxmlEvent::Call);

/// Call states after which a Twilio request about the call is a status callback.
const TWILIO_CALL_OVER: [&str; 5] = ["completed", "busy", "failed", "no-answer", "canceled"];

/// Parameters only Twilio's status callbacks carry (call progress, recordings,
/// transcriptions, `<Gather>`'s partial speech results), whose answers Twilio does not run.
/// The call-progress markers are the Call resource's (`CallbackSource` is always
/// `call-progress-events` there); the voice webhook's parameters (TwiML "Request parameters")
/// have none of them.
const TWILIO_STATUS_ONLY: [&str; 5] = [
    "CallbackSource",
    "SequenceNumber",
    "RecordingStatus",
    "TranscriptionStatus",
    "UnstableSpeechResult",
];

/// The document `req`'s answer must be, when `provider` runs its answer; `None` for
/// callbacks whose answer body is ignored and for everything else.
pub fn expected_answer(provider: Provider, req: &RequestView<'_>) -> Option<Expected> {
    match provider {
        Provider::Bandwidth => {
            let event = bandwidth_voice_event(req)?;
            if event == REFER_COMPLETE {
                // A failed REFER leaves the call up and runs the answer; after a successful
                // one the call has gone elsewhere and the answer is ignored
                // (`referComplete`'s page; `referCallStatus` is `success` or `failure`).
                let status = bandwidth_field(req, "referCallStatus");
                return (status.as_deref() != Some("success")).then_some(CALL);
            }
            bandwidth_sync(&event).map(Expected::Bxml)
        }
        Provider::Twilio => twilio_expected(req),
        _ => None,
    }
}

/// Which verbs the answer to Bandwidth's voice event `event_type` may hold, when Bandwidth
/// runs it (a synchronous event); `None` for the asynchronous ones, whose answer is ignored.
pub fn bandwidth_sync(event_type: &str) -> Option<BxmlEvent> {
    BANDWIDTH_SYNC
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, e)| *e)
}

/// How long the provider waits for this request's answer: [`Provider::answer_limit`], except
/// for Bandwidth's voice callbacks, which wait `callbackTimeout` (15 s by default) where
/// messaging callbacks wait 10 s.
pub fn answer_limit(provider: Provider, req: &RequestView<'_>) -> Option<AnswerLimit> {
    if provider == Provider::Bandwidth && bandwidth_voice_event(req).is_some() {
        return Some(AnswerLimit {
            within: Duration::from_secs(15),
            otherwise: "Bandwidth stops waiting for a voice callback after callbackTimeout \
                        (15 s unless set, 1 to 25 s) and tries the fallback URL or fails the \
                        call (a disconnect event with cause callback-error)",
        });
    }
    provider.answer_limit()
}

/// A Bandwidth voice callback's `eventType`: a JSON object (or, for `GET`, the query).
fn bandwidth_voice_event(req: &RequestView<'_>) -> Option<String> {
    bandwidth_field(req, "eventType")
}

/// A string field of a Bandwidth voice callback: the JSON object's (the query's for `GET`).
fn bandwidth_field(req: &RequestView<'_>, name: &str) -> Option<String> {
    if req.is_get() {
        return UrlParts::parse(req.url)?
            .query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v);
    }
    match req.json()? {
        Value::Object(o) => o.get(name)?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn twilio_expected(req: &RequestView<'_>) -> Option<Expected> {
    if !req.is_get() && req.is_json() {
        return None;
    }
    let params = crate::twilio::form_or_query(req);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if TWILIO_STATUS_ONLY.iter().any(|k| get(k).is_some()) {
        return None;
    }
    if get("CallSid").is_some() {
        let status = get("CallStatus")?;
        return (!TWILIO_CALL_OVER.contains(&status)).then_some(Expected::TwimlVoice);
    }
    // An incoming SMS, MMS or WhatsApp message carries the legacy `SmsStatus=received` /
    // `SmsMessageSid`; Conversations webhooks (`EventType`, `ConversationSid`) also carry
    // `MessageSid` and `Body`, and their pre-event hooks answer JSON.
    if get("EventType").is_some() || get("ConversationSid").is_some() {
        return None;
    }
    let incoming = get("SmsStatus").map_or(get("SmsMessageSid").is_some(), |s| s == "received");
    let message = get("MessageSid").or_else(|| get("SmsSid")).is_some();
    (message
        && incoming
        && get("Body").is_some()
        && get("MessageStatus").is_none_or(|s| s == "received"))
    .then_some(Expected::TwimlMessaging)
}

/// The app's answer, as captured.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// Its status code.
    pub status: u16,
    /// Its `Content-Type`, when it had one.
    pub content_type: Option<&'a [u8]>,
    /// Its body as captured.
    pub body: &'a [u8],
    /// Its whole length, which `body` may be shorter than (the capture keeps a prefix).
    pub len: u64,
}

/// What is wrong with `answer` as the answer `expected`; empty when nothing twk can tell. A
/// 401 is left to the Basic-auth challenge's own lints.
pub fn check(expected: Expected, answer: &Answer<'_>) -> Vec<Problem> {
    document::check(expected, answer)
}

/// The problems, at most `shown` of them and how many more, in one sentence.
pub fn describe(problems: &[Problem], shown: usize) -> String {
    let mut s = problems
        .iter()
        .take(shown)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > shown {
        s.push_str(&format!("; and {} more", problems.len() - shown));
    }
    s
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::Bxml(BxmlEvent::Conference) => "Bandwidth conference callback",
            Expected::Bxml(_) => "Bandwidth voice callback",
            Expected::TwimlVoice => "Twilio voice webhook",
            Expected::TwimlMessaging => "Twilio incoming-message webhook",
        })
    }
}

#[cfg(test)]
mod tests;
