//! twk-cluster: how several `twk-relay` nodes agree on who holds which tunnel name, through
//! NATS JetStream key-value buckets.
//!
//! - **Names** (`twk_names`): one key per tunnel name, `{owner, node, live}`. A claim is an
//!   atomic create, or a compare-and-set on the revision it read when the same owner moves
//!   (a reconnect to another node), so two nodes can never grant one name to two owners.
//!   The holding node renews its lease every third of [`ClusterConfig::lease`]; the bucket's
//!   `max_age` is the lease, so a dead node's names free themselves.
//! - **Nodes** (`twk_nodes`): each node's peer URL and the secret other nodes present to it,
//!   renewed the same way.
//! - Both buckets are watched into local tables, so routing a public request costs no round
//!   trip to NATS; entries not renewed within a lease are ignored.
//!
//! - **Kept requests** (`twk_kept_<name>`, object stores): requests kept for an offline
//!   tunnel, sealed to its owner, so the node its client reconnects to can hand them over.
//!
//! It is not the relay's HTTP, nor the node-to-node transport (`twk-relay` forwards requests
//! to the holding node's peer listener); it does not start or configure NATS.
#![forbid(unsafe_code)]

mod kept;
mod lease;
mod table;

pub use kept::{KeptError, KeptObject};
pub use lease::Lease;

use async_nats::jetstream::kv;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use table::Table;
use tokio_util::sync::CancellationToken;

/// Bucket of name leases.
const NAMES: &str = "twk_names";
/// Bucket of node addresses.
const NODES: &str = "twk_nodes";
/// Bucket of what every node shares and keeps: the tokens file's text.
const CONFIG: &str = "twk_config";
/// The key of the tokens file's text in [`CONFIG`].
const TOKENS: &str = "tokens";
/// Bucket of each name's owner key (the public key requests are sealed to while its client
/// is offline), kept until replaced, so any node can keep a request for any tunnel.
const KEYS: &str = "twk_owner_keys";

/// A name's owner key in [`KEYS`].
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct OwnerKeyRecord {
    owner: String,
    key: String,
}

/// How to reach NATS and what this node tells the others.
#[derive(Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://…`; user and password may be in the URL).
    pub servers: Vec<String>,
    /// A NATS credentials file (`.creds`, JWT + NKey seed).
    pub creds: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for TLS to NATS.
    pub ca: Option<PathBuf>,
    /// The URL other nodes send this node's tunnels' requests to (its peer listener).
    pub advertise: String,
    /// How long a name or node stays registered without renewal.
    pub lease: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Server URLs may carry a password.
        f.debug_struct("ClusterConfig")
            .field("servers", &self.servers.len())
            .field("advertise", &self.advertise)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Errors starting the cluster membership.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No server URL was given, or one is malformed.
    #[error("cluster: {0}")]
    Config(String),
    /// NATS could not be reached or refused the connection.
    #[error("cluster: cannot connect to NATS: {0}")]
    Connect(String),
    /// JetStream is not enabled, or a bucket could not be created.
    #[error("cluster: JetStream bucket {bucket}: {reason} (is nats-server running with -js?)")]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Why a name was not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another owner holds the name (connected, or within a lease of disconnecting).
    #[error("held by another token")]
    Taken,
    /// This client process was displaced by a newer one of the same token (on any node):
    /// it must stop rather than take the name back.
    #[error("taken over by another client of the same token")]
    TakenOver,
    /// NATS cannot be reached: no new name is granted until it returns.
    #[error("the cluster's NATS cannot be reached ({0}); no new tunnel names are granted")]
    Unavailable(String),
}

/// A name's record in the `twk_names` bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct NameRecord {
    /// Fingerprint of the owner's token (never the token).
    owner: String,
    /// The node holding the session.
    node: String,
    /// False once the session ended: the name stays the owner's until the lease runs out.
    live: bool,
    /// The client process holding it (the same across its reconnects and moves).
    #[serde(default)]
    client: String,
    /// Client processes of the same owner it was taken from, newest last.
    #[serde(default)]
    displaced: Vec<String>,
}

/// Client ids remembered per name as displaced.
const MAX_DISPLACED: usize = 8;

/// A node's record in the `twk_nodes` bucket.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct NodeRecord {
    url: String,
    secret: String,
}

