//! The user configuration file: `$XDG_CONFIG_HOME/twk/config.toml` (else
//! `~/.config/twk/config.toml`), mode 0600 because it holds secrets.
//!
//! ```toml
//! relay = "wss://relay.example.com"
//! token = "twk_…"
//! name = "my-laptop"
//! data_dir = "/home/me/.local/share/twk"   # optional: where captures are kept
//! basic_auth = "user:pass"                 # optional (Basic-auth challenge)
//! realm = "twk"                            # optional
//!
//! [secrets]                                # provider = secret
//! stripe = "whsec_…"
//! twilio = "…auth token…"
//!
//! [capture]                                # optional limits of the capture store
//! body_cap = 1048576
//! retention = 10000                        # exchanges per tunnel name
//! retention_total = 100000                 # exchanges in all
//! payloads_max_bytes = 1073741824          # heads and bodies in the database, in all
//! body_files_max_bytes = 1073741824        # bodies of 64 KiB and more, in all
//! ```
//!
//! Unknown keys are errors (a typo must not silently disable a setting). Secrets are
//! precedence-merged: `--secret PROVIDER=VALUE` over environment variables over this file.
//! Secret-bearing values are wrapped in [`Masked`], whose `Debug` never prints them.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use twk_providers::{Provider, Secrets};
use twk_trigger::TestSecrets;

/// Environment variable holding the Basic-auth credentials (`user:pass`), like `--basic-auth`.
pub const BASIC_AUTH_ENV: &str = "TWK_BASIC_AUTH";

/// A string that must not be printed: `Debug` shows `***`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Masked(String);

impl Masked {
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Masked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `[capture]`: limits of the capture store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Stored bytes per body (default 1 MiB).
    pub body_cap: Option<usize>,
    /// Exchanges kept per tunnel name (default 10,000; 0 sets no bound).
    pub retention: Option<u64>,
    /// Exchanges kept in all, whatever their tunnel name (default 100,000; 0 sets no
    /// bound): without `--name` every run has a new name.
    pub retention_total: Option<u64>,
    /// Bytes of heads and bodies kept in the database (bodies under 64 KiB) in all
    /// (default 1 GiB; 0 sets no bound); past it the oldest exchanges go.
    pub payloads_max_bytes: Option<u64>,
    /// Bytes of stored bodies of 64 KiB and more (files beside the database) kept in all
    /// (default 1 GiB; 0 sets no bound); past it the oldest exchanges lose those bodies.
    pub body_files_max_bytes: Option<u64>,
}

/// The whole file. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Relay URL.
    pub relay: Option<String>,
    /// Client token for the relay.
    pub token: Option<Masked>,
    /// Default tunnel name.
    pub name: Option<String>,
    /// Capture directory (default `$XDG_DATA_HOME/twk`).
    pub data_dir: Option<PathBuf>,
    /// Provider secrets: `provider = "secret"`.
    #[serde(default)]
    pub secrets: BTreeMap<String, Masked>,
    /// Basic-auth credentials `user:pass` twk enforces on the public URL.
    pub basic_auth: Option<Masked>,
    /// Realm of the Basic-auth challenge.
    pub realm: Option<String>,
    /// Capture store limits.
    #[serde(default)]
    pub capture: CaptureConfig,
}

