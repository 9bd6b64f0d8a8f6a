//! Which tunnel holds which name, who a released name stays reserved for, and the rule for a
//! second client of the same token.
//!
//! The rules, in one place:
//! - A name belongs to the token (owner) that holds it. Another token is refused while the
//!   owner is connected ([`Claim::Taken`]) and for `name_hold` after the owner last let go
//!   ([`Claim::Reserved`]).
//! - The same client process reconnecting (same client id: a half-open link, a network
//!   change) replaces its own stale session.
//! - Another client process of the same token takes the name over: the newest session wins,
//!   the displaced client is closed, and its reconnects are refused with
//!   [`Claim::TakenOver`], so two processes never split traffic or flap.

use crate::notices::Notices;
use crate::reservations::{Reservation, Snapshot, Store};
use crate::tunnel_h2::TunnelSender;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use twk_protocol::kept::OwnerPublic;
use twk_protocol::limits;
use twk_protocol::refused::{Lost, Unkept};

/// Client ids displaced by a takeover that are remembered per name.
const MAX_DISPLACED: usize = 8;

/// A connected (or connecting) session.
struct Live {
    /// Unique id of the session, so a replaced session cannot unregister its successor.
    session: u64,
    /// The client process's id, the same across its reconnects.
    client_id: String,
    /// Requests go here once the HTTP/2 handshake completed; `None` while it runs.
    sender: Option<TunnelSender>,
    /// Cancelled to close the session (replaced, taken over, revoked or shutdown).
    cancel: CancellationToken,
    /// Cancelled once the session has ended, so requests in flight on it fail at once.
    dead: CancellationToken,
    /// Requests in flight on the session (each holds a token until its answer is through).
    inflight: tokio_util::task::TaskTracker,
    /// Requests-per-second budget of the tunnel.
    rate: Bucket,
    /// The public key this session's client sent, if it sent one: kept requests sealed to
    /// another key are not handed to it.
    owner_key: Option<OwnerPublic>,
    /// Where requests the relay refuses itself are listed for the client, when it accepts
    /// notices of them (set with the sender).
    notices: Option<Arc<Notices>>,
    /// True once `sender` is set: requests that arrive during the HTTP/2 handshake wait for
    /// it instead of being told the tunnel is offline.
    ready: tokio::sync::watch::Sender<bool>,
}

/// One name: its owner, and its session if connected.
struct Entry {
    /// Fingerprint of the token that holds or last held the name.
    owner: String,
    /// Bumped each time a session of this name becomes ready: held requests wait for it.
    back: Arc<tokio::sync::watch::Sender<u64>>,
    /// Room for held requests (see [`Lookup::Reconnecting`]).
    held: Arc<tokio::sync::Semaphore>,
    /// The owner's client public key, once one connected with it: what arrives while it is
    /// offline is kept sealed to it.
    owner_key: Option<OwnerPublic>,
    live: Option<Live>,
    /// Unix ms when the name was last released; the reservation runs `name_hold` from here.
    released_ms: i64,
    /// Client ids whose sessions were taken over by a newer client of the same token.
    displaced: Vec<String>,
    /// What this node could not keep for the name while its owner was offline; told to the
    /// owner's next session that takes notices.
    unkept: Unkept,
}

/// Outcome of a claim.
pub(crate) enum Claim {
    /// The name is granted to this new session.
    Granted {
        session: u64,
        cancel: CancellationToken,
        dead: CancellationToken,
        inflight: tokio_util::task::TaskTracker,
        /// The same token held this name before (a reconnect, not a first connect).
        reconnect: bool,
    },
    /// Another token holds the name and is connected.
    Taken,
    /// Another token held the name until recently; free at this Unix ms.
    Reserved { until_ms: i64 },
    /// This client was displaced by a newer client of the same token.
    TakenOver,
    /// The token has as many tunnels connected as allowed.
    TooManyTunnels(usize),
    /// The relay is full.
    Full,
}

