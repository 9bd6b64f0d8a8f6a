//! The Elm Architecture core: one [`Model`], one [`Msg`] enum, and [`update`], which changes the
//! model and returns [`Cmd`]s (data to load from the store, or [`Intent`]s for the host) but
//! never performs I/O itself.
//!
//! Files: [`msg`] (messages, commands, intents), [`list`] (the row window and the selection),
//! [`keys`] (keyboard and mouse), [`update`](mod@update) (the dispatcher).

mod keys;
mod list;
mod msg;
mod update;

pub use list::{Counts, Expanded, List};
pub use msg::{
    Cmd, Conn, CopyWhat, Focus, InFlight, Intent, Level, Load, Msg, Notice, StaleEdit, Start,
};
pub use update::update;

use crate::detail::{Detail, Tab};
use crate::layout;
use jiff::tz::TimeZone;
use twk_capture::{ExchangeId, Filter};

/// How long a notice stays in the status line.
pub const NOTICE_MS: i64 = 6_000;
/// Longest filter text.
pub const MAX_FILTER_CHARS: usize = 256;
/// Most rows kept in the list window (a few screens around the viewport).
pub const MAX_WINDOW_ROWS: usize = 600;
/// Most in-flight requests tracked (a flood shows the newest; each row is transient).
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a finished request keeps its in-flight row when its stored row does not come
/// (the recorder dropped it, or it is filtered out).
pub const FINISHED_LINGER_MS: i64 = 1_500;
/// How often the store is asked for rows another process wrote, ms.
pub const STORE_POLL_MS: i64 = 1_000;
/// An in-flight row older than this is dropped (its end was never heard of).
pub const FLIGHT_MAX_MS: i64 = 600_000;

/// Everything the inspector shows.
#[derive(Debug, Clone)]
pub struct Model {
    /// Current time (Unix ms), advanced by [`Msg::Tick`].
    pub now_ms: i64,
    /// Time zone for clock columns.
    pub tz: TimeZone,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Tunnel connection.
    pub conn: Conn,
    /// Local target URL.
    pub target: String,
    /// The relay is the embedded loopback one: no provider can reach the public URL.
    pub embedded: bool,
    /// Relay round trip, when known.
    pub rtt_ms: Option<u64>,
    /// Recorder problem (writes failing), if any.
    pub recorder_error: Option<String>,
    /// Exchanges dropped by the recorder.
    pub dropped: u64,
    /// Totals.
    pub counts: Counts,
    /// Active filter and its text.
    pub filter: Filter,
    /// The text the active filter was parsed from.
    pub filter_text: String,
    /// Bumped on every filter change.
    pub generation: u64,
    /// Filter being typed (`/` mode).
    pub input: Option<String>,
    /// Why the prompt's filter was refused (shown in the prompt line until the next key).
    pub input_error: Option<String>,
    /// The prompt holds the active filter as opened: the first character typed replaces it
    /// and Backspace clears it (as a selected text field does).
    pub input_fresh: bool,
    /// This tunnel's name, once connected: the list and counts show its history only,
    /// unless `all_tunnels` or a `tunnel:` filter term says otherwise.
    pub tunnel: Option<String>,
    /// Every tunnel's history is listed (`a`).
    pub all_tunnels: bool,
    /// The list.
    pub list: List,
    /// Requests being forwarded, newest first, drawn above the list.
    pub in_flight: Vec<InFlight>,
    /// Keyboard focus.
    pub focus: Focus,
    /// Selected detail tab.
    pub tab: Tab,
    /// First visible line of the detail tab.
    pub detail_scroll: usize,
    /// Show secret header values.
    pub reveal: bool,
    /// The loaded detail.
    pub detail: Option<Box<Detail>>,
    /// Detail wanted but not loaded yet (loaded on the next tick when following).
    pub detail_wanted: Option<ExchangeId>,
    /// An edited request waiting for "re-sign or send as is".
    pub stale_edit: Option<StaleEdit>,
    /// Events the host can trigger into the tunnel (`t`); empty: the key says it cannot.
    pub triggers: Vec<crate::picker::TriggerChoice>,
    /// Missed requests (kept by the relay while offline) handed over since the tunnel last
    /// connected: the notice says how many.
    pub missed_since_connect: u64,
    /// Requests the relay could not keep while the tunnel was offline, told at this session's
    /// start ([`Msg::Unkept`]).
    pub unkept_since_connect: u64,
    /// The trigger picker, while open.
    pub picker: Option<crate::picker::Picker>,
    /// Help overlay shown.
    pub help: bool,
    /// First line of the help overlay shown (it scrolls on short screens).
    pub help_scroll: usize,
    /// Status line message.
    pub notice: Option<Notice>,
    /// When the store was last asked whether another process wrote rows (a `replay` in
    /// another terminal, a second tunnel): the list shows them within a second.
    pub polled_ms: i64,
    /// False once the user quit.
    pub running: bool,
}

