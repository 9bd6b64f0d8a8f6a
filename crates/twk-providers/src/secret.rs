//! Secrets: a masked newtype and the per-provider set.

use crate::analysis::Provider;
use std::collections::BTreeMap;
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret (auth token, signing secret, `user:pass` credentials). `Debug` and `Display`
/// print `Secret(***)`; equality is constant time.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from a string (used as its UTF-8 bytes, which is what every scheme does with
    /// the value you copy from the provider's console).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().into_bytes())
    }

    /// A secret from raw bytes (e.g. an already-decoded key).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The secret's bytes. Named so that every use is easy to find.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: overwrite before freeing. (No `unsafe`, so the compiler may elide it.)
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

/// Why a secret spec or table was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The spec has no `=`.
    #[error("secret spec must look like PROVIDER=VALUE (e.g. stripe=whsec_...), got no '='")]
    MissingEquals,
    /// The provider part is not a known provider id.
    #[error(
        "unknown provider {0:?} in secret spec (expected one of: twilio, twilio-secondary, \
         authy-onetouch, authy-webhook, bandwidth, stripe, github, slack, shopify, \
         standard-webhooks, svix)"
    )]
    UnknownProvider(String),
    /// The value is empty.
    #[error("empty secret for {0}")]
    Empty(String),
    /// Bandwidth credentials must be `user:pass`.
    #[error("bandwidth credentials must look like user:password")]
    BandwidthFormat,
}

/// Which slot a spec key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Provider(Provider),
    TwilioSecondary,
}

fn parse_slot(key: &str) -> Result<Slot, SecretsError> {
    let norm = key.trim().to_ascii_lowercase().replace('_', "-");
    if matches!(
        norm.as_str(),
        "twilio-secondary" | "twilio-secondary-token" | "twilio-secondary-auth-token"
    ) {
        return Ok(Slot::TwilioSecondary);
    }
    norm.parse::<Provider>()
        .map(Slot::Provider)
        .map_err(|_| SecretsError::UnknownProvider(key.trim().to_owned()))
}

/// The environment variables [`Secrets::from_env`] reads, and the slot each fills.
const ENV_VARS: [(&str, &str); 12] = [
    ("TWILIO_AUTH_TOKEN", "twilio"),
    ("TWILIO_SECONDARY_AUTH_TOKEN", "twilio-secondary"),
    ("AUTHY_API_KEY", "authy-onetouch"),
    ("AUTHY_WEBHOOK_SIGNING_KEY", "authy-webhook"),
    ("BANDWIDTH_CALLBACK_CREDENTIALS", "bandwidth"),
    ("STRIPE_WEBHOOK_SECRET", "stripe"),
    ("GITHUB_WEBHOOK_SECRET", "github"),
    ("SLACK_SIGNING_SECRET", "slack"),
    ("SHOPIFY_API_SECRET", "shopify"),
    ("STANDARD_WEBHOOKS_SECRET", "standard-webhooks"),
    ("SVIX_WEBHOOK_SECRET", "svix"),
    ("WEBHOOK_SECRET", "standard-webhooks"),
];

/// The `no_secret` explanation: which value is missing and the three places twk reads it
/// from (the same for every command that checks signatures: `--secret PROVIDER=VALUE`, the
/// provider's environment variable, the config file's `[secrets]` table).
pub fn no_secret_message(provider: Provider) -> String {
    let id = provider.as_str();
    let value = match provider {
        Provider::Bandwidth => "user:pass",
        Provider::AuthyWebhook => "WSK_…",
        Provider::Stripe | Provider::StandardWebhooks | Provider::Svix => "whsec_…",
        _ => "…",
    };
    let mut m = format!(
        "No {} {} is configured. Give it to twk as --secret {id}={value} (tunnel, replay, \
         verify), in the environment as {}, or in the config file under [secrets] as \
         {id} = \"{value}\".",
        provider.display_name(),
        provider.secret_name(),
        provider.secret_env_var(),
    );
    match provider {
        Provider::Bandwidth => m.push_str(
            " A tunnel started with --basic-auth user:pass checks Bandwidth callbacks against \
             those credentials.",
        ),
        Provider::AuthyWebhook => {
            m.push_str(" It is the WSK_… value returned when the webhook was created.");
        }
        _ => {}
    }
    m
}

/// Per-provider secrets, plus an optional Twilio secondary auth token, plus twk's own test
/// secrets (see [`Secrets::set_test_secret`]).
///
/// Deserializes from a table whose keys are provider ids (TOML `[secrets] stripe = "whsec_…"`),
/// with `twilio-secondary` for the secondary token and `bandwidth = "user:pass"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct Secrets {
    by_provider: BTreeMap<Provider, Secret>,
    twilio_secondary: Option<Secret>,
    test: BTreeMap<Provider, Secret>,
}

