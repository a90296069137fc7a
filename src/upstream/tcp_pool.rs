//! A per-thread pool of idle keep-alive TCP connections to plain-HTTP/1.1
//! endpoints, for the native HTTP/1.1 engine (`proxy/native/`), which drives a
//! backend connection itself inside the client connection's task.
//!
//! Checking a connection out takes no lock and allocates nothing: the idle
//! lists live in a thread-local map keyed by the endpoint address (each
//! data-plane worker has its own runtime, so a socket never leaves the reactor
//! it was registered with). A connection is handed back only by its user, and
//! only after a complete response to a complete request. On checkout, a
//! connection the backend closed (or wrote to) while idle is noticed through the
//! reactor's readiness, without a system call in the common case, and dropped.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use rustc_hash::FxHashMap;
use tokio::net::TcpStream;

use super::pool::{PoolSettings, PoolStats, UpstreamError};

struct Idle {
    stream: TcpStream,
    since: Instant,
}

thread_local! {
    static IDLE: RefCell<FxHashMap<SocketAddr, VecDeque<Idle>>> = RefCell::new(FxHashMap::default());
}

/// The pool's settings and counters; the idle connections themselves live per thread.
#[derive(Debug, Clone)]
pub struct TcpPool {
    settings: PoolSettings,
    stats: Arc<PoolStats>,
}

impl TcpPool {
    pub(super) fn new(settings: PoolSettings, stats: Arc<PoolStats>) -> Self {
        Self { settings, stats }
    }

    /// The timeouts and limits this pool applies.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Counts one request sent to a backend (the reuse ratio on `/metrics`).
    pub fn count_request(&self) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// An idle connection to `endpoint` that is still open, if there is one.
    pub fn checkout(&self, endpoint: SocketAddr) -> Option<TcpStream> {
        loop {
            let idle = IDLE.with(|idle| {
                idle.borrow_mut()
                    .get_mut(&endpoint)
                    .and_then(VecDeque::pop_back)
            })?;
            if idle.since.elapsed() < self.settings.idle_timeout && still_open(&idle.stream) {
                return Some(idle.stream);
            }
        }
    }

    /// A new connection to `endpoint`, within the connect timeout.
    pub async fn connect(&self, endpoint: SocketAddr) -> Result<TcpStream, UpstreamError> {
        let timeout = self.settings.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(UpstreamError::ConnectIo(e)),
            Err(_) => return Err(UpstreamError::ConnectTimeout(timeout)),
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%endpoint, error = %e, "set_nodelay failed");
        }
        self.stats
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }

    /// Hands back a connection whose last exchange ended cleanly.
    pub fn put_back(&self, endpoint: SocketAddr, stream: TcpStream) {
        let now = Instant::now();
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle.entry(endpoint).or_default();
            if list.len() >= self.settings.max_idle_per_endpoint {
                // Make room by dropping the oldest (least likely to still be open).
                list.pop_front();
            }
            list.push_back(Idle { stream, since: now });
        });
    }
}

/// Whether an idle connection is still usable: the backend has neither closed
/// it nor sent anything unasked. The reactor marks the socket readable when
/// either happens; otherwise this costs no system call.
fn still_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}
