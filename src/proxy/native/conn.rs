//! One client connection on the native engine: read a head, prepare it, run the
//! exchange, and loop while both sides keep the connection alive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::buffer::ReadBuf;
use super::head::Framing;
use super::prepare::{prepare, Facts, Prepared, RequestSpans};
use super::relay::{self, BodyError, Joined, Progress, RelayError, Relayed, ResponseContext};
use super::timer::Deadline;
use super::{bridge, Limits};
use crate::exchange::{BadRequest, ClientInfo, ProxyError};
use crate::proxy::access;
use crate::proxy::{log_error, Proxy};
use crate::router::Route;
use crate::upstream::{TcpPool, UpstreamError};

/// The HTTP/2 connection preface (RFC 9113 §3.4): such a connection goes to hyper.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a connection's native life ended.
pub(super) enum Ended {
    /// Closed (by either side, a limit, an error, or shutdown).
    Closed,
    /// The buffered bytes start an HTTP/2 preface or an Upgrade: hyper takes over.
    Handoff,
}

/// One client connection's state: its halves, its reused buffers, and what
/// every request on it shares.
pub(super) struct Connection<R, W> {
    pub reader: R,
    pub writer: W,
    pub inbuf: ReadBuf,
    pub respbuf: ReadBuf,
    pub out: Vec<u8>,
    pub client: ClientInfo,
    pub proxy: Arc<Proxy>,
    pub limits: Limits,
    pub timers: Timers,
    /// Response body bytes of the last relayed exchange (for the access log).
    pub sent_body: u64,
    /// The spans of the request being served, when tracing is on.
    pub trace: Option<Box<RequestSpans>>,
}

/// The connection's reusable timers: one per kind of wait.
#[derive(Debug)]
pub(super) struct Timers {
    /// The next request head.
    pub head: Deadline,
    /// A backend's response head.
    pub response: Deadline,
    /// The client's request body.
    pub body: Deadline,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            head: Deadline::new(),
            response: Deadline::new(),
            body: Deadline::new(),
        }
    }
}

/// The result of one exchange over a backend connection.
enum Exchange {
    /// Done (the response was relayed or the client got an error answer).
    Done { keep_alive: bool, code: u16 },
    /// A reused connection turned out closed before any of the request was
    /// taken: the exchange may be tried again on a fresh one.
    Stale,
}

