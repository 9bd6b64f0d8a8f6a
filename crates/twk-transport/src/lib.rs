//! twk-transport: the I/O that the twk relay and the tunnel client share.
//!
//! - [`WsIo`] turns a websocket into the ordered byte stream that HTTP/2 runs over (binary
//!   messages carry the bytes; ping/pong and close are handled by tungstenite).
//! - [`ws_config`] sets every websocket limit explicitly (tungstenite's defaults are 64 MiB
//!   messages and an unbounded write buffer).
//! - [`tls`] builds rustls configurations (ring provider, no global state).
//! - [`logging`] is the log filter of both binaries (it never passes the tunnel token).
//! - [`gather::Gathered`] gathers a body's small frames before they become HTTP/2 DATA
//!   frames (h2 ends a connection that holds too many small ones unread).
//!
//! It is not a multiplexer (HTTP/2 is) and holds no tunnel logic.
#![warn(missing_docs)]

pub mod body;
pub mod gather;
pub mod logging;
pub mod tls;
mod wsio;

pub use wsio::WsIo;

use tokio::io::{AsyncRead, AsyncWrite};
use tungstenite::protocol::WebSocketConfig;

/// Websocket configuration with every limit set from [`twk_protocol::limits`].
pub fn ws_config() -> WebSocketConfig {
    use twk_protocol::limits::*;
    WebSocketConfig::default()
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE))
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .read_buffer_size(WS_READ_BUFFER)
}

/// hyper's HTTP/2 client with every limit from [`twk_protocol::limits`] and PINGs every
/// `ping` (dead after `timeout` more): the transport bench's baseline. The relay drives `h2`
/// directly instead ([`h2_direct_client_builder`]).
pub fn h2_client_builder(
    ping: std::time::Duration,
    timeout: std::time::Duration,
) -> hyper::client::conn::http2::Builder<hyper_util::rt::TokioExecutor> {
    use twk_protocol::limits::*;
    let mut b = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    b.timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(ping)
        .keep_alive_timeout(timeout)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .max_frame_size(H2_MAX_FRAME)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    b
}

/// The relay's side of the tunnel: the `h2` crate's client, driven directly (`twk-relay`'s
/// `tunnel_h2`), with every limit from [`twk_protocol::limits`]. PINGs are the driver's.
///
/// Each stream buffers one frame ([`twk_protocol::limits::H2_MAX_FRAME`]) before
/// back-pressure reaches the sender's body, a quarter of hyper's setting
/// ([`twk_protocol::limits::H2_MAX_SEND_BUF`]): each buffered chunk pins the public
/// connection's read buffer, and every stream opens at once here (hyper's client opened them
/// one at a time through its task); 1 MiB uploads moved as fast (docs/performance.md,
/// eleventh round). Answers may hold more small frames unread than h2's default allows
/// ([`twk_protocol::limits::H2_SMALL_FRAME_BUDGET`]). Until the client's SETTINGS say how many streams it takes, no more are
/// opened than hyper's client opened (a burst of held requests at connect time would be
/// refused past the limit).
pub fn h2_direct_client_builder() -> h2::client::Builder {
    use twk_protocol::limits::*;
    let mut b = h2::client::Builder::new();
    b.enable_push(false)
        .initial_max_send_streams(100)
        .initial_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .max_frame_size(H2_MAX_FRAME)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_send_buffer_size(H2_MAX_FRAME as usize)
        .data_frame_budget(H2_SMALL_FRAME_BUDGET);
    b
}

/// The client's side of the tunnel: an HTTP/2 server with the same limits, at most
/// [`twk_protocol::limits::MAX_CONCURRENT_STREAMS`] requests at once.
pub fn h2_server_builder(
    ping: std::time::Duration,
    timeout: std::time::Duration,
) -> hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor> {
    use twk_protocol::limits::*;
    let mut b = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    b.timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(ping)
        .keep_alive_timeout(timeout)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .max_frame_size(H2_MAX_FRAME)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    b
}

/// A bidirectional byte stream (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed [`Io`], so plain and TLS connections share one type.
pub type BoxedIo = Box<dyn Io>;

/// Waits for SIGINT or SIGTERM, then cancels `token` (both binaries' shutdown trigger).
pub async fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received: shutting down");
    token.cancel();
}

#[cfg(test)]
mod tests {
    use twk_protocol::limits::*;

    #[test]
    fn the_websocket_config_takes_every_limit_from_the_protocol() {
        let c = super::ws_config();
        assert_eq!(c.max_message_size, Some(WS_MAX_MESSAGE));
        assert_eq!(c.max_frame_size, Some(WS_MAX_MESSAGE));
        assert_eq!(c.write_buffer_size, WS_WRITE_BUFFER);
        assert_eq!(c.max_write_buffer_size, WS_MAX_WRITE_BUFFER);
        // Not tungstenite's 128 KiB default, which it zeroes before every read.
        assert_eq!(c.read_buffer_size, WS_READ_BUFFER);
    }
}
