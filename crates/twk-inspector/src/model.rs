//! The Elm Architecture core: one [`Model`], one [`Msg`] enum, and [`update`], which changes the
//! model and returns [`Cmd`]s (data to load from the store, or [`Intent`]s for the host) but
//! never performs I/O itself.

use crate::detail::{Detail, Tab};
use crate::filter;
use crate::layout;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use jiff::tz::TimeZone;
use std::time::Duration;
use twk_capture::{ExchangeId, Filter, Handshake, StoredExchange, Summary};
use twk_providers::Verdict;

/// How long a notice stays in the status line.
pub const NOTICE_MS: i64 = 6_000;
/// Longest filter text.
pub const MAX_FILTER_CHARS: usize = 256;
/// Most rows kept in the list window (a few screens around the viewport).
pub const MAX_WINDOW_ROWS: usize = 600;

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
    /// The request as a shell-safe curl command (secrets redacted).
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
    /// Leave the inspector.
    Quit,
}

/// Data the model asks for; executed against the capture store by [`crate::Data`].
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
    /// Totals for the top bar.
    Counts,
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

/// Totals for the top bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Exchanges stored.
    pub total: u64,
    /// Status ≥ 400 or no response.
    pub errors: u64,
    /// Verdict `invalid` or `malformed`.
    pub invalid: u64,
    /// Highest id counted (rows at or below it are already in the totals).
    pub max_id: ExchangeId,
}

impl Counts {
    fn add(&mut self, s: &Summary) {
        if s.id <= self.max_id {
            return;
        }
        self.max_id = s.id;
        self.total += 1;
        if s.status.is_none_or(|c| c >= 400) {
            self.errors += 1;
        }
        if matches!(s.verdict, Some(Verdict::Invalid | Verdict::Malformed)) {
            self.invalid += 1;
        }
    }
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

/// An expanded Basic-auth handshake row: the leg-2 row and, once loaded, the leg-1 row drawn
/// under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// The leg-2 row (the one the collapsed list shows).
    pub row: ExchangeId,
    /// Leg 1's id.
    pub leg1_id: ExchangeId,
    /// Leg 1's list row, once loaded.
    pub leg1: Option<Summary>,
}

/// The request list: a window of rows paged from the store, positions newest first.
///
/// A paired Basic-auth handshake is one row (its leg 2); `space` expands it ([`Expanded`]):
/// leg 1 is then drawn as an extra line under it, which the selection can move onto
/// (`on_leg1`) without it having a position of its own.
#[derive(Debug, Clone, Default)]
pub struct List {
    /// Rows matching the filter.
    pub total: u64,
    /// Selected position (0 = newest).
    pub selected: u64,
    /// Id of the selected row, once its row is loaded.
    pub selected_id: Option<ExchangeId>,
    /// Position of the first visible row.
    pub top: u64,
    /// Position of `rows[0]`.
    pub window_start: u64,
    /// Loaded rows.
    pub rows: Vec<Summary>,
    /// Whether a row request is in flight.
    pub loading: bool,
    /// The selection follows the newest row.
    pub follow: bool,
    /// Following is paused by the user (`p`).
    pub paused: bool,
    /// Rows that arrived while not following (shown as "N new").
    pub unseen: u64,
    /// Free-text filter active and new rows came: refresh on the next tick.
    pub stale: bool,
    /// The expanded handshake row (one at a time).
    pub expanded: Option<Expanded>,
    /// The selection is on the leg-1 line under the expanded row at `selected`.
    pub on_leg1: bool,
}

impl List {
    /// The loaded row at position `pos`.
    pub fn row(&self, pos: u64) -> Option<&Summary> {
        let i = pos.checked_sub(self.window_start)?;
        self.rows.get(usize::try_from(i).ok()?)
    }

    /// Position of the expanded row when its leg 1 is loaded and the row is in the window.
    pub fn open_pos(&self) -> Option<u64> {
        let e = self.expanded.as_ref()?;
        e.leg1.as_ref()?;
        let i = self.rows.iter().position(|r| r.id == e.row)?;
        Some(self.window_start + i as u64)
    }

