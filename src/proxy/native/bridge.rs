//! The `http`-types side of the native engine: routes whose middlewares,
//! sticky sessions, redirects or backend protocol need `http::Request` and
//! `http::Response` run the same `Proxy::forward` the hyper engine runs, with
//! the client's body fed through a bounded channel by the connection task, and
//! the response (any `ResponseBody`) written back by [`write_response`], which
//! also writes every error the engine answers.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_LENGTH, DATE};
use http::request::Parts;
use http::Response;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::buffer::ReadBuf;
use super::chunked::ChunkedScanner;
use super::conn::Connection;
use super::head::{parse_length, Framing};
use super::prepare::Facts;
use super::relay::{self, fill_body, write_all, BodyError, Joined};
use super::rewrite::{finish_response_head, ClientFraming, ResponseHeadOptions};
use crate::body::{BoxError, ChannelBody, RequestBody, ResponseBody};
use crate::exchange::{BadRequest, ProxyError};
use crate::proxy::log_error;
use crate::router::Route;

/// Frames in flight between the connection task and the body's reader.
const BODY_FRAMES: usize = 2;

/// Serves one request through `Proxy::forward`; returns whether the client
/// connection stays open.
pub(super) async fn serve<R, W>(
    conn: &mut Connection<R, W>,
    facts: &Facts,
    route: Arc<Route>,
    parts: Parts,
    host: Option<HeaderValue>,
) -> bool
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let start = Instant::now();
    conn.inbuf.consume(facts.head_len);
    let (frames, body) = match facts.framing {
        Framing::Empty => (None, RequestBody::empty()),
        Framing::Length(n) => channel(Some(n)),
        Framing::Chunked => channel(None),
    };
    let head_sent = AtomicBool::new(false);
    let Connection {
        reader,
        writer,
        inbuf,
        out,
        client,
        proxy,
        limits,
        timers,
        ..
    } = conn;
    let handler = async {
        let response = match proxy.forward(&route, parts, body, host, client).await {
            Ok(response) => response,
            Err(error) => {
                log_error(&error, Some(&route), client);
                error.into_response()
            }
        };
        head_sent.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
        let server = response
            .extensions()
            .get::<crate::proxy::ServedBy>()
            .map(|s| (s.0, s.1));
        let user = response
            .extensions()
            .get::<crate::exchange::AuthenticatedUser>()
            .map(|u| u.0.clone());
        let head_request = facts.head_request();
        let written = write_response(
            writer,
            out,
            response,
            head_request,
            facts.http10,
            facts.keep_alive,
        );
        (status, server, user, written.await)
    };
    let upload = async {
        match frames {
            None => Ok(()),
            Some(frames) => {
                pump(
                    reader,
                    inbuf,
                    facts.framing,
                    frames,
                    limits.body_read,
                    &mut timers.body,
                )
                .await
            }
        }
    };
    let mut served_by = None;
    let mut served_user = None;
    let (keep_alive, status) = match relay::upload_while(upload, handler).await {
        Joined::Finished {
            upload,
            response: (status, server, user, written),
        } => {
            let uploaded = matches!(upload, Some(Ok(())));
            conn.sent_body = written.as_ref().map_or(0, |w| w.body_bytes);
            served_by = server;
            served_user = user;
            (uploaded && written.is_ok_and(|w| w.keep_alive), status)
        }
        Joined::UploadFailed(e) => {
            tracing::debug!(route = %route.name, error = %e, "request body failed");
            if matches!(e, BodyError::Malformed(_)) && !head_sent.load(Ordering::Relaxed) {
                let error = ProxyError::BadRequest(BadRequest::Malformed);
                let response = error.into_response();
                let _ = write_response(
                    &mut conn.writer,
                    &mut conn.out,
                    response,
                    false,
                    facts.http10,
                    false,
                )
                .await;
            }
            (false, 400)
        }
    };
    route
        .stats
        .record(conn.client.tls, &facts.method, status, start.elapsed());
    conn.log_access(
        Some(facts),
        Some(&route),
        status,
        served_by,
        served_user.as_deref(),
    );
    keep_alive
}

fn channel(length: Option<u64>) -> (Option<mpsc::Sender<Result<Bytes, BoxError>>>, RequestBody) {
    let (frames, receiver) = mpsc::channel(BODY_FRAMES);
    (
        Some(frames),
        RequestBody::Channel(ChannelBody::new(receiver, length)),
    )
}

