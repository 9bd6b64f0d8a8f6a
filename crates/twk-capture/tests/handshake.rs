//! The Basic-auth handshake in the store: pairing rules (each mismatch does not pair; the
//! right case pairs both ways, in any insert order), every lint, the `--lint` filter, the
//! collapsed list, `log --json`, and hostile volumes.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::*;
use twk_capture::export::json::exchange_json;
use twk_capture::{
    AuthInfo, Exchange, ExchangeId, Filter, Handshake, LintCode, Order, Severity, Store,
    StoreOptions,
};

const T: i64 = 1_717_000_000_000;
const PATH: &str = "/bandwidth/status";
const BODY: &[u8] = br#"[{"type":"message-delivered","message":{"id":"m-1"}}]"#;

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// The unauthenticated first leg of a Bandwidth callback, answered 401 with a Basic challenge.
fn leg1(at: i64) -> Exchange {
    let mut ex = exchange("bw", at, PATH, BODY);
    ex.provider = Some("bandwidth".into());
    ex.status = Some(401);
    ex.response = Some(twk_capture::Message {
        headers: headers(&[("www-authenticate", "Basic realm=\"twk\", charset=\"UTF-8\"")]),
        body: body(b"twk: authentication required\n"),
    });
    ex
}

/// The authenticated retry.
fn leg2(at: i64) -> Exchange {
    let mut ex = exchange("bw", at, PATH, BODY);
    ex.provider = Some("bandwidth".into());
    ex.request
        .headers
        .extend(headers(&[("authorization", &basic("bw-user", "s3cret"))]));
    ex
}

fn store(dir: &tempfile::TempDir) -> Store {
    let mut s = open(dir.path());
    s.set_now_ms(Some(T + 10_000));
    s
}

fn hs(s: &Store, id: ExchangeId) -> Option<Handshake> {
    s.get(id).unwrap().unwrap().handshake
}

fn codes(s: &Store, id: ExchangeId) -> Vec<LintCode> {
    let full: Vec<LintCode> = s
        .get(id)
        .unwrap()
        .unwrap()
        .lints
        .unwrap_or_default()
        .iter()
        .map(|l| l.code)
        .collect();
    // The list row agrees with the full row.
    let row = s
        .list(&Filter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert_eq!(row.lints, full, "summary and full lints differ for {id}");
    assert_eq!(row.handshake, hs(s, id));
    full
}

fn paired(a: ExchangeId, b: ExchangeId) -> (Option<Handshake>, Option<Handshake>) {
    (
        Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: Some(b),
        }),
        Some(Handshake {
            leg: twk_capture::Leg::Retry,
            with: Some(a),
        }),
    )
}

#[test]
fn the_retry_pairs_with_the_challenged_leg_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let a = s.insert(&leg1(T)).unwrap();
    assert_eq!(
        hs(&s, a),
        Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: None
        }),
        "a waiting leg 1 has with: null"
    );
    let b = s.insert(&leg2(T + 800)).unwrap();
    assert_eq!((hs(&s, a), hs(&s, b)), paired(a, b));
    assert!(codes(&s, a).is_empty());
    assert!(codes(&s, b).is_empty());
    // Long after: still no retry-never-came on a paired leg 1.
    s.set_now_ms(Some(T + 3_600_000));
    assert!(codes(&s, a).is_empty());
}

/// A handshake is one delivery: its retry (leg 2) has its leg 1's attempt, and the
/// sender's next delivery of the same webhook (another handshake) is attempt 2.
#[test]
fn a_handshake_counts_as_one_delivery_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let attempt = |s: &Store, id| s.get(id).unwrap().unwrap().attempt;
    let rows = s.insert_batch(&[leg1(T), leg2(T + 5)]).unwrap();
    assert_eq!((rows[0].attempt, rows[1].attempt), (Some(1), Some(1)));
    assert_eq!(attempt(&s, rows[1].id), Some(1));
    let a = s.insert(&leg1(T + 60_000)).unwrap();
    let b = s.insert(&leg2(T + 60_400)).unwrap();
    assert_eq!((attempt(&s, a), attempt(&s, b)), (Some(2), Some(2)));
}

