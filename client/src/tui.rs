//! Runs the terminal inspector (`twk-inspector`) for a live tunnel: owns the terminal, merges
//! terminal input, a render interval, the capture subscription and the connection watch into
//! one `tokio::select!`, and carries out the inspector's intents (replay through
//! `twk_agent::replay`, edit in `$EDITOR`, OSC 52 copy). The inspector itself never touches the
//! network or the terminal.

use anyhow::Context as _;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, EventStream};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use twk_agent::ConnState;
use twk_capture::{Exchange, ExchangeId};
use twk_inspector::{Conn, CopyWhat, Data, Intent, Level, Model, Msg, input};
use twk_sanitize as sanitize;

/// Everything the inspector needs from a running tunnel.
pub struct TuiContext {
    /// The capture store's writer handle: `subscribe()` for live rows, `reader()` for queries.
    pub recorder: twk_capture::Recorder,
    /// The tunnel's connection and round trip, updated on every change.
    pub link: watch::Receiver<crate::tunnel::Link>,
    /// The local target URL (e.g. `http://localhost:3000`).
    pub target: String,
    /// Provider secrets, for replay with re-signing.
    pub secrets: Arc<twk_providers::Secrets>,
    /// Cancelled when the user quits (the tunnel then shuts down), or by a signal.
    pub shutdown: CancellationToken,
    /// The relay is the embedded loopback one (the top bar says providers cannot reach it).
    pub embedded: bool,
}

/// How often the screen is redrawn (when something changed) and the clock advances.
const FRAME: Duration = Duration::from_millis(50);

/// The terminal in raw mode on the alternate screen with mouse capture; restored on drop (every
/// exit path, including `?` and unwinding). `ratatui::try_init` also installs a panic hook that
/// restores the terminal before the panic message prints.
struct TerminalGuard {
    terminal: ratatui::DefaultTerminal,
}

impl TerminalGuard {
    fn enter() -> anyhow::Result<TerminalGuard> {
        let terminal =
            ratatui::try_init().context("cannot switch the terminal to the inspector")?;
        install_mouse_panic_hook();
        let guard = TerminalGuard { terminal };
        crossterm::execute!(std::io::stdout(), EnableMouseCapture)
            .context("enabling mouse capture")?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

/// Adds "disable mouse capture" in front of the panic hook (once per process).
fn install_mouse_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
            previous(info);
        }));
    });
}

fn conn_of(state: &ConnState, now_ms: i64) -> Conn {
    match state {
        ConnState::Connecting { attempt } => Conn::Connecting { attempt: *attempt },
        ConnState::Connected { name, public_url } => Conn::Connected {
            name: name.clone(),
            public_url: public_url.clone(),
        },
        ConnState::Reconnecting { delay, reason } => {
            Conn::reconnecting(now_ms, *delay, reason.clone())
        }
        ConnState::Stopped => Conn::Stopped,
    }
}

/// The messages a change of the link watch means for the inspector.
fn link_msgs(link: &crate::tunnel::Link, last_rtt: &mut Option<u64>, now_ms: i64) -> Vec<Msg> {
    let mut out = vec![Msg::Conn(conn_of(&link.conn, now_ms))];
    if let Some(rtt) = link.rtt_ms.filter(|r| Some(*r) != *last_rtt) {
        *last_rtt = Some(rtt);
        out.push(Msg::Rtt(rtt));
    }
    out
}

fn recorder_msg(alerts: &twk_capture::Alerts) -> Msg {
    Msg::Recorder {
        error: alerts.failing.clone(),
        dropped: alerts.dropped,
    }
}

/// Runs the inspector until the user quits or `ctx.shutdown` is cancelled; then cancels
/// `ctx.shutdown` (quitting the inspector stops the tunnel).
pub async fn run(ctx: TuiContext) -> anyhow::Result<()> {
    let result = run_inner(&ctx).await;
    ctx.shutdown.cancel();
    result
}

