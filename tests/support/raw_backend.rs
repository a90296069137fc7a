//! A raw HTTP/1.1 backend and a raw HTTP/1.1 client for byte-level tests of the
//! data plane.
//!
//! [`RawBackend`] is a real TCP server on `127.0.0.1:0`. It records every byte
//! each accepted connection sends, parses just enough HTTP/1.1 itself (request
//! line, header lines, `Content-Length` and chunked bodies) to know where each
//! request ends, and answers each request with exactly the bytes a
//! [`Responder`] returns: well-formed or not, with interim (1xx) responses
//! first, closing afterwards or not. Tests then assert on what reached the
//! backend: the raw bytes per connection and per request, and each request's
//! parsed line, headers and decoded body.
//!
//! [`RawClient`] and [`parse_response`] read what sluice answers with a strict
//! little parser of their own (CRLF lines, RFC 9112 §6.3 message-body length
//! rules), so a response with a stray body or a wrong length shows up as a
//! wrong next response instead of being papered over by a lenient client.
//!
//! [`XorShift`] is the tiny deterministic PRNG the randomised tests use.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::app::{Running, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{ingress, service, settings, start, Manifests};

/// The largest request head the backend accepts before calling the stream broken.
const MAX_HEAD: usize = 1024 * 1024;

/// `103 Early Hints` with a `Link` header, as a backend would send it.
pub const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";

/// `100 Continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// One request as the backend received it.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Which accepted connection (0-based, in accept order) carried it.
    pub conn: usize,
    /// Its position on that connection (0-based).
    pub index: usize,
    /// The exact bytes of the request, head and framed body, as received.
    pub raw: Vec<u8>,
    /// The method token.
    pub method: String,
    /// The request target, as sent.
    pub target: String,
    /// The HTTP version token (`HTTP/1.1`).
    pub version: String,
    /// Header fields in order: the name as sent and the value with the
    /// surrounding whitespace trimmed.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The decoded body (chunk framing removed).
    pub body: Vec<u8>,
    /// Whether the body was chunked.
    pub chunked: bool,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, Vec<u8>)>,
    /// Whether the whole request (head and body) arrived.
    pub complete: bool,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of header `name` (case-insensitive), as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The request line as `METHOD TARGET VERSION`.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.method, self.target, self.version)
    }
}

/// What the backend sends for one request.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// Interim responses (each a complete 1xx head), written one by one first.
    pub interim: Vec<Vec<u8>>,
    /// The final response, written exactly as given (head and body).
    pub bytes: Vec<u8>,
    /// Close the connection after writing.
    pub close: bool,
    /// Write the final response in this many pieces (cut inside the head
    /// too), a few milliseconds apart; 0 or 1 writes it at once.
    pub pieces: usize,
    /// Write the final response cut at exactly these offsets (overrides `pieces`).
    pub cuts: Vec<usize>,
}

impl Reply {
    /// A final response written exactly as `bytes`.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            ..Self::default()
        }
    }

    /// `200 OK` with a `Content-Length` body.
    pub fn ok(body: &[u8]) -> Self {
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        Self::raw(bytes)
    }

    /// Sends `head` (a complete 1xx response) before the final response.
    pub fn with_interim(mut self, head: &[u8]) -> Self {
        self.interim.push(head.to_vec());
        self
    }

    /// Closes the connection after the final response.
    pub fn then_close(mut self) -> Self {
        self.close = true;
        self
    }

    /// Writes the final response cut at `cuts` (byte offsets), a few
    /// milliseconds apart.
    pub fn cut_at(mut self, cuts: &[usize]) -> Self {
        self.cuts = cuts.to_vec();
        self
    }

    /// Writes the final response in `pieces` pieces.
    pub fn in_pieces(mut self, pieces: usize) -> Self {
        self.pieces = pieces;
        self
    }
}

/// Decides the reply to a request.
pub type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// Decides, from the head alone, whether to answer before reading the body.
pub type EarlyResponder = Arc<dyn Fn(&Recorded) -> Option<Reply> + Send + Sync>;

