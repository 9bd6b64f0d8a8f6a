//! twk's test secrets: one signing secret per provider, made the first time `trigger` needs
//! one and kept for good in [`FILE_NAME`] in twk's data directory (the file 0600, the
//! directory 0700), so that `trigger` and every tunnel reading that directory agree on it, as
//! the Stripe CLI's `whsec_` is shared by `listen` and `trigger`. The tunnel checks a webhook
//! with it only when no secret is configured for the provider (`twk_providers::Secrets::
//! set_test_secret`).
//!
//! The file is TOML, `provider-id = "secret"`. Keys this build does not know (a newer twk's
//! providers) are kept as they are when a secret is added.
//!
//! Adding a secret happens under an exclusive `flock` on [`LOCK_FILE_NAME`] (released by the
//! kernel if the process dies), re-reading the file once the lock is held; the new file
//! replaces the old one by `rename`, so readers, which take no lock, see the old file or the
//! new one, never half of one. Two first uses at once therefore end with one secret, and two
//! providers added at once both stay.
//!
//! A file that cannot be read or parsed is an error naming it, never replaced by new secrets:
//! the developer's app may hold the old ones.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use twk_providers::{Provider, Secret, Secrets};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "test-secrets.toml";

/// The lock file beside it, held while a secret is added (empty; never removed).
pub const LOCK_FILE_NAME: &str = "test-secrets.toml.lock";

/// What the file says about itself.
const HEADER: &str = "# twk's test secrets, one per provider: what `twk-tunnel trigger` signs with when no\n\
# secret is configured for the provider, and what twk-tunnel checks such webhooks with.\n\
# Made once by twk and kept: give your app the same value.\n";

/// Why the test secrets cannot be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum TestSecretsError {
    /// The file (or its directory) exists but cannot be read.
    #[error("reading twk's test secrets {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what twk writes.
    #[error(
        "twk's test secrets {} cannot be used (fix it, or remove it to have new secrets made)",
        .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        #[source]
        source: Malformed,
    },
    /// The directory, the lock or the file cannot be written.
    #[error("keeping twk's test secrets in {}", .path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong inside the file. Never quotes it: it holds secrets.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

/// A provider's test secret, and whether this call made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSecret {
    /// The secret (masked in `Debug`).
    pub secret: Secret,
    /// True when it did not exist before this call.
    pub made_now: bool,
}

/// The test secrets file of one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSecrets {
    path: PathBuf,
}

/// The file's entries by key as written, the known providers' among them.
type Entries = BTreeMap<String, String>;

