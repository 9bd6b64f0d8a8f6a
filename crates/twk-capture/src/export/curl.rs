//! A shell-safe `curl` command that reproduces a captured request.
//!
//! The command is `printf '<body>' | curl … --data-binary @- '<url>'` (the body goes through
//! the shell's builtin `printf`, so any byte — NUL included — and any size survive; nothing
//! the sender controls is ever interpreted by the shell). Arguments are single-quoted; a header
//! value with control or non-ASCII-printable bytes uses bash's `$'…'` with `\xHH` escapes, so
//! the printed command is also safe to show in a terminal.
//!
//! Byte for byte: headers are sent in their captured order with their captured names, and
//! the headers curl would add on its own (`User-Agent`, `Accept`, `Content-Type`, `Expect`)
//! are suppressed when the captured request did not have them. The one exception is `Host`:
//! curl always writes it itself, first and spelled `Host` (the captured value is kept; with
//! [`CurlOptions::base_url`] naming another host, that host, unless
//! [`CurlOptions::keep_host`]: the URL and `Host` must agree).
//! A large body makes a long command: save it to a file and run it (`bash again.sh`) rather
//! than pasting it into `bash -c`, whose single argument is limited to 128 KiB on Linux.
//!
//! By default secret headers are redacted (so the command does not reproduce them); a
//! truncated body can only be sent as its stored prefix. Both cases add a `#` comment line.

use crate::exchange::{Exchange, Header};
use crate::redact::{is_secret_header, redact_headers, redact_query};
use std::fmt::Write as _;

/// Options of [`curl_command`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurlOptions {
    /// Base URL to send to (scheme, authority, optional path prefix) instead of the recorded
    /// local target, e.g. `http://127.0.0.1:4000`.
    pub base_url: Option<String>,
    /// Keep secret headers instead of redacting them.
    pub reveal_secrets: bool,
    /// With `base_url` on another host: keep the recorded `Host` instead of that host's.
    pub keep_host: bool,
}

/// Builds the command (possibly preceded by `#` comment lines).
pub fn curl_command(ex: &Exchange, opts: &CurlOptions) -> String {
    let mut out = String::new();
    let body = &ex.request.body;
    if let Some(why) = body.shortfall() {
        let _ = writeln!(
            out,
            "# WARNING: the captured body was truncated ({why}); this sends only the stored part, with its own Content-Length"
        );
    }
    let base = opts.base_url.as_deref().unwrap_or(&ex.target);
    let moved = super::authority_of(base)
        .filter(|a| !opts.keep_host && super::authority_of(&ex.target) != Some(*a));
    let captured: std::borrow::Cow<'_, [Header]> = match moved {
        Some(authority) => super::with_host(&ex.request.headers, authority).into(),
        None => ex.request.headers.as_slice().into(),
    };
    let mut headers = redact_headers(&captured, opts.reveal_secrets);
    if body.truncated {
        // The recorded length is the whole body's: with only its prefix to send, curl and the
        // app would wait forever for the rest. curl counts what it sends.
        headers
            .to_mut()
            .retain(|h| !h.name.eq_ignore_ascii_case("content-length"));
    }
    let path = if ex.path.is_empty() {
        "/"
    } else {
        ex.path.as_str()
    };
    let path = redact_query(path, opts.reveal_secrets);
    let headers_redacted =
        !opts.reveal_secrets && ex.request.headers.iter().any(|h| is_secret_header(&h.name));
    let query_redacted = matches!(path, std::borrow::Cow::Owned(_));
    let what = match (headers_redacted, query_redacted) {
        (true, true) => Some("secret headers and query parameters are"),
        (true, false) => Some("secret headers are"),
        (false, true) => Some("secret query parameters are"),
        (false, false) => None,
    };
    if let Some(what) = what {
        let _ = writeln!(
            out,
            "# {what} redacted: export them (without --redact) to reproduce them"
        );
    }
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    let send_body = !body.bytes.is_empty();
    if send_body {
        out.push_str("printf ");
        out.push_str(&printf_format(&body.bytes));
        out.push_str(" | ");
    }
    out.push_str("curl --globoff --path-as-is --include");
    let method = ex.method.as_str();
    let implied = if send_body { "POST" } else { "GET" };
    if method == "HEAD" && !send_body {
        out.push_str(" --head");
    } else if method != implied {
        out.push_str(" -X ");
        out.push_str(&quote(method.as_bytes()));
    }
    for h in headers.iter() {
        out.push_str(" \\\n  -H ");
        out.push_str(&header_arg(h));
    }
    let mut suppress = vec!["User-Agent", "Accept"];
    if send_body {
        suppress.extend(["Content-Type", "Expect"]);
    }
    for name in suppress {
        if !has(name) {
            let _ = write!(out, " \\\n  -H '{name}:'");
        }
    }
    if send_body {
        out.push_str(" \\\n  --data-binary @-");
    }
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    out.push_str(" \\\n  --url ");
    out.push_str(&quote(url.as_bytes()));
    out.push('\n');
    out
}

/// `-H` argument for one header. An empty value uses curl's `Name;` form (a bare `Name:`
/// would remove the header instead of sending it empty).
fn header_arg(h: &Header) -> String {
    let mut line = h.name.clone().into_bytes();
    if h.value.is_empty() {
        line.push(b';');
    } else {
        line.extend_from_slice(b": ");
        line.extend_from_slice(&h.value);
    }
    quote(&line)
}

/// Whether a char may appear literally in shell output shown on a terminal: what the one
/// sanitizer passes (its own list here missed `U+061C`, `U+2028`/`U+2029` and more).
fn display_safe(c: char) -> bool {
    !c.is_control() && !twk_sanitize::is_unsafe(c)
}

/// Quotes bytes for a POSIX shell: `'…'` when every char is display-safe text, else bash
/// `$'…'` with `\xHH` escapes.
pub fn quote(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes)
        && s.chars().all(display_safe)
    {
        return format!("'{}'", s.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str(r"\\"),
                '\'' => out.push_str(r"\'"),
                c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
                c if !c.is_ascii() && display_safe(c) => out.push(c),
                c => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('\'');
    out
}

/// A single-quoted `printf` format that prints exactly `bytes`.
pub fn printf_format(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('\'');
    let mut first = true;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '-' if first => out.push_str(r"\055"),
                '\\' => out.push_str(r"\\"),
                '%' => out.push_str("%%"),
                '\'' => out.push_str(r"\047"),
                '\n' => out.push_str(r"\n"),
                c if (c.is_ascii() && !c.is_ascii_control())
                    || (!c.is_ascii() && display_safe(c)) =>
                {
                    out.push(c)
                }
                c => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\{b:03o}");
                    }
                }
            }
            first = false;
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b:03o}");
            first = false;
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(b"a b"), "'a b'");
        assert_eq!(quote(b"it's"), r"'it'\''s'");
        assert_eq!(quote(b"a\x1b[31m"), r"$'a\x1b[31m'");
        assert_eq!(quote(b"q'\\"), r"'q'\''\'");
        assert_eq!(quote(b"\xff'"), r"$'\xff\''");
        assert_eq!(quote("\u{202e}x".as_bytes()), r"$'\xe2\x80\xaex'");
    }

    #[test]
    fn printf_formats() {
        assert_eq!(printf_format(b"a%b\\c'd\n"), r"'a%%b\\c\047d\n'");
        assert_eq!(printf_format(b"-x"), r"'\055x'");
        assert_eq!(printf_format(b"\0\xff"), r"'\000\377'");
        assert_eq!(printf_format("é".as_bytes()), "'é'");
    }
}
