//! Exit codes: 2 for a usage or configuration error (arguments, environment, config file:
//! what the user can fix before running again), 1 for a failure at run time.

use std::fmt;
use std::process::ExitCode;

/// Process exit code of a usage or configuration error (as clap's own).
pub const USAGE: u8 = 2;

/// Marks an error as the user's input being wrong (exit 2). Prints exactly as the error it
/// wraps: the message is the wrapped error's, and so are its causes.
#[derive(Debug)]
pub struct UsageError(anyhow::Error);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for UsageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// `.usage()` on a result: its error is a usage error.
pub trait UsageExt<T> {
    /// Marks the error, if any, as a usage error.
    fn usage(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> UsageExt<T> for Result<T, E> {
    fn usage(self) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::Error::new(UsageError(e.into())))
    }
}

/// A usage error with this message.
pub fn usage_error(msg: impl fmt::Display + fmt::Debug + Send + Sync + 'static) -> anyhow::Error {
    anyhow::Error::new(UsageError(anyhow::Error::msg(msg)))
}

/// The exit code for an error: 2 when a usage error is anywhere in its chain (context may have
/// been added on the way up), else 1.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|c| c.is::<UsageError>()) {
        ExitCode::from(USAGE)
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn usage_survives_context_and_prints_like_the_error() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Err::<(), _>(io)
            .context("reading x")
            .usage()
            .context("loading the config")
            .unwrap_err();
        assert_eq!(exit_code(&e), ExitCode::from(USAGE));
        assert_eq!(
            twk_sanitize::error_chain(e.as_ref()),
            "loading the config: reading x: gone"
        );
        let runtime = anyhow::anyhow!("relay gone").context("running");
        assert_eq!(exit_code(&runtime), ExitCode::FAILURE);
    }
}
