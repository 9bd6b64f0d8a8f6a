//! Keeping what arrives while a tunnel's client is offline (issue 16): the sender still gets
//! 503 + Retry-After, the relay keeps the request sealed to the tunnel's owner (its files hold
//! no plaintext), a relay restart loses none, and on reconnect the owner's client receives
//! each one, byte-identical, oldest first, marked missed; the relay deletes them once taken.
//! Another token's client never receives them. Bounds drop the oldest.

use crate::*;
use sha2::Digest as _;
use std::path::Path;
use std::time::Duration;
use twk_protocol::kept::OwnerKey;

const MARKER: &str = "PLAINTEXT-MARKER";

fn relay_cfg(dir: &Path, keep_count: usize) -> twk_relay::RelayConfig {
    let mut cfg = relay_config(tokens(&["t", "u"]));
    // Past any hold: straight to "offline".
    cfg.hold = Duration::ZERO;
    cfg.state_file = Some(dir.join("names.json"));
    cfg.keep_dir = Some(dir.join("kept"));
    cfg.keep.count = keep_count;
    cfg
}

fn agent(
    relay: std::net::SocketAddr,
    app: std::net::SocketAddr,
    token: &str,
    name: &str,
    key: &OwnerKey,
) -> twk_agent::AgentConfig {
    let mut c = twk_agent::AgentConfig::new(
        twk_agent::RelayUrl::parse(&format!("http://{relay}")).unwrap(),
        twk_agent::Target::parse(&app.to_string()).unwrap(),
    );
    c.shutdown_grace = Duration::from_secs(5);
    c.token = Some(token.into());
    c.name = Some(name.into());
    c.owner_key = Some(key.clone());
    c
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            // A file the relay removes between the listing and the read is gone: not listed.
            out.push((p.clone(), bytes));
        }
    }
    out
}

async fn until_no_files(dir: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !files(dir).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "kept files were not deleted"
        );
        tokio::task::yield_now().await;
    }
}

fn body(i: usize) -> Vec<u8> {
    let mut b = format!("{{\"n\":{i},\"m\":\"{MARKER}-{i}\"}}").into_bytes();
    b.extend_from_slice(&[0, 0xff, 0xfe, b'\n']);
    b
}

