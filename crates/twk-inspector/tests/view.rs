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
    detail_in(&mix(), id_from_top, tab)
}

/// [`detail_of`] over a store of `exchanges`.
fn detail_in(
    exchanges: &[twk_capture::Exchange],
    id_from_top: usize,
    tab: char,
) -> twk_inspector::Model {
    let (_d, data) = store(exchanges);
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
    let (text, _) = render(&m);
    // The grouping key is internal (it leaked as `group demo␟github:…`).
    assert!(!text.contains('␟') && !text.contains("group"), "{text}");
    assert!(text.contains("same webhook once before"), "{text}");
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
            "relay unreachable: Connection refused (os error 111)",
        )),
    );
    snap("reconnecting", &m);
    // The agent's reason, said once (issue 12 item 11).
    let (text, _) = render(&m);
    assert_eq!(text.matches("relay unreachable").count(), 1, "{text}");
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

/// The cell style where `needle` starts on screen (the first match).
fn style_of(buf: &ratatui::buffer::Buffer, needle: &str) -> ratatui::style::Style {
    let text = twk_inspector::view::buffer_text(buf);
    for (y, line) in text.lines().enumerate() {
        if let Some(i) = line.find(needle) {
            // Columns, not bytes: every character left of the match is one cell, the lock two.
            let x: usize = line[..i]
                .chars()
                .map(|c| if c == '\u{1f512}' { 2 } else { 1 })
                .sum();
            return buf[(x as u16, y as u16)].style();
        }
    }
    panic!("{needle:?} not on screen:\n{text}");
}

#[test]
fn handshake_list_collapsed() {
    let (_d, data) = store(&handshakes());
    let m = model(&data);
    assert_eq!(
        m.list.total, 5,
        "leg-1 rows of paired handshakes are folded"
    );
    let (text, buf) = render(&m);
    assert_clean(&buf);
    assert!(text.contains("🔒▸ ⚠ mismatch"), "{text}");
    assert!(text.contains("🔒1 ⚠ bare 401"), "{text}");
    // The lost-callback mistake is white on red; other lints keep their severity colour.
    let bare = style_of(&buf, "⚠ bare 401");
    assert_eq!(bare.bg, Some(ratatui::style::Color::Red));
    assert_eq!(
        style_of(&buf, "⚠ no retry").fg,
        Some(ratatui::style::Color::Yellow)
    );
    insta::assert_snapshot!("handshake_list", text);
}

#[test]
fn handshake_list_expanded() {
    let (_d, data) = store(&handshakes());
    let mut m = model(&data);
    select(&data, &mut m, 3);
    press(&data, &mut m, " ");
    snap("handshake_list_expanded", &m);
    let (text, _) = render(&m);
    assert!(text.contains("🔒▾"), "{text}");
    assert!(text.contains(" └2"), "{text}");
    // On the leg-1 line: the detail is leg 1's.
    press(&data, &mut m, "j");
    assert_eq!(m.detail.as_ref().map(|d| d.id()), Some(2));
    snap("handshake_list_expanded_leg1", &m);
}

fn auth_of(id: i64) -> twk_inspector::Model {
    let (_d, data) = store(&handshakes());
    let mut m = model(&data);
    select(&data, &mut m, id);
    data.dispatch(&mut m, code(KeyCode::Enter));
    press(&data, &mut m, "4");
    m
}

