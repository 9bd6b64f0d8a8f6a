//! `twk-relay token add|list|revoke`, and the running relay's reload of the tokens file.

use crate::args::{TokenCmd, TokenFiles};
use crate::config::{default_state_file, load_tokens, tokens_file};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use twk_relay::TokenSet;

fn file_of(files: &TokenFiles) -> anyhow::Result<PathBuf> {
    tokens_file(files.tokens_file.as_ref())
        .context("no --tokens-file given and no state directory ($STATE_DIRECTORY, $HOME)")
}

/// Replaces the tokens file atomically (0600, owner kept).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    twk_files::replace(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

fn read_or_empty(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Runs one token command.
pub(crate) fn run(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Add { label, files } => {
            let path = file_of(&files)?;
            let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
            let (text, token) = twk_relay::file_add(&read_or_empty(&path)?, &label, &created)?;
            write_private(&path, &text)?;
            println!("{token}");
            eprintln!(
                "twk-relay: token {label:?} added to {}; it is shown only now (the file keeps its \
                 hash). Give it to the client as TWK_TOKEN.",
                path.display()
            );
        }
        TokenCmd::Revoke { label, files } => {
            let path = file_of(&files)?;
            let text = twk_relay::file_revoke(&read_or_empty(&path)?, &label)?;
            write_private(&path, &text)?;
            eprintln!(
                "twk-relay: token {label:?} revoked; a running relay closes its tunnels within a second"
            );
        }
        TokenCmd::List { files, json } => list(&files, json)?,
    }
    Ok(())
}

fn list(files: &TokenFiles, json: bool) -> anyhow::Result<()> {
    let path = file_of(files)?;
    let mut set = TokenSet::default();
    set.extend_from_file(&read_or_empty(&path)?);
    let state = files.state_file.clone().or_else(default_state_file);
    // No state file there: a relay running with another --state-file (or none) keeps its
    // last uses elsewhere, so "never" would be a guess.
    let known = state.as_ref().is_some_and(|s| s.exists());
    if !known {
        eprintln!(
            "twk-relay: no state file at {}: when each token was last used is unknown (pass \
             the relay's --state-file)",
            state
                .as_ref()
                .map_or_else(|| "(none)".into(), |s| s.display().to_string())
        );
    }
    let used = state.map(|s| twk_relay::last_used(&s)).unwrap_or_default();
    let last = |owner: &str| {
        used.get(owner).map(|&ms| {
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
            humantime::format_rfc3339_seconds(at).to_string()
        })
    };
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(out, "{:<24} {:<22} LAST USED", "LABEL", "CREATED")?;
    }
    for e in set.entries() {
        let label = e.label.clone().unwrap_or_else(|| "(plain token)".into());
        let created = e.created.clone().unwrap_or_else(|| "-".into());
        let last_used = last(&e.owner());
        if json {
            let v =
                serde_json::json!({"label": e.label, "created": e.created, "last_used": last_used});
            writeln!(out, "{v}")?;
        } else {
            let none = if known { "never" } else { "unknown" };
            let last_used = last_used.unwrap_or_else(|| none.into());
            writeln!(out, "{label:<24} {created:<22} {last_used}")?;
        }
    }
    Ok(())
}

/// A fingerprint of the file that changes with every rewrite (atomic renames included).
fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Re-reads the tokens file when it changes (checked every second) or on SIGHUP, and hands
/// the relay each new set.
pub(crate) async fn watch_file(
    path: PathBuf,
    tx: watch::Sender<TokenSet>,
    stop: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP reload; the tokens file is still watched");
            None
        }
    };
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match &mut hup { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            _ = stop.cancelled() => return,
        };
        let now = stamp(&path);
        if !forced && now == last {
            continue;
        }
        last = now;
        match load_tokens(Some(&path), false) {
            Ok(set) => put_in_force(&tx, set),
            Err(e) => tracing::warn!(
                error = %twk_sanitize::error_chain(e.as_ref()),
                "tokens file not reloaded"
            ),
        }
    }
}

/// In a cluster the tokens file is shared: a change made on any node (`token add`, `token
/// revoke`, an edit) is published through NATS and written to every other node's file and
/// applied at once (a revoked token's tunnels are closed). A node that joins takes the
/// cluster's text; when two nodes change it at once, the last change wins. Only the file's
/// text travels: token hashes and labels, never a token.
pub(crate) async fn share_in_cluster(
    cluster: std::sync::Arc<twk_cluster::Cluster>,
    path: PathBuf,
    tx: watch::Sender<TokenSet>,
    stop: CancellationToken,
) {
    let mut changes = cluster.config_changes();
    let mut synced = match cluster.shared_tokens().await {
        Ok(Some(shared)) => {
            adopt(&path, &shared, &tx);
            Some(shared)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: cannot read the shared tokens; sharing this node's");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = changes.changed() => {}
            _ = tick.tick() => {}
        }
        let shared = cluster.tokens_text();
        if let Some(s) = shared.filter(|s| Some(s) != synced.as_ref()) {
            adopt(&path, &s, &tx);
            synced = Some(s);
            continue;
        }
        let Ok(local) = read_or_empty(&path) else {
            continue;
        };
        if Some(&local) != synced.as_ref() {
            match cluster.publish_tokens(&local).await {
                Ok(()) => {
                    tracing::info!("cluster: tokens file shared with every node");
                    synced = Some(local);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: sharing the tokens file failed; retrying")
                }
            }
        }
    }
}

/// Makes the cluster's tokens text this node's: the file (if it differs) and the tokens in
/// force, now.
fn adopt(path: &Path, shared: &str, tx: &watch::Sender<TokenSet>) {
    if read_or_empty(path).ok().as_deref() != Some(shared)
        && let Err(e) = write_private(path, shared)
    {
        tracing::warn!(error = %twk_sanitize::error_chain(e.as_ref()), "cluster: cannot write the shared tokens file");
    }
    put_in_force(tx, crate::config::tokens_from(shared));
}

/// Makes `set` the tokens in force (the relay is told only when it differs).
fn put_in_force(tx: &watch::Sender<TokenSet>, set: TokenSet) {
    tx.send_if_modified(|cur| {
        let changed = *cur != set;
        *cur = set;
        changed
    });
}
