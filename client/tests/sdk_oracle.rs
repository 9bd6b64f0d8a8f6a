//! The official SDKs as a standing oracle for `twk-tunnel verify` and `twk-tunnel sign`
//! (issue 13): for every provider with an SDK (and GitHub and Shopify by their documented
//! HMAC), cases generated from a fixed seed — unicode, ports, repeated keys, `+`/`%20`/`~`,
//! large bodies, several signatures (key rotation), tolerance boundaries — are checked both
//! ways:
//!
//! - the SDK signs, and `twk-tunnel verify` must agree with the SDK's validator on the request
//!   and on tampered copies of it (whose rejection by the SDK is asserted too, so a broken
//!   tamper cannot pass silently);
//! - `twk-tunnel sign` signs, and the SDK's validator (and `twk-tunnel verify`) must accept.
//!
//! The SDKs live in a Python venv made by `tests/oracle/setup.sh` (pinned versions in
//! `tests/oracle/requirements.txt`; `.ci/run` runs it, and this test runs it when the venv is
//! missing, so `cargo test` works on a fresh machine with python3-venv and PyPI). When it
//! cannot be made this test fails and says why, unless `TWK_SKIP_SDK_ORACLE=1`. `TWK_ORACLE_VENV` points elsewhere;
//! `TWK_ORACLE_SEED` generates other cases.
#![allow(clippy::unwrap_used)]

#[path = "sdk_oracle/cases.rs"]
mod cases;
#[path = "sdk_oracle/cases_body.rs"]
mod cases_body;
#[path = "sdk_oracle/cases_url.rs"]
mod cases_url;
#[path = "sdk_oracle/tamper.rs"]
mod tamper;
#[path = "support/venv.rs"]
mod venv;

use cases::{Case, Req};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use venv::{oracle_python, workspace};

const BIN: &str = env!("CARGO_BIN_EXE_twk-tunnel");
const DEFAULT_SEED: u64 = 0x7477_6b5f_7364_6b13;

/// Runs the Python oracle once over `ops`; one result per op.
fn oracle(python: &Path, ops: &[Value]) -> Vec<Value> {
    let script = workspace().join("tests/oracle/sdk_oracle.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(ops).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Written from another thread: the oracle reads all its input before it writes, but a
    // pipe must never be left full while this thread waits.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the SDK oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), ops.len(), "one oracle result per operation");
    results
}

/// One operation for the oracle.
fn op(kind: &str, case: &Case, req: &Req) -> Value {
    json!({
        "op": kind,
        "provider": case.provider,
        "secret": case.secret,
        "signers": case.signers,
        "method": req.method,
        "url": req.url,
        "headers": req.headers,
        "body": req.body,
        "now": case.now,
        "tolerance": case.sdk_tolerance(),
        "timestamp": case.timestamp,
        "id": case.id,
        "claims": case.claims,
        "sign_url": case.sign_url,
    })
}

/// Applies a `{"headers", "url", "body"}` result (the oracle's or `sign --json`'s) to `req`.
fn apply(req: &Req, signed: &Value) -> Req {
    let mut out = req.clone();
    let pairs: Vec<(String, String)> = match &signed["headers"] {
        Value::Array(items) => items
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
        other => panic!("no headers in {other}"),
    };
    for (name, value) in pairs {
        out.set_header(&name, &value);
    }
    if let Some(url) = signed["url"].as_str() {
        out.url = url.to_owned();
    }
    if let Some(body) = signed["body"].as_str() {
        out.body = body.to_owned();
    }
    out
}

/// Runs `twk-tunnel` with `args`, the body on stdin.
fn twk(args: &[String], body: &str) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TWK_SECRET")
        .env_remove("TWK_CONFIG")
        .env_remove("TWK_BASIC_AUTH")
        .env_remove("TWILIO_SECONDARY_AUTH_TOKEN")
        .env("XDG_CONFIG_HOME", "/nonexistent/twk-sdk-oracle")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for p in twk_providers::Provider::ALL {
        cmd.env_remove(p.secret_env_var());
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = body.as_bytes().to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}

/// The flags `verify` and `sign` share: the request, the secret, the clock.
fn request_args(case: &Case, req: &Req) -> Vec<String> {
    let mut args = vec![
        "--provider".to_owned(),
        case.provider.to_owned(),
        format!("--secret={}={}", case.provider, case.secret),
        format!("--method={}", req.method),
        format!("--url={}", req.url),
        "--body-file=-".to_owned(),
        format!("--now={}", case.now),
        "--json".to_owned(),
    ];
    if let Some(t) = case.tolerance {
        args.push(format!("--tolerance={t}"));
    }
    for (n, v) in &req.headers {
        args.push("-H".to_owned());
        args.push(format!("{n}: {v}"));
    }
    args
}

/// `twk-tunnel verify`: whether it says valid, and its verdict.
fn twk_verify(case: &Case, req: &Req) -> (bool, String) {
    let mut args = vec!["verify".to_owned()];
    args.extend(request_args(case, req));
    let out = twk(&args, &req.body);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: verify --json: {e}: {out:?}", case.name));
    let verdict = v["verdict"].as_str().unwrap_or("?").to_owned();
    assert_eq!(
        out.status.code() == Some(0),
        verdict == "valid",
        "{}: exit code",
        case.name
    );
    (verdict == "valid", verdict)
}

/// `twk-tunnel sign`, applied to the request.
fn twk_sign(case: &Case) -> Req {
    let mut args = vec!["sign".to_owned()];
    args.extend(request_args(case, &case.req));
    args.extend(case.sign_flags());
    let out = twk(&args, &case.req.body);
    assert_eq!(out.status.code(), Some(0), "{}: sign: {out:?}", case.name);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    apply(&case.req, &v)
}

/// Runs `f` over `items` on two threads (the machine's cores), keeping the order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let mid = items.len() / 2;
    let (a, b) = items.split_at(mid);
    std::thread::scope(|s| {
        let left = s.spawn(|| a.iter().map(&f).collect::<Vec<_>>());
        let mut right: Vec<R> = b.iter().map(&f).collect();
        let mut out = left.join().unwrap();
        out.append(&mut right);
        out
    })
}