impl Secrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same secret for every provider (what `twk-tunnel verify --secret` does, since the
    /// provider may be auto-detected).
    pub fn for_all(secret: &Secret) -> Self {
        let mut s = Self::new();
        for p in Provider::ALL {
            s.set(p, secret.clone());
        }
        s
    }

    /// The secret for `provider`.
    pub fn get(&self, provider: Provider) -> Option<&Secret> {
        self.by_provider.get(&provider)
    }

    /// Sets the secret for `provider`.
    pub fn set(&mut self, provider: Provider, secret: Secret) {
        self.by_provider.insert(provider, secret);
    }

    /// Builder-style [`Secrets::set`].
    #[must_use]
    pub fn with(mut self, provider: Provider, secret: Secret) -> Self {
        self.set(provider, secret);
        self
    }

    /// Removes the secret for `provider`.
    pub fn remove(&mut self, provider: Provider) -> Option<Secret> {
        self.by_provider.remove(&provider)
    }

    /// The Twilio secondary auth token (used only to explain failures: Twilio signs with the
    /// primary until you promote the secondary).
    pub fn twilio_secondary(&self) -> Option<&Secret> {
        self.twilio_secondary.as_ref()
    }

    /// Sets the Twilio secondary auth token.
    pub fn set_twilio_secondary(&mut self, secret: Secret) {
        self.twilio_secondary = Some(secret);
    }

    /// Adds twk's test secret for `provider`: the one `twk-tunnel trigger` signs with when no
    /// secret is configured for it. [`crate::analyze`] tries it only for a provider with no
    /// secret of its own ([`Secrets::get`] is `None`) and believes it only when the signature
    /// holds with it (`valid` or `stale`, marked [`crate::SecretSource::TwkTest`]); otherwise
    /// the verdict stays `no_secret`, so a real provider's webhook is never called invalid
    /// for not being signed with twk's secret. [`crate::sign_request`] never uses it: a caller
    /// that means to sign with it (a re-signed replay) asks for [`Secrets::test_secret`].
    pub fn set_test_secret(&mut self, provider: Provider, secret: Secret) {
        self.test.insert(provider, secret);
    }

    /// Builder-style [`Secrets::set_test_secret`].
    #[must_use]
    pub fn with_test_secret(mut self, provider: Provider, secret: Secret) -> Self {
        self.set_test_secret(provider, secret);
        self
    }

    /// twk's test secret for `provider`, whether or not a secret is configured for it.
    pub fn test_secret(&self, provider: Provider) -> Option<&Secret> {
        self.test.get(&provider)
    }

    /// Providers that have a secret (test secrets are not counted).
    pub fn configured(&self) -> impl Iterator<Item = Provider> + '_ {
        self.by_provider.keys().copied()
    }

    /// True when no secret at all is configured (test secrets are not counted).
    pub fn is_empty(&self) -> bool {
        self.by_provider.is_empty() && self.twilio_secondary.is_none()
    }

    /// Parses and inserts `PROVIDER=VALUE` (e.g. `stripe=whsec_…`, `twilio-secondary=…`,
    /// `bandwidth=user:pass`). The value is everything after the first `=`, untrimmed.
    pub fn insert_spec(&mut self, spec: &str) -> Result<(), SecretsError> {
        let (key, value) = spec.split_once('=').ok_or(SecretsError::MissingEquals)?;
        self.insert_pair(key, value)
    }

    fn insert_pair(&mut self, key: &str, value: &str) -> Result<(), SecretsError> {
        let slot = parse_slot(key)?;
        if value.is_empty() {
            return Err(SecretsError::Empty(key.trim().to_owned()));
        }
        match slot {
            Slot::TwilioSecondary => self.set_twilio_secondary(Secret::new(value)),
            Slot::Provider(Provider::Bandwidth) if !value.contains(':') => {
                return Err(SecretsError::BandwidthFormat);
            }
            Slot::Provider(p) => self.set(p, Secret::new(value)),
        }
        Ok(())
    }

    /// Reads the process environment: `TWILIO_AUTH_TOKEN`, `TWILIO_SECONDARY_AUTH_TOKEN`,
    /// `AUTHY_API_KEY` (OneTouch), `AUTHY_WEBHOOK_SIGNING_KEY` (`WSK_…`),
    /// `BANDWIDTH_CALLBACK_CREDENTIALS` (`user:pass`; or `BANDWIDTH_CALLBACK_USERNAME` +
    /// `BANDWIDTH_CALLBACK_PASSWORD`), `STRIPE_WEBHOOK_SECRET`, `GITHUB_WEBHOOK_SECRET`,
    /// `SLACK_SIGNING_SECRET`, `SHOPIFY_API_SECRET`, `STANDARD_WEBHOOKS_SECRET` (or
    /// `WEBHOOK_SECRET`), `SVIX_WEBHOOK_SECRET`. Empty or malformed values are skipped.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Secrets::from_env`] with a custom lookup (for tests and config layers).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut s = Self::new();
        for (var, slot) in ENV_VARS {
            let Some(value) = lookup(var) else { continue };
            // A later, more generic variable never overrides a specific one.
            let already = match parse_slot(slot) {
                Ok(Slot::Provider(p)) => s.get(p).is_some(),
                Ok(Slot::TwilioSecondary) => s.twilio_secondary.is_some(),
                Err(_) => true,
            };
            if !already {
                let _ = s.insert_pair(slot, &value);
            }
        }
        if s.get(Provider::Bandwidth).is_none()
            && let (Some(user), Some(pass)) = (
                lookup("BANDWIDTH_CALLBACK_USERNAME"),
                lookup("BANDWIDTH_CALLBACK_PASSWORD"),
            )
            && !user.is_empty()
        {
            s.set(Provider::Bandwidth, Secret::new(format!("{user}:{pass}")));
        }
        s
    }
}

