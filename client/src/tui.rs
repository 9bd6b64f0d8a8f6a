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
use twk_inspector::{Conn, CopyWhat, Intent, Level, Loader, Model, Msg, input};

/// Everything the inspector needs from a running tunnel.
pub struct TuiContext {
    /// The capture store's writer handle: `subscribe()` for live rows, `reader()` for queries.
    pub recorder: twk_capture::Recorder,
    /// The tunnel's connection and round trip, updated on every change.
    pub link: watch::Receiver<crate::tunnel::Link>,
    /// Requests starting and finishing (the inspector's in-flight rows).
    pub flights: mpsc::Receiver<Msg>,
    /// The local target URL (e.g. `http://localhost:3000`).
    pub target: String,
    /// `--host-header preserve`: requests keep the Host the sender used.
    pub keep_host: bool,
    /// Provider secrets, for replay with re-signing.
    pub secrets: Arc<twk_providers::Secrets>,
    /// twk's test secrets as they are now: `t` signs with them when no secret is
    /// configured, and replays are checked with them.
    pub test_secrets: Option<Arc<twk_trigger::LiveTestSecrets>>,
    /// Cancelled when the user quits (the tunnel then shuts down), or by a signal.
    pub shutdown: CancellationToken,
    /// The relay is the embedded loopback one (the top bar says providers cannot reach it).
    pub embedded: bool,
    /// `--relay-ca`: certificates to trust when triggering into a relay with a private CA.
    pub relay_ca: Option<Vec<u8>>,
    /// `--emulate`: `t` on a Twilio Verify or Authy event fires through the emulator, to
    /// the webhooks registered with it.
    pub emulator: Option<twk_emulator::Handle>,
}

