//! `errors`: replaces error responses with a page fetched from another Service.
//!
//! When the status of the response (or, for a request that got no response, the
//! status the proxy would answer: 502, 503, 504) is in `status`, the response is
//! dropped and a `GET` for `query` is sent to the error Service, carrying the
//! original request's headers (Host included). The client gets the error page's
//! headers and body with the original status, or the status `statusRewrites` maps
//! it to. Any other response passes through untouched and streamed.
//!
//! `query` placeholders: `{status}` (after rewrite), `{originalStatus}` (the
//! backend's), `{url}` (the original `scheme://host/path?query`, query-escaped).
//!
//! When the error Service cannot answer (no endpoint, refused, timeout) the client
//! gets the original (rewritten) status with the reason phrase of that failure as
//! the body (`Bad Gateway`), which is what Traefik's load balancer writes through
//! its status-enforcing writer.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context, ServiceTarget};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{RequestBody, ResponseBody};
use crate::exchange::ProxyError;
use crate::upstream::PortRef;

/// Inclusive status code ranges, written as Traefik does: `"500"`, `"500-599"`,
/// `"404,418,500-599"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct CodeRanges(Vec<(u16, u16)>);

impl CodeRanges {
    /// Parses every item of `items` (each may hold a comma-separated list).
    pub(super) fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in items {
            for part in item.as_ref().split(',') {
                ranges.push(parse_range(part)?);
            }
        }
        Ok(Self(ranges))
    }

    /// Whether no range was given.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `code` is in one of the ranges.
    pub(super) fn contains(&self, code: u16) -> bool {
        self.0
            .iter()
            .any(|&(low, high)| low <= code && code <= high)
    }
}

fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let text = text.trim();
    let code = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| format!("{text:?} is not a status code or range (100-599)"))
    };
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (code(low)?, code(high)?),
        None => {
            let c = code(text)?;
            (c, c)
        }
    };
    if low > high {
        return Err(format!("{text:?}: the range is empty"));
    }
    Ok((low, high))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    status: Vec<String>,
    #[serde(default)]
    status_rewrites: serde_json::Map<String, Value>,
    service: Option<ServiceRef>,
    #[serde(default)]
    query: String,
}

/// The CRD's Kubernetes Service reference (other LoadBalancerSpec fields are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceRef {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    port: Option<PortValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(i32),
    Name(String),
}

/// Builds an `errors` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let status = CodeRanges::parse(&config.status).map_err(|e| cx.invalid(e))?;
    let mut rewrites = Vec::with_capacity(config.status_rewrites.len());
    for (from, to) in &config.status_rewrites {
        let ranges = CodeRanges::parse(&[from]).map_err(|e| cx.invalid(e))?;
        let to = match to {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .filter(|s| (100..=599).contains(&s.as_u16()))
        .ok_or_else(|| {
            cx.invalid(format!(
                "statusRewrites {from:?}: {to} is not a status code"
            ))
        })?;
        rewrites.push((ranges, to));
    }
    let Some(service) = config.service else {
        return Err(cx.invalid("service must be set".to_owned()));
    };
    if service.name.is_empty() {
        return Err(cx.invalid("service.name must be set".to_owned()));
    }
    if let Some(ns) = service.namespace.as_deref() {
        if !ns.is_empty() && ns != cx.namespace() {
            return Err(cx.invalid(format!(
                "service {}/{}: the error Service must be in the Middleware's namespace {:?}",
                ns,
                service.name,
                cx.namespace()
            )));
        }
    }
    let port = match service.port {
        Some(PortValue::Number(n)) => PortRef::Number(n),
        Some(PortValue::Name(name)) => match name.parse::<i32>() {
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(name),
        },
        None => return Err(cx.invalid("service.port must be set".to_owned())),
    };
    let query = Query::parse(&config.query).map_err(|e| cx.invalid(e))?;
    let target = cx
        .service(&service.name, &port)
        .map_err(|e| cx.invalid(format!("service {}: {e}", service.name)))?;
    Ok(Arc::new(Errors {
        status,
        rewrites,
        query,
        target,
    }))
}

/// One piece of the `query` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Status,
    OriginalStatus,
    Url,
}

/// The `query` template, split once at build time.
#[derive(Debug)]
struct Query(Vec<Piece>);

