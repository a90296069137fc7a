//! The native HTTP/1.1 engine (`--http1-engine native`, the default): sluice's
//! own forwarding path for HTTP/1.1 clients, plain and TLS.
//!
//! # The life of one request
//!
//! 1. **Head.** The connection task reads into its [`ReadBuf`] (one per
//!    connection, reused for every request on it) until `prepare.rs` finds a
//!    whole head. `head.rs` parses it with `httparse` into borrowed slices
//!    (no header map, no allocation) and refuses what RFC 9112 forbids: bare
//!    LF or CR, obs-fold, whitespace before a colon, control bytes, both or
//!    broken framing headers (400, then close), versions other than 1.x (505),
//!    CONNECT (405), oversized targets (414) and heads (431).
//! 2. **Route.** One `ArcSwap` load, host then path lookup on the borrowed
//!    slices, an endpoint pick.
//! 3. **Fast path** (routes without middlewares, sticky cookies or redirects,
//!    to plain HTTP/1.1 backends). `rewrite.rs` writes the backend's request
//!    head into the connection's reused output buffer: hop-by-hop fields
//!    dropped, X-Forwarded-*, X-Real-Ip and Host set as `forward.rs` does.
//!    The head goes to a backend connection from `upstream::TcpPool` (a
//!    per-thread idle list: no lock), driven by this same task: no channel, no
//!    spawned task. `relay.rs` streams the request body by its framing
//!    (Content-Length counted, chunked validated by `chunked.rs` and passed
//!    through) while it reads the response head into the second reused buffer,
//!    relays 1xx interim responses, writes the final head and the first body
//!    bytes in one `writev`, then streams the body by its framing.
//! 4. **Bridge** (every other route). `bridge.rs` builds `http` types from the
//!    parsed head and runs the same `Proxy::forward` as the hyper engine
//!    (middlewares, hyper's clients for TLS and HTTP/2 backends); the client's
//!    body reaches it through a two-frame channel, and the response, whatever
//!    its body, is written back by `write_response`.
//! 5. **Loop or close.** The backend connection goes back to the pool only
//!    after a complete response to a complete request with nothing extra
//!    read; the client connection stays open when both sides agree.
//!
//! Backpressure comes from the sockets: each relay writes what it read before
//! it reads again, so a slow reader on either side stops the other side's
//! reads. An HTTP/2 preface or an Upgrade request hands the connection, with
//! the bytes already read, to hyper (`rewind.rs`), which also serves ALPN h2.

mod bridge;
mod buffer;
mod chunked;
pub(super) mod client;
mod conn;
mod date;
mod head;
mod prepare;
mod relay;
mod response;
mod rewind;
mod rewrite;
mod timer;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use self::buffer::ReadBuf;
use self::conn::{Connection, Ended, Timers};
use self::rewind::Rewind;
use super::connection::{self, ConnState, Shared};
use super::framing::Guarded;
use super::listener::ConnectionGuard;
use crate::exchange::ClientInfo;

/// The timers and sizes of native connections.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// How long a client may take to send a whole head (also idle keep-alive).
    pub header_read: Duration,
    /// How long a client may go silent in the middle of a request body.
    pub body_read: Duration,
    /// The largest request head.
    pub max_head: usize,
}

/// Largest backend response head accepted (502 beyond).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A client stream the engine can read and write at the same time.
pub(super) trait ClientStream:
    AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static
{
    /// The reading half.
    type Read: AsyncRead + Unpin + Send;
    /// The writing half.
    type Write: AsyncWrite + Unpin + Send;
    /// Splits the stream.
    fn into_halves(self) -> (Self::Read, Self::Write);
    /// Joins the halves again (`None` if they are not one stream's).
    fn from_halves(read: Self::Read, write: Self::Write) -> Option<Self>;
}

impl ClientStream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;

    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }

    fn from_halves(read: Self::Read, write: Self::Write) -> Option<Self> {
        read.reunite(write).ok()
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;

    fn into_halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }

    fn from_halves(read: Self::Read, write: Self::Write) -> Option<Self> {
        read.is_pair_of(&write).then(|| read.unsplit(write))
    }
}

/// Serves one client connection on the native engine until it closes; hands
/// it to hyper if it turns out to be HTTP/2 or asks for an Upgrade.
pub(super) async fn serve<S: ClientStream>(
    shared: Shared,
    stream: S,
    client: ClientInfo,
    guard: ConnectionGuard,
) {
    let (reader, writer) = stream.into_halves();
    let limits = shared.native;
    let mut conn = Connection {
        reader,
        writer,
        inbuf: ReadBuf::new(4096, limits.max_head),
        respbuf: ReadBuf::new(8192, MAX_RESPONSE_HEAD),
        out: Vec::with_capacity(1024),
        client,
        proxy: shared.proxy.clone(),
        limits,
        timers: Timers::default(),
        sent_body: 0,
        trace: None,
    };
    match conn.run(shared.shutdown.clone()).await {
        Ended::Closed => {
            linger(&mut conn).await;
            drop(guard);
        }
        Ended::Handoff => {
            let prefix = Bytes::copy_from_slice(conn.inbuf.data());
            let Some(stream) = S::from_halves(conn.reader, conn.writer) else {
                return;
            };
            let state = Arc::new(ConnState::new(conn.client));
            let io = Guarded::new(Rewind::new(prefix, stream));
            connection::drive(shared, io, state, guard).await;
        }
    }
}

/// Closes our side, then reads and drops what the client still sends for a
/// moment, so that unread bytes do not turn the close into a reset that
/// destroys the last response before the client reads it (nginx's lingering close).
async fn linger<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(conn: &mut Connection<R, W>) {
    if conn.writer.shutdown().await.is_err() {
        return;
    }
    let mut budget: usize = 256 * 1024;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut scratch = [0u8; 4096];
    while budget > 0 {
        match tokio::time::timeout_at(deadline, conn.reader.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => budget = budget.saturating_sub(n),
            _ => return,
        }
    }
}
