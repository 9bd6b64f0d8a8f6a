//! The OSC 52 clipboard: the terminal (also over SSH and inside tmux with `set-clipboard on`)
//! puts the text on the system clipboard. The payload is base64, so nothing in it can end the
//! sequence early; the text is sanitized first ([`crate::sanitize::clean_multiline`]) so a
//! later paste cannot carry escape sequences either.

use crate::model::CopyWhat;
use base64::Engine as _;
use twk_capture::Exchange;
use twk_capture::export::curl::{CurlOptions, curl_command};

/// What `what` of `ex` puts on the clipboard, and how to name it in the notice.
///
/// Curl: the exact request, secret headers included: the clipboard is the user's own, and a
/// curl command is made to re-send the request (the screen, HAR and `log --json` redact).
/// Body: the text, or hex when it is not UTF-8.
pub fn content(ex: &Exchange, what: CopyWhat) -> (String, &'static str) {
    match what {
        CopyWhat::Curl => (
            curl_command(
                ex,
                &CurlOptions {
                    reveal_secrets: true,
                    ..CurlOptions::default()
                },
            ),
            "curl command (exact, secret headers included)",
        ),
        CopyWhat::Body => {
            let b = &ex.request.body.bytes;
            match std::str::from_utf8(b) {
                Ok(t) => (t.to_owned(), "request body"),
                Err(_) => (
                    b.iter().map(|x| format!("{x:02x}")).collect(),
                    "request body (binary, as hex)",
                ),
            }
        }
    }
}

/// Most bytes of text put on the clipboard (many terminals refuse longer OSC 52 payloads).
pub const MAX_CLIPBOARD_BYTES: usize = 100_000;

/// The escape sequence that copies `text`, and whether the text had to be cut.
///
/// ```
/// let (seq, cut) = twk_inspector::clipboard::osc52("hi\u{1b}[2J");
/// assert_eq!(seq, "\u{1b}]52;c;aGnikJtbMko=\u{7}");
/// assert!(!cut);
/// ```
pub fn osc52(text: &str) -> (String, bool) {
    let clean = crate::sanitize::clean_multiline(text);
    let mut end = clean.len().min(MAX_CLIPBOARD_BYTES);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    let cut = end < clean.len();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&clean.as_bytes()[..end]);
    (format!("\u{1b}]52;c;{b64}\u{7}"), cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let (seq, cut) = osc52(&"é".repeat(MAX_CLIPBOARD_BYTES));
        assert!(cut);
        assert!(seq.starts_with("\u{1b}]52;c;") && seq.ends_with('\u{7}'));
    }
}