impl Query {
    fn parse(query: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        // Traefik: "/" + the query without its leading "/"; no query asks for "/".
        let mut rest = format!("/{}", query.strip_prefix('/').unwrap_or(query));
        let names = [
            ("{status}", Piece::Status),
            ("{originalStatus}", Piece::OriginalStatus),
            ("{url}", Piece::Url),
        ];
        while !rest.is_empty() {
            let next = names
                .iter()
                .filter_map(|(name, piece)| rest.find(name).map(|at| (at, *name, piece)))
                .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, name, piece)) => {
                    if at > 0 {
                        pieces.push(Piece::Text(rest[..at].to_owned()));
                    }
                    pieces.push(piece.clone());
                    rest = rest[at + name.len()..].to_owned();
                }
                None => {
                    pieces.push(Piece::Text(std::mem::take(&mut rest)));
                }
            }
        }
        let parsed = Self(pieces);
        // Placeholders expand to digits and escaped text: a template that is a
        // valid target with sample values is valid with any.
        parsed
            .expand(500, 500, "u")
            .parse::<PathAndQuery>()
            .map_err(|e| format!("query {query:?} is not a valid path and query: {e}"))?;
        Ok(parsed)
    }

    fn expand(&self, status: u16, original: u16, url: &str) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Status => {
                    let _ = write!(out, "{status}");
                }
                Piece::OriginalStatus => {
                    let _ = write!(out, "{original}");
                }
                Piece::Url => out.push_str(url),
            }
        }
        out
    }

    fn wants_url(&self) -> bool {
        self.0.contains(&Piece::Url)
    }
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`, the rest `%XX`.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The built `errors`.
#[derive(Debug)]
struct Errors {
    status: CodeRanges,
    rewrites: Vec<(CodeRanges, StatusCode)>,
    query: Query,
    target: ServiceTarget,
}

/// What the error page request needs from the original request.
struct Original {
    headers: HeaderMap,
    url: String,
}

impl Errors {
    fn rewrite(&self, status: StatusCode) -> StatusCode {
        self.rewrites
            .iter()
            .find(|(ranges, _)| ranges.contains(status.as_u16()))
            .map_or(status, |(_, to)| *to)
    }

    async fn page(&self, original: Original, status: StatusCode) -> Response<ResponseBody> {
        let shown = self.rewrite(status);
        let url = if self.query.wants_url() {
            query_escape(&original.url)
        } else {
            String::new()
        };
        let target = self
            .query
            .expand(shown.as_u16(), status.as_u16(), &url)
            .parse::<PathAndQuery>()
            .map(Uri::from);
        let mut req = Request::new(RequestBody::empty());
        *req.method_mut() = Method::GET;
        match target {
            Ok(uri) => *req.uri_mut() = uri,
            Err(e) => {
                tracing::warn!(error = %e, "error page: bad query");
                return reason_response(shown, shown);
            }
        }
        *req.headers_mut() = original.headers;
        strip_body_headers(req.headers_mut());
        match send_to_service(&self.target, req).await {
            Ok(mut resp) => {
                *resp.status_mut() = shown;
                resp
            }
            Err(failed) => reason_response(shown, failed.status()),
        }
    }
}

/// Removes the fields that describe a request body, for a bodiless request
/// built from another request's headers (an error page request).
pub(super) fn strip_body_headers(headers: &mut HeaderMap) {
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TRAILER,
        header::EXPECT,
    ] {
        headers.remove(name);
    }
}

/// Sends `req` to one ready endpoint of `target`, in the HTTP version its
/// client speaks, and returns the answer without its hop-by-hop fields: how
/// the middlewares that answer from another Service (this one's error pages,
/// ingress-nginx's default backend) reach it. No ready endpoint is
/// [`ProxyError::NoEndpoints`]; a failed exchange is logged.
pub(super) async fn send_to_service(
    target: &ServiceTarget,
    mut req: Request<RequestBody>,
) -> Result<Response<ResponseBody>, ProxyError> {
    let Some(endpoint) = target.backend.pick() else {
        tracing::warn!(service = %target.backend.key(), "no ready endpoint");
        return Err(ProxyError::NoEndpoints);
    };
    *req.version_mut() = target.client.version();
    match target.client.send(endpoint, req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, ResponseBody::Upstream(body)))
        }
        Err(e) => {
            tracing::warn!(service = %target.backend.key(), %endpoint, error = %e, "request failed");
            Err(ProxyError::from(e))
        }
    }
}

/// `status` with the reason phrase of `reason` as the body, as Go's proxy error
/// handler writes it through Traefik's status-enforcing writer.
fn reason_response(status: StatusCode, reason: StatusCode) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(Bytes::from_static(
        reason.canonical_reason().unwrap_or("").as_bytes(),
    )));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Removes hop-by-hop headers from the error Service's response (RFC 9110 §7.6.1).
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// The original request's URL as Traefik prints it: `scheme://host/path?query`.
fn full_url(req: &Request<RequestBody>, tls: bool) -> String {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let target = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}{target}")
}

