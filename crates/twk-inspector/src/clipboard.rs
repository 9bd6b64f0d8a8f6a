//! The OSC 52 clipboard: the terminal (also over SSH and inside tmux with `set-clipboard on`)
//! puts the text on the system clipboard. The payload is base64, so nothing in it can end the
//! sequence early; the text is sanitized first ([`crate::sanitize::clean_multiline`]) so a
//! later paste cannot carry escape sequences either.

use base64::Engine as _;

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
