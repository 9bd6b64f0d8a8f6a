//! Exports: `log --json` objects, HAR 1.2, curl — redaction and byte-exact round trips.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::*;
use std::io::{Read, Write};
use twk_capture::export::curl::{CurlOptions, curl_command};
use twk_capture::export::har::{Har, HarOptions, HarWriter};
use twk_capture::export::json::exchange_json;
use twk_capture::{Exchange, Header, StoredExchange};

const SECRET: &str = "s3cr3t-value-7f2a";

fn secret_exchange() -> Exchange {
    let mut ex = with_event(
        exchange(
            "t",
            1_700_000_000_123,
            "/hook?a=1&b=x%20y",
            b"{\"amount\":42}",
        ),
        "stripe",
        "invoice.paid",
        "valid",
    );
    for (n, v) in [
        ("Authorization", format!("Basic {SECRET}")),
        ("Cookie", format!("session={SECRET}")),
        ("Proxy-Authorization", format!("Bearer {SECRET}")),
        ("Stripe-Signature", format!("t=1,v1={SECRET}")),
        ("X-Twilio-Signature", SECRET.to_owned()),
        ("X-Hub-Signature-256", format!("sha256={SECRET}")),
        ("X-Slack-Signature", format!("v0={SECRET}")),
        ("X-Shopify-Hmac-Sha256", SECRET.to_owned()),
        ("webhook-signature", format!("v1,{SECRET}")),
        ("svix-signature", format!("v1,{SECRET}")),
        ("X-Authy-Signature", SECRET.to_owned()),
    ] {
        ex.request.headers.push(Header {
            name: n.into(),
            value: v.into_bytes(),
        });
    }
    ex.response.as_mut().unwrap().headers.push(Header {
        name: "Set-Cookie".into(),
        value: format!("id={SECRET}").into_bytes(),
    });
    ex
}

fn stored(mut ex: Exchange) -> StoredExchange {
    ex.id.get_or_insert(7);
    StoredExchange {
        exchange: ex,
        attempt: Some(1),
        group_key: None,
        handshake: None,
        lints: None,
    }
}

#[test]
fn secret_query_parameters_are_redacted_in_every_export_unless_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let path = format!("/hook?id=7&token={SECRET}&api_key={SECRET}x&q=a%20b");
    let id = s
        .insert(&exchange("t", 1_700_000_000_123, &path, b""))
        .unwrap();
    let sx = s.get(id).unwrap().unwrap();
    let kept = "/hook?id=7&token=%5BREDACTED%5D&api_key=%5BREDACTED%5D&q=a%20b";

    let json = exchange_json(&sx, false);
    assert_eq!(json["path"], kept);
    assert_eq!(json["url"], format!("https://t.twk.example{kept}"));
    let har = serde_json::to_value(Har::of([&sx], HarOptions::default())).unwrap();
    let req = &har["log"]["entries"][0]["request"];
    assert_eq!(req["url"], format!("https://t.twk.example{kept}"));
    let query: Vec<(String, String)> = req["queryString"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let pairs = [
        ("id", "7"),
        ("token", "[REDACTED]"),
        ("api_key", "[REDACTED]"),
        ("q", "a b"),
    ];
    assert_eq!(query, pairs.map(|(n, v)| (n.to_owned(), v.to_owned())));
    assert_eq!(har["log"]["entries"][0]["_twk"]["path"], kept);
    let curl = curl_command(&sx.exchange, &CurlOptions::default());
    assert!(
        curl.starts_with("# secret query parameters are redacted"),
        "{curl}"
    );
    assert!(
        curl.contains(&format!("--url 'http://127.0.0.1:3000{kept}'")),
        "{curl}"
    );
    for text in [json.to_string(), har.to_string(), curl] {
        assert!(!text.contains(SECRET), "leaks the secret:\n{text}");
    }

    let revealed = HarOptions {
        reveal_secrets: true,
        ..HarOptions::default()
    };
    let curl = curl_command(
        &sx.exchange,
        &CurlOptions {
            reveal_secrets: true,
            ..Default::default()
        },
    );
    assert!(!curl.starts_with('#'), "{curl}");
    for text in [
        exchange_json(&sx, true).to_string(),
        serde_json::to_string(&Har::of([&sx], revealed)).unwrap(),
        curl,
    ] {
        assert!(
            text.contains(&format!("token={SECRET}&api_key={SECRET}x")),
            "{text}"
        );
    }
}