impl TuiContext {
    /// The configured secrets with the test secrets as they are now.
    fn secrets_now(&self) -> twk_providers::Secrets {
        crate::tunnel::secrets_now(&self.secrets, self.test_secrets.as_deref())
    }
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
pub async fn run(mut ctx: TuiContext) -> anyhow::Result<()> {
    let result = run_inner(&mut ctx).await;
    ctx.shutdown.cancel();
    result
}

async fn run_inner(ctx: &mut TuiContext) -> anyhow::Result<()> {
    let data = Loader::new(
        ctx.recorder
            .reader()
            .context("opening the capture store for the inspector")?,
    );
    let mut subscription = ctx.recorder.subscribe();
    let mut link = ctx.link.clone();
    let mut alerts = ctx.recorder.alerts();
    let guard = TerminalGuard::enter()?;
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
    model.triggers = trigger_choices();
    if let Some(e) = &ctx.emulator {
        // Its banner went to stderr before the inspector took the screen.
        let says = format!(
            "emulator on {}: credentials with `twk-tunnel emulate --credentials`; t fires \
             Verify and Authy events to its webhooks",
            e.base_url()
        );
        twk_inspector::update(&mut model, Msg::Notice(says, Level::Info));
    }
    for cmd in model.init() {
        if let twk_inspector::Cmd::Load(load) = cmd {
            let answer = data.load(&load).context("reading the capture store")?;
            data.dispatch(&mut model, answer);
        }
    }
    let (notices_tx, mut notices) = mpsc::unbounded_channel::<Msg>();
    let mut flights = std::mem::replace(&mut ctx.flights, mpsc::channel(1).1);
    let mut host = Host {
        ctx,
        guard: Some(guard),
        events: Some(EventStream::new()),
        notices: notices_tx,
        pending_edit: None,
    };
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut live = true;
    let mut link_live = true;
    let mut alerts_live = true;
    let mut dirty = true;
    loop {
        if dirty && let Some(g) = host.guard.as_mut() {
            g.terminal
                .draw(|f| twk_inspector::view(&model, f))
                .context("drawing the inspector")?;
            dirty = false;
        }
        // Input redraws at once; everything else (a flood of captures included) on the next
        // frame tick, so drawing never costs more than one frame per interval.
        let (msg, draw_now) = tokio::select! {
            _ = host.ctx.shutdown.cancelled() => break,
            ev = next_input(&mut host.events) => match ev {
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
            Some(f) = flights.recv() => (f, false),
        };
        let intents = data.dispatch(&mut model, msg);
        dirty |= draw_now;
        for intent in intents {
            dirty |= host.carry_out(intent, &data, &mut model).await?;
        }
        if !model.running {
            break;
        }
    }
    Ok(())
}

/// The next terminal event; never, while the editor has the terminal.
async fn next_input(
    events: &mut Option<EventStream>,
) -> Option<std::io::Result<crossterm::event::Event>> {
    match events {
        Some(e) => input::next_event(e).await,
        None => std::future::pending().await,
    }
}

/// What the loop needs to carry out the inspector's intents: the terminal (given up to the
/// editor and taken back), its input stream, the channel notices come back on, and the edit
/// waiting for "re-sign or send as is".
struct Host<'a> {
    ctx: &'a TuiContext,
    /// `None` only while the editor has the terminal.
    guard: Option<TerminalGuard>,
    /// `None` only while the editor has the terminal (a live stream would read its keys).
    events: Option<EventStream>,
    notices: mpsc::UnboundedSender<Msg>,
    pending_edit: Option<(ExchangeId, Exchange)>,
}

impl Host<'_> {
    /// Carries out one intent; true when the screen must be redrawn in full.
    async fn carry_out(
        &mut self,
        intent: Intent,
        data: &Loader,
        model: &mut Model,
    ) -> anyhow::Result<bool> {
        let ctx = self.ctx;
        let notice = match intent {
            Intent::Quit => None,
            Intent::Replay { id, resign } => {
                start_replay(ctx, data, id, resign, None, self.notices.clone());
                None
            }
            Intent::EditAndReplay { id } => {
                self.edit(id, data, model).await?;
                return Ok(true);
            }
            Intent::SendEdited { id, resign } => match self.pending_edit.take() {
                Some((edited_id, ex)) if edited_id == id => {
                    start_replay(ctx, data, id, resign, Some(ex), self.notices.clone());
                    None
                }
                _ => Some(Msg::Notice(
                    format!("no edit of #{id} is waiting"),
                    Level::Error,
                )),
            },
            Intent::DropEdited { id } => {
                self.pending_edit = None;
                Some(Msg::Notice(
                    format!("edit of #{id} dropped, nothing sent"),
                    Level::Info,
                ))
            }
            Intent::Copy { id, what } => Some(copy(data, id, what)),
            Intent::CopyUrl { url } => Some(copy_text(&url, "public URL")),
            Intent::Trigger {
                provider,
                event,
                url,
            } => start_trigger(ctx, &provider, &event, url, self.notices.clone()),
            Intent::DeliverMissed => deliver_missed(ctx, data, model, self.notices.clone()),
        };
        if let Some(n) = notice {
            data.dispatch(model, n);
        }
        Ok(false)
    }

