//! `view` snapshots (TestBackend 120×32, insta): the list, each detail tab, help, the
//! reconnecting state, the filter prompt, and a hostile request whose escape sequences must
//! never reach a cell.
#![allow(clippy::unwrap_used)]

mod support;

use crossterm::event::KeyCode;
use std::time::Duration;
use support::*;
use twk_inspector::{Conn, Msg, Tab};

fn snap(name: &str, m: &twk_inspector::Model) {
    let (text, buf) = render(m);
    assert_clean(&buf);
    insta::assert_snapshot!(name, text);
}

#[test]
fn list() {
    let (_d, data) = store(&mix());
    let m = model(&data);
    snap("list", &m);
}

#[test]
fn list_scrolled_with_unseen_rows_and_filter() {
    let (dir, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "/provider:github");
    data.dispatch(&mut m, code(KeyCode::Enter));
    press(&data, &mut m, "jj");
    let s = add(&dir, &github(9, GITHUB_SECRET));
    data.dispatch(&mut m, Msg::Captured(Box::new(s)));
    snap("list_filtered_scrolled", &m);
}

#[test]
fn empty() {
    let (_d, data) = store(&[]);
    let m = model(&data);
    snap("empty", &m);
}

fn detail_of(id_from_top: usize, tab: char) -> twk_inspector::Model {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    for _ in 0..id_from_top {
        press(&data, &mut m, "j");
    }
    data.dispatch(&mut m, code(KeyCode::Enter));
    press(&data, &mut m, &tab.to_string());
    m
}

#[test]
fn detail_request_json() {
    // #4: GitHub push with a wrong signature.
    let m = detail_of(3, '1');
    assert_eq!(m.tab, Tab::Request);
    snap("detail_request_json", &m);
}

#[test]
fn detail_request_form() {
    // #3: Twilio status callback, form body shown as a table.
    let m = detail_of(4, '1');
    snap("detail_request_form", &m);
}

#[test]
fn detail_response() {
    let m = detail_of(3, '2');
    snap("detail_response", &m);
}

#[test]
fn detail_response_failed() {
    let m = detail_of(2, '2');
    snap("detail_response_failed", &m);
}

#[test]
fn detail_signature_invalid() {
    let m = detail_of(3, '3');
    snap("detail_signature_invalid", &m);
}

#[test]
fn detail_signature_valid() {
    let m = detail_of(5, '3');
    snap("detail_signature_valid", &m);
}

#[test]
fn detail_auth() {
    let m = detail_of(3, '4');
    snap("detail_auth", &m);
}

#[test]
fn detail_timing() {
    let m = detail_of(3, '5');
    snap("detail_timing", &m);
}

#[test]
fn help() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "?");
    snap("help", &m);
}

#[test]
fn filter_prompt() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    press(&data, &mut m, "/verdict:invalid push");
    snap("filter_prompt", &m);
}

#[test]
fn reconnecting() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    let now = m.now_ms;
    data.dispatch(
        &mut m,
        Msg::Conn(Conn::reconnecting(
            now,
            Duration::from_millis(4_200),
            "connection refused (relay.example:443)",
        )),
    );
    snap("reconnecting", &m);
    // The countdown moves with the clock.
    data.dispatch(&mut m, Msg::Tick(now + 2_000));
    let (text, _) = render(&m);
    assert!(text.contains("reconnecting in 3 s"), "{text}");
}

#[test]
fn hostile_request_never_reaches_a_cell() {
    let (_d, data) = store(&[plain(1, "GET", "/ok", Some(200)), hostile(2)]);
    let mut m = model(&data);
    m.conn = Conn::reconnecting(
        m.now_ms,
        Duration::from_secs(3),
        "\u{1b}]0;x\u{7}\u{9b}2J\u{202e}",
    );
    snap("hostile_list", &m);
    data.dispatch(&mut m, code(KeyCode::Enter));
    for (tab, name) in [
        ('1', "hostile_request"),
        ('2', "hostile_response"),
        ('3', "hostile_signature"),
        ('4', "hostile_auth"),
        ('5', "hostile_timing"),
    ] {
        press(&data, &mut m, &tab.to_string());
        snap(name, &m);
        // Scroll through the whole tab: every line is checked, not only the first screen.
        for _ in 0..40 {
            press(&data, &mut m, "j");
            let (_, buf) = render(&m);
            assert_clean(&buf);
        }
    }
    // Secrets revealed, and the filter prompt echoing hostile input, are clean too.
    press(&data, &mut m, "s");
    let (_, buf) = render(&m);
    assert_clean(&buf);
    press(&data, &mut m, "/\u{1b}]0;x\u{7}\u{202e}");
    let (_, buf) = render(&m);
    assert_clean(&buf);
}

#[test]
fn tiny_and_odd_sizes_do_not_panic() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    for (w, h) in [(0, 0), (1, 1), (10, 3), (20, 8), (300, 5), (40, 100)] {
        data.dispatch(&mut m, Msg::Resize(w, h));
        for keys in ["", "?", "\n"] {
            let _ = press(&data, &mut m, keys);
            let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
            t.draw(|f| twk_inspector::view(&m, f)).unwrap();
        }
        m.help = false;
    }
}