#[test]
fn secrets_are_redacted_in_every_export_unless_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let id = s.insert(&secret_exchange()).unwrap();
    let sx = s.get(id).unwrap().unwrap();

    let json = exchange_json(&sx, false).to_string();
    let mut har = Vec::new();
    let mut w = HarWriter::new(&mut har, HarOptions::default()).unwrap();
    w.push(&sx).unwrap();
    w.finish().unwrap();
    let har = String::from_utf8(har).unwrap();
    let curl = curl_command(&sx.exchange, &CurlOptions::default());
    for (what, text) in [("json", &json), ("har", &har), ("curl", &curl)] {
        assert!(!text.contains(SECRET), "{what} leaks the secret:\n{text}");
        assert!(text.contains("[REDACTED]"), "{what}");
        assert!(
            text.contains("Basic [REDACTED]"),
            "{what} keeps the auth scheme"
        );
    }
    assert!(curl.starts_with("# secret headers are redacted"));

    let json = exchange_json(&sx, true).to_string();
    let revealed = HarOptions {
        reveal_secrets: true,
        ..HarOptions::default()
    };
    let har = serde_json::to_string(&Har::of([&sx], revealed)).unwrap();
    let curl = curl_command(
        &sx.exchange,
        &CurlOptions {
            reveal_secrets: true,
            ..Default::default()
        },
    );
    for (what, text) in [("json", &json), ("har", &har), ("curl", &curl)] {
        assert!(text.contains(SECRET), "{what} with reveal_secrets");
    }
}

#[test]
fn log_json_shape() {
    let mut ex = secret_exchange();
    ex.response.as_mut().unwrap().body = body(&[0xff, 0x00, 0x01]);
    ex.replay_of = Some(3);
    let v = exchange_json(&stored(ex), false);
    assert_eq!(v["id"], 7);
    assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
    assert_eq!(v["name"], "t");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["url"], "https://t.twk.example/hook?a=1&b=x%20y");
    assert_eq!(v["path"], "/hook?a=1&b=x%20y");
    assert_eq!(v["status"], 200);
    assert_eq!(v["duration_ms"], 12);
    assert_eq!(v["provider"], "stripe");
    assert_eq!(v["event"], "invoice.paid");
    assert_eq!(v["verdict"], "valid");
    assert_eq!(v["secret"], serde_json::Value::Null);
    assert_eq!(v["attempt"], 1);
    assert_eq!(v["replay_of"], 3);
    assert_eq!(
        v["request"]["headers"][0],
        serde_json::json!(["host", "127.0.0.1:3000"])
    );
    assert_eq!(v["request"]["body"], "{\"amount\":42}");
    assert!(v["request"].get("body_base64").is_none());
    assert_eq!(v["response"]["body_base64"], "/wAB");
    assert!(v["response"].get("body").is_none());
    let mut ex = secret_exchange();
    ex.matched_secret = Some(twk_providers::SecretSource::TwkTest);
    assert_eq!(exchange_json(&stored(ex), false)["secret"], "twk-test");
}

