//! Requests kept for offline tunnels, stored in JetStream so that whichever node a tunnel's
//! client reconnects to can hand them over.
//!
//! One object-store bucket (a JetStream stream) per tunnel, `twk_kept_<name>`, made on the
//! first request kept for it; each kept request is one object of sealed bytes, named by the
//! relay. Objects, not stream messages: a sealed request can be 16 MiB and a NATS message is
//! 1 MiB; the object store chunks it. The bucket's `max_age` is the keep TTL, so what nobody
//! collects expires by itself. What is kept, its bounds and its order are the relay's
//! business; this module only stores, lists, reads and deletes opaque sealed bytes.
//!
//! A node that stores one also announces the tunnel's name on a plain NATS subject, so the
//! node holding the tunnel right then hands it over without waiting for a reconnect.

use crate::Cluster;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{ErrorCode, context::GetStreamErrorKind, object_store};
use base64::Engine as _;
use futures_util::StreamExt as _;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tracing::{debug, info, warn};

/// Where storing a kept request for a tunnel is announced: `twk.kept.<name>`.
const ANNOUNCE: &str = "twk.kept";

/// Largest chunk of a stored object: half a NATS message, so a 16 MiB request is 32
/// acknowledged publishes rather than 128 at the object store's default.
const CHUNK: usize = 512 * 1024;

/// Why the cluster's store of kept requests could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster's store of kept requests: {0}")]
pub struct KeptError(String);

fn failed(e: impl std::fmt::Display) -> KeptError {
    KeptError(e.to_string())
}

/// One kept request in the cluster's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptObject {
    /// The name the relay stored it under.
    pub object: String,
    /// Its sealed length in bytes.
    pub len: u64,
}

fn bucket_of(name: &str) -> String {
    format!("twk_kept_{name}")
}

