//! Exports of stored exchanges: `log --json` objects, HAR 1.2, curl commands.
//!
//! Every export redacts secret-bearing headers with [`crate::redact`] unless asked to reveal
//! them.

pub mod curl;
pub mod har;
pub mod json;

use base64::Engine as _;

/// A body as text when it is valid UTF-8, else base64.
pub(crate) enum BodyText {
    Text(String),
    Base64(String),
}

pub(crate) fn body_text(bytes: &[u8]) -> BodyText {
    match std::str::from_utf8(bytes) {
        Ok(s) => BodyText::Text(s.to_owned()),
        Err(_) => BodyText::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}
