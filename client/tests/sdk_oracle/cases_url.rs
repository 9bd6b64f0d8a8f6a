//! Cases for the schemes that sign the URL: Twilio and Authy OneTouch.

use crate::cases::{Case, NOW, Req, Rng, event_body, form, text};
use serde_json::{Map, Value, json};

const HOSTS: &[&str] = &[
    "example.com",
    "hooks.example.org",
    "xn--caf-dma.example",
    "tunnel.twk.dev",
];
const TWILIO_KEYS: &[&str] = &[
    "Body",
    "From",
    "To",
    "MessageSid",
    "AccountSid",
    "Digits",
    "Reason",
    "ReasonConferenceEnded",
    "caf\u{e9}",
    "a b",
];

/// scheme://host[:port]/path, and the port part on its own.
fn origin_and_path(rng: &mut Rng) -> (String, String, String) {
    let scheme = if rng.chance(4) { "http" } else { "https" };
    let host = rng.pick(HOSTS);
    let port = match rng.below(5) {
        0 => ":8443".to_owned(),
        1 if scheme == "https" => ":443".to_owned(),
        1 => ":80".to_owned(),
        _ => String::new(),
    };
    let path = *rng.pick(&[
        "/sms",
        "/voice/status",
        "/caf%C3%A9/hook",
        "/t/my-tunnel/twilio",
        "/",
    ]);
    (format!("{scheme}://{host}"), port, path.to_owned())
}

fn pairs(rng: &mut Rng, keys: &[&str], n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| (rng.pick(keys).to_string(), text(rng)))
        .collect()
}

pub fn twilio(rng: &mut Rng) -> Vec<Case> {
    (0..32).map(|n| twilio_case(rng, n)).collect()
}

fn twilio_case(rng: &mut Rng, n: usize) -> Case {
    let (origin, port, path) = origin_and_path(rng);
    let kind = ["form", "form", "GET", "JSON"][n % 4];
    let mut query = match rng.below(3) {
        0 => {
            let p = pairs(rng, TWILIO_KEYS, 2);
            format!("?{}", form(rng, &p))
        }
        1 => "?foo=1&bar=2".to_owned(),
        _ => String::new(),
    };
    if kind == "GET" && query.is_empty() {
        let p = pairs(rng, TWILIO_KEYS, 3);
        query = format!("?{}", form(rng, &p));
    }
    let url = format!("{origin}{port}{path}{query}");
    let mut what = vec![kind.to_owned()];
    let mut req = match kind {
        "form" => {
            let count = if n == 13 { 300 } else { 1 + rng.below(6) };
            let mut params = pairs(rng, TWILIO_KEYS, count);
            if n.is_multiple_of(5) {
                // Repeated keys: another value, and the same value twice.
                let (k, v) = params[0].clone();
                params.push((k.clone(), text(rng)));
                params.push((k, v));
                what.push("repeated keys".to_owned());
            }
            let ctype = *rng.pick(&[
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=utf-8",
            ]);
            Req::new("POST", &url, form(rng, &params)).with("Content-Type", ctype)
        }
        "GET" => Req::new("GET", &url, ""),
        _ => Req::new("POST", &url, event_body(rng, n)).with("Content-Type", "application/json"),
    };
    match n % 3 {
        0 => {
            let alg = *rng.pick(&["HMAC_SHA256", "hmac_sha256"]);
            let key = format!("KS{}", rng.alnum(32));
            let value = if rng.chance(2) {
                format!("key={key},algorithm={alg}")
            } else {
                format!("algorithm={alg}, key={key}")
            };
            req = req.with("X-Twilio-Webhooks-Signature-Settings", &value);
            what.push("HMAC-SHA256".to_owned());
        }
        1 if rng.chance(3) => {
            req = req.with(
                "X-Twilio-Webhooks-Signature-Settings",
                "algorithm=HMAC_SHA1",
            );
        }
        _ => {}
    }
    let secret = rng.alnum(32);
    let mut case = Case::new("twilio", n, &what.join(", "), secret, req);
    if kind != "JSON" && rng.chance(3) {
        // The sender signed the URL with its port removed or the default port added: every
        // SDK accepts either.
        let base = format!("{origin}{path}{query}");
        case.sign_url = Some(if port.is_empty() {
            let default = if origin.starts_with("https") {
                ":443"
            } else {
                ":80"
            };
            format!("{origin}{default}{path}{query}")
        } else {
            base
        });
        case.name.push_str(", signed with another port");
    }
    case
}

