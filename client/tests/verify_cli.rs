//! `twk-tunnel verify` / `twk-tunnel sign` as a user runs them: exit codes 0/1/2 and the
//! `--json` fields.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");

const TWILIO_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const TWILIO_BODY: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
const TWILIO_SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TWK_SECRET")
        .env_remove("TWILIO_SECONDARY_AUTH_TOKEN")
        .env_remove("TWK_CONFIG")
        .env_remove("TWK_BASIC_AUTH")
        // No config file of the developer's: secrets come only from the test's flags.
        .env("XDG_CONFIG_HOME", "/nonexistent/twk-verify-cli")
        .stdin(Stdio::null());
    for p in twk_providers::Provider::ALL {
        cmd.env_remove(p.secret_env_var());
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn twilio_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "verify",
        "--secret",
        "12345",
        "--url",
        url,
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "-H",
        "X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        "--body",
        TWILIO_BODY,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn verify_valid_exits_0() {
    let o = run(&twilio_args(TWILIO_URL, &[]));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("twilio"), "{out}");
    assert!(out.contains("valid (matched: as-is)"), "{out}");
}

#[test]
fn verify_invalid_exits_1_with_a_diagnosis() {
    let o = run(&twilio_args(
        "http://mycompany.com/myapp.php?foo=1&bar=2",
        &[],
    ));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("verdict    invalid"), "{out}");
    assert!(out.contains("expected"), "{out}");
    assert!(out.contains(&format!("received   {TWILIO_SIG}")), "{out}");
    assert!(out.contains("likely"), "{out}");
    assert!(out.contains("https://mycompany.com/myapp.php"), "{out}");
}

#[test]
fn verify_json_has_the_contract_fields() {
    let o = run(&twilio_args(
        "https://mycompany.com:8080/myapp.php?foo=1&bar=2",
        &["--json"],
    ));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    for k in [
        "provider",
        "event",
        "verdict",
        "matched_variant",
        "diagnosis",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["provider"], "twilio");
    assert_eq!(v["verdict"], "valid");
    assert_eq!(v["matched_variant"], "port-stripped");
    assert!(v["diagnosis"].is_null());

    let o = run(&twilio_args(
        "http://mycompany.com/myapp.php?foo=1&bar=2",
        &["--json"],
    ));
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "invalid");
    assert_eq!(v["diagnosis"]["received"], TWILIO_SIG);
    assert!(
        v["diagnosis"]["likely_cause"]
            .as_str()
            .unwrap()
            .contains("https://")
    );
    // The secret never appears.
    assert!(!stdout(&o).contains("12345\""));
}

