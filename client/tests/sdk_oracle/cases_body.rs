//! Cases for the schemes that sign the body (and a timestamp or id): Authy webhooks (JWT),
//! Stripe, Slack, GitHub, Shopify, Standard Webhooks and Svix.

use crate::cases::{Case, NOW, Req, Rng, event_body, form, text};
use base64::Engine as _;
use serde_json::json;

const AUTHY_EVENTS: &[&str] = &[
    "user_added",
    "token_verified",
    "one_touch_request_responded",
    "phone_verification_started",
];

pub fn authy_webhook(rng: &mut Rng) -> Vec<Case> {
    (0..30).map(|n| authy_webhook_case(rng, n)).collect()
}

/// Claims around the clock's edges: exp (expired from the second exp on), iat and nbf (not
/// valid while in the future), with and without leeway.
fn authy_webhook_case(rng: &mut Rng, n: usize) -> Case {
    let secret = format!("WSK_{}", rng.alnum(32));
    let mut claims = json!({
        "event": *rng.pick(AUTHY_EVENTS),
        "authy_id": rng.below(100_000),
        "data": {"phone_number": "+15551234567", "note": text(rng)},
        "iat": NOW - 10,
    });
    let d = [-1i64, 0, 1][rng.below(3)];
    let leeway = *rng.pick(&[1u64, 5, 30]);
    let l = leeway as i64;
    let (what, tolerance, valid) = match n % 6 {
        0 => ("no exp".to_owned(), None, true),
        1 => {
            let exp = NOW + d;
            claims["exp"] = json!(exp);
            (format!("exp now{d:+}"), None, exp > NOW)
        }
        2 => {
            let exp = NOW - l + d;
            claims["exp"] = json!(exp);
            (
                format!("exp now-{l}{d:+}, leeway {l}"),
                Some(leeway),
                exp > NOW - l,
            )
        }
        3 => {
            let iat = NOW + d + 1;
            claims["iat"] = json!(iat);
            (format!("iat now{:+}", d + 1), None, iat <= NOW)
        }
        4 => {
            let nbf = NOW + l + d;
            claims["nbf"] = json!(nbf);
            (
                format!("nbf now+{l}{d:+}, leeway {l}"),
                Some(leeway),
                nbf <= NOW + l,
            )
        }
        _ => {
            let iat = NOW + l + d;
            claims["iat"] = json!(iat);
            (
                format!("iat now+{l}{d:+}, leeway {l}"),
                Some(leeway),
                iat <= NOW + l,
            )
        }
    };
    let req = Req::new(
        "POST",
        "https://example.com/authy-webhooks",
        claims.to_string(),
    )
    .with("Content-Type", "application/json");
    let mut case = Case::new("authy-webhook", n, &what, secret, req);
    case.claims = Some(claims);
    case.tolerance = tolerance;
    case.expect_valid = valid;
    case.expect_twk_signed_valid = valid;
    case
}

pub fn stripe(rng: &mut Rng) -> Vec<Case> {
    (0..32).map(|n| stripe_case(rng, n)).collect()
}

fn stripe_case(rng: &mut Rng, n: usize) -> Case {
    let secret = format!("whsec_{}", rng.alnum(32));
    let body = event_body(rng, n);
    // (skew, tolerance, in time): Stripe rejects old timestamps only.
    let (skew, tolerance, in_time) = match n % 8 {
        0 => (0, None, true),
        1 => (10, None, true),
        2 => (300, None, true),
        3 => (301, None, false),
        4 => (-1000, None, true),
        5 => {
            let s = [60, 61][rng.below(2)];
            (s, Some(60), s <= 60)
        }
        6 => (100_000, Some(0), true),
        _ => (5, None, true),
    };
    let req = Req::new("POST", "https://example.com/stripe", body)
        .with("Content-Type", "application/json");
    let what = format!("skew {skew}, tolerance {tolerance:?}");
    let mut case = Case::new("stripe", n, &what, secret.clone(), req);
    case.timestamp = NOW - skew;
    case.tolerance = tolerance;
    case.expect_valid = in_time;
    case.expect_twk_signed_valid = in_time;
    let other = format!("whsec_{}", rng.alnum(32));
    rotate(rng, &mut case, n, other);
    case
}

