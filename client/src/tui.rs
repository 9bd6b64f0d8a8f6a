//! Runs the terminal inspector (twk-inspector) for a live tunnel. Placeholder until the
//! inspector issue lands: the tunnel falls back to plain output.

use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Everything the inspector needs from a running tunnel.
pub struct TuiContext {
    /// The capture store's writer handle: `subscribe()` for live rows, `reader()` for queries.
    pub recorder: twk_capture::Recorder,
    /// Connection state of the tunnel, updated on every change.
    pub conn: watch::Receiver<twk_agent::ConnState>,
    /// The local target URL (e.g. `http://localhost:3000`).
    pub target: String,
    /// Provider secrets, for replay with re-signing.
    pub secrets: Arc<twk_providers::Secrets>,
    /// Cancelled when the user quits (the tunnel then shuts down), or by a signal.
    pub shutdown: CancellationToken,
}

/// True when the inspector is available in this build.
pub const AVAILABLE: bool = false;

/// Runs the inspector until the user quits or `ctx.shutdown` is cancelled.
pub async fn run(_ctx: TuiContext) -> anyhow::Result<()> {
    anyhow::bail!("the terminal inspector is not available yet")
}