/// The echo answer to `req`: `200` with body `METHOD TARGET BODY-LENGTH`
/// (no body bytes for HEAD, as a correct server does).
pub fn echo_reply(req: &Recorded) -> Reply {
    let text = format!("{} {} {}", req.method, req.target, req.body.len());
    if req.method == "HEAD" {
        return Reply::raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            text.len()
        ));
    }
    Reply::ok(text.as_bytes())
}

/// A responder answering every request with [`echo_reply`].
pub fn echo() -> Responder {
    Arc::new(echo_reply)
}

/// A responder answering requests whose target starts with `prefix` with
/// `special`, and every other request with [`echo_reply`].
pub fn echo_except(
    prefix: &'static str,
    special: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) -> Responder {
    Arc::new(move |req: &Recorded| {
        if req.target.starts_with(prefix) {
            special(req)
        } else {
            echo_reply(req)
        }
    })
}

/// How a [`RawBackend`] behaves.
#[derive(Clone)]
pub struct Options {
    /// The reply to each complete request.
    pub responder: Responder,
    /// Consulted once the head is read; `Some` answers before the body is read
    /// (the body is still read and recorded afterwards, and the connection kept
    /// unless the reply closes it).
    pub early: Option<EarlyResponder>,
    /// Send `100 Continue` before reading a body announced with
    /// `Expect: 100-continue`, as a real server does.
    pub continue_on_expect: bool,
}

impl Options {
    /// Replies from `responder`, nothing early, `100 Continue` on `Expect`.
    pub fn new(responder: Responder) -> Self {
        Self {
            responder,
            early: None,
            continue_on_expect: true,
        }
    }
}

/// What one accepted connection sent.
#[derive(Debug, Clone, Default)]
pub struct ConnLog {
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// Whether the peer closed (or the backend closed) the connection.
    pub closed: bool,
    /// Why the backend stopped parsing this connection, if it did.
    pub error: Option<String>,
}

#[derive(Default)]
struct Log {
    connections: Vec<ConnLog>,
    requests: Vec<Recorded>,
}

struct Shared {
    log: Mutex<Log>,
    options: Options,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut log)
    }
}

/// A raw HTTP/1.1 backend on an ephemeral loopback port; stops when dropped.
pub struct RawBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

impl RawBackend {
    /// A backend answering every request with `responder`.
    pub async fn start(responder: Responder) -> Self {
        Self::with_options(Options::new(responder)).await
    }

    /// A backend answering every request with [`echo_reply`].
    pub async fn echo() -> Self {
        Self::start(echo()).await
    }

    /// A backend with explicit options.
    pub async fn with_options(options: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw backend");
        let addr = listener.local_addr().expect("raw backend addr");
        let shared = Arc::new(Shared {
            log: Mutex::new(Log::default()),
            options,
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let id = accept_shared.with(|log| {
                    log.connections.push(ConnLog::default());
                    log.connections.len() - 1
                });
                conns.spawn(serve_conn(accept_shared.clone(), stream, id));
                // Reap finished connections so the set does not grow forever.
                while conns.try_join_next().is_some() {}
            }
        });
        Self { addr, shared, task }
    }

    /// How many connections the backend has accepted.
    pub fn accepted(&self) -> usize {
        self.shared.with(|log| log.connections.len())
    }

    /// Every request whose head arrived, complete or not, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.with(|log| log.requests.clone())
    }

    /// Every request that arrived whole (head and body).
    pub fn complete_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.complete).collect()
    }

    /// What each accepted connection sent.
    pub fn connections(&self) -> Vec<ConnLog> {
        self.shared.with(|log| log.connections.clone())
    }

    /// Every byte received on every connection.
    pub fn total_bytes(&self) -> usize {
        self.shared
            .with(|log| log.connections.iter().map(|c| c.bytes.len()).sum())
    }

    /// Parse errors the backend met (a request it could not delimit), by connection.
    pub fn errors(&self) -> Vec<(usize, String)> {
        self.shared.with(|log| {
            log.connections
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.error.clone().map(|e| (i, e)))
                .collect()
        })
    }

    /// Forgets everything recorded so far (connection numbering continues).
    pub fn clear_requests(&self) {
        self.shared.with(|log| log.requests.clear());
    }

    /// A readable dump of the connections' bytes, for failure messages.
    pub fn dump(&self) -> String {
        self.connections()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "conn {i} (closed: {}, error: {:?}): {:?}\n",
                    c.closed,
                    c.error,
                    String::from_utf8_lossy(&c.bytes)
                )
            })
            .collect()
    }
}

