//! The on-disk cache: ACME account credentials, certificate chain and private key.
//!
//! One directory (0700); every file 0600, replaced atomically and durably (`twk_files`). Files
//! are keyed by CA directory URL and domain, so switching from staging to production, or to
//! another domain, never serves a certificate from the wrong place.

use crate::AcmeError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub(crate) struct Cache {
    dir: PathBuf,
    /// Short hash of the directory URL: one account per CA.
    ca: String,
    /// File-safe domain (the wildcard marker removed).
    domain: String,
}

impl Cache {
    pub(crate) fn open(dir: &Path, directory_url: &str, domain: &str) -> Result<Cache, AcmeError> {
        let io = |source| AcmeError::Cache {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let ca = Sha256::digest(directory_url.as_bytes());
        let domain: String = domain
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Cache {
            dir: dir.to_path_buf(),
            ca: ca[..6].iter().map(|b| format!("{b:02x}")).collect(),
            domain,
        })
    }

    fn path(&self, kind: &str) -> PathBuf {
        match kind {
            "account" => self.dir.join(format!("account-{}.json", self.ca)),
            _ => self
                .dir
                .join(format!("{kind}-{}-{}.pem", self.domain, self.ca)),
        }
    }

    pub(crate) fn read(&self, kind: &str) -> Option<String> {
        std::fs::read_to_string(self.path(kind)).ok()
    }

    pub(crate) fn write(&self, kind: &str, text: &str) -> Result<(), AcmeError> {
        let path = self.path(kind);
        let io = |source| AcmeError::Cache {
            path: path.display().to_string(),
            source,
        };
        twk_files::replace(&path, text.as_bytes()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_keyed_by_ca_and_domain() {
        let dir = tempfile::tempdir().unwrap();
        let a = Cache::open(
            &dir.path().join("acme"),
            "https://ca.one/dir",
            "hooks.example",
        )
        .unwrap();
        let b = Cache::open(
            &dir.path().join("acme"),
            "https://ca.two/dir",
            "hooks.example",
        )
        .unwrap();
        a.write("cert", "A").unwrap();
        assert_eq!(a.read("cert").as_deref(), Some("A"));
        assert_eq!(b.read("cert"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = std::fs::metadata(a.path("cert"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(f & 0o777, 0o600);
            let d = std::fs::metadata(dir.path().join("acme"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(d & 0o777, 0o700);
        }
    }
}
