//! The oracle's cases: about 30 per provider from one seed, each a request to sign, the inputs
//! of the signature, and whether the SDK must accept it.

use serde_json::{Map, Value, json};

/// A request as the harness passes it around.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn new(method: &str, url: &str, body: impl Into<String>) -> Self {
        Req {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the header (any case) or adds it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub provider: &'static str,
    /// The verifier's secret (twk's `--secret`, the SDK's key).
    pub secret: String,
    /// The request before signing.
    pub req: Req,
    pub now: i64,
    /// twk's `--tolerance` (`None`: twk's default for the scheme).
    pub tolerance: Option<u64>,
    /// Signing inputs: timestamp (Stripe, Slack, Standard Webhooks, Svix), message id or Authy
    /// nonce, JWT claims, the secrets the SDK signs with (a rotation signs with several), the
    /// URL the sender signed (Twilio, when it differs from the request's by a port).
    pub timestamp: i64,
    pub id: String,
    pub claims: Option<Value>,
    pub signers: Vec<String>,
    pub sign_url: Option<String>,
    /// Whether the SDK must accept the SDK-signed request, and the twk-signed one.
    pub expect_valid: bool,
    pub expect_twk_signed_valid: bool,
}

impl Case {
    pub fn new(provider: &'static str, n: usize, what: &str, secret: String, req: Req) -> Self {
        Case {
            name: format!("{provider}/{n:02} {what}"),
            provider,
            signers: vec![secret.clone()],
            secret,
            req,
            now: NOW,
            tolerance: None,
            timestamp: NOW,
            id: String::new(),
            claims: None,
            sign_url: None,
            expect_valid: true,
            expect_twk_signed_valid: true,
        }
    }

    /// The tolerance the SDK is given: twk's, or twk's default where the SDK takes one
    /// (Stripe 300 s; PyJWT's leeway 0). Slack, Standard Webhooks and Svix have a fixed 300 s.
    pub fn sdk_tolerance(&self) -> Option<u64> {
        match self.provider {
            "stripe" => Some(self.tolerance.unwrap_or(300)),
            "authy-webhook" => Some(self.tolerance.unwrap_or(0)),
            _ => self.tolerance,
        }
    }

    /// `--timestamp` / `--id` for `twk-tunnel sign`: the same inputs the SDK signed with.
    pub fn sign_flags(&self) -> Vec<String> {
        match self.provider {
            "stripe" | "slack" => vec![format!("--timestamp={}", self.timestamp)],
            "standard-webhooks" | "svix" => vec![
                format!("--timestamp={}", self.timestamp),
                format!("--id={}", self.id),
            ],
            "authy-onetouch" => vec![format!("--id={}", self.id)],
            _ => Vec::new(),
        }
    }
}

pub const NOW: i64 = 1_700_000_000;

/// splitmix64: a small, seedable generator (the cases must be the same on every run).
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| *self.pick(A) as char).collect()
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Text that trips up encoders: unicode, `+`, `%20`, `~`, `*`, `&`, `=`, `/`, `'`, spaces.
const TEXT: &[&str] = &[
    "hello",
    "a b",
    "x+y",
    "50%",
    "%20",
    "~tilde",
    "caf\u{e9}",
    "\u{65e5}\u{672c}\u{8a9e}",
    "\u{1f642} ok",
    "a&b=c",
    "semi;colon",
    "slash/path",
    "it's",
    "star*",
    "comma,",
    "pipe|",
    "",
    "0",
    "-1",
    "CA1234567890abcdef",
    "line\nbreak",
];

pub fn text(rng: &mut Rng) -> String {
    let n = 1 + rng.below(3);
    (0..n)
        .map(|_| *rng.pick(TEXT))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Percent-encodes for a form or query: unreserved kept, space as `+` or `%20`, `~` raw or
/// encoded (both are what senders do).
pub fn form_encode(rng: &mut Rng, s: &str) -> String {
    let plus = rng.chance(2);
    let raw_tilde = rng.chance(2);
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => out.push(b as char),
            b'~' if raw_tilde => out.push('~'),
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn form(rng: &mut Rng, pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(rng, k), form_encode(rng, v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A JSON event body like the providers send, with unicode and nesting; sometimes pretty,
/// with a trailing newline or CRLFs, once large.
pub fn event_body(rng: &mut Rng, n: usize) -> String {
    let mut data = Map::new();
    for i in 0..1 + rng.below(5) {
        data.insert(format!("field_{i}"), Value::String(text(rng)));
    }
    data.insert("amount".to_owned(), json!(rng.below(100_000)));
    data.insert(
        "nested".to_owned(),
        json!({"list": [text(rng), 1, null, true], "x": {}}),
    );
    if n % 11 == 7 {
        // A large body (the size of a big payload, past any small-buffer path).
        data.insert("blob".to_owned(), Value::String("\u{e9}xy ".repeat(60_000)));
    }
    let v = json!({"id": format!("evt_{}", rng.alnum(14)), "type": "payment_intent.succeeded",
        "data": {"object": data}});
    let mut s = if rng.chance(3) {
        serde_json::to_string_pretty(&v).unwrap()
    } else {
        v.to_string()
    };
    match rng.below(6) {
        0 => s.push('\n'),
        1 => s = s.replace('\n', "\r\n"),
        _ => {}
    }
    s
}

/// Every case, provider by provider.
pub fn generate(seed: u64) -> Vec<Case> {
    let mut rng = Rng(seed);
    let mut all = Vec::new();
    all.extend(crate::cases_url::twilio(&mut rng));
    all.extend(crate::cases_url::authy_onetouch(&mut rng));
    all.extend(crate::cases_body::authy_webhook(&mut rng));
    all.extend(crate::cases_body::stripe(&mut rng));
    all.extend(crate::cases_body::slack(&mut rng));
    all.extend(crate::cases_body::plain_hmac(&mut rng, "github"));
    all.extend(crate::cases_body::plain_hmac(&mut rng, "shopify"));
    all.extend(crate::cases_body::standard_webhooks(
        &mut rng,
        "standard-webhooks",
    ));
    all.extend(crate::cases_body::standard_webhooks(&mut rng, "svix"));
    all
}
