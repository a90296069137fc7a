//! The data plane: accept, route, forward.
//!
//! [`Proxy::handle`] is the whole request path: one atomic load of the routing
//! table, host then path lookup, an endpoint pick, header rewriting in place and
//! a streamed forward over the pooled client. Nothing on it locks.

/// Implements `AsyncWrite` for a `pin_project` wrapper `$wrapper<T>` whose
/// `inner` field does the writing (the wrappers only change what is read).
macro_rules! delegate_async_write {
    ($wrapper:ident) => {
        impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for $wrapper<T> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                data: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.project().inner.poll_write(cx, data)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.project().inner.poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.project().inner.poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.project().inner.poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

mod access;
mod connection;
mod forward;
mod framing;
mod listener;
mod native;
mod redirect;
pub mod request;

pub use crate::exchange::{ClientInfo, ProxyError};
pub(crate) use listener::stopped;
pub use listener::{
    serve, ConnectionSettings, HandshakeStats, Http1Engine, OpenConnections, TlsEntry,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{HeaderValue, HOST};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;

use crate::accesslog::AccessLog;
use crate::body::{ClientBody, ClientBodyError, RequestBody, ResponseBody};
use crate::exchange::BadRequest;
use crate::metrics::RouteStats;
use crate::middleware::{BoxFuture, Chain, Failure, Next, Outcome, RequestContext, Terminal};
use crate::router::{EntryPoint, Route, RouteTable, Target};
use crate::telemetry::{RequestFacts, ServerSpan, TraceParent, Tracing};
use crate::upstream::hash_key::Peer;
use crate::upstream::{UpstreamClient, UpstreamError};

/// The body of every response the proxy sends.
pub type ProxyBody = ResponseBody;

/// The request handler shared by every connection of every listener.
#[derive(Debug)]
pub struct Proxy {
    table: Arc<ArcSwap<RouteTable>>,
    unmatched: Arc<RouteStats>,
    /// The port HTTPS redirects point at (omitted from the URL when 443).
    https_port: u16,
    /// The access log, when one is on.
    access_log: Option<Arc<AccessLog>>,
    /// OpenTelemetry tracing, when on.
    tracing: Option<Arc<Tracing>>,
}

/// The endpoint that served a response (kept in its extensions only while an
/// access log is on).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServedBy(pub(crate) std::net::SocketAddr, pub(crate) Instant);

impl Proxy {
    /// A handler that routes with the table published in `table`; redirects to
    /// HTTPS point at `https_port`.
    pub fn new(
        table: Arc<ArcSwap<RouteTable>>,
        unmatched: Arc<RouteStats>,
        https_port: u16,
        access_log: Option<Arc<AccessLog>>,
        tracing: Option<Arc<Tracing>>,
    ) -> Self {
        Self {
            table,
            unmatched,
            https_port,
            access_log,
            tracing,
        }
    }

    /// The tracer, when tracing is on.
    pub(crate) fn tracing(&self) -> Option<&Arc<Tracing>> {
        self.tracing.as_ref()
    }

    /// The access log, when one is on.
    pub(crate) fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_deref()
    }

    /// Answers one request: routes it, forwards it, and counts it.
    pub async fn handle(
        &self,
        req: Request<ClientBody>,
        client: &ClientInfo,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let method = req.method().clone();
        let log = self.access_log().map(|log| capture_request(log, &req));
        let mut span = self.tracing.as_ref().map(|t| server_span(t, &req, client));
        let (route, result) = self.route_and_forward(req, client, span.as_mut()).await;
        let response = match result {
            Ok(resp) => resp,
            Err(err) => {
                let err = blame_client_body(err);
                log_error(&err, route.as_deref(), client);
                err.into_response()
            }
        };
        let stats = route.as_ref().map_or(&self.unmatched, |r| &r.stats);
        stats.record(
            client.tls,
            &method,
            response.status().as_u16(),
            start.elapsed(),
        );
        let trace_id = span.as_ref().map(ServerSpan::trace_id);
        if let Some(span) = span {
            span.finish(response.status().as_u16());
        }
        if let (Some(access), Some(request)) = (&self.access_log, log) {
            let server = response.extensions().get::<ServedBy>().map(|s| (s.0, s.1));
            let line = access::PendingLine {
                log: access.clone(),
                request,
                client: client.clone(),
                route: route.clone(),
                status: response.status().as_u16(),
                server,
                user: response
                    .extensions()
                    .get::<crate::exchange::AuthenticatedUser>()
                    .map(|u| u.0.clone()),
                trace_id,
            };
            let (parts, body) = response.into_parts();
            let body = ResponseBody::boxed(access::LoggedBody::new(body, line));
            return Response::from_parts(parts, body);
        }
        response
    }

    async fn route_and_forward(
        &self,
        req: Request<ClientBody>,
        client: &ClientInfo,
        span: Option<&mut ServerSpan>,
    ) -> (Option<Arc<Route>>, Result<Response<ProxyBody>, ProxyError>) {
        if let Err(bad) = request::check(&req) {
            return (None, Err(bad.into()));
        }
        let (mut parts, body) = req.into_parts();
        let host = host_value(&parts);
        if let Some(target) = normalized_target(&parts) {
            match target.parse() {
                Ok(pq) => parts.uri = with_path(&parts.uri, pq),
                Err(_) => return (None, Err(ProxyError::BadTarget)),
            }
        }
        let host_str = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
        let path = request::match_path(parts.uri.path());
        // One atomic load; the guard is dropped before any await.
        let entrypoint = if client.tls {
            EntryPoint::WebSecure
        } else {
            EntryPoint::Web
        };
        let table = self.table.load();
        if misdirected(&table, client, host_str) {
            return (None, Err(ProxyError::Misdirected));
        }
        let route = table
            .lookup_request(entrypoint, host_str, &path, &parts)
            .cloned();
        drop(table);
        let Some(route) = route else {
            return (None, Err(ProxyError::NoRoute));
        };
        if let Some(span) = span {
            span.routed(&route);
            parts.extensions.insert(span.parent());
        }
        let body = RequestBody::Incoming(body);
        let result = self.forward(&route, parts, body, host, client).await;
        (Some(route), result)
    }

    /// Forwards a routed request (through its middlewares, if any); both
    /// engines end here for every route the native fast path does not serve.
    async fn forward(
        &self,
        route: &Arc<Route>,
        mut parts: Parts,
        body: RequestBody,
        host: Option<HeaderValue>,
        client: &ClientInfo,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if route.redirect_https && !client.tls {
            return Ok(redirect::to_https(
                &parts,
                host.as_ref(),
                self.https_port,
                route.redirect_keeps_trailing_slash,
            ));
        }
        prepare_headers(&mut parts, host.as_ref(), client);
        let req = Request::from_parts(parts, body);
        match &route.middlewares {
            // No middlewares: straight to the backend, no boxing, no context.
            Chain::Empty => to_backend(route, req, client).await.map_err(|f| f.error),
            Chain::Broken { reason, .. } => Err(ProxyError::MiddlewareUnavailable(reason.clone())),
            Chain::Ready { steps, .. } => {
                let cx = RequestContext {
                    client: client.clone(),
                    route: route.clone(),
                };
                Next::new(steps, &Backend)
                    .run(req, &cx)
                    .await
                    .map_err(|f| f.error)
            }
        }
    }
}

/// The end of every middleware chain: the route's backend.
struct Backend;

impl Terminal for Backend {
    fn forward<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(to_backend(&cx.route, req, &cx.client))
    }
}

/// Sends a prepared request to one of the route's endpoints and relays the
/// answer (tunnelling an accepted Upgrade). The endpoint: the one a sticky
/// cookie names if it is still there, else the route's balancing policy's
/// pick (round-robin without one).
async fn to_backend(route: &Route, mut req: Request<RequestBody>, client: &ClientInfo) -> Outcome {
    let backend = match &route.target {
        Target::Backend(backend) => backend,
        Target::Unavailable { status, reason } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Err(ProxyError::Unavailable(reason.clone(), status).into());
        }
    };
    let pinned = route
        .sticky
        .as_deref()
        .and_then(|sticky| sticky.wanted(req.headers()))
        .and_then(|id| backend.pick_sticky(id));
    let endpoint = pinned
        .or_else(|| match route.balance.as_deref() {
            None => backend.pick(),
            Some(balance) => {
                let peer = Peer {
                    remote: client.remote,
                    tls: client.tls,
                };
                balance.pick(&req, peer)
            }
        })
        .ok_or(Failure::from(ProxyError::NoEndpoints))?;
    if !route.pass_host_header {
        forward::set_host_to_endpoint(req.headers_mut(), endpoint);
    }
    let client_upgrade = req.extensions_mut().remove::<OnUpgrade>();
    let asked = Instant::now();
    let method = req.method().clone();
    let span = req.extensions().get::<Arc<TraceParent>>().map(|parent| {
        let target = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
        parent.client(method.as_str(), endpoint, target)
    });
    if let Some(span) = &span {
        span.inject(req.headers_mut());
    }
    let sent = send_to(&route.client, endpoint, req, client_upgrade).await;
    let elapsed = asked.elapsed();
    if let Some(balance) = route.balance.as_deref() {
        balance.observe(endpoint, elapsed);
    }
    let (mut resp, tunnelled) = match sent {
        Ok(sent) => sent,
        Err(e) => {
            tracing::warn!(route = %route.name, %endpoint, error = %e, "forwarding failed");
            if let Some(span) = span {
                span.finish(Err(&e));
            }
            let error = ProxyError::from(e);
            backend.record_endpoint(endpoint, &method, error.status().as_u16(), elapsed);
            return Err(error.into());
        }
    };
    backend.record_endpoint(endpoint, &method, resp.status().as_u16(), elapsed);
    if let Some(span) = span {
        span.finish(Ok(resp.status().as_u16()));
    }
    if tunnelled {
        return Ok(resp);
    }
    forward::strip_hop_by_hop(resp.headers_mut());
    if crate::accesslog::enabled() {
        resp.extensions_mut().insert(ServedBy(endpoint, asked));
    }
    if let (Some(sticky), None) = (route.sticky.as_deref(), pinned) {
        if let Some(cookie) = sticky.set_cookie(endpoint) {
            resp.headers_mut().append(http::header::SET_COOKIE, cookie);
        }
    }
    Ok(resp)
}