    /// `e`: gives the terminal to `$EDITOR`, takes it back, then sends the edit, or asks
    /// first when the edit made its signature stale.
    async fn edit(
        &mut self,
        id: ExchangeId,
        data: &Loader,
        model: &mut Model,
    ) -> anyhow::Result<()> {
        // The editor needs the terminal (and its input) to itself: dropping the guard restores
        // it, a new one takes it back.
        self.events = None;
        self.guard = None;
        let edited = edit_in_editor(data, id).await;
        self.guard = Some(TerminalGuard::enter()?);
        // A fresh terminal has blank buffers: blank the screen to match (without
        // `Terminal::clear`, which queries the cursor position).
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
        )
        .context("redrawing after the editor")?;
        self.events = Some(EventStream::new());
        match edited {
            Ok(ex) => match stale_signature(id, &ex, &self.ctx.secrets_now()) {
                Some(stale) => {
                    self.pending_edit = Some((id, ex));
                    data.dispatch(model, Msg::EditedStale(stale));
                }
                None => start_replay(self.ctx, data, id, false, Some(ex), self.notices.clone()),
            },
            Err(e) => {
                data.dispatch(
                    model,
                    Msg::Notice(
                        format!("edit not sent: {}", twk_sanitize::error_chain(e.as_ref())),
                        Level::Error,
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The question to ask when `edited` (a copy of exchange `id`) carries a provider signature
/// that no longer matches it: `None` when it is unsigned, unknown, still valid, or cannot be
/// judged (a truncated body).
fn stale_signature(
    id: ExchangeId,
    edited: &Exchange,
    secrets: &twk_providers::Secrets,
) -> Option<twk_inspector::StaleEdit> {
    use twk_providers::Verdict;
    let opts = twk_providers::VerifyOptions::at(twk_agent::now_ms() / 1000);
    let analysis = twk_agent::analyze_exchange(edited, secrets, opts);
    let provider = analysis.provider?;
    match analysis.verdict {
        Verdict::Valid | Verdict::Unsigned => None,
        _ if edited.request.body.truncated => None,
        _ => Some(twk_inspector::StaleEdit {
            id,
            provider: provider.as_str().to_owned(),
            can_resign: twk_agent::replay::resign_secret(secrets, provider).is_some(),
        }),
    }
}

/// `D`: replays every missed request of the listed tunnel(s) that has no replay yet to the
/// local target, oldest first, one after the other; each replay is recorded (linked to its
/// missed row) and the count reported. `None` when it started.
fn deliver_missed(
    ctx: &TuiContext,
    data: &Loader,
    model: &Model,
    notices: mpsc::UnboundedSender<Msg>,
) -> Option<Msg> {
    let filter = twk_capture::Filter {
        missed: Some(true),
        name: model.scope(),
        order: twk_capture::Order::OldestFirst,
        ..twk_capture::Filter::default()
    };
    let rows = match data.store().list(&filter) {
        Ok(rows) => rows,
        Err(e) => {
            return Some(Msg::Notice(
                format!("cannot read missed requests: {e}"),
                Level::Error,
            ));
        }
    };
    let pending: Vec<_> = rows
        .iter()
        .filter_map(|row| crate::missed::undelivered(data.store(), row.id))
        .collect();
    if pending.is_empty() {
        return Some(Msg::Notice(
            "no missed request waits for delivery".into(),
            Level::Info,
        ));
    }
    let opts = twk_agent::replay::ReplayOptions {
        // The app this tunnel forwards to now, as a live request would reach it.
        to: Some(ctx.target.clone()),
        keep_host: ctx.keep_host,
        secrets: ctx.secrets_now(),
        capture_cap: ctx.recorder.options().body_cap,
        ..Default::default()
    };
    let recorder = ctx.recorder.clone();
    tokio::spawn(async move {
        let (mut ok, total) = (0usize, pending.len());
        for original in pending {
            if let Ok(new) = twk_agent::replay::replay(&original, &opts).await {
                let delivered = new.status.is_some_and(|s| (200..300).contains(&s));
                if recorder.record(new).id().await.is_some() && delivered {
                    ok += 1;
                }
            }
        }
        let level = if ok == total {
            Level::Info
        } else {
            Level::Error
        };
        let _ = notices.send(Msg::Notice(
            format!("delivered {ok} of {total} missed requests to the app (2xx); each is a replay (↻) of its ⊘ row"),
            level,
        ));
    });
    None
}

/// twk's test secret for `p` (made now if it has none), as `trigger` signs with it.
fn test_secret(
    ctx: &TuiContext,
    p: twk_providers::Provider,
) -> Result<twk_providers::Secret, String> {
    let live = ctx.test_secrets.as_ref().ok_or_else(|| {
        format!(
            "no {} secret configured, and no data directory for twk's test secrets",
            p.display_name()
        )
    })?;
    live.file()
        .get_or_make(p)
        .map(|t| t.secret)
        .map_err(|e| format!("not sent: {}", twk_sanitize::error_chain(&e)))
}

/// Every event `trigger` knows, for the picker.
fn trigger_choices() -> Vec<twk_inspector::TriggerChoice> {
    twk_providers::Provider::ALL
        .iter()
        .flat_map(|p| twk_trigger::events(*p))
        .map(|spec| twk_inspector::TriggerChoice {
            provider: spec.provider.as_str().to_owned(),
            event: spec.name.to_owned(),
            about: spec.about.to_owned(),
        })
        .collect()
}

/// Fires `provider`'s `event` at the tunnel's public `url` in the background, as the
/// provider's sender would (challenge, deadline; a later retry is reported, not waited
/// for); the exchanges appear as rows, the outcome as a notice. `None` when it started.
fn start_trigger(
    ctx: &TuiContext,
    provider: &str,
    event: &str,
    url: String,
    notices: mpsc::UnboundedSender<Msg>,
) -> Option<Msg> {
    let error = |why: String| Some(Msg::Notice(why, Level::Error));
    let Ok(p) = provider.parse::<twk_providers::Provider>() else {
        return error(format!("unknown provider {provider}"));
    };
    let draft = match twk_trigger::find(p, event)
        .and_then(|spec| twk_trigger::build(&spec, Vec::new(), twk_agent::now_ms() / 1000))
    {
        Ok(d) => d,
        Err(e) => return error(e.to_string()),
    };
    let emulated = ctx.emulator.clone().zip(twk_emulator::model::Api::serving(
        draft.provider,
        &draft.event,
    ));
    // With an emulator, Twilio's key is its account's auth token (the app checks with it);
    // else the configured secret, or twk's test secret (the tunnel checks it: a ✓ row).
    let emulator_token = emulated
        .as_ref()
        .filter(|_| p == twk_providers::Provider::Twilio)
        .map(|(e, _)| e.auth_token().clone());
    let secret = match emulator_token.or_else(|| ctx.secrets.get(p).cloned()) {
        Some(s) => Some(s),
        None if p == twk_providers::Provider::Bandwidth => None,
        None => match test_secret(ctx, p) {
            Ok(s) => Some(s),
            Err(why) => return error(why),
        },
    };
    let opts = twk_trigger::FireOptions {
        url: format!("{}/", url.trim_end_matches('/')),
        secret,
        sender_behaviour: true,
        retry_speed: None,
        deadline: None,
        extra_ca_pem: ctx.relay_ca.clone(),
    };
    tokio::spawn(async move {
        if let Some((emulator, api)) = emulated
            && let Some(notice) = trigger_emulated(&emulator, api, &draft.event).await
        {
            let _ = notices.send(notice);
            return;
        }
        let what = format!("{} {} {}", draft.provider.as_str(), draft.event, draft.id);
        let mut last = String::new();
        let fate = twk_trigger::fire(&draft, &opts, |a| last.clone_from(&a.says)).await;
        let notice = match fate {
            Ok(twk_trigger::Fate::Delivered) => {
                twk_inspector::notices::triggered(&what, true, "delivered")
            }
            Ok(_) => twk_inspector::notices::triggered(&what, false, &last),
            Err(e) => twk_inspector::notices::triggered(&what, false, &e.to_string()),
        };
        let _ = notices.send(notice);
    });
    None
}

/// Fires `event` through the emulator; `None` when no webhook of it is subscribed (the
/// event is then sent to the tunnel directly, as without `--emulate`, and not recorded as
/// an emulated event).
async fn trigger_emulated(
    emulator: &twk_emulator::Handle,
    api: twk_emulator::model::Api,
    event: &str,
) -> Option<Msg> {
    if emulator.subscribed(api, event).unwrap_or(0) == 0 {
        return None;
    }
    let req = twk_emulator::FireRequest {
        api,
        event: event.to_owned(),
        sets: Vec::new(),
        service_sid: None,
    };
    let what = format!("{event} via the emulator");
    match emulator.fire(req).await {
        Ok(f) => {
            let ok = f
                .deliveries
                .iter()
                .filter(|d| d.fate == "delivered")
                .count();
            let n = f.deliveries.len();
            let how = format!("delivered to {ok} of {n} registered webhooks");
            Some(twk_inspector::notices::triggered(&what, ok == n, &how))
        }
        Err(e) => Some(twk_inspector::notices::triggered(
            &what,
            false,
            &e.to_string(),
        )),
    }
}

/// Replays exchange `id` (or `edited`, a modified copy of it) in the background; the new
/// exchange is recorded (and so appears as a new row linked to `id`), the outcome is reported
/// as a notice.
fn start_replay(
    ctx: &TuiContext,
    data: &Loader,
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
                let _ = notices.send(twk_inspector::notices::not_replayed(
                    id,
                    &"it is no longer stored",
                ));
                return;
            }
            Err(e) => {
                let _ = notices.send(twk_inspector::notices::not_replayed(id, &e));
                return;
            }
        },
    };
    let opts = twk_agent::replay::ReplayOptions {
        resign,
        secrets: ctx.secrets_now(),
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
                let replayed = twk_inspector::notices::Replayed::of(&new);
                let new_id = recorder.record(new).id().await;
                replayed.notice(id, new_id)
            }
            Err(e) => twk_inspector::notices::not_replayed(id, &e),
        };
        let _ = notices.send(notice);
    });
}

