//! Obtaining and renewing: the order flow, and the loop that runs it on time.

use crate::AcmeError;
use crate::cache::Cache;
use crate::resolver::{ACME_TLS_ALPN, CertResolver, certified_key};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Let's Encrypt's production directory (the default).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How long a DNS hook may take to publish or remove a record.
const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// What to obtain, from where, and where to keep it.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The relay's domain, e.g. `hooks.example.com`.
    pub domain: String,
    /// Contact for the CA (expiry notices); optional for most CAs.
    pub email: Option<String>,
    /// The CA's ACME directory URL.
    pub directory: String,
    /// Where account, certificate and key are cached (0700 directory, 0600 files).
    pub cache_dir: PathBuf,
    /// DNS-01 hook: called as `<hook> set|clear <record> <value>`; with it, `*.<domain>` is
    /// obtained too (subdomain URLs). Without it, TLS-ALPN-01 on the relay's TLS port.
    pub dns_hook: Option<PathBuf>,
    /// Extra root (PEM) trusted for the CA's own HTTPS API (a private CA such as Pebble).
    pub ca_root: Option<PathBuf>,
    /// Renew when this fraction of the certificate's lifetime has passed (2/3).
    pub renew_fraction: f64,
    /// First wait after a failed attempt (doubles up to an hour), and the least time between
    /// two successful renewals.
    pub retry: Duration,
}

impl AcmeConfig {
    /// Defaults for `domain`: Let's Encrypt production, TLS-ALPN-01, renewal at 2/3.
    pub fn new(domain: impl Into<String>, cache_dir: PathBuf) -> Self {
        AcmeConfig {
            domain: domain.into(),
            email: None,
            directory: LETS_ENCRYPT.to_string(),
            cache_dir,
            dns_hook: None,
            ca_root: None,
            renew_fraction: 2.0 / 3.0,
            retry: Duration::from_secs(60),
        }
    }

    /// The names on the certificate: the domain, and its wildcard when DNS-01 is available.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec![self.domain.to_ascii_lowercase()];
        if self.dns_hook.is_some() {
            names.push(format!("*.{}", names[0]));
        }
        names
    }
}

/// The certificate being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// DNS names it covers.
    pub names: Vec<String>,
}

impl CertInfo {
    /// When renewal is due: `fraction` of the lifetime after `not_before`.
    pub fn renew_at(&self, fraction: f64) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + life.mul_f64(fraction.clamp(0.0, 1.0))
    }
}

/// Obtains, caches, serves and renews the relay's certificate.
pub struct Acme {
    cfg: AcmeConfig,
    resolver: Arc<CertResolver>,
    cache: Cache,
    account: Mutex<Option<Account>>,
    info: watch::Sender<Option<CertInfo>>,
}

impl Acme {
    /// Opens the cache and serves a cached certificate at once if it covers the names.
    pub fn new(cfg: AcmeConfig) -> Result<Acme, AcmeError> {
        if let Some(root) = &cfg.ca_root {
            check_ca_root(root)?;
        }
        let cache = Cache::open(&cfg.cache_dir, &cfg.directory, &cfg.domain)?;
        let resolver = Arc::new(CertResolver::default());
        let (info, _) = watch::channel(None);
        let acme = Acme {
            cfg,
            resolver,
            cache,
            account: Mutex::new(None),
            info,
        };
        if let (Some(chain), Some(key)) = (acme.cache.read("cert"), acme.cache.read("key")) {
            match acme.install(&chain, &key) {
                Ok(i)
                    if same_names(&i.names, &acme.cfg.names())
                        && i.not_after > SystemTime::now() =>
                {
                    info!(serial = %i.serial, "serving the cached certificate");
                }
                Ok(_) => info!("the cached certificate does not fit; obtaining a new one"),
                Err(e) => {
                    warn!(error = %twk_sanitize::error_chain(&e), "the cached certificate is unreadable; obtaining a new one")
                }
            }
        }
        Ok(acme)
    }

