//! Tunnel names: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`, minus reserved words.

use rand::Rng;

/// Names a client may never claim: they would be confused with the relay's own hosts.
pub const RESERVED: &[&str] = &[
    "www",
    "api",
    "admin",
    "relay",
    "twk",
    "app",
    "mail",
    "smtp",
    "ftp",
    "status",
    "health",
    "connect",
    "dashboard",
    "static",
    "assets",
    "root",
    "localhost",
    "t",
];

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty or longer than 63 characters.
    #[error("tunnel name must be 1 to 63 characters long")]
    Length,
    /// Contains something other than `a-z`, `0-9` and `-`, or starts/ends with `-`.
    #[error(
        "tunnel name may contain only lowercase letters, digits and '-', and must start and end with a letter or digit"
    )]
    Charset,
    /// A reserved word.
    #[error("tunnel name '{0}' is reserved")]
    Reserved(String),
}

/// Validates a tunnel name.
///
/// ```
/// assert!(twk_protocol::validate_name("my-app-1").is_ok());
/// assert!(twk_protocol::validate_name("-bad").is_err());
/// assert!(twk_protocol::validate_name("www").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > 63 {
        return Err(NameError::Length);
    }
    let bytes = name.as_bytes();
    let ok_inner = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let ok_edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.iter().all(|&b| ok_inner(b)) || !ok_edge(bytes[0]) || !ok_edge(bytes[bytes.len() - 1])
    {
        return Err(NameError::Charset);
    }
    if RESERVED.contains(&name) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// A random valid name: a letter followed by 9 lowercase letters or digits.
pub fn random_name() -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(10);
    s.push(char::from(b'a' + rng.random_range(0..26u8)));
    for _ in 0..9 {
        s.push(char::from(ALNUM[rng.random_range(0..ALNUM.len())]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "a/b",
            "é",
            "a b",
            "a\u{0}",
            "../x",
            &"a".repeat(64),
            "www",
            "t",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "0", "a-b", "abc123", &"a".repeat(63)] {
            assert!(validate_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn random_names_are_valid_and_differ() {
        let a = random_name();
        let b = random_name();
        assert!(validate_name(&a).is_ok());
        assert_ne!(a, b);
    }
}
