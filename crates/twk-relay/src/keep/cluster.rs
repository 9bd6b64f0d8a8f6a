//! Kept requests in a cluster: stored in JetStream (`twk_cluster`'s per-tunnel object
//! stores) so the node the client reconnects to hands them over, whichever node kept them.
//! While NATS cannot take one it goes to this node's disk, and moves to JetStream later
//! ([`spool`]).

use super::{KeepError, KeepStore, Kept, Place};
use crate::server::State;
use futures_util::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;
use twk_cluster::{Cluster, KeptError};
use twk_protocol::kept::{KeptRequest, OwnerPublic};

/// How long the sender's answer waits for JetStream to store a kept request before it is
/// kept on this node's disk instead. (Should both end up holding it, the client records
/// its request id once.)
const STORE_WITHIN: Duration = Duration::from_secs(5);

/// How long reading one kept request from JetStream may take (16 MiB on a slow link).
const READ_WITHIN: Duration = Duration::from_secs(60);

/// A tunnel's bucket holds at most this many times its byte bound: room for what a put
/// refused or a crash left behind until it expires, never unbounded.
const BUCKET_ROOM: u64 = 4;

/// `call`, unless NATS takes longer than `within`.
async fn bounded<T>(
    within: Duration,
    call: impl std::future::Future<Output = Result<T, KeptError>>,
) -> Result<T, String> {
    match tokio::time::timeout(within, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("NATS did not answer within {within:?}")),
    }
}

/// Stores one sealed request of tunnel `name` in JetStream under `stem` and announces it.
async fn store_sealed(
    c: &Cluster,
    store: &KeepStore,
    name: &str,
    stem: &str,
    sealed: &[u8],
) -> Result<(), String> {
    let max = store.limits.bytes.saturating_mul(BUCKET_ROOM);
    let put = c.put_kept(name, stem, sealed, store.limits.ttl, max);
    bounded(STORE_WITHIN, put).await?;
    c.announce_kept(name).await;
    Ok(())
}

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
    let sealed = super::blocking(move || super::seal(&owner, &request, &limits)).await??;
    match store_sealed(c, store, name, stem, &sealed).await {
        Ok(()) => Ok(enforce(c, store, name).await),
        Err(e) => {
            tracing::warn!(error = %e, "the cluster cannot store a kept request now: kept on this node's disk until it can");
            super::write_on_disk(store, name, stem.to_owned(), sealed).await
        }
    }
}

/// Drops what is over tunnel `name`'s bounds in JetStream; how many were dropped.
async fn enforce(c: &Cluster, store: &KeepStore, name: &str) -> usize {
    let Some(kept) = list(c, name).await else {
        return 0;
    };
    let mut dropped = 0;
    for k in super::excess(&kept, &store.limits, twk_protocol::now_ms()) {
        if c.remove_kept(name, &k.stem()).await.is_ok() {
            dropped += 1;
        }
    }
    dropped
}

/// Tunnel `name`'s kept requests in JetStream, in arrival order; `None` when NATS cannot be
/// asked now (they stay for the next look).
pub(crate) async fn list(c: &Cluster, name: &str) -> Option<Vec<Kept>> {
    let objects = match bounded(STORE_WITHIN, c.kept(name)).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the tunnel's kept requests in the cluster");
            return None;
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
    Some(kept)
}

/// One kept request's sealed bytes from JetStream: `Ok(None)` when it is gone.
pub(crate) async fn read(
    c: &Cluster,
    name: &str,
    k: &Kept,
    limits: &super::KeepLimits,
) -> Result<Option<Vec<u8>>, ()> {
    let object = k.stem();
    // Chunks deleted under the reader (another node dropping it over the bounds) would
    // leave it waiting: the bound leaves it for the next hand-off instead.
    match bounded(READ_WITHIN, c.read_kept(name, &object, limits.bytes)).await {
        Ok(b) => Ok(b),
        Err(e) => {
            tracing::warn!(request_id = %k.request_id, error = %e, "cannot read a kept request from the cluster");
            Err(())
        }
    }
}

/// Deletes one kept request from JetStream (a failure leaves it to be handed over again;
/// the client records a request id once).
pub(crate) async fn remove(c: &Cluster, name: &str, k: &Kept) {
    if let Err(e) = bounded(STORE_WITHIN, c.remove_kept(name, &k.stem())).await {
        tracing::warn!(request_id = %k.request_id, error = %e, "cannot delete a delivered kept request from the cluster");
    }
}

/// Moves what this node's disk kept for tunnel `name` (while NATS could not take it) into
/// JetStream; a file is deleted once stored.
pub(crate) async fn spool(state: &State, c: &Cluster, store: &KeepStore, name: &str) {
    let (d, n) = (store.disk.clone(), name.to_owned());
    let Ok(Ok(files)) = super::blocking(move || d.list(&n)).await else {
        return;
    };
    for k in &files {
        let Ok(Some(sealed)) = super::handoff::read(state, name, k).await else {
            continue;
        };
        if store_sealed(c, store, name, &k.stem(), &sealed)
            .await
            .is_err()
        {
            return;
        }
        super::handoff::remove(state, name, k).await;
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
        if twk_protocol::validate_name(&name).is_err() || !state.registry.is_live(&name) {
            continue;
        }
        let span = tracing::info_span!("kept", name = %name);
        let hand_off = super::hand_off(state.clone(), name);
        state.tracker.spawn(hand_off.instrument(span));
    }
}