#[tokio::test]
async fn offline_requests_are_kept_sealed_survive_a_relay_restart_and_reach_the_owner_once() {
    trace_init();
    let dir = tempfile::tempdir().unwrap();
    let app = FakeTarget::echo().await;
    let key = OwnerKey::generate();
    let relay = spawn_relay(relay_cfg(dir.path(), 100)).await;
    let mut first = spawn_agent(agent(relay.addr, app.addr, "t", "kept", &key));
    first.connected().await;
    first.stop().await.unwrap();

    for i in 0..3 {
        let r = send(
            relay.addr,
            "POST",
            &format!("/t/kept/hook/{i}?q={i}"),
            &[("content-type", "application/json")],
            body(i),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 503, "never a false 2xx");
        assert!(r.headers.contains_key("retry-after"));
    }
    let kept = files(&dir.path().join("kept"));
    assert_eq!(kept.len(), 3);
    for (path, bytes) in &kept {
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "plaintext in {}",
            path.display()
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // A restart in between: the files and the owner's key (state file) carry over. Kept
    // requests are ordered by arrival millisecond, then by the relay's request sequence,
    // which starts again at a restart: what arrives next must come in a later millisecond
    // than the last one before it, or its place among them is not decided by arrival.
    let before = twk_protocol::now_ms();
    while twk_protocol::now_ms() <= before {
        std::hint::spin_loop();
    }
    relay.stop().await;
    let relay = spawn_relay(relay_cfg(dir.path(), 100)).await;
    // It still knows whom to seal to: what arrives now is kept too.
    let r = send(relay.addr, "POST", "/t/kept/hook/3?q=3", &[], body(3))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(files(&dir.path().join("kept")).len(), 4);

    // Another token's client, on another name, gets nothing.
    let other_key = OwnerKey::generate();
    let mut other = spawn_agent(agent(relay.addr, app.addr, "u", "other", &other_key));
    other.connected().await;

    let mut back = spawn_agent(agent(relay.addr, app.addr, "t", "kept", &key));
    back.connected().await;
    for i in 0..4 {
        let ex = back.exchange().await;
        assert!(ex.missed, "{ex:?}");
        assert_eq!(ex.status, Some(503));
        assert_eq!(ex.path, format!("/hook/{i}?q={i}"));
        assert!(
            ex.public_url.ends_with(&format!("/t/kept/hook/{i}?q={i}")),
            "{}",
            ex.public_url
        );
        let want = hex::encode(sha2::Sha256::digest(body(i)));
        assert_eq!(ex.request.body.sha256, want, "byte-identical");
        assert_eq!(ex.request.body.bytes, body(i));
        // The headers a live request reaches the app with, so delivering it later (a
        // replay of this) gives the app the same Host and forwarding headers.
        let h = |n: &str| {
            let v = ex.request.headers.iter().find(|h| h.name == n);
            v.map(|h| String::from_utf8_lossy(&h.value).into_owned())
        };
        assert_eq!(h("host").as_deref(), Some(app.addr.to_string().as_str()));
        assert_eq!(h("x-forwarded-proto").as_deref(), Some("http"));
        let public: http::Uri = ex.public_url.parse().unwrap();
        assert_eq!(
            h("x-forwarded-host").as_deref(),
            public.authority().map(|a| a.as_str())
        );
        assert_eq!(h("x-forwarded-prefix").as_deref(), Some("/t/kept"));
        assert_eq!(h("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            h("content-type").as_deref(),
            Some("application/json").filter(|_| i < 3)
        );
    }
    until_no_files(&dir.path().join("kept")).await;
    assert!(
        other.exchanges.try_recv().is_err(),
        "another token's client received a kept request"
    );
    back.stop().await.unwrap();
    other.stop().await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn past_the_bound_the_oldest_are_dropped_and_without_a_key_nothing_is_kept_and_the_owner_is_told()
 {
    trace_init();
    let dir = tempfile::tempdir().unwrap();
    let app = FakeTarget::echo().await;
    let key = OwnerKey::generate();
    let relay = spawn_relay(relay_cfg(dir.path(), 2)).await;
    let mut a = spawn_agent(agent(relay.addr, app.addr, "t", "bounded", &key));
    a.connected().await;
    a.stop().await.unwrap();
    for i in 0..4 {
        let r = send(relay.addr, "POST", &format!("/t/bounded/{i}"), &[], body(i))
            .await
            .unwrap();
        assert_eq!(r.status, 503);
    }
    assert_eq!(files(&dir.path().join("kept")).len(), 2);
    let big = raw(
        relay.addr,
        b"POST /t/bounded/big HTTP/1.1\r\nhost: relay\r\ncontent-length: 999999999\r\n\r\n",
    )
    .await;
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    let mut b = spawn_agent(agent(relay.addr, app.addr, "t", "bounded", &key));
    b.connected().await;
    assert_eq!(b.exchange().await.path, "/2", "the two oldest were dropped");
    assert_eq!(b.exchange().await.path, "/3");
    let told = recv_unkept(&mut b).await;
    assert_eq!(
        (told.not_kept, told.too_large, told.dropped),
        (0, 1, 2),
        "{told:?}"
    );
    assert!(told.first_ms <= told.last_ms);
    until_no_files(&dir.path().join("kept")).await;
    b.stop().await.unwrap();

    // A client that never sent a key: nothing can be sealed, so nothing is kept.
    let mut keyless = spawn_agent(keyless_agent(&relay, app.addr));
    keyless.connected().await;
    keyless.stop().await.unwrap();
    let r = send(relay.addr, "POST", "/t/keyless/x", &[], "x")
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert!(files(&dir.path().join("kept")).is_empty());
    // Its next session is told what could not be kept, once.
    let mut keyless = spawn_agent(keyless_agent(&relay, app.addr));
    keyless.connected().await;
    let told = recv_unkept(&mut keyless).await;
    assert_eq!((told.not_kept, told.dropped), (1, 0), "{told:?}");
    keyless.stop().await.unwrap();
    let mut again = spawn_agent(keyless_agent(&relay, app.addr));
    again.connected().await;
    // A forwarded request after connecting: had a second notice come, it came before it.
    let r = send(relay.addr, "POST", "/t/keyless/after", &[], "x")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(again.exchange().await.path, "/after");
    assert!(again.unkept.try_recv().is_err(), "told once, not again");
    again.stop().await.unwrap();
    relay.stop().await;
}

/// An agent for tunnel `keyless` of token `t` that sends no owner key.
fn keyless_agent(relay: &RelayHandle, app: std::net::SocketAddr) -> twk_agent::AgentConfig {
    let mut c = agent_config(relay, app);
    c.token = Some("t".into());
    c.name = Some("keyless".into());
    c
}

async fn recv_unkept(a: &mut AgentHandle) -> twk_protocol::refused::Unkept {
    tokio::time::timeout(Duration::from_secs(10), a.unkept.recv())
        .await
        .expect("no word of what the relay could not keep")
        .expect("agent gone")
}

#[tokio::test]
async fn a_client_with_another_key_leaves_them_for_the_key_they_were_sealed_to() {
    trace_init();
    let dir = tempfile::tempdir().unwrap();
    let app = FakeTarget::echo().await;
    let (laptop, desktop) = (OwnerKey::generate(), OwnerKey::generate());
    let (relay, maddr) = spawn_relay_with_metrics(relay_cfg(dir.path(), 100)).await;
    let addr = relay.addr;
    let mut a = spawn_agent(agent(addr, app.addr, "t", "shared", &laptop));
    a.connected().await;
    a.stop().await.unwrap();
    let r = send(addr, "POST", "/t/shared/x", &[], body(7))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    // The same owner on another machine (another key) cannot read it: nothing recorded
    // there, nothing deleted; it is left for the key it was sealed to. The relay knows
    // which key that is and does not send it at all (the client would have refused it:
    // counted as skipped).
    let mut other = spawn_agent(agent(addr, app.addr, "t", "shared", &desktop));
    other.connected().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while scrape_metric(maddr, "twk_relay_kept_withheld_total").await < 1.0 {
        assert!(std::time::Instant::now() < deadline, "never looked at");
        tokio::task::yield_now().await;
    }
    assert_eq!(
        scrape_metric(maddr, "twk_relay_kept_skipped_total").await,
        0.0
    );
    assert!(other.exchanges.try_recv().is_err());
    other.stop().await.unwrap();
    assert_eq!(files(&dir.path().join("kept")).len(), 1);
    // Back on the laptop: it arrives.
    let mut back = spawn_agent(agent(addr, app.addr, "t", "shared", &laptop));
    back.connected().await;
    let ex = back.exchange().await;
    assert!(ex.missed);
    assert_eq!(ex.request.body.bytes, body(7));
    until_no_files(&dir.path().join("kept")).await;
    back.stop().await.unwrap();
    relay.stop().await;
}

/// Senders for an offline tunnel who declare a body and send it a byte at a time hold no
/// turn and no room for what they only declared: 8 of them once held every turn, and a
/// webhook arriving meanwhile was answered unkept. Here 12 of them, declaring 36 MiB in all,
/// are being read, and a whole webhook is still kept.
#[tokio::test]
async fn slow_senders_never_keep_others_from_being_kept() {
    use tokio::io::AsyncWriteExt as _;
    trace_init();
    let dir = tempfile::tempdir().unwrap();
    let app = FakeTarget::echo().await;
    let key = OwnerKey::generate();
    let (relay, metrics) = spawn_relay_with_metrics(relay_cfg(dir.path(), 100)).await;
    let mut a = spawn_agent(agent(relay.addr, app.addr, "t", "dribbled", &key));
    a.connected().await;
    a.stop().await.unwrap();
    let mut slow = Vec::new();
    for _ in 0..12 {
        let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
        // 3 MiB declared: within what can be kept, and 12 of them over the room.
        s.write_all(
            b"POST /t/dribbled/slow HTTP/1.1\r\nhost: a\r\ncontent-length: 3145728\r\n\r\nx",
        )
        .await
        .unwrap();
        slow.push(s);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while scrape_metric(metrics, "twk_relay_kept_reading").await < 12.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow ones never arrived"
        );
        tokio::task::yield_now().await;
    }
    let r = send(relay.addr, "POST", "/t/dribbled/hook", &[], body(1))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        files(&dir.path().join("kept")).len(),
        1,
        "the webhook was not kept"
    );
    assert_eq!(
        scrape_metric(metrics, "twk_relay_kept_refused_total").await,
        0.0
    );
    drop(slow);
}