impl Config {
    /// `$XDG_CONFIG_HOME/twk/config.toml`, else `$HOME/.config/twk/config.toml`.
    pub fn default_path() -> Option<PathBuf> {
        default_path_from(
            std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// Loads `path`, or the default file when `None`. An explicit path must exist; a missing
    /// default file means an empty configuration. Warns when the file is readable by others.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match Self::default_path() {
                Some(p) => (p, false),
                None => return Ok(Config::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading config {}", path.display()));
            }
        };
        if let Some(mode) = loose_mode(&path) {
            say!(
                "twk-tunnel: warning: {} is readable by other users (mode {mode:o}); it holds \
                 secrets: chmod 600 it",
                path.display()
            );
            // Said once, above; the log (the inspector's file) keeps it at debug.
            tracing::debug!(path = %path.display(), mode = format_args!("{mode:o}"), "config file is not 0600");
        }
        Self::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    /// Parses the TOML text and checks the secrets table.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        // toml's own Display quotes the offending source line, which may hold a secret:
        // report only the message and the line number.
        let c: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|r| r.start);
            anyhow::anyhow!("{}", twk_sanitize::at_line(text, at, e.message()))
        })?;
        let mut check = Secrets::new();
        for (k, v) in &c.secrets {
            check
                .insert_spec(&format!("{k}={}", v.expose()))
                .with_context(|| format!("[secrets] {k}"))?;
        }
        if let Some(d) = &c.data_dir
            && !d.is_absolute()
        {
            bail!("data_dir must be an absolute path, got {}", d.display());
        }
        Ok(c)
    }

    /// Where the capture store lives and its limits: `data_dir` (from a flag or env) over the
    /// file's `data_dir`, else the default location; `[capture]` limits applied.
    pub fn store_options(
        &self,
        data_dir: Option<&Path>,
    ) -> anyhow::Result<twk_capture::StoreOptions> {
        let dir = data_dir.or(self.data_dir.as_deref());
        let mut opts =
            twk_capture::StoreOptions::at(dir).context("locating the capture directory")?;
        // A file there is a mistake to say at once, not a store to run without.
        if opts.data_dir.exists() && !opts.data_dir.is_dir() {
            anyhow::bail!(
                "the data directory {} is not a directory (--data-dir, or data_dir in the config)",
                twk_sanitize::clean(&opts.data_dir.display().to_string())
            );
        }
        if let Some(cap) = self.capture.body_cap {
            opts.body_cap = cap;
        }
        if let Some(r) = self.capture.retention {
            opts.retention_per_tunnel = r;
        }
        if let Some(t) = self.capture.retention_total {
            opts.retention_total = t;
        }
        if let Some(b) = self.capture.payloads_max_bytes {
            opts.payloads_max_bytes = b;
        }
        if let Some(b) = self.capture.body_files_max_bytes {
            opts.body_files_max_bytes = b;
        }
        Ok(opts)
    }

    /// twk's test secrets file (`twk_trigger::test_secrets`) of the data directory: `data_dir`
    /// (a flag or env) over the file's `data_dir`, else the default location, as for the
    /// capture store.
    pub fn test_secrets(&self, data_dir: Option<&Path>) -> anyhow::Result<TestSecrets> {
        let opts = self.store_options(data_dir)?;
        Ok(TestSecrets::in_dir(&opts.data_dir))
    }

    /// The Basic-auth credentials (`user:pass`) twk enforces on the public URL: the tunnel's
    /// `--basic-auth` flag, else the environment's `TWK_BASIC_AUTH`, else this file's
    /// `basic_auth`.
    pub fn basic_auth(
        &self,
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        flag.map(str::to_owned)
            .or_else(|| env(BASIC_AUTH_ENV).filter(|v| !v.is_empty()))
            .or_else(|| self.basic_auth.as_ref().map(|b| b.expose().to_owned()))
    }

    /// The one way every command that checks or makes signatures (the tunnel, `replay`,
    /// `verify`, `sign`) gets its provider secrets, so a secret that works for one works for
    /// all: `flags` (`--secret PROVIDER=VALUE`) over the providers' environment variables
    /// (`env` looks one up) over this file's `[secrets]`. When none of them names a Bandwidth
    /// secret, the Basic-auth credentials twk enforces ([`Config::basic_auth`] with
    /// `basic_auth_flag`) are it: they are exactly what a Bandwidth callback must carry.
    pub fn secrets(
        &self,
        flags: &[String],
        basic_auth_flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Secrets> {
        let mut s = self.explicit_secrets(flags, &env)?;
        if s.get(Provider::Bandwidth).is_none()
            && let Some(creds) = self.basic_auth(basic_auth_flag, &env)
            && creds
                .split_once(':')
                .is_some_and(|(user, _)| !user.is_empty())
        {
            s.set(Provider::Bandwidth, twk_providers::Secret::new(creds));
        }
        Ok(s)
    }

    /// Secrets named as such: file < environment < flags.
    fn explicit_secrets(
        &self,
        flags: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Secrets> {
        let mut s = Secrets::new();
        for (k, v) in &self.secrets {
            s.insert_spec(&format!("{k}={}", v.expose()))
                .with_context(|| format!("config [secrets] {k}"))?;
        }
        let from_env = Secrets::from_lookup(env);
        for p in from_env.configured().collect::<Vec<_>>() {
            if let Some(secret) = from_env.get(p) {
                s.set(p, secret.clone());
            }
        }
        if let Some(t) = from_env.twilio_secondary() {
            s.set_twilio_secondary(t.clone());
        }
        for f in flags {
            // Never echo the value: name only the provider part (a spec without `=` may be
            // the secret itself, so it is not shown at all).
            s.insert_spec(f).with_context(|| match f.split_once('=') {
                Some((provider, _)) => format!("--secret {provider}=…"),
                None => "--secret".to_owned(),
            })?;
        }
        Ok(s)
    }
}

/// `secrets` with twk's test secrets of `file` added, for the commands that check signatures
/// (they are tried only for providers with no secret configured). A file that cannot be used
/// is said on stderr, naming it, and checking goes on without test secrets (a webhook signed
/// with one is then `no_secret`, as before twk had them); only `trigger`, which would sign
/// with one, fails on it.
pub fn with_test_secrets(mut secrets: Secrets, file: &TestSecrets) -> Secrets {
    if let Err(e) = file.add_to(&mut secrets) {
        say!(
            "twk-tunnel: warning: {}",
            twk_sanitize::clean(&twk_sanitize::error_chain(&e))
        );
    }
    secrets
}

fn default_path_from(xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(x) = xdg.filter(|p| p.is_absolute()) {
        return Some(x.join("twk").join("config.toml"));
    }
    home.filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(".config").join("twk").join("config.toml"))
}

