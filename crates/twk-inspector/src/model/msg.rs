//! Messages in and commands out: what can happen to the inspector ([`Msg`]) and what
//! [`update`](super::update) asks for ([`Cmd`]: a [`Load`] from the store or an [`Intent`] for the host).

use crossterm::event::{KeyEvent, MouseEvent};
use std::time::Duration;
use twk_capture::{ExchangeId, Filter, StoredExchange, Summary};

use super::Counts;

/// Connection state of the tunnel, as the inspector shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    /// Dialing the relay.
    Connecting {
        /// Attempts since the last stable session.
        attempt: u32,
    },
    /// Up.
    Connected {
        /// Tunnel name.
        name: String,
        /// Public URL senders use.
        public_url: String,
    },
    /// Down; next attempt at `retry_at_ms`.
    Reconnecting {
        /// When the next attempt starts (Unix ms).
        retry_at_ms: i64,
        /// Why the last attempt or session ended.
        reason: String,
    },
    /// The agent stopped.
    Stopped,
}

impl Conn {
    /// `Reconnecting` from a delay measured from `now_ms`.
    pub fn reconnecting(now_ms: i64, delay: Duration, reason: impl Into<String>) -> Conn {
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Conn::Reconnecting {
            retry_at_ms: now_ms.saturating_add(delay_ms),
            reason: reason.into(),
        }
    }
}

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    /// The request list.
    #[default]
    List,
    /// The detail pane (tabs).
    Detail,
}

/// What to put on the clipboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyWhat {
    /// The request as a shell-safe curl command that reproduces it exactly (secret headers
    /// included: it goes to the user's own clipboard to be re-sent).
    Curl,
    /// The request body.
    Body,
}

/// Something the host must do: the inspector never touches the network or the terminal
/// outside drawing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Replay exchange `id` to the local target, verbatim or re-signed.
    Replay {
        /// The exchange.
        id: ExchangeId,
        /// Re-sign with the configured secret and a fresh timestamp.
        resign: bool,
    },
    /// Open exchange `id` as an HTTP message in `$EDITOR`, then replay the edit.
    EditAndReplay {
        /// The exchange.
        id: ExchangeId,
    },
    /// Copy through the OSC 52 clipboard.
    Copy {
        /// The exchange.
        id: ExchangeId,
        /// What to copy.
        what: CopyWhat,
    },
    /// Copy the tunnel's public URL through the OSC 52 clipboard.
    CopyUrl {
        /// The URL.
        url: String,
    },
    /// Send the edited copy of `id` the host holds (after [`Msg::EditedStale`]), re-signed
    /// or as is.
    SendEdited {
        /// The exchange that was edited.
        id: ExchangeId,
        /// Re-sign with the configured secret and a fresh timestamp.
        resign: bool,
    },
    /// Forget the edited copy of `id` without sending it.
    DropEdited {
        /// The exchange that was edited.
        id: ExchangeId,
    },
    /// Send `provider`'s `event` webhook, as its sender would, to the tunnel's public `url`.
    Trigger {
        /// Provider id.
        provider: String,
        /// Event name.
        event: String,
        /// The tunnel's public URL.
        url: String,
    },
    /// Deliver the missed requests (kept by the relay while the tunnel was offline) that have
    /// no replay yet to the local target, oldest first, once each.
    DeliverMissed,
    /// Leave the inspector.
    Quit,
}

/// Loader the model asks for; executed against the capture store by [`crate::Loader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// Rows of the filtered list, newest first.
    Rows {
        /// Filter generation (stale answers are ignored).
        generation: u64,
        /// The filter.
        filter: Box<Filter>,
        /// Where the window starts.
        start: Start,
        /// Rows wanted.
        limit: u64,
        /// The number of matching rows when the model already knows it (paging); `None` to
        /// count them (first load, filter change, refresh).
        known_total: Option<u64>,
    },
    /// One exchange in full (with its Basic-auth handshake partner, if any).
    Detail(ExchangeId),
    /// The list row of leg 1 of the handshake whose leg-2 row `row` is being expanded.
    Leg1 {
        /// The leg-2 row being expanded.
        row: ExchangeId,
        /// The leg-1 exchange.
        id: ExchangeId,
    },
    /// Totals for the top bar, of this tunnel (`Some(name)`) or of all.
    Counts(Option<String>),
    /// The highest id stored: one indexed lookup, asked every [`STORE_POLL_MS`] so rows
    /// another process wrote are found without counting everything each time.
    ///
    /// [`STORE_POLL_MS`]: crate::model::STORE_POLL_MS
    Poll,
}