    /// Leg 1's row of the expanded handshake, once loaded.
    pub fn open_leg1(&self) -> Option<&Summary> {
        self.expanded.as_ref()?.leg1.as_ref()
    }

    /// The screen lines of the list from `top`, at most `height`: (position, is the leg-1 line
    /// of the expanded row).
    pub fn lines(&self, height: u64) -> Vec<(u64, bool)> {
        let open = self.open_pos();
        let mut out = Vec::new();
        let mut pos = self.top;
        while (out.len() as u64) < height && pos < self.total {
            out.push((pos, false));
            if Some(pos) == open && (out.len() as u64) < height {
                out.push((pos, true));
            }
            pos += 1;
        }
        out
    }

    fn covers(&self, from: u64, to: u64) -> bool {
        let end = self.window_start + self.rows.len() as u64;
        from >= self.window_start && to <= end
    }
}

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
    /// The list.
    pub list: List,
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
    /// Help overlay shown.
    pub help: bool,
    /// Status line message.
    pub notice: Option<Notice>,
    /// False once the user quit.
    pub running: bool,
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
    /// A message for the status line from the host (replay done, copy done, …).
    Notice(String, Level),
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
            list: List {
                follow: true,
                ..List::default()
            },
            focus: Focus::List,
            tab: Tab::Request,
            detail_scroll: 0,
            reveal: false,
            detail: None,
            detail_wanted: None,
            help: false,
            notice: None,
            running: true,
        }
    }

    /// The commands that load the initial state (rows, counts).
    pub fn init(&mut self) -> Vec<Cmd> {
        self.list.loading = true;
        vec![
            Cmd::Load(Load::Counts),
            Cmd::Load(self.rows_at(Start::Offset(0))),
        ]
    }

    /// Visible list rows for the current size and focus.
    pub fn list_rows(&self) -> u64 {
        u64::from(layout::areas(self.size, self.focus).list_rows())
    }

    /// Visible detail lines for the current size and focus.
    pub fn detail_rows(&self) -> usize {
        usize::from(layout::areas(self.size, self.focus).detail_rows())
    }

    fn window_limit(&self) -> u64 {
        (self.list_rows() * 3)
            .clamp(60, MAX_WINDOW_ROWS as u64)
            .max(self.list_rows())
    }

    fn rows_at(&self, start: Start) -> Load {
        Load::Rows {
            generation: self.generation,
            filter: Box::new(self.filter.clone()),
            start,
            limit: self.window_limit(),
            known_total: None,
        }
    }

    fn notify(&mut self, text: impl Into<String>, level: Level) {
        self.notice = Some(Notice {
            text: text.into(),
            level,
            until_ms: self.now_ms.saturating_add(NOTICE_MS),
        });
    }

    /// Loads rows when the viewport is not covered by the window.
    fn ensure_window(&mut self, out: &mut Vec<Cmd>) {
        let l = &self.list;
        if l.total == 0 || l.loading {
            return;
        }
        let end = (l.top + self.list_rows()).min(l.total);
        if l.covers(l.top, end) {
            return;
        }
        // Centre the window on the viewport: paging either way stays inside it for a while.
        let start = l
            .top
            .saturating_sub(self.window_limit().saturating_sub(self.list_rows()) / 2);
        self.list.loading = true;
        let mut load = self.rows_at(Start::Offset(start));
        if let Load::Rows { known_total, .. } = &mut load {
            *known_total = Some(self.list.total);
        }
        out.push(Cmd::Load(load));
    }

    /// Keeps the selection visible, then syncs `selected_id` and asks for the detail.
    fn after_move(&mut self, out: &mut Vec<Cmd>, detail_now: bool) {
        let vh = self.list_rows().max(1);
        let l = &mut self.list;
        if l.total == 0 {
            l.selected = 0;
            l.top = 0;
        } else {
            l.selected = l.selected.min(l.total - 1);
            if l.selected < l.top {
                l.top = l.selected;
            } else if l.selected >= l.top + vh {
                l.top = l.selected + 1 - vh;
            }
            l.top = l.top.min(l.total.saturating_sub(vh));
            // The leg-1 line of an expanded handshake takes one line of the viewport.
            if let Some(p) = l.open_pos() {
                let line = (l.selected - l.top)
                    + u64::from(p >= l.top && p < l.selected)
                    + u64::from(l.on_leg1 && p == l.selected);
                if line >= vh {
                    l.top = (l.top + line + 1 - vh).min(l.selected);
                }
            }
        }
        self.ensure_window(out);
        self.sync_selected(out, detail_now);
    }

    fn sync_selected(&mut self, out: &mut Vec<Cmd>, detail_now: bool) {
        if self.list.on_leg1 && self.list.open_pos() != Some(self.list.selected) {
            self.list.on_leg1 = false;
        }
        let id = if self.list.on_leg1 {
            self.list.open_leg1().map(|s| s.id)
        } else {
            self.list.row(self.list.selected).map(|s| s.id)
        };
        if id.is_none() && self.list.loading {
            return;
        }
        if id != self.list.selected_id {
            self.list.selected_id = id;
            self.detail_scroll = 0;
        }
        let loaded = self.detail.as_ref().map(|d| d.id());
        match id {
            Some(id) if loaded != Some(id) => {
                if detail_now {
                    self.detail_wanted = None;
                    out.push(Cmd::Load(Load::Detail(id)));
                } else {
                    self.detail_wanted = Some(id);
                }
            }
            Some(_) => self.detail_wanted = None,
            None => {
                self.detail = None;
                self.detail_wanted = None;
            }
        }
    }

    fn move_to(&mut self, pos: u64, out: &mut Vec<Cmd>) {
        self.list.on_leg1 = false;
        self.list.selected = pos;
        self.list.follow = pos == 0 && !self.list.paused;
        if self.list.follow {
            self.list.unseen = 0;
        }
        self.after_move(out, true);
    }

    fn move_by(&mut self, delta: i64, out: &mut Vec<Cmd>) {
        if self.list.total == 0 {
            return;
        }
        let max = self.list.total - 1;
        // One step onto, off and across the leg-1 line of an expanded handshake.
        let open = self.list.open_pos();
        let sel = self.list.selected;
        let onto = |m: &mut Model, on: bool, pos: u64, out: &mut Vec<Cmd>| {
            m.list.selected = pos;
            m.list.on_leg1 = on;
            m.list.follow = pos == 0 && !on && !m.list.paused;
            m.after_move(out, true);
        };
        match delta {
            1 if open == Some(sel) && !self.list.on_leg1 => return onto(self, true, sel, out),
            1 if self.list.on_leg1 && sel == max => return,
            -1 if self.list.on_leg1 => return onto(self, false, sel, out),
            -1 if open.is_some_and(|p| p + 1 == sel) => return onto(self, true, sel - 1, out),
            _ => {}
        }
        let pos = if delta < 0 {
            self.list.selected.saturating_sub(delta.unsigned_abs())
        } else {
            self.list
                .selected
                .saturating_add(delta.unsigned_abs())
                .min(max)
        };
        self.move_to(pos, out);
    }

    fn scroll_detail(&mut self, delta: i64) {
        let len = self.detail.as_ref().map_or(0, |d| d.lines(self.tab).len());
        let max = len.saturating_sub(self.detail_rows().max(1));
        let cur = self.detail_scroll as i64;
        self.detail_scroll = usize::try_from((cur + delta).clamp(0, max as i64)).unwrap_or(0);
    }

    fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
        self.detail_scroll = 0;
    }

    fn apply_filter(&mut self, text: String, out: &mut Vec<Cmd>) {
        match filter::parse(&text) {
            Ok(f) => {
                self.filter = f;
                self.filter_text = text.trim().to_owned();
                self.generation += 1;
                self.input = None;
                self.list = List {
                    follow: !self.list.paused,
                    paused: self.list.paused,
                    loading: true,
                    ..List::default()
                };
                self.detail = None;
                self.detail_wanted = None;
                out.push(Cmd::Load(self.rows_at(Start::Offset(0))));
            }
            Err(e) => self.notify(format!("filter not applied: {e}"), Level::Error),
        }
    }

    /// Reloads the list keeping the selected exchange selected (or the newest when following).
    fn refresh(&mut self, out: &mut Vec<Cmd>) {
        self.list.stale = false;
        self.list.loading = true;
        let anchor = match (&self.list.expanded, self.list.on_leg1) {
            (Some(e), true) => Some(e.row),
            _ => self.list.selected_id,
        };
        let start = match (self.list.follow, anchor) {
            (false, Some(id)) => Start::Around {
                id,
                before: self.list.selected.saturating_sub(self.list.top),
            },
            _ => Start::Offset(0),
        };
        out.push(Cmd::Load(self.rows_at(start)));
    }

    fn intent_for_selected(&mut self, f: impl FnOnce(ExchangeId) -> Intent, out: &mut Vec<Cmd>) {
        match self.list.selected_id {
            Some(id) => {
                let intent = f(id);
                let what = match &intent {
                    Intent::Replay { resign: false, .. } => Some(format!("replaying #{id}…")),
                    Intent::Replay { resign: true, .. } => {
                        Some(format!("replaying #{id} with a fresh signature…"))
                    }
                    Intent::EditAndReplay { .. } => Some(format!("editing #{id} in $EDITOR…")),
                    _ => None,
                };
                if let Some(w) = what {
                    self.notify(w, Level::Info);
                }
                out.push(Cmd::Intent(intent));
            }
            None => self.notify("no exchange selected", Level::Error),
        }
    }

    /// `space` on the list: expands (or collapses) the selected Basic-auth handshake row.
    fn toggle_expand(&mut self, out: &mut Vec<Cmd>) {
        let l = &mut self.list;
        if l.on_leg1 {
            l.expanded = None;
            l.on_leg1 = false;
            self.after_move(out, true);
            return;
        }
        let Some((id, handshake)) = l.row(l.selected).map(|s| (s.id, s.handshake)) else {
            return;
        };
        if l.expanded.as_ref().is_some_and(|e| e.row == id) {
            l.expanded = None;
            self.after_move(out, false);
            return;
        }
        match handshake {
            Some(Handshake {
                leg: twk_capture::Leg::Retry,
                with: Some(p),
            }) => {
                l.expanded = Some(Expanded {
                    row: id,
                    leg1_id: p,
                    leg1: None,
                });
                out.push(Cmd::Load(Load::Leg1 { row: id, id: p }));
            }
            Some(Handshake { leg: twk_capture::Leg::Challenge, with: None }) => self.notify(
                format!("#{id} is leg 1 of a Basic-auth handshake and no retry came: nothing to expand (tab 4 Auth)"),
                Level::Info,
            ),
            Some(Handshake {
                leg: twk_capture::Leg::Challenge,
                with: Some(p),
            }) => self.notify(
                format!("#{id} is leg 1 of a Basic-auth handshake; its leg 2 is #{p} (listed separately while the filter has status:, lint: or free text)"),
                Level::Info,
            ),
            Some(Handshake { .. }) => self.notify(
                format!("#{id}: the other leg of this handshake is no longer stored"),
                Level::Info,
            ),
            None => self.notify(
                format!("#{id} is not part of a Basic-auth handshake (space expands rows marked 🔒▸)"),
                Level::Info,
            ),
        }
    }

    fn on_captured(&mut self, s: Summary, out: &mut Vec<Cmd>) {
        self.counts.add(&s);
        // A retry that completes a handshake replaces its leg-1 row in a collapsed list: the
        // leg-1 row is somewhere below, so reload (keeping the selection) on the next tick.
        if self.filter.collapse_handshakes
            && s.handshake
                .is_some_and(|h| h.leg == twk_capture::Leg::Retry && h.with.is_some())
        {
            self.list.stale = true;
        }
        match filter::matches(&self.filter, &s) {
            Some(false) => {}
            None => self.list.stale = true,
            Some(true) => {
                let cap = usize::try_from(self.window_limit())
                    .unwrap_or(MAX_WINDOW_ROWS)
                    .max(MAX_WINDOW_ROWS);
                let l = &mut self.list;
                let already = l.window_start == 0 && l.rows.first().is_some_and(|r| r.id >= s.id);
                if already {
                    return;
                }
                l.total += 1;
                if l.window_start == 0 && !l.loading {
                    l.rows.insert(0, s);
                    l.rows.truncate(cap);
                } else {
                    l.window_start += 1;
                }
                if l.follow && !l.paused {
                    l.selected = 0;
                    l.top = 0;
                    l.on_leg1 = false;
                    l.selected_id = None;
                    self.after_move(out, false);
                } else {
                    // Keep the same rows on screen: everything moved down by one.
                    l.selected += 1;
                    l.top += 1;
                    l.unseen += 1;
                    self.after_move(out, false);
                }
            }
        }
    }

    fn on_key(&mut self, k: KeyEvent, out: &mut Vec<Cmd>) {
        if k.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c')) {
            self.running = false;
            out.push(Cmd::Intent(Intent::Quit));
            return;
        }
        if let Some(input) = &mut self.input {
            match k.code {
                KeyCode::Esc => self.input = None,
                KeyCode::Enter => {
                    let text = input.clone();
                    self.apply_filter(text, out);
                }
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Char('u') if ctrl => input.clear(),
                KeyCode::Char(c)
                    if !ctrl && input.chars().count() < MAX_FILTER_CHARS && !c.is_control() =>
                {
                    input.push(c);
                }
                _ => {}
            }
            return;
        }
        if self.help {
            self.help = false;
            if !matches!(k.code, KeyCode::Char('q')) {
                return;
            }
        }
        let page = self.list_rows().max(1) as i64;
        let detail_page = self.detail_rows().max(1) as i64;
        match k.code {
            KeyCode::Char('q') => {
                self.running = false;
                out.push(Cmd::Intent(Intent::Quit));
            }
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => self.input = Some(self.filter_text.clone()),
            KeyCode::Char('p') => {
                self.list.paused = !self.list.paused;
                if self.list.paused {
                    self.list.follow = false;
                    self.notify(
                        "paused: new exchanges do not move the selection",
                        Level::Info,
                    );
                } else {
                    self.notify("following the newest exchange", Level::Info);
                    self.move_to(0, out);
                }
            }
            KeyCode::Char('s') => {
                self.reveal = !self.reveal;
                if let Some(d) = self.detail.take() {
                    let d = *d;
                    self.detail = Some(Box::new(Detail::build(
                        d.stored,
                        d.partner,
                        self.reveal,
                        &self.tz,
                    )));
                }
                self.notify(
                    if self.reveal {
                        "secret header values shown"
                    } else {
                        "secret header values redacted"
                    },
                    Level::Info,
                );
            }
            KeyCode::Char('r') => {
                self.intent_for_selected(|id| Intent::Replay { id, resign: false }, out)
            }
            KeyCode::Char('R') => {
                self.intent_for_selected(|id| Intent::Replay { id, resign: true }, out)
            }
            KeyCode::Char('e') => self.intent_for_selected(|id| Intent::EditAndReplay { id }, out),
            KeyCode::Char('c') => self.intent_for_selected(
                |id| Intent::Copy {
                    id,
                    what: CopyWhat::Curl,
                },
                out,
            ),
            KeyCode::Char('u') => match &self.conn {
                Conn::Connected { public_url, .. } => out.push(Cmd::Intent(Intent::CopyUrl {
                    url: public_url.clone(),
                })),
                _ => self.notify(
                    "no public URL yet: the tunnel is not connected",
                    Level::Error,
                ),
            },
            KeyCode::Char('y') => self.intent_for_selected(
                |id| Intent::Copy {
                    id,
                    what: CopyWhat::Body,
                },
                out,
            ),
            KeyCode::Char(c @ '1'..='5') => {
                let i = usize::from(c as u8 - b'1');
                if let Some(t) = Tab::ALL.get(i) {
                    self.set_tab(*t);
                    self.focus = Focus::Detail;
                    self.after_move(out, true);
                }
            }
            KeyCode::Enter => {
                self.focus = match self.focus {
                    Focus::List => Focus::Detail,
                    Focus::Detail => Focus::List,
                };
                self.after_move(out, true);
            }
            KeyCode::Esc => {
                if self.focus == Focus::Detail {
                    self.focus = Focus::List;
                    self.after_move(out, true);
                }
            }
            KeyCode::Tab => match self.focus {
                Focus::List => {
                    self.focus = Focus::Detail;
                    self.after_move(out, true);
                }
                Focus::Detail => self.set_tab(self.tab.next()),
            },
            KeyCode::BackTab => match self.focus {
                Focus::List => {
                    self.focus = Focus::Detail;
                    self.set_tab(self.tab.prev());
                    self.after_move(out, true);
                }
                Focus::Detail => self.set_tab(self.tab.prev()),
            },
            _ => match self.focus {
                Focus::List => match k.code {
                    KeyCode::Char('j') | KeyCode::Down => self.move_by(1, out),
                    KeyCode::Char('k') | KeyCode::Up => self.move_by(-1, out),
                    KeyCode::PageDown => self.move_by(page, out),
                    KeyCode::PageUp => self.move_by(-page, out),
                    KeyCode::Char('g') | KeyCode::Home => self.move_to(0, out),
                    KeyCode::Char('G') | KeyCode::End => {
                        self.move_to(self.list.total.saturating_sub(1), out)
                    }
                    KeyCode::Right | KeyCode::Char('l') => {
                        self.focus = Focus::Detail;
                        self.after_move(out, true);
                    }
                    KeyCode::Char(' ') => self.toggle_expand(out),
                    _ => {}
                },
                Focus::Detail => match k.code {
                    KeyCode::Char('j') | KeyCode::Down => self.scroll_detail(1),
                    KeyCode::Char('k') | KeyCode::Up => self.scroll_detail(-1),
                    KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_detail(detail_page),
                    KeyCode::PageUp => self.scroll_detail(-detail_page),
                    KeyCode::Char('g') | KeyCode::Home => self.detail_scroll = 0,
                    KeyCode::Char('G') | KeyCode::End => self.scroll_detail(i64::MAX / 4),
                    KeyCode::Right | KeyCode::Char('l') => self.set_tab(self.tab.next()),
                    KeyCode::Left | KeyCode::Char('h') => self.set_tab(self.tab.prev()),
                    KeyCode::Char('n') => self.move_by(1, out),
                    KeyCode::Char('N') => self.move_by(-1, out),
                    _ => {}
                },
            },
        }
    }

    fn on_mouse(&mut self, m: MouseEvent, out: &mut Vec<Cmd>) {
        let a = layout::areas(self.size, self.focus);
        let inside = |r: ratatui::layout::Rect| {
            m.column >= r.x && m.column < r.x + r.width && m.row >= r.y && m.row < r.y + r.height
        };
        let over_list = inside(a.list);
        match m.kind {
            MouseEventKind::ScrollDown if over_list => self.move_by(3, out),
            MouseEventKind::ScrollUp if over_list => self.move_by(-3, out),
            MouseEventKind::ScrollDown if inside(a.detail) => self.scroll_detail(3),
            MouseEventKind::ScrollUp if inside(a.detail) => self.scroll_detail(-3),
            MouseEventKind::Down(_) if over_list => {
                let first = a.list_first_row();
                if m.row >= first {
                    let lines = self.list.lines(u64::from(a.list_rows()));
                    if let Some(&(pos, leg1)) = lines.get(usize::from(m.row - first)) {
                        self.move_to(pos, out);
                        if leg1 {
                            self.move_by(1, out);
                        }
                    }
                }
            }
            MouseEventKind::Down(_) if inside(a.detail) => {
                // A click on the tab bar picks a tab; elsewhere it focuses the pane.
                if m.row == a.detail.y + 1 {
                    let mut x = a.detail.x + 1;
                    for t in Tab::ALL {
                        let w = t.title().chars().count() as u16 + 5;
                        if m.column >= x && m.column < x + w {
                            self.set_tab(t);
                        }
                        x += w;
                    }
                }
                self.focus = Focus::Detail;
                self.after_move(out, true);
            }
            _ => {}
        }
    }
}

