//! Tunnel tokens: kept only as SHA-256 hashes, checked in constant time, managed in a file.
//!
//! The tokens file has one entry per line: `sha256:<hex> <label> <created>` as written by
//! `twk-relay token add` (the plaintext is printed once and never stored), or a plain token
//! (older files, hand-made ones). Blank lines and `#` comments are ignored. The functions that
//! edit the text are pure, so the command line writes the file and the relay only reads it.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// One accepted token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEntry {
    hash: [u8; 32],
    /// The operator's name for it (`token add <label>`); `None` for a plain token.
    pub label: Option<String>,
    /// When it was added (RFC 3339), if recorded.
    pub created: Option<String>,
}

impl TokenEntry {
    /// The owner id of tunnels opened with this token: a short, non-reversible fingerprint.
    pub fn owner(&self) -> String {
        hex::encode(&self.hash[..8])
    }
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenEntry({:?}, hashed)", self.label)
    }
}

/// Tokens accepted on the tunnel upgrade, kept only as SHA-256 hashes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    entries: Vec<TokenEntry>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSet({} tokens, hashed)", self.entries.len())
    }
}

/// Why the tokens file could not be changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileError {
    /// A label must be 1 to 64 of `A-Z a-z 0-9 . _ @ -`.
    #[error("invalid label {0:?}: use 1 to 64 letters, digits, '.', '_', '@' or '-'")]
    Label(String),
    /// The label is already in the file.
    #[error("a token labelled {0:?} already exists; revoke it first or pick another label")]
    Exists(String),
    /// No token has that label.
    #[error("no token is labelled {0:?}")]
    Missing(String),
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_line(line: &str) -> Option<TokenEntry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    if let Some(rest) = line.strip_prefix("sha256:") {
        let mut fields = rest.split_whitespace();
        let mut h = [0u8; 32];
        hex::decode_to_slice(fields.next()?, &mut h).ok()?;
        return Some(TokenEntry {
            hash: h,
            label: fields.next().map(str::to_string),
            created: fields.next().map(str::to_string),
        });
    }
    Some(TokenEntry {
        hash: hash(line),
        label: None,
        created: None,
    })
}

impl TokenSet {
    /// Builds a set from plaintext tokens (blank entries and `#` comments ignored). The
    /// plaintext is dropped after hashing.
    pub fn from_plaintext<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let entries = tokens
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.starts_with('#'))
            .map(|t| TokenEntry {
                hash: hash(t),
                label: None,
                created: None,
            })
            .collect();
        TokenSet { entries }
    }

    /// Adds the entries of a tokens file (hashed or plain lines).
    pub fn extend_from_file(&mut self, text: &str) {
        self.entries.extend(text.lines().filter_map(parse_line));
    }

    /// Adds plain tokens from `TWK_RELAY_TOKENS` (comma or newline separated).
    pub fn extend_from_text(&mut self, text: &str) {
        let more = TokenSet::from_plaintext(text.split([',', '\n']));
        self.entries.extend(more.entries);
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a presented token in constant time against every configured hash. On success
    /// returns the owner id: a short, non-reversible fingerprint of the token.
    ///
    /// ```
    /// let set = twk_relay::TokenSet::from_plaintext(["s3cret"]);
    /// assert!(set.verify("s3cret").is_some());
    /// assert!(set.verify("s3cret ").is_none());
    /// ```
    pub fn verify(&self, presented: &str) -> Option<String> {
        let h = hash(presented);
        let mut found = subtle::Choice::from(0u8);
        for e in &self.entries {
            found |= e.hash.ct_eq(&h);
        }
        bool::from(found).then(|| hex::encode(&h[..8]))
    }

    /// Owner ids of every token in the set.
    pub fn owners(&self) -> Vec<String> {
        self.entries.iter().map(TokenEntry::owner).collect()
    }
}

/// Adds a new random token labelled `label` to the tokens file `text`, created at `created`
/// (RFC 3339). Returns the new file text and the plaintext token (to print once).
pub fn file_add(
    text: &str,
    label: &str,
    created: &str,
) -> Result<(String, String), TokenFileError> {
    let ok = (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !ok {
        return Err(TokenFileError::Label(label.to_string()));
    }
    if text
        .lines()
        .filter_map(parse_line)
        .any(|e| e.label.as_deref() == Some(label))
    {
        return Err(TokenFileError::Exists(label.to_string()));
    }
    use base64::Engine;
    let raw: [u8; 32] = rand::random();
    let token = format!(
        "twk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let mut out = String::with_capacity(text.len() + 128);
    if text.trim().is_empty() {
        out.push_str(
            "# twk-relay tokens: `sha256:<hash> <label> <created>` from `twk-relay token add`,\n\
             # or one plain token per line. Only hashes need to be kept here.\n",
        );
    } else {
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "sha256:{} {label} {created}\n",
        hex::encode(hash(&token))
    ));
    Ok((out, token))
}

/// Removes every token labelled `label` from the tokens file `text`.
pub fn file_revoke(text: &str, label: &str) -> Result<String, TokenFileError> {
    let mut found = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if parse_line(line).is_some_and(|e| e.label.as_deref() == Some(label)) {
            found = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if found {
        Ok(out)
    } else {
        Err(TokenFileError::Missing(label.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hashed_and_verified() {
        let mut set = TokenSet::from_plaintext(["alpha", "  ", "# comment"]);
        set.extend_from_text("beta,gamma\ndelta");
        assert_eq!(set.len(), 4);
        let a = set.verify("alpha").unwrap();
        let b = set.verify("beta").unwrap();
        assert_ne!(a, b);
        assert!(set.verify("alph").is_none());
        assert!(set.verify("").is_none());
        assert!(!format!("{set:?}").contains("alpha"));
    }

    #[test]
    fn add_list_revoke_keep_only_hashes() {
        let (text, alice) = file_add("", "alice", "2026-12-02T10:00:00Z").unwrap();
        let (text, bob) = file_add(&text, "bob@laptop", "2026-12-02T10:01:00Z").unwrap();
        let text = format!("{text}legacy-plain-token\n");
        assert!(!text.contains(&alice) && !text.contains(&bob));
        assert!(alice.starts_with("twk_") && alice.len() == 47);
        let mut set = TokenSet::default();
        set.extend_from_file(&text);
        assert_eq!(set.len(), 3);
        assert!(set.verify(&alice).is_some() && set.verify(&bob).is_some());
        assert!(set.verify("legacy-plain-token").is_some());
        assert_eq!(set.entries()[0].label.as_deref(), Some("alice"));
        assert_eq!(
            set.entries()[1].created.as_deref(),
            Some("2026-12-02T10:01:00Z")
        );
        assert_eq!(
            file_add(&text, "alice", "x"),
            Err(TokenFileError::Exists("alice".into()))
        );
        assert!(matches!(
            file_add(&text, "a b", "x"),
            Err(TokenFileError::Label(_))
        ));
        let text = file_revoke(&text, "alice").unwrap();
        let mut set = TokenSet::default();
        set.extend_from_file(&text);
        assert!(set.verify(&alice).is_none() && set.verify(&bob).is_some());
        assert_eq!(
            file_revoke(&text, "alice"),
            Err(TokenFileError::Missing("alice".into()))
        );
    }
}
