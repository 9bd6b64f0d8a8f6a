//! The client's connections to its one local target: HTTP/1 connections from hyper's
//! connection API, kept on a stack while idle and reused newest first.
//!
//! A connection goes back on the stack in the poll that hands out the last bytes of its
//! answer, when hyper's connection is ready for the next request (a connection that is not
//! ready yet gets a task that puts it back once it is). One idle for
//! [`TARGET_POOL_IDLE`](twk_protocol::limits::TARGET_POOL_IDLE) is not used again, and a
//! task started with the first idle connection closes such connections while any are idle.
//! A request that a reused connection refused before writing any of it (it was closing) goes
//! out on a new connection, as hyper-util's pool does it; one the connection took and then
//! lost is the forwarder's to send again ([`Checkout`]).
//!
//! It is not hyper-util's legacy `Client`, which served here until the twenty-seventh round:
//! that pool is made for any number of hosts, HTTP/2 and proxies, and charged each request a
//! checkout racing a connect future, a channel to learn the connection it went out on, and a
//! task that waited to put its connection back (docs/performance.md, twenty-seventh round).
//! It does not limit how many connections are open: the forwarder's turns at the target do.
//! Connecting (name resolution, the timeout, `TCP_NODELAY`) is hyper-util's
//! [`HttpConnector`]'s; the bytes on each connection are [`TargetStream`]'s.

use crate::forward::AgentBody;
use crate::target_io::{ReadCount, TargetStream};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;
use twk_protocol::limits::TARGET_POOL_IDLE;

/// Why a request did not get an answer from the target.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection to the target could be made.
    #[error("cannot connect to the target")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed before the answer's head came back.
    #[error("the connection to the target failed")]
    Http(#[source] hyper::Error),
}

impl SendError {
    /// Whether no connection could be made (the app is not listening).
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// The connection a reused request went out on, as it was when checked out for it.
#[derive(Debug)]
pub(crate) struct Checkout {
    count: ReadCount,
    at_checkout: u64,
}

impl Checkout {
    /// No byte of this request's answer came back on the reused connection: the app's server
    /// closed it as the request arrived (an idle timeout firing), and it can be sent again.
    pub(crate) fn unanswered(&self) -> bool {
        self.count.get() == self.at_checkout
    }
}

/// The target's connections; see the module documentation.
pub(crate) struct TargetPool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: HttpConnector,
    /// `host:port`.
    authority: String,
    http1: http1::Builder,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    /// Oldest first: each one went idle no earlier than the one before it.
    conns: Vec<Conn>,
    /// The task that closes connections idle too long runs (at most one does).
    reaping: bool,
}

/// One connection to the target.
struct Conn {
    tx: http1::SendRequest<AgentBody>,
    read: ReadCount,
    since: Instant,
}

impl TargetPool {
    /// Connections to `authority` (`host:port`) with responses read `max_buf` bytes at a time.
    pub(crate) fn new(authority: &str, max_buf: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(true);
        connector.set_connect_timeout(Some(twk_protocol::limits::TARGET_CONNECT_TIMEOUT));
        let mut http1 = http1::Builder::new();
        http1.max_buf_size(max_buf);
        let idle = Mutex::new(Idle::default());
        let authority = authority.to_owned();
        let inner = Inner {
            connector,
            authority,
            http1,
            idle,
        };
        TargetPool {
            inner: Arc::new(inner),
        }
    }

    /// Sends `req` on an idle connection or a new one, whatever host its URI names: only its
    /// path and query go on the request line. The [`Checkout`] is that of a reused connection.
    pub(crate) async fn send(
        &self,
        mut req: Request<AgentBody>,
    ) -> (Result<Response<PooledBody>, SendError>, Option<Checkout>) {
        if req.uri().scheme().is_some() {
            let origin_form = req
                .uri()
                .path_and_query()
                .cloned()
                .map_or_else(Uri::default, Uri::from);
            *req.uri_mut() = origin_form;
        }
        while let Some(mut conn) = self.inner.checkout() {
            let checkout = Checkout {
                count: conn.read.clone(),
                at_checkout: conn.read.get(),
            };
            match conn.tx.try_send_request(req).await {
                Ok(resp) => return (Ok(self.inner.pooled(resp, conn)), Some(checkout)),
                Err(mut e) => match e.take_message() {
                    // Refused before any of it was written: the connection was closing.
                    Some(again) => req = again,
                    None => return (Err(SendError::Http(e.into_error())), Some(checkout)),
                },
            }
        }
        let sent = async {
            let mut conn = self.inner.connect().await?;
            let resp = conn.tx.send_request(req).await.map_err(SendError::Http)?;
            Ok(self.inner.pooled(resp, conn))
        };
        (sent.await, None)
    }

