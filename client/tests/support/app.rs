//! The webhook app the SDK tests send to: tests/oracle/webhook_app.py in the oracle venv,
//! checking every webhook with the providers' official SDKs.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts the app with `secrets` (a JSON object of provider id → secret); the process and
/// the port it listens on (127.0.0.1).
pub fn start(python: &Path, workspace: &Path, secrets: &serde_json::Value) -> (Child, String) {
    let mut app = Command::new(python)
        .arg(workspace.join("tests/oracle/webhook_app.py"))
        .arg(secrets.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the webhook app: {e}"));
    let mut first = String::new();
    if let Some(out) = app.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut first);
    }
    let port = first
        .trim()
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("the app's port line, not {first:?}"))
        .to_owned();
    (app, port)
}
