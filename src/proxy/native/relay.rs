//! Moving one exchange's bytes: the request body from the client to the backend
//! ([`send_body`]) and the response from the backend to the client
//! ([`relay_response`]), each by its framing, streamed through the connection's
//! reused buffers and never held whole. Backpressure is the sockets': a relay
//! reads again only after it has written what it read.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::buffer::ReadBuf;
use super::chunked::{ChunkedError, ChunkedScanner};
use super::head::Framing;
use super::response::{self, BackendFraming};
use super::rewrite::{self, ClientFraming, ResponseHeadOptions};
use super::timer::Deadline;

/// Why a request body could not be relayed.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    /// The chunked framing is malformed: the client's error (400).
    #[error("malformed chunked body: {0}")]
    Malformed(ChunkedError),
    /// The client closed or reset the connection mid-body.
    #[error("the client closed the connection mid-body")]
    ClientGone,
    /// The client sent nothing for the body-read timeout.
    #[error("the client sent no body bytes within the body-read timeout")]
    Timeout,
    /// Writing to the backend failed (it may have answered early and closed).
    #[error("the backend stopped taking the body: {0}")]
    Backend(io::Error),
}

impl BodyError {
    /// Whether the client is at fault, which ends the exchange at once.
    pub(super) fn is_client_fault(&self) -> bool {
        !matches!(self, Self::Backend(_))
    }
}

/// Reads from the client once (bounded by `timeout`), for a body.
pub(super) async fn fill_body<R: AsyncRead + Unpin>(
    client: &mut R,
    buf: &mut ReadBuf,
    timeout: Duration,
    timer: &mut Deadline,
) -> Result<(), BodyError> {
    let due = tokio::time::Instant::now() + timeout;
    match timer.run(due, buf.fill(client)).await {
        None => Err(BodyError::Timeout),
        Some(Ok(0) | Err(_)) => Err(BodyError::ClientGone),
        Some(Ok(_)) => Ok(()),
    }
}

/// Relays a request body of `framing` from `client` (starting with what `buf`
/// holds) to `backend`, consuming exactly the body from `buf`.
pub(super) async fn send_body<R, W>(
    client: &mut R,
    buf: &mut ReadBuf,
    backend: &mut W,
    framing: Framing,
    timeout: Duration,
    timer: &mut Deadline,
) -> Result<(), BodyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match framing {
        Framing::Empty => Ok(()),
        Framing::Length(mut left) => {
            while left > 0 {
                if buf.is_empty() {
                    fill_body(client, buf, timeout, timer).await?;
                }
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(buf.data().len());
                backend
                    .write_all(&buf.data()[..take])
                    .await
                    .map_err(BodyError::Backend)?;
                buf.consume(take);
                left -= take as u64;
            }
            Ok(())
        }
        Framing::Chunked => {
            let mut scanner = ChunkedScanner::new();
            loop {
                if buf.is_empty() {
                    fill_body(client, buf, timeout, timer).await?;
                }
                let scanned = scanner
                    .scan(buf.data(), |_| {})
                    .map_err(BodyError::Malformed)?;
                backend
                    .write_all(&buf.data()[..scanned.consumed])
                    .await
                    .map_err(BodyError::Backend)?;
                buf.consume(scanned.consumed);
                if scanned.done {
                    return Ok(());
                }
            }
        }
    }
}

/// How far one exchange got, shared by its upload and response sides.
#[derive(Debug)]
pub(super) struct Progress {
    /// Turns true once the final response head has been written to the client.
    pub head_sent: AtomicBool,
    /// When the upload ended, for the response-header timeout.
    pub upload: UploadClock,
}

impl Progress {
    /// Progress of an exchange whose upload is over (`uploaded`) or running.
    pub(super) fn new(uploaded: bool) -> Self {
        Self {
            head_sent: AtomicBool::new(false),
            upload: UploadClock::new(uploaded),
        }
    }

    /// Whether the client has seen the final response head.
    pub(super) fn head_sent(&self) -> bool {
        self.head_sent.load(Ordering::Relaxed)
    }
}

/// When the request body was sent whole: the response-header timeout counts
/// from then, so a slow upload is not cut off (as the hyper path does).
#[derive(Debug)]
pub(super) struct UploadClock {
    start: std::time::Instant,
    /// Milliseconds after `start` when the upload ended; `u64::MAX` while it runs.
    done_ms: std::sync::atomic::AtomicU64,
}

impl UploadClock {
    /// A clock for an upload that is still running (`done` false) or none at all.
    pub(super) fn new(done: bool) -> Self {
        Self {
            start: std::time::Instant::now(),
            done_ms: std::sync::atomic::AtomicU64::new(if done { 0 } else { u64::MAX }),
        }
    }