/// Sends `req` to `endpoint` over the route's client and, for an accepted
/// Upgrade, starts the tunnel (the bool says so: the response's Upgrade
/// headers must then stay).
async fn send_to(
    upstream: &UpstreamClient,
    endpoint: SocketAddr,
    mut req: Request<RequestBody>,
    client_upgrade: Option<OnUpgrade>,
) -> Result<(Response<ProxyBody>, bool), UpstreamError> {
    match upstream.tcp_pool() {
        // Plain HTTP/1.1 backend, nothing to stream up, nothing to tunnel:
        // the native client, without hyper's connection task.
        Some(pool) if client_upgrade.is_none() && native::client::can_send(&req) => {
            let resp = native::client::send(pool, endpoint, &req).await?;
            Ok((resp, false))
        }
        _ => {
            *req.version_mut() = upstream.version();
            if req.version() == http::Version::HTTP_11 {
                forward::frame_unsized_body(&mut req);
            }
            let mut resp = upstream.send(endpoint, req).await?;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                if let Some(client_upgrade) = client_upgrade {
                    let backend_upgrade = hyper::upgrade::on(&mut resp);
                    tokio::spawn(forward::tunnel(client_upgrade, backend_upgrade));
                    return Ok((resp.map(ResponseBody::Upstream), true));
                }
            }
            Ok((resp.map(ResponseBody::Upstream), false))
        }
    }
}

