//! Telling a tunnel's client what the relay refused itself (`twk_protocol::refused`): a
//! webhook answered 429 (the tunnel over its rate) or 413 (a body declared over the cap) never
//! reaches the app, so its owner would never see it. Each session that accepts notices lists
//! its refusals here, and one task sends them as a batch at most every
//! [`refused::NOTICE_EVERY`].
//!
//! Bounded whatever strangers send: a batch lists at most [`refused::MAX_LISTED`] requests
//! (each head cut at [`refused::MAX_HEAD_BYTES`]), the rest are only counted, and nothing is
//! queued past the batch. Best effort: a batch the client does not take is dropped, not
//! retried (the refusals are in the relay's log and metrics either way).

use crate::server::State;
use crate::tunnel_h2::TunnelSender;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use twk_protocol::refused::{self, RefusedBatch, RefusedRequest, Unkept};

/// How long the client has to take a batch.
const TAKE_WITHIN: Duration = Duration::from_secs(10);

/// One session's refusals not yet sent.
#[derive(Default)]
pub(crate) struct Notices {
    pending: Mutex<Pending>,
    wake: Notify,
}

/// The batch being filled, and whom it and the last minute's batches listed.
#[derive(Default)]
struct Pending {
    batch: RefusedBatch,
    /// For each listed request: its sender's source and its rank.
    listed: Vec<(IpAddr, Rank)>,
    /// How often each source was listed lately (bounded: [`RECENT_MOST`]).
    recent: HashMap<IpAddr, Lately>,
}

/// How often a source was listed in the minute from `since`.
#[derive(Debug, Clone, Copy)]
struct Lately {
    since: Instant,
    times: u32,
}

/// Which of two refused requests a full list keeps: one carrying a signature header before
/// one without, then the one whose source was listed less often lately. In a flood from many
/// addresses that forge signature headers, a source not listed lately takes a place at once,
/// and one sending all along gets its share of the places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    signed: bool,
    rarely: std::cmp::Reverse<u32>,
}

/// The most sender sources remembered for [`refused::RELIST_AFTER`].
const RECENT_MOST: usize = 4096;

impl Pending {
    /// How often `source` was listed in the last minute (`None`: not in it).
    fn lately(&self, source: IpAddr, now: Instant) -> Option<u32> {
        self.recent
            .get(&source)
            .filter(|l| now.duration_since(l.since) < refused::RELIST_AFTER)
            .map(|l| l.times)
    }