/// The JetStream stream behind object store `bucket` (async-nats names it so).
fn stream_of(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

impl Cluster {
    /// Stores `sealed` as object `object` of tunnel `name`'s kept requests, making the
    /// tunnel's bucket when it has none: objects expire after `ttl`, and the bucket holds at
    /// most `max_bytes` (a put past it is refused, never an older object cut).
    pub async fn put_kept(
        &self,
        name: &str,
        object: &str,
        sealed: &[u8],
        ttl: Duration,
        max_bytes: u64,
    ) -> Result<(), KeptError> {
        let Some(store) = self.kept_store(name, Some((ttl, max_bytes))).await? else {
            return Err(failed("the tunnel's bucket was not made"));
        };
        let meta = object_store::ObjectMetadata {
            name: object.to_owned(),
            chunk_size: Some(CHUNK),
            ..Default::default()
        };
        let mut reader = sealed;
        store.put(meta, &mut reader).await.map_err(failed)?;
        Ok(())
    }

    /// Tells every node that tunnel `name` has a new kept request (best effort: the node
    /// holding it also looks when its client connects).
    pub async fn announce_kept(&self, name: &str) {
        let subject = format!("{ANNOUNCE}.{name}");
        if let Err(e) = self.js.client().publish(subject, bytes::Bytes::new()).await {
            tracing::debug!(error = %e, "cluster: could not announce a kept request");
        }
    }

    /// Tunnel `name`'s kept requests in the cluster's store (in no particular order).
    ///
    /// Read with requests only (the stream's subjects, then each object's last meta
    /// message), not the object store's `list`: its consumer can wait forever when an
    /// object is deleted while it lists.
    pub async fn kept(&self, name: &str) -> Result<Vec<KeptObject>, KeptError> {
        let bucket = bucket_of(name);
        let stream = match self.js.get_stream(stream_of(&bucket)).await {
            Ok(s) => s,
            Err(e) if is_not_found(e.kind()) => return Ok(Vec::new()),
            Err(e) => return Err(failed(e)),
        };
        let metas = format!("$O.{bucket}.M.>");
        let subjects: Vec<(String, usize)> = stream
            .info_with_subjects(&metas)
            .await
            .map_err(failed)?
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        let mut out = Vec::new();
        for (subject, _) in subjects {
            let meta = match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => m,
                // Deleted (or expired) since the subjects were read.
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
                Err(e) => return Err(failed(e)),
            };
            let Ok(info) = serde_json::from_slice::<object_store::ObjectInfo>(&meta.payload) else {
                continue;
            };
            if !info.deleted {
                out.push(KeptObject {
                    object: info.name,
                    len: info.size as u64,
                });
            }
        }
        Ok(out)
    }

    /// The sealed bytes of one kept request, at most `limit` of them (an object longer than
    /// that is refused, not truncated). `None` when it is gone (delivered or dropped by
    /// another node meanwhile).
    pub async fn read_kept(
        &self,
        name: &str,
        object: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, KeptError> {
        let Some(store) = self.kept_store(name, None).await? else {
            return Ok(None);
        };
        let found = match store.get(object).await {
            Ok(f) => f,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let mut bytes = Vec::new();
        found
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(failed)?;
        if bytes.len() as u64 > limit {
            return Err(failed("an object is longer than the relay's bound"));
        }
        Ok(Some(bytes))
    }

    /// Deletes one kept request (delivered, expired or over the tunnel's bounds), leaving no
    /// trace: the object store's delete leaves a "deleted" record until it expires, which
    /// every listing would read again, so that record is purged too.
    pub async fn remove_kept(&self, name: &str, object: &str) -> Result<(), KeptError> {
        let Some(store) = self.kept_store(name, None).await? else {
            return Ok(());
        };
        store.delete(object).await.map_err(failed)?;
        let bucket = bucket_of(name);
        let meta = format!(
            "$O.{bucket}.M.{}",
            base64::engine::general_purpose::URL_SAFE.encode(object)
        );
        let stream = self
            .js
            .get_stream(stream_of(&bucket))
            .await
            .map_err(failed)?;
        stream.purge().filter(meta).await.map_err(failed)?;
        Ok(())
    }

    /// Names of tunnels another node (or this one) just kept a request for.
    pub async fn kept_announcements(
        &self,
    ) -> Result<impl futures_util::Stream<Item = String> + use<>, KeptError> {
        let sub = self
            .js
            .client()
            .subscribe(format!("{ANNOUNCE}.*"))
            .await
            .map_err(failed)?;
        Ok(sub.filter_map(|m| async move {
            m.subject
                .as_str()
                .strip_prefix(ANNOUNCE)
                .and_then(|s| s.strip_prefix('.'))
                .map(str::to_owned)
        }))
    }

    /// The tunnel's kept bucket; `None` when it has none and `create` (its TTL and byte
    /// bound) is `None`.
    async fn kept_store(
        &self,
        name: &str,
        create: Option<(Duration, u64)>,
    ) -> Result<Option<object_store::ObjectStore>, KeptError> {
        let bucket = bucket_of(name);
        let missing = match self.js.get_object_store(&bucket).await {
            Ok(s) => {
                if let Some((ttl, max_bytes)) = create {
                    self.align_bounds(&bucket, ttl, max_bytes).await;
                }
                return Ok(Some(s));
            }
            Err(e) => e,
        };
        // Tell "no bucket yet" from NATS not answering.
        match self.js.get_stream(stream_of(&bucket)).await {
            Err(e) if is_not_found(e.kind()) => {}
            _ => return Err(failed(missing)),
        }
        let Some((ttl, max_bytes)) = create else {
            return Ok(None);
        };
        let config = object_store::Config {
            bucket: bucket.clone(),
            max_age: ttl,
            max_bytes: i64::try_from(max_bytes).unwrap_or(i64::MAX),
            storage: async_nats::jetstream::stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        };
        match self.js.create_object_store(config).await {
            Ok(s) => Ok(Some(s)),
            // Another node made it first, perhaps with its own bounds: used as it is until
            // this node's next put brings it to this node's bounds.
            Err(e) => match self.js.get_object_store(&bucket).await {
                Ok(s) => Ok(Some(s)),
                Err(_) => Err(failed(e)),
            },
        }
    }
}

impl Cluster {
    /// Brings an existing bucket to the bounds this node keeps with: a bucket made under
    /// an earlier `--keep-ttl` or `--keep-bytes` would otherwise keep its old ones for as
    /// long as it exists, dropping requests sooner than promised or keeping them longer than
    /// allowed. Best effort: the put goes ahead either way.
    async fn align_bounds(&self, bucket: &str, ttl: Duration, max_bytes: u64) {
        let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let stream = stream_of(bucket);
        let info = match self.js.get_stream(&stream).await {
            Ok(s) => s.cached_info().clone(),
            Err(e) => {
                debug!(bucket, error = %e, "kept bucket: its bounds cannot be read");
                return;
            }
        };
        let config = info.config;
        // Never below what it holds: with a smaller bound every put would be refused (the
        // bucket discards new), and what is over --keep-bytes is dropped after a put, so the
        // bound comes down at a later one.
        let held = i64::try_from(info.state.bytes).unwrap_or(i64::MAX);
        let max_bytes = max_bytes.max(held);
        if config.max_age == ttl && config.max_bytes == max_bytes {
            return;
        }
        let (was_ttl, was_bytes) = (config.max_age, config.max_bytes);
        let updated = async_nats::jetstream::stream::Config {
            max_age: ttl,
            max_bytes,
            // NATS refuses a duplicate window longer than max_age (2 min by default).
            duplicate_window: if ttl.is_zero() {
                config.duplicate_window
            } else {
                config.duplicate_window.min(ttl)
            },
            ..config
        };
        match self.js.update_stream(updated).await {
            Ok(_) => info!(
                bucket,
                ?was_ttl,
                ?ttl,
                was_bytes,
                max_bytes,
                "kept bucket brought to this node's keep bounds"
            ),
            Err(e) => warn!(bucket, error = %e, "kept bucket's bounds could not be updated"),
        }
    }

    /// The expiry and byte bound of tunnel `name`'s kept bucket, if it has one.
    pub async fn kept_bounds(&self, name: &str) -> Result<Option<(Duration, u64)>, KeptError> {
        let stream = stream_of(&bucket_of(name));
        let s = match self.js.get_stream(&stream).await {
            Ok(s) => s,
            Err(e) if is_not_found(e.kind()) => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let config = &s.cached_info().config;
        let bytes = u64::try_from(config.max_bytes).unwrap_or(u64::MAX);
        Ok(Some((config.max_age, bytes)))
    }
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
