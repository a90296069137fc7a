//! Answering one plain HTTP request: options, the report, and the bodies.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::{websocket, Conn};

/// The response body type of every whoami answer.
pub(super) type Body = BoxBody<Bytes, hyper::Error>;

/// The repeating pattern that `?size=N` answers with.
const PATTERN: &[u8; 16] = b"0123456789abcdef";
/// Chunk size for `?size=N`; a multiple of the pattern length keeps it seamless.
const CHUNK: usize = 16 * 1024;

/// The query options of one request.
#[derive(Debug, Default, PartialEq)]
struct Options {
    size: Option<u64>,
    echo: bool,
    status: Option<StatusCode>,
    wait: Option<Duration>,
}

impl Options {
    /// Reads the options from the path and query; an error names the bad one.
    fn parse(path: &str, query: Option<&str>) -> Result<Self, String> {
        let mut opts = Options {
            echo: path == "/echo",
            ..Options::default()
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || format!("invalid {key}={value}\n");
            match key {
                "size" => opts.size = Some(value.parse().map_err(|_| bad())?),
                "echo" => opts.echo = !matches!(value, "0" | "false"),
                "status" => {
                    let code: u16 = value.parse().map_err(|_| bad())?;
                    let status = StatusCode::from_u16(code).map_err(|_| bad())?;
                    if !(200..=599).contains(&code) {
                        return Err(bad());
                    }
                    opts.status = Some(status);
                }
                "wait" => opts.wait = Some(humantime::parse_duration(value).map_err(|_| bad())?),
                _ => {}
            }
        }
        Ok(opts)
    }
}

/// Answers one request: a WebSocket echo, a body echo, a pattern, or the report.
pub(super) async fn handle(
    req: Request<Incoming>,
    conn: Arc<Conn>,
) -> Result<Response<Body>, Infallible> {
    if websocket::is_upgrade(&req) {
        return Ok(websocket::accept(req, &conn));
    }
    let opts = match Options::parse(req.uri().path(), req.uri().query()) {
        Ok(opts) => opts,
        Err(msg) => return Ok(plain(StatusCode::BAD_REQUEST, "text/plain", msg)),
    };
    if let Some(wait) = opts.wait {
        tokio::time::sleep(wait).await;
    }
    let mut resp = if opts.echo {
        echo(req)
    } else {
        match respond(req, &conn, opts.size).await {
            Ok(resp) => resp,
            Err(_) => plain(StatusCode::BAD_REQUEST, "text/plain", "bad body\n".into()),
        }
    };
    if let Some(status) = opts.status {
        *resp.status_mut() = status;
    }
    Ok(resp)
}

/// Streams the request body back; memory stays constant whatever its size.
fn echo(req: Request<Incoming>) -> Response<Body> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut resp = Response::new(req.into_body().boxed());
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

/// Drains the request body, then answers with the pattern or the report.
async fn respond(
    req: Request<Incoming>,
    conn: &Conn,
    size: Option<u64>,
) -> Result<Response<Body>, hyper::Error> {
    let (parts, mut body) = req.into_parts();
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            received += data.len() as u64;
        }
    }
    let mut resp = match size {
        Some(size) => {
            let mut resp = Response::new(PatternBody::new(size).boxed());
            let text = HeaderValue::from_static("text/plain");
            resp.headers_mut().insert(CONTENT_TYPE, text);
            resp
        }
        None if wants_json(&parts) => plain(
            StatusCode::OK,
            "application/json",
            report_json(&parts, conn, received),
        ),
        None => plain(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            report_text(&parts, conn),
        ),
    };
    resp.headers_mut()
        .insert("x-body-length", HeaderValue::from(received));
    Ok(resp)
}

