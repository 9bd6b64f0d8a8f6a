//! The request list: a window of rows paged from the store, the selection and its
//! movement, live rows arriving, and the expandable Basic-auth handshake row.

use super::{Cmd, Level, Load, MAX_WINDOW_ROWS, Model, Start};
use crate::filter;
use twk_capture::{ExchangeId, Handshake, Summary};
use twk_providers::Verdict;

/// Totals for the top bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Exchanges stored.
    pub total: u64,
    /// Status ≥ 400 or no response, from the app or on the way to it, and answers the
    /// provider cannot use (a 200 with an error lint, such as TwiML Twilio cannot run): not
    /// the relay's own answers to senders, which are counted in `refused` and `missed`.
    pub errors: u64,
    /// Requests the relay refused itself (429, 413) and told the tunnel of.
    pub refused: u64,
    /// Requests that came while the tunnel was offline, answered 503 by the relay.
    pub missed: u64,
    /// Verdict `invalid` or `malformed`.
    pub invalid: u64,
    /// Highest id counted (rows at or below it are already in the totals).
    pub max_id: ExchangeId,
    /// Exchanges of other tunnels (and earlier sessions under other names), not in the
    /// totals while the list shows this tunnel only.
    pub other: u64,
}

impl Counts {
    pub(super) fn add(&mut self, s: &Summary, scope: Option<&str>) {
        if s.id <= self.max_id {
            return;
        }
        self.max_id = s.id;
        if scope.is_some_and(|t| t != s.tunnel) {
            self.other += 1;
            return;
        }
        // A handshake's retry folds its leg 1 (counted when it came, a 401) into one
        // delivery, as the list shows it.
        if let Some(Handshake {
            leg: twk_capture::Leg::Retry,
            with: Some(_),
        }) = s.handshake
        {
            self.total = self.total.saturating_sub(1);
            self.errors = self.errors.saturating_sub(1);
        }
        self.total += 1;
        if s.refused {
            self.refused += 1;
        } else if s.missed {
            self.missed += 1;
        } else if s.status.is_none_or(|c| c >= 400) || s.lints.iter().any(|c| c.spoils_a_success())
        {
            self.errors += 1;
        }
        if matches!(s.verdict, Some(Verdict::Invalid | Verdict::Malformed)) {
            self.invalid += 1;
        }
    }
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

    pub(super) fn covers(&self, from: u64, to: u64) -> bool {
        let end = self.window_start + self.rows.len() as u64;
        from >= self.window_start && to <= end
    }
}

impl Model {
    /// Starts the list over (after the filter or the tunnel scope changed): rows and counts.
    pub(super) fn reload(&mut self, out: &mut Vec<Cmd>) {
        self.generation += 1;
        self.list = super::List {
            follow: !self.list.paused,
            paused: self.list.paused,
            loading: true,
            ..super::List::default()
        };
        self.detail = None;
        self.detail_wanted = None;
        out.push(Cmd::Load(self.rows_at(Start::Offset(0))));
        out.push(Cmd::Load(Load::Counts(self.scope())));
    }

    /// This tunnel's name is known (or changed): the default scope follows it.
    pub(super) fn set_tunnel(&mut self, name: &str, out: &mut Vec<Cmd>) {
        if self.tunnel.as_deref() == Some(name) {
            return;
        }
        let before = self.scope();
        self.tunnel = Some(name.to_owned());
        if self.scope() != before {
            self.reload(out);
        }
    }

    pub(super) fn window_limit(&self) -> u64 {
        (self.list_rows() * 3)
            .clamp(60, MAX_WINDOW_ROWS as u64)
            .max(self.list_rows())
    }

    pub(super) fn rows_at(&self, start: Start) -> Load {
        Load::Rows {
            generation: self.generation,
            filter: Box::new(self.store_filter()),
            start,
            limit: self.window_limit(),
            known_total: None,
        }
    }

    /// Loads rows when the viewport is not covered by the window.
    pub(super) fn ensure_window(&mut self, out: &mut Vec<Cmd>) {
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
    pub(super) fn after_move(&mut self, out: &mut Vec<Cmd>, detail_now: bool) {
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

    pub(super) fn sync_selected(&mut self, out: &mut Vec<Cmd>, detail_now: bool) {
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

    pub(super) fn move_to(&mut self, pos: u64, out: &mut Vec<Cmd>) {
        self.list.on_leg1 = false;
        self.list.selected = pos;
        self.list.follow = pos == 0 && !self.list.paused;
        if self.list.follow {
            self.list.unseen = 0;
        }
        self.after_move(out, true);
    }

    pub(super) fn move_by(&mut self, delta: i64, out: &mut Vec<Cmd>) {
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

    /// Reloads the list keeping the selected exchange selected (or the newest when following).
    pub(super) fn refresh(&mut self, out: &mut Vec<Cmd>) {
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

    /// `space` on the list: expands (or collapses) the selected Basic-auth handshake row.
    pub(super) fn toggle_expand(&mut self, out: &mut Vec<Cmd>) {
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

    pub(super) fn on_captured(&mut self, s: Summary, out: &mut Vec<Cmd>) {
        let scope = self.scope();
        self.counts.add(&s, scope.as_deref());
        // A retry that completes a handshake replaces its leg-1 row in a collapsed list: the
        // leg-1 row is somewhere below, so reload (keeping the selection) on the next tick.
        if self.filter.collapse_handshakes
            && s.handshake
                .is_some_and(|h| h.leg == twk_capture::Leg::Retry && h.with.is_some())
        {
            self.list.stale = true;
        }
        match filter::matches(&self.store_filter(), &s) {
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
}