/// Where a row window starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this position (0 = newest).
    Offset(u64),
    /// `before` rows above the position of this exchange (which becomes the selection).
    Around {
        /// The exchange to keep selected.
        id: ExchangeId,
        /// Rows to load above it.
        before: u64,
    },
}

/// What [`update`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Load data from the store.
    Load(Load),
    /// For the host.
    Intent(Intent),
}

/// An edited request whose signature went stale, waiting for the user's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleEdit {
    /// The exchange that was edited.
    pub id: ExchangeId,
    /// The provider whose signature it carries.
    pub provider: String,
    /// A secret for that provider is configured, so it can be re-signed.
    pub can_resign: bool,
}

/// A request being forwarded: the head arrived, the response has not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The relay's request id (matches [`Msg::Finished`]).
    pub request_id: String,
    /// When the relay received it (Unix ms; the stored row has the same value).
    pub received_ms: i64,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The provider, when the head shows it.
    pub provider: Option<String>,
    /// The event, when the head names it (e.g. GitHub's `X-GitHub-Event`).
    pub event: Option<String>,
    /// When it finished (Unix ms), while its stored row has not arrived yet.
    pub done_ms: Option<i64>,
}

/// Severity of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Something failed.
    Error,
}

/// A message in the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Text (sanitized when drawn).
    pub text: String,
    /// Severity.
    pub level: Level,
    /// When it disappears (Unix ms).
    pub until_ms: i64,
}

/// Everything that can happen.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// A mouse event.
    Mouse(MouseEvent),
    /// The terminal was resized to (columns, rows).
    Resize(u16, u16),
    /// Time passes (render interval), with the current Unix ms.
    Tick(i64),
    /// A new exchange was stored.
    Captured(Box<Summary>),
    /// The live subscription lost messages: reload everything.
    Lagged,
    /// Connection state changed.
    Conn(Conn),
    /// Relay round trip measured.
    Rtt(u64),
    /// Recorder health: `Some(message)` when writes fail; and how many were dropped.
    Recorder {
        /// The failure, if writes fail.
        error: Option<String>,
        /// Exchanges dropped so far.
        dropped: u64,
    },
    /// Answer to [`Load::Rows`].
    Rows {
        /// Generation of the request.
        generation: u64,
        /// Position of `rows[0]`.
        start: u64,
        /// Rows matching the filter.
        total: u64,
        /// Position of the anchor of [`Start::Around`], if that was asked.
        anchor: Option<u64>,
        /// The rows.
        rows: Vec<Summary>,
    },
    /// Answer to [`Load::Detail`].
    Detail {
        /// The exchange.
        stored: Box<StoredExchange>,
        /// The other leg of its Basic-auth handshake, when it has one that is still stored.
        partner: Option<Box<StoredExchange>>,
    },
    /// Answer to [`Load::Leg1`]: leg 1's row, `None` when it is no longer stored.
    Leg1 {
        /// The leg-2 row being expanded.
        row: ExchangeId,
        /// Leg 1's row.
        summary: Option<Box<Summary>>,
    },
    /// The exchange is gone (retention) or could not be read.
    DetailMissing(ExchangeId),
    /// Answer to [`Load::Counts`].
    Counts(Counts),
    /// Answer to [`Load::Poll`]: the highest id stored.
    Polled(ExchangeId),
    /// A message for the status line from the host (replay done, copy done, …).
    Notice(String, Level),
    /// The relay could not keep `count` requests that arrived while the tunnel was offline
    /// (`words` says what happened to them); told at the start of a session.
    Unkept {
        /// What happened, in words.
        words: String,
        /// How many.
        count: u64,
    },
    /// The host's edited copy of `id` carries a signature that no longer matches it: ask
    /// whether to re-sign before sending.
    EditedStale(StaleEdit),
    /// A request's head arrived: listed at once, completed when it is stored.
    Started(Box<InFlight>),
    /// The request `request_id` finished (its stored row follows shortly, unless the
    /// recorder dropped it).
    Finished {
        /// The request.
        request_id: String,
    },
}