/// The reading side of one backend connection: buffered bytes, each read
/// appended to the connection's log, the current request's raw bytes collected.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    raw: Vec<u8>,
    shared: Arc<Shared>,
    id: usize,
}

enum Stop {
    /// The peer closed between requests.
    Eof,
    /// The connection ended or broke mid-request.
    Broken(String),
}

impl Reader {
    /// Reads more bytes; `Ok(false)` at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        let id = self.id;
        self.shared
            .with(|log| log.connections[id].bytes.extend_from_slice(&chunk[..n]));
        Ok(true)
    }

    async fn fill_or_stop(&mut self, what: &str) -> Result<(), Stop> {
        match self.fill().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Stop::Broken(format!("EOF inside {what}"))),
            Err(e) => Err(Stop::Broken(format!("{e} inside {what}"))),
        }
    }

    /// One line including its LF.
    async fn line(&mut self, what: &str) -> Result<Vec<u8>, Stop> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.take_now(pos + 1));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Stop::Broken(format!("{what} longer than {MAX_HEAD} bytes")));
            }
            self.fill_or_stop(what).await?;
        }
    }

    async fn take(&mut self, n: usize, what: &str) -> Result<Vec<u8>, Stop> {
        while self.buf.len() < n {
            self.fill_or_stop(what).await?;
        }
        Ok(self.take_now(n))
    }

    fn take_now(&mut self, n: usize) -> Vec<u8> {
        let out: Vec<u8> = self.buf.drain(..n).collect();
        self.raw.extend_from_slice(&out);
        out
    }
}

/// A line without its line ending (LF, or CRLF).
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parses `name: value` header lines (lenient: for recording only).
fn header_line(line: &[u8]) -> Result<(String, Vec<u8>), String> {
    let line = trim_eol(line);
    let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
        format!(
            "header line without colon: {:?}",
            String::from_utf8_lossy(line)
        )
    })?;
    Ok((
        String::from_utf8_lossy(&line[..colon]).into_owned(),
        trim_ows(&line[colon + 1..]).to_vec(),
    ))
}

async fn serve_conn(shared: Arc<Shared>, stream: TcpStream, id: usize) {
    // Each write goes out as its own segment, so split writes stay split.
    let _ = stream.set_nodelay(true);
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        raw: Vec::new(),
        shared: shared.clone(),
        id,
    };
    let mut index = 0;
    let outcome = loop {
        match serve_one(&mut reader, &shared, id, index).await {
            Ok(true) => index += 1,
            Ok(false) => break None,
            Err(Stop::Eof) => break None,
            Err(Stop::Broken(e)) => break Some(e),
        }
    };
    shared.with(|log| {
        let conn = &mut log.connections[id];
        conn.closed = true;
        conn.error = outcome;
    });
    let _ = reader.stream.shutdown().await;
}