#[test]
fn pairs_inside_one_batch_and_reports_it_in_the_returned_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let rows = s.insert_batch(&[leg1(T), leg2(T + 5)]).unwrap();
    let (a, b) = (rows[0].id, rows[1].id);
    assert_eq!((rows[0].handshake, rows[1].handshake), paired(a, b));
    assert!(rows.iter().all(|r| r.lints.is_empty()));
    assert_eq!((hs(&s, a), hs(&s, b)), paired(a, b));
}

#[test]
fn a_retry_stored_before_its_challenge_still_pairs_and_loses_the_preemptive_lint() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let b = s.insert(&leg2(T + 500)).unwrap();
    assert_eq!(hs(&s, b), None);
    assert_eq!(codes(&s, b), vec![LintCode::PreemptiveCredentials]);
    let a = s.insert(&leg1(T)).unwrap();
    assert_eq!((hs(&s, a), hs(&s, b)), paired(a, b));
    assert!(
        codes(&s, b).is_empty(),
        "recomputed when the pairing arrived"
    );
}

#[test]
fn each_mismatch_does_not_pair() {
    type Change = fn(&mut Exchange);
    let cases: Vec<(&str, Change)> = vec![
        ("method", |e| e.method = "PUT".into()),
        ("path", |e| e.path = "/bandwidth/other".into()),
        ("query", |e| e.path = format!("{PATH}?x=1")),
        ("body hash", |e| {
            e.request.body = body(br#"[{"type":"message-failed"}]"#);
        }),
        ("sender ip", |e| {
            e.remote_addr = Some("198.51.100.2:51234".into());
        }),
        ("tunnel", |e| e.tunnel = "other".into()),
        ("more than 60 s", |e| e.timings.received_ms = T + 60_001),
        ("before leg 1", |e| e.timings.received_ms = T - 1),
        ("a replay", |e| e.replay_of = Some(1)),
        ("no sender address", |e| e.remote_addr = None),
    ];
    for (what, change) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let a = s.insert(&leg1(T)).unwrap();
        let mut second = leg2(T + 1_000);
        change(&mut second);
        let b = s.insert(&second).unwrap();
        assert_eq!(
            hs(&s, a),
            Some(Handshake {
                leg: twk_capture::Leg::Challenge,
                with: None
            }),
            "{what}: leg 1 paired"
        );
        assert_eq!(hs(&s, b), None, "{what}: leg 2 paired");
        let pairable = second.replay_of.is_none() && second.remote_addr.is_some();
        assert_eq!(
            codes(&s, b).contains(&LintCode::PreemptiveCredentials),
            pairable,
            "{what}"
        );
        // And the other insert order does not pair either.
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let b = s.insert(&second).unwrap();
        let a = s.insert(&leg1(T)).unwrap();
        assert_eq!(
            hs(&s, a),
            Some(Handshake {
                leg: twk_capture::Leg::Challenge,
                with: None
            }),
            "{what}"
        );
        assert_eq!(hs(&s, b), None, "{what}");
    }
}

#[test]
fn the_window_is_inclusive_and_the_port_of_the_sender_does_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let a = s.insert(&leg1(T)).unwrap();
    let mut b2 = leg2(T + 60_000);
    b2.remote_addr = Some("203.0.113.7:40000".into());
    let b = s.insert(&b2).unwrap();
    assert_eq!((hs(&s, a), hs(&s, b)), paired(a, b));
}

#[test]
fn one_leg_1_pairs_one_retry_and_the_latest_challenge_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let old = s.insert(&leg1(T)).unwrap();
    let recent = s.insert(&leg1(T + 2_000)).unwrap();
    let b = s.insert(&leg2(T + 3_000)).unwrap();
    assert_eq!((hs(&s, recent), hs(&s, b)), paired(recent, b));
    assert_eq!(
        hs(&s, old),
        Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: None
        })
    );
    // A second retry takes the challenge still open (two deliveries, two handshakes)…
    let c = s.insert(&leg2(T + 4_000)).unwrap();
    assert_eq!((hs(&s, old), hs(&s, c)), paired(old, c));
    // …and a third has no challenge left: preemptive.
    let dup = s.insert(&leg2(T + 5_000)).unwrap();
    assert_eq!(hs(&s, dup), None);
    assert_eq!(codes(&s, dup), vec![LintCode::PreemptiveCredentials]);
}

