//! Kept requests in a cluster: stored in JetStream (`twk_cluster`'s per-tunnel object
//! stores) so the node the client reconnects to hands them over, whichever node kept them.
//! While NATS cannot take one it goes to this node's disk, and moves to JetStream later
//! ([`spool`]).

use super::{KeepError, KeepStore, Kept, Place};
use crate::server::State;
use futures_util::StreamExt as _;
use std::sync::Arc;
use twk_cluster::Cluster;
use twk_protocol::kept::{KeptRequest, OwnerPublic};

/// How long the sender's answer waits for JetStream to store a kept request before it is
/// kept on this node's disk instead. (Should both end up holding it, the client records
/// its request id once.)
const STORE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long reading one kept request from JetStream may take (16 MiB on a slow link).
const READ_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Seals `request` and stores it in JetStream under `stem`, then drops what is over the
/// tunnel's bounds there; on this node's disk instead when NATS cannot take it.
pub(crate) async fn keep(
    c: &Arc<Cluster>,
    store: &KeepStore,
    name: &str,
    stem: &str,
    owner: OwnerPublic,
    request: KeptRequest,
) -> Result<usize, KeepError> {
    let limits = store.limits.clone();
    let sealed = tokio::task::spawn_blocking(move || super::seal(&owner, &request, &limits))
        .await
        .map_err(|e| KeepError::Io(std::io::Error::other(e.to_string())))??;
    let put = c.put_kept(name, stem, &sealed, store.limits.ttl);
    let stored = tokio::time::timeout(STORE_WITHIN, put)
        .await
        .unwrap_or_else(|_| Err(twk_cluster::ClaimError::Unavailable("no answer".into())));
    match stored {
        Ok(()) => Ok(enforce(c, store, name).await),
        Err(e) => {
            tracing::warn!(error = %e, "the cluster cannot store a kept request now: kept on this node's disk until it can");
            let (s, n, stem) = (store.clone(), name.to_owned(), stem.to_owned());
            let now = twk_protocol::now_ms();
            tokio::task::spawn_blocking(move || s.disk.write(&n, &stem, &sealed, &s.limits, now))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .map_err(KeepError::Io)
        }
    }
}

/// Drops what is over tunnel `name`'s bounds in JetStream; how many were dropped.
async fn enforce(c: &Cluster, store: &KeepStore, name: &str) -> usize {
    let kept = list(c, name).await;
    let mut dropped = 0;
    for k in super::excess(&kept, &store.limits, twk_protocol::now_ms()) {
        if c.remove_kept(name, &k.stem()).await.is_ok() {
            dropped += 1;
        }
    }
    dropped
}

/// Tunnel `name`'s kept requests in JetStream, in arrival order (none when NATS cannot be
/// asked: they stay for the next look).
pub(crate) async fn list(c: &Cluster, name: &str) -> Vec<Kept> {
    let objects = match c.kept(name).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the tunnel's kept requests in the cluster");
            return Vec::new();
        }
    };
    let mut kept: Vec<Kept> = objects
        .into_iter()
        .filter_map(|o| {
            let (received_ms, request_id) = super::parse_stem(&o.object)?;
            Some(Kept {
                place: Place::Cluster,
                received_ms,
                request_id,
                len: o.len,
            })
        })
        .collect();
    super::arrival_order(&mut kept);
    kept
}

/// One kept request's sealed bytes from JetStream.
pub(crate) async fn read(
    c: &Cluster,
    name: &str,
    k: &Kept,
    limits: &super::KeepLimits,
) -> Option<Vec<u8>> {
    let object = k.stem();
    let reading = c.read_kept(name, &object, limits.bytes);
    // Chunks deleted under the reader (another node dropping it over the bounds) would
    // leave it waiting: it is left for the next hand-off instead.
    let read = tokio::time::timeout(READ_WITHIN, reading)
        .await
        .unwrap_or_else(|_| Err(twk_cluster::ClaimError::Unavailable("no answer".into())));
    match read {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(request_id = %k.request_id, error = %e, "cannot read a kept request from the cluster");
            None
        }
    }
}

/// Deletes one kept request from JetStream (a failure leaves it to be handed over again;
/// the client records a request id once).
pub(crate) async fn remove(c: &Cluster, name: &str, k: &Kept) {
    if let Err(e) = c.remove_kept(name, &k.stem()).await {
        tracing::warn!(request_id = %k.request_id, error = %e, "cannot delete a delivered kept request from the cluster");
    }
}

/// Moves what this node's disk kept for tunnel `name` (while NATS could not take it) into
/// JetStream; a file is deleted once stored.
pub(crate) async fn spool(c: &Cluster, store: &KeepStore, name: &str) {
    let (d, n) = (store.disk.clone(), name.to_owned());
    let Ok(Ok(files)) = tokio::task::spawn_blocking(move || d.list(&n)).await else {
        return;
    };
    for k in files {
        let Place::Disk(path) = &k.place else {
            continue;
        };
        let p = path.clone();
        let Ok(Ok(sealed)) = tokio::task::spawn_blocking(move || super::disk::Disk::read(&p)).await
        else {
            continue;
        };
        if c.put_kept(name, &k.stem(), &sealed, store.limits.ttl)
            .await
            .is_err()
        {
            return;
        }
        let p = path.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(p)).await;
    }
    enforce(c, store, name).await;
}

/// Hands over what another node just kept for a tunnel held here (announced on NATS),
/// without waiting for its client to reconnect.
pub(crate) async fn deliver_announced(
    state: Arc<State>,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(c) = state.cfg.cluster.clone() else {
        return;
    };
    let mut names = match c.kept_announcements().await {
        Ok(n) => Box::pin(n),
        Err(e) => {
            return tracing::warn!(error = %e, "cannot follow requests kept by other nodes; they are handed over on reconnect");
        }
    };
    loop {
        let name = tokio::select! {
            _ = stop.cancelled() => return,
            n = names.next() => match n {
                Some(n) => n,
                None => return,
            },
        };
        if twk_protocol::validate_name(&name).is_err() {
            continue;
        }
        let now = std::time::Instant::now();
        if let crate::registry::Lookup::Ready { sender, .. } =
            state.registry.lookup(&name, now, false)
        {
            state
                .tracker
                .spawn(super::hand_off(state.clone(), name, sender));
        }
    }
}
