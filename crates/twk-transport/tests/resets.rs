//! The tunnel's HTTP/2 server against a burst of streams its peer cancels at once.
//!
//! The relay cancels a stream whenever the public sender of its request goes away, so a
//! stranger who opens many requests and drops them makes the relay send as many resets.
//! h2's rapid-reset guard closes a connection after 20 streams reset before they were
//! accepted; on the tunnel that closed the whole tunnel, for every sender, whenever a burst
//! of senders left together (seen at the end of a 1,000-connection benchmark).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;

use twk_protocol::limits::{H2_MAX_PENDING_RESETS, MAX_CONCURRENT_STREAMS};

/// Opens `burst` requests and cancels each before either connection task runs again, so the
/// tunnel's server reads them all at once, before it has accepted any; then asks once more.
/// Returns the last request's answer, and why the server's connection ended, if it did.
async fn cancel_a_burst(burst: usize) -> (Result<http::StatusCode, h2::Error>, Option<String>) {
    let (relay_side, tunnel_side) = tokio::io::duplex(1 << 20);
    let svc = hyper::service::service_fn(|_req| async {
        Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
    });
    let server = tokio::spawn(
        twk_transport::h2_server_builder(Duration::from_secs(30), Duration::from_secs(30))
            .serve_connection(TokioIo::new(tunnel_side), svc),
    );
    let (client, conn) = h2::client::handshake(relay_side).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    for _ in 0..burst {
        let req = http::Request::post("http://tunnel/hook").body(()).unwrap();
        let (_response, mut stream) = client.send_request(req, false).unwrap();
        stream.send_reset(h2::Reason::CANCEL);
    }
    let req = http::Request::get("http://tunnel/after").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("an answer or an error")
        .map(|r| r.status());
    let closed = match status {
        Ok(_) => None,
        Err(_) => {
            let ended = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the server's connection ended")
                .unwrap();
            Some(format!("{:?}", ended.err()))
        }
    };
    conn.abort();
    (status, closed)
}

#[tokio::test(flavor = "current_thread")]
async fn every_stream_the_relay_may_have_open_cancelled_at_once_leaves_the_tunnel_up() {
    // h2's own guard closed the connection at 21.
    let (status, closed) = cancel_a_burst(MAX_CONCURRENT_STREAMS as usize).await;
    assert_eq!(status.expect("the connection survived the burst"), 200);
    assert_eq!(closed, None);
}

#[tokio::test(flavor = "current_thread")]
async fn resets_past_the_bound_close_the_connection() {
    // What the guard is for: a peer cannot queue reset streams without end.
    let (status, closed) = cancel_a_burst(H2_MAX_PENDING_RESETS + 100).await;
    status.expect_err("the connection was closed");
    let why = closed.expect("the server's connection ended");
    assert!(why.contains("ENHANCE_YOUR_CALM"), "{why}");
}
