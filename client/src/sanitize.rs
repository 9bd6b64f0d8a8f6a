//! The one sanitizer for untrusted text on its way to a terminal, a log line or the clipboard.
//!
//! C0 and C1 controls, DEL, and bidirectional overrides/isolates are replaced by visible
//! placeholders; nothing that a terminal would interpret is ever emitted. Forwarded bytes are
//! never passed through here: only what twk itself displays.

/// Longest text kept by [`clean`]; beyond it the text is cut with `…`.
pub const MAX_CHARS: usize = 4096;

/// Replaces every control character with a visible placeholder and cuts very long text.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_CHARS));
    for (i, c) in s.chars().enumerate() {
        if i >= MAX_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\u{1b}' => out.push('␛'),
            '\t' => out.push('␉'),
            '\n' => out.push('␤'),
            '\r' => out.push('␍'),
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('�')),
            '\u{7f}' => out.push('␡'),
            '\u{80}'..='\u{9f}' => out.push('�'),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}' => {
                out.push('�')
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_survives() {
        let hostile = "a\u{1b}]0;pwned\u{7}b\u{9b}31mc\u{202e}d\u{7f}e\r\nf\u{1b}]52;c;SGVsbG8=\u{7}";
        let out = clean(hostile);
        assert!(
            out.chars().all(|c| !c.is_control() && !('\u{202a}'..='\u{202e}').contains(&c)),
            "{out:?}"
        );
        assert!(out.contains('␛'));
        assert!(out.starts_with('a') && out.contains('f'));
    }

    #[test]
    fn long_text_is_cut() {
        let out = clean(&"x".repeat(10_000));
        assert_eq!(out.chars().count(), MAX_CHARS + 1);
        assert!(out.ends_with('…'));
    }
}
