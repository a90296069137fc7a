//! The synchronous half of a request: parse the head in the read buffer, route
//! it on borrowed slices, and either write the backend's request head into the
//! output buffer (the fast path) or build `http` types for the routes that need
//! them (middlewares, sticky sessions, redirects, non-HTTP/1.1 backends).
//! Nothing here awaits, so the parsed head's borrows end before any I/O.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Version};

use super::head::{self, Framing, RequestHead};
use super::rewrite;
use crate::accesslog::AccessLog;
use crate::exchange::{BadRequest, ClientInfo, ProxyError};
use crate::middleware::Chain;
use crate::proxy::access::RequestLog;
use crate::proxy::{normalized_target, request, with_path, Proxy};
use crate::router::{EntryPoint, Route, Target};
use crate::telemetry::{ClientSpan, RequestFacts, ServerSpan, Tracing};

/// What the connection loop needs of a request once its head is gone.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    /// The method (for metrics, and HEAD).
    pub method: Method,
    /// Bytes the head takes at the start of the read buffer.
    pub head_len: usize,
    /// How the request body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open.
    pub keep_alive: bool,
    /// HTTP/1.0 client.
    pub http10: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// What the access log keeps of the request (only when one is on).
    pub log: Option<Box<RequestLog>>,
}

impl Facts {
    fn of(head: &RequestHead<'_>) -> Self {
        Self {
            method: Method::from_bytes(head.method.as_bytes()).unwrap_or(Method::GET),
            head_len: head.len,
            framing: head.framing,
            keep_alive: head.keep_alive,
            http10: head.http10,
            expect_continue: head.expect_continue,
            log: None,
        }
    }

    /// A HEAD request: the response carries no body.
    pub(super) fn head_request(&self) -> bool {
        self.method == Method::HEAD
    }
}

/// What to do with the bytes at the front of the read buffer.
pub(super) enum Prepared {
    /// The head is not complete yet: read more.
    Partial,
    /// An Upgrade (WebSocket): hand the connection to hyper, head included.
    Handoff,
    /// Answer with an error. Without facts, the head could not be parsed and
    /// the connection closes after the answer.
    Refuse {
        error: ProxyError,
        facts: Option<Facts>,
        route: Option<Arc<Route>>,
        trace: Option<Box<RequestSpans>>,
    },
    /// The fast path: `out` holds the head to send to `endpoint`.
    Forward {
        facts: Facts,
        route: Arc<Route>,
        endpoint: SocketAddr,
        trace: Option<Box<RequestSpans>>,
    },
    /// The `http`-types path through the middleware chain and hyper's clients.
    Bridge {
        facts: Facts,
        route: Arc<Route>,
        parts: Parts,
        host: Option<HeaderValue>,
        trace: Option<Box<RequestSpans>>,
    },
}

impl Prepared {
    /// Takes the request's spans out (the connection ends them with the status).
    pub(super) fn take_trace(&mut self) -> Option<Box<RequestSpans>> {
        match self {
            Self::Refuse { trace, .. }
            | Self::Forward { trace, .. }
            | Self::Bridge { trace, .. } => trace.take(),
            Self::Partial | Self::Handoff => None,
        }
    }
}

/// The spans of one request on the native engine: the server span, and on
/// the fast path the span of the backend attempt (the bridge's attempts get
/// theirs in `proxy::to_backend`).
#[derive(Debug)]
pub(super) struct RequestSpans {
    server: ServerSpan,
    client: Option<ClientSpan>,
}

impl RequestSpans {
    /// The trace id, as the access log writes it.
    pub(super) fn trace_id(&self) -> String {
        self.server.trace_id()
    }

    /// Ends both spans with the status sent to the client.
    pub(super) fn finish(self, status: u16) {
        if let Some(client) = self.client {
            client.finish(Ok(status));
        }
        self.server.finish(status);
    }
}

/// Starts the server span of a parsed head.
fn server_span(
    tracing: &Arc<Tracing>,
    head: &RequestHead<'_>,
    client: &ClientInfo,
) -> Box<RequestSpans> {
    let facts = RequestFacts {
        method: head.method,
        target: head.target,
        host: head.host.unwrap_or(""),
        tls: client.tls,
        protocol: if head.http10 { "1.0" } else { "1.1" },
        client: client.remote,
        user_agent: None,
        traceparent: None,
        tracestate: None,
        start: SystemTime::now(),
    }
    .with_headers(head.headers.iter().map(|h| (h.name, h.value)));
    Box::new(RequestSpans {
        server: tracing.server(&facts),
        client: None,
    })
}

