//! [`update`]: applies one [`Msg`] to the [`Model`].

use super::{Cmd, Conn, Level, Load, Model, Msg};
use crate::detail::Detail;

/// Applies `msg` to the model. Pure: the returned commands describe data to load and intents
/// for the host; nothing here reads a file, the store, the clock or the network.
pub fn update(m: &mut Model, msg: Msg) -> Vec<Cmd> {
    let mut out = Vec::new();
    match msg {
        Msg::Key(k) => m.on_key(k, &mut out),
        Msg::Mouse(e) => m.on_mouse(e, &mut out),
        Msg::Resize(w, h) => {
            m.size = (w, h);
            let pane = m.detail_width();
            if let Some(d) = m.detail.as_mut() {
                d.set_pane(pane);
            }
            m.after_move(&mut out, false);
        }
        Msg::Tick(now) => {
            m.now_ms = now;
            let before = m.in_flight.len();
            // A row whose end was never heard of (its message dropped under a flood) goes
            // after FLIGHT_MAX_MS rather than staying forever.
            m.in_flight.retain(|f| {
                f.done_ms
                    .is_none_or(|d| now - d < super::FINISHED_LINGER_MS)
                    && now - f.received_ms < super::FLIGHT_MAX_MS
            });
            if m.in_flight.len() != before {
                m.after_move(&mut out, false);
            }
            if m.notice.as_ref().is_some_and(|n| n.until_ms <= now) {
                m.notice = None;
            }
            // Rows this process did not write reach it only from the store.
            if now - m.polled_ms >= super::STORE_POLL_MS {
                m.polled_ms = now;
                out.push(Cmd::Load(Load::Poll));
            }
            if m.list.stale && !m.list.loading {
                m.refresh(&mut out);
            } else if let Some(id) = m.detail_wanted.take()
                && m.detail.as_ref().map(|d| d.id()) != Some(id)
            {
                out.push(Cmd::Load(Load::Detail(id)));
            }
        }
        Msg::Captured(s) => {
            // Its in-flight line is replaced by the stored row.
            m.in_flight.retain(|f| {
                (f.received_ms, f.method.as_str(), f.path.as_str())
                    != (s.received_ms, s.method.as_str(), s.path.as_str())
            });
            if s.missed && s.replay_of.is_none() {
                m.missed_since_connect += 1;
                let n = m.missed_since_connect;
                let what = if n == 1 { "webhook" } else { "webhooks" };
                let lost = match m.unkept_since_connect {
                    0 => String::new(),
                    u => format!("; the relay could not keep {u} more"),
                };
                m.notify(
                    format!(
                        "{n} {what} arrived while you were offline (⊘): D delivers them to the \
                         app{lost}"
                    ),
                    Level::Error,
                );
            }
            m.on_captured(*s, &mut out);
        }
        Msg::Lagged => {
            out.push(Cmd::Load(Load::Counts(m.scope())));
            m.refresh(&mut out);
        }
        Msg::Conn(c) => {
            if let Conn::Connected { name, .. } = &c {
                m.set_tunnel(&name.clone(), &mut out);
                // A new session: the missed requests it hands over are counted afresh.
                if !matches!(m.conn, Conn::Connected { .. }) {
                    m.missed_since_connect = 0;
                    m.unkept_since_connect = 0;
                }
            }
            m.conn = c;
        }
        Msg::Rtt(ms) => m.rtt_ms = Some(ms),
        Msg::Unkept { words, count } => {
            m.unkept_since_connect = m.unkept_since_connect.saturating_add(count);
            m.notify(words, Level::Error);
        }
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
                    m.detail_width(),
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
        Msg::Polled(max_id) => {
            // Higher than any row this process has seen: another process wrote it. The
            // counts are taken again and the next frame reloads the list.
            if max_id > m.counts.max_id {
                out.push(Cmd::Load(Load::Counts(m.scope())));
                m.list.stale = true;
            }
        }
        Msg::Notice(text, level) => m.notify(text, level),
        Msg::EditedStale(e) => m.stale_edit = Some(e),
        Msg::Started(f) => {
            m.in_flight.insert(0, *f);
            m.in_flight.truncate(super::MAX_IN_FLIGHT);
            m.after_move(&mut out, false);
        }
        Msg::Finished { request_id } => {
            let now = m.now_ms;
            if let Some(f) = m.in_flight.iter_mut().find(|f| f.request_id == request_id) {
                f.done_ms = Some(now);
            }
        }
    }
    out
}
