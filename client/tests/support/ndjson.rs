//! What the client tests read from a finished `twk-tunnel` command: its NDJSON lines.

use serde_json::Value;
use std::process::Output;

/// The JSON objects of a successful command's stdout, one per line; panics with its stderr
/// when it failed.
pub fn lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
