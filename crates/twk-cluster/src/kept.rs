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

use crate::{ClaimError, Cluster, unavailable};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{ErrorCode, context::GetStreamErrorKind, object_store};
use futures_util::StreamExt as _;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// Where storing a kept request for a tunnel is announced: `twk.kept.<name>`.
const ANNOUNCE: &str = "twk.kept";

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

impl Cluster {
    /// Stores `sealed` as object `object` of tunnel `name`'s kept requests, making the
    /// tunnel's bucket (expiring objects after `ttl`) when it has none; then announces it.
    pub async fn put_kept(
        &self,
        name: &str,
        object: &str,
        sealed: &[u8],
        ttl: Duration,
    ) -> Result<(), ClaimError> {
        let Some(store) = self.kept_store(name, Some(ttl)).await? else {
            return Err(unavailable("the kept bucket was not made"));
        };
        let mut reader = sealed;
        store.put(object, &mut reader).await.map_err(unavailable)?;
        let subject = format!("{ANNOUNCE}.{name}");
        // Best effort: the holder also looks when its client connects.
        if let Err(e) = self.js.client().publish(subject, bytes::Bytes::new()).await {
            tracing::debug!(error = %e, "cluster: could not announce a kept request");
        }
        Ok(())
    }

    /// Tunnel `name`'s kept requests in the cluster's store (in no particular order).
    ///
    /// Read with requests only (the stream's subjects, then each object's last meta
    /// message), not the object store's `list`: its consumer can wait forever when an
    /// object is deleted while it lists.
    pub async fn kept(&self, name: &str) -> Result<Vec<KeptObject>, ClaimError> {
        let bucket = bucket_of(name);
        let stream = match self.js.get_stream(format!("OBJ_{bucket}")).await {
            Ok(s) => s,
            Err(e) if is_not_found(e.kind()) => return Ok(Vec::new()),
            Err(e) => return Err(unavailable(e)),
        };
        let metas = format!("$O.{bucket}.M.>");
        let subjects: Vec<(String, usize)> = stream
            .info_with_subjects(&metas)
            .await
            .map_err(unavailable)?
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for (subject, _) in subjects {
            let meta = match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => m,
                // Deleted (or expired) since the subjects were read.
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
                Err(e) => return Err(unavailable(e)),
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
    /// that is refused, not truncated).
    pub async fn read_kept(
        &self,
        name: &str,
        object: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ClaimError> {
        let Some(store) = self.kept_store(name, None).await? else {
            return Err(unavailable("no kept bucket for the tunnel"));
        };
        let found = store.get(object).await.map_err(unavailable)?;
        let mut bytes = Vec::new();
        found
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(unavailable)?;
        if bytes.len() as u64 > limit {
            return Err(unavailable(
                "a kept object is longer than the relay's bound",
            ));
        }
        Ok(bytes)
    }

    /// Deletes one kept request (delivered, expired or over the tunnel's bounds).
    pub async fn remove_kept(&self, name: &str, object: &str) -> Result<(), ClaimError> {
        let Some(store) = self.kept_store(name, None).await? else {
            return Ok(());
        };
        store.delete(object).await.map_err(unavailable)
    }

    /// Names of tunnels another node (or this one) just kept a request for.
    pub async fn kept_announcements(
        &self,
    ) -> Result<impl futures_util::Stream<Item = String> + use<>, ClaimError> {
        let sub = self
            .js
            .client()
            .subscribe(format!("{ANNOUNCE}.*"))
            .await
            .map_err(unavailable)?;
        Ok(sub.filter_map(|m| async move {
            m.subject
                .as_str()
                .strip_prefix(ANNOUNCE)
                .and_then(|s| s.strip_prefix('.'))
                .map(str::to_owned)
        }))
    }

    /// The tunnel's kept bucket; `None` when it has none and `create` is `None`.
    async fn kept_store(
        &self,
        name: &str,
        create: Option<Duration>,
    ) -> Result<Option<object_store::ObjectStore>, ClaimError> {
        let bucket = bucket_of(name);
        let failed = match self.js.get_object_store(&bucket).await {
            Ok(s) => return Ok(Some(s)),
            Err(e) => e,
        };
        // Tell "no bucket yet" from NATS not answering.
        match self.js.get_stream(format!("OBJ_{bucket}")).await {
            Err(e) if is_not_found(e.kind()) => {}
            _ => return Err(unavailable(failed)),
        }
        let Some(ttl) = create else {
            return Ok(None);
        };
        let config = object_store::Config {
            bucket: bucket.clone(),
            max_age: ttl,
            storage: async_nats::jetstream::stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        };
        match self.js.create_object_store(config).await {
            Ok(s) => Ok(Some(s)),
            // Another node made it first, perhaps with its own TTL: use it as it is.
            Err(e) => match self.js.get_object_store(&bucket).await {
                Ok(s) => Ok(Some(s)),
                Err(_) => Err(unavailable(e)),
            },
        }
    }
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
