//! The native engine's HTTP/1.1 client for `http` types: what `Proxy::forward`
//! uses to send a bodiless request to a plain HTTP/1.1 backend (HTTP/2
//! clients, and routes with middlewares on either engine), instead of hyper's
//! client with its connection task, request channel and response oneshot.
//!
//! The request head is written from the `HeaderMap` in one write to a
//! connection from [`TcpPool`]; the response head is parsed in place
//! (`response.rs`, the same checks as the fast path: 502 on anything
//! ambiguous) and 1xx interim responses are skipped (an `http::Response`
//! cannot carry them). The body ([`TcpBody`]) is read by its framing into one
//! `BytesMut` whose pieces are handed out without copying; chunked framing is
//! validated and removed by `chunked.rs`, and its trailer fields become a
//! trailers frame. The connection goes back to the pool
//! only when the body was read to its end with nothing extra after it.
//!
//! Requests with a body, and Upgrade requests, stay on hyper's client: its
//! connection task sends the body while the response is read.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::chunked::ChunkedScanner;
use super::response::{self, BackendFraming};
use super::MAX_RESPONSE_HEAD;
use crate::body::{BoxError, RequestBody, ResponseBody};
use crate::upstream::{TcpPool, UpstreamError};

/// Whether [`send`] can carry `req`: no body to stream, no Upgrade to tunnel.
pub(crate) fn can_send(req: &Request<RequestBody>) -> bool {
    req.body().is_end_stream() && req.method() != Method::CONNECT
}

/// Sends a bodiless `req` to `endpoint` over `pool` and reads the response
/// head; the body streams from the connection as it is read.
pub(crate) async fn send(
    pool: &TcpPool,
    endpoint: SocketAddr,
    req: &Request<RequestBody>,
) -> Result<Response<ResponseBody>, UpstreamError> {
    pool.count_request();
    let head = request_head(req, endpoint);
    let head_request = req.method() == Method::HEAD;
    let timeout = pool.settings().response_header_timeout;
    // A pooled connection the backend closed as we picked it fails before any
    // answer: the request (bodiless) is then sent once more on a fresh one.
    if let Some(stream) = pool.checkout(endpoint) {
        match exchange(stream, &head, head_request, timeout).await {
            Err(Failed::Stale) => {}
            Err(Failed::Error(e)) => return Err(e),
            Ok(answer) => return Ok(answer.into_response(pool, endpoint)),
        }
    }
    let stream = pool.connect(endpoint).await?;
    match exchange(stream, &head, head_request, timeout).await {
        Ok(answer) => Ok(answer.into_response(pool, endpoint)),
        Err(Failed::Stale) => Err(UpstreamError::InvalidResponse(
            "the backend closed the connection without answering",
        )),
        Err(Failed::Error(e)) => Err(e),
    }
}