#[test]
fn strip_auth_retries_pair_through_the_agents_check() {
    // With --strip-auth the stored request has no Authorization header: the agent's check
    // (auth.matched) still makes it an authenticated retry.
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let mut l1 = leg1(T);
    l1.auth = Some(AuthInfo {
        user: None,
        matched: None,
    });
    let a = s.insert(&l1).unwrap();
    let mut l2 = exchange("bw", T + 10, PATH, BODY);
    l2.auth = Some(AuthInfo {
        user: Some("bw-user".into()),
        matched: Some(true),
    });
    let b = s.insert(&l2).unwrap();
    assert_eq!((hs(&s, a), hs(&s, b)), paired(a, b));
    assert_eq!(s.get(b).unwrap().unwrap().exchange.auth, l2.auth);
}

#[test]
fn a_bare_401_is_lost_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let mut ex = leg1(T);
    ex.response.as_mut().unwrap().headers = headers(&[("content-type", "text/plain")]);
    // Known before the store has it (the tunnel's live lines), the same as stored.
    let early = twk_capture::lints_of(&ex);
    let id = s.insert(&ex).unwrap();
    let got = s.get(id).unwrap().unwrap();
    let lints = got.lints.unwrap();
    assert_eq!(early, lints);
    assert_eq!(
        LintCode::Unauthorized401WithoutChallenge.label(),
        "bare 401"
    );
    assert_eq!(lints.len(), 1);
    assert_eq!(lints[0].code, LintCode::Unauthorized401WithoutChallenge);
    assert_eq!(lints[0].severity, Severity::Error);
    assert!(
        lints[0]
            .message
            .contains("Bandwidth sends the credentials from the Bandwidth application"),
        "{}",
        lints[0].message
    );
    assert_eq!(
        got.handshake,
        Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: None
        })
    );
    // No retry will come, but that is already explained: no retry-never-came on top.
    s.set_now_ms(Some(T + 3_600_000));
    assert_eq!(
        codes(&s, id),
        vec![LintCode::Unauthorized401WithoutChallenge]
    );
}

#[test]
fn a_challenge_that_is_not_basic_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let mut ex = leg1(T);
    ex.response.as_mut().unwrap().headers = headers(&[(
        "www-authenticate",
        "Bearer realm=\"api\", error=\"invalid_token\"",
    )]);
    let id = s.insert(&ex).unwrap();
    let lints = s.get(id).unwrap().unwrap().lints.unwrap();
    assert_eq!(lints[0].code, LintCode::ChallengeNotBasic);
    assert!(lints[0].message.contains("Bearer"));
    // Several challenges, one of them Basic: fine.
    let mut ok = leg1(T + 1);
    ok.response.as_mut().unwrap().headers = headers(&[
        ("www-authenticate", "Digest realm=\"a\", nonce=\"n\""),
        ("www-authenticate", "Basic realm=\"a\""),
    ]);
    let id = s.insert(&ok).unwrap();
    assert!(codes(&s, id).is_empty());
}

#[test]
fn wrong_credentials_are_a_mismatch_and_the_password_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    // twk enforcing: the agent knows.
    let a = s.insert(&leg1(T)).unwrap();
    let mut wrong = leg1(T + 100);
    wrong.request.headers.extend(headers(&[(
        "authorization",
        &basic("bw-user", "hunter2-guess"),
    )]));
    wrong.auth = Some(AuthInfo {
        user: Some("bw-user".into()),
        matched: Some(false),
    });
    let b = s.insert(&wrong).unwrap();
    assert_eq!(
        (hs(&s, a), hs(&s, b)),
        paired(a, b),
        "a wrong retry is still leg 2"
    );
    let got = s.get(b).unwrap().unwrap();
    let lints = got.lints.clone().unwrap();
    assert_eq!(
        lints.iter().map(|l| l.code).collect::<Vec<_>>(),
        vec![LintCode::CredentialsMismatch]
    );
    assert!(lints[0].message.contains("\"bw-user\""));
    assert!(lints[0].message.contains("********"));
    let json = exchange_json(&got, false).to_string();
    assert!(!json.contains("hunter2"), "{json}");

    // The app enforcing: it answered 401 to Basic credentials.
    let mut app = leg1(T + 200);
    app.path = "/app".into();
    app.request.headers.extend(headers(&[(
        "authorization",
        &basic("someone\u{1b}[2J", "hunter2"),
    )]));
    let c = s.insert(&app).unwrap();
    let lints = s.get(c).unwrap().unwrap().lints.unwrap();
    let codes_c: Vec<_> = lints.iter().map(|l| l.code).collect();
    assert!(
        codes_c.contains(&LintCode::CredentialsMismatch),
        "{codes_c:?}"
    );
    let m = &lints
        .iter()
        .find(|l| l.code == LintCode::CredentialsMismatch)
        .unwrap()
        .message;
    assert!(m.contains("the app answered 401"));
    assert!(!m.contains('\u{1b}') && !m.contains("hunter2"), "{m}");

    // A Bearer token the app refuses is not a Basic-auth credentials mismatch.
    let mut bearer = leg1(T + 300);
    bearer.path = "/api".into();
    bearer
        .request
        .headers
        .extend(headers(&[("authorization", "Bearer expired")]));
    let e = s.insert(&bearer).unwrap();
    assert!(codes(&s, e).is_empty(), "{:?}", codes(&s, e));
    assert_eq!(hs(&s, e), None);
}