impl<R, W> Connection<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Serves requests until the connection closes or must be handed over.
    pub(super) async fn run(&mut self, shutdown: watch::Receiver<bool>) -> Ended {
        let mut first = true;
        // One shutdown watcher for the connection's whole life, not one per request.
        let mut watcher = shutdown.clone();
        let mut stop = std::pin::pin!(crate::proxy::stopped(&mut watcher));
        loop {
            let mut prepared = match self.next_request(first, stop.as_mut()).await {
                Ok(prepared) => prepared,
                Err(ended) => return ended,
            };
            first = false;
            self.trace = prepared.take_trace();
            let keep_alive = match prepared {
                Prepared::Partial => false,
                Prepared::Handoff => return Ended::Handoff,
                Prepared::Refuse {
                    error,
                    facts,
                    route,
                    ..
                } => {
                    self.refuse(error, facts.as_ref(), route.as_deref(), Instant::now())
                        .await
                }
                Prepared::Forward {
                    facts,
                    route,
                    endpoint,
                    ..
                } => self.forward(&facts, &route, endpoint).await,
                Prepared::Bridge {
                    facts,
                    route,
                    parts,
                    host,
                    ..
                } => bridge::serve(self, &facts, route, parts, host).await,
            };
            // The version moves only when shutdown starts (or its sender is gone).
            if !keep_alive || shutdown.has_changed().unwrap_or(true) {
                let _ = self.writer.flush().await;
                return Ended::Closed;
            }
        }
    }

    /// Reads until a whole head is buffered (within the header-read timeout),
    /// and prepares it.
    async fn next_request(
        &mut self,
        first: bool,
        mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Prepared, Ended> {
        let deadline = tokio::time::Instant::now() + self.limits.header_read;
        loop {
            if !self.inbuf.is_empty() {
                let data = self.inbuf.data();
                if first && preface_may_follow(data) {
                    if data.len() >= 4 {
                        return Err(Ended::Handoff);
                    }
                } else {
                    match prepare(
                        &self.proxy,
                        &self.client,
                        self.inbuf.data_mut(),
                        self.limits.max_head,
                        &mut self.out,
                    ) {
                        Prepared::Partial => {}
                        prepared => return Ok(prepared),
                    }
                }
            }
            let idle = self.inbuf.is_empty();
            let read = self
                .timers
                .head
                .run(deadline, self.inbuf.fill(&mut self.reader));
            tokio::select! {
                read = read => match read {
                    Some(Ok(n)) if n > 0 => {}
                    _ => return Err(Ended::Closed),
                },
                () = stop.as_mut(), if idle => return Err(Ended::Closed),
            }
        }
    }

    /// Answers `error`, counts it, and reports whether the connection stays open.
    pub(super) async fn refuse(
        &mut self,
        error: ProxyError,
        facts: Option<&Facts>,
        route: Option<&Route>,
        start: Instant,
    ) -> bool {
        let (keep, status) = self.answer(error, facts, route).await;
        let stats = route.map_or(&self.proxy.unmatched, |r| &r.stats);
        let method = facts.map_or(&http::Method::GET, |f| &f.method);
        stats.record(self.client.tls, method, status, start.elapsed());
        self.sent_body = 0;
        self.log_access(facts, route, status, None, None);
        keep
    }

    /// Counts a fast-path request that `endpoint` was asked for, and logs it.
    fn finished(
        &mut self,
        facts: &Facts,
        route: &Route,
        code: u16,
        endpoint: SocketAddr,
        start: Instant,
    ) {
        let elapsed = start.elapsed();
        route
            .stats
            .record(self.client.tls, &facts.method, code, elapsed);
        route.record_endpoint(endpoint, &facts.method, code, elapsed);
        self.log_access(
            Some(facts),
            Some(route),
            code,
            Some((endpoint, start)),
            None,
        );
    }

    /// Writes the access-log line of a finished request, when logging, and
    /// ends its spans, when tracing.
    pub(super) fn log_access(
        &mut self,
        facts: Option<&Facts>,
        route: Option<&Route>,
        status: u16,
        server: Option<(SocketAddr, Instant)>,
        user: Option<&str>,
    ) {
        let trace = self.trace.take();
        if let (Some(log), Some(entry)) = (
            self.proxy.access_log(),
            facts.and_then(|f| f.log.as_deref()),
        ) {
            let trace_id = trace.as_ref().map(|t| t.trace_id());
            let outcome = access::Outcome {
                status,
                size: self.sent_body,
                route,
                server,
                user,
                trace_id: trace_id.as_deref(),
            };
            entry.record(log, &self.client, outcome);
        }
        if let Some(trace) = trace {
            trace.finish(status);
        }
    }

    /// Answers `error` and reports whether the connection stays open (only when
    /// the request was parsed, its body, if any, is already buffered whole, and
    /// neither the error nor the client asks for a close) and the status sent.
    async fn answer(
        &mut self,
        error: ProxyError,
        facts: Option<&Facts>,
        route: Option<&Route>,
    ) -> (bool, u16) {
        log_error(&error, route, &self.client);
        let keep =
            facts.is_some_and(|f| f.keep_alive && self.skip_body(f)) && !error.closes_connection();
        let status = error.status().as_u16();
        let response = error.into_response();
        let (head_request, http10) = facts.map_or((false, false), |f| (f.head_request(), f.http10));
        let written = bridge::write_response(
            &mut self.writer,
            &mut self.out,
            response,
            head_request,
            http10,
            keep,
        )
        .await;
        (keep && written.is_ok_and(|w| w.keep_alive), status)
    }

    /// Consumes a refused request's head and body when the body is already
    /// buffered whole; `false` when it is not (the connection must close).
    fn skip_body(&mut self, facts: &Facts) -> bool {
        let after_head = self.inbuf.data().len().saturating_sub(facts.head_len);
        let body = match facts.framing {
            Framing::Empty => Some(0),
            Framing::Length(n) => usize::try_from(n).ok().filter(|n| *n <= after_head),
            Framing::Chunked => {
                let mut scanner = super::chunked::ChunkedScanner::new();
                let rest = &self.inbuf.data()[facts.head_len..];
                scanner
                    .scan(rest, |_| {})
                    .ok()
                    .filter(|s| s.done)
                    .map(|s| s.consumed)
            }
        };
        match body {
            Some(body) => {
                self.inbuf.consume(facts.head_len + body);
                true
            }
            None => false,
        }
    }

    /// The fast path: forwards the head in `out` and the body to `endpoint`
    /// over a pooled connection, and relays the response.
    async fn forward(&mut self, facts: &Facts, route: &Arc<Route>, endpoint: SocketAddr) -> bool {
        let start = Instant::now();
        let Some(pool) = route.client.tcp_pool() else {
            return self
                .refuse(ProxyError::NoEndpoints, Some(facts), Some(route), start)
                .await;
        };
        pool.count_request();
        let mut reused = true;
        let mut stream = match pool.checkout(endpoint) {
            Some(stream) => stream,
            None => match pool.connect(endpoint).await {
                Ok(stream) => {
                    reused = false;
                    stream
                }
                Err(e) => {
                    tracing::warn!(route = %route.name, %endpoint, error = %e, "forwarding failed");
                    let error = ProxyError::from(e);
                    let status = error.status().as_u16();
                    route.record_endpoint(endpoint, &facts.method, status, start.elapsed());
                    return self.refuse(error, Some(facts), Some(route), start).await;
                }
            },
        };
        self.inbuf.consume(facts.head_len);
        loop {
            match self.exchange(&mut stream, facts, pool, route).await {
                (Exchange::Done { keep_alive, code }, reusable) => {
                    if reusable {
                        pool.put_back(endpoint, stream);
                    }
                    self.finished(facts, route, code, endpoint, start);
                    return keep_alive;
                }
                (Exchange::Stale, _) if reused => {
                    tracing::debug!(%endpoint, "pooled backend connection was closed; retrying on a new one");
                    reused = false;
                    stream = match pool.connect(endpoint).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::warn!(route = %route.name, %endpoint, error = %e, "forwarding failed");
                            let Exchange::Done { keep_alive, code } =
                                self.fail(e.into(), facts, route).await
                            else {
                                return false;
                            };
                            self.sent_body = 0;
                            self.finished(facts, route, code, endpoint, start);
                            return keep_alive;
                        }
                    };
                }
                (Exchange::Stale, _) => {
                    let error = UpstreamError::InvalidResponse(
                        "connection closed before the response head",
                    );
                    let Exchange::Done { keep_alive, code } =
                        self.fail(error.into(), facts, route).await
                    else {
                        return false;
                    };
                    self.sent_body = 0;
                    self.finished(facts, route, code, endpoint, start);
                    return keep_alive;
                }
            }
        }
    }

    /// Answers an error once the head has been consumed (the body, if any, is
    /// not read, so the connection then closes); not counted here.
    async fn fail(&mut self, error: ProxyError, facts: &Facts, route: &Route) -> Exchange {
        let closing = Facts {
            keep_alive: facts.keep_alive && facts.framing == Framing::Empty,
            head_len: 0,
            ..facts.clone()
        };
        let (keep_alive, code) = self.answer(error, Some(&closing), Some(route)).await;
        Exchange::Done { keep_alive, code }
    }

    /// One request and response over `stream`; the bool says whether the
    /// backend connection may be reused.
    async fn exchange(
        &mut self,
        stream: &mut TcpStream,
        facts: &Facts,
        pool: &TcpPool,
        route: &Route,
    ) -> (Exchange, bool) {
        self.respbuf.clear();
        self.sent_body = 0;
        let (mut backend_r, mut backend_w) = stream.split();
        if backend_w.write_all(&self.out).await.is_err() {
            return (Exchange::Stale, false);
        }
        let mut cx = ResponseContext {
            head_request: facts.head_request(),
            http10: facts.http10,
            keep_alive: facts.keep_alive,
            sent_continue: false,
            header_timeout: pool.settings().response_header_timeout,
        };
        let progress = Progress::new(facts.framing == Framing::Empty);
        let bodied = facts.framing != Framing::Empty;
        if bodied && facts.expect_continue && self.inbuf.is_empty() {
            if self.writer.write_all(CONTINUE).await.is_err() {
                let done = Exchange::Done {
                    keep_alive: false,
                    code: 499,
                };
                return (done, false);
            }
            cx.sent_continue = true;
        }
        let response = relay::relay_response(
            &mut backend_r,
            &mut self.respbuf,
            &mut self.writer,
            &mut self.out,
            cx,
            &progress,
            &mut self.timers.response,
        );
        let (relayed, upload) = if bodied {
            let upload = async {
                let sent = relay::send_body(
                    &mut self.reader,
                    &mut self.inbuf,
                    &mut backend_w,
                    facts.framing,
                    self.limits.body_read,
                    &mut self.timers.body,
                )
                .await;
                progress.upload.finish();
                sent
            };
            match relay::upload_while(upload, response).await {
                Joined::Finished { upload, response } => (response, upload),
                Joined::UploadFailed(e) => {
                    let sent = progress.head_sent();
                    return (self.upload_failed(e, sent, facts, route).await, false);
                }
            }
        } else {
            (response.await, Some(Ok(())))
        };
        let sent = progress.head_sent();
        self.finish(relayed, upload, sent, facts, route).await
    }

    /// The client broke its upload: 400 for a malformed body (if no response
    /// has started), else just close.
    async fn upload_failed(
        &mut self,
        e: BodyError,
        head_sent: bool,
        facts: &Facts,
        route: &Route,
    ) -> Exchange {
        tracing::debug!(route = %route.name, client = %self.client.remote, error = %e, "request body failed");
        if let (BodyError::Malformed(_), false) = (&e, head_sent) {
            let error = ProxyError::BadRequest(BadRequest::Malformed);
            return self.fail(error, facts, route).await;
        }
        // Nothing more can be said to a client that left or went silent.
        Exchange::Done {
            keep_alive: false,
            code: 400,
        }
    }

    async fn finish(
        &mut self,
        relayed: Result<Relayed, RelayError>,
        upload: Option<Result<(), BodyError>>,
        head_sent: bool,
        facts: &Facts,
        route: &Route,
    ) -> (Exchange, bool) {
        let uploaded = matches!(upload, Some(Ok(())));
        match relayed {
            Ok(relayed) => {
                self.sent_body = relayed.body_bytes;
                let keep_alive = relayed.client_keep_alive && uploaded;
                let done = Exchange::Done {
                    keep_alive,
                    code: relayed.code,
                };
                (done, relayed.backend_reusable && uploaded)
            }
            Err(RelayError::Closed { fresh: true, .. })
                if facts.framing == Framing::Empty && !head_sent =>
            {
                (Exchange::Stale, false)
            }
            Err(error) if !head_sent => {
                let error = match error {
                    RelayError::Timeout(after) => UpstreamError::Timeout(after),
                    RelayError::Closed { error: Some(e), .. } => UpstreamError::Io(e),
                    RelayError::Closed { error: None, .. } => {
                        UpstreamError::InvalidResponse("connection closed before the response head")
                    }
                    RelayError::Invalid(reason) => UpstreamError::InvalidResponse(reason),
                    RelayError::Aborted => {
                        return (
                            Exchange::Done {
                                keep_alive: false,
                                code: 502,
                            },
                            false,
                        );
                    }
                };
                (self.fail(error.into(), facts, route).await, false)
            }
            Err(error) => {
                tracing::debug!(route = %route.name, error = ?error, "response cut short");
                (
                    Exchange::Done {
                        keep_alive: false,
                        code: 502,
                    },
                    false,
                )
            }
        }
    }
}

/// Whether the first bytes of a connection may be the HTTP/2 preface.
fn preface_may_follow(data: &[u8]) -> bool {
    let n = data.len().min(H2_PREFACE.len());
    data[..n] == H2_PREFACE[..n]
}