async fn run_inner(ctx: &TuiContext) -> anyhow::Result<()> {
    let data = Data::new(
        ctx.recorder
            .reader()
            .context("opening the capture store for the inspector")?,
    );
    let mut subscription = ctx.recorder.subscribe();
    let mut link = ctx.link.clone();
    let mut alerts = ctx.recorder.alerts();
    let mut guard = TerminalGuard::enter()?;
    let size = guard.terminal.size().context("reading the terminal size")?;
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let mut model = Model::new(
        ctx.target.clone(),
        twk_agent::now_ms(),
        (size.width, size.height),
        tz,
    );
    let mut last_rtt = None;
    for msg in link_msgs(&link.borrow_and_update(), &mut last_rtt, model.now_ms) {
        twk_inspector::update(&mut model, msg);
    }
    twk_inspector::update(&mut model, recorder_msg(&alerts.borrow_and_update()));
    model.embedded = ctx.embedded;
    for cmd in model.init() {
        if let twk_inspector::Cmd::Load(load) = cmd {
            let answer = data.load(&load).context("reading the capture store")?;
            data.dispatch(&mut model, answer);
        }
    }
    let (notices_tx, mut notices) = mpsc::unbounded_channel::<Msg>();
    let mut events = EventStream::new();
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut live = true;
    let mut link_live = true;
    let mut alerts_live = true;
    let mut dirty = true;
    loop {
        if dirty {
            guard
                .terminal
                .draw(|f| twk_inspector::view(&model, f))
                .context("drawing the inspector")?;
            dirty = false;
        }
        // Input redraws at once; everything else (a flood of captures included) on the next
        // frame tick, so drawing never costs more than one frame per interval.
        let (msg, draw_now) = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            ev = input::next_event(&mut events) => match ev {
                Some(Ok(ev)) => match input::msg_of(ev) {
                    Some(m) => (m, true),
                    None => continue,
                },
                Some(Err(e)) => return Err(e).context("reading terminal input"),
                None => break,
            },
            _ = frame.tick() => (Msg::Tick(twk_agent::now_ms()), true),
            new = subscription.recv(), if live => match new {
                Ok(n) => (Msg::Captured(Box::new(n.summary)), false),
                Err(broadcast::error::RecvError::Lagged(_)) => (Msg::Lagged, false),
                Err(broadcast::error::RecvError::Closed) => {
                    live = false;
                    continue;
                }
            },
            changed = link.changed(), if link_live => match changed {
                Ok(()) => {
                    let msgs = link_msgs(&link.borrow_and_update(), &mut last_rtt, twk_agent::now_ms());
                    let mut msgs = msgs.into_iter();
                    let first = msgs.next().unwrap_or(Msg::Tick(twk_agent::now_ms()));
                    for m in msgs {
                        data.dispatch(&mut model, m);
                    }
                    (first, true)
                }
                // The agent is gone: the tunnel is over.
                Err(_) => {
                    link_live = false;
                    (Msg::Conn(Conn::Stopped), true)
                }
            },
            changed = alerts.changed(), if alerts_live => match changed {
                Ok(()) => (recorder_msg(&alerts.borrow_and_update()), true),
                Err(_) => {
                    alerts_live = false;
                    continue;
                }
            },
            Some(n) = notices.recv() => (n, false),
        };
        let intents = data.dispatch(&mut model, msg);
        dirty |= draw_now;
        for intent in intents {
            match intent {
                Intent::Quit => {}
                Intent::Replay { id, resign } => {
                    start_replay(ctx, &data, id, resign, None, notices_tx.clone());
                }
                Intent::EditAndReplay { id } => {
                    // The editor needs the terminal (and its input) to itself.
                    drop(events);
                    drop(guard);
                    let edited = edit_in_editor(&data, id).await;
                    guard = TerminalGuard::enter()?;
                    // A fresh terminal has blank buffers: blank the screen to match (without
                    // `Terminal::clear`, which queries the cursor position).
                    crossterm::execute!(
                        std::io::stdout(),
                        crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
                    )
                    .context("redrawing after the editor")?;
                    events = EventStream::new();
                    dirty = true;
                    match edited {
                        Ok(ex) => start_replay(ctx, &data, id, false, Some(ex), notices_tx.clone()),
                        Err(e) => {
                            data.dispatch(
                                &mut model,
                                Msg::Notice(
                                    format!("edit not sent: {}", sanitize::error_chain(e.as_ref())),
                                    Level::Error,
                                ),
                            );
                        }
                    }
                }
                Intent::Copy { id, what } => {
                    let msg = copy(&data, id, what);
                    data.dispatch(&mut model, msg);
                }
                Intent::CopyUrl { url } => {
                    let msg = copy_text(&url, "public URL");
                    data.dispatch(&mut model, msg);
                }
            }
        }
        if !model.running {
            break;
        }
    }
    drop(guard);
    Ok(())
}