/// Several signatures (a key rotation): the verifier's secret among others, or (every
/// sixteenth case) only another secret, which the SDK must reject.
fn rotate(rng: &mut Rng, case: &mut Case, n: usize, other: String) {
    if n % 16 == 15 {
        case.signers = vec![other];
        case.expect_valid = false;
        case.name.push_str(", signed with another secret");
    } else if n % 4 == 3 || rng.chance(6) {
        case.signers = if rng.chance(2) {
            vec![other, case.secret.clone()]
        } else {
            vec![case.secret.clone(), other]
        };
        case.name.push_str(", two signatures");
    }
}

/// (skew, in time) for the schemes with a ±300 s window.
fn window(n: usize) -> (i64, bool) {
    let skew = [0, 5, 299, 300, 301, -300, -301][n % 7];
    (skew, skew.abs() <= 300)
}

pub fn slack(rng: &mut Rng) -> Vec<Case> {
    (0..30).map(|n| slack_case(rng, n)).collect()
}

fn slack_case(rng: &mut Rng, n: usize) -> Case {
    let secret = rng.alnum(32);
    let (skew, in_time) = window(n);
    let req = if n.is_multiple_of(2) {
        let params = vec![
            ("token".to_owned(), rng.alnum(24)),
            ("team_domain".to_owned(), "acme".to_owned()),
            ("command".to_owned(), "/deploy".to_owned()),
            ("text".to_owned(), text(rng)),
            (
                "trigger_id".to_owned(),
                format!("13345224609.{}", rng.below(1_000_000)),
            ),
        ];
        Req::new("POST", "https://example.com/slack", form(rng, &params))
            .with("Content-Type", "application/x-www-form-urlencoded")
    } else {
        Req::new("POST", "https://example.com/slack", event_body(rng, n))
            .with("Content-Type", "application/json")
    };
    let mut case = Case::new("slack", n, &format!("skew {skew}"), secret, req);
    case.timestamp = NOW - skew;
    case.expect_valid = in_time;
    case.expect_twk_signed_valid = in_time;
    case
}

/// GitHub and Shopify: an HMAC of the body, no timestamp.
pub fn plain_hmac(rng: &mut Rng, provider: &'static str) -> Vec<Case> {
    (0..30)
        .map(|n| {
            let secret = match n % 3 {
                0 => "It's a Secret to Everybody".to_owned(),
                1 => format!("caf\u{e9} {}", rng.alnum(8)),
                _ => rng.alnum(40),
            };
            let body = match n % 4 {
                0 => {
                    let p = vec![("payload".to_owned(), event_body(rng, n))];
                    form(rng, &p)
                }
                _ => event_body(rng, n),
            };
            let req = if provider == "github" {
                Req::new("POST", "https://example.com/gh", body)
                    .with("X-GitHub-Event", "push")
                    .with("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            } else {
                Req::new("POST", "https://example.com/shop", body)
                    .with("X-Shopify-Topic", "orders/create")
                    .with("X-Shopify-Shop-Domain", "acme.myshopify.com")
            };
            Case::new(
                provider,
                n,
                "body",
                secret,
                req.with("Content-Type", "application/json"),
            )
        })
        .collect()
}

/// A `whsec_` secret (or, now and then, the bare base64 the libraries also take).
fn whsec(rng: &mut Rng) -> String {
    let len = *rng.pick(&[24, 32]);
    let key = base64::engine::general_purpose::STANDARD.encode(rng.bytes(len));
    if rng.chance(5) {
        key
    } else {
        format!("whsec_{key}")
    }
}

pub fn standard_webhooks(rng: &mut Rng, provider: &'static str) -> Vec<Case> {
    (0..30)
        .map(|n| {
            let secret = whsec(rng);
            let (skew, in_time) = window(n);
            let req = Req::new("POST", "https://example.com/hooks", event_body(rng, n))
                .with("Content-Type", "application/json");
            let mut case = Case::new(provider, n, &format!("skew {skew}"), secret, req);
            case.timestamp = NOW - skew;
            case.id = format!("msg_{}", rng.alnum(27));
            case.expect_valid = in_time;
            case.expect_twk_signed_valid = in_time;
            let other = whsec(rng);
            rotate(rng, &mut case, n, other);
            case
        })
        .collect()
}
