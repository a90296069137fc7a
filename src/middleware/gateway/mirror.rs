//! `gatewayMirror`: an HTTPRoute rule's `RequestMirror` filters, in order,
//! merged by the compiler into one step.
//!
//! The config is `{"mirrors": [{"namespace", "service", "port", "percent"?,
//! "fraction"?: {"numerator", "denominator"?}}]}`; each Service port is
//! resolved once, when built (a missing one fails the build).
//!
//! - **Which requests.** Each mirror draws on its own: `percent` out of 100,
//!   or `numerator` out of `denominator` (default 100); neither means every
//!   request.
//! - **The copy** has the request's method, path and query, headers (Host
//!   included, unchanged) and body, and goes to one endpoint of the mirror's
//!   Service on a task of its own. Its answer is read (a little, to reuse
//!   the connection) and dropped; its failures are logged at debug level.
//!   The client's request goes on to the rest of the chain at once: a mirror
//!   never delays or changes the client's answer.
//! - **Bodies** are never copied. A body already in memory (or none) is
//!   shared (the same `Bytes`). A streamed body announcing at most
//!   [`MAX_COLLECTED`] bytes is read first, then shared by the mirrors and
//!   the request (whose body is then in memory; trailers, if any, are
//!   dropped). A larger or unsized streamed body is not mirrored (logged at
//!   debug level). A client failing while that body is read gets what it
//!   would get from the backend path: 408 or 400.
//! - **Load.** At most [`MAX_IN_FLIGHT`] copies per mirror are in flight; a
//!   request beyond that is not mirrored there. Upgrade requests (WebSocket)
//!   are not mirrored: a copy cannot join the tunnel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::UPGRADE;
use http::Request;
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use rand::Rng;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::body::{BoxError, ClientBodyError, RequestBody};
use crate::exchange::{BadRequest, ProxyError};
use crate::middleware::build::{decode, BuildError, Context, ServiceTarget};
use crate::middleware::{BoxFuture, Failure, Middleware, Next, Outcome, RequestContext};
use crate::upstream::{PooledBody, PortRef};

/// The largest streamed request body read into memory to be mirrored (64 KiB).
pub(crate) const MAX_COLLECTED: u64 = 64 * 1024;

/// Copies one mirror may have in flight at once.
pub(crate) const MAX_IN_FLIGHT: usize = 512;

/// The most mirrors one step may have (a rule has at most 16 filters).
const MAX_MIRRORS: usize = 64;

/// How much of a mirror's answer is read so its connection can be reused.
const DRAIN_BYTES: usize = 64 * 1024;

/// How long reading a mirror's answer may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The step's config, as the Gateway compiler writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The rule's mirrors, in filter order.
    mirrors: Vec<MirrorConfig>,
}

/// One `RequestMirror` filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorConfig {
    /// The Service's namespace (cross-namespace refs already checked).
    namespace: String,
    /// The Service's name.
    service: String,
    /// The Service port number.
    port: i64,
    /// Percent of requests mirrored (0 to 100).
    #[serde(default)]
    percent: Option<i64>,
    /// Fraction of requests mirrored.
    #[serde(default)]
    fraction: Option<FractionConfig>,
}

/// Gateway API's `Fraction`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FractionConfig {
    /// Mirrored requests per `denominator`.
    numerator: i64,
    /// Defaults to 100.
    #[serde(default)]
    denominator: Option<i64>,
}