#[test]
fn handshake_auth_match() {
    let m = auth_of(3);
    let (text, _) = render(&m);
    assert!(
        text.contains("retried 180 ms after the challenge"),
        "{text}"
    );
    assert!(
        text.contains("WWW-Authenticate: Basic realm=\"twk\""),
        "{text}"
    );
    assert!(
        text.contains("user \"bw-user\", password ********"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "the password never shows");
    snap("handshake_auth_match", &m);
}

#[test]
fn handshake_auth_mismatch() {
    let m = auth_of(5);
    let (text, _) = render(&m);
    assert!(text.contains("✗ mismatch"), "{text}");
    assert!(text.contains("credentials-mismatch"), "{text}");
    assert!(!text.contains("s3cret"), "the password never shows");
    snap("handshake_auth_mismatch", &m);
}

#[test]
fn handshake_auth_bare_401() {
    let m = auth_of(6);
    let (text, buf) = render(&m);
    assert!(
        text.contains("no WWW-Authenticate: Bandwidth will not retry — this callback is lost"),
        "{text}"
    );
    assert_eq!(
        style_of(&buf, "no WWW-Authenticate: Bandwidth").fg,
        Some(ratatui::style::Color::Red)
    );
    // The pane title carries the lint on every tab.
    assert!(
        text.contains("⚠ 401-without-www-authenticate (4 Auth)"),
        "{text}"
    );
    snap("handshake_auth_bare_401", &m);
}

#[test]
fn handshake_auth_retry_never_came() {
    let m = auth_of(7);
    let (text, _) = render(&m);
    assert!(text.contains("the retry never came"), "{text}");
    assert!(text.contains("retry-never-came"), "{text}");
    snap("handshake_auth_retry_never_came", &m);
}

#[test]
fn hostile_handshake_never_reaches_a_cell() {
    let (_d, data) = store(&hostile_handshake());
    let mut m = model(&data);
    let (text, buf) = render(&m);
    assert_clean(&buf);
    assert!(text.contains('🔒'), "{text}");
    for id in [2, 3] {
        select(&data, &mut m, id);
        press(&data, &mut m, " ");
        let (_, buf) = render(&m);
        assert_clean(&buf);
        press(&data, &mut m, "j");
        data.dispatch(&mut m, code(KeyCode::Enter));
        press(&data, &mut m, "4");
        for _ in 0..30 {
            press(&data, &mut m, "j");
            let (_, buf) = render(&m);
            assert_clean(&buf);
        }
        data.dispatch(&mut m, code(KeyCode::Esc));
    }
}

#[test]
fn embedded_relay_says_providers_cannot_reach_it() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    m.embedded = true;
    data.dispatch(
        &mut m,
        Msg::Conn(Conn::Connected {
            name: "a1b2c3".into(),
            public_url: "http://127.0.0.1:8787/t/a1b2c3".into(),
        }),
    );
    let (text, _) = render(&m);
    let top = text.lines().next().unwrap();
    assert!(top.contains("http://127.0.0.1:8787/t/a1b2c3"), "{top}");
    assert!(top.contains("loopback: providers can't reach"), "{top}");
    snap("embedded_relay", &m);
}

/// The screens a new user sees, at 80×24, 120×32 and 200×50: an embedded relay's URL (the
/// name at its end), Stripe events with long names, a lost Bandwidth callback and handshakes.
fn sized(w: u16, h: u16) -> twk_inspector::Model {
    let mut all = handshakes();
    let n = all.len() as i64;
    all.push(stripe(n + 1, "whsec_demo", "/hooks/stripe"));
    all.push(stripe(
        n + 2,
        "whsec_demo",
        "/webhooks/payments/stripe/events?account=acct_1",
    ));
    all.push(github(n + 3, GITHUB_SECRET));
    let (_d, data) = store(&all);
    let mut m = model(&data);
    m.conn = Conn::Connected {
        name: "pb81lhazzp".into(),
        public_url: "http://127.0.0.1:8787/t/pb81lhazzp".into(),
    };
    m.embedded = true;
    data.dispatch(&mut m, Msg::Resize(w, h));
    m
}

fn essentials_whole(text: &str) {
    let first: Vec<&str> = text.lines().take(2).collect();
    assert!(
        first
            .iter()
            .any(|l| l.contains("http://127.0.0.1:8787/t/pb81lhazzp")),
        "the public URL is cut: {first:?}"
    );
    assert!(
        text.contains("payment_intent.succeeded"),
        "event name cut:\n{text}"
    );
    assert!(text.contains("22:13:2"), "time cut:\n{text}");
    assert!(
        regex_lite_ms(text),
        "durations must keep their unit:\n{text}"
    );
    assert!(text.contains("⚠"), "lint mark gone:\n{text}");
    assert!(
        text.contains("q quit"),
        "how to quit is always shown:\n{text}"
    );
}

/// A duration cell (`34 ms`) survives whole somewhere on screen.
fn regex_lite_ms(text: &str) -> bool {
    text.split_whitespace()
        .zip(text.split_whitespace().skip(1))
        .any(|(n, unit)| unit == "ms" && n.parse::<u32>().is_ok())
}

#[test]
fn narrow_80x24_keeps_the_url_times_and_event_names_whole() {
    let m = sized(80, 24);
    let (text, buf) = render(&m);
    assert_clean(&buf);
    essentials_whole(&text);
    insta::assert_snapshot!("size_80x24", text);
}

