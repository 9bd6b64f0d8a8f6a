//! Terminal input as [`Msg`]s: the host owns the terminal and its crossterm
//! [`EventStream`]; this module only awaits the next event and translates it.

use crate::model::Msg;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt as _;

/// The message for a terminal event (`None` for events the inspector ignores: key releases,
/// focus, paste).
pub fn msg_of(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        Event::Mouse(m) => Some(Msg::Mouse(m)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        _ => None,
    }
}

/// The next terminal event; `None` when the stream ended (stdin closed).
pub async fn next_event(events: &mut EventStream) -> Option<std::io::Result<Event>> {
    events.next().await
}
