//! Handing kept requests to the tunnel's client: oldest first, one at a time, each deleted
//! only once the client answered 2xx (it is recorded). One hand-off per tunnel at a time on
//! a node; one that could not finish (NATS did not answer, the client could not record)
//! tries again, later, while the session lasts.

use super::{Kept, Place, cluster, disk};
use crate::server::State;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First wait before a hand-off that could not finish looks again; doubled up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// One hand-off per tunnel at a time on a node: a reason to hand off (a connect, a request
/// kept by another node) that arrives during one makes it look once more when it ends.
#[derive(Debug, Default)]
pub(super) struct Turns(Mutex<HashMap<String, bool>>);

/// The running hand-off of one tunnel ([`Turns`]).
struct Turn<'a> {
    turns: &'a Turns,
    name: String,
    ended: bool,
}

impl Turns {
    /// `None` when a hand-off of `name` runs already (it is told to look again).
    fn begin(&self, name: &str) -> Option<Turn<'_>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(again) = map.get_mut(name) {
            *again = true;
            return None;
        }
        map.insert(name.to_owned(), false);
        Some(Turn {
            turns: self,
            name: name.to_owned(),
            ended: false,
        })
    }
}

impl Turn<'_> {
    /// Whether to look once more; when not, the turn ends here, under the same lock as a
    /// [`Turns::begin`] that would otherwise find it still running and be lost.
    fn again(&mut self) -> bool {
        let mut map = self.turns.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&self.name) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                map.remove(&self.name);
                self.ended = true;
                false
            }
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let mut map = self.turns.0.lock().unwrap_or_else(|p| p.into_inner());
            map.remove(&self.name);
        }
    }
}

/// Most tunnels whose refusals [`Refused`] remembers at once.
const REFUSED_TUNNELS: usize = 4096;

/// Kept requests a client process refused as sealed to another key of its owner, by tunnel:
/// not offered to that process again (its reconnects have the same key), while another
/// process (the owner's other machine) is offered them afresh. Without it, a node's loop
/// over what its disk kept sent such a request to the client every second.
#[derive(Debug, Default)]
pub(super) struct Refused(Mutex<HashMap<String, (String, HashSet<String>)>>);

impl Refused {
    /// What `client` refused of tunnel `name`'s requests that are still `listed` (the rest
    /// is forgotten, and so is what another client refused). Nothing for a client whose id
    /// is not known (a node that does not record it): every process would look the same.
    fn by(&self, name: &str, client: &str, listed: &HashSet<String>) -> HashSet<String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(name) {
            Some((c, stems)) if c == client && !client.is_empty() => {
                stems.retain(|s| listed.contains(s));
                let refused = stems.clone();
                if refused.is_empty() {
                    map.remove(name);
                }
                refused
            }
            _ => {
                map.remove(name);
                HashSet::new()
            }
        }
    }

    fn note(&self, name: &str, client: &str, stem: String) {
        if client.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Entries go only when their tunnel is handed over again: past this many tunnels
        // (a token holder refusing everything under ever new names), all are forgotten,
        // which costs each of them one more offer.
        if map.len() >= REFUSED_TUNNELS && !map.contains_key(name) {
            map.clear();
        }
        let entry = map
            .entry(name.to_owned())
            .or_insert_with(|| (client.to_owned(), HashSet::new()));
        if entry.0 != client {
            *entry = (client.to_owned(), HashSet::new());
        }
        entry.1.insert(stem);
    }
}

/// How one pass over a tunnel's kept requests ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Everything there was went, or stays only for another key of the owner.
    Done,
    /// Something stays that this client could take later.
    Incomplete,
}

/// Hands tunnel `name`'s kept requests to its client connected here (it just connected, or
/// another node just kept one for it): those on this node's disk and, in a cluster, those
/// in JetStream. Each pass takes the session as it is then, so a client that reconnected
/// meanwhile gets what is left.
pub(crate) async fn hand_off(state: Arc<State>, name: String) {
    let Some(store) = state.keep.clone() else {
        return;
    };
    let Some(mut turn) = store.turns.begin(&name) else {
        return;
    };
    let mut wait = RETRY_FIRST;
    loop {
        let Some(session) = state.registry.ready_session(&name) else {
            return;
        };
        let to = Recipient::Session {
            sender: session.sender,
            client: session.client,
            key: session.owner_key,
        };
        let pass = hand_over(state.clone(), name.clone(), to).await;
        if pass == Pass::Incomplete {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = state.sessions.cancelled() => return,
            }
            wait = (wait * 2).min(RETRY_MAX);
            continue;
        }
        if !turn.again() {
            return;
        }
    }
}

