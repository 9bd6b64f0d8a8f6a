//! `update` tests: navigation, following, pause, filtering, tabs, intents, paging.
#![allow(clippy::unwrap_used)]

mod support;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use support::*;
use twk_inspector::model::MAX_WINDOW_ROWS;
use twk_inspector::{CopyWhat, Focus, Intent, Level, Msg, Tab};

#[test]
fn starts_on_the_newest_and_follows() {
    let (_d, data) = store(&mix());
    let m = model(&data);
    assert_eq!(m.list.total, 7);
    assert_eq!(m.list.selected, 0);
    assert_eq!(m.list.selected_id, Some(7));
    assert!(m.list.follow);
    assert_eq!(m.detail.as_ref().map(|d| d.id()), Some(7));
    assert_eq!(m.counts.total, 7);
    assert_eq!(m.counts.errors, 1);
    assert_eq!(m.counts.invalid, 2);
}

#[test]
fn navigation() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "j");
    assert_eq!(m.list.selected_id, Some(6));
    assert!(!m.list.follow, "moving away stops following");
    assert_eq!(m.detail.as_ref().map(|d| d.id()), Some(6));
    data.dispatch(&mut m, code(KeyCode::Down));
    assert_eq!(m.list.selected_id, Some(5));
    press(&data, &mut m, "k");
    assert_eq!(m.list.selected_id, Some(6));
    press(&data, &mut m, "G");
    assert_eq!(m.list.selected_id, Some(1));
    press(&data, &mut m, "j");
    assert_eq!(m.list.selected_id, Some(1), "stays on the oldest");
    press(&data, &mut m, "g");
    assert_eq!(m.list.selected_id, Some(7));
    assert!(m.list.follow, "g goes back to following");
    data.dispatch(&mut m, code(KeyCode::PageDown));
    assert_eq!(m.list.selected_id, Some(1), "a page is more than 7 rows");
    data.dispatch(&mut m, code(KeyCode::PageUp));
    assert_eq!(m.list.selected_id, Some(7));
    data.dispatch(&mut m, code(KeyCode::End));
    data.dispatch(&mut m, code(KeyCode::Home));
    assert_eq!(m.list.selected_id, Some(7));
}

#[test]
fn new_rows_are_followed_unless_scrolled_away() {
    let many: Vec<_> = (1..=40)
        .map(|i| plain(i, "POST", "/e", Some(200)))
        .collect();
    let (dir, data) = store(&many);
    let mut m = model(&data);
    let s = add(&dir, &plain(41, "POST", "/new", Some(201)));
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert_eq!(m.list.total, 41);
    assert_eq!(
        m.list.selected_id,
        Some(41),
        "following: the new row is selected"
    );
    assert_eq!(m.counts.total, 41);
    // The detail follows on the next tick (not on every arrival).
    data.dispatch(&mut m, Msg::Tick(T0 + 61_000));
    assert_eq!(m.detail.as_ref().map(|d| d.id()), Some(41));

    for _ in 0..20 {
        press(&data, &mut m, "j");
    }
    assert_eq!(m.list.selected_id, Some(21));
    let top_before = m.list.top;
    assert!(top_before > 0);
    let s = add(&dir, &plain(42, "POST", "/newer", Some(200)));
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert_eq!(
        m.list.selected_id,
        Some(21),
        "scrolled away: selection stays put"
    );
    assert_eq!(m.list.selected, 21);
    assert_eq!(m.list.top, top_before + 1, "the same rows stay on screen");
    assert_eq!(m.list.unseen, 1);
    assert_eq!(m.list.row(0).map(|r| r.id), Some(42));
    press(&data, &mut m, "g");
    assert_eq!(m.list.selected_id, Some(42));
    assert_eq!(m.list.unseen, 0);
}

#[test]
fn duplicate_announcements_are_ignored() {
    let (dir, data) = store(&mix());
    let mut m = model(&data);
    let s = add(&dir, &plain(8, "POST", "/new", Some(201)));
    // Reloaded before the announcement arrived: the row is already in the window.
    data.dispatch(&mut m, Msg::Lagged);
    assert_eq!(m.list.total, 8);
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert_eq!(m.list.total, 8);
    assert_eq!(m.counts.total, 8);
}

#[test]
fn pause_keeps_the_selection() {
    let (dir, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "p");
    assert!(m.list.paused && !m.list.follow);
    let s = add(&dir, &plain(8, "POST", "/new", Some(201)));
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert_eq!(m.list.selected_id, Some(7), "paused: not following");
    press(&data, &mut m, "g");
    assert!(!m.list.follow, "g while paused does not follow");
    press(&data, &mut m, "p");
    assert!(m.list.follow && !m.list.paused);
    assert_eq!(m.list.selected_id, Some(8));
}