/// Another node that holds a tunnel: where to send its requests, and the secret to present.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's id.
    pub node: String,
    /// The client process whose session the node holds (for [`Cluster::locate`]; empty
    /// otherwise, and from nodes that do not record it).
    pub client: String,
    /// Its peer listener's URL.
    pub url: String,
    /// What it accepts as proof that a request comes from a node of this cluster.
    pub secret: String,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("node", &self.node)
            .field("url", &self.url)
            .field("secret", &"***")
            .finish()
    }
}

/// This node's membership of the cluster.
pub struct Cluster {
    js: async_nats::jetstream::Context,
    node: String,
    secret: String,
    lease: Duration,
    names: kv::Store,
    name_table: Table<NameRecord>,
    node_table: Table<NodeRecord>,
    config: kv::Store,
    config_table: Table<String>,
    keys: kv::Store,
    key_table: Table<OwnerKeyRecord>,
    stop: CancellationToken,
}

impl Cluster {
    /// Connects to NATS, creates (or opens) the buckets, registers this node and starts
    /// following both buckets; everything stops when `stop` is cancelled.
    pub async fn join(
        cfg: ClusterConfig,
        stop: CancellationToken,
    ) -> Result<Arc<Cluster>, ClusterError> {
        if cfg.servers.is_empty() {
            return Err(ClusterError::Config("no NATS server URL given".into()));
        }
        if cfg.lease < Duration::from_secs(1) {
            return Err(ClusterError::Config(
                "the lease must be at least 1 s".into(),
            ));
        }
        let client = connect(&cfg).await?;
        let js = async_nats::jetstream::new(client);
        let names = bucket(&js, NAMES, cfg.lease).await?;
        let nodes = bucket(&js, NODES, cfg.lease).await?;
        // Kept until replaced (no age limit).
        let config = bucket(&js, CONFIG, Duration::ZERO).await?;
        let keys = bucket(&js, KEYS, Duration::ZERO).await?;
        let node = format!("n{}", hex::encode(rand::random::<[u8; 6]>()));
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let me = NodeRecord {
            url: cfg.advertise.clone(),
            secret: secret.clone(),
        };
        let body = encode(&me);
        nodes
            .put(&node, body.clone())
            .await
            .map_err(|e| ClusterError::Bucket {
                bucket: NODES,
                reason: e.to_string(),
            })?;
        let cluster = Arc::new(Cluster {
            js,
            node: node.clone(),
            secret,
            lease: cfg.lease,
            names: names.clone(),
            name_table: Table::default(),
            node_table: Table::default(),
            config: config.clone(),
            config_table: Table::default(),
            keys: keys.clone(),
            key_table: Table::default(),
            stop: stop.clone(),
        });
        tokio::spawn(table::follow(keys, cluster.key_table.clone(), stop.clone()));
        tokio::spawn(table::follow(
            config,
            cluster.config_table.clone(),
            stop.clone(),
        ));
        tokio::spawn(table::follow(
            names,
            cluster.name_table.clone(),
            stop.clone(),
        ));
        tokio::spawn(table::follow(
            nodes.clone(),
            cluster.node_table.clone(),
            stop.clone(),
        ));
        tokio::spawn(renew_node(nodes, node.clone(), body, cfg.lease, stop));
        tracing::info!(node, advertise = %cfg.advertise, "joined the relay cluster");
        Ok(cluster)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Claims `name` for `owner`'s client process `client` on this node: granted when nobody
    /// holds it, or when the same owner holds it (here or on another node: the newest
    /// session wins, the other node sees its lease taken and closes its session). A client
    /// process that another one of the same owner displaced is refused
    /// ([`ClaimError::TakenOver`]), on every node, so two processes never take the name
    /// from each other in turn.
    pub async fn claim(
        self: &Arc<Self>,
        name: &str,
        owner: &str,
        client: &str,
    ) -> Result<Lease, ClaimError> {
        // A lost race is read again: the winner's record decides.
        for _ in 0..4 {
            let current = self.names.entry(name).await.map_err(unavailable)?;
            let held = current.filter(|e| e.operation == kv::Operation::Put);
            let before: Option<NameRecord> = held
                .as_ref()
                .and_then(|e| serde_json::from_slice(&e.value).ok());
            let mine = self.record(owner, client, before.as_ref())?;
            let body = encode(&mine);
            let attempt = match held {
                None => self.names.create(name, body.clone()).await.map_err(|e| {
                    (e.kind() == kv::CreateErrorKind::AlreadyExists)
                        .then_some(())
                        .ok_or_else(|| unavailable(e))
                }),
                Some(e) => self
                    .names
                    .update(name, body.clone(), e.revision)
                    .await
                    .map_err(|e| {
                        (e.kind() == kv::UpdateErrorKind::WrongLastRevision)
                            .then_some(())
                            .ok_or_else(|| unavailable(e))
                    }),
            };
            match attempt {
                Ok(revision) => {
                    self.name_table.insert(name, mine.clone());
                    return Ok(Lease::start(self.clone(), name, mine, revision));
                }
                Err(Ok(())) => continue,
                Err(Err(e)) => return Err(e),
            }
        }
        Err(ClaimError::Taken)
    }

    /// The record a claim by `owner`'s `client` writes over `before`, or why it may not.
    fn record(
        &self,
        owner: &str,
        client: &str,
        before: Option<&NameRecord>,
    ) -> Result<NameRecord, ClaimError> {
        let mut displaced = Vec::new();
        if let Some(b) = before {
            if b.owner != owner {
                return Err(ClaimError::Taken);
            }
            if b.displaced.iter().any(|c| c == client) {
                return Err(ClaimError::TakenOver);
            }
            displaced.clone_from(&b.displaced);
            if b.live && !b.client.is_empty() && b.client != client {
                displaced.push(b.client.clone());
                let excess = displaced.len().saturating_sub(MAX_DISPLACED);
                displaced.drain(..excess);
            }
        }
        Ok(NameRecord {
            owner: owner.to_string(),
            node: self.node.clone(),
            live: true,
            client: client.to_string(),
            displaced,
        })
    }

    /// The other node holding a live session of `name`, if the tables know one.
    pub fn locate(&self, name: &str) -> Option<Peer> {
        let rec = self.name_table.fresh(name, self.lease)?;
        if !rec.live || rec.node == self.node {
            return None;
        }
        let node = self.node_table.fresh(&rec.node, self.lease)?;
        Some(Peer {
            node: rec.node,
            client: rec.client,
            url: node.url,
            secret: node.secret,
        })
    }

    /// Whether the tables have a record of `name` at all (held, or let go within a lease or
    /// two): a request for it may be worth a moment's wait for its holder.
    pub fn knows(&self, name: &str) -> bool {
        self.name_table.contains(name)
    }

    /// Waits up to `within` until the tables show another node holding `name` live (a
    /// claim on one node reaches the others' tables a moment later).
    pub async fn await_holder(&self, name: &str, within: Duration) -> Option<Peer> {
        let tables = [self.name_table.subscribe(), self.node_table.subscribe()];
        until(within, tables, || self.locate(name)).await
    }

    /// Records `owner`'s public key (base64) for `name`: a node that receives a request for
    /// it while its client is offline seals the request to this key.
    pub async fn set_owner_key(
        &self,
        name: &str,
        owner: &str,
        key: &str,
    ) -> Result<(), ClaimError> {
        let rec = OwnerKeyRecord {
            owner: owner.to_string(),
            key: key.to_string(),
        };
        if self
            .key_table
            .fresh(name, Duration::MAX)
            .is_some_and(|r| r.owner == rec.owner && r.key == rec.key)
        {
            return Ok(());
        }
        self.keys
            .put(name, encode(&rec))
            .await
            .map(|_| ())
            .map_err(unavailable)?;
        self.key_table.insert(name, rec);
        Ok(())
    }

    /// The owner key (base64) to seal a request for `name` to, unless the name now belongs
    /// to another owner than the key's.
    pub fn owner_key(&self, name: &str) -> Option<String> {
        let rec = self.key_table.fresh(name, Duration::MAX)?;
        let holder = self.name_table.fresh(name, Duration::MAX);
        if holder.is_some_and(|h| h.owner != rec.owner) {
            return None;
        }
        Some(rec.key)
    }

    /// Waits up to `within` until the tables know an owner key for `name`.
    pub async fn await_owner_key(&self, name: &str, within: Duration) -> Option<String> {
        let tables = [self.key_table.subscribe(), self.name_table.subscribe()];
        until(within, tables, || self.owner_key(name)).await
    }

    /// The tokens file's text as the cluster last shared it (hashes and labels, never a
    /// token), if any node has shared one.
    pub fn tokens_text(&self) -> Option<String> {
        self.config_table.fresh(TOKENS, Duration::MAX)
    }

    /// Changes whenever the shared configuration (the tokens text) changes.
    pub fn config_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config_table.subscribe()
    }

