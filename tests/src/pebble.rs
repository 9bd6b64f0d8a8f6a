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

/// A port that was free a moment ago (Pebble needs numbers in its config file).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
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
        let dir = tempfile::tempdir()?;
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
        let cert = dir.path().join("api-cert.pem");
        let key = dir.path().join("api-key.pem");
        std::fs::write(&cert, ck.cert.pem())?;
        std::fs::write(&key, ck.signing_key.serialize_pem())?;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": cert,
                "privateKey": key,
                "httpPort": free_port(),
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .arg("-strict=false")
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