#[test]
fn medium_120x32_keeps_the_url_times_and_event_names_whole() {
    let m = sized(120, 32);
    let (text, buf) = render(&m);
    assert_clean(&buf);
    essentials_whole(&text);
    assert!(text.contains("⚠ bare 401"), "{text}");
    insta::assert_snapshot!("size_120x32", text);
}

#[test]
fn wide_200x50_gives_event_names_their_width_before_paths() {
    let m = sized(200, 50);
    let (text, buf) = render(&m);
    assert_clean(&buf);
    essentials_whole(&text);
    assert!(text.contains("stripe · payment_intent.succeeded"), "{text}");
    insta::assert_snapshot!("size_200x50", text);
}

#[test]
fn help_at_80x24_is_whole_and_scrolls() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    data.dispatch(&mut m, Msg::Resize(80, 24));
    press(&data, &mut m, "?");
    let (first, _) = render(&m);
    assert!(first.contains("top / bottom"), "{first}");
    assert!(first.contains("j/PgDn more"), "{first}");
    insta::assert_snapshot!("help_80x24", first);
    for _ in 0..40 {
        press(&data, &mut m, "j");
    }
    assert!(m.help, "scrolling keeps help open");
    let (last, _) = render(&m);
    assert!(
        last.contains("bare 401"),
        "the last mark is reachable: {last}"
    );
    assert!(last.contains("k/PgUp back"), "{last}");
    press(&data, &mut m, "x");
    assert!(!m.help);
}

#[test]
fn a_stripe_webhook_refused_with_401_is_not_a_lost_bandwidth_callback() {
    let mut refused = stripe(1, "whsec_demo", "/hooks/stripe");
    refused.status = Some(401);
    let (_d, data) = store(&[refused]);
    let mut m = model(&data);
    let (list, _) = render(&m);
    let row = list.lines().find(|l| l.contains("/hooks/stripe")).unwrap();
    assert!(!row.contains('⚠') && !row.contains('🔒'), "{row}");
    data.dispatch(&mut m, code(KeyCode::Enter));
    press(&data, &mut m, "4");
    let (auth, _) = render(&m);
    assert!(!auth.contains("Bandwidth"), "{auth}");
    assert!(auth.contains("plain refusal"), "{auth}");
}

#[test]
fn in_flight_requests_show_above_the_list_with_a_spinner_and_elapsed_time() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    let now = m.now_ms;
    for (id, ago, path) in [("a", 12_300, "/slow/handler"), ("b", 800, "/github")] {
        let f = twk_inspector::InFlight {
            request_id: id.into(),
            received_ms: now - ago,
            method: "POST".into(),
            path: path.into(),
            provider: Some("github".into()),
            event: Some("push".into()),
            done_ms: None,
        };
        data.dispatch(&mut m, Msg::Started(Box::new(f)));
    }
    let (text, buf) = render(&m);
    assert_clean(&buf);
    assert!(text.contains("12.3 s"), "{text}");
    snap("in_flight", &m);
}

#[test]
fn the_trigger_picker_lists_matches_with_the_selection_and_sanitizes() {
    let (_d, data) = store(&mix());
    let mut m = model(&data);
    m.triggers = [
        "payment_intent.succeeded",
        "charge.refunded",
        "evil\u{1b}[2J",
    ]
    .iter()
    .map(|e| twk_inspector::TriggerChoice {
        provider: "stripe".into(),
        event: (*e).into(),
        about: "an event".into(),
    })
    .collect();
    m.picker = Some(twk_inspector::Picker {
        query: "stripe".into(),
        selected: 1,
    });
    let (text, buf) = render(&m);
    assert!(
        text.contains("Trigger a webhook into this tunnel"),
        "{text}"
    );
    assert!(text.contains("3 of 3"), "{text}");
    assert!(text.contains("payment_intent.succeeded") && text.contains("charge.refunded"));
    assert_clean(&buf);
}

#[test]
fn a_missed_row_carries_its_mark() {
    let mut ex = plain(1, "POST", "/while-away", Some(503));
    ex.missed = true;
    let (_d, data) = store(&[ex]);
    let m = model(&data);
    let (text, buf) = render(&m);
    assert!(text.contains(twk_inspector::view::MISSED), "{text}");
    assert!(
        text.contains("1 total · 0 errors · 1 missed · 0 invalid sig"),
        "{text}"
    );
    assert_clean(&buf);
}

