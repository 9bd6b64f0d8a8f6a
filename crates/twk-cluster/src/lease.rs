//! A granted name: renewed while the session lives, marked not live when it ends, and
//! reported lost when another node's session of the same owner took it over.

use crate::{Cluster, NameRecord, encode};
use async_nats::jetstream::kv;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A name this node holds in the cluster. Dropping it ends the lease: the record is marked
/// not live (other nodes stop routing here) and expires after one lease unless the owner
/// claims it again somewhere.
pub struct Lease {
    lost: CancellationToken,
    end: CancellationToken,
}

impl Lease {
    pub(crate) fn start(
        cluster: Arc<Cluster>,
        name: &str,
        rec: NameRecord,
        revision: u64,
    ) -> Lease {
        let lost = CancellationToken::new();
        let end = CancellationToken::new();
        tokio::spawn(renew(
            cluster,
            name.to_string(),
            rec,
            revision,
            lost.clone(),
            end.clone(),
        ));
        Lease { lost, end }
    }

    /// Cancelled when another node took the name (the session here must close).
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.end.cancel();
    }
}

/// Renews the record every third of a lease (compare-and-set on the last revision) until the
/// lease ends (then marks it not live) or is lost. NATS unreachable: the session goes on
/// (the node keeps serving what it holds) and renewal is retried.
async fn renew(
    cluster: Arc<Cluster>,
    name: String,
    rec: NameRecord,
    mut revision: u64,
    lost: CancellationToken,
    end: CancellationToken,
) {
    let names = cluster.names.clone();
    let body = encode(&rec);
    let mut tick = tokio::time::interval(cluster.lease / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = end.cancelled() => break,
            _ = cluster.stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match names.update(&name, body.clone(), revision).await {
            Ok(r) => revision = r,
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                match reclaim(&names, &name, &rec, &body).await {
                    Some(r) => revision = r,
                    None => {
                        tracing::info!(name, "cluster: the name was taken over on another node");
                        lost.cancel();
                        return;
                    }
                }
            }
            Err(e) => tracing::warn!(name, error = %e, "cluster: renewing a name failed; retrying"),
        }
    }
    let ended = NameRecord { live: false, ..rec };
    cluster.name_table.insert(&name, ended.clone());
    let mark = names.update(&name, encode(&ended), revision);
    let _ = tokio::time::timeout(Duration::from_secs(1), mark).await;
}

/// After a failed compare-and-set: the record expired while NATS was away (create it again),
/// or another session holds it now (`None`: lost).
async fn reclaim(
    names: &kv::Store,
    name: &str,
    rec: &NameRecord,
    body: &bytes::Bytes,
) -> Option<u64> {
    match names.entry(name).await {
        Ok(Some(e)) if e.operation == kv::Operation::Put => {
            let now: Option<NameRecord> = serde_json::from_slice(&e.value).ok();
            match now {
                Some(now) if now == *rec => Some(e.revision),
                _ => None,
            }
        }
        Ok(_) => names.create(name, body.clone()).await.ok(),
        // Still unreachable: keep the session; the next tick retries.
        Err(_) => Some(0),
    }
}
