use super::*;

/// Bandwidth's `answer` callback as `voice/webhooks/answer.mdx` shows it.
const BW_ANSWER: &str = r#"{"eventType":"answer","eventTime":"2019-06-20T15:54:25.435Z","accountId":"55555555","applicationId":"7fc9698a-b04a-468b-9e8f-91238c0d0086","from":"+15551112222","to":"+15553334444","direction":"outbound","callId":"c-95ac8d6e-1a31c52e-b38f-4198-93c1-51633ec68f8d","callUrl":"https://voice.bandwidth.com/api/v2/accounts/55555555/calls/c-95ac8d6e","startTime":"2019-06-20T15:54:22.234Z","answerTime":"2019-06-20T15:54:25.432Z","tag":"example-tag"}"#;

fn bw(event_type: &str) -> String {
    BW_ANSWER.replace(
        r#""eventType":"answer""#,
        &format!(r#""eventType":"{event_type}""#),
    )
}

fn post(body: &str) -> RequestView<'_> {
    RequestView::new(
        "POST",
        "https://relay.example/t/demo/voice",
        body.as_bytes(),
    )
}

fn xml(body: &str) -> Answer<'_> {
    Answer {
        status: 200,
        content_type: Some(b"application/xml; charset=utf-8"),
        body: body.as_bytes(),
        len: body.len() as u64,
    }
}

fn problems(expected: Expected, answer: &Answer<'_>) -> String {
    describe(&check(expected, answer), 10)
}

#[test]
fn bandwidth_sync_voice_events_expect_bxml_and_the_others_nothing() {
    for (event, want) in [
        ("answer", Some(CALL)),
        ("gather", Some(CALL)),
        ("recordComplete", Some(CALL)),
        ("recordingComplete", Some(CALL)),
        (
            "transferAnswer",
            Some(Expected::Bxml(BxmlEvent::TransferAnswer)),
        ),
        (
            "conferenceCreated",
            Some(Expected::Bxml(BxmlEvent::Conference)),
        ),
        ("disconnect", None),
        ("dtmf", None),
        ("transcriptionAvailable", None),
        ("mediaStreamStarted", None),
    ] {
        let body = bw(event);
        assert_eq!(
            expected_answer(Provider::Bandwidth, &post(&body)),
            want,
            "{event}"
        );
    }
    let messaging = r#"[{"type":"message-received","time":"2016-09-14T18:20:16Z","description":"Incoming message received","to":"+12345678902","message":{"id":"14762070468292kw2fuqty55yp2b2","direction":"in"}}]"#;
    assert_eq!(expected_answer(Provider::Bandwidth, &post(messaging)), None);
    let get = RequestView::new(
        "GET",
        "https://relay.example/t/demo/voice?eventType=initiate&callId=c-1",
        b"",
    );
    assert_eq!(expected_answer(Provider::Bandwidth, &get), Some(CALL));
    assert_eq!(
        expected_answer(Provider::Stripe, &post(&bw("answer"))),
        None
    );
}

