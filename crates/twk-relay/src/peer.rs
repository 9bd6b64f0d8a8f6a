//! Requests between the nodes of a relay cluster (`twk-cluster`): a public request for a
//! tunnel held by another node is sent there over plain HTTP/1.1 to that node's peer
//! listener, streamed both ways, and the answer comes back unchanged; the holding node
//! treats it as a public request from the original sender. The peer listener takes only
//! requests that present its secret (published to the cluster through NATS), so it belongs on
//! a private network between the nodes.

use crate::body::RelayBody;
use crate::server::{State, text};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tracing::debug;
use twk_cluster::Peer;

/// The peer secret, on a request from another node.
pub(crate) const SECRET: &str = "x-twk-peer";
/// The original sender's address, on a request from another node.
pub(crate) const CLIENT: &str = "x-twk-peer-client";
/// How many node-to-node hops the request has made (see `ingress::Hop`).
pub(crate) const HOPS: &str = "x-twk-peer-hops";
/// Where another node hands over a request it kept for a tunnel held here now
/// (`…/kept/<name>`, the sealed request as body, `x-twk-kept` and `x-twk-received-at` as on
/// the tunnel).
pub(crate) const KEPT_PATH: &str = "/_twk/peer/kept/";
/// On a kept hand-over: the client process the sending node expects to hold the tunnel here
/// (from the name's record). A refusal is remembered under that process's id, so a request
/// must not reach another one in its place (`keep::handoff::Refused`).
pub(crate) const EXPECT_CLIENT: &str = "x-twk-peer-expect-client";

/// How long a node waits to connect to the holding node before answering 502: the issue's
/// "owner node gone: 502 within 1 s".
const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);

/// The pooled HTTP/1.1 client to other nodes.
pub(crate) fn client() -> Client<HttpConnector, RelayBody> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(http)
}

/// Sends a public request to the node holding its tunnel and streams the answer back.
pub(crate) async fn forward(
    state: &State,
    peer: Peer,
    hops: u8,
    sender: SocketAddr,
    req: Request<Incoming>,
) -> Response<RelayBody> {
    let (mut parts, body) = req.into_parts();
    twk_protocol::strip_hop_by_hop(&mut parts.headers);
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Err(why) = address(&mut parts, &peer, &target) {
        return unreachable_node(&peer, why);
    }
    let Ok(client) = HeaderValue::from_str(&sender.to_string()) else {
        return unreachable_node(&peer, "the sender's address is not a header value");
    };
    parts.headers.insert(CLIENT, client);
    parts
        .headers
        .insert(HOPS, HeaderValue::from(u16::from(hops)));
    state.metrics.peer_forwarded.inc();
    let wait = state.cfg.request_timeout + twk_protocol::limits::RELAY_DEADLINE_MARGIN * 2;
    let body = body.map_err(Into::into).boxed();
    let sent = state.peers.request(Request::from_parts(parts, body));
    match tokio::time::timeout(wait, sent).await {
        Ok(Ok(resp)) => resp.map(|b| b.map_err(Into::into).boxed()),
        Ok(Err(e)) => {
            debug!(node = peer.node, error = %e, "request to the holding node failed");
            unreachable_node(&peer, "it did not answer")
        }
        Err(_) => text(
            StatusCode::GATEWAY_TIMEOUT,
            "twk relay: the relay node holding this tunnel did not answer in time (relay side)\n",
        ),
    }
}

/// Points a request at `path` on `peer`'s listener, with the secret it accepts.
pub(crate) fn address(
    parts: &mut http::request::Parts,
    peer: &Peer,
    path: &str,
) -> Result<(), &'static str> {
    parts.uri = format!("{}{path}", peer.url.trim_end_matches('/'))
        .parse()
        .map_err(|_| "its advertised URL is not usable")?;
    let secret =
        HeaderValue::from_str(&peer.secret).map_err(|_| "its secret is not a header value")?;
    parts.headers.insert(SECRET, secret);
    Ok(())
}

fn unreachable_node(peer: &Peer, why: &str) -> Response<RelayBody> {
    debug!(node = peer.node, why, "holding node unreachable");
    text(
        StatusCode::BAD_GATEWAY,
        format!(
            "twk relay: the relay node holding this tunnel is unreachable: {why} (relay side)\n"
        ),
    )
}

/// Whether a request on the peer listener presents this node's secret (anyone else is
/// answered 403).
pub(crate) fn vouched(state: &State, req: &Request<Incoming>) -> bool {
    let (Some(cluster), Some(presented)) = (state.cfg.cluster.as_ref(), req.headers().get(SECRET))
    else {
        return false;
    };
    cluster.authorizes(presented.as_bytes())
}

/// The sender a vouched peer request is from and its hop count.
pub(crate) fn sender_of(req: &Request<Incoming>) -> Option<(SocketAddr, crate::ingress::Hop)> {
    let sender = req.headers().get(CLIENT)?.to_str().ok()?.parse().ok()?;
    let hops = req
        .headers()
        .get(HOPS)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(1);
    Some((sender, crate::ingress::Hop::FromPeer { hops }))
}