    /// Marks the upload as ended now.
    pub(super) fn finish(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.done_ms.store(ms, Ordering::Relaxed);
    }

    /// When a response head is overdue, or `None` while the upload runs.
    fn deadline(&self, timeout: Duration) -> Option<tokio::time::Instant> {
        let ms = self.done_ms.load(Ordering::Relaxed);
        (ms != u64::MAX).then(|| {
            tokio::time::Instant::from_std(self.start + Duration::from_millis(ms) + timeout)
        })
    }
}

/// What the response side needs to know about the request and the client.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResponseContext {
    /// The request was HEAD: no body, whatever the backend says.
    pub head_request: bool,
    /// The client spoke HTTP/1.0: no 1xx, no chunked.
    pub http10: bool,
    /// The client wants to keep the connection open.
    pub keep_alive: bool,
    /// sluice already sent `100 Continue`; a second one is not relayed.
    pub sent_continue: bool,
    /// How long the backend may take to send its response head.
    pub header_timeout: Duration,
}

/// How a relayed exchange ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Relayed {
    /// The final status code.
    pub code: u16,
    /// Whether the backend connection may carry another request.
    pub backend_reusable: bool,
    /// Whether the client connection may carry another request.
    pub client_keep_alive: bool,
    /// Response body bytes (data, without chunked framing) sent to the client.
    pub body_bytes: u64,
}

/// Why relaying a response failed.
#[derive(Debug)]
pub(super) enum RelayError {
    /// No response head within the timeout (504).
    Timeout(Duration),
    /// The backend closed or reset before a whole response head; `fresh` says
    /// nothing at all had arrived (a stale pooled connection).
    Closed {
        fresh: bool,
        error: Option<io::Error>,
    },
    /// The backend's answer is not valid HTTP/1.1 (502).
    Invalid(&'static str),
    /// The backend failed mid-body, or the client went away: the client
    /// connection is closed, its response cut short.
    Aborted,
}

/// Reads the backend's response (relaying interim 1xx responses), writes its
/// head and body to the client by their framing, reporting how far it got
/// in `progress`.
pub(super) async fn relay_response<B, C>(
    backend: &mut B,
    buf: &mut ReadBuf,
    client: &mut C,
    out: &mut Vec<u8>,
    cx: ResponseContext,
    progress: &Progress,
    timer: &mut Deadline,
) -> Result<Relayed, RelayError>
where
    B: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    loop {
        let Some(final_head) =
            next_head(backend, buf, client, out, cx, &progress.upload, timer).await?
        else {
            continue;
        };
        progress.head_sent.store(true, Ordering::Relaxed);
        return relay_body(backend, buf, client, out, final_head).await;
    }
}

/// The framing decided for one final response.
#[derive(Debug, Clone, Copy)]
struct FinalHead {
    code: u16,
    backend: BackendFraming,
    client: ClientFraming,
    backend_keep_alive: bool,
    client_keep_alive: bool,
}

/// Reads one response head; relays an interim one (returning `None`), or
/// writes the final head into `out` and consumes it from `buf`.
async fn next_head<B, C>(
    backend: &mut B,
    buf: &mut ReadBuf,
    client: &mut C,
    out: &mut Vec<u8>,
    cx: ResponseContext,
    upload: &UploadClock,
    timer: &mut Deadline,
) -> Result<Option<FinalHead>, RelayError>
where
    B: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    loop {
        if !buf.is_empty() {
            let mut slots = response::response_slots();
            match response::parse(buf.data(), &mut slots, cx.head_request) {
                Err(reason) => return Err(RelayError::Invalid(reason)),
                Ok(Some(head)) => {
                    let len = head.len;
                    let decided = decide(&head, out, cx);
                    if decided.is_none() && !(head.code == 100 && cx.sent_continue) && !cx.http10 {
                        rewrite::interim_head(out, head.code, head.reason, head.headers);
                        buf.consume(len);
                        client
                            .write_all(out)
                            .await
                            .map_err(|_| RelayError::Aborted)?;
                        return Ok(None);
                    }
                    buf.consume(len);
                    return Ok(decided);
                }
                Ok(None) if buf.is_full() => {
                    return Err(RelayError::Invalid("response head too large"))
                }
                Ok(None) => {}
            }
        }
        let fresh = buf.is_empty();
        match read_head_bytes(backend, buf, cx.header_timeout, upload, timer).await {
            None => return Err(RelayError::Timeout(cx.header_timeout)),
            Some(Ok(0)) => return Err(RelayError::Closed { fresh, error: None }),
            Some(Err(e)) => {
                return Err(RelayError::Closed {
                    fresh,
                    error: Some(e),
                })
            }
            Some(Ok(_)) => {}
        }
    }
}