impl TestSecrets {
    /// The file in `data_dir` (nothing is read or created yet).
    pub fn in_dir(data_dir: &Path) -> Self {
        TestSecrets {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every test secret in the file; none when there is no file yet.
    pub fn load(&self) -> Result<BTreeMap<Provider, Secret>, TestSecretsError> {
        Ok(known(&self.read()?))
    }

    /// `secrets` with every test secret of the file added ([`Secrets::set_test_secret`]).
    pub fn add_to(&self, secrets: &mut Secrets) -> Result<(), TestSecretsError> {
        for (p, s) in self.load()? {
            secrets.set_test_secret(p, s);
        }
        Ok(())
    }

    /// The test secret of `provider`, made with [`crate::generated_secret`] and kept when it
    /// has none yet.
    pub fn get_or_make(&self, provider: Provider) -> Result<TestSecret, TestSecretsError> {
        let kept = |secret| TestSecret {
            secret,
            made_now: false,
        };
        if let Some(s) = self.load()?.remove(&provider) {
            return Ok(kept(s));
        }
        let _lock = self.lock()?;
        // Another process may have added it between the read above and the lock.
        let mut entries = self.read()?;
        if let Some(s) = known(&entries).remove(&provider) {
            return Ok(kept(s));
        }
        let value = crate::generated_secret(provider);
        entries.insert(provider.as_str().to_owned(), value.clone());
        self.replace(&entries)?;
        tracing::info!(provider = provider.as_str(), path = %self.path.display(), "made a test secret");
        Ok(TestSecret {
            secret: Secret::new(value),
            made_now: true,
        })
    }

    /// The file's entries; none when it does not exist.
    fn read(&self) -> Result<Entries, TestSecretsError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entries::new()),
            Err(source) => {
                return Err(TestSecretsError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        parse(&text).map_err(|source| TestSecretsError::Corrupt {
            path: self.path.clone(),
            source,
        })
    }

    /// Creates the directory (0700) and takes the lock; held until the file is dropped.
    fn lock(&self) -> Result<std::fs::File, TestSecretsError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| TestSecretsError::Write { path, source }
        };
        twk_files::private_dir(dir).map_err(write_err(dir))?;
        let lock_path = dir.join(LOCK_FILE_NAME);
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(write_err(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| write_err(&lock_path)(e.into()))?;
        Ok(lock)
    }

    /// Replaces the file with `entries`. Called with the lock held.
    fn replace(&self, entries: &Entries) -> Result<(), TestSecretsError> {
        let write_err = |source| TestSecretsError::Write {
            path: self.path.clone(),
            source,
        };
        let body = toml::to_string(entries)
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
        // Atomic and synced: after a crash the file is the old one or the new one, never an
        // empty one (which would read as "no secrets" and make new ones).
        twk_files::replace(&self.path, format!("{HEADER}{body}").as_bytes()).map_err(write_err)
    }
}

/// The file's text as entries: every value a non-empty string.
fn parse(text: &str) -> Result<Entries, Malformed> {
    // toml's Display quotes the offending line, which may hold a secret: the message and
    // the line number only.
    let entries: Entries = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|r| r.start);
        Malformed(twk_sanitize::at_line(text, at, e.message().trim_end()))
    })?;
    if let Some((k, _)) = entries.iter().find(|(_, v)| v.is_empty()) {
        return Err(Malformed(format!("the secret of {k:?} is empty")));
    }
    Ok(entries)
}

/// The entries of the providers this build knows (ids exactly as [`Provider::as_str`]).
fn known(entries: &Entries) -> BTreeMap<Provider, Secret> {
    Provider::ALL
        .into_iter()
        .filter_map(|p| Some((p, Secret::new(entries.get(p.as_str())?.clone()))))
        .collect()
}

/// The file as it is now, for a process that runs for long (the tunnel): re-read when it
/// changes, which costs a `stat` per look-up. The file is replaced, never written in place,
/// so a new inode (or size, or time) tells. A file that cannot be used counts as no test
/// secrets, with a warning in the log once per version of it: a verdict then stays
/// `no_secret`, as without test secrets.
#[derive(Debug)]
pub struct LiveTestSecrets {
    file: TestSecrets,
    cache: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    stamp: Option<Stamp>,
    secrets: Arc<BTreeMap<Provider, Secret>>,
}

/// What tells one version of the file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl LiveTestSecrets {
    /// Watches `file` (nothing is read yet).
    pub fn new(file: TestSecrets) -> Self {
        LiveTestSecrets {
            file,
            cache: Mutex::new(Cached::default()),
        }
    }

    /// The file watched.
    pub fn file(&self) -> &TestSecrets {
        &self.file
    }

    /// The test secret of `provider` as the file says now.
    pub fn get(&self, provider: Provider) -> Option<Secret> {
        self.all().get(&provider).cloned()
    }

    /// Every test secret as the file says now.
    pub fn all(&self) -> Arc<BTreeMap<Provider, Secret>> {
        let stamp = std::fs::metadata(self.file.path()).ok().map(|m| Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        });
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.stamp != stamp {
            let secrets = match stamp.map(|_| self.file.load()).transpose() {
                Ok(s) => s.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %twk_sanitize::error_chain(&e), "twk's test secrets are not checked");
                    BTreeMap::new()
                }
            };
            *cache = Cached {
                stamp,
                secrets: Arc::new(secrets),
            };
        }
        cache.secrets.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