#[test]
fn filtering() {
    let (dir, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "/verdict:invalid");
    assert_eq!(m.input.as_deref(), Some("verdict:invalid"));
    assert_eq!(m.list.total, 7, "not applied while typing");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(m.input, None);
    assert_eq!(m.list.total, 2);
    assert_eq!(m.list.selected_id, Some(6));
    assert_eq!(m.filter.verdict, Some(twk_providers::Verdict::Invalid));
    // A matching arrival is listed, a non-matching one only counted.
    let s = add(&dir, &plain(8, "GET", "/other", Some(200)));
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert_eq!(m.list.total, 2);
    assert_eq!(m.counts.total, 8);

    // Free text goes to the store on the next tick.
    press(&data, &mut m, "/");
    data.dispatch(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    press(&data, &mut m, "health");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(m.list.total, 1);
    assert_eq!(m.list.selected_id, Some(1));
    let s = add(&dir, &plain(9, "GET", "/health", Some(200)));
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert!(m.list.stale);
    data.dispatch(&mut m, Msg::Tick(T0 + 61_000));
    assert_eq!(m.list.total, 2);
    assert_eq!(m.list.selected_id, Some(9));

    // A bad filter is refused with a message; the old one stays.
    press(&data, &mut m, "/");
    data.dispatch(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    press(&data, &mut m, "status:abc");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert!(m.input.is_some(), "prompt stays open to fix it");
    // The reason is in the prompt line at once (it used to wait behind the open prompt).
    let e = m.input_error.clone().unwrap();
    assert!(e.contains("status:abc"), "{e}");
    let (screen, _) = render(&m);
    assert!(
        screen.lines().last().unwrap().contains("status:abc"),
        "{screen}"
    );
    assert_eq!(m.filter.grep.as_deref(), Some("health"));
    press(&data, &mut m, "x");
    assert_eq!(m.input_error, None, "typing clears the error");
    assert_eq!(m.input.as_deref(), Some("status:abcx"));
    data.dispatch(&mut m, code(KeyCode::Esc));
    assert_eq!(m.input, None);

    // The prompt reopens with the active filter selected: Backspace then Enter clears it
    // (no Ctrl-U needed), and typing replaces it.
    press(&data, &mut m, "/");
    assert_eq!(m.input.as_deref(), Some("health"));
    assert!(m.input_fresh);
    press(&data, &mut m, "g");
    assert_eq!(
        m.input.as_deref(),
        Some("g"),
        "typing replaces the selected filter"
    );
    data.dispatch(&mut m, code(KeyCode::Esc));
    press(&data, &mut m, "/");
    data.dispatch(&mut m, code(KeyCode::Backspace));
    assert_eq!(m.input.as_deref(), Some(""));
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(m.list.total, 9);
}

#[test]
fn keys_while_typing_do_not_act() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    let intents = press(&data, &mut m, "/qrRecy");
    assert!(intents.is_empty());
    assert!(m.running);
    assert_eq!(m.input.as_deref(), Some("qrRecy"));
}

#[test]
fn tab_switching() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(m.focus, Focus::Detail);
    assert_eq!(m.tab, Tab::Request);
    data.dispatch(&mut m, code(KeyCode::Tab));
    assert_eq!(m.tab, Tab::Response);
    press(&data, &mut m, "l");
    assert_eq!(m.tab, Tab::Signature);
    data.dispatch(&mut m, code(KeyCode::BackTab));
    assert_eq!(m.tab, Tab::Response);
    press(&data, &mut m, "5");
    assert_eq!(m.tab, Tab::Timing);
    data.dispatch(&mut m, code(KeyCode::Right));
    assert_eq!(m.tab, Tab::Request, "wraps");
    // j scrolls the detail, n moves to the next exchange.
    press(&data, &mut m, "jjj");
    assert!(m.detail_scroll > 0);
    assert_eq!(m.list.selected_id, Some(7));
    press(&data, &mut m, "n");
    assert_eq!(m.list.selected_id, Some(6));
    assert_eq!(m.detail_scroll, 0);
    data.dispatch(&mut m, code(KeyCode::Esc));
    assert_eq!(m.focus, Focus::List);
    data.dispatch(&mut m, code(KeyCode::Tab));
    assert_eq!(m.focus, Focus::Detail);
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(m.focus, Focus::List);
}

