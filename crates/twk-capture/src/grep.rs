//! `--grep` inside bodies: SQL functions that search bytes, not text.
//!
//! SQLite's `LIKE` reads a BLOB as C text and stops at its first NUL byte, so a body with
//! binary bytes before the match (a protobuf, a multipart upload, a gzip member) was never
//! found. These functions search every byte, ASCII case-insensitively like `LIKE`, with the
//! pattern compiled once per statement (SQLite keeps it as the argument's auxiliary data).
//! They are not a regex engine: the needle is literal text. A body file is hashed as it is
//! searched, and a match counts only once the whole file hashes to its name: a file altered
//! on disk reads as a body not kept, so it must not match either. Files without a match are
//! not read past the end of the search, so a search costs a hash only per match.

use crate::body_files::BodyFiles;
use aho_corasick::AhoCorasick;
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Registers on `conn`:
/// - `twk_contains(bytes, needle)`: 1 when the BLOB or TEXT `bytes` holds `needle`;
/// - `twk_file_contains(name, needle)`: the same for the body file `name` (0 when the name is
///   not a body file's or the file is gone), streamed rather than read whole.
pub(crate) fn register(conn: &Connection, files: &BodyFiles) -> rusqlite::Result<()> {
    // DIRECTONLY: a schema object (a view, a trigger in a database someone handed us) cannot
    // make SQLite read files through these.
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    conn.create_scalar_function("twk_contains", 2, flags, |ctx| {
        let finder = finder(ctx)?;
        Ok(match ctx.get_raw(0) {
            ValueRef::Blob(b) | ValueRef::Text(b) => finder.is_match(b),
            _ => false,
        })
    })?;
    let files = files.clone();
    conn.create_scalar_function("twk_file_contains", 2, flags, move |ctx| {
        let finder = finder(ctx)?;
        let Some(name) = ctx.get::<Option<String>>(0)? else {
            return Ok(false);
        };
        let Some(file) = files.open(&name) else {
            return Ok(false);
        };
        Ok(file_matches(&finder, file, &name))
    })?;
    Ok(())
}

/// True when `file` holds the needle and is the body it is named for (its SHA-256).
fn file_matches(finder: &AhoCorasick, file: std::fs::File, name: &str) -> bool {
    let mut reader = Hashing {
        inner: std::io::BufReader::with_capacity(64 * 1024, file),
        hash: Sha256::new(),
    };
    let found = finder
        .stream_find_iter(&mut reader)
        .next()
        .is_some_and(|m| m.is_ok());
    // The search read up to (and a little past) the match; the rest is read to hash it.
    found
        && std::io::copy(&mut reader, &mut std::io::sink()).is_ok()
        && crate::body_files::is_name_of(name, &reader.hash.finalize())
}

/// A reader that hashes every byte read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// The compiled needle (argument 1), built on the first row and reused for the rest.
fn finder(ctx: &Context<'_>) -> rusqlite::Result<Arc<AhoCorasick>> {
    ctx.get_or_create_aux(
        1,
        |needle| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            let needle = match needle {
                ValueRef::Text(b) | ValueRef::Blob(b) => b,
                _ => &[][..],
            };
            Ok(AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build([needle])?)
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn contains(conn: &Connection, hay: &[u8], needle: &str) -> bool {
        conn.query_row("SELECT twk_contains(?1, ?2)", (hay, needle), |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn finds_text_after_nul_bytes_ascii_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, &BodyFiles::new(dir.path())).unwrap();
        assert!(contains(&conn, b"\0\xff\x01 Webhook-ID: 42", "webhook-id"));
        assert!(contains(&conn, b"caf\xc3\xa9", "CAF\u{e9}"));
        assert!(
            !contains(&conn, b"caf\xc3\x89", "caf\u{e9}"),
            "ASCII only, like LIKE"
        );
        assert!(!contains(&conn, b"a%b", "a_b"), "no wildcards");
        let null: bool = conn
            .query_row("SELECT twk_contains(NULL, 'x')", [], |r| r.get(0))
            .unwrap();
        assert!(!null);
    }

    #[test]
    fn a_hostile_file_name_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), b"not a body").unwrap();
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, &BodyFiles::new(dir.path())).unwrap();
        let found: bool = conn
            .query_row("SELECT twk_file_contains('../secret', 'body')", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!found);
    }
}