/// Reads one request and answers it; `Ok(false)` when the connection should close.
async fn serve_one(
    reader: &mut Reader,
    shared: &Arc<Shared>,
    id: usize,
    index: usize,
) -> Result<bool, Stop> {
    reader.raw.clear();
    // The request line; EOF before any byte of it is a clean close.
    while reader.buf.is_empty() {
        match reader.fill().await {
            Ok(true) => {}
            Ok(false) => return Err(Stop::Eof),
            Err(_) => return Err(Stop::Eof),
        }
    }
    let line = reader.line("the request line").await?;
    let line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
    let mut parts = line.split(' ');
    let mut req = Recorded {
        conn: id,
        index,
        method: parts.next().unwrap_or_default().to_owned(),
        target: parts.next().unwrap_or_default().to_owned(),
        version: parts.next().unwrap_or_default().to_owned(),
        ..Recorded::default()
    };
    if parts.next().is_some() || req.version.is_empty() {
        return Err(Stop::Broken(format!("bad request line {line:?}")));
    }
    loop {
        let line = reader.line("the request head").await?;
        if trim_eol(&line).is_empty() {
            break;
        }
        req.headers.push(header_line(&line).map_err(Stop::Broken)?);
    }
    let te = req.header_all("transfer-encoding").join(",");
    let chunked = te
        .rsplit(',')
        .next()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    let lengths = req.header_all("content-length");
    if !te.is_empty() && !lengths.is_empty() {
        return Err(Stop::Broken(
            "request with both Transfer-Encoding and Content-Length".into(),
        ));
    }
    if !te.is_empty() && !chunked {
        return Err(Stop::Broken(format!("unknown transfer coding {te:?}")));
    }
    let length = if chunked {
        None
    } else {
        match lengths.as_slice() {
            [] => Some(0),
            [one] if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => Some(
                one.parse::<usize>()
                    .map_err(|e| Stop::Broken(e.to_string()))?,
            ),
            other => return Err(Stop::Broken(format!("bad Content-Length {other:?}"))),
        }
    };
    req.chunked = chunked;
    req.raw = reader.raw.clone();
    let slot = shared.with(|log| {
        log.requests.push(req.clone());
        log.requests.len() - 1
    });

    let mut answered = false;
    let mut close = false;
    if let Some(early) = &shared.options.early {
        if let Some(reply) = early(&req) {
            close = write_reply(reader, &reply).await?;
            answered = true;
        }
    }
    let has_body = chunked || length.unwrap_or(0) > 0;
    let expects = req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !answered && has_body && expects && shared.options.continue_on_expect {
        write_all(reader, CONTINUE).await?;
    }
    if !close {
        match length {
            Some(n) => req.body = reader.take(n, "the request body").await?,
            None => read_chunked(reader, &mut req).await?,
        }
        req.complete = true;
    }
    req.raw = reader.raw.clone();
    shared.with(|log| {
        if let Some(r) = log.requests.get_mut(slot) {
            *r = req.clone();
        }
    });
    if !answered {
        let reply = (shared.options.responder)(&req);
        close = write_reply(reader, &reply).await?;
    }
    Ok(!close)
}

async fn read_chunked(reader: &mut Reader, req: &mut Recorded) -> Result<(), Stop> {
    loop {
        let line = reader.line("a chunk size line").await?;
        let text = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        let size_text = text
            .split(';')
            .next()
            .unwrap_or_default()
            .trim_matches([' ', '\t']);
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| Stop::Broken(format!("bad chunk size line {text:?}")))?;
        if size == 0 {
            break;
        }
        let data = reader.take(size, "chunk data").await?;
        req.body.extend_from_slice(&data);
        let end = reader.take(2, "a chunk's CRLF").await?;
        if end != b"\r\n" {
            return Err(Stop::Broken(format!(
                "chunk data not followed by CRLF: {end:?}"
            )));
        }
    }
    loop {
        let line = reader.line("the trailer section").await?;
        if trim_eol(&line).is_empty() {
            return Ok(());
        }
        req.trailers.push(header_line(&line).map_err(Stop::Broken)?);
    }
}

async fn write_all(reader: &mut Reader, bytes: &[u8]) -> Result<(), Stop> {
    reader
        .stream
        .write_all(bytes)
        .await
        .map_err(|e| Stop::Broken(format!("writing a response: {e}")))
}

