//! The answer itself: its status, its type, and the document against [`super::schema`].

use super::schema::{self, Schema};
use super::{Answer, BxmlEvent, Expected};
use std::fmt;

/// Bandwidth: "The maximum size of a BXML document is 64 KB" (`bxml/about.mdx`).
const BXML_MAX: u64 = 64 * 1024;
/// Larger answers are not parsed (the providers' own limits are far below it).
const PARSE_MAX: usize = 1024 * 1024;
/// Elements parsed at most: a hostile or runaway answer costs a bounded tree.
const NODES_MAX: u32 = 20_000;
/// Element names are shown this long at most.
const NAME_MAX: usize = 40;

/// One thing wrong with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A status other than 2xx (and 401).
    Status(u16),
    /// No body where a document is required.
    Empty,
    /// Longer than Bandwidth takes.
    TooLarge(u64),
    /// No `Content-Type` (Twilio error 12300).
    NoContentType,
    /// JSON, or another type that is not a document the provider runs.
    ContentType(String),
    /// `text/plain` to a voice webhook: read aloud.
    PlainSpoken,
    /// `text/plain` to an incoming message: sent back as the reply.
    PlainReplied,
    /// Not UTF-8.
    NotText,
    /// Not well-formed XML; the parser's words, with where.
    NotXml(String),
    /// The root is not `<Response>`.
    Root(String),
    /// The root is `<Bxml>`, which is for requests to Bandwidth.
    BxmlRoot,
    /// Text directly inside `<Response>`.
    StrayText,
    /// An element that is no verb; maybe the name it differs from only in case, or the verb
    /// it goes inside.
    Unknown {
        /// The element's name.
        name: String,
        /// The verb it belongs inside, or the right spelling.
        hint: Option<Hint>,
    },
    /// An element in a verb that cannot hold it.
    Misplaced {
        /// The element's name.
        name: String,
        /// The verb it is in.
        parent: &'static str,
    },
    /// A verb this callback's answer may not hold.
    NotForEvent {
        /// The verb.
        name: &'static str,
        /// Which callback.
        event: BxmlEvent,
    },
    /// Verbs after `<Redirect>`, which never run.
    AfterRedirect(usize),
}

/// What an unknown element probably meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The same name in another case (`say` → `Say`).
    Spelled(&'static str),
    /// It goes inside this verb.
    Inside(&'static str),
}

pub(super) fn check(expected: Expected, a: &Answer<'_>) -> Vec<Problem> {
    if a.status == 401 {
        return Vec::new();
    }
    if !(200..300).contains(&a.status) {
        return vec![Problem::Status(a.status)];
    }
    if a.len == 0 {
        return match expected {
            Expected::Bxml(BxmlEvent::Conference) | Expected::TwimlMessaging => Vec::new(),
            Expected::Bxml(_) | Expected::TwimlVoice => vec![Problem::Empty],
        };
    }
    let mut problems = Vec::new();
    if let Expected::Bxml(_) = expected
        && a.len > BXML_MAX
    {
        problems.push(Problem::TooLarge(a.len));
    }
    if content_type(expected, a.content_type, &mut problems) {
        return problems;
    }
    // A prefix kept by the capture cannot be judged as a document.
    if a.len > a.body.len() as u64 || a.body.len() > PARSE_MAX {
        return problems;
    }
    document(expected, a.body, &mut problems);
    problems
}

/// Judges the type; true when the body is then not worth parsing (not a document).
fn content_type(expected: Expected, ct: Option<&[u8]>, problems: &mut Vec<Problem>) -> bool {
    let twilio = !matches!(expected, Expected::Bxml(_));
    let Some(ct) = ct else {
        if twilio {
            problems.push(Problem::NoContentType);
        }
        return false;
    };
    let media = String::from_utf8_lossy(ct);
    let media = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let xml = matches!(media.as_str(), "text/xml" | "application/xml" | "text/html")
        || media.ends_with("+xml");
    if xml {
        return false;
    }
    if media == "text/plain" && twilio {
        problems.push(match expected {
            Expected::TwimlMessaging => Problem::PlainReplied,
            _ => Problem::PlainSpoken,
        });
        return true;
    }
    if media.starts_with("audio/") && expected == Expected::TwimlVoice {
        return true; // Twilio plays it and hangs up: an answer it can use.
    }
    let json = media == "application/json" || media.ends_with("+json");
    if twilio || json {
        problems.push(Problem::ContentType(short(&media)));
        return true;
    }
    false
}

fn document(expected: Expected, body: &[u8], problems: &mut Vec<Problem>) {
    let Ok(text) = std::str::from_utf8(body) else {
        problems.push(Problem::NotText);
        return;
    };
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_MAX,
    };
    let doc = match roxmltree::Document::parse_with_options(text, opts) {
        Ok(d) => d,
        // More elements than any real answer holds: not judged rather than called broken.
        Err(roxmltree::Error::NodesLimitReached) => return,
        // The parser's words quote the offending character, which may be a control one.
        Err(e) => {
            problems.push(Problem::NotXml(crate::util::escape_bytes(
                e.to_string().as_bytes(),
            )));
            return;
        }
    };
    let root = doc.root_element();
    let name = root.tag_name().name();
    if name != "Response" {
        problems.push(if name == "Bxml" && matches!(expected, Expected::Bxml(_)) {
            Problem::BxmlRoot
        } else {
            Problem::Root(short(name))
        });
        return;
    }
    verbs(expected, root, problems);
}