impl Middleware for Errors {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if self.status.is_empty() {
                return next.run(req, cx).await;
            }
            let original = Original {
                headers: req.headers().clone(),
                url: if self.query.wants_url() {
                    full_url(&req, cx.client.tls)
                } else {
                    String::new()
                },
            };
            match next.run(req, cx).await {
                Ok(resp) if self.status.contains(resp.status().as_u16()) => {
                    let status = resp.status();
                    drop(resp);
                    Ok(self.page(original, status).await)
                }
                Err(failure) if self.status.contains(failure.error.status().as_u16()) => {
                    tracing::debug!(error = %failure.error, "error page for a failed request");
                    Ok(self.page(original, failure.error.status()).await)
                }
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::json;
    use tokio::net::TcpListener;

    use super::super::retry::testing::*;
    use super::*;
    use crate::middleware::testing::FakeBuild;
    use crate::upstream::{BackendKey, EndpointSet, PoolSettings, UpstreamClient, Upstreams};

    #[test]
    fn code_ranges_parse_like_traefik() {
        let r = CodeRanges::parse(&["418,500-502", "404"]).unwrap();
        assert!(r.contains(418) && r.contains(500) && r.contains(502) && r.contains(404));
        assert!(!r.contains(503) && !r.contains(200));
        let r = CodeRanges::parse(&["500-599"]).unwrap();
        assert!(r.contains(599) && !r.contains(600) && !r.contains(499));
        for bad in ["5xx", "600", "500-", "502-500", "", "99"] {
            assert!(CodeRanges::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(
            query_escape("http://127.0.0.1:18080/err/status/404?a=b c"),
            "http%3A%2F%2F127.0.0.1%3A18080%2Ferr%2Fstatus%2F404%3Fa%3Db+c"
        );
    }

    #[test]
    fn query_templates_expand() {
        let q = Query::parse("{status}.html?from={originalStatus}&u={url}").unwrap();
        assert_eq!(q.expand(404, 418, "x%2F"), "/404.html?from=418&u=x%2F");
        assert_eq!(Query::parse("").unwrap().expand(1, 1, ""), "/");
        assert_eq!(
            Query::parse("/e/{status}").unwrap().expand(500, 500, ""),
            "/e/500"
        );
        assert!(Query::parse("/bad path").is_err());
    }

    /// A fake error Service: answers every request with `page` and records the
    /// requests it got (path, host, a custom header).
    struct ErrorService {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<(String, String, String)>>>,
    }

    async fn error_service() -> ErrorService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        log.lock().unwrap().push((
                            req.uri().to_string(),
                            header("host"),
                            format!("{} {}", req.method(), header("x-custom")),
                        ));
                        let resp = Response::builder()
                            .status(200)
                            .header("content-type", "text/html")
                            .header("x-page", "yes")
                            .body(Full::new(Bytes::from_static(b"<h1>oops</h1>")))
                            .unwrap();
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ErrorService { addr, seen }
    }

    fn target(addrs: Vec<SocketAddr>) -> ServiceTarget {
        let upstreams = Upstreams::new();
        let backend = upstreams.backend(&BackendKey {
            namespace: "default".into(),
            cluster_ip: false,
            service: "pages".into(),
            port: PortRef::Number(80),
        });
        backend.set_endpoints(Arc::new(EndpointSet {
            addrs,
            ..EndpointSet::default()
        }));
        ServiceTarget {
            backend,
            client: Arc::new(UpstreamClient::new(&PoolSettings::default())),
        }
    }

    fn errors(config: Value, target: ServiceTarget) -> Result<Arc<dyn Middleware>, BuildError> {
        let mut cx = FakeBuild {
            services: vec![("pages".into(), PortRef::Number(80), target)],
            ..FakeBuild::default()
        };
        build(&config, &mut cx)
    }

    #[test]
    fn config_is_validated() {
        let t = || target(vec![]);
        let ok = json!({"status": ["500-599"], "service": {"name": "pages", "port": 80}});
        assert!(errors(ok, t()).is_ok());
        let by_string = json!({"status": ["404"], "service": {"name": "pages", "port": "80"}});
        assert!(errors(by_string, t()).is_ok());
        let cases = [
            (
                json!({"status": ["5xx"], "service": {"name": "pages", "port": 80}}),
                "not a status",
            ),
            (json!({"status": ["500"]}), "service must be set"),
            (
                json!({"status": ["500"], "service": {"name": "other", "port": 80}}),
                "not found",
            ),
            (
                json!({"status": ["500"], "service": {"name": "pages"}}),
                "port must be set",
            ),
            (
                json!({"status": ["500"], "service": {"name": "pages", "namespace": "x", "port": 80}}),
                "namespace",
            ),
            (
                json!({"status": ["500"], "statusRewrites": {"500": 700}, "service": {"name": "pages", "port": 80}}),
                "statusRewrites",
            ),
            (
                json!({"status": ["500"], "query": "/a b", "service": {"name": "pages", "port": 80}}),
                "query",
            ),
        ];
        for (config, expected) in cases {
            let err = errors(config.clone(), t()).unwrap_err().to_string();
            assert!(err.contains(expected), "{config}: {err}");
        }
    }

    fn with_custom_header(mut req: Request<RequestBody>) -> Request<RequestBody> {
        req.headers_mut()
            .insert("x-custom", HeaderValue::from_static("kept"));
        req
    }

    #[tokio::test]
    async fn matching_statuses_get_the_error_page_with_the_original_status() {
        let svc = error_service().await;
        let mw = errors(
            json!({"status": ["500-599", "404"], "query": "/{status}.html?o={originalStatus}&u={url}",
                   "service": {"name": "pages", "port": 80}}),
            target(vec![svc.addr]),
        )
        .unwrap();
        let t = Scripted::new(&[Step::Status(404, "backend page")]);
        let (status, headers, body) =
            answer(run(&mw, &t, with_custom_header(get("/a/b?x=1"))).await).await;
        assert_eq!(status, 404);
        assert_eq!(body, "<h1>oops</h1>");
        assert_eq!(headers["content-type"], "text/html");
        assert_eq!(headers["x-page"], "yes");
        assert!(
            headers.get("x-from").is_none(),
            "backend headers are dropped"
        );
        let seen = svc.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![(
                "/404.html?o=404&u=http%3A%2F%2Fapp.example%2Fa%2Fb%3Fx%3D1".to_owned(),
                "app.example".to_owned(),
                "GET kept".to_owned(),
            )]
        );
    }

    #[tokio::test]
    async fn other_statuses_pass_through() {
        let svc = error_service().await;
        let mw = errors(
            json!({"status": ["500-599"], "service": {"name": "pages", "port": 80}}),
            target(vec![svc.addr]),
        )
        .unwrap();
        let t = Scripted::new(&[Step::Status(404, "backend page")]);
        let (status, headers, body) = answer(run(&mw, &t, get("/")).await).await;
        assert_eq!((status, body.as_str()), (404, "backend page"));
        assert_eq!(headers["x-from"], "backend");
        assert!(svc.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn failures_get_the_page_with_their_status() {
        let svc = error_service().await;
        let mw = errors(
            json!({"status": ["502"], "query": "/{status}", "service": {"name": "pages", "port": 80}}),
            target(vec![svc.addr]),
        )
        .unwrap();
        let t = Scripted::new(&[Step::Refused]);
        let (status, _, body) = answer(run(&mw, &t, get("/")).await).await;
        assert_eq!((status, body.as_str()), (502, "<h1>oops</h1>"));
        assert_eq!(svc.seen.lock().unwrap()[0].0, "/502");
        // A failure whose status is not listed stays a failure.
        let t = Scripted::new(&[Step::TimedOut]);
        assert!(run(&mw, &t, get("/")).await.is_err());
    }

    #[tokio::test]
    async fn rewrites_change_the_status_and_the_query() {
        let svc = error_service().await;
        let mw = errors(
            json!({"status": ["418", "500-599"], "statusRewrites": {"418": 404, "502-504": "500"},
                   "query": "/{status}-{originalStatus}", "service": {"name": "pages", "port": 80}}),
            target(vec![svc.addr]),
        )
        .unwrap();
        let t = Scripted::new(&[
            Step::Status(418, "tea"),
            Step::Status(503, "x"),
            Step::Status(501, "y"),
        ]);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(answer(run(&mw, &t, get("/")).await).await.0);
        }
        assert_eq!(got, vec![404, 500, 501]);
        let paths: Vec<String> = svc
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect();
        assert_eq!(paths, vec!["/404-418", "/500-503", "/501-501"]);
    }

    #[tokio::test]
    async fn a_dead_error_service_leaves_the_status_with_a_reason() {
        let dead: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mw = errors(
            json!({"status": ["500"], "service": {"name": "pages", "port": 80}}),
            target(vec![dead]),
        )
        .unwrap();
        let t = Scripted::new(&[Step::Status(500, "backend")]);
        let (status, _, body) = answer(run(&mw, &t, get("/")).await).await;
        assert_eq!((status, body.as_str()), (500, "Bad Gateway"));

        let mw = errors(
            json!({"status": ["500"], "service": {"name": "pages", "port": 80}}),
            target(vec![]),
        )
        .unwrap();
        let (status, _, body) = answer(run(&mw, &t, get("/")).await).await;
        assert_eq!((status, body.as_str()), (500, "Service Unavailable"));
    }
}