#[test]
fn retry_never_came_is_judged_at_read_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let a = s.insert(&leg1(T)).unwrap();
    s.set_now_ms(Some(T + 60_000));
    assert!(codes(&s, a).is_empty(), "the 60 s are not over yet");
    s.set_now_ms(Some(T + 60_001));
    assert_eq!(codes(&s, a), vec![LintCode::RetryNeverCame]);
    let lint = Filter {
        lint: Some(LintCode::RetryNeverCame),
        ..Filter::default()
    };
    assert_eq!(s.count(&lint).unwrap(), 1);
    assert_eq!(s.list(&lint).unwrap()[0].id, a);
    let got = s.get(a).unwrap().unwrap();
    assert_eq!(got.lints.as_ref().unwrap()[0].severity, Severity::Warning);
    let json = exchange_json(&got, false);
    assert_eq!(json["lints"][0]["code"], "retry-never-came");
    // A late retry (inside the window) inserted afterwards clears it.
    let b = s.insert(&leg2(T + 59_000)).unwrap();
    assert_eq!((hs(&s, a), hs(&s, b)), paired(a, b));
    assert!(codes(&s, a).is_empty());
    assert_eq!(s.count(&lint).unwrap(), 0);
}

#[test]
fn preemptive_credentials_are_informational() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let id = s.insert(&leg2(T)).unwrap();
    let lints = s.get(id).unwrap().unwrap().lints.unwrap();
    assert_eq!(lints[0].code, LintCode::PreemptiveCredentials);
    // Pairing decides this one: the store says it, lints_of (before pairing) cannot.
    assert!(twk_capture::lints_of(&leg2(T)).is_empty());
    assert_eq!(lints[0].severity, Severity::Info);
    // Other schemes are not Basic credentials.
    let mut bearer = exchange("bw", T + 1, "/api", b"{}");
    bearer
        .request
        .headers
        .extend(headers(&[("authorization", "Bearer abc")]));
    let id = s.insert(&bearer).unwrap();
    assert!(codes(&s, id).is_empty());
}

#[test]
fn ports_bandwidth_does_not_call_are_flagged_for_auth_and_bandwidth_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let at_port = |mut ex: Exchange, url: &str| {
        ex.public_url = url.into();
        ex
    };
    let bad = s
        .insert(&at_port(
            leg1(T),
            "http://bw.twk.example:8/bandwidth/status",
        ))
        .unwrap();
    let lints = s.get(bad).unwrap().unwrap().lints.unwrap();
    let l = lints
        .iter()
        .find(|l| l.code == LintCode::PortNotAccepted)
        .unwrap();
    assert_eq!(l.severity, Severity::Warning);
    assert!(l.message.contains("port 8"));
    let mut bw = exchange("x", T + 1, "/cb", b"[]");
    bw.public_url = "https://x.twk.example:1023/cb".into();
    bw.provider = Some("bandwidth".into());
    let id = s.insert(&bw).unwrap();
    assert_eq!(codes(&s, id), vec![LintCode::PortNotAccepted]);
    for ok in [
        "http://x.twk.example:80/cb",
        "https://x.twk.example/cb",
        "https://x.twk.example:443/cb",
        "http://x.twk.example:1024/cb",
        "http://[::1]:65535/cb",
    ] {
        let id = s.insert(&at_port(leg2(T + 2), ok)).unwrap();
        assert!(!codes(&s, id).contains(&LintCode::PortNotAccepted), "{ok}");
    }
    // A plain request without auth on an odd port is none of Bandwidth's business.
    let id = s
        .insert(&at_port(
            exchange("x", T + 3, "/plain", b"{}"),
            "http://x.twk.example:8/plain",
        ))
        .unwrap();
    assert!(codes(&s, id).is_empty());
}