#[test]
fn har_structure_and_body_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let binary: Vec<u8> = (0..=255u8).collect();
    let mut bin = exchange("t", 1_700_000_000_000, "/bin?x=%2F&y", &binary);
    bin.response.as_mut().unwrap().body = body(&binary);
    let text = exchange(
        "t",
        1_700_000_000_500,
        "/text",
        "héllo {\"a\":1}".as_bytes(),
    );
    let none = failed(
        exchange("t", 1_700_000_001_000, "/down", b""),
        twk_capture::Side::Target,
    );
    let ids = [bin, text, none].map(|e| s.insert(&e).unwrap());
    let xs: Vec<_> = ids.iter().map(|id| s.get(*id).unwrap().unwrap()).collect();

    let mut buf = Vec::new();
    let mut w = HarWriter::new(&mut buf, HarOptions::default()).unwrap();
    for x in &xs {
        w.push(x).unwrap();
    }
    w.finish().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["log"]["version"], "1.2");
    assert_eq!(v["log"]["creator"]["name"], "twk");
    assert!(v["log"]["creator"]["version"].is_string());
    let entries = v["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for e in entries {
        for k in [
            "startedDateTime",
            "time",
            "request",
            "response",
            "cache",
            "timings",
        ] {
            assert!(e.get(k).is_some(), "entry lacks {k}");
        }
        for k in [
            "method",
            "url",
            "httpVersion",
            "cookies",
            "headers",
            "queryString",
            "headersSize",
            "bodySize",
        ] {
            assert!(e["request"].get(k).is_some(), "request lacks {k}");
        }
        for k in [
            "status",
            "statusText",
            "httpVersion",
            "cookies",
            "headers",
            "content",
            "redirectURL",
            "headersSize",
            "bodySize",
        ] {
            assert!(e["response"].get(k).is_some(), "response lacks {k}");
        }
        for k in ["send", "wait", "receive"] {
            assert!(e["timings"][k].as_f64().unwrap() >= 0.0);
        }
        let sum: f64 = [
            "blocked", "dns", "connect", "send", "wait", "receive", "ssl",
        ]
        .iter()
        .map(|k| e["timings"][k].as_f64().unwrap())
        .filter(|t| *t >= 0.0)
        .sum();
        assert_eq!(
            e["time"].as_f64().unwrap(),
            sum,
            "time is the sum of timings"
        );
    }
    assert_eq!(entries[0]["startedDateTime"], "2023-11-14T22:13:20.000Z");
    assert_eq!(
        entries[0]["request"]["queryString"][0],
        serde_json::json!({"name": "x", "value": "/"})
    );
    assert_eq!(entries[0]["timings"]["send"], 2.0);
    assert_eq!(entries[0]["timings"]["wait"], 8.0);
    assert_eq!(entries[2]["response"]["status"], 0);

    // Round trip through the typed model: bodies come back byte for byte.
    let har: Har = serde_json::from_slice(&buf).unwrap();
    let decode = |text: &str, enc: &Option<String>| match enc.as_deref() {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap(),
        _ => text.as_bytes().to_vec(),
    };
    let pd = har.log.entries[0].request.post_data.as_ref().unwrap();
    assert_eq!(decode(&pd.text, &pd.encoding), binary);
    let c = &har.log.entries[0].response.content;
    assert_eq!(decode(c.text.as_deref().unwrap(), &c.encoding), binary);
    assert_eq!(c.size, 256);
    let pd = har.log.entries[1].request.post_data.as_ref().unwrap();
    assert_eq!(pd.encoding, None);
    assert_eq!(decode(&pd.text, &pd.encoding), "héllo {\"a\":1}".as_bytes());
    assert_eq!(pd.mime_type, "application/json");
    // Same document as the non-streaming builder.
    assert_eq!(Har::of(&xs, HarOptions::default()), har);
}

/// A one-shot HTTP/1.1 server on 127.0.0.1:0 that returns the raw bytes it received.
fn echo_server() -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if raw.len() >= end + 4 + len {
                    break;
                }
            }
        }
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
        raw
    });
    (format!("http://{addr}"), h)
}

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_curl(ex: &Exchange) -> Vec<u8> {
    let (base, server) = echo_server();
    let cmd = curl_command(
        ex,
        &CurlOptions {
            base_url: Some(base),
            reveal_secrets: true,
            // Byte for byte, Host included.
            keep_host: true,
        },
    );
    // Run it as a script file, as a user would (`export --curl 7 > again.sh; bash again.sh`);
    // a large body would not fit in one `bash -c` argument.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("again.sh");
    std::fs::write(&script, &cmd).unwrap();
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl failed: {}\n{cmd}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.join().unwrap()
}