const AUTHY_KEYS: &[&str] = &[
    "a",
    "b",
    "status",
    "device uuid",
    "caf\u{e9}",
    "x/y",
    "~k",
    "k*",
    "reason",
];

/// A JSON value for OneTouch: strings, integers, simple decimals, null (no booleans or
/// arrays inside arrays: authy-python writes those as Python reprs, a quirk twk does not
/// copy, see docs/signatures.md).
fn scalar(rng: &mut Rng) -> Value {
    match rng.below(5) {
        0 => json!(rng.below(1_000_000)),
        1 => json!([0.25, 12.5, -3.75][rng.below(3)]),
        2 => Value::Null,
        _ => Value::String(text(rng)),
    }
}

fn authy_body(rng: &mut Rng, n: usize) -> (Value, &'static str) {
    let mut m = Map::new();
    m.insert("authy_id".to_owned(), json!(rng.below(100_000)));
    m.insert(
        "callback_action".to_owned(),
        json!("approval_request_status"),
    );
    m.insert(
        "status".to_owned(),
        json!(*rng.pick(&["approved", "denied"])),
    );
    for _ in 0..rng.below(3) {
        m.insert(rng.pick(AUTHY_KEYS).to_string(), scalar(rng));
    }
    let what = match n % 5 {
        0 => {
            let len = *rng.pick(&[1, 2, 5, 10, 11, 12, 14]);
            m.insert(
                "list".to_owned(),
                Value::Array((0..len).map(|_| scalar(rng)).collect()),
            );
            "array"
        }
        1 => {
            let items = (0..2 + rng.below(3))
                .map(|_| json!({"a": scalar(rng), "b": text(rng), "c": {"d": scalar(rng)}}))
                .collect();
            m.insert("logos".to_owned(), Value::Array(items));
            "array of objects"
        }
        2 => {
            m.insert(
                "details".to_owned(),
                json!({"12": text(rng), "x": {"y z": text(rng)}}),
            );
            "nested, a member named by digits"
        }
        3 => {
            m.insert(
                "flags".to_owned(),
                json!({"encrypted": false, "flagged": true, "none": null}),
            );
            m.insert("empty".to_owned(), json!({}));
            m.insert("nothing".to_owned(), json!([]));
            "booleans, null, empty"
        }
        _ => {
            m.insert(
                "approval_request".to_owned(),
                json!({"transaction": {
                "details": {"email": "a@example.com", "note": text(rng)},
                "device_details": {}, "hidden_details": null, "message": text(rng),
                "created_at_time": 1_519_040_759, "encrypted": false},
                "expiration_timestamp": 1_519_127_159, "logos": null}),
            );
            "callback-shaped"
        }
    };
    (Value::Object(m), what)
}

pub fn authy_onetouch(rng: &mut Rng) -> Vec<Case> {
    (0..32).map(|n| authy_case(rng, n)).collect()
}

fn authy_case(rng: &mut Rng, n: usize) -> Case {
    let (origin, port, path) = origin_and_path(rng);
    let secret = rng.alnum(32);
    let nonce = match rng.below(3) {
        0 => NOW.to_string(),
        1 => "1427849783.886085".to_owned(),
        _ => rng.alnum(24),
    };
    let (req, what) = if n % 6 == 5 {
        // GET: the query is the parameters (keys unique: the SDK is handed a dict).
        let mut keys: Vec<&str> = AUTHY_KEYS.to_vec();
        keys.truncate(2 + rng.below(4));
        let params: Vec<(String, String)> =
            keys.iter().map(|k| (k.to_string(), text(rng))).collect();
        let url = format!("{origin}{port}{path}?{}", form(rng, &params));
        (Req::new("GET", &url, ""), "GET".to_owned())
    } else {
        let (body, what) = authy_body(rng, n);
        let query = if rng.chance(3) { "?ignored=1" } else { "" };
        let url = format!("{origin}{port}{path}{query}");
        let body = if rng.chance(3) {
            serde_json::to_string_pretty(&body).unwrap()
        } else {
            body.to_string()
        };
        let req = Req::new("POST", &url, body).with("Content-Type", "application/json");
        (req, what.to_owned())
    };
    let req = req.with("X-Authy-Signature-Nonce", &nonce);
    let mut case = Case::new("authy-onetouch", n, &what, secret, req);
    case.id = nonce;
    case
}