/// Where kept requests go: the tunnel's session on this node, or (in a cluster) the node
/// whose session holds the tunnel now, through its peer listener. Each names the client
/// process whose session it is: what that process refused is not offered again
/// ([`Refused`]). A session here also names the key its client sent: what was sealed to
/// another key is not sent to it at all.
pub(crate) enum Recipient {
    Session {
        sender: crate::tunnel_h2::TunnelSender,
        client: String,
        key: Option<twk_protocol::kept::OwnerPublic>,
    },
    Peer(twk_cluster::Peer),
}

impl Recipient {
    /// The client process whose session takes the requests ("" when not known).
    fn client(&self) -> &str {
        match self {
            Recipient::Session { client, .. } => client,
            Recipient::Peer(peer) => &peer.client,
        }
    }

    /// Whether the client holds a key other than `sealed_to`: it could not open the request.
    /// Not known for another node's session (its client answers for itself), nor for a
    /// record that does not name its key.
    fn cannot_open(&self, sealed_to: Option<&twk_protocol::kept::OwnerPublic>) -> bool {
        match (self, sealed_to) {
            (Recipient::Session { key: Some(key), .. }, Some(sealed_to)) => key != sealed_to,
            _ => false,
        }
    }

    /// Sends one kept request; the client's answer status.
    pub(crate) async fn deliver(
        &mut self,
        state: &State,
        name: &str,
        request: http::Request<crate::body::RelayBody>,
    ) -> Result<http::StatusCode, String> {
        match self {
            Recipient::Session { sender, .. } => {
                let r = sender
                    .send(request)
                    .await
                    .map_err(|e| e.error.to_string())?;
                Ok(r.status())
            }
            Recipient::Peer(peer) => {
                let (mut parts, body) = request.into_parts();
                let path = format!("{}{name}", crate::peer::KEPT_PATH);
                crate::peer::address(&mut parts, peer, &path)?;
                if !peer.client.is_empty() {
                    let expected = http::HeaderValue::from_str(&peer.client)
                        .map_err(|_| "the client id is not a header value".to_owned())?;
                    parts.headers.insert(crate::peer::EXPECT_CLIENT, expected);
                }
                let r = state
                    .peers
                    .request(http::Request::from_parts(parts, body))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(r.status())
            }
        }
    }
}

/// Tunnel `name`'s kept requests, in arrival order: this node's disk, and with `shared`
/// the cluster's store too; and whether the listing is whole.
async fn listing(state: &State, name: &str, shared: bool) -> (Vec<Kept>, Pass) {
    let Some(store) = &state.keep else {
        return (Vec::new(), Pass::Done);
    };
    let mut pass = Pass::Done;
    let (d, n) = (store.disk.clone(), name.to_owned());
    let mut kept = match super::blocking(move || d.list(&n)).await {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot list kept requests");
            pass = Pass::Incomplete;
            Vec::new()
        }
        Err(_) => Vec::new(),
    };
    if let (true, Some(c)) = (shared, &state.cfg.cluster) {
        match cluster::list(c, name).await {
            Some(k) => kept.extend(k),
            None => pass = Pass::Incomplete,
        }
    }
    super::arrival_order(&mut kept);
    (kept, pass)
}

/// One kept request's sealed bytes: `Ok(None)` when it is gone (delivered or dropped by
/// another node meanwhile), `Err` when it could not be read now.
pub(super) async fn read(state: &State, name: &str, k: &Kept) -> Result<Option<Vec<u8>>, ()> {
    match &k.place {
        Place::Disk(path) => {
            let path = path.clone();
            match super::blocking(move || disk::Disk::read(&path)).await {
                Ok(Ok(b)) => Ok(Some(b)),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                _ => Err(()),
            }
        }
        Place::Cluster => {
            let (Some(c), Some(store)) = (&state.cfg.cluster, &state.keep) else {
                return Err(());
            };
            cluster::read(c, name, k, &store.limits).await
        }
    }
}

/// Deletes one kept request from where it is.
pub(super) async fn remove(state: &State, name: &str, k: &Kept) {
    match &k.place {
        Place::Disk(path) => {
            let path = path.clone();
            let _ = super::blocking(move || std::fs::remove_file(path)).await;
        }
        Place::Cluster => {
            if let Some(c) = &state.cfg.cluster {
                cluster::remove(c, name, k).await;
            }
        }
    }
}