/// One request to check against the SDK: what it is, the case, the request, and whether the
/// SDK must accept it (`None`: the SDK decides, twk must agree).
struct Check<'a> {
    what: String,
    case: &'a Case,
    req: Req,
    sdk_must: Option<bool>,
}

#[test]
fn twk_agrees_with_the_official_sdks() {
    let Some(python) = oracle_python() else {
        return;
    };
    let seed = std::env::var("TWK_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let all = cases::generate(seed);

    // The SDK signs every case; twk signs every case.
    let sign_ops: Vec<Value> = all.iter().map(|c| op("sign", c, &c.req)).collect();
    let sdk_signed = oracle(&python, &sign_ops);
    let twk_signed = par_map(&all, twk_sign);

    let mut checks = Vec::new();
    for ((case, signed), ours) in all.iter().zip(&sdk_signed).zip(twk_signed) {
        assert!(
            signed.get("error").is_none(),
            "{}: the SDK cannot sign: {signed}",
            case.name
        );
        let req = apply(&case.req, signed);
        for (label, tampered) in tamper::copies(case, &req) {
            checks.push(Check {
                what: format!("SDK-signed, then {label}"),
                case,
                req: tampered,
                sdk_must: Some(false),
            });
        }
        checks.push(Check {
            what: "SDK-signed".to_owned(),
            case,
            req,
            sdk_must: Some(case.expect_valid),
        });
        checks.push(Check {
            what: "twk-signed".to_owned(),
            case,
            req: ours,
            sdk_must: Some(case.expect_twk_signed_valid),
        });
    }
    let verify_ops: Vec<Value> = checks
        .iter()
        .map(|c| op("verify", c.case, &c.req))
        .collect();
    let sdk = oracle(&python, &verify_ops);
    let twk = par_map(&checks, |c| twk_verify(c.case, &c.req));

    let mut failures = Vec::new();
    let mut per_provider: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for ((c, s), (twk_valid, verdict)) in checks.iter().zip(&sdk).zip(&twk) {
        let sdk_valid = s["valid"].as_bool().unwrap();
        let entry = per_provider.entry(c.case.provider).or_default();
        entry.1 += 1;
        if let Some(must) = c.sdk_must
            && must != sdk_valid
        {
            failures.push(format!(
                "{} ({}): the SDK says {} but the case expects {must} ({}): a harness bug",
                c.case.name, c.what, sdk_valid, s["why"]
            ));
        }
        if sdk_valid != *twk_valid {
            entry.0 += 1;
            failures.push(format!(
                "{} ({}): SDK {} ({}), twk {verdict}\n  {:?}",
                c.case.name, c.what, sdk_valid, s["why"], c.req
            ));
        }
    }
    let cases_per: std::collections::BTreeMap<&str, usize> =
        all.iter().fold(Default::default(), |mut m, c| {
            *m.entry(c.provider).or_default() += 1;
            m
        });
    for (p, (disagree, n)) in &per_provider {
        eprintln!(
            "sdk oracle: {p}: {} cases, {n} checks, {disagree} disagreements",
            cases_per[p]
        );
    }
    eprintln!(
        "sdk oracle (seed {seed:#x}): {} cases, {} checks, {} failures",
        all.len(),
        checks.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
