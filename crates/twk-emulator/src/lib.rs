//! twk-emulator: a local Twilio Verify and Authy, for the webhook-management APIs.
//!
//! An app registers its webhooks through an API (Twilio Verify v2's `Webhooks` resource;
//! Authy's Webhooks API with its `WSK_` signing keys) and reads past events through
//! Authy's reporting API. This crate answers those APIs on loopback, wire-compatible
//! enough for the official SDKs pointed at it, keeps their state in a SQLite file so it
//! survives restarts, and, when asked to fire an event ([`Emulator::fire`]), delivers it to
//! every enabled, subscribed webhook in that webhook's version and method, signed as Twilio
//! signs (`X-Twilio-Signature` with the account's auth token over the registered URL) or as
//! Authy does (an HS256 JWT with that webhook's `WSK_` key), through `twk-trigger`'s
//! builders and sender.
//!
//! What it is **not**: a Twilio. It sends no SMS, verifies no codes and keeps one account;
//! resources other than those above answer 404. docs/emulator.md lists what is emulated.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authy;
mod deliver;
pub mod model;
mod remote;
mod server;
pub mod store;
mod verify;
mod wire;

pub use deliver::{Delivery, FireRequest, Fired};
pub use remote::fire_remote;

use crate::store::Store;
use crate::wire::{ApiRequest, ApiResponse};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq as _;
use twk_providers::Secret;

/// What can go wrong starting or running the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The state file.
    #[error("emulator state: {0}")]
    State(String),
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A fire request that cannot be carried out, or the emulator could not be asked.
    #[error("{0}")]
    Fire(String),
    /// The emulator refused a fire request (an unknown event, a bad token).
    #[error("{0}")]
    Refused(String),
}

/// The emulated account's and Authy application's credentials: generated on first start
/// and kept in the state file, or given. Debug output masks the secrets.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `AC` + 32 hex.
    pub account_sid: String,
    /// Basic-auth password for the account SID, and the key of `X-Twilio-Signature`.
    pub auth_token: Secret,
    /// An API key (`SK` + 32 hex) that may stand in for the account SID.
    pub api_key_sid: String,
    /// Its secret.
    pub api_key_secret: Secret,
    /// The Authy application's id (`service_id` in Authy's answers).
    pub authy_app_id: String,
    /// The Authy application's API key (`app_api_key`, `X-Authy-API-Key`).
    pub authy_api_key: Secret,
    /// The Authy access key (`access_key`).
    pub authy_access_key: Secret,
    /// The Authy API signing key: the HMAC key of `X-Authy-Signature` on management calls.
    pub authy_signing_key: Secret,
}

/// How to start.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Where to listen (`127.0.0.1:8788` by default in the CLI; port 0 picks one).
    pub listen: SocketAddr,
    /// The state file (`emulator.sqlite` in the capture store's directory).
    pub state_path: PathBuf,
    /// Use this account SID instead of the stored one.
    pub account_sid: Option<String>,
    /// Use this auth token instead of the stored one.
    pub auth_token: Option<Secret>,
    /// Extra trusted certificates (PEM) for `https://` webhook URLs with a private CA.
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// State shared by every connection.
pub(crate) struct Shared {
    store: Mutex<Store>,
    pub(crate) creds: Credentials,
    pub(crate) base_url: String,
    pub(crate) extra_ca_pem: Option<Vec<u8>>,
    control_token: Secret,
}

impl Shared {
    /// Runs `f` on the store, under its lock.
    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, EmulatorError>,
    ) -> Result<T, EmulatorError> {
        let guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// [`Shared::with_store`] for an API answer: a failure is logged and becomes a 500.
    pub(crate) fn store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, EmulatorError>,
    ) -> Result<T, ApiResponse> {
        self.with_store(f).map_err(|e| {
            tracing::error!(error = %e, "emulator state");
            ApiResponse::json(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({
                    "code": 20500,
                    "message": "Internal Server Error: the emulator's state file failed",
                    "more_info": "https://www.twilio.com/docs/errors/20500",
                    "status": 500,
                }),
            )
        })
    }

    /// Now, Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        model::now_ms() / 1000
    }

    /// HTTP Basic with the account SID and auth token, or the API key and its secret.
    pub(crate) fn authenticate_twilio(&self, req: &ApiRequest) -> Result<(), ApiResponse> {
        let basic = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| twk_providers::decode_basic(v.as_bytes()));
        let Some((user, password)) = basic else {
            return Err(verify::unauthenticated());
        };
        let c = &self.creds;
        let pairs = [
            (&c.account_sid, &c.auth_token),
            (&c.api_key_sid, &c.api_key_secret),
        ];
        let mut ok = false;
        for (u, p) in pairs {
            // Both compared in constant time, and both pairs always tried.
            let user_ok = user.as_bytes().ct_eq(u.as_bytes());
            let pass_ok = password.as_bytes().ct_eq(p.expose());
            ok |= bool::from(user_ok & pass_ok);
        }
        if ok {
            Ok(())
        } else {
            Err(verify::unauthenticated())
        }
    }

    /// The base URL as the client called it (its `Host`), so the URLs in answers (a
    /// resource's `url`, `next_page_url`) lead back here from wherever it called from; the
    /// bound address when `Host` is missing or not a plain host and port.
    pub(crate) fn base_for(&self, req: &ApiRequest) -> String {
        let plain = |h: &&str| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        };
        match req.header("host").filter(plain) {
            Some(h) => format!("http://{h}"),
            None => self.base_url.clone(),
        }
    }

    /// Whether `token` is this run's control token (constant time).
    pub(crate) fn is_control_token(&self, token: &[u8]) -> bool {
        bool::from(token.ct_eq(self.control_token.expose()))
    }
}

