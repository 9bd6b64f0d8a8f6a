//! The answer itself: its status, its type, and the document against [`super::schema`].

use super::schema::{self, Schema};
use super::{Answer, BxmlEvent, Expected};
use std::fmt;

/// Bandwidth: "The maximum size of a BXML document is 64 KB" (`bxml/about.mdx`).
const BXML_MAX: u64 = 64 * 1024;
/// Larger answers are not parsed (the providers' own limits are far below it).
const PARSE_MAX: usize = 1024 * 1024;
/// Element names are shown this long at most.
const NAME_MAX: usize = 40;
/// The parser's words are shown this long at most (they quote names, which can be long).
const WHY_MAX: usize = 200;
/// Attributes of one element checked at most: the duplicate check is quadratic, and no verb
/// has a tenth as many.
const ATTRS_MAX: usize = 64;

/// One thing wrong with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A status of 400 or more (other than 401).
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
}

/// What an unknown element probably meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The same name in another case (`say` → `Say`).
    Spelled(&'static str),
    /// It goes inside this verb.
    Inside(&'static str),
    /// It is the other provider's verb, or a voice verb in a message's answer: what to use.
    Instead(&'static str),
}

pub(super) fn check(expected: Expected, a: &Answer<'_>) -> Vec<Problem> {
    if a.status == 401 {
        return Vec::new();
    }
    // A redirect may be followed (not documented either way): not judged.
    if a.status >= 400 {
        return vec![Problem::Status(a.status)];
    }
    if !(200..300).contains(&a.status) {
        return Vec::new();
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
    // Twilio names these three; Bandwidth's pages show application/xml and say nothing of
    // the others.
    let xml = matches!(media.as_str(), "text/xml" | "application/xml" | "text/html")
        || (!twilio && media.ends_with("+xml"));
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
    // Another encoding may be declared (ISO-8859-1, UTF-16 with a BOM): not judged.
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let schema: &Schema = match expected {
        Expected::Bxml(_) => &schema::BXML,
        Expected::TwimlVoice => &schema::TWIML_VOICE,
        Expected::TwimlMessaging => &schema::TWIML_MESSAGING,
    };
    let mut walk = Walk {
        expected,
        schema,
        depth: 0,
        verb: None,
        roots: 0,
        stray_text: false,
        problems: Vec::new(),
    };
    if let Err(e) = walk.run(text) {
        problems.push(e);
        return;
    }
    problems.extend(walk.problems);
}

/// One pass over the answer's events (a pull parser: nesting costs no stack, so a hostile
/// answer nested a million deep is just long), judging the root, its verbs and what each verb
/// holds.
struct Walk<'s> {
    expected: Expected,
    schema: &'s Schema,
    /// Elements open now.
    depth: usize,
    /// The verb open at depth 2 and the elements it may hold, when twk checks them.
    verb: Option<(&'static str, Option<&'static [&'static str]>)>,
    /// Root elements seen.
    roots: usize,
    stray_text: bool,
    problems: Vec<Problem>,
}

impl Walk<'_> {
    /// Judges `text`; `Err` is what makes it no document at all.
    fn run(&mut self, text: &str) -> Result<(), Problem> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(text.strip_prefix('\u{feff}').unwrap_or(text));
        let mut first = true;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| not_xml(text, reader.error_position(), &e.to_string()))?;
            let was_first = std::mem::replace(&mut first, false);
            match event {
                // Twilio's 12100 names "a leading space, or an empty line, before the XML
                // type header"; XML itself wants it first.
                Event::Decl(_) if !was_first => {
                    return Err(not_xml(
                        text,
                        0,
                        "the XML declaration is not at the very start",
                    ));
                }
                Event::Start(e) => {
                    self.element(&e, text, &reader)?;
                    self.depth += 1;
                }
                Event::Empty(e) => {
                    self.element(&e, text, &reader)?;
                    if self.depth == 1 {
                        self.verb = None;
                    }
                }
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 1 {
                        self.verb = None;
                    }
                }
                Event::Text(t) if t.trim().is_empty() => {}
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if self.depth == 0 => {
                    return Err(not_xml(
                        text,
                        reader.buffer_position(),
                        "text outside the root element",
                    ));
                }
                Event::Text(_) | Event::CData(_) => self.text(),
                Event::GeneralRef(r) => {
                    let known = matches!(&*r, "amp" | "lt" | "gt" | "quot" | "apos")
                        || r.resolve_char_ref().is_ok_and(|c| c.is_some());
                    if !known {
                        return Err(not_xml(
                            text,
                            reader.buffer_position(),
                            "an entity that is not defined",
                        ));
                    }
                    self.text();
                }
                Event::Eof if self.depth > 0 => {
                    return Err(not_xml(
                        text,
                        text.len() as u64,
                        "an element is never closed",
                    ));
                }
                Event::Eof if self.roots == 0 => {
                    return Err(not_xml(text, 0, "no root element"));
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        Ok(())
    }

    fn text(&mut self) {
        if self.depth == 1 && !self.stray_text {
            self.stray_text = true;
            self.problems.push(Problem::StrayText);
        }
    }

    /// An element opening at the current depth.
    fn element(
        &mut self,
        e: &quick_xml::events::BytesStart<'_>,
        text: &str,
        reader: &quick_xml::Reader<&[u8]>,
    ) -> Result<(), Problem> {
        for a in e.attributes().with_checks(true).take(ATTRS_MAX) {
            a.map_err(|err| not_xml(text, reader.buffer_position(), &err.to_string()))?;
        }
        let name = e.name().as_ref().to_owned();
        match self.depth {
            0 => self.root(&name, text, reader),
            1 => {
                self.top(&name);
                Ok(())
            }
            2 => {
                if let Some((parent, Some(allowed))) = self.verb
                    && !allowed.contains(&name.as_str())
                {
                    self.problems.push(Problem::Misplaced {
                        name: short(&name),
                        parent,
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn root(
        &mut self,
        name: &str,
        text: &str,
        reader: &quick_xml::Reader<&[u8]>,
    ) -> Result<(), Problem> {
        self.roots += 1;
        if self.roots > 1 {
            return Err(not_xml(
                text,
                reader.buffer_position(),
                "a second root element",
            ));
        }
        if name == "Response" {
            return Ok(());
        }
        Err(
            if name == "Bxml" && matches!(self.expected, Expected::Bxml(_)) {
                Problem::BxmlRoot
            } else {
                Problem::Root(short(name))
            },
        )
    }

    /// A verb directly under `<Response>`.
    fn top(&mut self, name: &str) {
        let Some(known) = self.schema.top.iter().find(|k| **k == name) else {
            self.problems.push(unknown(self.schema, name));
            self.verb = None;
            return;
        };
        if let Some(p) = not_for_event(self.expected, known) {
            self.problems.push(p);
        }
        self.verb = Some((known, self.schema.children_of(known)));
    }
}

/// The parser's words, escaped (they quote the byte they did not expect, raw), with the line
/// and column of `at` (a byte offset into `text`).
fn not_xml(text: &str, at: u64, why: &str) -> Problem {
    let at = usize::try_from(at).unwrap_or(usize::MAX).min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let why = crate::util::abbrev(why, WHY_MAX);
    Problem::NotXml(format!(
        "{} at {line}:{col}",
        crate::util::escape_bytes(why.as_bytes())
    ))
}

fn unknown(schema: &Schema, name: &str) -> Problem {
    let hint = schema
        .same_but_case(name)
        .map(Hint::Spelled)
        .or_else(|| schema.home_of(name).map(Hint::Inside))
        .or_else(|| schema.instead_of(name).map(Hint::Instead));
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
    crate::util::escape_bytes(crate::util::abbrev(s, NAME_MAX).as_bytes())
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
                    Some(Hint::Instead(w)) => write!(f, " ({w})"),
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
        }
    }
}