/// The permission bits when group or others have any access, for a regular file only:
/// `/dev/null` or a pipe (`--config <(…)`) holds nothing to protect, and "chmod 600
/// /dev/null" is harmful advice.
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)?;
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
relay = "wss://relay.example.com"
token = "twk_tok_123"
name = "laptop"
data_dir = "/var/lib/twk-test"
basic_auth = "user:pass"
realm = "hooks"

[secrets]
stripe = "whsec_file"
twilio = "file-twilio"

[capture]
body_cap = 2048
retention = 500
retention_total = 5000
payloads_max_bytes = 32768
body_files_max_bytes = 65536
"#;

    fn tmp_file(name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("twk-config-test-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("config.toml");
        std::fs::write(&p, text).expect("write fixture");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    #[test]
    fn full_fixture_parses() {
        let p = tmp_file("full", FULL, 0o600);
        let c = Config::load(Some(&p)).expect("loads");
        assert_eq!(c.relay.as_deref(), Some("wss://relay.example.com"));
        assert_eq!(c.token.as_ref().map(Masked::expose), Some("twk_tok_123"));
        assert_eq!(c.name.as_deref(), Some("laptop"));
        assert_eq!(c.data_dir, Some(PathBuf::from("/var/lib/twk-test")));
        assert_eq!(c.realm.as_deref(), Some("hooks"));
        assert_eq!(c.capture.body_cap, Some(2048));
        assert_eq!(c.capture.retention, Some(500));
        assert_eq!(c.capture.body_files_max_bytes, Some(65536));
        let opts = c.store_options(None).expect("store options");
        assert_eq!(opts.body_files_max_bytes, 65536);
        assert_eq!(opts.retention_total, 5000);
        assert_eq!(opts.payloads_max_bytes, 32768);
        assert_eq!(c.secrets.len(), 2);
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("twk_tok_123")
                && !dbg.contains("whsec_file")
                && !dbg.contains("user:pass"),
            "{dbg}"
        );
    }

    #[test]
    fn empty_and_missing() {
        assert_eq!(Config::parse("").expect("empty ok"), Config::default());
        assert!(Config::load(Some(Path::new("/nonexistent/twk/config.toml"))).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_secrets_are_errors() {
        for bad in [
            "relya = \"x\"",
            "[capture]\nbodycap = 1",
            "[secrets]\nstrype = \"x\"",
            "[secrets]\nstripe = \"\"",
            "data_dir = \"relative/dir\"",
            "name = 3",
        ] {
            assert!(Config::parse(bad).is_err(), "accepted: {bad}");
        }
        for leaky in ["[secrets]\nstrype = \"whsec_x\"", "tokn = \"whsec_x\""] {
            let e = format!("{:#}", Config::parse(leaky).expect_err("err"));
            assert!(!e.contains("whsec_x"), "{e}");
        }
    }

    #[test]
    fn secrets_precedence_flag_over_env_over_file() {
        let c = Config::parse(FULL).expect("parses");
        let env = |k: &str| match k {
            "STRIPE_WEBHOOK_SECRET" => Some("whsec_env".to_owned()),
            "GITHUB_WEBHOOK_SECRET" => Some("gh_env".to_owned()),
            _ => None,
        };
        let s = c
            .secrets(&["github=gh_flag".to_owned()], None, env)
            .expect("merges");
        let get = |p| s.get(p).and_then(|x| x.expose_str()).map(str::to_owned);
        assert_eq!(get(Provider::Twilio).as_deref(), Some("file-twilio"));
        assert_eq!(get(Provider::Stripe).as_deref(), Some("whsec_env"));
        assert_eq!(get(Provider::Github).as_deref(), Some("gh_flag"));
        assert!(c.secrets(&["nope".to_owned()], None, |_| None).is_err());
    }

    #[test]
    fn basic_auth_is_the_bandwidth_secret_unless_one_is_named() {
        let get = |s: &Secrets| {
            s.get(Provider::Bandwidth)
                .and_then(|x| x.expose_str())
                .map(str::to_owned)
        };
        // The file's basic_auth, the environment's, the flag's: the same precedence as the
        // Basic-auth check itself.
        let c = Config::parse(FULL).expect("parses");
        let s = c.secrets(&[], None, |_| None).expect("loads");
        assert_eq!(get(&s).as_deref(), Some("user:pass"));
        let env = |k: &str| (k == BASIC_AUTH_ENV).then(|| "env:pw".to_owned());
        let s = c.secrets(&[], None, env).expect("loads");
        assert_eq!(get(&s).as_deref(), Some("env:pw"));
        let s = c.secrets(&[], Some("flag:pw"), env).expect("loads");
        assert_eq!(get(&s).as_deref(), Some("flag:pw"));
        // A Bandwidth secret given as such wins, wherever it comes from.
        let named = ["bandwidth=named:pw".to_owned()];
        let s = c.secrets(&named, Some("flag:pw"), env).expect("loads");
        assert_eq!(get(&s).as_deref(), Some("named:pw"));
        let env = |k: &str| (k == "BANDWIDTH_CALLBACK_CREDENTIALS").then(|| "bwenv:pw".to_owned());
        let s = c.secrets(&[], Some("flag:pw"), env).expect("loads");
        assert_eq!(get(&s).as_deref(), Some("bwenv:pw"));
        // Nothing configured: none.
        let s = Config::default()
            .secrets(&[], None, |_| None)
            .expect("loads");
        assert_eq!(get(&s), None);
    }

    #[test]
    fn default_path_respects_xdg() {
        assert_eq!(
            default_path_from(Some("/x".into()), Some("/h".into())),
            Some(PathBuf::from("/x/twk/config.toml"))
        );
        assert_eq!(
            default_path_from(Some("rel".into()), Some("/h".into())),
            Some(PathBuf::from("/h/.config/twk/config.toml"))
        );
        assert_eq!(default_path_from(None, None), None);
    }

    #[test]
    fn loose_mode_is_detected() {
        let p = tmp_file("loose", "name = \"x\"\n", 0o644);
        assert_eq!(loose_mode(&p), Some(0o644));
        assert!(
            Config::load(Some(&p)).is_ok(),
            "a loose mode warns, it does not fail"
        );
        let p = tmp_file("tight", "name = \"x\"\n", 0o600);
        assert_eq!(loose_mode(&p), None);
        // Not a file: nothing to chmod (a QA review was told to chmod /dev/null).
        assert_eq!(loose_mode(Path::new("/dev/null")), None);
    }
}