#[test]
fn replay_and_copy_intents() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "j");
    assert_eq!(
        press(&data, &mut m, "r"),
        vec![Intent::Replay {
            id: 6,
            resign: false
        }]
    );
    assert!(m.notice.as_ref().unwrap().text.contains("replaying #6"));
    assert_eq!(
        press(&data, &mut m, "R"),
        vec![Intent::Replay {
            id: 6,
            resign: true
        }]
    );
    assert_eq!(
        press(&data, &mut m, "e"),
        vec![Intent::EditAndReplay { id: 6 }]
    );
    assert_eq!(
        press(&data, &mut m, "cy"),
        vec![
            Intent::Copy {
                id: 6,
                what: CopyWhat::Curl
            },
            Intent::Copy {
                id: 6,
                what: CopyWhat::Body
            }
        ]
    );
    // The host reports back through a notice.
    data.dispatch(
        &mut m,
        Msg::Notice("replayed #6 as #8 → 200".into(), Level::Info),
    );
    assert_eq!(m.notice.as_ref().unwrap().text, "replayed #6 as #8 → 200");
    data.dispatch(&mut m, Msg::Tick(T0 + 600_000));
    assert_eq!(m.notice, None, "notices expire");
}

#[test]
fn no_intent_without_a_selection() {
    let (_d, data) = store(&[]);
    let mut m = model(&data);
    assert!(press(&data, &mut m, "rRecy").is_empty());
    assert_eq!(m.notice.as_ref().unwrap().level, Level::Error);
}

#[test]
fn quit() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    assert_eq!(press(&data, &mut m, "q"), vec![Intent::Quit]);
    assert!(!m.running);
    let mut m = model(&data);
    let i = data.dispatch(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(i, vec![Intent::Quit]);
    // Ctrl-C works even in the filter prompt.
    let mut m = model(&data);
    press(&data, &mut m, "/abc");
    let i = data.dispatch(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(i, vec![Intent::Quit]);
}

#[test]
fn help_toggles_and_any_key_closes_it() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "?");
    assert!(m.help);
    assert!(
        press(&data, &mut m, "r").is_empty(),
        "the key only closes help"
    );
    assert!(!m.help);
}

#[test]
fn secrets_toggle_rebuilds_the_detail() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    let text = |m: &twk_inspector::Model| {
        twk_inspector::body::lines_text(m.detail.as_ref().unwrap().lines(Tab::Request)).join("\n")
    };
    assert!(text(&m).contains("x-hub-signature-256: [REDACTED]"));
    press(&data, &mut m, "s");
    assert!(text(&m).contains("x-hub-signature-256: sha256="));
    press(&data, &mut m, "s");
    assert!(text(&m).contains("[REDACTED]"));
}

#[test]
fn secret_query_values_are_masked_on_screen_until_revealed() {
    let secret = "q-s3cr3t-9d1e";
    let (_d, data) = store(&[plain(
        1,
        "POST",
        &format!("/hook?id=7&token={secret}"),
        Some(200),
    )]);
    let mut m = model(&data);
    let (screen, _) = render(&m);
    assert!(
        screen.contains("/hook?id=7&token=%5BREDACTED%5D"),
        "{screen}"
    );
    assert!(!screen.contains(secret), "{screen}");
    let request = |m: &twk_inspector::Model| {
        twk_inspector::body::lines_text(m.detail.as_ref().unwrap().lines(Tab::Request)).join("\n")
    };
    assert!(!request(&m).contains(secret));
    press(&data, &mut m, "s");
    assert!(request(&m).contains(&format!("/hook?id=7&token={secret}")));
    // The list has no reveal key: only the revealed detail shows the value.
    let (screen, _) = render(&m);
    assert!(
        screen.contains("/hook?id=7&token=%5BREDACTED%5D"),
        "{screen}"
    );
}

#[test]
fn mouse_click_and_wheel() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    let a = m.areas();
    let click = |row| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    data.dispatch(&mut m, click(a.list_first_row() + 2));
    assert_eq!(m.list.selected_id, Some(5));
    let wheel = Msg::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 10,
        row: a.list_first_row(),
        modifiers: KeyModifiers::NONE,
    });
    data.dispatch(&mut m, wheel);
    assert_eq!(m.list.selected_id, Some(2));
    // A click on the detail pane's tab bar picks the tab.
    let tab_click = Msg::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: a.detail.x + 1 + 11 + 2,
        row: a.detail.y + 1,
        modifiers: KeyModifiers::NONE,
    });
    data.dispatch(&mut m, tab_click);
    assert_eq!(m.tab, Tab::Response);
    assert_eq!(m.focus, Focus::Detail);
}

#[test]
fn pages_rows_instead_of_loading_everything() {
    let n = 5_000;
    let exchanges: Vec<_> = (0..n)
        .map(|i| plain(i, "POST", &format!("/e/{i}"), Some(200)))
        .collect();
    let (_d, data) = store(&exchanges);
    let mut m = model(&data);
    assert_eq!(m.list.total, n as u64);
    assert!(m.list.rows.len() <= MAX_WINDOW_ROWS);
    assert_eq!(m.list.window_start, 0);
    press(&data, &mut m, "G");
    assert_eq!(m.list.selected_id, Some(1));
    assert!(m.list.window_start > 4_000, "window moved to the end");
    assert!(m.list.rows.len() <= MAX_WINDOW_ROWS);
    // Scrolling up from the bottom pages in the rows above.
    let page = m.list_rows();
    for _ in 0..(n as u64 / page + 1) {
        data.dispatch(&mut m, code(KeyCode::PageUp));
        assert!(
            m.list.row(m.list.selected).is_some(),
            "selected row is loaded"
        );
    }
    assert_eq!(m.list.selected_id, Some(n));
    // A lost broadcast reloads around the selection.
    press(&data, &mut m, "jjjjj");
    data.dispatch(&mut m, Msg::Lagged);
    assert_eq!(m.list.selected_id, Some(n - 5));
    assert_eq!(m.list.selected, 5);
}