/// Builds a `gatewayMirror` from its config.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.mirrors.is_empty() {
        return Err(cx.invalid("no mirror".to_owned()));
    }
    if config.mirrors.len() > MAX_MIRRORS {
        return Err(cx.invalid(format!("more than {MAX_MIRRORS} mirrors")));
    }
    let mut mirrors = Vec::with_capacity(config.mirrors.len());
    for m in config.mirrors {
        let name = format!("{}/{}:{}", m.namespace, m.service, m.port);
        let share = share(m.percent, m.fraction.as_ref())
            .map_err(|e| cx.invalid(format!("mirror {name}: {e}")))?;
        let port = i32::try_from(m.port)
            .ok()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| cx.invalid(format!("mirror {name}: invalid port")))?;
        let target = cx
            .service_in(&m.namespace, &m.service, &PortRef::Number(port))
            .map_err(|e| cx.invalid(format!("mirror {name}: {e}")))?;
        mirrors.push(Arc::new(Mirror {
            name: name.into(),
            target,
            share,
            in_flight: AtomicUsize::new(0),
        }));
    }
    Ok(Arc::new(GatewayMirror {
        mirrors: mirrors.into(),
    }))
}

/// Reads `percent` / `fraction` (at most one of them).
fn share(percent: Option<i64>, fraction: Option<&FractionConfig>) -> Result<Share, String> {
    let (numerator, denominator) = match (percent, fraction) {
        (Some(_), Some(_)) => return Err("only one of percent or fraction may be set".to_owned()),
        (None, None) => return Ok(Share::Always),
        (Some(percent), None) => {
            if !(0..=100).contains(&percent) {
                return Err(format!("percent {percent} is not between 0 and 100"));
            }
            (percent, 100)
        }
        (None, Some(f)) => {
            let denominator = f.denominator.unwrap_or(100);
            if denominator < 1 {
                return Err(format!("denominator {denominator} is less than 1"));
            }
            if f.numerator < 0 || f.numerator > denominator {
                return Err(format!(
                    "numerator {} is not between 0 and the denominator {denominator}",
                    f.numerator
                ));
            }
            (f.numerator, denominator)
        }
    };
    let (Ok(numerator), Ok(denominator)) = (u32::try_from(numerator), u32::try_from(denominator))
    else {
        return Err("fraction out of range".to_owned());
    };
    Ok(match numerator {
        0 => Share::Never,
        n if n >= denominator => Share::Always,
        n => Share::Some {
            numerator: n,
            denominator,
        },
    })
}

/// Which requests one mirror gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    /// Every request.
    Always,
    /// None (`percent: 0`).
    Never,
    /// `numerator` out of `denominator` requests, drawn at random.
    Some {
        /// Below `denominator`, above 0.
        numerator: u32,
        /// At least 2.
        denominator: u32,
    },
}

/// One mirror: its Service port and how busy it is.
#[derive(Debug)]
struct Mirror {
    /// `namespace/service:port`, for logs.
    name: Box<str>,
    /// Where copies go.
    target: ServiceTarget,
    /// Which requests.
    share: Share,
    /// Copies on their way now.
    in_flight: AtomicUsize,
}

/// The built `gatewayMirror`.
#[derive(Debug)]
struct GatewayMirror {
    /// At most [`MAX_MIRRORS`], in filter order.
    mirrors: Box<[Arc<Mirror>]>,
}

/// A mirror's in-flight slot, given back when dropped.
struct Slot(Arc<Mirror>);