/// Feeds the client's body (decoded) into `frames` until it ends.
async fn pump<R: AsyncRead + Unpin>(
    reader: &mut R,
    inbuf: &mut ReadBuf,
    framing: Framing,
    frames: mpsc::Sender<Result<Bytes, BoxError>>,
    timeout: Duration,
    timer: &mut super::timer::Deadline,
) -> Result<(), BodyError> {
    let unwanted = || BodyError::Backend(io::Error::other("the request body is no longer read"));
    let mut left = match framing {
        Framing::Empty => return Ok(()),
        Framing::Length(n) => n,
        Framing::Chunked => u64::MAX,
    };
    let mut scanner = ChunkedScanner::new();
    loop {
        if inbuf.is_empty() {
            fill_body(reader, inbuf, timeout, timer).await?;
        }
        let data = inbuf.data();
        let (chunk, consumed, done) = if framing == Framing::Chunked {
            let mut chunk = BytesMut::new();
            let scanned = match scanner.scan(data, |range| chunk.extend_from_slice(&data[range])) {
                Ok(scanned) => scanned,
                Err(e) => {
                    let _ = frames.send(Err(Box::new(e))).await;
                    return Err(BodyError::Malformed(e));
                }
            };
            (chunk.freeze(), scanned.consumed, scanned.done)
        } else {
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
            left -= take as u64;
            (Bytes::copy_from_slice(&data[..take]), take, left == 0)
        };
        inbuf.consume(consumed);
        if !chunk.is_empty() && frames.send(Ok(chunk)).await.is_err() {
            return Err(unwanted());
        }
        if done {
            return Ok(());
        }
    }
}

/// How a written response left the connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    /// Body bytes written (data, without framing).
    pub body_bytes: u64,
}

/// Writes any response to an HTTP/1.x client: its head (hop-by-hop fields
/// dropped, Date added when missing) and its body framed by Content-Length,
/// chunked (trailers included), or the connection's end for HTTP/1.0.
pub(super) async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    response: Response<ResponseBody>,
    head_request: bool,
    http10: bool,
    keep_alive: bool,
) -> io::Result<Written> {
    let (parts, mut body) = response.into_parts();
    let code = parts.status.as_u16();
    let bodyless = head_request || code < 200 || code == 204 || code == 304;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| parse_length(v.as_bytes()));
    let computed = (!bodyless && declared.is_none())
        .then(|| body.size_hint().exact())
        .flatten();
    let framing = match (bodyless, declared.or(computed)) {
        (true, _) | (false, Some(_)) => ClientFraming::AsIs,
        (false, None) if http10 => ClientFraming::UntilClose,
        (false, None) => ClientFraming::Chunked,
    };
    let keep_alive = keep_alive && framing != ClientFraming::UntilClose;
    write_head(out, &parts, computed, http10);
    finish_response_head(
        out,
        ResponseHeadOptions {
            framing,
            keep_alive,
            http10,
        },
    );
    if bodyless {
        write_all(writer, &mut [IoSlice::new(out)]).await?;
        return Ok(Written {
            keep_alive,
            body_bytes: 0,
        });
    }
    let mut sent: u64 = 0;
    let mut head_pending = true;
    let chunked = framing == ClientFraming::Chunked;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(io::Error::other)?;
        let frame = match frame.into_data() {
            Ok(data) => {
                sent += data.len() as u64;
                write_data(writer, out, &data, chunked, &mut head_pending).await?;
                continue;
            }
            Err(frame) => frame,
        };
        if let (Ok(trailers), true) = (frame.into_trailers(), chunked) {
            let written =
                end_chunked(writer, out, &mut head_pending, Some(&trailers), keep_alive).await?;
            return Ok(Written {
                body_bytes: sent,
                ..written
            });
        }
    }
    if chunked {
        let written = end_chunked(writer, out, &mut head_pending, None, keep_alive).await?;
        return Ok(Written {
            body_bytes: sent,
            ..written
        });
    }
    if head_pending {
        write_all(writer, &mut [IoSlice::new(out)]).await?;
    }
    // A body shorter or longer than its declared length leaves the framing broken.
    let exact = declared.or(computed).is_none_or(|n| n == sent);
    Ok(Written {
        keep_alive: keep_alive && exact,
        body_bytes: sent,
    })
}

/// The status line and header fields of `parts` into `out` (cleared first).
fn write_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    computed: Option<u64>,
    http10: bool,
) {
    use std::io::Write as _;
    out.clear();
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
    let reason = reason
        .as_deref()
        .or(parts.status.canonical_reason())
        .unwrap_or("");
    let version = if http10 { "1.0" } else { "1.1" };
    let _ = write!(out, "HTTP/{version} {} {reason}\r\n", parts.status.as_u16());
    for (name, value) in &parts.headers {
        if matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade"
        ) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(DATE) {
        super::date::append(out);
    }
    if let Some(length) = computed {
        let _ = write!(out, "content-length: {length}\r\n");
    }
}

async fn write_data<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    data: &[u8],
    chunked: bool,
    head_pending: &mut bool,
) -> io::Result<()> {
    use std::io::Write as _;
    if data.is_empty() {
        return Ok(());
    }
    if !*head_pending {
        out.clear();
    }
    *head_pending = false;
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
        return write_all(
            writer,
            &mut [IoSlice::new(out), IoSlice::new(data), IoSlice::new(b"\r\n")],
        )
        .await;
    }
    write_all(writer, &mut [IoSlice::new(out), IoSlice::new(data)]).await
}

async fn end_chunked<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    head_pending: &mut bool,
    trailers: Option<&http::HeaderMap>,
    keep_alive: bool,
) -> io::Result<Written> {
    if !*head_pending {
        out.clear();
    }
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    write_all(writer, &mut [IoSlice::new(out)]).await?;
    Ok(Written {
        keep_alive,
        body_bytes: 0,
    })
}
