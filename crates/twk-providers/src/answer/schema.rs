//! The element names BXML and TwiML answers may hold, and where.
//!
//! BXML: `Bandwidth/api-docs` `site/docs/voice/bxml/about.mdx` (the verb table, commit
//! 2fcdf57e), the nesting rules of each verb's page, and `Bandwidth/python-sdk`
//! `bandwidth/models/bxml/verbs/` (ba8d1570) for the newer `<Connect>`/`<Endpoint>`.
//! TwiML: `twilio/twilio-python` `twilio/twiml/voice_response.py` and
//! `messaging_response.py` (306691e7): the methods of `VoiceResponse`/`MessagingResponse`
//! are what `<Response>` may hold, and each class's `nest` calls what it may hold.

/// What one document kind allows: the verbs directly under `<Response>`, and for some verbs
/// the elements they may hold. A verb not in `nesting` is not looked into (its content is
/// text, SSML or nouns twk does not check).
pub(super) struct Schema {
    /// The verbs `<Response>` may hold.
    pub top: &'static [&'static str],
    /// A verb and the elements it may hold.
    pub nesting: &'static [(&'static str, &'static [&'static str])],
    /// Names from elsewhere (the other provider's verbs, voice verbs in a message's answer)
    /// and what to say instead.
    pub instead: &'static [(&'static str, &'static str)],
}

impl Schema {
    pub(super) fn is_top(&self, name: &str) -> bool {
        self.top.contains(&name)
    }

    /// What `parent` may hold, when twk checks it.
    pub(super) fn children_of(&self, parent: &str) -> Option<&'static [&'static str]> {
        self.nesting
            .iter()
            .find(|(p, _)| *p == parent)
            .map(|(_, c)| *c)
    }

    /// The verb an element belongs inside, when it is one that only goes inside another.
    pub(super) fn home_of(&self, name: &str) -> Option<&'static str> {
        self.nesting
            .iter()
            .find(|(p, c)| c.contains(&name) && !self.is_top(name) && self.is_top(p))
            .map(|(p, _)| *p)
    }

    /// What to use instead of `name`, when it belongs to another document kind.
    pub(super) fn instead_of(&self, name: &str) -> Option<&'static str> {
        self.instead
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| *w)
    }

    /// The known name that differs from `name` only in letter case (names are
    /// case-sensitive: `<say>` is not `<Say>`).
    pub(super) fn same_but_case(&self, name: &str) -> Option<&'static str> {
        self.top
            .iter()
            .chain(self.nesting.iter().flat_map(|(_, c)| c.iter()))
            .find(|k| k.eq_ignore_ascii_case(name) && **k != name)
            .copied()
    }
}

/// Bandwidth's BXML for voice callbacks.
pub(super) const BXML: Schema = Schema {
    top: &[
        "Bridge",
        "Conference",
        "Connect",
        "Forward",
        "Gather",
        "Hangup",
        "Pause",
        "PauseRecording",
        "PlayAudio",
        "Record",
        "Redirect",
        "ResumeRecording",
        "Ring",
        "SendDtmf",
        "SpeakSentence",
        "StartGather",
        "StartRecording",
        "StartStream",
        "StartTranscription",
        "StopGather",
        "StopRecording",
        "StopStream",
        "StopTranscription",
        "Refer",
        "Tag",
        "Transfer",
    ],
    nesting: &[
        ("Transfer", &["PhoneNumber", "SipUri"]),
        ("Refer", &["SipUri"]),
        ("StartStream", &["StreamParam"]),
        ("StartTranscription", &["CustomParam"]),
        ("Connect", &["Endpoint"]),
        ("Gather", &["SpeakSentence", "PlayAudio"]),
    ],
    instead: &[
        ("Say", "that is TwiML: BXML says <SpeakSentence>"),
        ("Play", "that is TwiML: BXML says <PlayAudio>"),
        ("Dial", "that is TwiML: BXML says <Transfer>"),
    ],
};

/// The only verbs an answer to a conference event may hold (`conferenceCreated.mdx`: "Only
/// the following verbs are valid for conferences").
pub(super) const BXML_CONFERENCE: &[&str] = &[
    "PlayAudio",
    "SpeakSentence",
    "StartRecording",
    "StopRecording",
    "PauseRecording",
    "ResumeRecording",
];