#[test]
fn resize_keeps_the_selection_visible() {
    let (_d, data) = store(
        &(0..100)
            .map(|i| plain(i, "GET", "/", Some(200)))
            .collect::<Vec<_>>(),
    );
    let mut m = model(&data);
    for _ in 0..50 {
        press(&data, &mut m, "j");
    }
    data.dispatch(&mut m, Msg::Resize(80, 12));
    let rows = m.list_rows();
    assert!(m.list.selected >= m.list.top && m.list.selected < m.list.top + rows);
    data.dispatch(&mut m, Msg::Resize(0, 0));
    data.dispatch(&mut m, Msg::Resize(200, 60));
    assert_eq!(m.list.selected_id, Some(50));
}

#[test]
fn windows_read_from_either_end_match() {
    use twk_capture::{Filter, Order};
    use twk_inspector::{Load, Start};
    let exchanges: Vec<_> = (0..300).map(|i| plain(i, "GET", "/", Some(200))).collect();
    let (_d, data) = store(&exchanges);
    for offset in [0u64, 1, 100, 149, 150, 151, 250, 290, 299] {
        let load = Load::Rows {
            generation: 0,
            filter: Box::default(),
            start: Start::Offset(offset),
            limit: 20,
            known_total: Some(300),
        };
        let Msg::Rows { rows, start, .. } = data.load(&load).unwrap() else {
            panic!("rows expected");
        };
        let expected = data
            .store()
            .list(&Filter {
                order: Order::NewestFirst,
                offset,
                limit: Some(20),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(start, offset);
        assert_eq!(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            expected.iter().map(|r| r.id).collect::<Vec<_>>(),
            "offset {offset}"
        );
    }
}

/// Ids of the list's screen lines (the leg-1 line of an expanded row as `-id`).
fn line_ids(m: &twk_inspector::Model) -> Vec<i64> {
    m.list
        .lines(m.list_rows())
        .into_iter()
        .map(|(pos, leg1)| match leg1 {
            true => -m.list.open_leg1().map_or(0, |s| s.id),
            false => m.list.row(pos).map_or(0, |s| s.id),
        })
        .collect()
}

#[test]
fn handshakes_are_one_row_until_expanded() {
    let (_d, data) = store(&handshakes());
    let mut m = model(&data);
    assert!(m.filter.collapse_handshakes);
    assert_eq!(
        line_ids(&m),
        vec![7, 6, 5, 3, 1],
        "leg-1 rows #2 and #4 are folded"
    );
    select(&data, &mut m, 3);
    press(&data, &mut m, " ");
    let e = m.list.expanded.clone().unwrap();
    assert_eq!((e.row, e.leg1_id), (3, 2));
    assert_eq!(
        e.leg1.as_ref().map(|s| s.id),
        Some(2),
        "leg 1 loaded from the store"
    );
    assert_eq!(line_ids(&m), vec![7, 6, 5, 3, -2, 1]);
    assert_eq!(m.list.selected_id, Some(3), "expanding keeps the selection");
    // Space again collapses.
    press(&data, &mut m, " ");
    assert_eq!(m.list.expanded, None);
    assert_eq!(line_ids(&m), vec![7, 6, 5, 3, 1]);
    // Expanding another row closes the first (one at a time).
    press(&data, &mut m, " ");
    select(&data, &mut m, 5);
    press(&data, &mut m, " ");
    assert_eq!(line_ids(&m), vec![7, 6, 5, -4, 3, 1]);
    // Rows without a second leg explain why nothing opens.
    select(&data, &mut m, 6);
    press(&data, &mut m, " ");
    assert_eq!(m.list.expanded.as_ref().map(|e| e.row), Some(5));
    let n = m.notice.clone().unwrap();
    assert!(n.text.contains("no retry came"), "{}", n.text);
    select(&data, &mut m, 1);
    press(&data, &mut m, " ");
    assert!(
        m.notice
            .unwrap()
            .text
            .contains("not part of a Basic-auth handshake")
    );
}

#[test]
fn navigation_across_an_expanded_handshake() {
    let (_d, data) = store(&handshakes());
    let mut m = model(&data);
    select(&data, &mut m, 3);
    press(&data, &mut m, " ");
    // j: onto the leg-1 line; the detail and the intents are leg 1's.
    press(&data, &mut m, "j");
    assert!(m.list.on_leg1);
    assert_eq!(m.list.selected_id, Some(2));
    assert_eq!(m.detail.as_ref().map(|d| d.id()), Some(2));
    assert_eq!(
        press(&data, &mut m, "r"),
        vec![Intent::Replay {
            id: 2,
            resign: false
        }]
    );
    // j: past it to the next row; k: back onto it; k: the handshake row.
    press(&data, &mut m, "j");
    assert_eq!((m.list.selected_id, m.list.on_leg1), (Some(1), false));
    press(&data, &mut m, "k");
    assert_eq!((m.list.selected_id, m.list.on_leg1), (Some(2), true));
    press(&data, &mut m, "k");
    assert_eq!((m.list.selected_id, m.list.on_leg1), (Some(3), false));
    assert_eq!(m.detail.as_ref().map(|d| d.id()), Some(3));
    press(&data, &mut m, "k");
    assert_eq!(m.list.selected_id, Some(5));
    // Space on the leg-1 line folds the handshake and selects its row.
    press(&data, &mut m, "jj");
    assert!(m.list.on_leg1);
    press(&data, &mut m, " ");
    assert_eq!(m.list.expanded, None);
    assert_eq!((m.list.selected_id, m.list.on_leg1), (Some(3), false));
    // A click on the leg-1 line selects leg 1.
    press(&data, &mut m, " ");
    let a = m.areas();
    let line = line_ids(&m).iter().position(|&id| id == -2).unwrap() as u16;
    data.dispatch(
        &mut m,
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 20,
            row: a.list_first_row() + line,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!((m.list.selected_id, m.list.on_leg1), (Some(2), true));
    // g: back to the newest and following; the leg-1 line is left.
    press(&data, &mut m, "g");
    assert_eq!((m.list.selected_id, m.list.on_leg1), (Some(7), false));
    assert!(m.list.follow);
}

#[test]
fn the_viewport_makes_room_for_the_leg1_line() {
    let mut v = handshakes();
    v.extend((10..40).map(|i| plain(i, "POST", "/e", Some(200))));
    let (_d, data) = store(&v);
    let mut m = model(&data);
    select(&data, &mut m, 3);
    press(&data, &mut m, " ");
    let vh = m.list_rows();
    for _ in 0..3 {
        press(&data, &mut m, "j");
        let lines = m.list.lines(vh);
        let at = lines
            .iter()
            .position(|&(pos, leg1)| pos == m.list.selected && leg1 == m.list.on_leg1);
        assert!(at.is_some(), "the selection stays on screen");
    }
}

#[test]
fn a_retry_folds_its_leg1_row_live() {
    let hs = handshakes();
    // #1 plain, #2 leg 1 of the "ok" handshake; its retry arrives live.
    let (dir, data) = store(&hs[..2]);
    let mut m = model(&data);
    assert_eq!(line_ids(&m), vec![2, 1]);
    let s = add(&dir, &hs[2]);
    assert_eq!(
        s.handshake.map(|h| (h.leg, h.with)),
        Some((twk_capture::Leg::Retry, Some(2)))
    );
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    data.dispatch(&mut m, Msg::Tick(T0 + 61_000));
    assert_eq!(
        line_ids(&m),
        vec![3, 1],
        "leg 1 is now inside the handshake row"
    );
    assert_eq!(m.list.selected_id, Some(3), "following the newest");
    // Two deliveries, as the list shows them: the handshake is one, its 401 no error.
    assert_eq!((m.counts.total, m.counts.errors), (2, 0));
}

/// Rows another process writes (a `replay` in another terminal) appear within a poll of
/// the store, with no key pressed.
#[test]
fn rows_another_process_writes_appear_within_a_poll() {
    let (dir, data) = store(&mix());
    let mut m = model(&data);
    assert_eq!(m.list.selected_id, Some(7));
    // Written by someone else: no Msg::Captured reaches this model.
    let t = m.polled_ms;
    data.dispatch(&mut m, Msg::Tick(t + 16));
    let s = add(&dir, &plain(8, "POST", "/elsewhere", Some(200)));
    data.dispatch(&mut m, Msg::Tick(t + 100));
    assert_eq!(m.list.selected_id, Some(7), "not before the poll");
    data.dispatch(&mut m, Msg::Tick(t + 1_000));
    data.dispatch(&mut m, Msg::Tick(t + 1_016));
    assert_eq!(m.list.selected_id, Some(s.id), "following the newest");
    assert_eq!(m.counts.total, 8);
}

#[test]
fn filters_that_can_split_the_legs_list_both() {
    let (_d, data) = store(&handshakes());
    let mut m = model(&data);
    press(&data, &mut m, "/status:401");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert!(!m.filter.collapse_handshakes);
    assert_eq!(line_ids(&m), vec![7, 6, 5, 4, 2], "every 401 leg is listed");
    press(&data, &mut m, "/");
    data.dispatch(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    press(&data, &mut m, "lint:401-without-www-authenticate");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(line_ids(&m), vec![6]);
    press(&data, &mut m, "/");
    data.dispatch(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    press(&data, &mut m, "provider:bandwidth");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert!(m.filter.collapse_handshakes);
    assert_eq!(line_ids(&m), vec![7, 6, 5, 3]);
}

#[test]
fn u_copies_the_public_url_once_connected() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    data.dispatch(
        &mut m,
        Msg::Conn(twk_inspector::Conn::Connecting { attempt: 0 }),
    );
    assert!(press(&data, &mut m, "u").is_empty());
    assert!(
        m.notice
            .as_ref()
            .unwrap()
            .text
            .contains("no public URL yet")
    );
    data.dispatch(
        &mut m,
        Msg::Conn(twk_inspector::Conn::Connected {
            name: "a".into(),
            public_url: "http://127.0.0.1:8787/t/a".into(),
        }),
    );
    assert_eq!(
        press(&data, &mut m, "u"),
        vec![Intent::CopyUrl {
            url: "http://127.0.0.1:8787/t/a".into()
        }]
    );
}

#[test]
fn copy_as_curl_reproduces_the_request_with_its_signature() {
    // The screen redacts the signature; the copy (to re-send) must not.
    let ex = github(1, GITHUB_SECRET);
    let sig = ex
        .request
        .headers
        .iter()
        .find(|h| h.name == "x-hub-signature-256")
        .map(|h| String::from_utf8(h.value.clone()).unwrap())
        .unwrap();
    let (curl, label) = twk_inspector::clipboard::content(&ex, CopyWhat::Curl);
    assert!(curl.contains(&sig), "{curl}");
    assert!(!curl.contains("[REDACTED]"), "{curl}");
    assert!(label.contains("exact"));
    let (body, _) = twk_inspector::clipboard::content(&ex, CopyWhat::Body);
    assert_eq!(body.as_bytes(), ex.request.body.bytes.as_slice());
}

fn flight(id: &str, received_ms: i64, path: &str) -> twk_inspector::InFlight {
    twk_inspector::InFlight {
        request_id: id.into(),
        received_ms,
        method: "POST".into(),
        path: path.into(),
        provider: Some("github".into()),
        event: Some("push".into()),
        done_ms: None,
    }
}

#[test]
fn a_slow_request_is_listed_when_its_head_arrives_and_completed_in_place() {
    let (dir, data) = store(&mix());
    let mut m = model(&data);
    let rows_before = m.list_rows();
    let now = m.now_ms;
    data.dispatch(
        &mut m,
        Msg::Started(Box::new(flight("r-slow", now, "/slow"))),
    );
    assert_eq!(m.in_flight.len(), 1);
    assert_eq!(
        m.list_rows(),
        rows_before - 1,
        "the in-flight line takes a list line"
    );
    data.dispatch(&mut m, Msg::Tick(now + 9_000));
    let (screen, _) = render(&m);
    let line = screen.lines().find(|l| l.contains("/slow")).unwrap();
    assert!(
        line.contains("9000 ms") && line.contains("in flight"),
        "{line}"
    );
    // Its stored row replaces it (same received time, method and path).
    let mut ex = plain(8, "POST", "/slow", Some(200));
    ex.timings.received_ms = now;
    let s = add(&dir, &ex);
    data.dispatch(
        &mut m,
        Msg::Finished {
            request_id: "r-slow".into(),
        },
    );
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert!(m.in_flight.is_empty());
    assert_eq!(m.list_rows(), rows_before);
    // A finished request whose row never comes (dropped, filtered) goes after a moment.
    data.dispatch(
        &mut m,
        Msg::Started(Box::new(flight("r-lost", now + 9_500, "/lost"))),
    );
    data.dispatch(
        &mut m,
        Msg::Finished {
            request_id: "r-lost".into(),
        },
    );
    assert_eq!(m.in_flight[0].done_ms, Some(now + 9_000));
    data.dispatch(
        &mut m,
        Msg::Tick(now + 9_000 + twk_inspector::model::FINISHED_LINGER_MS),
    );
    assert!(m.in_flight.is_empty());
    // A flood keeps a bounded number of rows.
    for i in 0..500 {
        data.dispatch(
            &mut m,
            Msg::Started(Box::new(flight(&format!("f{i}"), now, "/f"))),
        );
    }
    assert_eq!(m.in_flight.len(), twk_inspector::model::MAX_IN_FLIGHT);
}

#[test]
fn the_list_shows_this_tunnels_history_and_says_how_much_else_is_stored() {
    let mut rows = mix();
    for (i, ex) in rows.iter_mut().enumerate().take(3) {
        ex.tunnel = format!("yesterday-{i}");
    }
    let (dir, data) = store(&rows);
    let mut m = model(&data);
    assert_eq!(m.list.total, 7, "before the tunnel has a name: everything");
    let conn = |name: &str| {
        Msg::Conn(twk_inspector::Conn::Connected {
            name: name.into(),
            public_url: format!("https://relay.example/t/{name}"),
        })
    };
    data.dispatch(&mut m, conn("demo"));
    assert_eq!(m.list.total, 4, "this tunnel's rows only");
    assert_eq!((m.counts.total, m.counts.other), (4, 3));
    let (screen, _) = render(&m);
    assert!(
        screen.contains("3 more in other tunnels (a: all)"),
        "{screen}"
    );
    // A live row of another tunnel is counted as other, not listed.
    let mut foreign = plain(8, "GET", "/elsewhere", Some(200));
    foreign.tunnel = "other".into();
    data.dispatch(&mut m, Msg::Captured(Box::new(add(&dir, &foreign))));
    assert_eq!((m.list.total, m.counts.other), (4, 4));
    // `a` shows everything, and back.
    press(&data, &mut m, "a");
    assert_eq!(m.list.total, 8);
    assert_eq!(m.counts.total, 8);
    press(&data, &mut m, "a");
    assert_eq!(m.list.total, 4);
    // A filter term picks a tunnel, or all of them.
    press(&data, &mut m, "/tunnel:yesterday-1");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(m.list.total, 1);
    press(&data, &mut m, "/tunnel:all");
    data.dispatch(&mut m, code(KeyCode::Enter));
    assert_eq!(m.list.total, 8);
}

#[test]
fn an_edit_that_made_the_signature_stale_asks_before_sending() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    let ask = |can_resign| {
        Msg::EditedStale(twk_inspector::StaleEdit {
            id: 2,
            provider: "github".into(),
            can_resign,
        })
    };
    data.dispatch(&mut m, ask(true));
    let (screen, _) = render(&m);
    assert!(screen.contains("R re-sign and send"), "{screen}");
    assert!(
        press(&data, &mut m, "j").is_empty(),
        "other keys keep asking"
    );
    assert_eq!(
        press(&data, &mut m, "R"),
        vec![Intent::SendEdited {
            id: 2,
            resign: true
        }]
    );
    assert_eq!(m.stale_edit, None);
    data.dispatch(&mut m, ask(false));
    assert!(
        press(&data, &mut m, "R").is_empty(),
        "no secret: cannot re-sign"
    );
    assert!(m.notice.as_ref().unwrap().text.contains("no github secret"));
    assert_eq!(
        press(&data, &mut m, "r"),
        vec![Intent::SendEdited {
            id: 2,
            resign: false
        }]
    );
    data.dispatch(&mut m, ask(true));
    assert_eq!(
        data.dispatch(&mut m, code(KeyCode::Esc)),
        vec![Intent::DropEdited { id: 2 }]
    );
}

fn choices() -> Vec<twk_inspector::TriggerChoice> {
    [
        ("stripe", "payment_intent.succeeded"),
        ("stripe", "charge.refunded"),
        ("bandwidth", "message-delivered"),
    ]
    .iter()
    .map(|(p, e)| twk_inspector::TriggerChoice {
        provider: (*p).into(),
        event: (*e).into(),
        about: "about it".into(),
    })
    .collect()
}

#[test]
fn t_picks_an_event_and_asks_the_host_to_trigger_it_into_the_tunnel() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    m.triggers = choices();
    m.conn = twk_inspector::Conn::Connecting { attempt: 1 };
    // Not connected: nothing to trigger into.
    assert!(press(&data, &mut m, "t").is_empty());
    assert!(m.picker.is_none());
    assert_eq!(m.notice.as_ref().unwrap().level, Level::Error);
    let url = "http://127.0.0.1:8787/t/demo".to_owned();
    m.conn = twk_inspector::Conn::Connected {
        name: "demo".into(),
        public_url: url.clone(),
    };
    press(&data, &mut m, "t");
    assert!(m.picker.is_some());
    // Typing filters (keys that act elsewhere are text here), arrows choose.
    assert!(press(&data, &mut m, "stripe r").is_empty());
    assert_eq!(m.list.selected_id, Some(7), "r did not replay or move");
    data.dispatch(&mut m, code(KeyCode::Backspace));
    data.dispatch(&mut m, code(KeyCode::Backspace));
    data.dispatch(&mut m, code(KeyCode::Down));
    let mut out = Vec::new();
    for cmd in twk_inspector::update(&mut m, code(KeyCode::Enter)) {
        if let twk_inspector::Cmd::Intent(i) = cmd {
            out.push(i);
        }
    }
    assert_eq!(
        out,
        vec![Intent::Trigger {
            provider: "stripe".into(),
            event: "charge.refunded".into(),
            url,
        }]
    );
    assert!(m.picker.is_none());
    assert!(
        m.notice
            .as_ref()
            .unwrap()
            .text
            .contains("triggering stripe charge.refunded")
    );
    // Esc closes without sending; nothing matching sends nothing.
    press(&data, &mut m, "t");
    press(&data, &mut m, "zzz");
    assert!(twk_inspector::update(&mut m, code(KeyCode::Enter)).is_empty());
    data.dispatch(&mut m, code(KeyCode::Esc));
    assert!(m.picker.is_none());
}

#[test]
fn missed_rows_are_counted_in_a_notice_and_d_asks_to_deliver_them() {
    let many: Vec<_> = (1..=3).map(|i| plain(i, "POST", "/e", Some(200))).collect();
    let (dir, data) = store(&many);
    let mut m = model(&data);
    for i in 4..=5 {
        let mut ex = plain(i, "POST", "/while-away", Some(503));
        ex.missed = true;
        let s = add(&dir, &ex);
        assert!(s.missed);
        data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    }
    let notice = m.notice.as_ref().unwrap();
    assert!(
        notice
            .text
            .contains("2 webhooks arrived while you were offline"),
        "{}",
        notice.text
    );
    assert_eq!(press(&data, &mut m, "D"), vec![Intent::DeliverMissed]);
    // A new session counts afresh.
    data.dispatch(
        &mut m,
        Msg::Conn(twk_inspector::Conn::Connecting { attempt: 1 }),
    );
    data.dispatch(
        &mut m,
        Msg::Conn(twk_inspector::Conn::Connected {
            name: "demo".into(),
            public_url: "http://127.0.0.1:1/t/demo".into(),
        }),
    );
    assert_eq!(m.missed_since_connect, 0);
}

/// What the relay could not keep is told at once, and the missed rows' notice that follows
/// (which replaces it in the status line) still says it.
#[test]
fn what_the_relay_could_not_keep_is_in_the_notice_of_the_missed_rows() {
    let (dir, data) = store(&[]);
    let mut m = model(&data);
    data.dispatch(
        &mut m,
        Msg::Unkept {
            words: "the relay answered 3 requests 503 without keeping them".into(),
            count: 3,
        },
    );
    assert!(
        m.notice
            .as_ref()
            .unwrap()
            .text
            .contains("without keeping them")
    );
    let mut ex = plain(1, "POST", "/while-away", Some(503));
    ex.missed = true;
    data.dispatch(&mut m, Msg::Captured(Box::new(add(&dir, &ex))));
    let text = &m.notice.as_ref().unwrap().text;
    assert!(
        text.contains("1 webhook arrived while you were offline"),
        "{text}"
    );
    assert!(text.contains("the relay could not keep 3 more"), "{text}");
}

/// The relay's own answers are not the app's errors: a refused row (the relay's 429) and a
/// missed row (its 503 while the tunnel was offline) are counted apart, both when the store
/// is loaded and when they arrive live; the app's own 429 stays an error.
#[test]
fn refused_and_missed_rows_are_counted_apart_from_errors() {
    let mut refused = plain(1, "POST", "/too-fast", Some(429));
    refused.refused = true;
    let mut missed = plain(2, "POST", "/while-away", Some(503));
    missed.missed = true;
    let app = plain(3, "POST", "/app-says-429", Some(429));
    let (dir, data) = store(&[refused, missed, app]);
    let mut m = model(&data);
    let c = m.counts;
    assert_eq!(
        (c.total, c.errors, c.refused, c.missed),
        (3, 1, 1, 1),
        "{c:?}"
    );

    let mut live = plain(4, "POST", "/too-fast", Some(429));
    live.refused = true;
    let s = add(&dir, &live);
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    let mut away = plain(5, "POST", "/while-away", Some(503));
    away.missed = true;
    let s = add(&dir, &away);
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    let c = m.counts;
    assert_eq!(
        (c.total, c.errors, c.refused, c.missed),
        (5, 1, 2, 2),
        "{c:?}"
    );
}

/// A 200 the provider cannot use is a failed delivery: an answer Bandwidth cannot run as
/// BXML counts as an error in the top bar, loaded and live, beside a good 200.
#[test]
fn an_answer_the_provider_cannot_run_counts_as_an_error() {
    let (dir, data) = store(&[bad_bxml(1), plain(2, "POST", "/ok", Some(200))]);
    let mut m = model(&data);
    assert_eq!((m.counts.total, m.counts.errors), (2, 1), "{:?}", m.counts);
    let s = add(&dir, &bad_bxml(3));
    assert!(
        s.lints.contains(&twk_capture::LintCode::InvalidBxml),
        "{s:?}"
    );
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    assert_eq!((m.counts.total, m.counts.errors), (3, 2), "{:?}", m.counts);
    let (text, _) = render(&m);
    assert!(text.contains("3 total · 2 errors"), "{text}");
}
