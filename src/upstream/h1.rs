//! A per-thread pool of HTTP/1.1 connections to plain-HTTP endpoints.
//!
//! The request path checks a connection out of a thread-local map keyed by the
//! endpoint address (no lock, no key allocation) and the response body puts it
//! back when it has been read to the end, on whichever thread that happens. A
//! connection is reused only when hyper says it is ready; one that the backend
//! closed is dropped on checkout. A request that never reached a reused
//! connection (closed under us) is retried once on a fresh one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;

use super::body::UpstreamBody;
use super::pool::{PoolSettings, PoolStats, UpstreamError};

type Sender = SendRequest<UpstreamBody>;

struct Idle {
    sender: Sender,
    since: Instant,
}

thread_local! {
    static IDLE: RefCell<FxHashMap<SocketAddr, VecDeque<Idle>>> = RefCell::new(FxHashMap::default());
}

/// Where a connection goes back to when its response has been read.
#[derive(Debug)]
struct Return {
    endpoint: SocketAddr,
    sender: Sender,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Return {
    fn put_back(self) {
        if self.sender.is_closed() {
            return;
        }
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle.entry(self.endpoint).or_default();
            let now = Instant::now();
            // The list is oldest first: drop expired or closed connections
            // from the front only, so a put-back costs O(1) however many
            // connections sit idle (checkout skips any others).
            let stale = list
                .iter()
                .take_while(|c| {
                    c.sender.is_closed() || now.duration_since(c.since) >= self.idle_timeout
                })
                .count();
            list.drain(..stale);
            if list.len() >= self.max_idle {
                // Make room by dropping the oldest (least likely to still be open).
                list.pop_front();
            }
            list.push_back(Idle {
                sender: self.sender,
                since: now,
            });
        });
    }
}

/// The pool's settings and counters; the connections themselves live per thread.
#[derive(Debug, Clone)]
pub(super) struct H1Pool {
    settings: PoolSettings,
    stats: Arc<PoolStats>,
}

impl H1Pool {
    pub(super) fn new(settings: PoolSettings, stats: Arc<PoolStats>) -> Self {
        Self { settings, stats }
    }

    /// Sends `req` (origin-form target) to `endpoint` over a pooled connection.
    pub(super) async fn send(
        &self,
        endpoint: SocketAddr,
        req: Request<UpstreamBody>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let req = match self.checkout(endpoint).await {
            Some(mut sender) => match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(endpoint, sender, resp)),
                Err(mut e) => match e.take_message() {
                    // Never written: the backend closed an idle connection. Retry fresh.
                    Some(req) => req,
                    None => return Err(UpstreamError::Backend(e.into_error())),
                },
            },
            None => req,
        };
        // Boxed: connecting is rare, and its future would otherwise make every
        // request's future (moved on each poll setup) much larger.
        let mut sender = Box::pin(self.connect(endpoint)).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Backend)?;
        Ok(self.wrap(endpoint, sender, resp))
    }

    async fn checkout(&self, endpoint: SocketAddr) -> Option<Sender> {
        loop {
            let candidate = IDLE.with(|idle| {
                idle.borrow_mut()
                    .get_mut(&endpoint)
                    .and_then(VecDeque::pop_back)
            })?;
            if candidate.sender.is_closed()
                || candidate.since.elapsed() >= self.settings.idle_timeout
            {
                continue;
            }
            let mut sender = candidate.sender;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<Sender, UpstreamError> {
        let connecting = tokio::net::TcpStream::connect(endpoint);
        let stream = match tokio::time::timeout(self.settings.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(UpstreamError::ConnectIo(e)),
            Err(_) => return Err(UpstreamError::ConnectTimeout(self.settings.connect_timeout)),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Backend)?;
        self.stats
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%endpoint, error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn wrap(
        &self,
        endpoint: SocketAddr,
        sender: Sender,
        resp: Response<Incoming>,
    ) -> Response<PooledBody> {
        let back = Return {
            endpoint,
            sender,
            max_idle: self.settings.max_idle_per_endpoint,
            idle_timeout: self.settings.idle_timeout,
        };
        // A 101 hands the connection over to the upgrade: it never comes back.
        let back = (resp.status() != http::StatusCode::SWITCHING_PROTOCOLS).then_some(back);
        resp.map(|body| PooledBody::new(body, back))
    }
}

pin_project_lite::pin_project! {
    /// A backend's response body; returns its connection to the pool once read whole.
    #[derive(Debug)]
    pub struct PooledBody {
        #[pin]
        inner: Incoming,
        back: Option<Return>,
    }
}

impl PooledBody {
    fn new(inner: Incoming, back: Option<Return>) -> Self {
        let mut body = Self { inner, back };
        if body.inner.is_end_stream() {
            if let Some(back) = body.back.take() {
                back.put_back();
            }
        }
        body
    }

    /// A body that belongs to no pool.
    pub(super) fn unpooled(inner: Incoming) -> Self {
        Self { inner, back: None }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            // hyper may stop polling once a sized body is complete, so the end is
            // also checked after each frame.
            Poll::Ready(None) => {
                if let Some(back) = this.back.take() {
                    back.put_back();
                }
            }
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                if let Some(back) = this.back.take() {
                    back.put_back();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.back.take();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