/// A request the relay refused itself is marked in the list, so it is not taken for the
/// app's own 429; it comes back from the store with its mark.
#[test]
fn a_refused_row_carries_its_mark() {
    let mut ex = plain(1, "POST", "/too-fast", Some(429));
    ex.refused = true;
    let app = plain(2, "POST", "/app-says-429", Some(429));
    let (_d, data) = store(&[ex, app]);
    let m = model(&data);
    let (text, buf) = render(&m);
    assert_eq!(
        text.matches(twk_inspector::view::REFUSED).count(),
        1,
        "only the relay's refusal is marked: {text}"
    );
    assert!(
        text.contains("2 total · 1 error · 1 refused · 0 invalid sig"),
        "the relay's refusal is not the app's error: {text}"
    );
    assert_clean(&buf);
}

/// A Stripe webhook `trigger` signed with twk's test secret (none configured): ✓ with a
/// `twk-test` mark in the list, and the Signature tab says which secret held.
#[test]
fn a_webhook_valid_with_twks_test_secret_is_marked_in_the_list_and_the_detail() {
    const TEST: &str = "whsec_twk_test_secret_for_stripe";
    let mut ex = stripe(1, TEST, "/hooks/stripe");
    let mut view =
        twk_providers::RequestView::new(&ex.method, &ex.public_url, &ex.request.body.bytes);
    for hd in &ex.request.headers {
        view = view.with_header(&hd.name, &hd.value);
    }
    let secrets = twk_providers::Secrets::new().with_test_secret(
        twk_providers::Provider::Stripe,
        twk_providers::Secret::new(TEST),
    );
    let a = twk_providers::analyze(
        &view,
        &secrets,
        &twk_providers::VerifyOptions::at(T0 / 1000 + 60),
    );
    assert_eq!(a.matched_secret, Some(twk_providers::SecretSource::TwkTest));
    ex.verdict = Some(a.verdict);
    ex.matched_secret = a.matched_secret;
    ex.analysis = twk_capture::AnalysisJson::of(&a);
    let (_d, data) = store(&[ex]);
    let mut m = model(&data);
    let (text, buf) = render(&m);
    assert!(text.contains(twk_inspector::view::TEST_MARK), "{text}");
    assert_clean(&buf);
    data.dispatch(&mut m, code(KeyCode::Enter));
    press(&data, &mut m, "3");
    let (text, _) = render(&m);
    assert!(
        text.contains("valid: the signature matches (twk's test secret)"),
        "{text}"
    );
    assert!(
        text.contains("twk's test secret for this provider"),
        "{text}"
    );
}

/// A request no provider is recognised in keeps no analysis: the Signature tab says so and
/// how to check it as a given provider's, with its id.
#[test]
fn a_request_of_no_known_provider_says_how_to_check_it_as_one() {
    let ex = plain(1, "POST", "/hooks/mine", Some(200));
    assert!(ex.provider.is_none() && ex.analysis.is_none());
    let (text, buf) = render(&detail_in(&[ex], 0, '3'));
    assert!(
        text.contains("No analysis stored for this exchange"),
        "{text}"
    );
    assert!(
        text.contains("twk-tunnel verify 1 --provider NAME"),
        "{text}"
    );
    assert_clean(&buf);
}