/// What the app should receive. curl writes `Host` itself (first, with that spelling); every
/// other header keeps its captured name, value and order.
fn expected_bytes(ex: &Exchange) -> Vec<u8> {
    let mut v = format!("{} {} HTTP/1.1\r\n", ex.method, ex.path).into_bytes();
    for h in &ex.request.headers {
        if h.name.eq_ignore_ascii_case("host") {
            v.extend_from_slice(b"Host");
        } else {
            v.extend_from_slice(h.name.as_bytes());
        }
        v.extend_from_slice(b":");
        if !h.value.is_empty() {
            v.extend_from_slice(b" ");
        }
        v.extend_from_slice(&h.value);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(&ex.request.body.bytes);
    v
}

#[test]
fn curl_export_reproduces_the_request_byte_for_byte() {
    if !curl_available() {
        eprintln!("SKIPPED: `curl` is not installed (.ci/run installs it); curl export not run");
        return;
    }
    // Hostile bytes everywhere: shell metacharacters, quotes, NUL, printf escapes, a
    // leading dash, non-UTF-8, and a header value with obs-text.
    let mut body_bytes = b"-$(touch /tmp/twk-pwned) `id` 'q' \"dq\" %s %% \\n \\ \n".to_vec();
    body_bytes.extend_from_slice(&[0, 1, 2, 0x1b, b'[', b'2', b'J', 0x7f, 0x80, 0xff, 0xfe]);
    body_bytes.extend_from_slice("é€😀".as_bytes());
    let mut ex = exchange("t", 1, "/hook/[x]/../y?a=1&b={2}", &body_bytes);
    ex.request.headers = headers(&[
        ("Host", "example.test:8443"),
        (
            "X-Second",
            "value with 'single' and \"double\" quotes; $(id) `id`",
        ),
        ("content-type", "application/octet-stream"),
        ("X-Empty", ""),
        ("X-Twilio-Signature", "abc+/="),
        ("content-length", &body_bytes.len().to_string()),
        ("x-last", "z"),
    ]);
    ex.request.headers.push(Header {
        name: "X-Obs".into(),
        value: vec![b'c', b'a', b'f', 0xe9, b'!'],
    });
    let got = run_curl(&ex);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected_bytes(&ex))
    );
    assert_eq!(got, expected_bytes(&ex));
    assert!(!std::path::Path::new("/tmp/twk-pwned").exists());

    // GET without a body, no content headers; and PUT with a text body.
    let mut get = exchange("t", 2, "/status", b"");
    get.method = "GET".into();
    get.request.headers = headers(&[
        ("host", "h"),
        ("accept", "*/*"),
        ("user-agent", "Stripe/1.0"),
    ]);
    assert_eq!(run_curl(&get), expected_bytes(&get));
    let mut put = exchange("t", 3, "/put", b"a=1&b=2");
    put.method = "PUT".into();
    assert_eq!(run_curl(&put), expected_bytes(&put));
}

#[test]
fn curl_export_of_a_large_body_survives_argument_limits() {
    if !curl_available() {
        eprintln!("SKIPPED: `curl` is not installed (.ci/run installs it); curl export not run");
        return;
    }
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 256) as u8).collect();
    let ex = exchange("t", 1, "/big", &big);
    assert_eq!(run_curl(&ex), expected_bytes(&ex));
}

#[test]
fn curl_export_warns_about_truncated_bodies() {
    let mut ex = exchange("t", 1, "/big", b"prefix");
    ex.request.body.len = 10_000;
    ex.request.body.truncated = true;
    ex.request.headers = headers(&[("host", "h"), ("content-length", "10000")]);
    let cmd = curl_command(&ex, &CurlOptions::default());
    assert!(
        cmd.starts_with("# WARNING: the captured body was truncated"),
        "{cmd}"
    );
    // It sends the prefix with the prefix's length: with the recorded 10000, curl and the app
    // waited for the rest forever.
    assert!(!cmd.contains("content-length: 10000"), "{cmd}");
    if curl_available() {
        let got = String::from_utf8(run_curl(&ex)).unwrap();
        assert!(got.ends_with("\r\n\r\nprefix"), "{got}");
        assert!(got.contains("Content-Length: 6\r\n"), "{got}");
    }
}