/// Writes `reply`; returns whether the connection is to be closed.
async fn write_reply(reader: &mut Reader, reply: &Reply) -> Result<bool, Stop> {
    for head in &reply.interim {
        write_all(reader, head).await?;
        // Interim responses go out as their own segments, as a real backend's would.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if reply.pieces <= 1 && reply.cuts.is_empty() {
        write_all(reader, &reply.bytes).await?;
    } else {
        let len = reply.bytes.len();
        // Small cuts inside the status line and head, then even ones.
        let mut cuts: Vec<usize> = if reply.cuts.is_empty() {
            [1, 7, 12, 17, 31]
                .into_iter()
                .take(reply.pieces - 1)
                .chain((1..reply.pieces).map(|k| len * k / reply.pieces))
                .collect()
        } else {
            reply.cuts.clone()
        };
        cuts.retain(|&c| c > 0 && c < len);
        cuts.sort_unstable();
        cuts.dedup();
        let mut start = 0;
        for cut in cuts.into_iter().chain([len]) {
            write_all(reader, &reply.bytes[start..cut]).await?;
            start = cut;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    if reply.close {
        let _ = reader.stream.shutdown().await;
    }
    Ok(reply.close)
}

/// A running sluice routing to raw backends.
pub struct RawFixture {
    /// The manifest directory sluice watches.
    pub manifests: Manifests,
    /// The running sluice.
    pub sluice: Running,
}

/// The manifests for `routes`: per `(host, backend)` a Service `raw{i}` with one
/// endpoint (the backend) and an Ingress rule `host` `/` Prefix to it
/// (`""` is host-less: every host).
pub fn raw_manifests(routes: &[(&str, &RawBackend)]) -> String {
    let mut docs = Vec::new();
    let names: Vec<String> = (0..routes.len()).map(|i| format!("raw{i}")).collect();
    let mut rules = Vec::new();
    for (i, (host, backend)) in routes.iter().enumerate() {
        docs.push(service(&names[i], &[backend.addr]));
        rules.push((*host, "/", "Prefix", names[i].as_str()));
    }
    docs.push(ingress("raw", &rules));
    docs.join("---\n")
}

/// Starts sluice in front of `routes` (see [`raw_manifests`]) with `tweak`
/// applied to the test settings.
pub async fn raw_fixture(
    routes: &[(&str, &RawBackend)],
    tweak: impl FnOnce(&mut Settings),
) -> RawFixture {
    let manifests = Manifests::new();
    manifests.write("raw.yaml", &raw_manifests(routes));
    let mut s = settings(&manifests.path());
    tweak(&mut s);
    let sluice = start(s).await;
    RawFixture { manifests, sluice }
}

/// How a response's body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Read until the connection closed.
    Close,
}

/// A response as the client read it.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// How the body was delimited.
    pub framing: Framing,
    /// The raw head, for failure messages.
    pub head: String,
}

impl Response {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether some `Connection` header lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The outcome of parsing one response from the front of a buffer.
#[derive(Debug)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A response and how many bytes it took.
    Done(Response, usize),
    /// The bytes are not a valid HTTP/1.1 response.
    Invalid(String),
}