/// Parses, routes and prepares the request at the front of `buf`.
pub(super) fn prepare(
    proxy: &Proxy,
    client: &ClientInfo,
    buf: &mut [u8],
    max_head: usize,
    out: &mut Vec<u8>,
) -> Prepared {
    let mut slots = head::header_slots();
    let head = match head::parse(buf, &mut slots, max_head) {
        Ok(Some(head)) => head,
        Ok(None) => return Prepared::Partial,
        Err(bad) => return refuse(bad.into(), None, None, None),
    };
    if head.upgrade.is_some() {
        return Prepared::Handoff;
    }
    let mut facts = Facts::of(&head);
    if let Some(log) = proxy.access_log() {
        facts.log = Some(capture(log, &head));
    }
    let mut trace = proxy.tracing().map(|t| server_span(t, &head, client));
    let (path, query) = match head.path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (head.path_and_query, None),
    };
    let entrypoint = if client.tls {
        EntryPoint::WebSecure
    } else {
        EntryPoint::Web
    };
    let route = proxy
        .table
        .load()
        .lookup_request(
            entrypoint,
            head.host.unwrap_or(""),
            &request::match_path(path),
            &HeadFacts { head: &head, query },
        )
        .cloned();
    let Some(route) = route else {
        return refuse(ProxyError::NoRoute, Some(facts), None, trace);
    };
    if let Some(trace) = &mut trace {
        trace.server.routed(&route);
    }
    if !fast_path_serves(&route, client) {
        return bridge(&head, facts, route, trace);
    }
    let backend = match &route.target {
        Target::Backend(backend) => backend,
        Target::Unavailable { status, reason } => {
            let status = http::StatusCode::from_u16(*status)
                .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
            let error = ProxyError::Unavailable(reason.clone(), status);
            return refuse(error, Some(facts), Some(route), trace);
        }
    };
    let Some(endpoint) = backend.pick() else {
        return refuse(ProxyError::NoEndpoints, Some(facts), Some(route), trace);
    };
    let target = forwarded_target(head.path_and_query, path, query);
    let endpoint_host = (!route.pass_host_header).then_some(endpoint);
    let context = trace.as_mut().map(|trace| {
        let span = trace.server.client(head.method, endpoint, &target);
        let fields = rewrite::TraceFields {
            traceparent: span.traceparent(),
            tracestate: span.tracestate(),
        };
        trace.client = Some(span);
        fields
    });
    rewrite::request_head(out, &head, &target, client, endpoint_host, context.as_ref());
    Prepared::Forward {
        facts,
        route,
        endpoint,
        trace,
    }
}

/// A parsed head as HTTPRoute matches read it.
struct HeadFacts<'h, 'b> {
    head: &'h RequestHead<'b>,
    query: Option<&'b str>,
}

impl crate::router::RequestFacts for HeadFacts<'_, '_> {
    fn method(&self) -> &str {
        self.head.method
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn any_header(&self, name: &str, visit: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.head
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .any(|h| visit(h.value))
    }
}

/// What the access log keeps of a parsed head.
fn capture(log: &AccessLog, head: &head::RequestHead<'_>) -> Box<RequestLog> {
    let protocol = if head.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let size = head
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| head::parse_length(head::trim(h.value)))
        .unwrap_or(0);
    RequestLog::capture(
        log,
        head.method,
        head.target,
        head.host.unwrap_or(""),
        protocol,
        size,
        head.headers.iter().map(|h| (h.name, h.value)),
    )
}

fn refuse(
    error: ProxyError,
    facts: Option<Facts>,
    route: Option<Arc<Route>>,
    trace: Option<Box<RequestSpans>>,
) -> Prepared {
    Prepared::Refuse {
        error,
        facts,
        route,
        trace,
    }
}

/// Routes the fast path serves alone: no middlewares, no sticky cookie, no
/// balancing policy (hash keys and EWMA are read and fed on the bridge), no
/// HTTPS redirect to answer, and a plain HTTP/1.1 backend.
fn fast_path_serves(route: &Route, client: &ClientInfo) -> bool {
    matches!(route.middlewares, Chain::Empty)
        && route.sticky.is_none()
        && route.balance.is_none()
        && (client.tls || !route.redirect_https)
        && route.client.tcp_pool().is_some()
}

/// The target sent to the backend: dot-segments removed, the query as sent.
fn forwarded_target<'a>(path_and_query: &'a str, path: &str, query: Option<&str>) -> Cow<'a, str> {
    match request::normalize_path(path) {
        Cow::Borrowed(_) => Cow::Borrowed(path_and_query),
        Cow::Owned(mut normalized) => {
            if let Some(query) = query {
                normalized.push('?');
                normalized.push_str(query);
            }
            Cow::Owned(normalized)
        }
    }
}

/// Builds the `http` request parts the middleware chain and hyper's clients
/// take, exactly as hyper's server would have.
fn bridge(
    head: &RequestHead<'_>,
    facts: Facts,
    route: Arc<Route>,
    trace: Option<Box<RequestSpans>>,
) -> Prepared {
    match bridge_parts(head, &facts) {
        Ok(mut parts) => {
            let host = crate::proxy::host_value(&parts);
            if let Some(trace) = &trace {
                parts.extensions.insert(trace.server.parent());
            }
            Prepared::Bridge {
                facts,
                route,
                parts,
                host,
                trace,
            }
        }
        Err(error) => refuse(error, Some(facts), Some(route), trace),
    }
}

fn bridge_parts(head: &RequestHead<'_>, facts: &Facts) -> Result<Parts, ProxyError> {
    let mut req = http::Request::new(());
    *req.method_mut() = facts.method.clone();
    *req.uri_mut() = head.target.parse().map_err(|_| ProxyError::BadTarget)?;
    *req.version_mut() = if facts.http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let headers = req.headers_mut();
    headers.reserve(head.headers.len());
    for header in head.headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| ProxyError::BadRequest(BadRequest::Malformed))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| ProxyError::BadRequest(BadRequest::Malformed))?;
        headers.append(name, value);
    }
    let (mut parts, ()) = req.into_parts();
    if let Some(target) = normalized_target(&parts) {
        let target = target.parse().map_err(|_| ProxyError::BadTarget)?;
        parts.uri = with_path(&parts.uri, target);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_targets_keep_the_query_and_lose_dot_segments() {
        assert_eq!(forwarded_target("/a/b", "/a/b", None), "/a/b");
        assert_eq!(
            forwarded_target("/a/b?x=1", "/a/b", Some("x=1")),
            "/a/b?x=1"
        );
        assert_eq!(
            forwarded_target("/a/../b?x=/..", "/a/../b", Some("x=/..")),
            "/b?x=/.."
        );
        assert!(matches!(
            forwarded_target("/p?q", "/p", Some("q")),
            Cow::Borrowed(_)
        ));
    }
}
