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
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use twk_protocol::refused::{self, RefusedBatch, RefusedRequest, Unkept};

/// How long the client has to take a batch.
const TAKE_WITHIN: Duration = Duration::from_secs(10);

/// One session's refusals not yet sent.
#[derive(Default)]
pub(crate) struct Notices {
    pending: Mutex<RefusedBatch>,
    wake: Notify,
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

impl Notices {
    /// Lists a refusal, or only counts it when this interval's list is full: `describe`
    /// (which copies the head) runs only for a request that will be listed.
    pub(crate) fn refused(&self, describe: impl FnOnce() -> RefusedRequest) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.refused.len() < refused::MAX_LISTED {
                p.refused.push(describe());
            } else {
                p.unlisted = p.unlisted.saturating_add(1);
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
            .unkept = Some(unkept);
        self.wake.notify_one();
    }

    /// What was refused since the last batch, if anything.
    fn take(&self) -> Option<RefusedBatch> {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.refused.is_empty() && p.unlisted == 0 && p.unkept.is_none() {
            return None;
        }
        Some(std::mem::take(&mut *p))
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
                    Ok(Ok(())) => state.metrics.refusals_told(listed, unlisted),
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

    #[test]
    fn past_the_list_refusals_are_counted_not_described_and_a_batch_empties_it() {
        let n = Notices::default();
        assert!(n.take().is_none());
        let mut described = 0;
        for i in 0..refused::MAX_LISTED + 5 {
            n.refused(|| {
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
}
