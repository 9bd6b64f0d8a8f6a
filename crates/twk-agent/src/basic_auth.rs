//! The HTTP Basic-auth challenge, answered by twk itself (`--basic-auth user:pass`).
//!
//! Bandwidth (and Twilio with credentials in the callback URL) send a callback first without
//! `Authorization`; the receiver must answer 401 **with** `WWW-Authenticate: Basic realm="…"`,
//! and the provider then resends with credentials. The check runs in the tunnel client, not the
//! relay: the relay never holds the password, and both legs are recorded where the developer
//! can see them.

use std::fmt;
use subtle::ConstantTimeEq;

/// Credentials twk enforces on every tunnelled request.
#[derive(Clone)]
pub struct BasicAuth {
    user: String,
    password: String,
    /// Realm in the challenge.
    pub realm: String,
    /// Remove `Authorization` before forwarding to the local app.
    pub strip: bool,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"***")
            .field("realm", &self.realm)
            .field("strip", &self.strip)
            .finish()
    }
}

/// Why a `user:pass` spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasicAuthError {
    /// No `:`.
    #[error("expected user:password")]
    Format,
    /// Empty user, or a `:` in the user (not representable in Basic auth).
    #[error("the user must be non-empty")]
    EmptyUser,
    /// A realm with a quote, backslash or control character.
    #[error("the realm may not contain quotes, backslashes or control characters")]
    Realm,
}

/// Outcome of checking one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Right credentials.
    Pass,
    /// No `Authorization` header: answer the challenge.
    Missing,
    /// Credentials present but wrong (or unparseable): answer the challenge again.
    Wrong,
}

impl BasicAuth {
    /// Parses `user:password` (the password may contain `:`).
    pub fn parse(spec: &str, realm: &str, strip: bool) -> Result<BasicAuth, BasicAuthError> {
        let (user, password) = spec.split_once(':').ok_or(BasicAuthError::Format)?;
        if user.is_empty() {
            return Err(BasicAuthError::EmptyUser);
        }
        if realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(BasicAuthError::Realm);
        }
        Ok(BasicAuth {
            user: user.to_string(),
            password: password.to_string(),
            realm: realm.to_string(),
            strip,
        })
    }

    /// The configured user (not secret).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether `secret` (a Bandwidth `user:pass` secret) is these credentials; constant
    /// time.
    pub fn is(&self, secret: &twk_providers::Secret) -> bool {
        let mine = format!("{}:{}", self.user, self.password);
        mine.as_bytes().ct_eq(secret.expose()).into()
    }

    /// The challenge header value: `Basic realm="…", charset="UTF-8"`.
    pub fn challenge(&self) -> String {
        format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm)
    }

    /// Checks the `Authorization` header values of a request, in constant time.
    pub fn check<'a>(&self, authorization: impl IntoIterator<Item = &'a [u8]>) -> Check {
        let mut seen = false;
        let mut ok = subtle::Choice::from(0u8);
        for value in authorization {
            seen = true;
            let Some((user, pass)) = decode(value) else {
                continue;
            };
            let u = user.as_bytes().ct_eq(self.user.as_bytes());
            let p = pass.as_bytes().ct_eq(self.password.as_bytes());
            ok |= u & p;
        }
        match (seen, bool::from(ok)) {
            (false, _) => Check::Missing,
            (true, true) => Check::Pass,
            (true, false) => Check::Wrong,
        }
    }
}

/// Decodes `Basic base64(user:pass)` (see [`twk_providers::decode_basic`]).
pub fn decode(value: &[u8]) -> Option<(String, String)> {
    twk_providers::decode_basic(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn header(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn checks_credentials() {
        let a = BasicAuth::parse("bw:p:ss", "twk", false).unwrap();
        assert_eq!(a.check(std::iter::empty()), Check::Missing);
        assert_eq!(a.check([header("bw", "p:ss").as_bytes()]), Check::Pass);
        assert_eq!(a.check([header("bw", "nope").as_bytes()]), Check::Wrong);
        assert_eq!(a.check([header("BW", "p:ss").as_bytes()]), Check::Wrong);
        assert_eq!(a.check([&b"Bearer x"[..]]), Check::Wrong);
        assert_eq!(a.check([&b"Basic !!!notbase64"[..]]), Check::Wrong);
        assert_eq!(a.check([&b"\xff\xfe"[..]]), Check::Wrong);
        assert_eq!(a.challenge(), "Basic realm=\"twk\", charset=\"UTF-8\"");
    }

    #[test]
    fn hostile_specs_are_refused_and_debug_masks() {
        assert_eq!(
            BasicAuth::parse("nocolon", "r", false).unwrap_err(),
            BasicAuthError::Format
        );
        assert_eq!(
            BasicAuth::parse(":pw", "r", false).unwrap_err(),
            BasicAuthError::EmptyUser
        );
        assert_eq!(
            BasicAuth::parse("u:p", "a\"b", false).unwrap_err(),
            BasicAuthError::Realm
        );
        let a = BasicAuth::parse("u:hunter2", "r", true).unwrap();
        assert!(!format!("{a:?}").contains("hunter2"));
        assert!(a.is(&twk_providers::Secret::new("u:hunter2")));
        assert!(!a.is(&twk_providers::Secret::new("u:hunter")));
    }
}
