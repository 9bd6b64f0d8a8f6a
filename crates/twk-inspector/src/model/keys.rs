//! Keyboard and mouse: what each key does in the filter prompt, the list and the detail pane
//! (the bindings shown in help are in [`crate::keymap`]).

use super::{Cmd, Conn, CopyWhat, Focus, Intent, Level, MAX_FILTER_CHARS, Model};
use crate::detail::{Detail, Tab};
use crate::filter;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use twk_capture::ExchangeId;

impl Model {
    pub(super) fn scroll_detail(&mut self, delta: i64) {
        let len = self.detail.as_ref().map_or(0, |d| d.lines(self.tab).len());
        let max = len.saturating_sub(self.detail_rows().max(1));
        let cur = self.detail_scroll as i64;
        self.detail_scroll = usize::try_from((cur + delta).clamp(0, max as i64)).unwrap_or(0);
    }

    pub(super) fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
        self.detail_scroll = 0;
    }

    pub(super) fn apply_filter(&mut self, text: String, out: &mut Vec<Cmd>) {
        match filter::parse(&text) {
            Ok(f) => {
                self.filter = f;
                self.filter_text = text.trim().to_owned();
                self.input = None;
                self.reload(out);
            }
            Err(e) => self.input_error = Some(format!("not applied: {e}")),
        }
    }

    pub(super) fn intent_for_selected(
        &mut self,
        f: impl FnOnce(ExchangeId) -> Intent,
        out: &mut Vec<Cmd>,
    ) {
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

    pub(super) fn on_key(&mut self, k: KeyEvent, out: &mut Vec<Cmd>) {
        if k.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c')) {
            self.running = false;
            out.push(Cmd::Intent(Intent::Quit));
            return;
        }
        if self.input.is_some() {
            return self.on_prompt_key(k, ctrl, out);
        }
        if self.picker.is_some() {
            return self.on_picker_key(k.code, out);
        }
        if self.stale_edit.is_some() {
            return self.on_stale_edit_key(k.code, out);
        }
        if self.help && self.on_help_key(k.code) {
            return;
        }
        match k.code {
            KeyCode::Char('q') => {
                self.running = false;
                out.push(Cmd::Intent(Intent::Quit));
            }
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => {
                self.input = Some(self.filter_text.clone());
                self.input_fresh = !self.filter_text.is_empty();
                self.input_error = None;
            }
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
            KeyCode::Char('s') => self.toggle_reveal(),
            KeyCode::Char('t') => self.open_picker(),
            KeyCode::Char('D') => {
                self.notify("delivering missed requests to the app…", Level::Info);
                out.push(Cmd::Intent(Intent::DeliverMissed));
            }
            KeyCode::Char('a') => {
                self.all_tunnels = !self.all_tunnels;
                let what = match self.scope() {
                    None => "listing every tunnel's history (a: this tunnel only)".to_owned(),
                    Some(t) => format!("listing tunnel {t} only (a: every tunnel)"),
                };
                self.notify(what, Level::Info);
                self.reload(out);
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
                Focus::List => self.on_list_key(k.code, out),
                Focus::Detail => self.on_detail_key(k.code, out),
            },
        }
    }

    fn open_picker(&mut self) {
        if self.triggers.is_empty() {
            self.notify("triggering is not available here", Level::Error);
        } else if !matches!(self.conn, Conn::Connected { .. }) {
            self.notify(
                "the tunnel is not connected: nothing to trigger into yet",
                Level::Error,
            );
        } else {
            self.picker = Some(crate::picker::Picker::default());
        }
    }

    /// A key with the trigger picker open: typing filters, arrows choose, Enter sends.
    fn on_picker_key(&mut self, code: KeyCode, out: &mut Vec<Cmd>) {
        let Some(p) = self.picker.as_mut() else {
            return;
        };
        match code {
            KeyCode::Esc => self.picker = None,
            KeyCode::Down => p.step(1, &self.triggers),
            KeyCode::Up => p.step(-1, &self.triggers),
            KeyCode::PageDown => p.step(10, &self.triggers),
            KeyCode::PageUp => p.step(-10, &self.triggers),
            KeyCode::Backspace => {
                p.query.pop();
                p.selected = 0;
            }
            KeyCode::Char(c)
                if !c.is_control() && p.query.chars().count() < crate::picker::MAX_QUERY_CHARS =>
            {
                p.query.push(c);
                p.selected = 0;
            }
            KeyCode::Enter => {
                let chosen = p.chosen(&self.triggers).cloned();
                let url = match &self.conn {
                    Conn::Connected { public_url, .. } => Some(public_url.clone()),
                    _ => None,
                };
                match (chosen, url) {
                    (Some(c), Some(url)) => {
                        self.picker = None;
                        self.notify(
                            format!("triggering {} {}…", c.provider, c.event),
                            Level::Info,
                        );
                        out.push(Cmd::Intent(Intent::Trigger {
                            provider: c.provider,
                            event: c.event,
                            url,
                        }));
                    }
                    (None, _) => self.notify("nothing matches", Level::Error),
                    (_, None) => {
                        self.picker = None;
                        self.notify("the tunnel is not connected", Level::Error);
                    }
                }
            }
            _ => {}
        }
    }

    /// A key with help open: scroll keys scroll it, any other key closes it (`q` then quits).
    /// True when the key was used up.
    fn on_help_key(&mut self, code: KeyCode) -> bool {
        let max = crate::help::max_scroll(self.size);
        let by = |cur: usize, d: isize| cur.saturating_add_signed(d).min(max);
        match code {
            KeyCode::Char('j') | KeyCode::Down => self.help_scroll = by(self.help_scroll, 1),
            KeyCode::Char('k') | KeyCode::Up => self.help_scroll = by(self.help_scroll, -1),
            KeyCode::PageDown | KeyCode::Char(' ') => self.help_scroll = by(self.help_scroll, 10),
            KeyCode::PageUp => self.help_scroll = by(self.help_scroll, -10),
            other => {
                self.help = false;
                self.help_scroll = 0;
                return !matches!(other, KeyCode::Char('q'));
            }
        }
        true
    }

    /// A key while the `/` filter prompt is open: editing keys edit, everything else is ignored.
    fn on_prompt_key(&mut self, k: KeyEvent, ctrl: bool, out: &mut Vec<Cmd>) {
        let Some(input) = &mut self.input else {
            return;
        };
        let fresh = std::mem::take(&mut self.input_fresh);
        self.input_error = None;
        match k.code {
            KeyCode::Esc => self.input = None,
            KeyCode::Enter => {
                let text = input.clone();
                self.apply_filter(text, out);
            }
            KeyCode::Backspace if fresh => input.clear(),
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char('u') if ctrl => input.clear(),
            KeyCode::Char(c) if !ctrl && !c.is_control() => {
                if fresh {
                    input.clear();
                }
                if input.chars().count() < MAX_FILTER_CHARS {
                    input.push(c);
                }
            }
            _ => {}
        }
    }

    /// The choice after an edit made the signature stale: `R` re-signs and sends, `r` or
    /// Enter sends as is, Esc drops the edit; other keys keep asking.
    fn on_stale_edit_key(&mut self, code: KeyCode, out: &mut Vec<Cmd>) {
        let Some(e) = self.stale_edit.clone() else {
            return;
        };
        let id = e.id;
        let intent = match code {
            KeyCode::Char('R') if e.can_resign => Intent::SendEdited { id, resign: true },
            KeyCode::Char('R') => {
                self.notify(
                    format!(
                        "no {} secret configured: cannot re-sign (r sends as is)",
                        e.provider
                    ),
                    Level::Error,
                );
                return;
            }
            KeyCode::Char('r') | KeyCode::Enter => Intent::SendEdited { id, resign: false },
            KeyCode::Esc => Intent::DropEdited { id },
            _ => return,
        };
        self.stale_edit = None;
        out.push(Cmd::Intent(intent));
    }

    /// `s`: shows or redacts secret header values (the detail is rebuilt with the new choice).
    fn toggle_reveal(&mut self) {
        self.reveal = !self.reveal;
        if let Some(d) = self.detail.take() {
            let d = *d;
            self.detail = Some(Box::new(Detail::build(
                d.stored,
                d.partner,
                self.reveal,
                &self.tz,
                self.detail_width(),
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

    /// Movement keys with the list focused.
    fn on_list_key(&mut self, code: KeyCode, out: &mut Vec<Cmd>) {
        let page = self.list_rows().max(1) as i64;
        match code {
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
        }
    }

    /// Movement keys with the detail focused: scroll, tabs, and `n`/`N` for the next row.
    fn on_detail_key(&mut self, code: KeyCode, out: &mut Vec<Cmd>) {
        let page = self.detail_rows().max(1) as i64;
        match code {
            KeyCode::Char('j') | KeyCode::Down => self.scroll_detail(1),
            KeyCode::Char('k') | KeyCode::Up => self.scroll_detail(-1),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_detail(page),
            KeyCode::PageUp => self.scroll_detail(-page),
            KeyCode::Char('g') | KeyCode::Home => self.detail_scroll = 0,
            KeyCode::Char('G') | KeyCode::End => self.scroll_detail(i64::MAX / 4),
            KeyCode::Right | KeyCode::Char('l') => self.set_tab(self.tab.next()),
            KeyCode::Left | KeyCode::Char('h') => self.set_tab(self.tab.prev()),
            KeyCode::Char('n') => self.move_by(1, out),
            KeyCode::Char('N') => self.move_by(-1, out),
            _ => {}
        }
    }

    pub(super) fn on_mouse(&mut self, m: MouseEvent, out: &mut Vec<Cmd>) {
        let a = self.areas();
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
                // In-flight lines come first and are not selectable.
                let first = a.list_first_row() + self.in_flight_lines(a.list_rows());
                if m.row >= first {
                    let lines = self.list.lines(self.list_rows());
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