/// A response with a complete body.
fn plain(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let content_type = HeaderValue::from_static(content_type);
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

fn wants_json(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .any(|v| String::from_utf8_lossy(v.as_bytes()).contains("application/json"))
}

/// The host the client asked for: the `Host` header, else the URI authority (HTTP/2).
fn host(parts: &http::request::Parts) -> Option<String> {
    match parts.headers.get(HOST) {
        Some(v) => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        None => parts.uri.authority().map(|a| a.to_string()),
    }
}

fn path_and_query(parts: &http::request::Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
}

/// The Traefik whoami text report; header names in canonical `Title-Case`.
fn report_text(parts: &http::request::Parts, conn: &Conn) -> String {
    let mut out = String::with_capacity(512);
    let _ = writeln!(out, "Hostname: {}", conn.name);
    let _ = writeln!(out, "IP: {}", conn.local.ip());
    let _ = writeln!(out, "RemoteAddr: {}", conn.remote);
    let (method, pq) = (&parts.method, path_and_query(parts));
    let _ = writeln!(out, "{method} {pq} {:?}", parts.version);
    if !parts.headers.contains_key(HOST) {
        if let Some(host) = host(parts) {
            let _ = writeln!(out, "Host: {host}");
        }
    }
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        let _ = writeln!(out, "{}: {value}", canonical(name.as_str()));
    }
    out
}

/// The JSON report; header names lowercase, as HTTP/2 carries them.
/// `body_length` is how many request body bytes were read and discarded.
fn report_json(parts: &http::request::Parts, conn: &Conn, body_length: u64) -> String {
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values = parts.headers.get_all(name).iter();
        let values = values.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        headers.insert(name.as_str().to_owned(), values.collect());
    }
    let report = serde_json::json!({
        "name": &*conn.name,
        "method": parts.method.as_str(),
        "uri": path_and_query(parts),
        "proto": format!("{:?}", parts.version),
        "host": host(parts),
        "headers": headers,
        "remote_addr": conn.remote.to_string(),
        "local_addr": conn.local.to_string(),
        "body_length": body_length,
    });
    report.to_string()
}

/// `x-forwarded-for` -> `X-Forwarded-For`, as Go's whoami prints names.
fn canonical(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c };
            upper = c == '-';
            out
        })
        .collect()
}

/// `N` bytes of [`PATTERN`], handed out as slices of one shared chunk.
#[derive(Debug)]
struct PatternBody {
    remaining: u64,
    chunk: Bytes,
}

impl PatternBody {
    fn new(size: u64) -> Self {
        let len = CHUNK.min(usize::try_from(size).unwrap_or(CHUNK));
        let len = len.next_multiple_of(PATTERN.len());
        let chunk = PATTERN
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect::<Vec<u8>>();
        PatternBody {
            remaining: size,
            chunk: Bytes::from(chunk),
        }
    }
}

impl http_body::Body for PatternBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len =
            usize::try_from(self.remaining).map_or(self.chunk.len(), |r| r.min(self.chunk.len()));
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[test]
    fn options_parse() {
        let opts = Options::parse("/x", Some("size=10&status=418&wait=5ms&other")).unwrap();
        assert_eq!(opts.size, Some(10));
        assert_eq!(opts.status, Some(StatusCode::IM_A_TEAPOT));
        assert_eq!(opts.wait, Some(Duration::from_millis(5)));
        assert!(!opts.echo);
        assert!(Options::parse("/echo", None).unwrap().echo);
        assert!(Options::parse("/", Some("echo")).unwrap().echo);
        assert!(!Options::parse("/", Some("echo=0")).unwrap().echo);
        assert!(Options::parse("/", Some("status=99")).is_err());
        assert!(Options::parse("/", Some("size=-1")).is_err());
        assert!(Options::parse("/", Some("wait=soon")).is_err());
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical("host"), "Host");
    }

    #[test]
    fn pattern_body_is_seamless() {
        let body = PatternBody::new(40_000);
        assert!(body.chunk.len() <= CHUNK);
        let mut body = Box::pin(body);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut all = Vec::new();
        while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
            all.extend_from_slice(frame.unwrap().data_ref().unwrap());
        }
        assert_eq!(all.len(), 40_000);
        assert!(all.iter().enumerate().all(|(i, b)| *b == PATTERN[i % 16]));
    }
}
