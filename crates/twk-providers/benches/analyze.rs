//! What analysing one request costs on the client (detection, event naming, signature check),
//! for webhook-sized bodies and for the large bodies a tunnel also carries.
//! `cargo bench -p twk-providers --bench analyze [-- <label text>]`; prints µs per request,
//! never asserts.

use std::hint::black_box;
use std::time::{Duration, Instant};
use twk_providers::{OwnedRequest, Secrets, VerifyOptions, analyze};

fn time(label: &str, req: &OwnedRequest) {
    // `cargo bench … -- <text>` runs only the cases whose label contains it.
    if let Some(only) = std::env::args().nth(1).filter(|a| !a.starts_with('-'))
        && !label.contains(&only)
    {
        return;
    }
    let secrets = Secrets::new();
    let opts = VerifyOptions::at(1_700_000_000);
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_millis(500) {
        // A fresh view each time, as the client makes: a view keeps the body's parsed JSON.
        let view = req.view();
        black_box(analyze(black_box(&view), &secrets, &opts));
        n += 1;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:<44} {us:>10.1} µs/request  ({n} runs)");
}

fn main() {
    let mib = 1 << 20;
    let url = "https://relay.example/t/app/upload";
    time(
        "1 MiB upload, no content type",
        &OwnedRequest::new("POST", url, vec![b'x'; mib]),
    );
    time(
        "1 MiB upload, application/octet-stream",
        &OwnedRequest::new("POST", url, vec![b'x'; mib])
            .with_header("Content-Type", "application/octet-stream"),
    );
    let mut json = String::from("{\"items\":[");
    while json.len() < mib {
        json.push_str("{\"id\":\"evt_123\",\"n\":42,\"tags\":[\"a\",\"b\"]},");
    }
    json.push_str("{}]}");
    time(
        "1 MiB JSON",
        &OwnedRequest::new("POST", url, json.clone())
            .with_header("Content-Type", "application/json"),
    );
    let stripe = format!(r#"{{"id":"evt_1","object":"event","type":"x","data":{json}}}"#);
    time(
        "1 MiB Stripe event (JSON, signature header)",
        &OwnedRequest::new("POST", url, stripe)
            .with_header("Content-Type", "application/json")
            .with_header("Stripe-Signature", "t=1700000000,v1=00"),
    );
    let mut push = String::from(r#"{"ref":"refs/heads/main","commits":["#);
    while push.len() < 8 * 1024 {
        push.push_str(r#"{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Fix the thing","author":{"name":"Ada","email":"ada@example.com"}},"#);
    }
    push.push_str(r#"{}],"repository":{"full_name":"octo/repo"},"sender":{"login":"ada"}}"#);
    time(
        "GitHub push, 8 KiB JSON (header-detected)",
        &OwnedRequest::new("POST", url, push.clone())
            .with_header("Content-Type", "application/json")
            .with_header("X-GitHub-Event", "push"),
    );
    time(
        "8 KiB JSON, no provider",
        &OwnedRequest::new("POST", url, push).with_header("Content-Type", "application/json"),
    );
    time(
        "1 MiB of tiny form fields (a&a&…)",
        &OwnedRequest::new("POST", url, "a&".repeat(mib / 2))
            .with_header("Content-Type", "application/x-www-form-urlencoded"),
    );
    time(
        "1 MiB form with a body field (body=x&a=1&…)",
        &OwnedRequest::new("POST", url, format!("body=x{}", "&a=1".repeat(mib / 4))),
    );
    let form = "AccountSid=AC123&CallSid=CA123&CallStatus=ringing&From=%2B15005550006";
    time(
        "Twilio status callback (form)",
        &OwnedRequest::new("POST", url, form)
            .with_header("Content-Type", "application/x-www-form-urlencoded"),
    );
    let event = r#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#;
    time(
        "Stripe event (JSON, signature header)",
        &OwnedRequest::new("POST", url, event)
            .with_header("Content-Type", "application/json")
            .with_header("Stripe-Signature", "t=1700000000,v1=00"),
    );
}
