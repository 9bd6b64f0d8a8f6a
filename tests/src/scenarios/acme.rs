//! Automatic TLS against a real ACME server (Pebble): obtain, serve, renew without dropping a
//! live tunnel.

use crate::pebble::Pebble;
use crate::*;
use std::sync::Arc;
use std::time::Duration;
use twk_agent::ConnState;

/// Opens a TLS connection to the relay as `name`, trusting `root`; returns the certificate the
/// relay presented and the answer to `GET path`.
async fn https_get(
    addr: std::net::SocketAddr,
    name: &str,
    root: &str,
    path: &str,
) -> (Vec<u8>, http::StatusCode) {
    use http_body_util::BodyExt;
    let tls = twk_transport::tls::client_config(Some(root.as_bytes())).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server, tcp)
        .await
        .unwrap();
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", format!("{name}:{}", addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    (presented, status)
}

#[tokio::test]
async fn the_relay_obtains_serves_and_renews_its_certificate_without_dropping_a_tunnel() {
    trace_init();
    let Some(_turn) = crate::pebble::turn_or_skip().await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pebble = Pebble::start(addr.port()).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut acfg = twk_acme::AcmeConfig::new("localhost", cache.path().join("acme"));
    acfg.directory = pebble.directory.clone();
    acfg.ca_root = Some(pebble.api_root.clone());
    acfg.email = Some("ops@example.com".into());
    // Pebble's certificates live for years: renew as soon as allowed, to see it happen.
    acfg.renew_fraction = 0.0;
    acfg.retry = Duration::from_millis(500);
    let acme = Arc::new(twk_acme::Acme::new(acfg).unwrap());
    let mut rcfg = relay_config(twk_relay::Auth::Open);
    rcfg.domain = format!("localhost:{}", addr.port());
    rcfg.tls = Some(acme.server_config().unwrap());
    let relay = spawn_relay_on(listener, rcfg);
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = {
        let acme = acme.clone();
        let stop = stop.clone();
        tokio::spawn(async move { acme.run(stop).await })
    };
    let mut certs = acme.certificate();
    let first = tokio::time::timeout(Duration::from_secs(60), certs.wait_for(|c| c.is_some()))
        .await
        .expect("no certificate within 60 s")
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(first.names, ["localhost"]);
    // Cached with private modes.
    let files: Vec<_> = std::fs::read_dir(cache.path().join("acme"))
        .unwrap()
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&f.unwrap().metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    // A client that trusts Pebble's root speaks https to the relay, and a tunnel runs on wss.
    let root = pebble.issuing_root().await.unwrap();
    let (presented, status) = https_get(addr, "localhost", &root, "/_twk/health").await;
    assert_eq!(status, 200);
    let mut app = FakeTarget::echo().await;
    let mut cfg = agent_config(&relay, app.addr);
    cfg.relay = twk_agent::RelayUrl::parse(&format!("wss://localhost:{}", addr.port())).unwrap();
    cfg.extra_ca_pem = Some(root.clone().into_bytes());
    cfg.name = Some("secure".into());
    let mut agent = spawn_agent(cfg);
    let (_, url) = agent.connected().await;
    assert!(url.starts_with("https://"), "{url}");
    let (_, status) = https_get(addr, "localhost", &root, "/t/secure/before").await;
    assert_eq!(status, 200);
    assert_eq!(app.next().await.path_and_query, "/before");

    // Renewal swaps the certificate under the live tunnel.
    let renewed = tokio::time::timeout(
        Duration::from_secs(60),
        certs.wait_for(|c| c.as_ref().is_some_and(|c| c.serial != first.serial)),
    )
    .await
    .expect("no renewal within 60 s")
    .unwrap()
    .clone()
    .unwrap();
    let (now_presented, status) = https_get(addr, "localhost", &root, "/t/secure/after").await;
    assert_eq!(status, 200);
    assert_ne!(
        now_presented, presented,
        "the renewed certificate is served"
    );
    assert_eq!(app.next().await.path_and_query, "/after");
    while let Ok(s) = agent.states.try_recv() {
        assert!(
            !matches!(s, ConnState::Reconnecting { .. }),
            "tunnel dropped: {s:?}"
        );
    }
    assert!(renewed.not_after >= first.not_after);
    stop.cancel();
    runner.await.unwrap();
    agent.stop().await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn a_dns_hook_gets_the_wildcard_and_subdomain_urls_work() {
    trace_init();
    let Some(_turn) = crate::pebble::turn_or_skip().await else {
        return;
    };
    let dns = crate::pebble::ChallTestSrv::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pebble = Pebble::start_with(addr.port(), Some(dns.dns))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut acfg = twk_acme::AcmeConfig::new("hooks.localhost", dir.path().join("acme"));
    acfg.directory = pebble.directory.clone();
    acfg.ca_root = Some(pebble.api_root.clone());
    acfg.dns_hook = Some(dns.hook_script(dir.path()).unwrap());
    let acme = Arc::new(twk_acme::Acme::new(acfg).unwrap());
    let info = tokio::time::timeout(Duration::from_secs(60), acme.obtain())
        .await
        .expect("no certificate within 60 s")
        .unwrap();
    let mut names = info.names.clone();
    names.sort();
    assert_eq!(names, ["*.hooks.localhost", "hooks.localhost"]);

    let mut rcfg = relay_config(twk_relay::Auth::Open);
    rcfg.domain = format!("hooks.localhost:{}", addr.port());
    rcfg.url_style = twk_relay::UrlStyle::Subdomain;
    rcfg.tls = Some(acme.server_config().unwrap());
    let relay = spawn_relay_on(listener, rcfg);
    let root = pebble.issuing_root().await.unwrap();
    let mut app = FakeTarget::echo().await;
    let mut cfg = agent_config(&relay, app.addr);
    // The client dials the apex; the relay hands out a subdomain URL.
    cfg.relay =
        twk_agent::RelayUrl::parse(&format!("wss://hooks.localhost:{}", addr.port())).unwrap();
    cfg.extra_ca_pem = Some(root.clone().into_bytes());
    cfg.name = Some("shop".into());
    // hooks.localhost resolves nowhere: dial loopback, still verifying the name.
    cfg.connect_to = Some(addr);
    let mut agent = spawn_agent(cfg);
    let (_, url) = agent.connected().await;
    assert_eq!(url, format!("https://shop.hooks.localhost:{}", addr.port()));
    let (_, status) = https_get(addr, "shop.hooks.localhost", &root, "/wild").await;
    assert_eq!(status, 200);
    assert_eq!(app.next().await.path_and_query, "/wild");
    agent.stop().await.unwrap();
    relay.stop().await;
}
