//! A real NATS server with JetStream for the cluster scenarios (Debian package
//! `nats-server`), on a loopback port it picks itself, its store in a temporary directory.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `nats-server -js`.
pub struct Nats {
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    port: String,
    /// Options beyond `-js` (TLS, a user), kept for [`Nats::resume`].
    extra: Vec<String>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// True when `nats-server` is installed (`.ci/run` installs it).
    pub fn available() -> bool {
        std::process::Command::new("nats-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts one, or `None` (said loudly) when it is not installed on a developer machine;
    /// in CI (`CI` set) a missing server fails the test.
    pub async fn start_or_skip() -> Option<Nats> {
        if !Nats::available_or_skip() {
            return None;
        }
        Some(Nats::start().await.expect("nats-server starts"))
    }

    /// [`Nats::available`], saying loudly that the test is skipped when it is not (and
    /// failing it in CI): for tests that start the server with options of their own.
    pub fn available_or_skip() -> bool {
        if Nats::available() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server must be installed in CI"
        );
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        false
    }

    /// Starts `nats-server -js` on a random loopback port and waits until it is ready.
    pub async fn start() -> anyhow::Result<Nats> {
        Nats::start_with(&[]).await
    }

    /// [`Nats::start`] with more `nats-server` options (`--tls`, `--user`, …).
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<Nats> {
        let dir = tempfile::tempdir()?;
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let (child, port) = spawn(dir.path(), "-1", &extra).await?;
        Ok(Nats {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            extra,
            child: Some(child),
            _dir: dir,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// Kills the server (SIGKILL), keeping its port and store for [`Nats::resume`].
    pub async fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let (child, _) = spawn(self._dir.path(), &self.port, &self.extra).await?;
        self.child = Some(child);
        Ok(())
    }

    /// Stops the server (SIGKILL) and waits for it.
    pub async fn stop(mut self) {
        self.pause().await;
    }
}

/// Runs `nats-server -js` on `port` (`-1`: any) with its store in `dir`; returns once it is
/// ready, with the port it listens on.
async fn spawn(
    dir: &std::path::Path,
    port: &str,
    extra: &[String],
) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", port, "--http_port", "0"])
        .arg("-sd")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr).lines();
    let mut bound = None;
    let ready = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                bound = rest.trim().rsplit(':').next().map(str::to_owned);
            }
            if line.contains("Server is ready") {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("nats-server exited before it was ready")
    };
    tokio::time::timeout(Duration::from_secs(20), ready).await??;
    // Keep reading so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let bound = bound.ok_or_else(|| anyhow::anyhow!("nats-server did not say its port"))?;
    Ok((child, bound))
}
