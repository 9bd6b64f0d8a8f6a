//! A real ACME server for tests: Pebble (Debian package `pebble`), on loopback, with a
//! certificate of our own for its API and validation at full speed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running Pebble.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// PEM file of the certificate Pebble's API serves (trust it to talk ACME).
    pub api_root: PathBuf,
    management: SocketAddr,
    _dir: tempfile::TempDir,
    _child: Child,
}

/// `N` distinct ports that were free a moment ago (Pebble needs numbers in its config file):
/// all bound at once, so the kernel cannot hand out the same one twice.
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&held) {
        *p = l.local_addr().map(|a| a.port()).unwrap_or(0);
    }
    ports
}

/// Held by a test for as long as it runs a Pebble: two at once on one machine have been seen
/// to refuse each other's connections, so ACME tests take turns.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// The turn to run a Pebble, or `None` (test skipped, said loudly) when Pebble is not
/// installed on a developer machine. In CI (`CI` set) a missing Pebble fails the test:
/// `.ci/run` installs it, so CI never skips.
pub async fn turn_or_skip() -> Option<tokio::sync::MutexGuard<'static, ()>> {
    if !Pebble::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "pebble must be installed in CI"
        );
        eprintln!("SKIPPED: pebble is not installed (apt-get install pebble)");
        return None;
    }
    Some(exclusive().await)
}

impl Pebble {
    /// True when the `pebble` binary is installed (`.ci/run` installs it).
    pub fn available() -> bool {
        std::process::Command::new("pebble")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    /// Starts Pebble validating TLS-ALPN-01 challenges on `tls_port` (the relay's port).
    pub async fn start(tls_port: u16) -> anyhow::Result<Pebble> {
        Pebble::start_with(tls_port, None).await
    }

    /// Starts Pebble resolving names through `dns` (for DNS-01), and TLS-ALPN-01 on
    /// `tls_port`.
    pub async fn start_with(tls_port: u16, dns: Option<SocketAddr>) -> anyhow::Result<Pebble> {
        let dir = tempfile::tempdir()?;
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
        let cert = dir.path().join("api-cert.pem");
        let key = dir.path().join("api-key.pem");
        std::fs::write(&cert, ck.cert.pem())?;
        std::fs::write(&key, ck.signing_key.serialize_pem())?;
        let [listen, management, http] = free_ports::<3>();
        let listen = SocketAddr::from(([127, 0, 0, 1], listen));
        let management = SocketAddr::from(([127, 0, 0, 1], management));
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let mut cmd = Command::new("pebble");
        cmd.arg("-config").arg(&config_path).arg("-strict=false");
        if let Some(dns) = dns {
            cmd.arg("-dnsserver").arg(dns.to_string());
        }
        let mut child = cmd
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        // Pebble logs "Listening on: <addr>" once its API is up.
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let up = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("Listening on") {
                    return Ok::<_, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        if !matches!(up, Ok(Ok(true))) {
            anyhow::bail!("pebble did not start: {up:?}");
        }
        // Pebble logs that line just *before* it binds: under load a client could still be
        // refused. Ready is when its API port takes a connection.
        let bound = tokio::time::timeout(Duration::from_secs(20), async {
            while tokio::net::TcpStream::connect(listen).await.is_err() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        if bound.is_err() {
            anyhow::bail!("pebble logged that it listens on {listen} but took no connection");
        }
        // Keep reading its log so a full pipe never stalls it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let Some(err) = child.stderr.take() {
            let mut lines = BufReader::new(err).lines();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
        Ok(Pebble {
            directory: format!("https://{listen}/dir"),
            api_root: cert,
            management,
            _dir: dir,
            _child: child,
        })
    }

    /// The root that signs the certificates Pebble issues (PEM), from its management API.
    pub async fn issuing_root(&self) -> anyhow::Result<String> {
        use http_body_util::BodyExt;
        let pem = std::fs::read(&self.api_root)?;
        let tls = twk_transport::tls::client_config(Some(&pem))?;
        let tcp = tokio::net::TcpStream::connect(self.management).await?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::get("/roots/0")
            .header("host", self.management.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        anyhow::ensure!(resp.status() == 200, "roots/0: {}", resp.status());
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(body.to_vec())?)
    }
}

/// Pebble's companion test DNS server (`pebble-challtestsrv`): answers TXT records set through
/// its management API, which a DNS hook script can call.
pub struct ChallTestSrv {
    /// Its DNS address (give it to [`Pebble::start_with`]).
    pub dns: SocketAddr,
    /// Its management API (`/set-txt`, `/clear-txt`).
    pub management: SocketAddr,
    _child: Child,
}

impl ChallTestSrv {
    /// Starts it with only DNS and management enabled, on free loopback ports.
    pub async fn start() -> anyhow::Result<ChallTestSrv> {
        let [dns, management] = free_ports::<2>();
        let dns = SocketAddr::from(([127, 0, 0, 1], dns));
        let management = SocketAddr::from(([127, 0, 0, 1], management));
        let child = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns.to_string(),
                "-management",
                &management.to_string(),
            ])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // Up once its management port accepts.
        let up = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if tokio::net::TcpStream::connect(management).await.is_ok() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        anyhow::ensure!(up.is_ok(), "pebble-challtestsrv did not start");
        Ok(ChallTestSrv {
            dns,
            management,
            _child: child,
        })
    }

    /// A DNS hook script (`<hook> set|clear <record> <value>`) that publishes through this
    /// server, written into `dir`.
    pub fn hook_script(&self, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("dns-hook.sh");
        let m = self.management;
        let script = r#"#!/bin/sh
set -e
case "$1" in
  set) curl -sf -d "{\"host\":\"$2.\",\"value\":\"$3\"}" http://MGMT/set-txt ;;
  clear) curl -sf -d "{\"host\":\"$2.\"}" http://MGMT/clear-txt ;;
  *) exit 2 ;;
esac
"#;
        std::fs::write(&path, script.replace("MGMT", &m.to_string()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }
}