    /// The resolver to put in a rustls server configuration.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// A rustls server configuration serving this certificate (HTTP/1.1, plus the ALPN of
    /// TLS-ALPN-01 validation).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, AcmeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::Cert(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        cfg.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The certificate being served; changes on every renewal.
    pub fn certificate(&self) -> watch::Receiver<Option<CertInfo>> {
        self.info.subscribe()
    }

    /// Obtains a certificate when none is served, then renews it on time, until `shutdown`.
    /// Failures are logged and retried with backoff; the old certificate keeps being served.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let wait = self.next_wait(failures);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            let attempt = tokio::select! {
                r = self.obtain() => r,
                _ = shutdown.cancelled() => return,
            };
            match attempt {
                Ok(i) => {
                    failures = 0;
                    info!(serial = %i.serial, names = ?i.names, "certificate obtained");
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    warn!(error = %twk_sanitize::error_chain(&e), retry_in = ?self.next_wait(failures), "certificate not obtained");
                }
            }
        }
    }

    fn next_wait(&self, failures: u32) -> Duration {
        if failures > 0 {
            let backoff = self.cfg.retry.saturating_mul(1 << failures.min(6));
            return backoff.min(Duration::from_secs(3600));
        }
        match &*self.info.borrow() {
            None => Duration::ZERO,
            Some(i) => i
                .renew_at(self.cfg.renew_fraction)
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .max(self.cfg.retry),
        }
    }

    /// Runs one ACME order for the configured names and serves the result.
    pub async fn obtain(&self) -> Result<CertInfo, AcmeError> {
        let account = self.account().await?;
        let names = self.cfg.names();
        let idents: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
        let mut order = account.new_order(&NewOrder::new(&idents)).await?;
        let mut published = Vec::new();
        let ready = match self.authorize(&mut order, &mut published).await {
            Ok(()) => order
                .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(120)))
                .await
                .map_err(AcmeError::from),
            Err(e) => Err(e),
        };
        self.resolver.clear_challenges();
        for (record, value) in published {
            if let Err(e) = self.hook("clear", &record, &value).await {
                warn!(error = %twk_sanitize::error_chain(&e), "DNS hook could not clear a challenge record");
            }
        }
        let status = ready?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Order {
                domain: self.cfg.domain.clone(),
                status: format!("{status:?}"),
                detail: order
                    .state()
                    .error
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            });
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(120)))
            .await?;
        let info = self.install(&chain_pem, &key_pem)?;
        self.cache.write("key", &key_pem)?;
        self.cache.write("cert", &chain_pem)?;
        Ok(info)
    }

    /// Answers every pending authorization's challenge.
    async fn authorize(
        &self,
        order: &mut Order,
        published: &mut Vec<(String, String)>,
    ) -> Result<(), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = next?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Order {
                        domain: self.cfg.domain.clone(),
                        status: format!("{other:?}"),
                        detail: "authorization not pending".into(),
                    });
                }
            }
            let kind = if self.cfg.dns_hook.is_some() {
                ChallengeType::Dns01
            } else {
                ChallengeType::TlsAlpn01
            };
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| AcmeError::Order {
                    domain: self.cfg.domain.clone(),
                    status: "unusable".into(),
                    detail: format!("the CA offers no {kind:?} challenge"),
                })?;
            let who = challenge.identifier();
            let base = match who.identifier {
                Identifier::Dns(d) => d.clone(),
                other => format!("{other:?}"),
            };
            if kind == ChallengeType::Dns01 {
                let record = format!("_acme-challenge.{base}");
                let value = challenge.key_authorization().dns_value();
                self.hook("set", &record, &value).await?;
                published.push((record, value));
            } else {
                let digest = challenge.key_authorization().digest();
                self.resolver.add_challenge(&base, digest.as_ref())?;
            }
            challenge.set_ready().await?;
        }
        Ok(())
    }

    async fn account(&self) -> Result<Account, AcmeError> {
        let mut slot = self.account.lock().await;
        if let Some(a) = &*slot {
            return Ok(a.clone());
        }
        let builder = || match &self.cfg.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        };
        let cached = self
            .cache
            .read("account")
            .and_then(|j| serde_json::from_str::<AccountCredentials>(&j).ok());
        let account = match cached {
            Some(creds) => builder()?.from_credentials(creds).await?,
            None => {
                let contact = self.cfg.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, creds) = builder()?
                    .create(&new, self.cfg.directory.clone(), None)
                    .await?;
                let json = serde_json::to_string(&creds)
                    .map_err(|e| AcmeError::Cert(format!("account credentials: {e}")))?;
                self.cache.write("account", &json)?;
                account
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// Serves `chain_pem` with `key_pem` from now on.
    fn install(&self, chain_pem: &str, key_pem: &str) -> Result<CertInfo, AcmeError> {
        let info = cert_info(chain_pem)?;
        let key = certified_key(chain_pem, key_pem)?;
        self.resolver.set_current(Arc::new(key));
        self.info.send_replace(Some(info.clone()));
        Ok(info)
    }

    async fn hook(&self, action: &str, record: &str, value: &str) -> Result<(), AcmeError> {
        let Some(hook) = &self.cfg.dns_hook else {
            return Ok(());
        };
        let fail = |detail: String| AcmeError::DnsHook {
            hook: hook.display().to_string(),
            detail,
        };
        let run = tokio::process::Command::new(hook)
            .args([action, record, value])
            .kill_on_drop(true)
            .status();
        let status = tokio::time::timeout(HOOK_TIMEOUT, run)
            .await
            .map_err(|_| fail(format!("no answer within {HOOK_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        if status.success() {
            Ok(())
        } else {
            Err(fail(format!("{action} {record}: {status}")))
        }
    }
}

/// True when both lists hold the same names, in any order.
fn same_names(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// Serial, validity and names of the first certificate in `chain_pem`.
fn cert_info(chain_pem: &str) -> Result<CertInfo, AcmeError> {
    let bad = |e: String| AcmeError::Cert(format!("issued certificate: {e}"));
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let validity = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    Ok(CertInfo {
        serial: cert.raw_serial_as_string(),
        not_before: at(validity.not_before.timestamp()),
        not_after: at(validity.not_after.timestamp()),
        names,
    })
}

/// The CA root file must hold at least one PEM certificate: a wrong path is a mistake in the
/// configuration, to report at start instead of retrying the first order forever.
fn check_ca_root(path: &std::path::Path) -> Result<(), AcmeError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| AcmeError::CaRootUnreadable {
        path: shown.clone(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .filter(Result::is_ok)
        .count();
    if certs == 0 {
        return Err(AcmeError::CaRootEmpty { path: shown });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let i = CertInfo {
            serial: "1".into(),
            not_before: UNIX_EPOCH,
            not_after: UNIX_EPOCH + Duration::from_secs(90 * 86_400),
            names: vec![],
        };
        assert_eq!(
            i.renew_at(2.0 / 3.0),
            UNIX_EPOCH + Duration::from_secs(60 * 86_400)
        );
    }

    #[test]
    fn names_include_the_wildcard_only_with_a_dns_hook() {
        let mut c = AcmeConfig::new("Hooks.Example.com", PathBuf::from("/x"));
        assert_eq!(c.names(), ["hooks.example.com"]);
        c.dns_hook = Some(PathBuf::from("/bin/true"));
        assert_eq!(c.names(), ["hooks.example.com", "*.hooks.example.com"]);
    }

    #[test]
    fn a_self_signed_certificate_reads_back() {
        let ck = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let i = cert_info(&ck.cert.pem()).unwrap();
        assert_eq!(i.names, ["a.test"]);
        assert!(i.not_after > i.not_before);
        let key = certified_key(&ck.cert.pem(), &ck.signing_key.serialize_pem());
        assert!(key.is_ok());
    }
}
