//! Plain and NDJSON output of the tunnel (used with --no-tui or when stdout is not a terminal).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use twk_agent::{ConnState, Observer};
use twk_capture::{Exchange, Severity};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Human lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// What the output thread is asked to do.
enum Out {
    Line(String),
    /// An exchange line to print once the store has given the exchange its id.
    Stored(Prepared, twk_capture::PendingId),
    /// Write everything queued so far, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

impl Out {
    /// What this message costs the queue's budget: a line's text and its place in the queue,
    /// so that many short lines are bounded as well as a few long ones. A flush is not counted
    /// (it is sent once, at exit, and must not be dropped).
    fn bytes(&self) -> usize {
        match self {
            Out::Line(line) | Out::Stored(Prepared::Plain(line) | Prepared::Json(line), _) => {
                line.len() + SLOT_BYTES
            }
            Out::Flush(_) => 0,
        }
    }
}

/// An exchange line rendered ahead of its store id.
pub enum Prepared {
    /// A human line.
    Plain(String),
    /// The NDJSON object without its leading `event` and `id` (`{"time":…}`), serialized
    /// already: a queued line is one compact string, not a tree of maps (at c1000 the queue
    /// of `serde_json::Value`s waiting for their ids took ~16 MiB).
    Json(String),
}

/// Bytes waiting for a slow stdout (or for the store's ids) before new lines are dropped
/// (and counted): what the output may add to the tunnel's memory. Each line counts its text
/// and [`SLOT_BYTES`].
///
/// The queue itself is unbounded and grows in small blocks as lines arrive: a bounded
/// channel of 65,536 lines allocated and initialized all of its slots up front, 3.5 MiB of
/// an idle tunnel's 18 MiB.
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// What a queued line costs besides its text (its slot in the channel and the pending store
/// id): bounds the queue to ~130,000 short lines.
const SLOT_BYTES: usize = 64;

/// How long the output thread lets lines gather after a write (at most ~1000 writes a second).
const COALESCE: std::time::Duration = std::time::Duration::from_millis(1);

/// Most bytes gathered from the queue into one write.
const BATCH_BYTES: usize = 64 * 1024;

/// The output thread: writes each line as it comes, and under load everything already queued
/// in one write and one flush (a line per syscall and wake-up costs more than forwarding).
fn write_lines(
    rx: std::sync::mpsc::Receiver<Out>,
    next_id: Arc<AtomicU64>,
    queued: Arc<AtomicUsize>,
) {
    let stdout = std::io::stdout();
    let mut batch = String::with_capacity(BATCH_BYTES);
    let emit = |batch: &mut String| {
        if batch.is_empty() {
            return;
        }
        let mut out = stdout.lock();
        // A closed stdout (e.g. `| head`) must not stop forwarding.
        let _ = out.write_all(batch.as_bytes());
        let _ = out.flush();
        batch.clear();
    };
    while let Ok(first) = rx.recv() {
        let mut msg = Some(first);
        while let Some(m) = msg {
            queued.fetch_sub(m.bytes(), Ordering::Relaxed);
            match m {
                Out::Line(line) => {
                    batch.push_str(&line);
                    batch.push('\n');
                }
                Out::Stored(line, pending) => {
                    // In record order: the writer hands out ids in the same order.
                    batch.push_str(&render(line, pending.blocking_id(), &next_id));
                    batch.push('\n');
                }
                Out::Flush(done) => {
                    emit(&mut batch);
                    let _ = done.send(());
                }
            }
            msg = if batch.len() < BATCH_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        emit(&mut batch);
        // Under load, let lines gather for a moment instead of blocking in `recv` again:
        // a blocked receiver costs every sender a futex wake-up and this thread a context
        // switch per line. An idle tunnel's line still goes out at once (the wait comes after).
        std::thread::sleep(COALESCE);
    }
}

/// Prints connection states and exchanges, flushing each line. Writing happens on a dedicated
/// thread: a stdout nobody reads must never slow or block forwarding.
pub struct Printer {
    mode: OutputMode,
    target: String,
    ready: AtomicBool,
    /// Local sequence numbers for lines of exchanges the store did not take.
    next_id: Arc<AtomicU64>,
    tx: Sender<Out>,
    /// Bytes in the queue (see [`QUEUE_BYTES`]).
    queued: Arc<AtomicUsize>,
    dropped: AtomicU64,
}

impl Printer {
    /// A printer for `target`.
    pub fn new(mode: OutputMode, target: String) -> Self {
        let (tx, rx) = channel::<Out>();
        let next_id = Arc::new(AtomicU64::new(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let (thread_ids, thread_queued) = (next_id.clone(), queued.clone());
        std::thread::Builder::new()
            .name("twk-output".into())
            .spawn(move || write_lines(rx, thread_ids, thread_queued))
            .ok();
        Printer {
            mode,
            target,
            ready: AtomicBool::new(false),
            next_id,
            tx,
            queued,
            dropped: AtomicU64::new(0),
        }
    }

    fn line(&self, s: String) {
        self.send(Out::Line(s));
    }

    fn send(&self, out: Out) {
        let bytes = out.bytes();
        if self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes > QUEUE_BYTES {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            return self.count_dropped();
        }
        if self.tx.send(out).is_err() {
            // The output thread is gone (it could not start): nothing to print to.
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    fn count_dropped(&self) {
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            say!(
                "twk: stdout is not keeping up; output lines are being dropped (forwarding goes on)"
            );
        }
    }

    /// Renders the line for an exchange now, so the exchange itself (with its bodies) can move
    /// on to the store; the id is filled in by [`Printer::emit`] once the store assigned it.
    pub fn prepare(&self, ex: &Exchange) -> Prepared {
        match self.mode {
            OutputMode::Plain => Prepared::Plain(plain_line(ex)),
            OutputMode::Json => Prepared::Json(json_rest(ex)),
        }
    }

    /// Writes a prepared exchange line with its store id (a local sequence number when the
    /// exchange was not stored).
    pub fn emit(&self, line: Prepared, id: Option<i64>) {
        self.line(render(line, id, &self.next_id));
    }

    /// Prints a prepared exchange line once the store has assigned its id, in record order,
    /// without a task or a wake-up of the caller's runtime per line: the output thread waits
    /// for the id itself.
    pub fn emit_stored(&self, line: Prepared, pending: twk_capture::PendingId) {
        self.send(Out::Stored(line, pending));
    }

    /// Waits (up to 2 s) until every queued line is written; called before exiting.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Out::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// A prepared line with its id (a local sequence number from `next_id` when there is none).
fn render(line: Prepared, id: Option<i64>, next_id: &AtomicU64) -> String {
    match line {
        Prepared::Plain(text) => text,
        Prepared::Json(rest) => {
            let id = id.unwrap_or_else(|| next_id.fetch_add(1, Ordering::Relaxed) as i64);
            let fields = rest.strip_prefix('{').unwrap_or(&rest);
            // Joined, not `format!`ted: the formatter's machinery cost each line ~0.9k
            // instructions (docs/performance.md, twenty-eighth round).
            let mut digits = itoa::Buffer::new();
            [
                r#"{"event":"exchange","id":"#,
                digits.format(id),
                ",",
                fields,
            ]
            .concat()
        }
    }
}

/// The provider's id of the event (`evt_…`, a delivery id), from the stored analysis.
fn event_id(ex: &Exchange) -> Option<&str> {
    ex.analysis.as_ref()?.event_id().filter(|s| !s.is_empty())
}

/// One line per exchange, written when it is complete (the verdict needs the whole body, so
/// there is nothing to say about the webhook earlier): what came in (`-->` provider, event,
/// `[id]`, the verdict as a mark and a word, the first lint), then what went back (`<--`
/// status, time), e.g.
/// `12:00:01  --> stripe payment_intent.succeeded [evt_1] ✓ valid  POST /hooks  <-- 200 8 ms`.
/// An error lint adds an indented line with its code and why (`⚠ invalid-twiml: …`).
/// Every piece the sender controls goes through the sanitizer.
fn plain_line(ex: &Exchange) -> String {
    let mut incoming = Vec::new();
    if let Some(p) = &ex.provider {
        incoming.push(twk_sanitize::clean_line(p, 32));
    }
    if let Some(e) = &ex.event {
        incoming.push(twk_sanitize::clean_line(e, 64));
    }
    if let Some(id) = event_id(ex) {
        incoming.push(format!("[{}]", twk_sanitize::clean_line(id, 64)));
    }
    if let Some(v) = ex.verdict {
        incoming.push(format!("{} {}", v.mark(), v.label()));
        if ex.matched_secret == Some(twk_providers::SecretSource::TwkTest) {
            incoming.push("(twk test secret)".to_owned());
        }
    }
    let lints = twk_capture::lints_of(ex);
    if let Some(first) = lints.first() {
        let more = match lints.len() {
            1 => String::new(),
            n => format!(" +{}", n - 1),
        };
        incoming.push(format!(
            "{} {}{more}",
            first.severity.mark(),
            first.code.label()
        ));
    }
    incoming.push(format!(
        "{} {}",
        twk_sanitize::clean(&ex.method),
        twk_sanitize::clean(&ex.path)
    ));
    let status = ex
        .status
        .map_or_else(|| "---".to_owned(), |s| s.to_string());
    let mut line = format!(
        "{}  --> {}  <-- {status} {} ms",
        clock(ex.timings.received_ms),
        incoming.join(" "),
        ex.duration_ms().unwrap_or(0)
    );
    if let Some(f) = &ex.failure {
        line.push_str(&format!("  ({})", twk_sanitize::clean(&f.message)));
    }
    // An error lint means the callback is lost or the call fails: say why right under it,
    // not only as a label (the message is cut; `log ID` and the inspector have it all).
    if let Some(err) = lints.iter().find(|l| l.severity == Severity::Error) {
        line.push_str(&format!(
            "\n          {} {}: {}",
            err.severity.mark(),
            err.code.as_str(),
            twk_sanitize::clean_line(&err.message, LINT_MESSAGE_CHARS)
        ));
    }
    line
}

/// Where an error lint's message under a `--no-tui` line is cut.
const LINT_MESSAGE_CHARS: usize = 400;

/// The NDJSON object of an exchange after its leading `"event":"exchange"` and `id`. The
/// first fields are the stable contract; `event_id`, `summary`, `lints`
/// (`[{"code", "severity", "message"}]`, the exchange's own lints, as in `log --json`) and
/// `secret` (which secret a valid or stale signature held with: `configured`, `twk-test`,
/// else null) and `refused` (the relay answered it itself and never forwarded it) came later.
/// The event's name is `event_name`: `event` names the line.
#[derive(serde::Serialize)]
struct JsonRest<'a> {
    time: Option<String>,
    method: &'a str,
    path: &'a str,
    url: &'a str,
    status: Option<u16>,
    duration_ms: i64,
    request_id: &'a str,
    provider: Option<&'a str>,
    event_name: Option<&'a str>,
    verdict: Option<twk_providers::Verdict>,
    failure: Option<&'a twk_capture::Failure>,
    event_id: Option<&'a str>,
    summary: Option<&'a str>,
    lints: Vec<JsonLint<'a>>,
    secret: Option<twk_providers::SecretSource>,
    refused: bool,
}

#[derive(serde::Serialize)]
struct JsonLint<'a> {
    code: &'static str,
    severity: &'static str,
    message: &'a str,
}

/// Serializes [`JsonRest`] straight from the exchange (through the sanitizing formatter),
/// without building a `serde_json::Value` first.
fn json_rest(ex: &Exchange) -> String {
    let lints = twk_capture::lints_of(ex);
    let rest = JsonRest {
        // Always milliseconds, as `log --json`: `…25.730Z`, never `…25.73Z`.
        time: jiff::Timestamp::from_millisecond(ex.timings.received_ms)
            .ok()
            .map(|t| format!("{t:.3}")),
        method: &ex.method,
        path: &ex.path,
        url: &ex.public_url,
        status: ex.status,
        duration_ms: ex.duration_ms().unwrap_or(0),
        request_id: &ex.request_id,
        provider: ex.provider.as_deref(),
        event_name: ex.event.as_deref(),
        verdict: ex.verdict,
        failure: ex.failure.as_ref(),
        event_id: event_id(ex),
        summary: ex.summary.as_deref(),
        lints: lints
            .iter()
            .map(|l| JsonLint {
                code: l.code.as_str(),
                severity: l.severity.as_str(),
                message: &l.message,
            })
            .collect(),
        secret: ex.matched_secret,
        refused: ex.refused,
    };
    twk_sanitize::json_string(&rest).unwrap_or_else(|_| "{}".to_owned())
}

/// Renders a time (Unix ms) as local-agnostic UTC `HH:MM:SS`.
fn clock(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_else(|_| "--:--:--".into())
}

impl Observer for Printer {
    fn connection(&self, state: &ConnState) {
        let first = matches!(state, ConnState::Connected { .. })
            && !self.ready.swap(true, Ordering::SeqCst);
        match self.mode {
            OutputMode::Plain => match state {
                ConnState::Connected { public_url, .. } if first => {
                    self.line(format!("Forwarding {public_url} -> {}", self.target));
                }
                ConnState::Connected { public_url, .. } => {
                    say!("twk: reconnected: {public_url}");
                }
                ConnState::Reconnecting { delay, reason } => {
                    say!(
                        "twk: {}; reconnecting in {:.1} s",
                        twk_sanitize::clean(reason),
                        delay.as_secs_f64()
                    );
                }
                ConnState::Connecting { .. } | ConnState::Stopped => {}
            },
            OutputMode::Json => {
                let v = match state {
                    ConnState::Connected { name, public_url } if first => serde_json::json!({
                        "event": "ready",
                        "public_url": public_url,
                        "target": self.target,
                        "name": name,
                    }),
                    _ if !self.ready.load(Ordering::SeqCst) => {
                        if let ConnState::Reconnecting { reason, .. } = state {
                            say!("twk: {}", twk_sanitize::clean(reason));
                        }
                        return;
                    }
                    ConnState::Connected { name, public_url } => serde_json::json!({
                        "event": "connection", "state": "connected",
                        "public_url": public_url, "name": name,
                    }),
                    ConnState::Reconnecting { delay, reason } => serde_json::json!({
                        "event": "connection", "state": "reconnecting",
                        "retry_in_ms": delay.as_millis() as u64, "reason": reason,
                    }),
                    other => serde_json::json!({"event": "connection", "state": other.label()}),
                };
                self.line(twk_sanitize::json_string(&v).unwrap_or_default());
            }
        }
    }

    fn exchange(&self, ex: Exchange) {
        let id = ex.id;
        self.emit(self.prepare(&ex), id);
    }

    fn refused_unlisted(&self, count: u64) {
        match self.mode {
            OutputMode::Plain => say!("twk: {}", unlisted_words(count)),
            OutputMode::Json => {
                let v = serde_json::json!({"event": "refused_unlisted", "count": count});
                self.line(twk_sanitize::json_string(&v).unwrap_or_default());
            }
        }
    }

    fn unkept(&self, u: &twk_protocol::refused::Unkept) {
        match self.mode {
            OutputMode::Plain => say!("twk: {}", unkept_words(u)),
            OutputMode::Json => {
                let at = twk_capture::time::rfc3339_ms;
                let v = serde_json::json!({
                    "event": "unkept",
                    "not_kept": u.not_kept,
                    "too_large": u.too_large,
                    "dropped": u.dropped,
                    "first": at(u.first_ms),
                    "last": at(u.last_ms),
                });
                self.line(twk_sanitize::json_string(&v).unwrap_or_default());
            }
        }
    }
}

/// Refused requests the relay only counted, in words (the plain line and the inspector's
/// notice).
pub fn unlisted_words(count: u64) -> String {
    let what = if count == 1 { "request" } else { "requests" };
    format!(
        "the relay refused {count} more {what} for this tunnel without listing them (it lists \
         16 a second at most, a sender once a second, and once a minute without a signature \
         header)"
    )
}

/// What the relay could not keep while the tunnel was offline, in words (the plain line and
/// the inspector's notice).
pub fn unkept_words(u: &twk_protocol::refused::Unkept) -> String {
    let n = |count: u64, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    let mut parts = Vec::new();
    if u.not_kept > 0 {
        parts.push(format!(
            "answered {} 503 without keeping {} (the senders were told to retry)",
            n(u.not_kept, "request", "requests"),
            if u.not_kept == 1 { "it" } else { "them" },
        ));
    }
    if u.too_large > 0 {
        parts.push(format!(
            "refused {} with 413, the body over its cap (not retried)",
            n(u.too_large, "request", "requests"),
        ));
    }
    if u.dropped > 0 {
        parts.push(format!(
            "dropped {} for newer ones (--keep-max, --keep-bytes)",
            n(u.dropped, "kept request", "kept requests"),
        ));
    }
    format!(
        "while this tunnel was offline ({}–{} UTC) the relay {}; these are not in the log",
        clock(u.first_ms),
        clock(u.last_ms),
        parts.join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use twk_capture::{Message, Timings};

    fn bare_401() -> Exchange {
        Exchange {
            method: "POST".into(),
            path: "/cb\u{1b}[2J".into(),
            status: Some(401),
            response: Some(Message::default()),
            provider: Some("bandwidth".into()),
            event: Some("message-delivered\u{202e}".into()),
            verdict: Some(twk_providers::Verdict::NoSecret),
            analysis: twk_capture::AnalysisJson::from_value(
                &serde_json::json!({"event": {"id": "m-1\u{9b}31m"}}),
            ),
            timings: Timings {
                received_ms: 0,
                done_ms: Some(8),
                ..Timings::default()
            },
            ..Exchange::default()
        }
    }

    #[test]
    fn plain_line_names_the_webhook_and_is_sanitized() {
        let line = plain_line(&bare_401());
        assert!(
            line.starts_with("00:00:00  --> bandwidth message-delivered"),
            "{line}"
        );
        assert!(line.contains(" [m-1"), "{line}");
        assert!(line.contains("? no secret ⚠ bare 401 POST /cb"), "{line}");
        let (first, why) = line.split_once('\n').expect("the error lint's line");
        assert!(first.ends_with("<-- 401 8 ms"), "{line}");
        assert!(
            why.starts_with("          ⚠ 401-without-www-authenticate: "),
            "{line}"
        );
        assert!(why.contains("WWW-Authenticate"), "{line}");
        assert!(
            !line
                .lines()
                .flat_map(str::chars)
                .any(twk_sanitize::is_unsafe),
            "unsafe character reached the line: {line:?}"
        );
        let plain = Exchange {
            method: "GET".into(),
            path: "/x".into(),
            ..Exchange::default()
        };
        assert_eq!(plain_line(&plain), "00:00:00  --> GET /x  <-- --- 0 ms");
    }

    #[test]
    fn json_object_keeps_its_fields_and_adds_the_webhook() {
        let line = render(
            Prepared::Json(json_rest(&bare_401())),
            Some(7),
            &AtomicU64::new(1),
        );
        assert!(
            line.starts_with(r#"{"event":"exchange","id":7,"time":"#),
            "{line}"
        );
        assert!(
            !line.chars().any(twk_sanitize::is_unsafe),
            "unsafe character reached the line: {line:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        for stable in [
            "event",
            "id",
            "time",
            "method",
            "path",
            "url",
            "status",
            "duration_ms",
            "request_id",
            "provider",
            "event_name",
            "verdict",
            "failure",
        ] {
            assert!(v.get(stable).is_some(), "{stable} missing: {v}");
        }
        assert_eq!(v["event"], "exchange");
        assert_eq!(v["id"], 7);
        // Milliseconds always, as `log --json` writes them.
        let mut at = bare_401();
        at.timings.received_ms = 1_700_000_000_730;
        let at: serde_json::Value = serde_json::from_str(&json_rest(&at)).expect("JSON");
        assert_eq!(at["time"], "2023-11-14T22:13:20.730Z");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["verdict"], "no_secret");
        assert_eq!(v["event_id"], "m-1\u{9b}31m");
        assert_eq!(v["lints"][0]["code"], "401-without-www-authenticate");
        assert_eq!(v["lints"][0]["severity"], "error");
        assert_eq!(v["secret"], serde_json::Value::Null);
    }

    #[test]
    fn what_the_relay_could_not_keep_is_said_in_words() {
        let u = twk_protocol::refused::Unkept {
            not_kept: 1,
            too_large: 2,
            dropped: 40,
            first_ms: 1_700_000_000_000,
            last_ms: 1_700_000_060_000,
        };
        let words = unkept_words(&u);
        assert!(
            words.contains("(22:13:20–22:14:20 UTC)")
                && words.contains(
                    "answered 1 request 503 without keeping it (the senders were told to retry); \
                     refused 2 requests with 413, the body over its cap (not retried); dropped 40 \
                     kept requests for newer ones"
                ),
            "{words}"
        );
        let only_dropped = twk_protocol::refused::Unkept { not_kept: 0, ..u };
        assert!(!unkept_words(&only_dropped).contains("answered"));
    }

    #[test]
    fn a_webhook_valid_with_twks_test_secret_says_so() {
        let ex = Exchange {
            method: "POST".into(),
            path: "/hooks".into(),
            status: Some(200),
            provider: Some("stripe".into()),
            event: Some("payment_intent.succeeded".into()),
            verdict: Some(twk_providers::Verdict::Valid),
            matched_secret: Some(twk_providers::SecretSource::TwkTest),
            ..Exchange::default()
        };
        let line = plain_line(&ex);
        assert!(
            line.contains("payment_intent.succeeded ✓ valid (twk test secret) POST /hooks"),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&render(
            Prepared::Json(json_rest(&ex)),
            Some(1),
            &AtomicU64::new(1),
        ))
        .expect("one JSON object");
        assert_eq!(
            (&v["verdict"], &v["secret"]),
            (&"valid".into(), &"twk-test".into())
        );
        let configured = Exchange {
            matched_secret: Some(twk_providers::SecretSource::Configured),
            ..ex
        };
        assert!(!plain_line(&configured).contains("test secret"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json_rest(&configured)).expect("json")["secret"],
            "configured"
        );
    }

    #[test]
    fn a_line_past_the_byte_budget_is_dropped_and_counted() {
        let printer = Printer::new(OutputMode::Plain, "t".into());
        printer.line("x".repeat(QUEUE_BYTES + 1));
        assert_eq!(printer.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(
            printer.queued.load(Ordering::Relaxed),
            0,
            "nothing stays counted"
        );
    }

    #[test]
    fn short_lines_are_bounded_by_their_slots() {
        // A stdout nobody reads: the output thread never takes a line off the queue.
        let (tx, _rx) = channel::<Out>();
        let printer = Printer {
            mode: OutputMode::Plain,
            target: "t".into(),
            ready: AtomicBool::new(false),
            next_id: Arc::new(AtomicU64::new(1)),
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            dropped: AtomicU64::new(0),
        };
        let fits = QUEUE_BYTES / (SLOT_BYTES + 1);
        for _ in 0..fits + 1000 {
            printer.line("x".to_owned());
        }
        assert_eq!(printer.dropped.load(Ordering::Relaxed), 1000);
        assert_eq!(
            printer.queued.load(Ordering::Relaxed),
            fits * (SLOT_BYTES + 1)
        );
    }
}
