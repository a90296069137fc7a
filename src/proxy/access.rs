//! Feeding the access log from both engines: what a request said is captured
//! before it is forwarded (only when an access log is on), and one line is
//! recorded when its response has been sent.

use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::accesslog::{AccessLog, Entry};
use crate::body::{BoxError, ResponseBody};
use crate::exchange::ClientInfo;
use crate::router::Route;

/// What the access log needs of a request, owned so it outlives the head's
/// buffer; built only when an access log is on. Every text field lives in one
/// buffer (one allocation), addressed by ranges.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    start: SystemTime,
    began: Instant,
    number: u64,
    protocol: &'static str,
    request_size: u64,
    text: String,
    method: Range<u32>,
    target: Range<u32>,
    authority: Range<u32>,
    referer: Option<Range<u32>>,
    user_agent: Option<Range<u32>>,
    /// Index into the log's `--access-log-header` names, and the value.
    headers: Vec<(u16, Range<u32>)>,
}

/// The outcome of a request, for its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome<'a> {
    /// The status sent to the client.
    pub status: u16,
    /// Response body bytes sent (or announced) to the client.
    pub size: u64,
    /// The route, when one matched.
    pub route: Option<&'a Route>,
    /// The endpoint, when a backend was asked, and when the exchange with it began.
    pub server: Option<(SocketAddr, Instant)>,
    /// The user an authentication middleware accepted.
    pub user: Option<&'a str>,
    /// The trace id, when tracing.
    pub trace_id: Option<&'a str>,
}

/// Appends `bytes` (as text, lossily) to `text` and returns where they are.
fn push(text: &mut String, bytes: &[u8]) -> Range<u32> {
    let start = text.len();
    match std::str::from_utf8(bytes) {
        Ok(s) => text.push_str(s),
        Err(_) => text.push_str(&String::from_utf8_lossy(bytes)),
    }
    u32::try_from(start).unwrap_or(u32::MAX)..u32::try_from(text.len()).unwrap_or(u32::MAX)
}

impl RequestLog {
    /// Captures a request's line fields; `headers` are all its header fields.
    pub(crate) fn capture<'h>(
        log: &AccessLog,
        method: &str,
        target: &str,
        authority: &str,
        protocol: &'static str,
        request_size: u64,
        headers: impl Iterator<Item = (&'h str, &'h [u8])>,
    ) -> Box<Self> {
        let mut text = String::with_capacity(method.len() + target.len() + authority.len() + 96);
        let method = push(&mut text, method.as_bytes());
        let target = push(&mut text, target.as_bytes());
        let authority = push(&mut text, authority.as_bytes());
        let mut entry = Self {
            start: SystemTime::now(),
            began: Instant::now(),
            number: log.next_request(),
            protocol,
            request_size,
            text,
            method,
            target,
            authority,
            referer: None,
            user_agent: None,
            headers: Vec::new(),
        };
        let wanted = log.headers();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("referer") {
                entry.referer = Some(push(&mut entry.text, value));
            } else if name.eq_ignore_ascii_case("user-agent") {
                entry.user_agent = Some(push(&mut entry.text, value));
            }
            if let Some(i) = wanted
                .iter()
                .position(|w| name.eq_ignore_ascii_case(w.as_str()))
            {
                let range = push(&mut entry.text, value);
                entry
                    .headers
                    .push((u16::try_from(i).unwrap_or(u16::MAX), range));
            }
        }
        Box::new(entry)
    }

    fn get(&self, range: &Range<u32>) -> &str {
        self.text
            .get(range.start as usize..range.end as usize)
            .unwrap_or("")
    }

    /// Records the line for this request.
    pub(crate) fn record(&self, log: &AccessLog, client: &ClientInfo, outcome: Outcome<'_>) {
        let duration = self.began.elapsed();
        if !log.wants(outcome.status, duration) {
            return;
        }
        let names = log.headers();
        // Collecting nothing allocates nothing: only lines with headers pay.
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .filter_map(|(i, range)| Some((names.get(usize::from(*i))?.as_str(), self.get(range))))
            .collect();
        let scheme = outcome.route.map_or("http", |r| r.client.scheme_str());
        let entry = Entry {
            start: self.start,
            duration,
            origin_duration: outcome.server.map(|(_, since)| since.elapsed()),
            client: client.remote,
            user: outcome.user,
            method: self.get(&self.method),
            target: self.get(&self.target),
            protocol: self.protocol,
            authority: self.get(&self.authority),
            tls: client.tls.then(|| client.tls_session.unwrap_or(("", ""))),
            entrypoint: if client.tls { "websecure" } else { "web" },
            status: outcome.status,
            origin_status: outcome.server.map(|_| outcome.status),
            downstream_size: outcome.size,
            request_size: self.request_size,
            referer: self.referer.as_ref().map(|r| self.get(r)),
            user_agent: self.user_agent.as_ref().map(|r| self.get(r)),
            request_count: self.number,
            router: outcome.route.map(|r| &*r.name),
            service: outcome
                .route
                .and_then(|r| r.service.as_ref())
                .map(|s| (s.namespace.as_str(), s.service.as_str())),
            server: outcome.server.map(|(addr, _)| addr),
            server_scheme: scheme,
            ingress: outcome.route.map(|r| {
                (
                    r.ingress.namespace.as_deref().unwrap_or(""),
                    r.ingress.name.as_str(),
                )
            }),
            retry_attempts: 0,
            trace_id: outcome.trace_id,
            headers: &headers,
        };
        log.record(&entry);
    }
}

/// A response body on the hyper path that counts what it hands out and writes
/// the request's access-log line when it ends (or is dropped unfinished), so
/// the line carries the whole duration and the bytes really sent.
pub(crate) struct LoggedBody {
    inner: ResponseBody,
    sent: u64,
    pending: Option<PendingLine>,
}

/// What is needed to write the line once the body is done.
pub(crate) struct PendingLine {
    /// The access log.
    pub log: Arc<AccessLog>,
    /// The request's captured fields.
    pub request: Box<RequestLog>,
    /// The client.
    pub client: ClientInfo,
    /// The route, when one matched.
    pub route: Option<Arc<Route>>,
    /// The status sent.
    pub status: u16,
    /// The endpoint asked, and when.
    pub server: Option<(SocketAddr, Instant)>,
    /// The user an authentication middleware accepted.
    pub user: Option<String>,
    /// The trace id, when tracing.
    pub trace_id: Option<String>,
}

impl LoggedBody {
    /// `inner`, logged as `line` when it ends.
    pub(crate) fn new(inner: ResponseBody, line: PendingLine) -> Self {
        Self {
            inner,
            sent: 0,
            pending: Some(line),
        }
    }

    fn finish(&mut self) {
        if let Some(line) = self.pending.take() {
            let outcome = Outcome {
                status: line.status,
                size: self.sent,
                route: line.route.as_deref(),
                server: line.server,
                user: line.user.as_deref(),
                trace_id: line.trace_id.as_deref(),
            };
            line.request.record(&line.log, &line.client, outcome);
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
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