fn find_crlfcrlf(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses one response from the front of `buf` (strictly: CRLF line endings,
/// RFC 9112 §6.3 body length). `head_request` says the request was HEAD; `eof`
/// says no more bytes will come (completes a close-delimited body).
pub fn parse_response(buf: &[u8], head_request: bool, eof: bool) -> Parsed {
    let Some(end) = find_crlfcrlf(buf) else {
        if eof && !buf.is_empty() {
            return Parsed::Invalid(format!(
                "truncated head: {:?}",
                String::from_utf8_lossy(buf)
            ));
        }
        return Parsed::Incomplete;
    };
    let head = &buf[..end];
    let head_text = String::from_utf8_lossy(head).into_owned();
    // Every line but the last ends in CR (the last one's CRLF is in the CRLFCRLF).
    let raw_lines: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    let mut lines = Vec::new();
    for (i, line) in raw_lines.iter().enumerate() {
        let line = if i + 1 == raw_lines.len() {
            *line
        } else {
            match line.strip_suffix(b"\r") {
                Some(l) => l,
                None => return Parsed::Invalid(format!("bare LF in the head: {head_text:?}")),
            }
        };
        if line.contains(&b'\r') {
            return Parsed::Invalid(format!("bare CR in the head: {head_text:?}"));
        }
        lines.push(line);
    }
    let status_line = String::from_utf8_lossy(lines[0]).into_owned();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_owned();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next().unwrap_or_default().to_owned();
    if !matches!(version.as_str(), "HTTP/1.1" | "HTTP/1.0") || code.len() != 3 {
        return Parsed::Invalid(format!("bad status line {status_line:?}"));
    }
    let Ok(status) = code.parse::<u16>() else {
        return Parsed::Invalid(format!("bad status code {status_line:?}"));
    };
    let mut headers = Vec::new();
    for line in &lines[1..] {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Parsed::Invalid(format!("header without colon: {head_text:?}"));
        };
        headers.push((
            String::from_utf8_lossy(&line[..colon]).into_owned(),
            String::from_utf8_lossy(trim_ows(&line[colon + 1..])).into_owned(),
        ));
    }
    let body_start = end + 4;
    let mut resp = Response {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
        framing: Framing::None,
        head: head_text,
    };
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Parsed::Done(resp, body_start);
    }
    let te: Vec<String> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.clone())
        .collect();
    let lengths: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    if !te.is_empty() && !lengths.is_empty() {
        return Parsed::Invalid(format!(
            "response with both Transfer-Encoding and Content-Length: {:?}",
            resp.head
        ));
    }
    let rest = &buf[body_start..];
    if !te.is_empty() {
        let joined = te.join(",");
        let last = joined
            .rsplit(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !last.eq_ignore_ascii_case("chunked") {
            return close_delimited(resp, buf.len(), rest, eof);
        }
        return match decode_chunked(rest) {
            Ok(Some((body, used))) => {
                resp.body = body;
                resp.framing = Framing::Chunked;
                Parsed::Done(resp, body_start + used)
            }
            Ok(None) if eof => Parsed::Invalid("truncated chunked body".into()),
            Ok(None) => Parsed::Incomplete,
            Err(e) => Parsed::Invalid(e),
        };
    }
    if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first)
            || first.is_empty()
            || !first.bytes().all(|b| b.is_ascii_digit())
        {
            return Parsed::Invalid(format!("bad Content-Length {lengths:?}"));
        }
        let Ok(n) = first.parse::<usize>() else {
            return Parsed::Invalid(format!("bad Content-Length {lengths:?}"));
        };
        if rest.len() < n {
            if eof {
                return Parsed::Invalid(format!("body truncated at {} of {n} bytes", rest.len()));
            }
            return Parsed::Incomplete;
        }
        resp.body = rest[..n].to_vec();
        resp.framing = Framing::Length(n);
        return Parsed::Done(resp, body_start + n);
    }
    close_delimited(resp, buf.len(), rest, eof)
}

fn close_delimited(mut resp: Response, total: usize, rest: &[u8], eof: bool) -> Parsed {
    if !eof {
        return Parsed::Incomplete;
    }
    resp.body = rest.to_vec();
    resp.framing = Framing::Close;
    Parsed::Done(resp, total)
}

/// Decodes a chunked body at the front of `buf`: `Ok(None)` when incomplete,
/// else the body and the bytes used (trailers included).
pub fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&buf[pos..pos + eol]).into_owned();
        let size_text = line.split(';').next().unwrap_or_default().trim_end();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size line {line:?}"))?;
        pos += eol + 2;
        if size == 0 {
            break;
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        pos += 2;
    }
    loop {
        let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        pos += eol + 2;
        if eol == 0 {
            return Ok(Some((body, pos)));
        }
    }
}

/// Parses every complete response in `buf` (a whole client-side stream that
/// ended, or stopped, there). `heads[i]` says whether the i-th *final* response
/// answers a HEAD request. Returns the responses (interim ones included, in
/// order) and a description of what could not be parsed, if anything was left.
pub fn parse_stream(buf: &[u8], heads: &[bool], eof: bool) -> (Vec<Response>, Option<String>) {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut finals = 0;
    while pos < buf.len() {
        let head = heads.get(finals).copied().unwrap_or(false);
        match parse_response(&buf[pos..], head, eof) {
            Parsed::Done(resp, used) => {
                if resp.status >= 200 {
                    finals += 1;
                }
                out.push(resp);
                pos += used;
            }
            Parsed::Incomplete => {
                return (
                    out,
                    Some(format!(
                        "incomplete: {:?}",
                        String::from_utf8_lossy(&buf[pos..])
                    )),
                )
            }
            Parsed::Invalid(e) => {
                return (
                    out,
                    Some(format!("{e} at {:?}", String::from_utf8_lossy(&buf[pos..]))),
                )
            }
        }
    }
    (out, None)
}