    /// Idle connections now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.inner.lock().conns.len()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection that is still open and ready.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.lock();
        while let Some(conn) = idle.conns.pop() {
            if conn.since.elapsed() >= TARGET_POOL_IDLE {
                // The newest went idle too long ago, and the rest before it.
                idle.conns.clear();
                return None;
            }
            if conn.tx.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        use tower_service::Service as _;
        let dial = Uri::builder()
            .scheme("http")
            .authority(self.authority.as_str())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let mut connector = self.connector.clone();
        let tcp = connector
            .call(dial)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let io = TargetStream::new(tcp.into_inner());
        let read = io.read_count();
        let (tx, conn) = self.http1.handshake(io).await.map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection to the target ended");
            }
        });
        let since = Instant::now();
        Ok(Conn { tx, read, since })
    }

    fn pooled(self: &Arc<Self>, resp: Response<Incoming>, conn: Conn) -> Response<PooledBody> {
        resp.map(|body| {
            let mut body = PooledBody {
                body,
                conn: Some((conn, self.clone())),
            };
            if body.body.is_end_stream() {
                body.release();
            }
            body
        })
    }

    /// Puts a connection whose answer has ended back on the stack.
    fn put(self: &Arc<Self>, mut conn: Conn) {
        if conn.tx.is_closed() {
            return;
        }
        if !conn.tx.is_ready() {
            // hyper's connection task has not taken the answer's end in yet (or is still
            // writing a request body the app stopped reading): back once it is ready.
            let pool = self.clone();
            tokio::spawn(async move {
                if conn.tx.ready().await.is_ok() {
                    pool.put(conn);
                }
            });
            return;
        }
        conn.since = Instant::now();
        let mut idle = self.lock();
        idle.conns.push(conn);
        if !idle.reaping {
            idle.reaping = true;
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }
}

/// Closes connections idle too long, while any are idle.
async fn reap(pool: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(TARGET_POOL_IDLE).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.lock();
        idle.conns
            .retain(|c| c.since.elapsed() < TARGET_POOL_IDLE && !c.tx.is_closed());
        if idle.conns.is_empty() {
            idle.reaping = false;
            return;
        }
    }
}