#[test]
fn verify_other_verdicts_exit_1() {
    // A wrong Stripe signature.
    let o = run(&[
        "verify",
        "--provider",
        "stripe",
        "--secret",
        "whsec_test_secret",
        "--url",
        "https://x.example/h",
        "-H",
        "Stripe-Signature: t=12345,v1=00",
        "--body",
        "{}",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "invalid");

    // Unsigned: nothing recognisable.
    let o = run(&[
        "verify",
        "--secret",
        "s",
        "--url",
        "https://x.example/h",
        "--body",
        "hi",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "unsigned");
    assert!(v["provider"].is_null());

    // Malformed header.
    let o = run(&[
        "verify",
        "--secret",
        "s",
        "--url",
        "https://x.example/h",
        "-H",
        "Stripe-Signature: bad_header",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "malformed");
}

#[test]
fn stale_exits_1_and_tolerance_0_turns_the_check_off() {
    let sign = run(&[
        "sign",
        "--provider",
        "stripe",
        "--secret",
        "whsec_k",
        "--url",
        "https://x.example/h",
        "--body",
        "{}",
        "--timestamp",
        "1000",
    ]);
    assert_eq!(sign.status.code(), Some(0));
    let header = stdout(&sign).trim().to_owned();
    assert!(
        header.starts_with("Stripe-Signature: t=1000,v1="),
        "{header}"
    );
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--secret",
            "whsec_k",
            "--url",
            "https://x.example/h",
            "-H",
            &header,
            "--body",
            "{}",
            "--now",
            "5000",
            "--json",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "stale");
    assert_eq!(v["skew_secs"], 4000);
    assert_eq!(verify(&["--tolerance", "0"]).status.code(), Some(0));
    assert_eq!(verify(&["--tolerance", "5000"]).status.code(), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    // A bad -H line.
    let o = run(&[
        "verify",
        "--secret",
        "s",
        "--url",
        "https://x",
        "-H",
        "no colon here",
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Name: value"));
    // An unreadable body file.
    let o = run(&[
        "verify",
        "--secret",
        "s",
        "--url",
        "https://x",
        "--body-file",
        "/nonexistent/twk-body",
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/twk-body"));
    // clap's own: missing --url, unknown provider, --body with --body-file.
    assert_eq!(run(&["verify", "--secret", "s"]).status.code(), Some(2));
    assert_eq!(
        run(&[
            "verify",
            "--secret",
            "s",
            "--url",
            "https://x",
            "--provider",
            "paypal"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        run(&[
            "verify",
            "--secret",
            "s",
            "--url",
            "https://x",
            "--body",
            "a",
            "--body-file",
            "f"
        ])
        .status
        .code(),
        Some(2)
    );
    // sign without a detectable provider.
    assert_eq!(
        run(&["sign", "--secret", "s", "--url", "https://x", "--body", "a"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn sign_prints_headers_that_verify() {
    let o = run(&[
        "sign",
        "--provider",
        "svix",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--url",
        "https://x.example/h",
        "--body",
        r#"{"test": 2432232314}"#,
        "--timestamp",
        "1614265330",
        "--id",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("svix-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        "{out}"
    );

    // Twilio: sign, then verify with the printed header.
    let o = run(&[
        "sign",
        "--provider",
        "twilio",
        "--secret",
        "12345",
        "--url",
        TWILIO_URL,
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--body",
        TWILIO_BODY,
    ]);
    assert_eq!(o.status.code(), Some(0));
    let line = stdout(&o).trim().to_owned();
    assert_eq!(line, format!("X-Twilio-Signature: {TWILIO_SIG}"));
    let o = run(&[
        "verify",
        "--secret",
        "12345",
        "--url",
        TWILIO_URL,
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "-H",
        &line,
        "--body",
        TWILIO_BODY,
    ]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn body_file_from_stdin_is_byte_exact() {
    let mut child = Command::new(BIN)
        .args([
            "verify", "--provider", "github", "--secret", "It's a Secret to Everybody", "--url",
            "https://x.example/gh", "-H",
            "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "--body-file", "-", "--json",
        ])
        .env_remove("TWK_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello, World!")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "valid");
    assert_eq!(v["provider"], "github");
}

/// Issue 12 item 12: Stripe does not sign the URL, so `sign` and `verify` do not need one;
/// Twilio does, and says so.
#[test]
fn the_url_is_needed_only_where_it_is_signed() {
    let o = run(&[
        "sign",
        "--provider",
        "stripe",
        "--secret",
        "whsec_k",
        "--body",
        "{}",
        "--timestamp",
        "1000",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let header = stdout(&o).trim().to_owned();
    let o = run(&[
        "verify", "--secret", "whsec_k", "-H", &header, "--body", "{}", "--now", "1000",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("verdict    valid"), "{}", stdout(&o));

    for args in [
        &[
            "sign",
            "--provider",
            "twilio",
            "--secret",
            "12345",
            "--body",
            "A=1",
        ][..],
        &[
            "verify",
            "--secret",
            "12345",
            "-H",
            "X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            "--body",
            TWILIO_BODY,
        ][..],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("Twilio signs the URL") && err.contains("--url"),
            "{err}"
        );
    }
}

/// Issue 12 item 5: without a secret the verdict says where to put one.
#[test]
fn no_secret_says_where_the_secret_goes() {
    let o = run(&[
        "verify",
        "-H",
        "Stripe-Signature: t=1000,v1=00",
        "--body",
        "{}",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "no_secret");
    let why = v["diagnosis"]["summary"].as_str().unwrap();
    for place in ["--secret stripe=", "STRIPE_WEBHOOK_SECRET", "[secrets]"] {
        assert!(why.contains(place), "{place}: {why}");
    }
    // The environment variable it names is read.
    let header = {
        let o = run(&[
            "sign",
            "--provider",
            "stripe",
            "--secret",
            "whsec_env",
            "--body",
            "{}",
        ]);
        stdout(&o).trim().to_owned()
    };
    let o = Command::new(BIN)
        .args(["verify", "-H", &header, "--body", "{}"])
        .env_remove("TWK_SECRET")
        .env("XDG_CONFIG_HOME", "/nonexistent/twk-verify-cli")
        .env("STRIPE_WEBHOOK_SECRET", "whsec_env")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

/// Issue 13 class 1, verbatim: a Twilio HMAC-SHA256 (SharedKey) signature is valid.
#[test]
fn twilio_sha256_settings_header_is_honoured() {
    let o = run(&[
        "verify",
        "--provider",
        "twilio",
        "--secret=12345",
        "--url",
        "https://example.com/sms",
        "-H",
        "X-Twilio-Webhooks-Signature-Settings: key=KS1,algorithm=HMAC_SHA256",
        "-H",
        "X-Twilio-Signature: WH21wBmNlq44d15s5yqOSWZT4daaBsN63/F6CU9WoMQ=",
        "--body",
        "Body=hi&From=%2B15551234567",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = run(&[
        "sign",
        "--provider",
        "twilio",
        "--secret=12345",
        "--url",
        "https://example.com/sms",
        "-H",
        "X-Twilio-Webhooks-Signature-Settings: key=KS1,algorithm=HMAC_SHA256",
        "--body",
        "Body=hi&From=%2B15551234567",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        "X-Twilio-Signature: WH21wBmNlq44d15s5yqOSWZT4daaBsN63/F6CU9WoMQ="
    );
}

/// Issue 13 class 5: `sign` keeps the nonce, timestamp and id the request gives, and takes
/// verify's --now/--tolerance.
#[test]
fn sign_reproduces_a_given_request() {
    let sign_json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec![
            "sign",
            "--json",
            "--now",
            "1700000000",
            "--tolerance",
            "300",
        ];
        all.extend_from_slice(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        serde_json::from_str(stdout(&o).trim()).unwrap()
    };
    // Authy OneTouch: the given nonce, not a new one (authy-python's signature for it).
    let v = sign_json(&[
        "--provider",
        "authy-onetouch",
        "--secret",
        "foobar123",
        "--url",
        "https://example.com/authy",
        "-H",
        "Content-Type: application/json",
        "-H",
        "X-Authy-Signature-Nonce: 1455825429",
        "--body",
        r#"{"l":[{"a":"1","b":"2"},{"a":"3","b":"4"}]}"#,
    ]);
    assert_eq!(v["headers"]["X-Authy-Signature-Nonce"], "1455825429");
    assert_eq!(
        v["headers"]["X-Authy-Signature"],
        "lsY+34A6tQKURn3BbVI+vnoY9O1riTmBXJgyFeV1PHU="
    );
    // Stripe: the t= of the given header, not --now.
    let v = sign_json(&[
        "--provider",
        "stripe",
        "--secret",
        "whsec_k",
        "-H",
        "Stripe-Signature: t=1600000000,v1=00",
        "--body",
        "{}",
    ]);
    let header = v["headers"]["Stripe-Signature"].as_str().unwrap();
    assert!(header.starts_with("t=1600000000,v1="), "{header}");
    // Nothing given: --now is the timestamp.
    let v = sign_json(&["--provider", "slack", "--secret", "s", "--body", "a=b"]);
    assert_eq!(v["headers"]["X-Slack-Request-Timestamp"], "1700000000");
}

/// A reader that stopped reading (`H=$(twk-tunnel sign … | head -1)`) ends the command
/// quietly: its output once panicked on the closed pipe (exit 101). The pipe here is closed
/// before the command starts, so every write meets it.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    for args in [
        &[
            "sign",
            "--provider",
            "github",
            "--secret",
            "s",
            "--body",
            "x",
        ][..],
        &["trigger", "--list"],
        &[
            "verify",
            "--provider",
            "github",
            "--secret",
            "s",
            "--body",
            "x",
        ],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(BIN)
            .args(args)
            .env("XDG_CONFIG_HOME", "/nonexistent/twk-verify-cli")
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // `verify`'s exit code is still its verdict (1: unsigned), not the pipe's fate.
        let want = if args[0] == "verify" { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{args:?}: {stderr}");
    }
}