/// Issue 12 item 12: the `Host` of an export agrees with the URL it names. The recorded
/// `Host` is what the local app saw; a HAR names the public URL, a curl command with another
/// base URL names that one.
#[test]
fn exports_name_the_host_of_their_url() {
    let mut ex = exchange("t", 1, "/hook?x=1", b"{}");
    ex.public_url = "https://t.relay.example/t/shop/hook?x=1".into();
    ex.target = "http://localhost:3000".into();
    ex.request.headers = headers(&[
        ("host", "localhost:3000"),
        ("content-type", "application/json"),
    ]);
    let sx = stored(ex.clone());
    let host = |e: &twk_capture::export::har::Entry| {
        e.request
            .headers
            .iter()
            .find(|h| h.name == "host")
            .map(|h| h.value.clone())
    };
    let entry = twk_capture::export::har::entry(&sx, HarOptions::default());
    assert_eq!(entry.request.url, "https://t.relay.example/t/shop/hook?x=1");
    assert_eq!(host(&entry).as_deref(), Some("t.relay.example"));
    assert_eq!(entry.request.headers[1].name, "content-type", "order kept");
    let kept = HarOptions {
        keep_host: true,
        ..HarOptions::default()
    };
    let entry = twk_capture::export::har::entry(&sx, kept);
    assert_eq!(host(&entry).as_deref(), Some("localhost:3000"));

    // curl: to the recorded target, Host as recorded; elsewhere, that host unless kept.
    let cmd = curl_command(&ex, &CurlOptions::default());
    assert!(cmd.contains("-H 'host: localhost:3000'"), "{cmd}");
    let to = |keep_host| CurlOptions {
        base_url: Some("http://127.0.0.1:4000".into()),
        keep_host,
        ..CurlOptions::default()
    };
    let cmd = curl_command(&ex, &to(false));
    assert!(cmd.contains("-H 'host: 127.0.0.1:4000'"), "{cmd}");
    assert!(
        cmd.contains("--url 'http://127.0.0.1:4000/hook?x=1'"),
        "{cmd}"
    );
    let cmd = curl_command(&ex, &to(true));
    assert!(cmd.contains("-H 'host: localhost:3000'"), "{cmd}");
}

/// A HAR goes to a terminal as often as to a file: a sender's bidi, C1 and invisible
/// characters are written as `\uXXXX` (the same document), as `log --json` writes them, and
/// the curl export spells them as escapes. A QA review saw `export --har -` print them raw.
#[test]
fn exports_never_write_a_senders_control_characters_raw() {
    let hostile = "a\u{202e}b\u{2066}c\u{9b}2J\u{2028}d\u{61c}e\u{ad}f\u{e0041}g";
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let mut ex = exchange("t", 1_700_000_000_000, "/x", hostile.as_bytes());
    ex.request.headers.push(Header {
        name: "x-note".into(),
        value: hostile.as_bytes().to_vec(),
    });
    let id = s.insert(&ex).unwrap();
    let x = s.get(id).unwrap().unwrap();
    // Line ends are the exports' own.
    let raw = |out: &str| out.chars().any(|c| c != '\n' && twk_sanitize::is_unsafe(c));

    let mut har = Vec::new();
    let mut w = HarWriter::new(&mut har, HarOptions::default()).unwrap();
    w.push(&x).unwrap();
    w.finish().unwrap();
    let text = String::from_utf8(har.clone()).unwrap();
    assert!(!raw(&text), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&har).unwrap();
    let request = &v["log"]["entries"][0]["request"];
    assert_eq!(request["postData"]["text"], hostile);
    let note = request["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "x-note");
    assert_eq!(note.unwrap()["value"], hostile);

    let curl = curl_command(&x.exchange, &CurlOptions::default());
    assert!(!raw(&curl), "{curl}");
}

/// A header value that is not UTF-8 keeps its bytes in `log --json`: shown lossily, with the
/// bytes in base64 as a third element; UTF-8 values stay `[name, value]`.
#[test]
fn a_header_value_that_is_not_utf8_keeps_its_bytes_in_the_json_export() {
    let mut ex = exchange("t", 1_700_000_000_123, "/hook", b"{}");
    let raw = b"caf\xe9 \xff\x01".to_vec();
    ex.request.headers.push(Header {
        name: "X-Latin1".into(),
        value: raw.clone(),
    });
    let json = exchange_json(&stored(ex), false);
    let headers = json["request"]["headers"].as_array().unwrap();
    let latin = headers.iter().find(|h| h[0] == "X-Latin1").unwrap();
    assert_eq!(latin.as_array().unwrap().len(), 3);
    assert_eq!(latin[1], String::from_utf8_lossy(&raw).as_ref());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(latin[2].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, raw);
    let ctype = headers.iter().find(|h| h[0] == "content-type").unwrap();
    assert_eq!(ctype.as_array().unwrap().len(), 2);
    assert_eq!(ctype[1], "application/json");
}
