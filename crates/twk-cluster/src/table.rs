//! Local copies of the buckets, kept current by watching them: routing reads these, never
//! NATS. Each entry remembers when it was last written, since an entry that expires by the
//! bucket's age limit leaves no delete marker to watch.

use async_nats::jetstream::kv;
use futures_util::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Key → (value, when it was last written), and a counter of changes to wait on.
pub(crate) struct Table<T>(
    Arc<RwLock<HashMap<String, (T, Instant)>>>,
    Arc<tokio::sync::watch::Sender<u64>>,
);

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table(self.0.clone(), self.1.clone())
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table(
            Arc::new(RwLock::new(HashMap::new())),
            Arc::new(tokio::sync::watch::channel(0).0),
        )
    }
}

impl<T: Clone> Table<T> {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (T, Instant)>> {
        // Single inserts and removes: a poisoned lock is still consistent.
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (T, Instant)>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, key: &str, value: T) {
        self.write()
            .insert(key.to_string(), (value, Instant::now()));
        self.1.send_modify(|n| *n += 1);
    }

    fn remove(&self, key: &str) {
        self.write().remove(key);
        self.1.send_modify(|n| *n += 1);
    }

    /// Changes whenever an entry is written or removed.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.1.subscribe()
    }

    /// The value of `key` if it was written within `max_age`.
    pub(crate) fn fresh(&self, key: &str, max_age: Duration) -> Option<T> {
        self.read()
            .get(key)
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(v, _)| v.clone())
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.read().contains_key(key)
    }

    pub(crate) fn count_fresh(&self, max_age: Duration) -> usize {
        self.count_where(max_age, |_| true)
    }

    pub(crate) fn count_where(&self, max_age: Duration, pred: impl Fn(&T) -> bool) -> usize {
        self.read()
            .values()
            .filter(|(v, at)| at.elapsed() < max_age && pred(v))
            .count()
    }

    /// Drops entries older than `max_age` (so the table stays the bucket's size).
    fn prune(&self, max_age: Duration) {
        self.write().retain(|_, (_, at)| at.elapsed() < max_age);
    }
}

/// Follows `store` into `table` until `stop`; a broken watch (NATS gone) is restarted.
pub(crate) async fn follow<T>(store: kv::Store, table: Table<T>, stop: CancellationToken)
where
    T: Clone + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let max_age = store
        .status()
        .await
        .map(|s| s.max_age())
        .unwrap_or(Duration::from_secs(60));
    // A bucket without an age limit keeps its entries: nothing to prune.
    let keep = match max_age.is_zero() {
        true => Duration::from_secs(365 * 24 * 3600),
        false => max_age.max(Duration::from_secs(1)) * 2,
    };
    let mut prune = tokio::time::interval(keep);
    while !stop.is_cancelled() {
        // The last value of every key first (a node that starts late learns what is held),
        // then every change.
        match store.watch_with_history(">").await {
            Ok(mut watch) => loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = prune.tick() => {
                        table.prune(keep);
                        continue;
                    }
                    n = watch.next() => n,
                };
                match next {
                    Some(Ok(entry)) => apply(&table, entry),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "cluster: watch error");
                        break;
                    }
                    None => break,
                }
            },
            Err(e) => tracing::debug!(error = %e, "cluster: cannot watch a bucket"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn apply<T: Clone + serde::de::DeserializeOwned>(table: &Table<T>, entry: kv::Entry) {
    match entry.operation {
        kv::Operation::Put => match serde_json::from_slice::<T>(&entry.value) {
            Ok(v) => table.insert(&entry.key, v),
            Err(e) => tracing::debug!(key = entry.key, error = %e, "cluster: unreadable entry"),
        },
        kv::Operation::Delete | kv::Operation::Purge => table.remove(&entry.key),
    }
}