    /// The tokens text the cluster holds now, read from NATS (not from the watched table,
    /// which a node that just joined may not have filled yet).
    pub async fn shared_tokens(&self) -> Result<Option<String>, ClaimError> {
        let value = self.config.get(TOKENS).await.map_err(unavailable)?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Shares the tokens file's text with every node (they apply it within a moment).
    pub async fn publish_tokens(&self, text: &str) -> Result<(), ClaimError> {
        self.config
            .put(TOKENS, encode(text))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Whether `presented` is this node's peer secret (compared in constant time).
    pub fn authorizes(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        presented.ct_eq(self.secret.as_bytes()).into()
    }

    /// Nodes whose registration is current (this one included).
    pub fn nodes_seen(&self) -> usize {
        self.node_table.count_fresh(self.lease)
    }

    /// Names held live by this node.
    pub fn names_held(&self) -> usize {
        self.name_table
            .count_where(self.lease, |r| r.live && r.node == self.node)
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A record as a bucket stores it (JSON).
pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// NATS did not answer a call: what a claim or a shared write reports.
fn unavailable(e: impl std::fmt::Display) -> ClaimError {
    ClaimError::Unavailable(e.to_string())
}

/// Waits up to `within` for `probe` to find something, probing again whenever one of the
/// `tables` changes.
async fn until<T, const N: usize>(
    within: Duration,
    mut tables: [tokio::sync::watch::Receiver<u64>; N],
    probe: impl Fn() -> Option<T>,
) -> Option<T> {
    let found = async {
        loop {
            if let Some(v) = probe() {
                return v;
            }
            let changes = tables.iter_mut().map(|t| Box::pin(t.changed()));
            let _ = futures_util::future::select_all(changes).await;
        }
    };
    tokio::time::timeout(within, found).await.ok()
}

async fn connect(cfg: &ClusterConfig) -> Result<async_nats::Client, ClusterError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name("twk-relay")
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(2)))
        // NATS going away later is survived (see the crate docs); only the first connect
        // must succeed, so a misconfigured URL fails the start with a clear error.
        .max_reconnects(None);
    if let Some(creds) = &cfg.creds {
        opts = opts.credentials_file(creds).await.map_err(|e| {
            ClusterError::Config(format!("credentials file {}: {e}", creds.display()))
        })?;
    }
    if let Some(ca) = &cfg.ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| ClusterError::Config(format!("NATS server URL: {e}")))?;
    opts = url_auth(opts, &addrs)?;
    opts.connect(addrs)
        .await
        .map_err(|e| ClusterError::Connect(e.to_string()))
}