#[test]
fn lint_filter_and_collapsed_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let a = s.insert(&leg1(T)).unwrap();
    let b = s.insert(&leg2(T + 10)).unwrap();
    let mut bare = leg1(T + 20);
    bare.path = "/bare".into();
    bare.response.as_mut().unwrap().headers.clear();
    let c = s.insert(&bare).unwrap();
    let plain = s.insert(&exchange("bw", T + 30, "/plain", b"{}")).unwrap();
    let by = |code| {
        s.list(&Filter {
            lint: Some(code),
            order: Order::OldestFirst,
            ..Filter::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(by(LintCode::Unauthorized401WithoutChallenge), vec![c]);
    assert!(by(LintCode::CredentialsMismatch).is_empty());
    let collapsed: Vec<_> = s
        .list(&Filter {
            collapse_handshakes: true,
            order: Order::OldestFirst,
            ..Filter::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(collapsed, vec![b, c, plain], "leg 1 {a} folded into leg 2");
    assert_eq!(
        s.count(&Filter {
            collapse_handshakes: true,
            ..Filter::default()
        })
        .unwrap(),
        3
    );
    // Counting with other conditions agrees with listing (count = all − folded leg-1 rows).
    for path in ["/cb", "/plain", "/nope"] {
        let f = Filter {
            collapse_handshakes: true,
            grep: Some(path.to_owned()),
            ..Filter::default()
        };
        assert_eq!(
            s.count(&f).unwrap(),
            s.list(&f).unwrap().len() as u64,
            "{path}"
        );
    }
}

#[test]
fn log_json_has_handshake_and_lints() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let a = s.insert(&leg1(T)).unwrap();
    let b = s.insert(&leg2(T + 10)).unwrap();
    let plain = s.insert(&exchange("bw", T + 30, "/plain", b"{}")).unwrap();
    let j = |s: &Store, id| exchange_json(&s.get(id).unwrap().unwrap(), false);
    assert_eq!(
        j(&s, a)["handshake"],
        serde_json::json!({"leg": 1, "with": b})
    );
    assert_eq!(
        j(&s, b)["handshake"],
        serde_json::json!({"leg": 2, "with": a})
    );
    assert_eq!(j(&s, a)["lints"], serde_json::json!([]));
    assert_eq!(j(&s, plain)["handshake"], serde_json::Value::Null);
    assert_eq!(j(&s, plain)["lints"], serde_json::json!([]));
    let waiting = s.insert(&leg1(T + 100_000)).unwrap();
    s.set_now_ms(Some(T + 1_000_000));
    assert_eq!(
        j(&s, waiting)["handshake"],
        serde_json::json!({"leg": 1, "with": null})
    );
    let l = &j(&s, waiting)["lints"][0];
    assert_eq!(l["code"], "retry-never-came");
    assert_eq!(l["severity"], "warning");
    assert!(l["message"].as_str().unwrap().contains("60 s"));
}

#[test]
fn hostile_volumes_stay_fast_and_correct() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("twk"));
    opts.retention_per_tunnel = 0;
    let mut s = Store::open(&opts).unwrap();
    s.set_now_ms(Some(T));
    let started = std::time::Instant::now();
    // 20 000 challenged first legs of the very same request (one key), 20 000 retries of
    // distinct requests that never pair, and junk sender addresses.
    for chunk in 0..40i64 {
        let batch: Vec<Exchange> = (0..1000i64)
            .map(|i| {
                let n = chunk * 1000 + i;
                if chunk % 2 == 0 {
                    leg1(T + n)
                } else {
                    let mut e = leg2(T + n);
                    e.path = format!("/distinct/{n}");
                    if n % 7 == 0 {
                        e.remote_addr = Some(format!("\u{0}junk{n}\u{202e}"));
                    }
                    e
                }
            })
            .collect();
        s.insert_batch(&batch).unwrap();
    }
    // The retry of the first-leg request pairs with the most recent challenge (inserted at
    // T + 38 999), in one index probe.
    let probe = std::time::Instant::now();
    let b = s.insert(&leg2(T + 40_000)).unwrap();
    let probe = probe.elapsed();
    let h = hs(&s, b).unwrap();
    assert_eq!(h.leg, twk_capture::Leg::Retry);
    let partner = s.get(h.with.unwrap()).unwrap().unwrap();
    assert_eq!(partner.exchange.timings.received_ms, T + 38_999);
    assert!(
        probe < std::time::Duration::from_millis(500),
        "pairing probe took {probe:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    // A huge path and a binary body hash as usual.
    let mut huge = leg1(T + 50_000);
    huge.path = format!("/{}", "a".repeat(1 << 20));
    huge.request.body = body(&[0xff; 4096]);
    let id = s.insert(&huge).unwrap();
    assert_eq!(
        hs(&s, id),
        Some(Handshake {
            leg: twk_capture::Leg::Challenge,
            with: None
        })
    );
}

#[test]
fn a_401_to_a_sender_that_never_retries_with_credentials_is_no_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    // The app refuses a Stripe webhook with 401 (a common answer to a bad signature): an
    // ordinary refusal, not a lost Bandwidth callback.
    let mut stripe = exchange("st", T, "/hooks/stripe", b"{}");
    stripe.provider = Some("stripe".into());
    stripe.status = Some(401);
    let id = s.insert(&stripe).unwrap();
    let got = s.get(id).unwrap().unwrap();
    assert_eq!(got.lints, None);
    assert_eq!(got.handshake, None);
    // Even with a Basic challenge: Stripe will not retry with credentials.
    stripe.request_id = "st-2".into();
    stripe.response = Some(twk_capture::Message {
        headers: headers(&[("www-authenticate", "Basic realm=\"app\"")]),
        body: body(b""),
    });
    let id = s.insert(&stripe).unwrap();
    s.set_now_ms(Some(T + 3_600_000));
    let got = s.get(id).unwrap().unwrap();
    assert_eq!((got.lints, got.handshake), (None, None));
}

#[test]
fn an_unknown_sender_pairs_when_it_retries_but_is_never_blamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let mut a = leg1(T);
    a.provider = None;
    let mut b = leg2(T + 150);
    b.provider = None;
    let a_id = s.insert(&a).unwrap();
    let b_id = s.insert(&b).unwrap();
    assert_eq!((hs(&s, a_id), hs(&s, b_id)), paired(a_id, b_id));
    // A lone leg 1 of an unknown sender: no "retry never came", no "bare 401".
    let mut lone = leg1(T + 5_000);
    lone.provider = None;
    lone.request_id = "lone".into();
    lone.request.body = body(b"other");
    let id = s.insert(&lone).unwrap();
    s.set_now_ms(Some(T + 3_600_000));
    assert!(codes(&s, id).is_empty());
    let mut bare = lone.clone();
    bare.request_id = "bare".into();
    bare.response.as_mut().unwrap().headers.clear();
    let id = s.insert(&bare).unwrap();
    assert!(codes(&s, id).is_empty());
}

#[test]
fn a_bare_401_to_twilio_names_twilio_and_its_callback_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let mut ex = leg1(T);
    ex.provider = Some("twilio".into());
    ex.response.as_mut().unwrap().headers.clear();
    let id = s.insert(&ex).unwrap();
    let lints = s.get(id).unwrap().unwrap().lints.unwrap();
    assert_eq!(lints[0].code, LintCode::Unauthorized401WithoutChallenge);
    assert!(lints[0].message.contains("Twilio"), "{}", lints[0].message);
    assert!(
        lints[0].message.contains("callback URL"),
        "{}",
        lints[0].message
    );
    assert!(
        !lints[0].message.contains("Bandwidth"),
        "{}",
        lints[0].message
    );
}