impl TryFrom<BTreeMap<String, String>> for Secrets {
    type Error = SecretsError;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        let mut s = Secrets::new();
        for (k, v) in &map {
            s.insert_pair(k, v)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_masked() {
        let s = Secret::new("whsec_supersecret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "Secret(***)");
        let set = Secrets::new().with(Provider::Stripe, s);
        let dbg = format!("{set:?}");
        assert!(!dbg.contains("supersecret"), "{dbg}");
    }

    #[test]
    fn insert_spec_parses_and_rejects() {
        let mut s = Secrets::new();
        s.insert_spec("stripe=whsec_a=b").unwrap();
        assert_eq!(s.get(Provider::Stripe).unwrap().expose(), b"whsec_a=b");
        s.insert_spec("Twilio_Secondary=tok2").unwrap();
        assert_eq!(s.twilio_secondary().unwrap().expose(), b"tok2");
        s.insert_spec("standard_webhooks=whsec_x").unwrap();
        assert!(s.get(Provider::StandardWebhooks).is_some());
        assert_eq!(s.insert_spec("stripe"), Err(SecretsError::MissingEquals));
        assert!(matches!(
            s.insert_spec("paypal=x"),
            Err(SecretsError::UnknownProvider(p)) if p == "paypal"
        ));
        assert!(matches!(
            s.insert_spec("github="),
            Err(SecretsError::Empty(_))
        ));
        assert_eq!(
            s.insert_spec("bandwidth=nocolon"),
            Err(SecretsError::BandwidthFormat)
        );
        s.insert_spec("bandwidth=user:pa:ss").unwrap();
    }

    #[test]
    fn from_lookup_reads_the_documented_variables() {
        let env = |k: &str| match k {
            "TWILIO_AUTH_TOKEN" => Some("tok".to_owned()),
            "STRIPE_WEBHOOK_SECRET" => Some("whsec_x".to_owned()),
            "SVIX_WEBHOOK_SECRET" => Some(String::new()),
            "BANDWIDTH_CALLBACK_USERNAME" => Some("u".to_owned()),
            "BANDWIDTH_CALLBACK_PASSWORD" => Some("p".to_owned()),
            _ => None,
        };
        let s = Secrets::from_lookup(env);
        assert_eq!(s.get(Provider::Twilio).unwrap().expose(), b"tok");
        assert_eq!(s.get(Provider::Stripe).unwrap().expose(), b"whsec_x");
        assert!(s.get(Provider::Svix).is_none());
        assert_eq!(s.get(Provider::Bandwidth).unwrap().expose(), b"u:p");
    }

    #[test]
    fn deserializes_from_a_table() {
        let json =
            r#"{"stripe":"whsec_1","twilio":"t","twilio-secondary":"t2","authy-webhook":"WSK_x"}"#;
        let s: Secrets = serde_json::from_str(json).unwrap();
        assert!(s.get(Provider::Stripe).is_some());
        assert!(s.get(Provider::AuthyWebhook).is_some());
        assert!(s.twilio_secondary().is_some());
        let bad: Result<Secrets, _> = serde_json::from_str(r#"{"nope":"x"}"#);
        assert!(bad.unwrap_err().to_string().contains("unknown provider"));
    }

    #[test]
    fn every_provider_reads_its_documented_variable() {
        for p in Provider::ALL {
            assert!(
                ENV_VARS.contains(&(p.secret_env_var(), p.as_str())),
                "{p}: {} is not read by from_env",
                p.secret_env_var()
            );
            let value = "x:y";
            let s = Secrets::from_lookup(|k| (k == p.secret_env_var()).then(|| value.to_owned()));
            assert!(s.get(p).is_some(), "{p}");
        }
    }

    #[test]
    fn no_secret_message_names_flag_env_and_config_key() {
        for p in Provider::ALL {
            let m = no_secret_message(p);
            assert!(m.contains(&format!("--secret {}=", p.as_str())), "{m}");
            assert!(m.contains(p.secret_env_var()), "{m}");
            assert!(
                m.contains(&format!("[secrets] as {} = ", p.as_str())),
                "{m}"
            );
        }
        assert!(no_secret_message(Provider::Bandwidth).contains("--basic-auth"));
    }

    #[test]
    fn secret_eq_is_by_value() {
        assert_eq!(Secret::new("a"), Secret::new("a"));
        assert_ne!(Secret::new("a"), Secret::new("b"));
        assert_ne!(Secret::new("a"), Secret::new("ab"));
    }
}