/// Opens exchange `id` as an HTTP message in `$VISUAL`/`$EDITOR` (default `vi`), and returns
/// the edited copy (with `replay_of` pointing at `id`). Invalid edits are errors: never sent.
async fn edit_in_editor(data: &Loader, id: ExchangeId) -> anyhow::Result<Exchange> {
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
fn copy(data: &Loader, id: ExchangeId, what: CopyWhat) -> Msg {
    let stored = match data.store().get(id) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Msg::Notice(format!("exchange #{id} is no longer stored"), Level::Error);
        }
        Err(e) => return Msg::Notice(format!("cannot read exchange #{id}: {e}"), Level::Error),
    };
    let (text, label) = twk_inspector::clipboard::content(&stored.exchange, what);
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

#[cfg(test)]
mod tests {
    use super::*;
    use twk_providers::{Provider, Secret, Secrets};

    /// A Stripe webhook signed with `secret`, then its body edited: its signature is stale.
    fn edited_stripe(secret: &Secret) -> Exchange {
        let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#;
        let url = "https://t.example/hook";
        let view = twk_providers::RequestView::new("POST", url, body);
        let opts = twk_providers::SignOptions {
            timestamp: Some(twk_agent::now_ms() / 1000),
            id: None,
        };
        let signed = twk_providers::sign_with_secret(Provider::Stripe, &view, secret, &opts)
            .expect("signed");
        let headers = signed
            .headers
            .into_iter()
            .map(|(name, value)| twk_capture::Header {
                name,
                value: value.into_bytes(),
            })
            .collect();
        let edited = br#"{"id":"evt_1","object":"event","type":"invoice.edited"}"#;
        Exchange {
            method: "POST".into(),
            public_url: url.into(),
            path: "/hook".into(),
            target: "http://127.0.0.1:3000".into(),
            request: twk_capture::Message {
                headers,
                body: twk_capture::CapturedBody::from_bytes(edited),
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_stale_edit_can_be_re_signed_with_twks_test_secret_when_none_is_configured() {
        let test = Secret::new("whsec_twk_test");
        let ex = edited_stripe(&test);
        let with_test = Secrets::new().with_test_secret(Provider::Stripe, test);
        let stale = stale_signature(7, &ex, &with_test).expect("stale");
        assert_eq!((stale.id, stale.provider.as_str()), (7, "stripe"));
        assert!(stale.can_resign, "R re-signs with the test secret");
        let none = stale_signature(7, &ex, &Secrets::new()).expect("stale");
        assert!(!none.can_resign, "no secret at all: R is not offered");
    }
}
