//! One client connection's life: serve requests, close it when it never sends a
//! request or sits idle, and drain it gracefully on shutdown.
//!
//! hyper's own header-read timeout only starts once hyper-util has told HTTP/1
//! from HTTP/2, so a client that connects and sends nothing (or a partial HTTP/2
//! preface) would be held forever; and HTTP/2 connections that answer PINGs are
//! never idle to hyper. The driver below closes both.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::listener::{stopped, ConnectionGuard};
use super::{ClientInfo, Proxy};
use crate::body::ClientBody;

/// What the driver knows about a connection's requests.
#[derive(Debug)]
pub(super) struct ConnState {
    /// The client, as the forwarded headers describe it.
    pub client: ClientInfo,
    accepted: Instant,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// Requests whose handler has not returned yet.
    active: AtomicUsize,
    /// Milliseconds after `accepted` when the last handler returned.
    last_done_ms: AtomicU64,
}

impl ConnState {
    pub(super) fn new(client: ClientInfo) -> Self {
        Self {
            client,
            accepted: Instant::now(),
            requests: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self) {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_done_ms.store(ms, Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection should be looked at again, or `None` to close it now.
    fn next_check(&self, limits: &Limits) -> Option<Instant> {
        if self.requests.load(Ordering::Relaxed) == 0 {
            let deadline = self.accepted + limits.first_request;
            return (Instant::now() < deadline).then_some(deadline);
        }
        if self.active.load(Ordering::Relaxed) > 0 {
            return Some(Instant::now() + limits.idle);
        }
        let last = self.accepted + Duration::from_millis(self.last_done_ms.load(Ordering::Relaxed));
        let deadline = last + limits.idle;
        (Instant::now() < deadline).then_some(deadline)
    }
}

/// Marks a request as in flight for as long as it lives.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The timers of the driver.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// How long a new connection may take to start its first request.
    pub first_request: Duration,
    /// How long a connection may sit with no request in flight.
    pub idle: Duration,
    /// How long a client may keep sluice waiting for request body bytes.
    pub body_read: Duration,
}

impl Limits {
    /// The longest the driver sleeps between looks at a connection.
    fn tick(&self) -> Duration {
        self.first_request.min(self.idle) / 2
    }
}

/// What every connection of one listener shares.
#[derive(Clone)]
pub(super) struct Shared {
    pub builder: Arc<auto::Builder<TokioExecutor>>,
    pub proxy: Arc<Proxy>,
    pub limits: Limits,
    pub shutdown: watch::Receiver<bool>,
    /// Which engine serves HTTP/1.1 clients.
    pub engine: super::Http1Engine,
    /// The native engine's timers and sizes.
    pub native: super::native::Limits,
}

/// Serves one accepted connection to completion on its own task.
pub(super) fn spawn<I>(shared: Shared, io: I, state: Arc<ConnState>, guard: ConnectionGuard)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(drive(shared, io, state, guard));
}

/// Serves one connection until it closes, is idle too long, or shutdown drains it.
pub(super) async fn drive<I>(shared: Shared, io: I, state: Arc<ConnState>, guard: ConnectionGuard)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Shared {
        builder,
        proxy,
        limits,
        mut shutdown,
        ..
    } = shared;
    {
        let _guard = guard;
        let service_state = state.clone();
        let body_read = limits.body_read;
        let service = service_fn(move |req: Request<Incoming>| {
            let proxy = proxy.clone();
            let state = service_state.clone();
            state.begin();
            // Boxed: hyper moves the service future into a new task per HTTP/2
            // stream, and the whole request path's future is several KB; a
            // pointer is cheaper to move than that is to copy.
            Box::pin(async move {
                let in_flight = InFlight(state);
                let req = req.map(|body| ClientBody::new(body, body_read));
                let resp = proxy.handle(req, &in_flight.0.client).await;
                drop(in_flight);
                Ok::<_, Infallible>(resp)
            })
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let mut conn = pin!(conn);
        loop {
            let Some(check_at) = state.next_check(&limits) else {
                if state.requests.load(Ordering::Relaxed) == 0 {
                    // Never sent a request: nothing to drain, just close.
                    tracing::debug!(remote = %state.client.remote, "no request in time; closing");
                    return;
                }
                conn.as_mut().graceful_shutdown();
                break;
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(remote = %state.client.remote, error = %e, "client connection ended with an error");
                    }
                    return;
                }
                _ = stopped(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    break;
                }
                // Requests starting and ending move the deadline, so look again
                // at least twice per limit.
                _ = tokio::time::sleep_until(check_at.min(Instant::now() + limits.tick())) => {}
            }
        }
        // Draining: in-flight requests finish, then the connection closes.
        if let Err(e) = conn.await {
            tracing::debug!(remote = %state.client.remote, error = %e, "client connection ended with an error");
        }
    }
}