/// One read of response-head bytes; `None` once the head is overdue: while
/// the upload runs the wait is re-armed, and it counts from the upload's end.
async fn read_head_bytes<B: AsyncRead + Unpin>(
    backend: &mut B,
    buf: &mut ReadBuf,
    timeout: Duration,
    upload: &UploadClock,
    timer: &mut Deadline,
) -> Option<io::Result<usize>> {
    let mut read = pin!(buf.fill(backend));
    loop {
        let (due, final_wait) = match upload.deadline(timeout) {
            Some(due) => (due, true),
            None => (tokio::time::Instant::now() + timeout, false),
        };
        match timer.run(due, read.as_mut()).await {
            Some(result) => return Some(result),
            None if final_wait => return None,
            None => {}
        }
    }
}

/// Decides a final response's framing and writes its head into `out`;
/// `None` for an interim (1xx) response.
fn decide(
    head: &response::ResponseHead<'_>,
    out: &mut Vec<u8>,
    cx: ResponseContext,
) -> Option<FinalHead> {
    if head.code < 200 {
        return None;
    }
    let client = match (head.framing, cx.http10) {
        (BackendFraming::Empty | BackendFraming::Length(_), _) => ClientFraming::AsIs,
        (BackendFraming::Chunked | BackendFraming::UntilClose, false) => ClientFraming::Chunked,
        (BackendFraming::Chunked | BackendFraming::UntilClose, true) => ClientFraming::UntilClose,
    };
    let client_keep_alive = cx.keep_alive && client != ClientFraming::UntilClose;
    let options = ResponseHeadOptions {
        framing: client,
        keep_alive: client_keep_alive,
        http10: cx.http10,
    };
    rewrite::response_head(out, head.code, head.reason, head.headers, options);
    Some(FinalHead {
        code: head.code,
        backend: head.framing,
        client,
        backend_keep_alive: head.keep_alive,
        client_keep_alive,
    })
}

/// Relays the body after a final head that `out` holds (not yet written).
async fn relay_body<B, C>(
    backend: &mut B,
    buf: &mut ReadBuf,
    client: &mut C,
    out: &mut Vec<u8>,
    head: FinalHead,
) -> Result<Relayed, RelayError>
where
    B: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let done = |backend_reusable: bool, body_bytes: u64| Relayed {
        code: head.code,
        backend_reusable,
        client_keep_alive: head.client_keep_alive,
        body_bytes,
    };
    match (head.backend, head.client) {
        (BackendFraming::Empty, _) => {
            client
                .write_all(out)
                .await
                .map_err(|_| RelayError::Aborted)?;
            // Bytes after a bodyless response would be read as the next one.
            Ok(done(head.backend_keep_alive && buf.is_empty(), 0))
        }
        (BackendFraming::Length(n), _) => {
            relay_length(backend, buf, client, out, n).await?;
            Ok(done(head.backend_keep_alive && buf.is_empty(), n))
        }
        (BackendFraming::Chunked, ClientFraming::Chunked) => {
            let sent = relay_chunked(backend, buf, client, out).await?;
            Ok(done(head.backend_keep_alive && buf.is_empty(), sent))
        }
        (BackendFraming::Chunked, _) => {
            let sent = dechunk(backend, buf, client, out).await?;
            Ok(done(head.backend_keep_alive && buf.is_empty(), sent))
        }
        (BackendFraming::UntilClose, reframe) => {
            let reframe = reframe == ClientFraming::Chunked;
            let sent = relay_until_close(backend, buf, client, out, reframe).await?;
            Ok(done(false, sent))
        }
    }
}

/// Writes every slice whole (one system call when the socket takes them all).
pub(super) async fn write_all<C: AsyncWrite + Unpin>(
    client: &mut C,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0); // drops empty leading slices
    while !slices.is_empty() {
        let n = client.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Writes `first` then `second`.
async fn write_two<C: AsyncWrite + Unpin>(
    client: &mut C,
    first: &[u8],
    second: &[u8],
) -> io::Result<()> {
    write_all(client, &mut [IoSlice::new(first), IoSlice::new(second)]).await
}

async fn read_more<B: AsyncRead + Unpin>(
    backend: &mut B,
    buf: &mut ReadBuf,
) -> Result<(), RelayError> {
    match buf.fill(backend).await {
        Ok(0) | Err(_) => Err(RelayError::Aborted),
        Ok(_) => Ok(()),
    }
}

async fn relay_length<B, C>(
    backend: &mut B,
    buf: &mut ReadBuf,
    client: &mut C,
    out: &mut Vec<u8>,
    mut left: u64,
) -> Result<(), RelayError>
where
    B: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let mut head: &[u8] = out;
    loop {
        let take = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(buf.data().len());
        write_two(client, head, &buf.data()[..take])
            .await
            .map_err(|_| RelayError::Aborted)?;
        head = &[];
        buf.consume(take);
        left -= take as u64;
        if left == 0 {
            return Ok(());
        }
        read_more(backend, buf).await?;
    }
}