/// The request target (path and query as sent) and the authority the client
/// addressed (`:authority` or absolute target, else Host), as logs and spans show them.
fn target_and_authority(req: &Request<ClientBody>) -> (&str, &str) {
    let target = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let authority = req
        .uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    (target, authority)
}

/// Starts the server span of a request read by hyper.
fn server_span(
    tracing: &Arc<Tracing>,
    req: &Request<ClientBody>,
    client: &ClientInfo,
) -> ServerSpan {
    let (target, host) = target_and_authority(req);
    let protocol = match req.version() {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    let facts = RequestFacts {
        method: req.method().as_str(),
        target,
        host,
        tls: client.tls,
        protocol,
        client: client.remote,
        user_agent: None,
        traceparent: None,
        tracestate: None,
        start: std::time::SystemTime::now(),
    }
    .with_headers(
        req.headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    );
    tracing.server(&facts)
}

/// What the access log keeps of a request read by hyper.
fn capture_request(log: &AccessLog, req: &Request<ClientBody>) -> Box<access::RequestLog> {
    let (target, authority) = target_and_authority(req);
    let protocol = match req.version() {
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let size = content_length(req.headers()).unwrap_or(0);
    access::RequestLog::capture(
        log,
        req.method().as_str(),
        target,
        authority,
        protocol,
        size,
        req.headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    )
}

/// The Content-Length a message announces, if valid.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A forwarding failure caused by the client's own body (malformed, or not
/// sent in time) is the client's error: 400 or 408 with the connection
/// closed, not a 502 blamed on the backend.
fn blame_client_body(err: ProxyError) -> ProxyError {
    let ProxyError::Upstream(upstream) = &err else {
        return err;
    };
    match ClientBodyError::behind(upstream) {
        Some(ClientBodyError::Timeout(_)) => BadRequest::BodyTimeout.into(),
        Some(ClientBodyError::Broken(_)) => BadRequest::Malformed.into(),
        None => err,
    }
}

/// Rewrites the request headers for the backend. The client's side of an
/// Upgrade stays in the extensions only when the request asks for one that may
/// be tunnelled.
fn prepare_headers(parts: &mut Parts, host: Option<&HeaderValue>, client: &ClientInfo) {
    let upgrade = forward::strip_hop_by_hop(&mut parts.headers)
        // `Upgrade: h2c` through a proxy is the h2c-smuggling pattern: never tunnel it.
        .filter(|protocol| !protocol.as_bytes().eq_ignore_ascii_case(b"h2c"));
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<OnUpgrade>());
    if let (Some(protocol), Some(on_upgrade)) = (upgrade, client_upgrade) {
        forward::restore_upgrade(&mut parts.headers, protocol);
        parts.extensions.insert(on_upgrade);
    }
    forward::set_forwarded(&mut parts.headers, client, host);
    if let Some(host) = host {
        forward::set_host_header(&mut parts.headers, host);
    }
    if parts.version == http::Version::HTTP_2 {
        forward::join_cookies(&mut parts.headers);
    }
}

/// The authority the client addressed: `:authority` / absolute target, else Host.
fn host_value(parts: &Parts) -> Option<HeaderValue> {
    match parts.uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => parts.headers.get(HOST).cloned(),
    }
}