/// Replays exchange `id` (or `edited`, a modified copy of it) in the background; the new
/// exchange is recorded (and so appears as a new row linked to `id`), the outcome is reported
/// as a notice.
fn start_replay(
    ctx: &TuiContext,
    data: &Data,
    id: ExchangeId,
    resign: bool,
    edited: Option<Exchange>,
    notices: mpsc::UnboundedSender<Msg>,
) {
    let original = match edited {
        Some(ex) => ex,
        None => match data.store().get(id) {
            Ok(Some(stored)) => stored.exchange,
            Ok(None) => {
                let _ = notices.send(Msg::Notice(
                    format!("exchange #{id} is no longer stored"),
                    Level::Error,
                ));
                return;
            }
            Err(e) => {
                let _ = notices.send(Msg::Notice(
                    format!("cannot read exchange #{id}: {e}"),
                    Level::Error,
                ));
                return;
            }
        },
    };
    let opts = twk_agent::replay::ReplayOptions {
        resign,
        secrets: (*ctx.secrets).clone(),
        capture_cap: ctx.recorder.options().body_cap,
        ..Default::default()
    };
    let recorder = ctx.recorder.clone();
    tokio::spawn(async move {
        // An edited copy has no id of its own; the replay must point at the original.
        let mut original = original;
        original.id = Some(id);
        let notice = match twk_agent::replay::replay(&original, &opts).await {
            Ok(new) => {
                let outcome = match (&new.failure, new.status) {
                    (Some(f), _) => format!("failed: {}", sanitize::clean(&f.message)),
                    (None, Some(s)) => format!("→ {s}"),
                    (None, None) => "no response".to_owned(),
                };
                let verdict = new.verdict.map_or("not checked", |v| v.as_str());
                match recorder.record(new).id().await {
                    Some(new_id) => Msg::Notice(
                        format!("replayed #{id} as #{new_id} {outcome} (signature {verdict})"),
                        Level::Info,
                    ),
                    None => Msg::Notice(
                        format!(
                            "replayed #{id} {outcome}, but the capture store did not record it"
                        ),
                        Level::Error,
                    ),
                }
            }
            Err(e) => Msg::Notice(format!("replay of #{id} not sent: {e}"), Level::Error),
        };
        let _ = notices.send(notice);
    });
}

/// Opens exchange `id` as an HTTP message in `$VISUAL`/`$EDITOR` (default `vi`), and returns
/// the edited copy (with `replay_of` pointing at `id`). Invalid edits are errors: never sent.
async fn edit_in_editor(data: &Data, id: ExchangeId) -> anyhow::Result<Exchange> {
    let stored = data
        .store()
        .get(id)?
        .with_context(|| format!("exchange #{id} is no longer stored"))?;
    let text = twk_inspector::edit::to_message(&stored.exchange)?;
    let path = std::env::temp_dir().join(format!(
        "twk-edit-{}-{id}-{}.http",
        std::process::id(),
        twk_agent::now_ms()
    ));
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let result = run_editor(&path).await.and_then(|()| {
        let edited = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let edited = String::from_utf8(edited).context("the edited file is not UTF-8")?;
        let parsed = twk_inspector::edit::parse(&edited)?;
        Ok(parsed.apply_to(&stored.exchange))
    });
    let _ = std::fs::remove_file(&path);
    result
}

async fn run_editor(path: &std::path::Path) -> anyhow::Result<()> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_owned());
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi");
    let status = tokio::process::Command::new(program)
        .args(parts)
        .arg(path)
        .status()
        .await
        .with_context(|| format!("starting the editor {program:?} (set $EDITOR)"))?;
    anyhow::ensure!(status.success(), "the editor exited with {status}");
    Ok(())
}

/// Puts the curl command or the body of exchange `id` on the clipboard (OSC 52).
fn copy(data: &Data, id: ExchangeId, what: CopyWhat) -> Msg {
    let stored = match data.store().get(id) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Msg::Notice(format!("exchange #{id} is no longer stored"), Level::Error);
        }
        Err(e) => return Msg::Notice(format!("cannot read exchange #{id}: {e}"), Level::Error),
    };
    let ex = &stored.exchange;
    let (text, label) = match what {
        CopyWhat::Curl => (
            twk_capture::export::curl::curl_command(
                ex,
                &twk_capture::export::curl::CurlOptions::default(),
            ),
            "curl command (secrets redacted)",
        ),
        CopyWhat::Body => {
            let b = &ex.request.body.bytes;
            match std::str::from_utf8(b) {
                Ok(t) => (t.to_owned(), "request body"),
                Err(_) => (hex::encode(b), "request body (binary, as hex)"),
            }
        }
    };
    copy_text(&text, &format!("{label} of #{id}"))
}

/// Puts `text` on the clipboard (OSC 52) and says so.
fn copy_text(text: &str, what: &str) -> Msg {
    let (seq, cut) = twk_inspector::clipboard::osc52(text);
    let mut out = std::io::stdout();
    if let Err(e) = out.write_all(seq.as_bytes()).and_then(|()| out.flush()) {
        return Msg::Notice(format!("copy failed: {e}"), Level::Error);
    }
    Msg::Notice(
        format!(
            "copied the {what} via OSC 52{}",
            if cut { " (cut at 100 kB)" } else { "" }
        ),
        Level::Info,
    )
}