impl Model {
    /// A fresh model for `target` at time `now_ms`, terminal `size`, clock zone `tz`.
    pub fn new(target: impl Into<String>, now_ms: i64, size: (u16, u16), tz: TimeZone) -> Model {
        Model {
            now_ms,
            tz,
            size,
            conn: Conn::Connecting { attempt: 0 },
            target: target.into(),
            embedded: false,
            rtt_ms: None,
            recorder_error: None,
            dropped: 0,
            counts: Counts::default(),
            filter: Filter {
                collapse_handshakes: true,
                ..Filter::default()
            },
            filter_text: String::new(),
            generation: 0,
            input: None,
            input_error: None,
            input_fresh: false,
            list: List {
                follow: true,
                ..List::default()
            },
            in_flight: Vec::new(),
            tunnel: None,
            all_tunnels: false,
            focus: Focus::List,
            tab: Tab::Request,
            detail_scroll: 0,
            reveal: false,
            detail: None,
            detail_wanted: None,
            stale_edit: None,
            triggers: Vec::new(),
            missed_since_connect: 0,
            unkept_since_connect: 0,
            picker: None,
            help: false,
            help_scroll: 0,
            notice: None,
            polled_ms: now_ms,
            running: true,
        }
    }

    /// The commands that load the initial state (rows, counts).
    pub fn init(&mut self) -> Vec<Cmd> {
        self.list.loading = true;
        vec![
            Cmd::Load(Load::Counts(self.scope())),
            Cmd::Load(self.rows_at(Start::Offset(0))),
        ]
    }

    /// The tunnel the list is scoped to (`None`: every tunnel).
    pub fn scope(&self) -> Option<String> {
        match self.filter.name.as_deref() {
            Some(crate::filter::ALL_TUNNELS) => None,
            Some(name) => Some(name.to_owned()),
            None if self.all_tunnels => None,
            None => self.tunnel.clone(),
        }
    }

    /// The filter as the store is asked: the typed one, scoped to [`Model::scope`].
    pub fn store_filter(&self) -> Filter {
        Filter {
            name: self.scope(),
            ..self.filter.clone()
        }
    }

    /// Visible list rows (stored exchanges) for the current size and focus: what the
    /// in-flight lines above them leave.
    pub fn list_rows(&self) -> u64 {
        let all = self.areas().list_rows();
        u64::from(all - self.in_flight_lines(all))
    }

    /// In-flight lines drawn above the list when it has `rows` lines: at most half of them.
    pub fn in_flight_lines(&self, rows: u16) -> u16 {
        let n = u16::try_from(self.in_flight.len()).unwrap_or(u16::MAX);
        n.min(rows / 2)
    }

    /// Visible detail lines for the current size and focus.
    pub fn detail_rows(&self) -> usize {
        usize::from(self.areas().detail_rows())
    }

    /// The detail pane's width for the current size (its prose is wrapped to fit).
    pub fn detail_width(&self) -> u16 {
        self.areas().detail.width
    }

    /// The screen regions for the current size, focus and top bar.
    pub fn areas(&self) -> layout::Areas {
        layout::areas(
            self.size,
            self.focus,
            crate::topbar::height(self, self.size.0),
        )
    }

    pub(super) fn notify(&mut self, text: impl Into<String>, level: Level) {
        self.notice = Some(Notice {
            text: text.into(),
            level,
            until_ms: self.now_ms.saturating_add(NOTICE_MS),
        });
    }
}