/// On an 80-column terminal the Signature tab's prose is wrapped inside the pane, never cut
/// at its edge: the whole diagnosis reads on screen, word for word. Resizing wraps it again.
#[test]
fn prose_is_wrapped_at_the_panes_width() {
    let mut m = detail_of(3, '3');
    let summary = m
        .detail
        .as_ref()
        .and_then(|d| d.stored.exchange.analysis.as_ref())
        .and_then(|a| {
            a.value()["diagnosis"]["summary"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap();
    assert!(
        summary.len() > 80,
        "the fixture's diagnosis is short: {summary}"
    );
    for (w, h) in [(80, 60), (60, 60), (120, 60)] {
        let (_d, data) = store(&[]);
        data.dispatch(&mut m, Msg::Resize(w, h));
        let (text, buf) = render(&m);
        assert_clean(&buf);
        // The lines under `diagnosis:`, indented two columns inside the pane's border.
        let words: Vec<&str> = text
            .lines()
            .map(|l| l.trim_start_matches('│').trim_end_matches([' ', '│']))
            .skip_while(|l| l.trim() != "diagnosis:")
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .flat_map(str::split_whitespace)
            .collect();
        assert_eq!(
            words.join(" "),
            summary.split_whitespace().collect::<Vec<_>>().join(" "),
            "at {w} columns:\n{text}"
        );
    }
}

/// A Slack event the app answered in 4.2 s: fine through twk (its deadline is 9 s), but Slack
/// gives up at 3 s and sends it again. The row carries the `slow-answer` lint, and the Timing
/// tab says how long Slack waits and what it does then.
#[test]
fn an_answer_slower_than_the_provider_waits_is_linted_in_the_list_and_the_timing_tab() {
    let mut ex = plain(1, "POST", "/slack/events", Some(200));
    ex.provider = Some("slack".into());
    let forwarded = ex.timings.received_ms + 2;
    ex.timings.forwarded_ms = Some(forwarded);
    ex.timings.first_byte_ms = Some(forwarded + 4_200);
    ex.timings.done_ms = Some(forwarded + 4_201);
    let (_d, data) = store(&[ex]);
    let mut m = model(&data);
    let (list, _) = render(&m);
    assert!(list.contains("⚠ slow"), "{list}");
    data.dispatch(&mut m, code(KeyCode::Enter));
    press(&data, &mut m, "5");
    let (text, buf) = render(&m);
    assert!(
        text.contains("answer within 3 s: Slack stops waiting then"),
        "{text}"
    );
    assert!(text.contains("slow-answer"), "{text}");
    assert!(text.contains("the app took 4200 ms"), "{text}");
    assert_clean(&buf);
}

/// A Bandwidth `initiate` callback the app answered with JSON: Bandwidth fails the call. The
/// row is marked `bad BXML`, the detail's badge names the Response tab, and the Response tab
/// says what is wrong before the answer itself.
#[test]
fn an_answer_bandwidth_cannot_run_is_named_in_the_list_and_the_response_tab() {
    let (_d, data) = store(&[bad_bxml(1)]);
    let mut m = model(&data);
    let (list, _) = render(&m);
    assert!(list.contains("bad BXML"), "{list}");
    data.dispatch(&mut m, code(KeyCode::Enter));
    let (request, _) = render(&m);
    assert!(request.contains("invalid-bxml (2 Response)"), "{request}");
    press(&data, &mut m, "2");
    let (text, buf) = render(&m);
    assert!(
        text.contains("runs the answer as BXML: the answer is application/json, not"),
        "{text}"
    );
    let lint_at = text.find("invalid-bxml").expect("the lint");
    let body_at = text.find(r#""ok": true"#).expect("the answer");
    assert!(lint_at < body_at, "the lint comes first: {text}");
    assert_clean(&buf);
}

/// A refused row's detail: the Request tab says the relay never read the body (not that the
/// capture store cut it), and the Response tab's failure is wrapped whole inside the pane.
#[test]
fn a_refused_rows_detail_says_the_body_was_never_read_and_why() {
    let mut ex = plain(1, "POST", "/too-big", Some(413));
    ex.refused = true;
    ex.request.body = twk_capture::CapturedBody {
        bytes: Vec::new(),
        len: 30_000_000,
        sha256: String::new(),
        truncated: true,
    };
    ex.failure = Some(twk_capture::Failure {
        side: twk_capture::Side::Sender,
        message: "refused by the relay, never forwarded: its body (30000000 bytes declared) is \
                  over the relay's cap of 26214400 bytes (--max-body: twk-tunnel's with its \
                  embedded relay, twk-relay's on a remote one)"
            .into(),
    });
    let (_d, data) = store(&[ex]);
    let mut m = model(&data);
    data.dispatch(&mut m, code(KeyCode::Enter));
    let (request, _) = render(&m);
    assert!(
        request.contains(
            "(not read: the relay refused the request before its body; 30000000 bytes declared)"
        ),
        "{request}"
    );
    assert!(!request.contains("capture store"), "{request}");
    press(&data, &mut m, "2");
    let (response, buf) = render(&m);
    assert!(response.contains("(--max-body:"), "cut: {response}");
    assert_clean(&buf);
}
