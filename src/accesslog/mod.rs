//! Access logs (`--access-log off|stdout|PATH`): one line per finished
//! request, in Traefik's common log format or as Traefik's JSON fields.
//!
//! Writing never blocks a request: [`AccessLog::record`] formats the line on
//! the request's thread and hands it to a bounded queue; a writer thread of
//! its own drains the queue every 50 ms into a buffered file (or stdout) and
//! flushes after each drain. A full queue drops the line and counts it
//! (`sluice_access_log_dropped_total`). [`request_reopen`] (SIGUSR1) makes the
//! writer reopen PATH, for logrotate.

mod format;
mod settings;

pub use format::{Entry, Format};
pub use settings::{AccessLogError, AccessLogSettings, StatusRanges, Target};

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::thread;
use std::time::Duration;

use http::HeaderName;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE_LINES: usize = 64 * 1024;

static DROPPED: AtomicU64 = AtomicU64::new(0);
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether an access log is running in this process (the data plane then
/// keeps the details a line needs).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
/// Bumped by each reopen request; every writer reopens when it changes.
static REOPEN: AtomicU64 = AtomicU64::new(0);

/// Lines dropped because the writer fell behind, since start.
pub fn dropped_total() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Asks the writer to reopen its file (SIGUSR1), as logrotate expects.
pub fn request_reopen() {
    REOPEN.fetch_add(1, Ordering::Relaxed);
}

/// A running access log: filters, format and the queue to its writer.
#[derive(Debug)]
pub struct AccessLog {
    queue: SyncSender<String>,
    format: Format,
    statuses: StatusRanges,
    min_duration: Duration,
    headers: Vec<HeaderName>,
    requests: AtomicU64,
}

impl AccessLog {
    /// Starts the writer for `settings`; `None` when access logs are off.
    pub fn start(settings: &AccessLogSettings) -> Result<Option<Self>, AccessLogError> {
        let sink = match &settings.target {
            Target::Off => return Ok(None),
            Target::Stdout => Sink::Stdout(BufWriter::with_capacity(256 * 1024, io::stdout())),
            Target::Path(path) => Sink::File {
                writer: BufWriter::with_capacity(
                    256 * 1024,
                    open(path).map_err(|source| AccessLogError::Open {
                        path: path.clone(),
                        source,
                    })?,
                ),
                path: path.clone(),
            },
        };
        let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
        thread::Builder::new()
            .name("sluice-access-log".into())
            .spawn(move || write_lines(lines, sink))
            .map_err(AccessLogError::Thread)?;
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Self {
            queue,
            format: settings.format,
            statuses: settings.statuses.clone(),
            min_duration: settings.min_duration,
            headers: settings.headers.clone(),
            requests: AtomicU64::new(0),
        }))
    }

    /// The request headers to keep (`--access-log-header`), lowercased.
    pub fn headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// Numbers the next request (the log's request count); call once per
    /// request, whether or not it is written.
    pub fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether a request that ended with `status` after `duration` passes the
    /// filters (`--access-log-status`, `--access-log-min-duration`).
    pub fn wants(&self, status: u16, duration: Duration) -> bool {
        duration >= self.min_duration && self.statuses.contains(status)
    }

    /// Formats `entry` and queues it; drops (and counts) it if the writer is behind.
    pub fn record(&self, entry: &Entry<'_>) {
        if !self.wants(entry.status, entry.duration) {
            return;
        }
        let line = self.format.line(entry);
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File {
        writer: BufWriter<File>,
        path: PathBuf,
    },
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Stdout(w) => w,
            Self::File { writer, .. } => writer,
        }
    }

    fn reopen(&mut self) {
        if let Self::File { writer, path } = self {
            let _ = writer.flush();
            match open(path) {
                Ok(file) => *writer = BufWriter::new(file),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "reopening the access log failed; still writing to the old file");
                }
            }
        }
    }
}

/// How long the writer sleeps between drains of the queue. It never waits on
/// the queue itself: a request thread that queues a line then wakes nobody (a
/// blocked receiver would cost a futex wake and a context switch per line).
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// The writer thread: drains the queue every [`DRAIN_EVERY`], flushes after
/// each drain, reopens on request.
fn write_lines(lines: mpsc::Receiver<String>, mut sink: Sink) {
    let mut reopened = REOPEN.load(Ordering::Relaxed);
    loop {
        let requested = REOPEN.load(Ordering::Relaxed);
        if requested != reopened {
            reopened = requested;
            sink.reopen();
        }
        let mut wrote = false;
        loop {
            match lines.try_recv() {
                Ok(line) => {
                    write_line(&mut sink, &line);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    flush(&mut sink);
                    return;
                }
            }
        }
        if wrote {
            flush(&mut sink);
        }
        thread::sleep(DRAIN_EVERY);
    }
}

fn write_line(sink: &mut Sink, line: &str) {
    let w = sink.writer();
    if let Err(e) = w
        .write_all(line.as_bytes())
        .and_then(|()| w.write_all(b"\n"))
    {
        tracing::warn!(error = %e, "writing the access log failed");
    }
}

fn flush(sink: &mut Sink) {
    if let Err(e) = sink.writer().flush() {
        tracing::warn!(error = %e, "flushing the access log failed");
    }
}