/// The user and password (`nats://user:pass@host`) or token (`nats://token@host`) written in
/// a server URL: async-nats parses them but does not send them, so they are given to it here
/// (percent-decoded, from the first URL that has any).
fn url_auth(
    opts: async_nats::ConnectOptions,
    addrs: &[async_nats::ServerAddr],
) -> Result<async_nats::ConnectOptions, ClusterError> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|d| d.into_owned())
            .map_err(|_| ClusterError::Config("NATS server URL: credentials are not UTF-8".into()))
    };
    let Some(addr) = addrs.iter().find(|a| a.username().is_some()) else {
        return Ok(opts);
    };
    let user = decode(addr.username().unwrap_or_default())?;
    Ok(match addr.password() {
        Some(pass) => opts.user_and_password(user, decode(pass)?),
        None => opts.token(user),
    })
}

async fn bucket(
    js: &async_nats::jetstream::Context,
    bucket: &'static str,
    lease: Duration,
) -> Result<kv::Store, ClusterError> {
    // The stream a key-value bucket is, made directly: `create_key_value` first asks for the
    // account's info, whose answer from nats-server 2.9 (Debian's) async-nats cannot read.
    let stream = async_nats::jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: lease,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    // Another node may have made it first (with its own lease): then it is used as it is.
    let created = js.get_or_create_stream(stream).await.map(|_| ());
    js.get_key_value(bucket)
        .await
        .map_err(|e| ClusterError::Bucket {
            bucket,
            reason: match created {
                Err(c) => format!("{c}; {e}"),
                Ok(()) => e.to_string(),
            },
        })
}

/// Keeps this node's registration alive (a put per third of a lease).
async fn renew_node(
    nodes: kv::Store,
    node: String,
    body: bytes::Bytes,
    lease: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(lease / 3);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = nodes.put(&node, body.clone()).await {
            tracing::warn!(error = %e, "cluster: renewing this node's registration failed");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), nodes.delete(&node)).await;
}