/// A raw client connection that reads responses with [`parse_response`].
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Writes `bytes` in pieces split at random points, pausing up to
    /// `max_pause_ms` between pieces.
    pub async fn send_split(
        &mut self,
        bytes: &[u8],
        rng: &mut XorShift,
        max_pause_ms: u64,
    ) -> io::Result<()> {
        for piece in rng.split(bytes) {
            self.stream.write_all(piece).await?;
            let pause = rng.below(max_pause_ms as usize + 1) as u64;
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        Ok(())
    }

    async fn fill(&mut self, deadline: tokio::time::Instant) -> Result<(), String> {
        if self.eof {
            return Err("the connection is closed".into());
        }
        let mut chunk = [0u8; 64 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err("timed out".into()),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                Ok(())
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// The next response (interim ones included) within `within`.
    pub async fn response(
        &mut self,
        head_request: bool,
        within: Duration,
    ) -> Result<Response, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match parse_response(&self.buf, head_request, self.eof) {
                Parsed::Done(resp, used) => {
                    self.buf.drain(..used);
                    return Ok(resp);
                }
                Parsed::Invalid(e) => return Err(e),
                Parsed::Incomplete => {
                    if self.eof {
                        return Err(if self.buf.is_empty() {
                            "closed without a response".into()
                        } else {
                            format!(
                                "closed mid-response: {:?}",
                                String::from_utf8_lossy(&self.buf)
                            )
                        });
                    }
                    self.fill(deadline).await.map_err(|e| {
                        format!("{e}; have {:?}", String::from_utf8_lossy(&self.buf))
                    })?;
                }
            }
        }
    }

    /// The interim responses and then the final one, within `within`.
    pub async fn final_response(
        &mut self,
        head_request: bool,
        within: Duration,
    ) -> Result<(Vec<Response>, Response), String> {
        let mut interim = Vec::new();
        loop {
            let resp = self.response(head_request, within).await?;
            if resp.status >= 200 {
                return Ok((interim, resp));
            }
            interim.push(resp);
        }
    }

    /// Whether the server closes the connection within `within` (bytes read
    /// meanwhile are kept and returned by [`RawClient::leftover`]).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.eof {
            if self.fill(deadline).await.is_err() {
                return self.eof;
            }
        }
        true
    }

    /// Reads once more (within `within`): false when nothing arrived in time.
    /// EOF counts as something arriving; see [`RawClient::is_eof`].
    pub async fn read_more(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        self.fill(deadline).await.is_ok()
    }

    /// Whether the server has closed the connection (as far as read so far).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Bytes read but not parsed as a response.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }

    /// Reads until EOF or until nothing arrives for `idle` (at most `total`), and
    /// returns everything unparsed plus whether EOF was seen.
    pub async fn read_rest(&mut self, idle: Duration, total: Duration) -> (Vec<u8>, bool) {
        let end = tokio::time::Instant::now() + total;
        while !self.eof {
            let deadline = (tokio::time::Instant::now() + idle).min(end);
            if self.fill(deadline).await.is_err() {
                break;
            }
        }
        (std::mem::take(&mut self.buf), self.eof)
    }
}

/// A tiny deterministic PRNG (xorshift64*).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    /// One element of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// `bytes` cut at 0–5 random points (pieces are never empty).
    pub fn split<'a>(&mut self, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = (0..self.below(6))
            .map(|_| self.below(bytes.len().max(1)))
            .filter(|&c| c > 0)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts {
            out.push(&bytes[start..cut]);
            start = cut;
        }
        out.push(&bytes[start..]);
        out
    }
}