fn verbs(expected: Expected, root: roxmltree::Node<'_, '_>, problems: &mut Vec<Problem>) {
    let schema: &Schema = match expected {
        Expected::Bxml(_) => &schema::BXML,
        Expected::TwimlVoice => &schema::TWIML_VOICE,
        Expected::TwimlMessaging => &schema::TWIML_MESSAGING,
    };
    if root
        .children()
        .any(|n| n.is_text() && n.text().is_some_and(|t| !t.trim().is_empty()))
    {
        problems.push(Problem::StrayText);
    }
    let mut after_redirect = None::<usize>;
    for verb in root.children().filter(roxmltree::Node::is_element) {
        if let Some(n) = after_redirect.as_mut() {
            *n += 1;
        }
        let name = verb.tag_name().name();
        let Some(known) = schema.top.iter().find(|k| **k == name) else {
            problems.push(unknown(schema, name));
            continue;
        };
        if let Some(p) = not_for_event(expected, known) {
            problems.push(p);
        }
        if *known == "Redirect" && after_redirect.is_none() {
            after_redirect = Some(0);
        }
        let Some(allowed) = schema.children_of(known) else {
            continue;
        };
        for child in verb.children().filter(roxmltree::Node::is_element) {
            let c = child.tag_name().name();
            if !allowed.contains(&c) {
                problems.push(Problem::Misplaced {
                    name: short(c),
                    parent: known,
                });
            }
        }
    }
    if let Some(n) = after_redirect.filter(|n| *n > 0) {
        problems.push(Problem::AfterRedirect(n));
    }
}

fn unknown(schema: &Schema, name: &str) -> Problem {
    let hint = schema
        .same_but_case(name)
        .map(Hint::Spelled)
        .or_else(|| schema.home_of(name).map(Hint::Inside));
    Problem::Unknown {
        name: short(name),
        hint,
    }
}

fn not_for_event(expected: Expected, verb: &'static str) -> Option<Problem> {
    let Expected::Bxml(event) = expected else {
        return None;
    };
    let refused = match event {
        BxmlEvent::Call => false,
        BxmlEvent::Conference => !schema::BXML_CONFERENCE.contains(&verb),
        BxmlEvent::TransferAnswer => schema::BXML_NOT_ON_TRANSFER_ANSWER.contains(&verb),
    };
    refused.then_some(Problem::NotForEvent { name: verb, event })
}

/// At most [`NAME_MAX`] characters of a name or type from the answer, escaped: XML names
/// admit invisible characters, and a media type is whatever the app sent.
fn short(s: &str) -> String {
    let cut = match s.char_indices().nth(NAME_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    };
    crate::util::escape_bytes(cut.as_bytes())
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Status(s) => write!(f, "the app answered {s}, not a document"),
            Problem::Empty => write!(
                f,
                "the answer is empty (answer <Response/> to end the call, or the verbs to run)"
            ),
            Problem::TooLarge(n) => write!(
                f,
                "the answer is {n} bytes; Bandwidth takes BXML documents of 64 KB at most"
            ),
            Problem::NoContentType => write!(
                f,
                "the answer has no Content-Type (Twilio wants text/xml or application/xml)"
            ),
            Problem::ContentType(t) => write!(f, "the answer is {t}, not XML"),
            Problem::PlainSpoken => write!(
                f,
                "the answer is text/plain: Twilio reads it aloud to the caller and hangs up"
            ),
            Problem::PlainReplied => write!(
                f,
                "the answer is text/plain: Twilio sends it back to the sender as an SMS reply \
                 (answer <Response/> with text/xml for no reply)"
            ),
            Problem::NotText => write!(f, "the answer is not UTF-8 text"),
            Problem::NotXml(e) => write!(f, "the answer is not well-formed XML: {e}"),
            Problem::Root(r) => write!(f, "the root element is <{r}>, not <Response>"),
            Problem::BxmlRoot => write!(
                f,
                "the root element is <Bxml>, which is for requests to Bandwidth's …/bxml \
                 endpoints; a callback's answer is <Response>"
            ),
            Problem::StrayText => write!(f, "<Response> holds text outside any verb"),
            Problem::Unknown { name, hint } => {
                write!(f, "<{name}> is not a verb")?;
                match hint {
                    Some(Hint::Spelled(k)) => write!(f, " (names are case-sensitive: <{k}>)"),
                    Some(Hint::Inside(p)) => write!(f, " (it goes inside <{p}>)"),
                    None => Ok(()),
                }
            }
            Problem::Misplaced { name, parent } => {
                write!(f, "<{name}> cannot go inside <{parent}>")
            }
            Problem::NotForEvent { name, event } => match event {
                BxmlEvent::Conference => write!(
                    f,
                    "<{name}> is not allowed in a conference event's answer (only PlayAudio, \
                     SpeakSentence and the recording verbs)"
                ),
                _ => write!(
                    f,
                    "<{name}> is not allowed in transferAnswer's answer, which runs for the \
                     called party only"
                ),
            },
            Problem::AfterRedirect(n) => write!(
                f,
                "{n} verb{} after <Redirect> never run{}",
                if *n == 1 { "" } else { "s" },
                if *n == 1 { "s" } else { "" }
            ),
        }
    }
}