/// Hands `name`'s kept requests to `to`. To the tunnel's own session: everything kept for
/// it; to another node: only what this node's disk kept (what is in JetStream, the holding
/// node hands over itself). What the recipient's client process refused before is not
/// offered again ([`Refused`]).
pub(crate) async fn hand_over(state: Arc<State>, name: String, mut to: Recipient) -> Pass {
    let Some(store) = state.keep.clone() else {
        return Pass::Done;
    };
    let shared = matches!(to, Recipient::Session { .. });
    let client = to.client().to_owned();
    let (mut kept, mut pass) = listing(&state, &name, shared).await;
    let listed: HashSet<String> = kept.iter().map(Kept::stem).collect();
    let refused = store.refused.by(&name, &client, &listed);
    kept.retain(|k| !refused.contains(&k.stem()));
    if !kept.is_empty() {
        tracing::info!(
            count = kept.len(),
            to = if shared { "client" } else { "the holding node" },
            "handing kept requests over"
        );
    }
    for k in kept {
        let Ok(_room) = store.handing.clone().acquire_owned().await else {
            return Pass::Incomplete;
        };
        let kept = match read(&state, &name, &k).await {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(()) => {
                pass = Pass::Incomplete;
                continue;
            }
        };
        let kept = bytes::Bytes::from(kept);
        let (sealed_to, sealed) = super::stored::unwrap(&kept);
        let sealed = kept.slice_ref(sealed);
        if to.cannot_open(sealed_to.as_ref()) {
            state.metrics.kept_withheld();
            left_for_another_key(&store, &name, &client, &k);
            continue;
        }
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://{name}.tunnel/"))
            .header(twk_protocol::meta::KEPT, k.request_id.as_str())
            .header(twk_protocol::meta::RECEIVED_AT, k.received_ms)
            .body(crate::body::full(sealed));
        let Ok(request) = request else { continue };
        match to.deliver(&state, &name, request).await {
            Ok(status) if status.is_success() => {
                remove(&state, &name, &k).await;
                state.metrics.kept_handed_off();
            }
            // Sealed to another key, as the client found (a record that does not name its
            // key, or another node's client).
            Ok(http::StatusCode::UNPROCESSABLE_ENTITY) => {
                state.metrics.kept_skipped();
                left_for_another_key(&store, &name, &client, &k);
            }
            // The node holds the tunnel for another process now: the next pass asks again.
            Ok(http::StatusCode::CONFLICT) => {
                tracing::info!(
                    "the tunnel's client changed during the hand-off; the rest stays kept"
                );
                return Pass::Incomplete;
            }
            Ok(status) => {
                tracing::warn!(
                    status = status.as_u16(),
                    "the client did not take a kept request; it stays kept"
                );
                return Pass::Incomplete;
            }
            Err(e) => {
                tracing::info!(error = %e, "tunnel ended during the hand-off; the rest stays kept");
                return Pass::Incomplete;
            }
        }
    }
    pass
}

/// A kept request sealed to another key of the owner (their other machine, or a key since
/// replaced): this client cannot read it, the other one still may. It stays, within the
/// TTL, and is not offered to this client process again.
fn left_for_another_key(store: &super::KeepStore, name: &str, client: &str, k: &Kept) {
    store.refused.note(name, client, k.stem());
    tracing::info!(request_id = %k.request_id, "kept request sealed to another key of the owner: left for it");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(stems: &[&str]) -> HashSet<String> {
        stems.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_refusal_holds_for_its_client_process_only_and_while_the_request_is_there() {
        let r = Refused::default();
        let listed = set(&["a", "b"]);
        r.note("shop", "laptop", "a".into());
        assert_eq!(r.by("shop", "laptop", &listed), set(&["a"]));
        assert_eq!(r.by("other", "laptop", &listed), set(&[]));
        // Another process of the owner is offered it afresh, and the laptop's refusal goes.
        assert_eq!(r.by("shop", "desktop", &listed), set(&[]));
        assert_eq!(r.by("shop", "laptop", &listed), set(&[]));
        // Gone from the listing (taken, expired): forgotten.
        r.note("shop", "laptop", "a".into());
        assert_eq!(r.by("shop", "laptop", &set(&["b"])), set(&[]));
        assert_eq!(r.by("shop", "laptop", &listed), set(&[]));
    }

    #[test]
    fn refusals_are_remembered_for_a_bounded_number_of_tunnels() {
        let r = Refused::default();
        for i in 0..REFUSED_TUNNELS {
            r.note(&format!("t{i}"), "laptop", "a".into());
        }
        assert_eq!(r.by("t0", "laptop", &set(&["a"])), set(&["a"]));
        r.note("one-more", "laptop", "a".into());
        assert_eq!(
            r.by("t1", "laptop", &set(&["a"])),
            set(&[]),
            "all forgotten"
        );
        assert_eq!(r.by("one-more", "laptop", &set(&["a"])), set(&["a"]));
    }

    #[test]
    fn a_client_whose_id_is_unknown_is_never_skipped() {
        let r = Refused::default();
        r.note("shop", "", "a".into());
        assert_eq!(r.by("shop", "", &set(&["a"])), set(&[]));
    }
}