/// `referComplete` (the `<Refer>` verb's callback) runs its answer only when the REFER
/// failed: the call is still up. After a successful one the answer is ignored.
#[test]
fn a_failed_refer_runs_its_answer_and_a_successful_one_does_not() {
    let refer = |status: &str| {
        bw("referComplete").replace(
            r#""tag""#,
            &format!(r#""referCallStatus":"{status}","referSipResponseCode":202,"tag""#),
        )
    };
    let (failed, done) = (refer("failure"), refer("success"));
    assert_eq!(
        expected_answer(Provider::Bandwidth, &post(&failed)),
        Some(CALL)
    );
    assert_eq!(expected_answer(Provider::Bandwidth, &post(&done)), None);
    // No status said: judged, as the failure it may be.
    let bare = bw("referComplete");
    assert_eq!(
        expected_answer(Provider::Bandwidth, &post(&bare)),
        Some(CALL)
    );
    let get = RequestView::new(
        "GET",
        "https://relay.example/t/demo/voice?eventType=referComplete&referCallStatus=success",
        b"",
    );
    assert_eq!(expected_answer(Provider::Bandwidth, &get), None);
}

#[test]
fn bandwidth_voice_callbacks_wait_15_s_and_messaging_10() {
    let voice = answer_limit(Provider::Bandwidth, &post(&bw("disconnect"))).expect("a limit");
    assert_eq!(voice.within, Duration::from_secs(15));
    assert!(voice.otherwise.contains("callbackTimeout"));
    let messaging = answer_limit(Provider::Bandwidth, &post(r#"[{"type":"message-sent"}]"#));
    assert_eq!(messaging.map(|l| l.within), Some(Duration::from_secs(10)));
    assert_eq!(answer_limit(Provider::Stripe, &post("{}")), None);
}

fn form(body: &str) -> RequestView<'_> {
    RequestView::new(
        "POST",
        "https://relay.example/t/demo/twilio",
        body.as_bytes(),
    )
    .with_header("Content-Type", b"application/x-www-form-urlencoded")
}

#[test]
fn twilio_voice_and_incoming_messages_expect_twiml_and_status_callbacks_nothing() {
    let incoming_call = "AccountSid=AC1&CallSid=CA1&CallStatus=ringing&From=%2B15551234567&To=%2B15557654321&Direction=inbound";
    let gather = "AccountSid=AC1&CallSid=CA1&CallStatus=in-progress&Digits=1";
    let over = "AccountSid=AC1&CallSid=CA1&CallStatus=completed&CallDuration=42";
    let progress = "AccountSid=AC1&CallSid=CA1&CallStatus=ringing&CallbackSource=call-progress-events&SequenceNumber=0";
    let recording = "AccountSid=AC1&CallSid=CA1&CallStatus=in-progress&RecordingStatus=completed";
    // `<Gather partialResultCallback>`: "They don't accept any TwiML documents in response."
    let partial =
        "AccountSid=AC1&CallSid=CA1&CallStatus=in-progress&UnstableSpeechResult=hel&Stability=0.5";
    let dial_action = "AccountSid=AC1&CallSid=CA1&CallStatus=in-progress&DialCallStatus=no-answer";
    let sms = "AccountSid=AC1&MessageSid=SM1&SmsSid=SM1&SmsStatus=received&Body=hi&NumMedia=0";
    let delivered = "AccountSid=AC1&MessageSid=SM1&MessageStatus=delivered&SmsStatus=delivered";
    let conversation =
        "AccountSid=AC1&EventType=onMessageAdded&ConversationSid=CH1&MessageSid=IM1&Body=hello";
    let no_legacy = "AccountSid=AC1&MessageSid=SM1&Body=hi";
    for (body, want) in [
        (incoming_call, Some(Expected::TwimlVoice)),
        (gather, Some(Expected::TwimlVoice)),
        (over, None),
        (progress, None),
        (recording, None),
        (partial, None),
        (dial_action, Some(Expected::TwimlVoice)),
        (sms, Some(Expected::TwimlMessaging)),
        (delivered, None),
        (conversation, None),
        (no_legacy, None),
    ] {
        assert_eq!(
            expected_answer(Provider::Twilio, &form(body)),
            want,
            "{body}"
        );
    }
    let event_streams = post(r#"[{"specversion":"1.0","type":"com.twilio.x"}]"#)
        .with_header("Content-Type", b"application/json");
    assert_eq!(expected_answer(Provider::Twilio, &event_streams), None);
}

#[test]
fn well_formed_answers_pass() {
    let speak = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <SpeakSentence voice="julie">Hello</SpeakSentence>
    <Transfer transferCallerId="+15555555555"><PhoneNumber>+15556667777</PhoneNumber></Transfer>
    <Gather gatherUrl="/gather"><SpeakSentence>Press 1</SpeakSentence></Gather>
</Response>"#;
    assert_eq!(problems(CALL, &xml(speak)), "");
    assert_eq!(
        problems(CALL, &xml("<Response/>")),
        "",
        "the same as Hangup"
    );
    let say = r#"<Response><Say voice="alice">Hi <break time="1s"/> there</Say><Dial><Number>+15551234567</Number></Dial></Response>"#;
    let html = Answer {
        content_type: Some(b"text/html; charset=utf-8"),
        ..xml(say)
    };
    assert_eq!(
        problems(Expected::TwimlVoice, &html),
        "",
        "Express's res.send"
    );
    let reply = "<Response><Message><Body>Thanks</Body></Message></Response>";
    assert_eq!(problems(Expected::TwimlMessaging, &xml(reply)), "");
    let audio = Answer {
        content_type: Some(b"audio/mpeg"),
        ..xml("ID3")
    };
    assert_eq!(
        problems(Expected::TwimlVoice, &audio),
        "",
        "played, then hung up"
    );
}

#[test]
fn what_a_framework_answers_by_default_is_named() {
    let json = Answer {
        content_type: Some(b"application/json"),
        ..xml(r#"{"ok":true}"#)
    };
    assert_eq!(
        problems(CALL, &json),
        "the answer is application/json, not XML"
    );
    assert_eq!(
        problems(Expected::TwimlVoice, &json),
        "the answer is application/json, not XML"
    );
    let ok = Answer {
        content_type: Some(b"text/plain; charset=utf-8"),
        ..xml("OK")
    };
    assert!(problems(Expected::TwimlMessaging, &ok).contains("SMS reply"));
    assert!(problems(Expected::TwimlVoice, &ok).contains("reads it aloud"));
    let empty = Answer {
        content_type: None,
        ..xml("")
    };
    assert!(problems(CALL, &empty).starts_with("the answer is empty"));
    assert!(problems(Expected::TwimlVoice, &empty).starts_with("the answer is empty"));
    assert_eq!(problems(Expected::TwimlMessaging, &empty), "", "no reply");
    assert_eq!(problems(Expected::Bxml(BxmlEvent::Conference), &empty), "");
    let failed = Answer {
        status: 500,
        ..xml("oops")
    };
    assert_eq!(
        problems(CALL, &failed),
        "the app answered 500, not a document"
    );
    let challenge = Answer {
        status: 401,
        ..xml("")
    };
    assert_eq!(
        problems(CALL, &challenge),
        "",
        "the handshake's lints say it"
    );
    let bare = Answer {
        content_type: None,
        ..xml("<Response/>")
    };
    assert!(problems(Expected::TwimlVoice, &bare).contains("no Content-Type"));
    assert_eq!(
        problems(CALL, &bare),
        "",
        "Bandwidth's docs say nothing of it"
    );
}

#[test]
fn wrong_documents_say_where_and_what() {
    assert_eq!(
        problems(
            Expected::TwimlVoice,
            &xml("<Response><say>Hi</say></Response>")
        ),
        "<say> is not a verb (names are case-sensitive: <Say>)"
    );
    assert_eq!(
        problems(CALL, &xml("<Bxml><SpeakSentence>Hi</SpeakSentence></Bxml>")),
        "the root element is <Bxml>, which is for requests to Bandwidth's …/bxml endpoints; a \
         callback's answer is <Response>"
    );
    assert_eq!(
        problems(
            CALL,
            &xml("<Response><PhoneNumber>+1555</PhoneNumber></Response>")
        ),
        "<PhoneNumber> is not a verb (it goes inside <Transfer>)"
    );
    assert_eq!(
        problems(
            CALL,
            &xml("<Response><Gather><Hangup/></Gather></Response>")
        ),
        "<Hangup> cannot go inside <Gather>"
    );
    // Verbs after <Redirect> never run, but the call works: not an error of this lint.
    assert_eq!(
        problems(
            CALL,
            &xml(
                "<Response><Redirect redirectUrl=\"/x\"/><SpeakSentence>x</SpeakSentence></Response>"
            )
        ),
        ""
    );
    assert_eq!(
        problems(
            Expected::Bxml(BxmlEvent::Conference),
            &xml("<Response><Hangup/></Response>")
        ),
        "<Hangup> is not allowed in a conference event's answer (only PlayAudio, SpeakSentence \
         and the recording verbs)"
    );
    assert!(
        problems(
            Expected::Bxml(BxmlEvent::TransferAnswer),
            &xml("<Response><Transfer/></Response>")
        )
        .contains("called party only")
    );
    let unclosed = problems(Expected::TwimlVoice, &xml("<Response><Say>Hi</Response>"));
    assert!(
        unclosed.starts_with("the answer is not well-formed XML:") && unclosed.contains(" at 1:"),
        "{unclosed}"
    );
    let multi = problems(CALL, &xml("<Response>\n  <Gather>\n</Response>"));
    assert!(multi.ends_with(" at 3:1"), "{multi}");
    assert_eq!(
        problems(
            Expected::TwimlVoice,
            &xml("\n<?xml version=\"1.0\"?><Response/>")
        ),
        "the answer is not well-formed XML: the XML declaration is not at the very start at 1:1"
    );
    assert!(
        problems(
            Expected::TwimlVoice,
            &xml("\u{feff}<?xml version=\"1.0\"?><Response/>")
        )
        .is_empty(),
        "a byte-order mark is fine"
    );
    assert!(
        problems(Expected::TwimlVoice, &xml("OK")).contains("text outside the root element"),
        "text/xml that is not XML"
    );
    assert!(problems(CALL, &xml("<Response/><Response/>")).contains("a second root element"));
    assert!(problems(CALL, &xml("<Response>&nbsp;</Response>")).contains("not defined"));
    assert_eq!(
        problems(
            CALL,
            &xml("<Response><SpeakSentence>a &amp; b &#233;</SpeakSentence></Response>")
        ),
        ""
    );
    assert!(problems(CALL, &xml("<Response><Pause length=5/></Response>")).contains("attribute"));
    assert_eq!(
        problems(Expected::TwimlVoice, &xml("<response/>")),
        "the root element is <response>, not <Response>"
    );
    assert_eq!(
        problems(
            Expected::TwimlMessaging,
            &xml("<Response>Thanks</Response>")
        ),
        "<Response> holds text outside any verb"
    );
    assert_eq!(
        problems(
            Expected::TwimlMessaging,
            &xml("<Response><Say>Hi</Say></Response>")
        ),
        "<Say> is not a verb (a voice verb: a reply is <Message>)"
    );
}

#[test]
fn hostile_answers_cost_a_bounded_parse_and_a_bounded_message() {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Response>&b;</Response>"#;
    assert!(problems(CALL, &xml(laughs)).starts_with("the answer is not well-formed XML:"));
    let deep = format!("<Response>{}</Response>", "<Pause/>".repeat(30_000));
    assert!(
        problems(CALL, &xml(&deep)).contains("64 KB"),
        "and not parsed past the node limit"
    );
    assert_eq!(
        problems(Expected::TwimlVoice, &xml(&deep)),
        "",
        "30,000 Pauses"
    );
    // Nesting costs no stack: 330,000 levels on a 64 KiB thread (a recursive parser
    // overflowed its stack, and aborted the tunnel, at a few thousand).
    let nested = format!("<Response>{}", "<a>".repeat(330_000));
    let judged = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || problems(Expected::TwimlVoice, &xml(&nested)))
        .expect("a thread")
        .join()
        .expect("no overflow");
    assert!(judged.contains("never closed"), "{judged}");
    let long = format!("<Response><{0}/></Response>", "X".repeat(5_000));
    let said = problems(CALL, &xml(&long));
    assert!(said.len() < 200, "{said}");
    let many = format!("<Response>{}</Response>", "<Nope/>".repeat(100));
    let said = describe(&check(CALL, &xml(&many)), 3);
    assert!(said.ends_with("; and 97 more"), "{said}");
    let cut = Answer {
        len: 10_000,
        ..xml("<Response><Spea")
    };
    assert_eq!(problems(CALL, &cut), "", "a captured prefix is not judged");
    // The parser quotes what it did not expect, raw.
    let escape = problems(
        CALL,
        &xml("<Response><Say>x</Sa\u{1b}]0;owned\u{7}y></Response>"),
    );
    assert!(
        !escape.chars().any(char::is_control),
        "the parser's words are escaped: {escape:?}"
    );
    let bidi = problems(CALL, &xml("<Response><A\u{200f}B/></Response>"));
    assert!(!bidi.contains('\u{200f}'), "{bidi:?}");
    let ct = Answer {
        content_type: Some(b"application/json\x1b[2J"),
        ..xml("{}")
    };
    assert!(!problems(CALL, &ct).chars().any(char::is_control));
    let binary = Answer {
        body: &[0xff, 0xfe, 0x00],
        len: 3,
        ..xml("")
    };
    assert_eq!(
        problems(CALL, &binary),
        "",
        "another encoding may be declared: not judged"
    );
    // 100,000 attributes on one element: the duplicate check stops at 64.
    let attrs = format!(
        "<Response><Pause {}/></Response>",
        (0..100_000)
            .map(|i| format!("a{i}='1'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let started = std::time::Instant::now();
    assert_eq!(problems(Expected::TwimlVoice, &xml(&attrs)), "", "bounded");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A 500 KB name in the parser's words is cut.
    let long = format!("<Response><{0}></{0}x></Response>", "n".repeat(500_000));
    let said = problems(Expected::TwimlVoice, &xml(&long));
    assert!(
        said.starts_with("the answer is not well-formed XML:") && said.len() < 400,
        "{said}"
    );
}

/// The review's false alarms and missing hints: each answer here is what an app really sends.
#[test]
fn what_providers_accept_is_not_flagged_and_the_other_products_verbs_are_named() {
    let refer = "<Response><Refer><SipUri>sip:a@example.com</SipUri></Refer></Response>";
    assert_eq!(problems(CALL, &xml(refer)), "", "bandwidth-sdk's Refer");
    let redirect = Answer {
        status: 302,
        ..xml("")
    };
    assert_eq!(
        problems(Expected::TwimlVoice, &redirect),
        "",
        "not documented: not judged"
    );
    let xhtml = Answer {
        content_type: Some(b"application/xhtml+xml"),
        ..xml("<Response/>")
    };
    assert_eq!(
        problems(Expected::TwimlVoice, &xhtml),
        "the answer is application/xhtml+xml, not XML"
    );
    assert_eq!(problems(CALL, &xhtml), "", "Bandwidth says nothing of it");
    assert_eq!(
        problems(CALL, &xml("<Response><Say>Hi</Say></Response>")),
        "<Say> is not a verb (that is TwiML: BXML says <SpeakSentence>)"
    );
    assert_eq!(
        problems(
            Expected::TwimlVoice,
            &xml("<Response><SpeakSentence>Hi</SpeakSentence></Response>")
        ),
        "<SpeakSentence> is not a verb (that is BXML: TwiML says <Say>)"
    );
}

/// What the provider then does follows from the first problem, not one sentence for all.
#[test]
fn the_consequence_is_the_one_that_applies() {
    let say = |e: Expected, a: &Answer<'_>| check(e, a).first().and_then(|p| e.otherwise(p));
    let json = Answer {
        content_type: Some(b"application/json"),
        ..xml("{}")
    };
    assert!(say(Expected::TwimlVoice, &json).is_some_and(|s| s.contains("12300")));
    let broken = xml("<Response><Say>");
    assert!(say(Expected::TwimlVoice, &broken).is_some_and(|s| s.contains("12100")));
    let unknown = xml("<Response><say/></Response>");
    assert!(say(Expected::TwimlVoice, &unknown).is_some_and(|s| s.contains("warning 12200")));
    let failed = Answer {
        status: 500,
        ..xml("")
    };
    assert!(
        say(Expected::TwimlMessaging, &failed)
            .is_some_and(|s| s.contains("11200") && s.contains("no reply"))
    );
    let ok = Answer {
        content_type: Some(b"text/plain"),
        ..xml("OK")
    };
    assert_eq!(
        say(Expected::TwimlMessaging, &ok),
        None,
        "the problem says what happens"
    );
    assert!(say(CALL, &failed).is_some_and(|s| s.contains("callback-error")));
    assert!(say(CALL, &json).is_some_and(|s| s.contains("invalid-bxml")));
}
