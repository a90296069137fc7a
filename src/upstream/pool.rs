//! The upstream HTTP client: pooled keep-alive connections per endpoint, with timeouts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::oneshot;
use tower_service::Service;

use super::body::UpstreamBody;

/// Timeouts and pool limits for connections to backends.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// How long a TCP connect may take before the request fails with 502.
    pub connect_timeout: Duration,
    /// How long to wait for the response head once the request is sent (504 after).
    pub response_header_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    /// How many idle connections are kept per endpoint.
    pub max_idle_per_endpoint: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_header_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_endpoint: 1024,
        }
    }
}

/// Counters that show how well the pool reuses connections.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// TCP connections opened to backends.
    pub connections_opened: AtomicU64,
    /// Requests sent to backends.
    pub requests: AtomicU64,
}

/// Why a request to a backend failed; each maps to one status code.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be made (refused, unreachable, connect timeout): 502.
    #[error("connecting to the backend failed: {0}")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// The backend did not answer with a response head in time: 504.
    #[error("the backend did not answer within {0:?}")]
    Timeout(Duration),
    /// The backend closed the connection or answered something that is not HTTP: 502.
    #[error("the backend's answer was not valid HTTP: {0}")]
    Protocol(#[source] hyper_util::client::legacy::Error),
}

/// The client that forwards requests to backends; cheap to clone, shared by all requests.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<CountingConnector, UpstreamBody>,
    stats: Arc<PoolStats>,
    response_header_timeout: Duration,
}

impl UpstreamClient {
    /// A client with its own pool, using `settings`.
    pub fn new(settings: &PoolSettings) -> Self {
        let stats = Arc::new(PoolStats::default());
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let connector = CountingConnector {
            inner: http,
            stats: stats.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(settings.idle_timeout)
            .pool_max_idle_per_host(settings.max_idle_per_endpoint)
            .build(connector);
        Self {
            client,
            stats,
            response_header_timeout: settings.response_header_timeout,
        }
    }

    /// The pool's reuse counters.
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }

    /// Sends `req` (absolute URI naming the endpoint) and waits for the response head.
    ///
    /// The response-header timeout counts from the moment the request body has
    /// been sent whole, so a slow multi-GB upload is not cut off.
    pub async fn send(&self, req: Request<Incoming>) -> Result<Response<Incoming>, UpstreamError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let timeout = self.response_header_timeout;
        if req.body().is_end_stream() {
            let sent = self.client.request(req.map(|b| UpstreamBody::new(b, None)));
            return match tokio::time::timeout(timeout, sent).await {
                Err(_) => Err(UpstreamError::Timeout(timeout)),
                Ok(result) => classify(result),
            };
        }
        let (sent_tx, sent_rx) = oneshot::channel();
        let sent = self
            .client
            .request(req.map(|b| UpstreamBody::new(b, Some(sent_tx))));
        let deadline = async move {
            // Dropped without firing (the body was abandoned) also starts the clock.
            let _ = sent_rx.await;
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            result = sent => classify(result),
            () = deadline => Err(UpstreamError::Timeout(timeout)),
        }
    }
}

fn classify(
    result: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
) -> Result<Response<Incoming>, UpstreamError> {
    match result {
        Ok(resp) => Ok(resp),
        Err(e) if e.is_connect() => Err(UpstreamError::Connect(e)),
        Err(e) => Err(UpstreamError::Protocol(e)),
    }
}

/// Wraps the TCP connector to count new connections (the pool's reuse ratio).
#[derive(Clone, Debug)]
struct CountingConnector {
    inner: HttpConnector,
    stats: Arc<PoolStats>,
}

impl Service<Uri> for CountingConnector {
    type Response = <HttpConnector as Service<Uri>>::Response;
    type Error = <HttpConnector as Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // Boxing here costs one allocation per new connection, not per request.
        let stats = self.stats.clone();
        let connecting = self.inner.call(dst);
        Box::pin(async move {
            let conn = connecting.await?;
            stats.connections_opened.fetch_add(1, Ordering::Relaxed);
            Ok(conn)
        })
    }
}