/// The body of the target's answer; its connection goes back to the pool as it ends.
pub(crate) struct PooledBody {
    body: Incoming,
    conn: Option<(Conn, Arc<Inner>)>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("pooled", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((conn, pool)) = self.conn.take() {
            pool.put(conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // A broken answer: the connection is not used again.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    /// What the app saw: connections accepted, and one message per connection that ended.
    struct App {
        authority: String,
        accepted: Arc<AtomicUsize>,
        ended: mpsc::UnboundedReceiver<()>,
    }

    /// An app on loopback answering `/empty` with a 204, `/close` with `Connection: close`,
    /// `/big` with 1 MiB, anything else with `ok`.
    async fn app() -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (ends, ended) = mpsc::unbounded_channel();
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let ends = ends.clone();
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let mut resp = Response::new(http_body_util::Full::new(Bytes::from(match req
                        .uri()
                        .path()
                    {
                        "/big" => vec![b'x'; 1 << 20],
                        "/empty" => Vec::new(),
                        _ => b"ok".to_vec(),
                    })));
                    match req.uri().path() {
                        "/empty" => *resp.status_mut() = http::StatusCode::NO_CONTENT,
                        "/close" => {
                            resp.headers_mut().insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("close"),
                            );
                        }
                        _ => {}
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                    let _ = ends.send(());
                });
            }
        });
        App {
            authority,
            accepted,
            ended,
        }
    }

    fn get(app: &App, path: &str) -> Request<AgentBody> {
        let mut req = Request::new(twk_transport::body::full(Bytes::new()));
        *req.uri_mut() = format!("http://{}{path}", app.authority).parse().unwrap();
        req.headers_mut()
            .insert(http::header::HOST, app.authority.parse().unwrap());
        req
    }

    async fn answer(pool: &TargetPool, req: Request<AgentBody>) -> (u16, Bytes, bool) {
        let (resp, checkout) = pool.send(req).await;
        let resp = resp.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body, checkout.is_some())
    }

    /// GETs `path`, which the app answers `ok`: whether it went out on a reused connection.
    async fn reused(pool: &TargetPool, app: &App, path: &str) -> bool {
        let (status, body, reused) = answer(pool, get(app, path)).await;
        assert_eq!((status, &body[..]), (200, &b"ok"[..]), "{path}");
        reused
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_answer_has_ended() {
        let app = app().await;
        let pool = TargetPool::new(&app.authority, 64 * 1024);
        assert!(!reused(&pool, &app, "/a").await);
        let big = answer(&pool, get(&app, "/big")).await;
        assert_eq!((big.0, big.1.len(), big.2), (200, 1 << 20, true));
        assert!(reused(&pool, &app, "/c?q=1").await);
        assert_eq!(app.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn an_answer_without_a_body_gives_its_connection_back() {
        let mut app = app().await;
        let pool = TargetPool::new(&app.authority, 64 * 1024);
        let (resp, _) = pool.send(get(&app, "/empty")).await;
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 204);
        // Its body is never polled: the connection goes back as the answer's head comes in,
        // once hyper's connection task has taken it in.
        drop(resp);
        while pool.idle() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(reused(&pool, &app, "/a").await);
        assert_eq!(app.accepted.load(Ordering::SeqCst), 1);
        assert!(app.ended.try_recv().is_err(), "the connection stayed open");
    }

    #[tokio::test]
    async fn an_answer_dropped_unread_closes_its_connection() {
        let mut app = app().await;
        let pool = TargetPool::new(&app.authority, 64 * 1024);
        let (resp, _) = pool.send(get(&app, "/big")).await;
        let mut body = resp.unwrap().into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
        app.ended.recv().await.unwrap();
        assert_eq!(pool.idle(), 0);
        assert!(!reused(&pool, &app, "/a").await);
        assert_eq!(app.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_app_closes_is_not_kept() {
        let mut app = app().await;
        let pool = TargetPool::new(&app.authority, 64 * 1024);
        assert!(!reused(&pool, &app, "/close").await);
        app.ended.recv().await.unwrap();
        assert!(!reused(&pool, &app, "/a").await);
        assert_eq!(app.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_once_idle_too_long() {
        let mut app = app().await;
        let pool = TargetPool::new(&app.authority, 64 * 1024);
        let (a, b) = tokio::join!(reused(&pool, &app, "/a"), reused(&pool, &app, "/b"));
        assert!(!a && !b);
        assert_eq!(pool.idle(), 2);
        // Waiting is the subject: the app sees both connections end once they were idle
        // too long, and not before.
        let idle_since = std::time::Instant::now();
        app.ended.recv().await.unwrap();
        app.ended.recv().await.unwrap();
        assert!(idle_since.elapsed() >= TARGET_POOL_IDLE);
        assert_eq!(pool.idle(), 0);
        assert!(!reused(&pool, &app, "/c").await);
        assert_eq!(app.accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_request_line_names_the_path_not_the_host() {
        // Whatever host the URI names, the connection is the pool's and the request line is
        // origin-form (hyper writes a URI as it is given).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let seen = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = tcp.read(&mut buf).await.unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let pool = TargetPool::new(&authority, 64 * 1024);
        let mut req = Request::new(twk_transport::body::full(Bytes::new()));
        *req.uri_mut() = "http://evil.example:80/x?y=1".parse().unwrap();
        let (resp, _) = pool.send(req).await;
        assert_eq!(resp.unwrap().status(), 200);
        let head = seen.await.unwrap();
        assert!(head.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{head}");
    }

    #[tokio::test]
    async fn no_app_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = TargetPool::new(&authority, 64 * 1024);
        let mut req = Request::new(twk_transport::body::full(Bytes::new()));
        *req.uri_mut() = format!("http://{authority}/").parse().unwrap();
        let (resp, checkout) = pool.send(req).await;
        assert!(resp.unwrap_err().is_connect());
        assert!(checkout.is_none());
    }
}