/// The verbs an answer to `transferAnswer` may not hold (`transferAnswer.mdx`'s table: it runs
/// for the called party only). The table is older than `<StartStream>`, `<StartTranscription>`,
/// `<Connect>` and `<Refer>`, whose place there is not documented: they pass.
pub(super) const BXML_NOT_ON_TRANSFER_ANSWER: &[&str] =
    &["Bridge", "Conference", "Forward", "Transfer"];

/// Twilio's TwiML for voice webhooks.
pub(super) const TWIML_VOICE: Schema = Schema {
    top: &[
        "Annotate", "Connect", "Dial", "Echo", "Enqueue", "Gather", "Hangup", "Leave", "Pause",
        "Pay", "Play", "Prompt", "Queue", "Record", "Redirect", "Refer", "Reject", "Say", "Sms",
        "Start", "Stop",
    ],
    nesting: &[
        (
            "Dial",
            &[
                "Application",
                "Client",
                "Conference",
                "Number",
                "Queue",
                "Sim",
                "Sip",
                "WhatsApp",
            ],
        ),
        ("Gather", &["Say", "Play", "Pause"]),
        ("Prompt", &["Say", "Play", "Pause"]),
        ("Enqueue", &["Task"]),
        ("Start", &["Stream", "Siprec", "Transcription", "Recording"]),
        ("Stop", &["Stream", "Siprec", "Transcription"]),
        (
            "Connect",
            &[
                "Room",
                "Autopilot",
                "Stream",
                "VirtualAgent",
                "Conversation",
                "ConversationRelay",
                "AiSession",
                "ConversationRelaySession",
            ],
        ),
        ("Pay", &["Prompt", "Parameter"]),
        ("Reject", &["Parameter"]),
        ("Hangup", &["Parameter"]),
        ("Refer", &["Sip"]),
    ],
    instead: &[
        ("SpeakSentence", "that is BXML: TwiML says <Say>"),
        ("PlayAudio", "that is BXML: TwiML says <Play>"),
        ("Transfer", "that is BXML: TwiML says <Dial>"),
        ("Message", "a messaging verb: a voice answer says <Say>"),
    ],
};

/// Twilio's TwiML for incoming-message webhooks.
pub(super) const TWIML_MESSAGING: Schema = Schema {
    top: &["Message", "Redirect"],
    nesting: &[("Message", &["Body", "Media"])],
    instead: &[
        ("Say", "a voice verb: a reply is <Message>"),
        ("Play", "a voice verb: a reply is <Message>"),
        ("Gather", "a voice verb: a reply is <Message>"),
        ("Dial", "a voice verb: a reply is <Message>"),
        ("Sms", "a voice verb: a reply is <Message>"),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_only_elements_name_their_home_and_case_slips_their_spelling() {
        assert_eq!(BXML.home_of("PhoneNumber"), Some("Transfer"));
        assert_eq!(BXML.home_of("StreamParam"), Some("StartStream"));
        assert_eq!(BXML.home_of("SpeakSentence"), None, "a verb of its own too");
        assert_eq!(TWIML_VOICE.home_of("Number"), Some("Dial"));
        assert_eq!(TWIML_VOICE.home_of("Stream"), Some("Start"));
        assert_eq!(TWIML_MESSAGING.home_of("Body"), Some("Message"));
        assert_eq!(TWIML_VOICE.same_but_case("say"), Some("Say"));
        assert_eq!(BXML.same_but_case("speaksentence"), Some("SpeakSentence"));
        assert_eq!(TWIML_VOICE.same_but_case("Say"), None);
    }

    #[test]
    fn every_nested_parent_is_a_verb_and_the_restricted_sets_are_verbs() {
        for schema in [&BXML, &TWIML_VOICE, &TWIML_MESSAGING] {
            for (parent, _) in schema.nesting {
                assert!(schema.is_top(parent), "{parent}");
            }
        }
        for v in BXML_CONFERENCE.iter().chain(BXML_NOT_ON_TRANSFER_ANSWER) {
            assert!(BXML.is_top(v), "{v}");
        }
    }
}