/// Where a request for a name goes.
pub(crate) enum Lookup {
    /// A connected session: send here; `dead` fires if the session ends first.
    Ready {
        sender: TunnelSender,
        dead: CancellationToken,
        inflight: tokio_util::task::TaskTracker,
    },
    /// The tunnel's request rate is used up; retry after this long. The session's notices,
    /// when its client takes them, list the refusal.
    RateLimited(Duration, Option<Arc<Notices>>),
    /// The session is being set up (its HTTP/2 handshake runs); wait for this to turn true.
    Connecting(tokio::sync::watch::Receiver<bool>),
    /// No session is connected, but one was within [`limits::RECONNECT_WINDOW`]: hold the
    /// request (taking a permit from `slots`) until `back` changes, then look up again; a
    /// session of another `owner` by then is not this tunnel.
    Reconnecting {
        /// Changes when a session of the name becomes ready.
        back: tokio::sync::watch::Receiver<u64>,
        /// Held requests of this tunnel.
        slots: Arc<tokio::sync::Semaphore>,
        /// The name's owner now.
        owner: String,
    },
    /// No session is connected.
    Offline,
}

/// Limits the registry enforces.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) max_tunnels: usize,
    pub(crate) max_per_token: usize,
    pub(crate) max_reserved_per_token: usize,
    pub(crate) name_hold: Duration,
    pub(crate) hold: Duration,
    pub(crate) hold_max: usize,
    pub(crate) tunnel_rate: f64,
    pub(crate) tunnel_burst: f64,
}

/// The name → tunnel table. Short critical sections only; never held across `.await`.
pub(crate) struct Registry {
    map: Mutex<HashMap<String, Entry>>,
    next_session: AtomicU64,
    rules: Rules,
    store: Option<Store>,
    /// Token fingerprint → Unix ms of its last granted tunnel (shown by `token list`).
    last_used: Mutex<BTreeMap<String, i64>>,
}

/// A ready session of a tunnel ([`Registry::ready_session`]).
pub(crate) struct ReadySession {
    /// Where its requests go.
    pub(crate) sender: TunnelSender,
    /// The client process's id.
    pub(crate) client: String,
    /// The key its client sent, if any.
    pub(crate) owner_key: Option<OwnerPublic>,
}

