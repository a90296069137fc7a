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
use super::h1::{H1Pool, PooledBody};
use super::tcp_pool::TcpPool;
use crate::body::RequestBody;
use std::net::SocketAddr;

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
    /// The TCP connection to the backend could not be made: 502.
    #[error("connecting to the backend failed: {0}")]
    ConnectIo(#[source] std::io::Error),
    /// The request target cannot be sent to the backend: 502.
    #[error("the request target cannot be forwarded: {0}")]
    Target(String),
    /// The TCP connect took longer than the connect timeout: 502.
    #[error("connecting to the backend took longer than {0:?}")]
    ConnectTimeout(Duration),
    /// The backend closed the connection or answered something that is not HTTP: 502.
    #[error("the backend failed: {0}")]
    Backend(#[source] hyper::Error),
    /// The native engine's backend connection failed (reset, closed early): 502.
    #[error("the backend connection failed: {0}")]
    Io(#[source] std::io::Error),
    /// The backend's answer is not valid HTTP/1.1 (native engine): 502.
    #[error("the backend's answer was not valid HTTP/1.1: {0}")]
    InvalidResponse(&'static str),
}

impl UpstreamError {
    /// Whether the request certainly never reached the backend (no connection
    /// was made), so sending it again elsewhere cannot repeat its effects.
    pub fn never_sent(&self) -> bool {
        match self {
            Self::ConnectIo(_) | Self::ConnectTimeout(_) | Self::Target(_) => true,
            Self::Connect(e) => e.is_connect(),
            Self::Timeout(_)
            | Self::Protocol(_)
            | Self::Backend(_)
            | Self::Io(_)
            | Self::InvalidResponse(_) => false,
        }
    }
}

/// How a backend is spoken to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    /// HTTP/1.1 over TCP (the default).
    Http,
    /// HTTP/1.1 over TLS (`serversscheme: https`, `backend-protocol: HTTPS`).
    Https,
    /// HTTP/2 over TLS (`backend-protocol: GRPCS`).
    H2,
    /// HTTP/2 cleartext, prior knowledge (`serversscheme: h2c`, `backend-protocol: GRPC|H2C`).
    H2c,
}

/// The TLS side of an HTTPS backend client.
#[derive(Debug, Clone)]
pub struct BackendTls {
    /// The rustls client configuration (verifying or not).
    pub config: rustls::ClientConfig,
    /// The name to verify the backend certificate against, when verifying.
    pub server_name: Option<String>,
}

type HttpClient = Client<CountingConnector, UpstreamBody>;
type HttpsClient = Client<hyper_rustls::HttpsConnector<CountingConnector>, UpstreamBody>;

#[derive(Clone, Debug)]
enum Transport {
    /// Plain HTTP/1.1: our own per-thread pools (hyper connections for the
    /// hyper engine and middlewares, raw sockets for the native engine).
    Pooled(H1Pool, TcpPool),
    /// HTTP/2 cleartext: hyper-util's pooled client.
    Plain(HttpClient),
    /// TLS to the backend: hyper-util's pooled client over hyper-rustls.
    Tls(HttpsClient),
}

/// A client that forwards requests to backends of one protocol; cheap to clone,
/// shared by every route that uses the same protocol and TLS settings.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    transport: Transport,
    protocol: BackendProtocol,
    stats: Arc<PoolStats>,
    response_header_timeout: Duration,
}

impl UpstreamClient {
    /// A plain HTTP/1.1 client with its own pool, using `settings`.
    pub fn new(settings: &PoolSettings) -> Self {
        Self::with_protocol(settings, BackendProtocol::Http, None)
    }

    /// A client for `protocol`; `tls` is required for the TLS protocols (an
    /// insecure default is used when it is missing).
    pub fn with_protocol(
        settings: &PoolSettings,
        protocol: BackendProtocol,
        tls: Option<BackendTls>,
    ) -> Self {
        let stats = Arc::new(PoolStats::default());
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.enforce_http(false);
        let connector = CountingConnector {
            inner: http,
            stats: stats.clone(),
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(settings.idle_timeout)
            .pool_max_idle_per_host(settings.max_idle_per_endpoint);
        let transport = match protocol {
            BackendProtocol::Http => Transport::Pooled(
                H1Pool::new(settings.clone(), stats.clone()),
                TcpPool::new(settings.clone(), stats.clone()),
            ),
            BackendProtocol::H2c => Transport::Plain(builder.http2_only(true).build(connector)),
            BackendProtocol::Https | BackendProtocol::H2 => {
                let tls = tls.unwrap_or_else(|| BackendTls {
                    config: crate::tls::insecure_client_config(&[]),
                    server_name: None,
                });
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls.config)
                    .https_only();
                let https = match tls.server_name.map(rustls::pki_types::ServerName::try_from) {
                    Some(Ok(name)) => https.with_server_name_resolver(
                        hyper_rustls::FixedServerNameResolver::new(name),
                    ),
                    // A name that cannot be a server name never matches a certificate.
                    Some(Err(_)) | None => https,
                };
                if protocol == BackendProtocol::H2 {
                    Transport::Tls(
                        builder
                            .http2_only(true)
                            .build(https.enable_http2().wrap_connector(connector)),
                    )
                } else {
                    Transport::Tls(builder.build(https.enable_http1().wrap_connector(connector)))
                }
            }
        };
        Self {
            transport,
            protocol,
            stats,
            response_header_timeout: settings.response_header_timeout,
        }
    }

    /// `http` or `https`, as the access log writes it.
    pub fn scheme_str(&self) -> &'static str {
        match self.protocol {
            BackendProtocol::Http | BackendProtocol::H2c => "http",
            BackendProtocol::Https | BackendProtocol::H2 => "https",
        }
    }

    /// The URI scheme requests to this client's backends use.
    pub fn scheme(&self) -> http::uri::Scheme {
        match self.protocol {
            BackendProtocol::Http | BackendProtocol::H2c => http::uri::Scheme::HTTP,
            BackendProtocol::Https | BackendProtocol::H2 => http::uri::Scheme::HTTPS,
        }
    }

    /// The HTTP version requests to this client's backends are sent as.
    pub fn version(&self) -> http::Version {
        match self.protocol {
            BackendProtocol::H2c | BackendProtocol::H2 => http::Version::HTTP_2,
            BackendProtocol::Http | BackendProtocol::Https => http::Version::HTTP_11,
        }
    }

    /// The protocol this client speaks.
    pub fn protocol(&self) -> &BackendProtocol {
        &self.protocol
    }

    async fn dispatch(
        &self,
        endpoint: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let legacy = match &self.transport {
            Transport::Pooled(pool, _) => {
                if req.uri().authority().is_some() {
                    // HTTP/1.1 to an origin server takes the origin form (RFC 9112 §3.2.1).
                    let target = req.uri().path_and_query().cloned();
                    *req.uri_mut() = target.map_or_else(|| Uri::from_static("/"), Uri::from);
                }
                return pool.send(endpoint, req).await;
            }
            Transport::Plain(client) => {
                *req.uri_mut() = absolute(self.scheme(), endpoint, req.uri())?;
                client.request(req)
            }
            Transport::Tls(client) => {
                *req.uri_mut() = absolute(self.scheme(), endpoint, req.uri())?;
                client.request(req)
            }
        };
        classify(legacy.await).map(|resp| resp.map(PooledBody::unpooled))
    }

    /// The raw-socket pool the native HTTP/1.1 engine forwards over, for a
    /// plain HTTP/1.1 backend; other protocols go through hyper.
    pub fn tcp_pool(&self) -> Option<&TcpPool> {
        match &self.transport {
            Transport::Pooled(_, tcp) => Some(tcp),
            Transport::Plain(_) | Transport::Tls(_) => None,
        }
    }

    /// The pool's reuse counters.
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }

    /// Sends `req` to `endpoint` and waits for the response head.
    ///
    /// The response-header timeout counts from the moment the request body has
    /// been sent whole, so a slow multi-GB upload is not cut off.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        req: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let timeout = self.response_header_timeout;
        if req.body().is_end_stream() {
            let sent = self.dispatch(endpoint, req.map(|b| UpstreamBody::new(b, None)));
            return match tokio::time::timeout(timeout, sent).await {
                Err(_) => Err(UpstreamError::Timeout(timeout)),
                Ok(result) => result,
            };
        }
        let (sent_tx, sent_rx) = oneshot::channel();
        let sent = self.dispatch(endpoint, req.map(|b| UpstreamBody::new(b, Some(sent_tx))));
        let deadline = async move {
            // Dropped without firing (the body was abandoned) also starts the clock.
            let _ = sent_rx.await;
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            result = sent => result,
            () = deadline => Err(UpstreamError::Timeout(timeout)),
        }
    }
}

/// The absolute URI hyper-util's client needs: scheme, the endpoint, the target as sent.
fn absolute(
    scheme: http::uri::Scheme,
    endpoint: SocketAddr,
    uri: &Uri,
) -> Result<Uri, UpstreamError> {
    let target = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme(scheme)
        .authority(endpoint.to_string())
        .path_and_query(target)
        .build()
        .map_err(|e| UpstreamError::Target(e.to_string()))
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
