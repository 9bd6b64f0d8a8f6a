//! Which tunnel holds which name.

use crate::body::RelayBody;
use hyper::client::conn::http2::SendRequest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// One name's holder.
struct Entry {
    /// Fingerprint of the token that holds the name.
    owner: String,
    /// Unique id of the session, so a replaced session cannot unregister its successor.
    session: u64,
    /// Requests go here once the HTTP/2 handshake completed; `None` while it runs.
    sender: Option<SendRequest<RelayBody>>,
    /// Cancelled to close the session (replaced by a reconnect of the same owner, or shutdown).
    cancel: CancellationToken,
}

/// Outcome of a claim.
pub(crate) enum Claim {
    /// The name is reserved for this new session.
    Granted {
        session: u64,
        cancel: CancellationToken,
    },
    /// Another token holds the name.
    Taken,
    /// The relay is full.
    Full,
}

/// The name → tunnel table. Short critical sections only; never held across `.await`.
#[derive(Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<String, Entry>>,
    next_session: AtomicU64,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `name` for `owner`. The same owner replaces its previous session, which is
    /// cancelled; another owner is refused while the name is held.
    pub(crate) fn claim(
        &self,
        name: &str,
        owner: &str,
        max: usize,
        parent: &CancellationToken,
    ) -> Claim {
        let mut map = self.lock();
        if let Some(e) = map.get(name) {
            if e.owner != owner {
                return Claim::Taken;
            }
            e.cancel.cancel();
        } else if map.len() >= max {
            return Claim::Full;
        }
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let cancel = parent.child_token();
        map.insert(
            name.to_string(),
            Entry {
                owner: owner.to_string(),
                session,
                sender: None,
                cancel: cancel.clone(),
            },
        );
        Claim::Granted { session, cancel }
    }

    /// True when `name` is held (connected or connecting).
    pub(crate) fn is_held(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// Marks the session ready to carry requests.
    pub(crate) fn activate(
        &self,
        name: &str,
        session: u64,
        sender: SendRequest<RelayBody>,
    ) -> bool {
        let mut map = self.lock();
        match map.get_mut(name) {
            Some(e) if e.session == session => {
                e.sender = Some(sender);
                true
            }
            _ => false,
        }
    }

    /// Removes the session if it still holds the name.
    pub(crate) fn release(&self, name: &str, session: u64) {
        let mut map = self.lock();
        if map.get(name).is_some_and(|e| e.session == session) {
            map.remove(name);
        }
    }

    /// The request sender for `name`, if a session is connected.
    pub(crate) fn sender(&self, name: &str) -> Option<SendRequest<RelayBody>> {
        // A session that is closing (the client sent GOAWAY on shutdown) takes no new
        // requests: the sender is told the tunnel is offline and retries later.
        self.lock()
            .get(name)
            .and_then(|e| e.sender.clone())
            .filter(|s| !s.is_closed())
    }

    /// Number of connected tunnels.
    pub(crate) fn connected(&self) -> usize {
        self.lock().values().filter(|e| e.sender.is_some()).count()
    }
}