/// The request target with dot-segments removed, when it had any.
fn normalized_target(parts: &Parts) -> Option<String> {
    let path = parts.uri.path();
    match request::normalize_path(path) {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(mut normalized) => {
            if let Some(query) = parts.uri.query() {
                normalized.push('?');
                normalized.push_str(query);
            }
            Some(normalized)
        }
    }
}

fn with_path(uri: &http::Uri, pq: PathAndQuery) -> http::Uri {
    let mut uri_parts = uri.clone().into_parts();
    uri_parts.path_and_query = Some(pq);
    http::Uri::from_parts(uri_parts).unwrap_or_else(|_| uri.clone())
}

/// Whether an HTTP/2 request over TLS names a host (`:authority`) that the
/// certificate index serves with another certificate than the one the
/// connection's handshake got: the client reused a connection it should not
/// have, and gets 421 (RFC 9110 §15.5.20) so it opens one for that host.
fn misdirected(table: &RouteTable, client: &ClientInfo, host: &str) -> bool {
    let (Some(sni), Some(served)) = (&client.server_name, &client.served_cert) else {
        return false;
    };
    let name = crate::router::strip_port(host);
    if name.is_empty() || name.eq_ignore_ascii_case(sni) {
        return false;
    }
    table
        .certs()
        .resolve(Some(name))
        // By the leaf's bytes: every compile loads certificates afresh, so
        // the same certificate is another `Arc` after a reload.
        .is_some_and(|theirs| {
            !Arc::ptr_eq(&theirs, served) && theirs.cert.first() != served.cert.first()
        })
}

fn log_error(err: &ProxyError, route: Option<&Route>, client: &ClientInfo) {
    let route = route.map_or("-", |r| &*r.name);
    match err {
        ProxyError::BadRequest(_) | ProxyError::BadTarget | ProxyError::NoRoute => {
            tracing::debug!(route, client = %client.remote, error = %err, "request refused");
        }
        _ => {
            tracing::warn!(route, client = %client.remote, status = err.status().as_u16(), error = %err, "request failed")
        }
    }
}