/// A running emulator. Dropping it stops it.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Opens the state, binds, and serves in the background.
    pub async fn start(cfg: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let store = Store::open(&cfg.state_path)?;
        let creds = credentials(&store, &cfg)?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| EmulatorError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            creds,
            base_url: format!("http://{addr}"),
            extra_ca_pem: cfg.extra_ca_pem,
            control_token: Secret::new(model::token("twkc_", 40)),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(server::serve(listener, Arc::clone(&shared), stopped));
        tracing::info!(%addr, "emulator listening");
        Ok(Emulator {
            shared,
            addr,
            stop: Some(stop),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the base URL to point SDKs at.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The credentials the APIs take.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.creds
    }

    /// The bearer token of this run's control endpoint (`POST /twk/v1/fire`), for
    /// `twk-tunnel trigger --emulator` in another process.
    pub fn control_token(&self) -> &Secret {
        &self.shared.control_token
    }

    /// How many Verify and Authy webhooks are registered.
    pub fn counts(&self) -> (i64, i64) {
        self.shared.with_store(Store::counts).unwrap_or((0, 0))
    }

    /// Delivers an event to every enabled webhook subscribed to it, and records it for the
    /// reporting API.
    pub async fn fire(&self, req: FireRequest) -> Result<Fired, EmulatorError> {
        deliver::fire(&self.shared, req).await
    }

    /// A handle that fires through this emulator from elsewhere in the process (the
    /// inspector's `t`); it does not keep the emulator running.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Fires through a running [`Emulator`] of this process.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// As [`Emulator::fire`].
    pub async fn fire(&self, req: FireRequest) -> Result<Fired, EmulatorError> {
        deliver::fire(&self.shared, req).await
    }

    /// The emulator's base URL.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// How many webhooks `event` would be delivered to now.
    pub fn subscribed(&self, api: model::Api, event: &str) -> Result<usize, EmulatorError> {
        deliver::subscribed(&self.shared, api, event)
    }

    /// The emulated account's auth token (the key of `X-Twilio-Signature`).
    pub fn auth_token(&self) -> &Secret {
        &self.shared.creds.auth_token
    }
}

/// The credentials a state file holds (made and kept if it has none yet), with `cfg`'s
/// overrides, without listening: what `twk-tunnel emulate --credentials` prints.
pub fn stored_credentials(cfg: &EmulatorConfig) -> Result<Credentials, EmulatorError> {
    credentials(&Store::open(&cfg.state_path)?, cfg)
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The stored credentials (made on first start), with `cfg`'s overrides.
fn credentials(store: &Store, cfg: &EmulatorConfig) -> Result<Credentials, EmulatorError> {
    let hexsid = |p: &'static str| move || model::sid(p);
    let tok = |p: &'static str, n| move || model::token(p, n);
    let account_sid = match &cfg.account_sid {
        Some(s) => s.clone(),
        None => store.meta_or("account_sid", hexsid("AC"))?,
    };
    let auth_token = match &cfg.auth_token {
        Some(t) => t.clone(),
        None => {
            Secret::new(store.meta_or("auth_token", || hex::encode(rand::random::<[u8; 16]>()))?)
        }
    };
    Ok(Credentials {
        account_sid,
        auth_token,
        api_key_sid: store.meta_or("api_key_sid", hexsid("SK"))?,
        api_key_secret: Secret::new(store.meta_or("api_key_secret", tok("", 32))?),
        authy_app_id: store.meta_or("authy_app_id", || {
            (100_000 + rand::random::<u32>() % 900_000).to_string()
        })?,
        authy_api_key: Secret::new(store.meta_or("authy_api_key", tok("", 32))?),
        authy_access_key: Secret::new(store.meta_or("authy_access_key", tok("", 43))?),
        authy_signing_key: Secret::new(store.meta_or("authy_signing_key", tok("", 32))?),
    })
}