/// The request head as the backend gets it: origin-form target, the headers
/// as `Proxy::forward` left them (hop-by-hop fields already removed). A request
/// without framing fields has no body (RFC 9112 §6.3), so none is added.
fn request_head(req: &Request<RequestBody>, endpoint: SocketAddr) -> Vec<u8> {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(req.method().as_str().len() + target.len() + fields + 64);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers().contains_key(HOST) {
        out.extend_from_slice(b"host: ");
        match req.uri().authority() {
            Some(authority) => out.extend_from_slice(authority.as_str().as_bytes()),
            None => out.extend_from_slice(endpoint.to_string().as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Why one attempt failed.
enum Failed {
    /// The connection was closed before any byte of an answer: try a fresh one.
    Stale,
    /// Anything else: the answer to the client.
    Error(UpstreamError),
}

/// A parsed final response head, with the connection and the bytes read past it.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    framing: BackendFraming,
    keep_alive: bool,
    stream: TcpStream,
    buf: BytesMut,
}

impl Answer {
    fn into_response(self, pool: &TcpPool, endpoint: SocketAddr) -> Response<ResponseBody> {
        let body = TcpBody {
            stream: Some(self.stream),
            buf: self.buf,
            state: match self.framing {
                BackendFraming::Empty => BodyState::Done,
                BackendFraming::Length(n) => BodyState::Length(n),
                BackendFraming::Chunked => BodyState::Chunked(ChunkedScanner::new(), Vec::new()),
                BackendFraming::UntilClose => BodyState::UntilClose,
            },
            reusable: self.keep_alive && self.framing != BackendFraming::UntilClose,
            pool: pool.clone(),
            endpoint,
        };
        let body = if body.is_done() {
            body.finish();
            ResponseBody::empty()
        } else {
            ResponseBody::boxed(body)
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp
    }
}

/// Writes the head and reads the final response head, within `timeout`.
async fn exchange(
    mut stream: TcpStream,
    head: &[u8],
    head_request: bool,
    timeout: std::time::Duration,
) -> Result<Answer, Failed> {
    if stream.write_all(head).await.is_err() {
        return Err(Failed::Stale);
    }
    match tokio::time::timeout(timeout, read_head(stream, head_request)).await {
        Ok(result) => result,
        Err(_) => Err(Failed::Error(UpstreamError::Timeout(timeout))),
    }
}

async fn read_head(mut stream: TcpStream, head_request: bool) -> Result<Answer, Failed> {
    let mut buf = BytesMut::with_capacity(8192);
    let mut answered = false;
    loop {
        if buf.len() >= MAX_RESPONSE_HEAD {
            return Err(Failed::Error(UpstreamError::InvalidResponse(
                "response head too large",
            )));
        }
        match tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf).await {
            Ok(0) if !answered => return Err(Failed::Stale),
            Ok(0) => {
                return Err(Failed::Error(UpstreamError::InvalidResponse(
                    "the backend closed the connection mid-head",
                )))
            }
            Ok(_) => answered = true,
            Err(e) if !answered => {
                tracing::debug!(error = %e, "pooled backend connection failed before answering");
                return Err(Failed::Stale);
            }
            Err(e) => return Err(Failed::Error(UpstreamError::Io(e))),
        }
        while let Some(parsed) = parse_head(&buf, head_request).map_err(Failed::Error)? {
            buf.advance(parsed.len);
            if parsed.status.is_informational() {
                if parsed.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(Failed::Error(UpstreamError::InvalidResponse(
                        "101 Switching Protocols to a request without Upgrade",
                    )));
                }
                continue;
            }
            return Ok(Answer {
                status: parsed.status,
                headers: parsed.headers,
                framing: parsed.framing,
                keep_alive: parsed.keep_alive,
                stream,
                buf,
            });
        }
    }
}

/// One response head, copied out of the read buffer into `http` types.
struct ParsedHead {
    status: StatusCode,
    headers: http::HeaderMap,
    framing: BackendFraming,
    keep_alive: bool,
    len: usize,
}

fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<ParsedHead>, UpstreamError> {
    let mut slots = response::response_slots();
    let head = match response::parse(buf, &mut slots, head_request) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(why) => return Err(UpstreamError::InvalidResponse(why)),
    };
    let status = StatusCode::from_u16(head.code)
        .map_err(|_| UpstreamError::InvalidResponse("status code out of range"))?;
    let mut headers = http::HeaderMap::with_capacity(head.headers.len());
    for field in head.headers {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| UpstreamError::InvalidResponse("invalid header name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| UpstreamError::InvalidResponse("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(Some(ParsedHead {
        status,
        headers,
        framing: head.framing,
        keep_alive: head.keep_alive,
        len: head.len,
    }))
}

/// Where a response body is.
#[derive(Debug)]
enum BodyState {
    /// This many bytes are still due.
    Length(u64),
    /// Chunked: the scanner validates the framing and finds the data; the
    /// trailer section's bytes are kept to be handed on as trailers.
    Chunked(ChunkedScanner, Vec<u8>),
    /// Until the backend closes the connection.
    UntilClose,
    /// Read to its end.
    Done,
}

/// A backend's response body read straight from its connection.
#[derive(Debug)]
pub(crate) struct TcpBody {
    /// The connection, until it goes back to the pool or is dropped.
    stream: Option<TcpStream>,
    /// Bytes read and not yet handed out.
    buf: BytesMut,
    state: BodyState,
    /// Whether the connection may be reused once the body is complete.
    reusable: bool,
    pool: TcpPool,
    endpoint: SocketAddr,
}

/// The fields of a trailer section (as the scanner validated it, final
/// empty line included), or `None` when it has none or they do not fit `http`.
fn trailer_fields(section: &[u8]) -> Option<http::HeaderMap> {
    if section.len() <= 2 {
        return None;
    }
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let httparse::Status::Complete((_, fields)) =
        httparse::parse_headers(section, &mut slots).ok()?
    else {
        return None;
    };
    let mut map = http::HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(field.value).ok()?;
        map.append(name, value);
    }
    Some(map)
}

/// Bytes read from the backend at a time.
const READ_SIZE: usize = 16 * 1024;

impl TcpBody {
    fn is_done(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    /// Hands the connection back when the exchange ended cleanly.
    fn finish(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if let Some(stream) = self.stream.take() {
            if self.reusable && self.buf.is_empty() {
                self.pool.put_back(self.endpoint, stream);
            }
        }
    }

    /// The next frame of body in `buf`, if any, moving the state on.
    fn next_frame(&mut self) -> Result<Option<Frame<Bytes>>, BoxError> {
        match &mut self.state {
            BodyState::Done => Ok(None),
            BodyState::Length(0) => {
                self.state = BodyState::Done;
                Ok(None)
            }
            BodyState::Length(left) => {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(*left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
                *left -= n as u64;
                let piece = self.buf.split_to(n).freeze();
                if *left == 0 {
                    self.state = BodyState::Done;
                }
                Ok(Some(Frame::data(piece)))
            }
            BodyState::UntilClose => {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Frame::data(self.buf.split().freeze())))
            }
            BodyState::Chunked(scanner, trailer) => {
                // Framing bytes go through the scanner one at a time until it
                // is inside chunk data, which is handed out whole.
                while !self.buf.is_empty() {
                    let due = scanner.data_remaining();
                    if due > 0 {
                        let n =
                            usize::try_from(due).map_or(self.buf.len(), |d| d.min(self.buf.len()));
                        scanner.scan(&self.buf[..n], |_| {})?;
                        return Ok(Some(Frame::data(self.buf.split_to(n).freeze())));
                    }
                    let in_trailer = scanner.in_trailer();
                    let scanned = scanner.scan(&self.buf[..1], |_| {})?;
                    if in_trailer {
                        trailer.extend_from_slice(&self.buf[..scanned.consumed]);
                    }
                    self.buf.advance(scanned.consumed);
                    if scanned.done {
                        let fields = trailer_fields(trailer);
                        self.state = BodyState::Done;
                        return Ok(fields.map(Frame::trailers));
                    }
                }
                Ok(None)
            }
        }
    }
}

impl Body for TcpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.next_frame() {
                Ok(Some(frame)) if frame.data_ref().is_none_or(|data| !data.is_empty()) => {
                    if this.is_done() {
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(_) if this.is_done() => {
                    this.release();
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => {
                    this.stream = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < READ_SIZE / 4 {
                this.buf.reserve(READ_SIZE);
            }
            match tokio_util::io::poll_read_buf(Pin::new(stream), cx, &mut this.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    this.stream = None;
                    if matches!(this.state, BodyState::UntilClose) {
                        this.state = BodyState::Done;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the backend closed the connection mid-body",
                    )
                    .into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.stream = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Length(left) => SizeHint::with_exact(left),
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Chunked(..) | BodyState::UntilClose => SizeHint::new(),
        }
    }
}
