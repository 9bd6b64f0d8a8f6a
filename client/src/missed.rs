//! Requests that arrived while this tunnel was offline (kept by the relay, handed over on
//! reconnect): recorded once as missed rows, and with `--deliver-missed` delivered to the
//! local target once, as replays linked to them.
//!
//! Exactly once, as far as a crash allows: a hand-off is acknowledged only after the row is
//! stored (the relay keeps its copy until then), a repeated hand-off of the same relay
//! request id finds its row and records nothing, and a missed row is delivered only while no
//! replay of it got a 2xx.

use crate::output::Printer;
use std::sync::Arc;
use twk_capture::{Exchange, ExchangeId, Filter, Recorder, StatusFilter, Store};

/// What to do with missed requests besides recording them.
#[derive(Clone)]
pub struct MissedPolicy {
    /// Replay each missed request to the local target once (`--deliver-missed`), with these
    /// options; their secrets are the configured ones ([`MissedPolicy::replay_options`] adds
    /// twk's test secrets).
    pub deliver: Option<twk_agent::replay::ReplayOptions>,
    /// twk's test secrets, as the tunnel checks live requests with them.
    pub test_secrets: Option<Arc<twk_trigger::LiveTestSecrets>>,
}

impl MissedPolicy {
    /// The options of a delivery made now, `None` without `--deliver-missed`. The test
    /// secrets are read now, not when the tunnel started: one `trigger` made since must give
    /// the replay the verdict it gives a live request.
    fn replay_options(&self) -> Option<twk_agent::replay::ReplayOptions> {
        let base = self.deliver.as_ref()?;
        Some(twk_agent::replay::ReplayOptions {
            secrets: crate::tunnel::secrets_now(&base.secrets, self.test_secrets.as_deref()),
            ..base.clone()
        })
    }
}

/// Serializes [`record`]'s check-then-insert.
static RECORDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records `exchange` (unless an earlier hand-off did), delivers it when asked, and answers
/// `recorded` (true: the relay may delete its copy). Blocking: runs on the blocking pool.
pub fn record(
    recorder: &Recorder,
    printer: Option<&Arc<Printer>>,
    policy: &MissedPolicy,
    runtime: &tokio::runtime::Handle,
    exchange: Exchange,
) -> bool {
    let store = match recorder.reader() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %twk_sanitize::error_chain(&e), "cannot read the capture store for a kept request");
            return false;
        }
    };
    // One hand-off at a time from looking the request id up to storing its row: two copies
    // of one kept request handed over at once (a cluster node's disk copy and the JetStream
    // one) would otherwise both find no row and both be recorded.
    let once = RECORDING.lock().unwrap_or_else(|p| p.into_inner());
    let id = match store.missed_id(&exchange.request_id) {
        Ok(Some(id)) => id,
        Ok(None) => match store_row(recorder, printer, exchange) {
            Some(id) => id,
            None => return false,
        },
        Err(e) => {
            tracing::warn!(error = %twk_sanitize::error_chain(&e), "cannot read the capture store for a kept request");
            return false;
        }
    };
    drop(once);
    if let Some(opts) = policy.replay_options() {
        deliver(&store, recorder, printer, &opts, runtime, id);
    }
    true
}

fn store_row(
    recorder: &Recorder,
    printer: Option<&Arc<Printer>>,
    ex: Exchange,
) -> Option<ExchangeId> {
    let line = printer.map(|p| p.prepare(&ex));
    let id = recorder.record(ex).blocking_id();
    if let (Some(p), Some(line)) = (printer, line) {
        p.emit(line, id);
    }
    id
}

/// Missed row `id`'s request, unless it was delivered already (a replay of it got a 2xx) or
/// cannot be read. A delivery the app did not take (it was down: twk's 502; it failed: its
/// 5xx) leaves it waiting, as a provider would send it again.
pub fn undelivered(store: &Store, id: ExchangeId) -> Option<Exchange> {
    let replayed = Filter {
        replay_of: Some(id),
        status: Some(StatusFilter::Class(2)),
        limit: Some(1),
        ..Filter::default()
    };
    if !store.list(&replayed).ok()?.is_empty() {
        return None;
    }
    store.get(id).ok()?.map(|stored| stored.exchange)
}

/// Replays missed row `id` to the target unless it already has a replay.
fn deliver(
    store: &Store,
    recorder: &Recorder,
    printer: Option<&Arc<Printer>>,
    opts: &twk_agent::replay::ReplayOptions,
    runtime: &tokio::runtime::Handle,
    id: ExchangeId,
) {
    let Some(original) = undelivered(store, id) else {
        return;
    };
    match runtime.block_on(twk_agent::replay::replay(&original, opts)) {
        Ok(new) => {
            store_row(recorder, printer, new);
        }
        Err(e) => {
            tracing::warn!(id, error = %twk_sanitize::error_chain(&e), "could not deliver a missed request")
        }
    }
}