impl Registry {
    /// A registry that persists reservations in `store` (if any), loading what it holds.
    pub(crate) fn new(rules: Rules, store: Option<Store>, now_ms: i64) -> Self {
        let mut map = HashMap::new();
        let mut last_used = BTreeMap::new();
        if let Some(store) = &store {
            let snap = store.load();
            last_used = snap.last_used;
            for r in snap.names {
                if r.released_ms.unwrap_or(now_ms) + hold_ms(&rules) > now_ms {
                    map.insert(
                        r.name,
                        Entry {
                            back: Arc::new(tokio::sync::watch::channel(0).0),
                            held: Arc::new(tokio::sync::Semaphore::new(rules.hold_max)),
                            owner_key: r
                                .owner_key
                                .as_deref()
                                .and_then(|k| OwnerPublic::parse(k).ok()),
                            owner: r.owner,
                            live: None,
                            // A name live when the relay stopped is held from the restart on.
                            released_ms: r.released_ms.unwrap_or(now_ms),
                            displaced: Vec::new(),
                            unkept: Unkept::default(),
                        },
                    );
                }
            }
        }
        Registry {
            map: Mutex::new(map),
            next_session: AtomicU64::new(0),
            rules,
            store,
            last_used: Mutex::new(last_used),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `name` for `owner`'s client `client_id` (see the module rules).
    pub(crate) fn claim(
        &self,
        name: &str,
        owner: &str,
        client_id: &str,
        parent: &CancellationToken,
        now_ms: i64,
    ) -> Claim {
        let claim = {
            let mut map = self.lock();
            self.claim_locked(&mut map, name, owner, client_id, parent, now_ms)
        };
        if matches!(claim, Claim::Granted { .. }) {
            self.last_used
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(owner.to_string(), now_ms);
            self.persist();
        }
        claim
    }

    fn claim_locked(
        &self,
        map: &mut HashMap<String, Entry>,
        name: &str,
        owner: &str,
        client_id: &str,
        parent: &CancellationToken,
        now_ms: i64,
    ) -> Claim {
        let reconnect = map.get(name).is_some_and(|e| e.owner == owner);
        let (displaced, replaces_own) = match self.vet(map.get(name), owner, client_id, now_ms) {
            Ok(v) => v,
            Err(refusal) => return refusal,
        };
        if !replaces_own && let Some(refusal) = self.over_capacity(map, owner) {
            return refusal;
        }
        if let Some(old) = map.get(name).and_then(|e| e.live.as_ref()) {
            old.cancel.cancel();
        }
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let cancel = parent.child_token();
        let dead = CancellationToken::new();
        let inflight = tokio_util::task::TaskTracker::new();
        let live = Live {
            session,
            client_id: client_id.to_string(),
            sender: None,
            cancel: cancel.clone(),
            dead: dead.clone(),
            inflight: inflight.clone(),
            rate: Bucket::full(self.rules.tunnel_burst),
            owner_key: None,
            notices: None,
            ready: tokio::sync::watch::channel(false).0,
        };
        // Held requests keep waiting on the same signal across sessions of the name; the
        // owner's key stays until the owner changes (set again by the new session).
        let (back, held, owner_key, unkept) = match map.get(name) {
            Some(e) => (
                e.back.clone(),
                e.held.clone(),
                e.owner_key.filter(|_| e.owner == owner),
                // What was not kept for another owner is not this one's news.
                if e.owner == owner {
                    e.unkept
                } else {
                    Unkept::default()
                },
            ),
            None => (
                Arc::new(tokio::sync::watch::channel(0).0),
                Arc::new(tokio::sync::Semaphore::new(self.rules.hold_max)),
                None,
                Unkept::default(),
            ),
        };
        map.insert(
            name.to_string(),
            Entry {
                back,
                held,
                owner_key,
                owner: owner.to_string(),
                live: Some(live),
                released_ms: now_ms,
                displaced,
                unkept,
            },
        );
        self.evict_reservations(map, owner);
        Claim::Granted {
            session,
            cancel,
            dead,
            inflight,
            reconnect,
        }
    }

    /// Applies the ownership rules to the name's current entry. On success: the client ids
    /// to remember as displaced, and whether this claim replaces a live session of the same
    /// owner (which then needs no new capacity).
    fn vet(
        &self,
        entry: Option<&Entry>,
        owner: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<(Vec<String>, bool), Claim> {
        let Some(e) = entry else {
            return Ok((Vec::new(), false));
        };
        if e.owner != owner {
            let until_ms = e.released_ms + hold_ms(&self.rules);
            return if e.live.is_some() {
                Err(Claim::Taken)
            } else if until_ms > now_ms {
                Err(Claim::Reserved { until_ms })
            } else {
                Ok((Vec::new(), false))
            };
        }
        if e.displaced.iter().any(|c| c == client_id) {
            return Err(Claim::TakenOver);
        }
        let mut displaced = e.displaced.clone();
        let Some(live) = &e.live else {
            return Ok((displaced, false));
        };
        if live.client_id != client_id {
            // Another process of the same token: the newest wins, the old one is remembered.
            displaced.push(live.client_id.clone());
            if displaced.len() > MAX_DISPLACED {
                displaced.remove(0);
            }
        }
        Ok((displaced, true))
    }

    /// A refusal when the relay, or this owner, has no room for another live tunnel.
    fn over_capacity(&self, map: &HashMap<String, Entry>, owner: &str) -> Option<Claim> {
        let live = || map.values().filter(|e| e.live.is_some());
        if live().count() >= self.rules.max_tunnels {
            return Some(Claim::Full);
        }
        let max_own = self.rules.max_per_token;
        (max_own > 0 && live().filter(|e| e.owner == owner).count() >= max_own)
            .then_some(Claim::TooManyTunnels(max_own))
    }

    /// Keeps at most `max_reserved_per_token` unused names per owner, dropping the oldest.
    fn evict_reservations(&self, map: &mut HashMap<String, Entry>, owner: &str) {
        let mut idle: Vec<(i64, String)> = map
            .iter()
            .filter(|(_, e)| e.owner == owner && e.live.is_none())
            .map(|(n, e)| (e.released_ms, n.clone()))
            .collect();
        if idle.len() <= self.rules.max_reserved_per_token {
            return;
        }
        idle.sort();
        let excess = idle.len() - self.rules.max_reserved_per_token;
        for (_, name) in idle.into_iter().take(excess) {
            map.remove(&name);
        }
    }

    /// True when nobody holds or reserves `name` (for picking random names).
    pub(crate) fn is_free(&self, name: &str, now_ms: i64) -> bool {
        let hold = hold_ms(&self.rules);
        match self.lock().get(name) {
            None => true,
            Some(e) => e.live.is_none() && e.released_ms + hold <= now_ms,
        }
    }

    /// Marks the session ready to carry requests.
    pub(crate) fn activate(
        &self,
        name: &str,
        session: u64,
        sender: TunnelSender,
        notices: Option<Arc<Notices>>,
    ) -> bool {
        let mut map = self.lock();
        let Some(e) = map.get_mut(name) else {
            return false;
        };
        match e.live.as_mut() {
            Some(live) if live.session == session => {
                live.sender = Some(sender);
                if let Some(n) = &notices {
                    n.unkept(std::mem::take(&mut e.unkept));
                }
                live.notices = notices;
                live.ready.send_replace(true);
                e.back.send_modify(|n| *n += 1);
                true
            }
            _ => false,
        }
    }

    /// Ends the session if it still holds the name; the name stays reserved for its owner.
    pub(crate) fn release(&self, name: &str, session: u64, now_ms: i64) {
        let released = {
            let mut map = self.lock();
            match map.get_mut(name) {
                Some(e) if e.live.as_ref().is_some_and(|l| l.session == session) => {
                    // Not `dead` here: the session's runner fires it once the requests its
                    // client still answers are through (a client that said GOAWAY).
                    e.live = None;
                    e.released_ms = now_ms;
                    let owner = e.owner.clone();
                    // Without reservations the entry still marks "reconnecting" for the hold
                    // (others may claim the name at once: `vet` sees it released).
                    if self.rules.name_hold.is_zero() && self.rules.hold.is_zero() {
                        map.remove(name);
                    }
                    self.evict_reservations(&mut map, &owner);
                    true
                }
                _ => false,
            }
        };
        if released {
            self.persist();
        }
    }

    /// Where a request for `name` goes, taking one request from the tunnel's rate budget
    /// when `limited`.
    pub(crate) fn lookup(&self, name: &str, now: Instant, limited: bool) -> Lookup {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(name) else {
            return Lookup::Offline;
        };
        let Some(live) = entry.live.as_mut() else {
            let window = i64::try_from(limits::RECONNECT_WINDOW.as_millis()).unwrap_or(i64::MAX);
            let recent = twk_protocol::now_ms().saturating_sub(entry.released_ms) < window;
            if recent && !self.rules.hold.is_zero() {
                return Lookup::Reconnecting {
                    back: entry.back.subscribe(),
                    slots: entry.held.clone(),
                    owner: entry.owner.clone(),
                };
            }
            return Lookup::Offline;
        };
        let Some(sender) = live.sender.as_mut() else {
            return Lookup::Connecting(live.ready.subscribe());
        };
        // A session that is closing (the client sent GOAWAY on shutdown) takes no new
        // requests: the sender is told the tunnel is offline and retries later.
        if sender.is_closed() {
            return Lookup::Offline;
        }
        if limited
            && self.rules.tunnel_rate > 0.0
            && let Err(wait) =
                live.rate
                    .take(now, self.rules.tunnel_rate, self.rules.tunnel_burst, 1.0)
        {
            return Lookup::RateLimited(wait, live.notices.clone());
        }
        Lookup::Ready {
            sender: sender.clone(),
            dead: live.dead.clone(),
            inflight: live.inflight.clone(),
        }
    }

    /// Records the public key the session's client sent: requests that arrive while the
    /// owner is offline are kept sealed to it. Only the session holding the name may set it.
    pub(crate) fn set_owner_key(&self, name: &str, session: u64, key: OwnerPublic) {
        let changed = {
            let mut map = self.lock();
            let Some(e) = map.get_mut(name) else { return };
            let Some(live) = e.live.as_mut().filter(|l| l.session == session) else {
                return;
            };
            live.owner_key = Some(key);
            let changed = e.owner_key != Some(key);
            e.owner_key = Some(key);
            changed
        };
        if changed {
            self.persist();
        }
    }

    /// The key to seal a request for `name` to, while its owner is offline.
    pub(crate) fn owner_key(&self, name: &str) -> Option<OwnerPublic> {
        self.lock().get(name).and_then(|e| e.owner_key)
    }

    /// Counts a request (or kept ones dropped) for `name` that arrived while its owner was
    /// offline and will not be handed over. Nothing for a name this node does not know.
    pub(crate) fn note_unkept(&self, name: &str, lost: Lost) {
        if lost == Lost::Dropped(0) {
            return;
        }
        if let Some(e) = self.lock().get_mut(name) {
            e.unkept.add(lost, twk_protocol::now_ms());
        }
    }

    /// Where the live session of `name` lists requests the relay refuses itself, when its
    /// client takes notices of them.
    pub(crate) fn notices(&self, name: &str) -> Option<Arc<Notices>> {
        self.lock()
            .get(name)
            .and_then(|e| e.live.as_ref()?.notices.clone())
    }

    /// Whether a session of `name` is connected to this relay and takes requests (it is
    /// setting up, or its client has not said it is going away).
    pub(crate) fn is_live(&self, name: &str) -> bool {
        self.lock().get_mut(name).is_some_and(|e| {
            e.live
                .as_mut()
                .is_some_and(|l| l.sender.as_mut().is_none_or(|s| !s.is_closed()))
        })
    }

    /// `name`'s ready session (as [`Registry::lookup`] finds it, unmetered), the client
    /// process holding it and the key it sent, read together: a hand-off must not record
    /// what one process refused under another's id.
    pub(crate) fn ready_session(&self, name: &str) -> Option<ReadySession> {
        let mut map = self.lock();
        let live = map.get_mut(name)?.live.as_mut()?;
        let sender = live.sender.as_mut()?;
        if sender.is_closed() {
            return None;
        }
        Some(ReadySession {
            sender: sender.clone(),
            client: live.client_id.clone(),
            owner_key: live.owner_key,
        })
    }

    /// Every ready session: its name and where to send it requests.
    pub(crate) fn ready_sessions(&self) -> Vec<(String, TunnelSender)> {
        self.lock()
            .iter()
            .filter_map(|(name, e)| Some((name.clone(), e.live.as_ref()?.sender.clone()?)))
            .collect()
    }

    /// Whether `name` is (still) held by `owner`.
    pub(crate) fn owned_by(&self, name: &str, owner: &str) -> bool {
        self.lock().get(name).is_some_and(|e| e.owner == owner)
    }

    /// Number of connected tunnels.
    pub(crate) fn connected(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.live.as_ref().is_some_and(|l| l.sender.is_some()))
            .count()
    }

    /// Closes every tunnel of `owner` (a revoked token) and frees its names. Returns how many
    /// tunnels were closed.
    pub(crate) fn revoke_owner(&self, owner: &str) -> usize {
        let closed = {
            let mut map = self.lock();
            let mut closed = 0;
            map.retain(|_, e| {
                if e.owner != owner {
                    return true;
                }
                if let Some(live) = e.live.take() {
                    live.cancel.cancel();
                    live.dead.cancel();
                    closed += 1;
                }
                false
            });
            closed
        };
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(owner);
        self.persist();
        closed
    }

    /// Writes the reservations out (atomically, off the async threads).
    fn persist(&self) {
        let Some(store) = &self.store else { return };
        let names: Vec<Reservation> = self
            .lock()
            .iter()
            .map(|(name, e)| Reservation {
                name: name.clone(),
                owner: e.owner.clone(),
                released_ms: e.live.is_none().then_some(e.released_ms),
                owner_key: e.owner_key.map(|k| k.to_base64()),
            })
            .collect();
        let last_used = self
            .last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        store.save(Snapshot { names, last_used });
    }
}

fn hold_ms(rules: &Rules) -> i64 {
    i64::try_from(rules.name_hold.as_millis()).unwrap_or(i64::MAX / 2)
}

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    pub(crate) fn full(burst: f64) -> Self {
        Bucket {
            tokens: burst,
            last: None,
        }
    }

    /// Takes `cost` tokens, or says how long until they are there.
    pub(crate) fn take(
        &mut self,
        now: Instant,
        rate: f64,
        burst: f64,
        cost: f64,
    ) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            let missing = cost - self.tokens;
            Err(Duration::from_secs_f64(
                (missing / rate).clamp(0.001, 86_400.0),
            ))
        }
    }

    /// True when the bucket would be full at `now` (its state can be forgotten).
    pub(crate) fn is_full(&self, now: Instant, rate: f64, burst: f64) -> bool {
        let mut b = self.clone();
        b.refill(now, rate, burst);
        b.tokens >= burst
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * rate).min(burst);
        }
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            max_tunnels: 100,
            max_per_token: 2,
            max_reserved_per_token: 2,
            name_hold: Duration::from_secs(60),
            hold: Duration::ZERO,
            hold_max: 4,
            tunnel_rate: 0.0,
            tunnel_burst: 0.0,
        }
    }

    fn granted(c: Claim) -> u64 {
        match c {
            Claim::Granted { session, .. } => session,
            _ => panic!("not granted"),
        }
    }

    #[test]
    fn reservation_holds_for_the_owner_then_frees() {
        let r = Registry::new(rules(), None, 0);
        let p = CancellationToken::new();
        let s = granted(r.claim("shop", "alice", "c1", &p, 1_000));
        assert!(matches!(
            r.claim("shop", "bob", "c9", &p, 1_000),
            Claim::Taken
        ));
        r.release("shop", s, 2_000);
        match r.claim("shop", "bob", "c9", &p, 3_000) {
            Claim::Reserved { until_ms } => assert_eq!(until_ms, 62_000),
            _ => panic!("not reserved"),
        }
        assert!(!r.is_free("shop", 3_000));
        assert!(r.is_free("shop", 62_000));
        granted(r.claim("shop", "bob", "c9", &p, 62_000));
    }

    #[test]
    fn same_client_resumes_another_client_takes_over_and_the_displaced_is_refused() {
        let r = Registry::new(rules(), None, 0);
        let p = CancellationToken::new();
        let Claim::Granted { cancel: c1, .. } = r.claim("shop", "alice", "a", &p, 0) else {
            panic!()
        };
        let Claim::Granted { cancel: c2, .. } = r.claim("shop", "alice", "a", &p, 1) else {
            panic!()
        };
        assert!(c1.is_cancelled(), "a reconnect replaces its stale session");
        let Claim::Granted { cancel: c3, .. } = r.claim("shop", "alice", "b", &p, 2) else {
            panic!()
        };
        assert!(c2.is_cancelled(), "the newest client wins");
        assert!(!c3.is_cancelled());
        assert!(matches!(
            r.claim("shop", "alice", "a", &p, 3),
            Claim::TakenOver
        ));
    }

    #[test]
    fn per_token_tunnels_and_reservations_are_bounded() {
        let r = Registry::new(rules(), None, 0);
        let p = CancellationToken::new();
        let a = granted(r.claim("a", "alice", "c", &p, 0));
        granted(r.claim("b", "alice", "c", &p, 0));
        assert!(matches!(
            r.claim("c", "alice", "c", &p, 0),
            Claim::TooManyTunnels(2)
        ));
        r.release("a", a, 10);
        let c = granted(r.claim("c", "alice", "c", &p, 20));
        r.release("c", c, 30);
        let d = granted(r.claim("d", "alice", "c", &p, 40));
        r.release("d", d, 50);
        // Three idle names, two allowed: the oldest released ("a") went.
        assert!(r.is_free("a", 60));
        assert!(!r.is_free("c", 60) && !r.is_free("d", 60));
    }

    #[test]
    fn bucket_refills_and_says_when() {
        let t0 = Instant::now();
        let mut b = Bucket::full(2.0);
        assert!(b.take(t0, 1.0, 2.0, 1.0).is_ok());
        assert!(b.take(t0, 1.0, 2.0, 1.0).is_ok());
        let wait = b.take(t0, 1.0, 2.0, 1.0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(b.take(t0 + Duration::from_secs(1), 1.0, 2.0, 1.0).is_ok());
        assert!(b.is_full(t0 + Duration::from_secs(10), 1.0, 2.0));
    }
}