    /// Whether a request of `rank` has a place in the list: while there is room, or in the
    /// place of the lowest-ranked one if that ranks below it (which is then only counted).
    fn make_room(&mut self, rank: Rank) -> bool {
        if self.batch.refused.len() < refused::MAX_LISTED {
            return true;
        }
        let Some((i, lowest)) = self
            .listed
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, r))| *r)
            .map(|(i, (_, r))| (i, *r))
        else {
            return false;
        };
        if rank <= lowest {
            return false;
        }
        self.batch.refused.remove(i);
        self.listed.remove(i);
        self.batch.unlisted = self.batch.unlisted.saturating_add(1);
        true
    }

    fn remember(&mut self, source: IpAddr, now: Instant) {
        if self.recent.len() >= RECENT_MOST && !self.recent.contains_key(&source) {
            self.recent
                .retain(|_, l| now.duration_since(l.since) < refused::RELIST_AFTER);
            if self.recent.len() >= RECENT_MOST {
                self.recent.clear();
            }
        }
        let l = self.recent.entry(source).or_insert(Lately {
            since: now,
            times: 0,
        });
        if now.duration_since(l.since) >= refused::RELIST_AFTER {
            *l = Lately {
                since: now,
                times: 0,
            };
        }
        l.times = l.times.saturating_add(1);
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

impl Notices {
    /// Lists a refusal, or only counts it: one per source a batch; from a source listed in
    /// the last minute only one carrying a signature header (`signed`, asked only then);
    /// in a full list it takes the place of one that ranks below it ([`Rank`]). `describe`
    /// (which copies the head) runs only for a request that will be listed.
    pub(crate) fn refused(
        &self,
        from: IpAddr,
        signed: impl FnOnce() -> bool,
        describe: impl FnOnce() -> RefusedRequest,
    ) {
        {
            let now = Instant::now();
            // An IPv6 sender counts as its /64, as for the relay's per-address limits.
            let source = crate::abuse::source(from);
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let rank = if p.listed.iter().any(|(s, _)| *s == source) {
                None
            } else {
                let lately = p.lately(source, now);
                let signed = signed();
                let rank = Rank {
                    signed,
                    rarely: std::cmp::Reverse(lately.unwrap_or(0)),
                };
                ((signed || lately.is_none()) && p.make_room(rank)).then_some(rank)
            };
            match rank {
                Some(rank) => {
                    p.batch.refused.push(describe());
                    p.listed.push((source, rank));
                    p.remember(source, now);
                }
                None => p.batch.unlisted = p.batch.unlisted.saturating_add(1),
            }
        }
        self.wake.notify_one();
    }

    /// Tells what the relay could not keep while the tunnel was offline (the session's first
    /// batch carries it).
    pub(crate) fn unkept(&self, unkept: Unkept) {
        if unkept.is_empty() {
            return;
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .batch
            .unkept = Some(unkept);
        self.wake.notify_one();
    }

    /// What was refused since the last batch, if anything.
    fn take(&self) -> Option<RefusedBatch> {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let b = &p.batch;
        if b.refused.is_empty() && b.unlisted == 0 && b.unkept.is_none() {
            return None;
        }
        p.listed.clear();
        Some(std::mem::take(&mut p.batch))
    }
}

/// Sends `notices` to the session's client, a batch at most every [`refused::NOTICE_EVERY`],
/// until the session is `dead`.
pub(crate) async fn run(
    notices: Arc<Notices>,
    mut sender: TunnelSender,
    name: String,
    dead: CancellationToken,
    state: Arc<State>,
) {
    loop {
        tokio::select! {
            _ = notices.wake.notified() => {}
            _ = dead.cancelled() => return,
        }
        let Some(batch) = notices.take() else {
            continue;
        };
        let (listed, unlisted) = (batch.refused.len() as u64, batch.unlisted);
        tokio::select! {
            r = tokio::time::timeout(TAKE_WITHIN, send(&mut sender, &name, &batch)) => {
                match r {
                    Ok(Ok(())) => {
                        state.metrics.refusals_told(listed, unlisted);
                        tracing::info!(listed, unlisted, "told the tunnel's client of requests refused here");
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, listed, unlisted, "the client did not take a notice of refused requests"),
                    Err(_) => tracing::debug!(listed, unlisted, "the client did not take a notice of refused requests in time"),
                }
            }
            _ = dead.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(refused::NOTICE_EVERY) => {}
            _ = dead.cancelled() => return,
        }
    }
}

async fn send(sender: &mut TunnelSender, name: &str, batch: &RefusedBatch) -> Result<(), String> {
    let body = serde_json::to_vec(batch).map_err(|e| e.to_string())?;
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://{name}.tunnel/"))
        .header(twk_protocol::meta::REFUSED, batch.refused.len())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(crate::body::full(body))
        .map_err(|e| e.to_string())?;
    let answer = sender
        .send(request)
        .await
        .map_err(|e| e.error.to_string())?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", answer.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twk_protocol::refused::RefusedFor;

    fn request(n: usize) -> RefusedRequest {
        RefusedRequest {
            request_id: format!("r-{n}"),
            received_ms: 1,
            method: "POST".into(),
            path: "/".into(),
            public_url: "http://relay.test/t/a/".into(),
            remote_addr: "127.0.0.1:1".into(),
            headers: Vec::new(),
            headers_cut: false,
            declared_len: None,
            refused_for: RefusedFor::OverRate {
                retry_after_secs: 1,
            },
            answer: String::new(),
        }
    }

    fn from(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    /// Offers `n` a refusal from `ip`; whether it described (listed) it.
    fn offer(n: &Notices, ip: IpAddr, signed: bool, id: usize) -> bool {
        let mut described = false;
        n.refused(
            ip,
            || signed,
            || {
                described = true;
                request(id)
            },
        );
        described
    }

    #[test]
    fn past_the_list_refusals_are_counted_not_described_and_a_batch_empties_it() {
        let n = Notices::default();
        assert!(n.take().is_none());
        let described = (0..refused::MAX_LISTED + 5)
            .filter(|i| offer(&n, from(*i as u8), false, *i))
            .count();
        assert_eq!(described, refused::MAX_LISTED);
        let batch = n.take().expect("a batch");
        assert_eq!(batch.refused.len(), refused::MAX_LISTED);
        assert_eq!(batch.refused[0].request_id, "r-0", "oldest first");
        assert_eq!(batch.unlisted, 5);
        assert!(n.take().is_none(), "taken whole");
    }

    #[test]
    fn one_address_is_listed_once_a_batch_and_unsigned_once_a_minute() {
        let n = Notices::default();
        for i in 0..50 {
            offer(&n, from(7), false, i);
        }
        let first = n.take().expect("a batch");
        assert_eq!((first.refused.len(), first.unlisted), (1, 49));
        assert!(
            !offer(&n, from(7), false, 50),
            "not again within the minute"
        );
        assert_eq!(n.take().map(|b| b.unlisted), Some(1));
        assert!(offer(&n, from(7), true, 51));
        assert!(!offer(&n, from(7), true, 52), "once a batch");
        let signed = n.take().expect("a batch");
        assert_eq!(signed.refused[0].request_id, "r-51");
    }

    #[test]
    fn a_signed_request_takes_the_place_of_an_unsigned_one_in_a_full_list() {
        let n = Notices::default();
        for i in 0..refused::MAX_LISTED {
            offer(&n, from(i as u8), false, i);
        }
        assert!(offer(&n, from(200), true, 99));
        assert!(!offer(&n, from(201), false, 100));
        let batch = n.take().expect("a batch");
        assert_eq!(batch.refused.len(), refused::MAX_LISTED);
        assert!(batch.refused.iter().any(|r| r.request_id == "r-99"));
        assert_eq!(batch.unlisted, 2, "the one displaced and the one after");
    }

    /// Strangers forging signature headers from more addresses than a list holds fill it
    /// every second; a provider's webhook from an address seldom listed still gets a place.
    #[test]
    fn a_rarely_listed_sender_beats_a_flood_that_forges_signatures_from_many_addresses() {
        let n = Notices::default();
        for round in 0..3 {
            for a in 0..40u8 {
                offer(&n, from(a), true, usize::from(a) + round * 100);
            }
            if round < 2 {
                n.take();
            }
        }
        assert!(
            offer(&n, from(250), true, 7_777),
            "the provider displaces one"
        );
        let batch = n.take().expect("a batch");
        assert!(batch.refused.iter().any(|r| r.request_id == "r-7777"));
    }

    #[test]
    fn one_hosts_ipv6_addresses_are_one_sender() {
        let n = Notices::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2::ffff".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert!(offer(&n, a, false, 1));
        assert!(!offer(&n, b, false, 2), "the same /64");
        assert!(offer(&n, other, false, 3));
    }
}