impl Slot {
    /// Takes a slot of `mirror`, unless [`MAX_IN_FLIGHT`] are taken.
    fn take(mirror: &Arc<Mirror>) -> Option<Self> {
        mirror
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_IN_FLIGHT).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(mirror)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GatewayMirror {
    /// The mirrors this request goes to, as a bit set by index.
    fn choose(&self) -> u64 {
        let mut chosen = 0;
        for (i, mirror) in self.mirrors.iter().enumerate() {
            let yes = match mirror.share {
                Share::Always => true,
                Share::Never => false,
                Share::Some {
                    numerator,
                    denominator,
                } => rand::rng().random_range(0..denominator) < numerator,
            };
            if yes {
                chosen |= 1 << i;
            }
        }
        chosen
    }

    /// Sends a copy of `req` with `body` to each `chosen` mirror, each on a
    /// task of its own.
    fn dispatch(&self, chosen: u64, req: &Request<RequestBody>, body: Option<&Bytes>) {
        for (i, mirror) in self.mirrors.iter().enumerate() {
            if chosen & (1 << i) == 0 {
                continue;
            }
            let Some(slot) = Slot::take(mirror) else {
                tracing::debug!(mirror = %mirror.name, "mirror busy, request not mirrored");
                continue;
            };
            let copy = copy_of(req, body.cloned(), mirror.target.client.version());
            tokio::spawn(async move {
                let slot = slot;
                slot.0.deliver(copy).await;
            });
        }
    }
}

/// The mirror's copy of `req`: method, URI, headers; `body` shared; no extensions.
fn copy_of(
    req: &Request<RequestBody>,
    body: Option<Bytes>,
    version: http::Version,
) -> Request<RequestBody> {
    let mut copy = Request::new(RequestBody::Full(body));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    // The client's hop-by-hop fields are not the mirror's (the main request
    // loses them later, in the terminal).
    crate::middleware::errors::strip_hop_by_hop(copy.headers_mut());
    *copy.version_mut() = version;
    copy
}

impl Mirror {
    /// Sends `req` to one endpoint and drops the answer.
    async fn deliver(&self, req: Request<RequestBody>) {
        let Some(endpoint) = self.target.backend.pick() else {
            tracing::debug!(mirror = %self.name, "mirror has no ready endpoint");
            return;
        };
        let method = req.method().clone();
        let started = Instant::now();
        match self.target.client.send(endpoint, req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                self.target
                    .backend
                    .record_endpoint(endpoint, &method, status, started.elapsed());
                drain(resp.into_body()).await;
            }
            Err(error) => {
                tracing::debug!(mirror = %self.name, %endpoint, %error, "mirrored request failed");
            }
        }
    }
}