/// Applies `msg` to the model. Pure: the returned commands describe data to load and intents
/// for the host; nothing here reads a file, the store, the clock or the network.
pub fn update(m: &mut Model, msg: Msg) -> Vec<Cmd> {
    let mut out = Vec::new();
    match msg {
        Msg::Key(k) => m.on_key(k, &mut out),
        Msg::Mouse(e) => m.on_mouse(e, &mut out),
        Msg::Resize(w, h) => {
            m.size = (w, h);
            m.after_move(&mut out, false);
        }
        Msg::Tick(now) => {
            m.now_ms = now;
            if m.notice.as_ref().is_some_and(|n| n.until_ms <= now) {
                m.notice = None;
            }
            if m.list.stale && !m.list.loading {
                m.refresh(&mut out);
            } else if let Some(id) = m.detail_wanted.take() {
                if m.detail.as_ref().map(|d| d.id()) != Some(id) {
                    out.push(Cmd::Load(Load::Detail(id)));
                }
            }
        }
        Msg::Captured(s) => m.on_captured(*s, &mut out),
        Msg::Lagged => {
            out.push(Cmd::Load(Load::Counts));
            m.refresh(&mut out);
        }
        Msg::Conn(c) => m.conn = c,
        Msg::Rtt(ms) => m.rtt_ms = Some(ms),
        Msg::Recorder { error, dropped } => {
            m.recorder_error = error;
            m.dropped = dropped;
        }
        Msg::Rows {
            generation,
            start,
            total,
            anchor,
            rows,
        } => {
            if generation != m.generation {
                return out;
            }
            let l = &mut m.list;
            l.loading = false;
            l.total = total;
            l.window_start = start;
            l.rows = rows;
            if let Some(pos) = anchor {
                let before = l.selected.saturating_sub(l.top);
                l.selected = pos;
                l.top = pos.saturating_sub(before);
            }
            if l.follow && !l.paused {
                l.selected = 0;
                l.top = 0;
            }
            m.after_move(&mut out, true);
        }
        Msg::Detail { stored, partner } => {
            if m.list.selected_id == Some(stored.id()) || m.list.selected_id.is_none() {
                m.detail = Some(Box::new(Detail::build(
                    *stored,
                    partner.map(|p| *p),
                    m.reveal,
                    &m.tz,
                )));
                m.detail_wanted = None;
            }
        }
        Msg::Leg1 { row, summary } => {
            if m.list.expanded.as_ref().is_some_and(|e| e.row == row) {
                match summary {
                    Some(s) => {
                        if let Some(e) = &mut m.list.expanded {
                            e.leg1 = Some(*s);
                        }
                        m.after_move(&mut out, false);
                    }
                    None => {
                        m.list.expanded = None;
                        m.notify(format!("leg 1 of #{row} is no longer stored"), Level::Error);
                    }
                }
            }
        }
        Msg::DetailMissing(id) => {
            if m.list.selected_id == Some(id) {
                m.detail = None;
                m.notify(format!("exchange #{id} is no longer stored"), Level::Error);
            }
        }
        Msg::Counts(c) => m.counts = c,
        Msg::Notice(text, level) => m.notify(text, level),
    }
    out
}