async fn relay_chunked<B, C>(
    backend: &mut B,
    buf: &mut ReadBuf,
    client: &mut C,
    out: &mut Vec<u8>,
) -> Result<u64, RelayError>
where
    B: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let mut scanner = ChunkedScanner::new();
    let mut head: &[u8] = out;
    let mut sent = 0u64;
    loop {
        let scanned = scanner
            .scan(buf.data(), |range| sent += range.len() as u64)
            .map_err(|_| RelayError::Aborted)?;
        write_two(client, head, &buf.data()[..scanned.consumed])
            .await
            .map_err(|_| RelayError::Aborted)?;
        head = &[];
        buf.consume(scanned.consumed);
        if scanned.done {
            return Ok(sent);
        }
        read_more(backend, buf).await?;
    }
}

/// A chunked body to an HTTP/1.0 client: the data only, then close.
async fn dechunk<B, C>(
    backend: &mut B,
    buf: &mut ReadBuf,
    client: &mut C,
    out: &mut Vec<u8>,
) -> Result<u64, RelayError>
where
    B: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let mut scanner = ChunkedScanner::new();
    let mut sent = 0u64;
    loop {
        let data = buf.data();
        let scanned = scanner
            .scan(data, |range| out.extend_from_slice(&data[range]))
            .map_err(|_| RelayError::Aborted)?;
        client
            .write_all(out)
            .await
            .map_err(|_| RelayError::Aborted)?;
        sent += out.len() as u64;
        out.clear();
        buf.consume(scanned.consumed);
        if scanned.done {
            return Ok(sent);
        }
        read_more(backend, buf).await?;
    }
}

/// A body delimited by the backend closing: re-framed as chunked for an
/// HTTP/1.1 client (which keeps its connection), passed as is otherwise.
async fn relay_until_close<B, C>(
    backend: &mut B,
    buf: &mut ReadBuf,
    client: &mut C,
    out: &mut Vec<u8>,
    reframe: bool,
) -> Result<u64, RelayError>
where
    B: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let mut sent = 0u64;
    loop {
        let data = buf.data();
        if reframe && !data.is_empty() {
            use std::io::Write as _;
            let _ = write!(out, "{:x}\r\n", data.len());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(data);
        }
        let len = data.len();
        sent += len as u64;
        buf.consume(len);
        let ended = match buf.fill(backend).await {
            Ok(0) => true,
            Ok(_) => false,
            Err(_) => return Err(RelayError::Aborted),
        };
        if ended && reframe {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        client
            .write_all(out)
            .await
            .map_err(|_| RelayError::Aborted)?;
        out.clear();
        if ended {
            return Ok(sent);
        }
    }
}

/// How an upload and a response run side by side ended.
pub(super) enum Joined<T, E> {
    /// The response finished; the upload finished too (`Some`) or not.
    Finished {
        /// The upload's result, if it ended.
        upload: Option<Result<(), E>>,
        /// The response side's result.
        response: T,
    },
    /// The client broke the upload first: the exchange ends now.
    UploadFailed(E),
}

/// Runs a request-body upload and the response side in the same task, so a
/// backend may answer before the body is in (and stream both ways), until
/// the response side is done or the client breaks the upload.
pub(super) async fn upload_while<T>(
    upload: impl Future<Output = Result<(), BodyError>>,
    response: impl Future<Output = T>,
) -> Joined<T, BodyError> {
    let mut upload = pin!(upload);
    let mut response = pin!(response);
    let mut uploaded: Option<Result<(), BodyError>> = None;
    std::future::poll_fn(|cx| {
        if uploaded.is_none() {
            if let Poll::Ready(result) = upload.as_mut().poll(cx) {
                match result {
                    Err(e) if e.is_client_fault() => return Poll::Ready(Joined::UploadFailed(e)),
                    other => uploaded = Some(other),
                }
            }
        }
        match response.as_mut().poll(cx) {
            Poll::Ready(response) => Poll::Ready(Joined::Finished {
                upload: uploaded.take(),
                response,
            }),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