/// Reads and drops a mirror's answer, so a short one gives its connection
/// back to the pool; a long or slow one is abandoned (the connection closed).
async fn drain(mut body: PooledBody) {
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > DRAIN_BYTES {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// The answer for a client whose body failed while it was read for the
/// mirrors, as the backend path would give it.
fn client_body_failure(error: &BoxError) -> Failure {
    let bad = match ClientBodyError::behind(error.as_ref()) {
        Some(ClientBodyError::Timeout(_)) => BadRequest::BodyTimeout,
        // Broken framing, a client gone mid-body, or more than it announced.
        _ => BadRequest::Malformed,
    };
    Failure::from(ProxyError::BadRequest(bad))
}

impl Middleware for GatewayMirror {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let chosen = self.choose();
        if chosen == 0 {
            return next.run(req, cx);
        }
        if req.headers().contains_key(UPGRADE) {
            tracing::debug!(uri = %req.uri(), "upgrade request not mirrored");
            return next.run(req, cx);
        }
        let body = req.body();
        if let RequestBody::Full(bytes) = body {
            let bytes = bytes.clone();
            self.dispatch(chosen, &req, bytes.as_ref());
            return next.run(req, cx);
        }
        if body.is_end_stream() {
            self.dispatch(chosen, &req, None);
            return next.run(req, cx);
        }
        match body.size_hint().exact() {
            Some(len) if len <= MAX_COLLECTED => Box::pin(async move {
                let (parts, body) = req.into_parts();
                // The announced length bounds it; the limit guards a liar.
                let limited = Limited::new(body, MAX_COLLECTED as usize);
                let bytes = match limited.collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(error) => return Err(client_body_failure(&error)),
                };
                let req = Request::from_parts(parts, RequestBody::full(bytes));
                let shared = match req.body() {
                    RequestBody::Full(bytes) => bytes.clone(),
                    _ => None,
                };
                self.dispatch(chosen, &req, shared.as_ref());
                next.run(req, cx).await
            }),
            length => {
                tracing::debug!(
                    uri = %req.uri(),
                    ?length,
                    "streamed request body too large or unsized, request not mirrored"
                );
                next.run(req, cx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use http::{HeaderMap, Method, Response, StatusCode};
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::json;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::body::{ChannelBody, ResponseBody};
    use crate::middleware::testing::*;
    use crate::middleware::Terminal;
    use crate::upstream::{BackendKey, EndpointSet, PoolSettings, UpstreamClient, Upstreams};

    /// What a mirror Service got.
    #[derive(Debug)]
    struct Got {
        method: Method,
        target: String,
        headers: HeaderMap,
        body: Bytes,
    }

    /// A real HTTP/1.1 Service on loopback that reports each request it gets
    /// and answers `status`.
    async fn mirror_service(status: u16) -> (SocketAddr, mpsc::UnboundedReceiver<Got>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|c| c.to_bytes());
                            let _ = tx.send(Got {
                                method: parts.method,
                                target: parts.uri.to_string(),
                                headers: parts.headers,
                                body: body.unwrap_or_default(),
                            });
                            let resp = Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"from the mirror")))
                                .unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, rx)
    }

    /// A Service port `name` whose endpoints are `addrs`.
    fn target(name: &str, addrs: Vec<SocketAddr>) -> ServiceTarget {
        let backend = Upstreams::new().backend(&BackendKey {
            namespace: "infra".into(),
            cluster_ip: false,
            service: name.into(),
            port: PortRef::Number(8080),
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

    /// A build context with the Services `infra/<name>:8080`.
    fn services(list: Vec<(&str, ServiceTarget)>) -> FakeBuild {
        FakeBuild {
            services: list
                .into_iter()
                .map(|(name, t)| (format!("infra/{name}"), PortRef::Number(8080), t))
                .collect(),
            ..FakeBuild::default()
        }
    }

    /// The config of one mirror to `infra/<name>:8080`, every request.
    fn mirror_to(name: &str) -> Value {
        json!({"namespace": "infra", "service": name, "port": 8080})
    }

    /// The next request `rx` reports, waiting a few seconds at most.
    async fn next_got(rx: &mut mpsc::UnboundedReceiver<Got>) -> Got {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the mirror got a request in time")
            .expect("the mirror service runs")
    }

    /// A terminal that records whether the body came in memory, and its bytes.
    #[derive(Default)]
    struct Inspect {
        seen: Mutex<Vec<(bool, Bytes)>>,
    }

    impl Terminal for Inspect {
        fn forward<'a>(
            &'a self,
            req: Request<RequestBody>,
            _cx: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                let in_memory = matches!(req.body(), RequestBody::Full(_));
                let body = req.into_body().collect().await.unwrap().to_bytes();
                self.seen.lock().unwrap().push((in_memory, body));
                Ok(Response::new(ResponseBody::full("main")))
            })
        }
    }

    /// A streamed body announcing `length`, fed by the returned sender.
    fn streamed(length: Option<u64>) -> (mpsc::Sender<Result<Bytes, BoxError>>, RequestBody) {
        let (tx, rx) = mpsc::channel(4);
        (tx, RequestBody::Channel(ChannelBody::new(rx, length)))
    }

    /// A POST of `target` for the host `mirror.example` with `body`.
    fn post(target: &str, body: RequestBody) -> Request<RequestBody> {
        Request::builder()
            .method(Method::POST)
            .uri(target)
            .header("host", "mirror.example")
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn every_mirror_gets_the_request_and_the_client_the_main_answer() {
        // httproute-request-(multiple-)mirror(s): the mirrors see the same
        // path with its query, headers as modified by earlier filters, Host.
        let (v2, mut got_v2) = mirror_service(500).await;
        let (v3, mut got_v3) = mirror_service(200).await;
        let mut cx = services(vec![
            ("infra-backend-v2", target("infra-backend-v2", vec![v2])),
            ("infra-backend-v3", target("infra-backend-v3", vec![v3])),
        ]);
        let mw = build(
            &json!({"mirrors": [mirror_to("infra-backend-v2"), mirror_to("infra-backend-v3")]}),
            &mut cx,
        )
        .unwrap();
        let main = Recorder::ok();
        let req = get(
            "/multi-mirror?X-Echo-Set-Header=&request-id=42",
            &[
                ("host", "gateway.example"),
                ("x-header-add", "header-val-1"),
                ("x-header-add-append", "append-val-1"),
                ("x-header-add-append", "header-val-2"),
            ],
        );
        let resp = run(&mw, &main, req).await;
        // The answer is the main backend's, whatever the mirrors say (500 here).
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(main.count(), 1);
        assert_eq!(
            main.got().uri,
            "/multi-mirror?X-Echo-Set-Header=&request-id=42"
        );
        for got in [next_got(&mut got_v2).await, next_got(&mut got_v3).await] {
            assert_eq!(got.method, Method::GET);
            assert_eq!(got.target, "/multi-mirror?X-Echo-Set-Header=&request-id=42");
            assert_eq!(got.headers["host"], "gateway.example");
            assert_eq!(got.headers["x-header-add"], "header-val-1");
            assert_eq!(
                values(&got.headers, "x-header-add-append"),
                ["append-val-1", "header-val-2"]
            );
            assert!(got.body.is_empty());
        }
    }

    #[tokio::test]
    async fn bodies_in_memory_are_mirrored_too() {
        let (addr, mut got) = mirror_service(200).await;
        let mut cx = services(vec![("m", target("m", vec![addr]))]);
        let mw = build(&json!({"mirrors": [mirror_to("m")]}), &mut cx).unwrap();
        let main = Inspect::default();
        let req = post("/in-memory", RequestBody::full("buffered body"));
        let (status, body) = read(run_in(&mw, &main, req, &context(false)).await).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "main"));
        assert_eq!(
            *main.seen.lock().unwrap(),
            [(true, Bytes::from_static(b"buffered body"))]
        );
        let got = next_got(&mut got).await;
        assert_eq!(got.method, Method::POST);
        assert_eq!(got.target, "/in-memory");
        assert_eq!(got.headers["host"], "mirror.example");
        assert_eq!(got.body, "buffered body");
    }

    #[tokio::test]
    async fn small_streamed_bodies_are_read_once_for_both() {
        let (addr, mut got) = mirror_service(200).await;
        let mut cx = services(vec![("m", target("m", vec![addr]))]);
        let mw = build(&json!({"mirrors": [mirror_to("m")]}), &mut cx).unwrap();
        let main = Inspect::default();
        let (tx, body) = streamed(Some(11));
        tokio::spawn(async move {
            tx.send(Ok(Bytes::from_static(b"hello "))).await.unwrap();
            tx.send(Ok(Bytes::from_static(b"world"))).await.unwrap();
        });
        let req = post("/streamed", body);
        let (status, _) = read(run_in(&mw, &main, req, &context(false)).await).await;
        assert_eq!(status, StatusCode::OK);
        // The main backend gets the collected body, in memory.
        assert_eq!(
            *main.seen.lock().unwrap(),
            [(true, Bytes::from_static(b"hello world"))]
        );
        assert_eq!(next_got(&mut got).await.body, "hello world");
    }

    #[tokio::test]
    async fn large_unsized_and_upgrade_requests_are_not_mirrored() {
        let (addr, mut got) = mirror_service(200).await;
        let mut cx = services(vec![("m", target("m", vec![addr]))]);
        let mw = build(&json!({"mirrors": [mirror_to("m")]}), &mut cx).unwrap();
        let main = Inspect::default();
        let big = MAX_COLLECTED + 1;
        for length in [Some(big), None] {
            let (tx, body) = streamed(length);
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; 1024]);
                let mut left = big;
                while left > 0 {
                    let n = left.min(1024) as usize;
                    tx.send(Ok(chunk.slice(..n))).await.unwrap();
                    left -= n as u64;
                }
            });
            let req = post("/large", body);
            let (status, _) = read(run_in(&mw, &main, req, &context(false)).await).await;
            assert_eq!(status, StatusCode::OK);
        }
        let upgrade = get(
            "/socket",
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        );
        run_in(&mw, &main, upgrade, &context(false)).await.unwrap();
        {
            let seen = main.seen.lock().unwrap();
            assert_eq!(seen.len(), 3);
            // Streamed through, not collected.
            assert!(!seen[0].0 && !seen[1].0);
            assert_eq!(seen[0].1.len() as u64, big);
            assert_eq!(seen[1].1.len() as u64, big);
        }
        // Nothing was sent for those: the first request the mirror sees is this one.
        run_in(&mw, &main, get("/after", &[]), &context(false))
            .await
            .unwrap();
        assert_eq!(next_got(&mut got).await.target, "/after");
    }

    #[tokio::test]
    async fn a_client_body_failure_while_reading_is_the_clients() {
        let (addr, mut got) = mirror_service(200).await;
        let mut cx = services(vec![("m", target("m", vec![addr]))]);
        let mw = build(&json!({"mirrors": [mirror_to("m")]}), &mut cx).unwrap();
        let main = Inspect::default();
        let (tx, body) = streamed(Some(100));
        tokio::spawn(async move {
            tx.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
            let timeout = ClientBodyError::Timeout(Duration::from_secs(1));
            tx.send(Err(Box::new(timeout) as BoxError)).await.unwrap();
        });
        let failure = run_in(&mw, &main, post("/slow", body), &context(false))
            .await
            .expect_err("the client's body failed");
        assert!(matches!(
            failure.error,
            ProxyError::BadRequest(BadRequest::BodyTimeout)
        ));
        assert!(main.seen.lock().unwrap().is_empty());
        run_in(&mw, &main, get("/after", &[]), &context(false))
            .await
            .unwrap();
        assert_eq!(next_got(&mut got).await.target, "/after");
    }

    #[tokio::test]
    async fn broken_mirrors_do_not_touch_the_answer() {
        // One Service without endpoints, one whose endpoint refuses connections.
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let mut cx = services(vec![
            ("empty", target("empty", vec![])),
            ("closed", target("closed", vec![closed])),
        ]);
        let mw = build(
            &json!({"mirrors": [mirror_to("empty"), mirror_to("closed")]}),
            &mut cx,
        )
        .unwrap();
        let main = Recorder::ok();
        let resp = run(&mw, &main, get("/", &[])).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(main.count(), 1);
    }

    /// The share a mirror config's `percent` / `fraction` gives.
    fn share_of(config: Value) -> Result<Share, String> {
        let percent = config.get("percent").and_then(Value::as_i64);
        let fraction: Option<FractionConfig> = config
            .get("fraction")
            .map(|f| serde_json::from_value(f.clone()).unwrap());
        share(percent, fraction.as_ref())
    }

    #[test]
    fn shares_follow_percent_and_fraction() {
        assert_eq!(share_of(json!({})), Ok(Share::Always));
        assert_eq!(share_of(json!({"percent": 100})), Ok(Share::Always));
        assert_eq!(share_of(json!({"percent": 0})), Ok(Share::Never));
        assert_eq!(
            share_of(json!({"percent": 20})),
            Ok(Share::Some {
                numerator: 20,
                denominator: 100
            })
        );
        assert_eq!(
            share_of(json!({"fraction": {"numerator": 25, "denominator": 50}})),
            Ok(Share::Some {
                numerator: 25,
                denominator: 50
            })
        );
        assert_eq!(
            share_of(json!({"fraction": {"numerator": 35}})),
            Ok(Share::Some {
                numerator: 35,
                denominator: 100
            })
        );
        assert_eq!(
            share_of(json!({"fraction": {"numerator": 3, "denominator": 3}})),
            Ok(Share::Always)
        );
        for bad in [
            json!({"percent": 101}),
            json!({"percent": -1}),
            json!({"percent": 5, "fraction": {"numerator": 1}}),
            json!({"fraction": {"numerator": 4, "denominator": 3}}),
            json!({"fraction": {"numerator": -1}}),
            json!({"fraction": {"numerator": 0, "denominator": 0}}),
        ] {
            assert!(share_of(bad.clone()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mirrors_are_chosen_at_their_rates() {
        // httproute-request-percentage-mirror: 20%, 25/50, and never/always.
        let unreachable = || target("x", vec![]);
        let mirror = |share| {
            Arc::new(Mirror {
                name: "x".into(),
                target: unreachable(),
                share,
                in_flight: AtomicUsize::new(0),
            })
        };
        let step = GatewayMirror {
            mirrors: vec![
                mirror(share_of(json!({"percent": 20})).unwrap()),
                mirror(
                    share_of(json!({"fraction": {"numerator": 25, "denominator": 50}})).unwrap(),
                ),
                mirror(Share::Never),
                mirror(Share::Always),
            ]
            .into(),
        };
        let runs = 20_000;
        let mut counts = [0u32; 4];
        for _ in 0..runs {
            let chosen = step.choose();
            for (i, count) in counts.iter_mut().enumerate() {
                if chosen & (1 << i) != 0 {
                    *count += 1;
                }
            }
        }
        // Binomial: 5 standard deviations (sqrt(n p (1-p)): 57 and 71).
        assert!((4_000i64 - i64::from(counts[0])).abs() < 300, "{counts:?}");
        assert!((10_000i64 - i64::from(counts[1])).abs() < 360, "{counts:?}");
        assert_eq!(counts[2], 0);
        assert_eq!(counts[3], runs);
    }

    #[test]
    fn in_flight_copies_are_capped_per_mirror() {
        let mirror = Arc::new(Mirror {
            name: "x".into(),
            target: target("x", vec![]),
            share: Share::Always,
            in_flight: AtomicUsize::new(0),
        });
        let slots: Vec<Slot> = (0..MAX_IN_FLIGHT)
            .map(|_| Slot::take(&mirror).expect("a free slot"))
            .collect();
        assert!(Slot::take(&mirror).is_none());
        drop(slots);
        assert_eq!(mirror.in_flight.load(Ordering::Acquire), 0);
        assert!(Slot::take(&mirror).is_some());
    }

    #[test]
    fn configs_are_validated() {
        let ok = || services(vec![("m", target("m", vec![]))]);
        assert!(build(&json!({"mirrors": [mirror_to("m")]}), &mut ok()).is_ok());
        let bad = [
            (json!({"mirrors": []}), "no mirror"),
            (
                json!({"mirrors": [{"namespace": "infra", "service": "other", "port": 8080}]}),
                "not found",
            ),
            (
                json!({"mirrors": [{"namespace": "elsewhere", "service": "m", "port": 8080}]}),
                "not found",
            ),
            (
                json!({"mirrors": [{"namespace": "infra", "service": "m", "port": 0}]}),
                "invalid port",
            ),
            (
                json!({"mirrors": [{"namespace": "infra", "service": "m", "port": 8080, "percent": 101}]}),
                "between 0 and 100",
            ),
            (
                json!({"mirrors": [{"namespace": "infra", "service": "m", "port": 8080, "percent": 1, "fraction": {"numerator": 1}}]}),
                "only one",
            ),
            (
                json!({"mirrors": [{"namespace": "infra", "service": "m", "port": "http"}]}),
                "invalid type",
            ),
            (json!({"mirror": []}), "unknown field"),
        ];
        for (config, expected) in bad {
            let err = build(&config, &mut ok()).expect_err("refused").to_string();
            assert!(err.contains(expected), "{config}: {err}");
        }
    }
}
