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
    /// For each listed request: its sender's address and whether it carried a signature.
    listed: Vec<(IpAddr, bool)>,
    /// When a request from each address was last listed (bounded: [`RECENT_MOST`]).
    recent: HashMap<IpAddr, Instant>,
}

/// The most sender addresses remembered for [`refused::RELIST_AFTER`].
const RECENT_MOST: usize = 4096;

/// Who sent a refused request, as far as choosing which ones to list goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sender {
    /// The sender's address.
    pub(crate) ip: IpAddr,
    /// It carried a provider's signature or credentials header.
    pub(crate) signed: bool,
}

impl Pending {
    /// Whether a request from `from` may take a place in the list: one per address in a
    /// batch, and without a signature one per address a minute. A stranger's flood lists
    /// little, and a real webhook arriving in it still finds a place.
    fn may_list(&self, from: Sender, now: Instant) -> bool {
        let in_batch = self.listed.iter().any(|(ip, _)| *ip == from.ip);
        let lately = self
            .recent
            .get(&from.ip)
            .is_some_and(|t| now.duration_since(*t) < refused::RELIST_AFTER);
        !in_batch && (from.signed || !lately)
    }

    /// Where a request from `from` goes in the list: the end while there is room, else (a
    /// signed one) the place of the newest unsigned one, which is then only counted.
    fn place(&mut self, from: Sender) -> Option<usize> {
        if self.batch.refused.len() < refused::MAX_LISTED {
            return Some(self.batch.refused.len());
        }
        if !from.signed {
            return None;
        }
        let i = self.listed.iter().rposition(|(_, signed)| !signed)?;
        self.batch.refused.remove(i);
        self.listed.remove(i);
        self.batch.unlisted = self.batch.unlisted.saturating_add(1);
        Some(self.batch.refused.len())
    }

    fn remember(&mut self, ip: IpAddr, now: Instant) {
        if self.recent.len() >= RECENT_MOST {
            self.recent
                .retain(|_, t| now.duration_since(*t) < refused::RELIST_AFTER);
            if self.recent.len() >= RECENT_MOST {
                self.recent.clear();
            }
        }
        self.recent.insert(ip, now);
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

impl Notices {
    /// Lists a refusal, or only counts it ([`Pending::may_list`], [`Pending::place`]):
    /// `describe` (which copies the head) runs only for a request that will be listed.
    pub(crate) fn refused(&self, from: Sender, describe: impl FnOnce() -> RefusedRequest) {
        {
            let now = Instant::now();
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match p.may_list(from, now).then(|| p.place(from)).flatten() {
                Some(_) => {
                    p.batch.refused.push(describe());
                    p.listed.push((from.ip, from.signed));
                    p.remember(from.ip, now);
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

    fn from(last: u8, signed: bool) -> Sender {
        Sender {
            ip: IpAddr::from([198, 51, 100, last]),
            signed,
        }
    }

    #[test]
    fn past_the_list_refusals_are_counted_not_described_and_a_batch_empties_it() {
        let n = Notices::default();
        assert!(n.take().is_none());
        let mut described = 0;
        for i in 0..refused::MAX_LISTED + 5 {
            n.refused(from(i as u8, false), || {
                described += 1;
                request(i)
            });
        }
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
            n.refused(from(7, false), || request(i));
        }
        let first = n.take().expect("a batch");
        assert_eq!((first.refused.len(), first.unlisted), (1, 49));
        n.refused(from(7, false), || request(50));
        let next = n.take().expect("a batch");
        assert_eq!(
            (next.refused.len(), next.unlisted),
            (0, 1),
            "not again within the minute"
        );
        n.refused(from(7, true), || request(51));
        n.refused(from(7, true), || request(52));
        let signed = n.take().expect("a batch");
        assert_eq!((signed.refused.len(), signed.unlisted), (1, 1));
        assert_eq!(signed.refused[0].request_id, "r-51");
    }

    #[test]
    fn a_signed_request_takes_the_place_of_an_unsigned_one_in_a_full_list() {
        let n = Notices::default();
        for i in 0..refused::MAX_LISTED {
            n.refused(from(i as u8, false), || request(i));
        }
        n.refused(from(200, true), || request(99));
        n.refused(from(201, false), || request(100));
        let batch = n.take().expect("a batch");
        assert_eq!(batch.refused.len(), refused::MAX_LISTED);
        assert!(batch.refused.iter().any(|r| r.request_id == "r-99"));
        assert!(!batch.refused.iter().any(|r| r.request_id == "r-100"));
        assert_eq!(batch.unlisted, 2, "the one displaced and the one after");
    }
}