/// A cluster node going away asks each of its tunnel clients to move to another node
/// ([`twk_protocol::meta::MOVE`]); they connect elsewhere first, then close their session
/// here, so requests in flight finish and new ones go to the new node. Bounded: 2 s.
pub(crate) async fn ask_clients_to_move(state: &State) {
    let sessions = state.registry.ready_sessions();
    if sessions.is_empty() {
        return;
    }
    tracing::info!(
        tunnels = sessions.len(),
        "asking tunnel clients to move to another node"
    );
    let mut asks = tokio::task::JoinSet::new();
    for (name, mut sender) in sessions {
        asks.spawn(async move {
            let ask = Request::post(format!("http://{name}.tunnel/"))
                .header(twk_protocol::meta::MOVE, "1")
                .body(crate::body::full(""));
            let Ok(ask) = ask else { return };
            if let Err(e) = sender.send(ask).await {
                debug!(name, error = %e.error, "could not ask a client to move");
            }
        });
    }
    let all = async { while asks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), all).await;
}

/// A kept request another node hands over for tunnel `name`, held here: passed to the
/// session as that node's own hand-off would be; the client's status comes back.
pub(crate) async fn receive_kept(state: &State, req: Request<Incoming>) -> Response<RelayBody> {
    let name = req
        .uri()
        .path()
        .strip_prefix(KEPT_PATH)
        .unwrap_or("")
        .to_owned();
    if twk_protocol::validate_name(&name).is_err() {
        return text(StatusCode::BAD_REQUEST, "twk relay: no such tunnel name\n");
    }
    let Some(session) = state.registry.ready_session(&name) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "twk relay: the tunnel is not held here\n",
        );
    };
    // The sender looked up the holder a moment ago; another process may have taken the
    // tunnel over since. It asks again rather than have this one's refusal noted under the
    // other's id. (A node that does not send the header is not checked.)
    if let Some(expected) = req.headers().get(EXPECT_CLIENT)
        && expected.as_bytes() != session.client.as_bytes()
    {
        return text(
            StatusCode::CONFLICT,
            "twk relay: another client process holds the tunnel here now\n",
        );
    }
    let (parts, body) = req.into_parts();
    // A sealed request is the body in base64 plus its head: bounded by the relay's body cap.
    let cap = usize::try_from(state.cfg.max_body)
        .unwrap_or(usize::MAX)
        .saturating_mul(2);
    let Ok(sealed) = http_body_util::Limited::new(body, cap.saturating_add(1 << 20))
        .collect()
        .await
        .map(|b| b.to_bytes())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "twk relay: the kept request did not arrive whole\n",
        );
    };
    let mut request = Request::post(format!("http://{name}.tunnel/"));
    for h in &[twk_protocol::meta::KEPT, twk_protocol::meta::RECEIVED_AT] {
        if let Some(v) = parts.headers.get(h) {
            request = request.header(h, v);
        }
    }
    let Ok(request) = request.body(crate::body::full(sealed)) else {
        return text(
            StatusCode::BAD_REQUEST,
            "twk relay: bad kept request head\n",
        );
    };
    // Another node sends the sealed box without its record's head, so this node cannot
    // tell its key: the client answers whether it opens it.
    let mut to = crate::keep::Recipient::Session {
        sender: session.sender,
        client: session.client,
        key: None,
    };
    match to.deliver(state, &name, request).await {
        Ok(status) => {
            let mut r = Response::new(crate::body::full(""));
            *r.status_mut() = status;
            r
        }
        Err(e) => {
            debug!(name, error = %e, "a kept request from another node did not reach the client");
            text(
                StatusCode::BAD_GATEWAY,
                "twk relay: the tunnel client did not take the kept request\n",
            )
        }
    }
}

/// Once a second, what this node's disk kept (while NATS could not take it) moves on: to
/// the tunnel's session here, to the node that holds the tunnel now, or, while no node
/// does, into JetStream. Deleted here once taken.
pub(crate) async fn carry_kept(
    state: std::sync::Arc<State>,
    stop: tokio_util::sync::CancellationToken,
) {
    let (Some(cluster), Some(store)) = (state.cfg.cluster.clone(), state.keep.clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let d = store.disk.clone();
        let Ok(names) = tokio::task::spawn_blocking(move || d.names()).await else {
            continue;
        };
        for name in names {
            let (d, n) = (store.disk.clone(), name.clone());
            let empty = tokio::task::spawn_blocking(move || {
                let empty = d.list(&n).is_ok_and(|k| k.is_empty());
                // Nothing left to look at every second.
                if empty {
                    let _ = d.remove_empty(&n);
                }
                empty
            });
            if empty.await.unwrap_or(true) {
                continue;
            }
            if state.registry.is_live(&name) {
                // Its session here takes them (a no-op while a hand-off runs).
                state
                    .tracker
                    .spawn(crate::keep::hand_off(state.clone(), name));
                continue;
            }
            match cluster.locate(&name) {
                Some(peer) => {
                    let to = crate::keep::Recipient::Peer(peer);
                    crate::keep::hand_over(state.clone(), name, to).await;
                }
                None => crate::keep::cluster::spool(&state, &cluster, &store, &name).await,
            }
        }
    }
}
