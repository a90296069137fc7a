//! The manifest-file provider: load, publish, then watch with notify and reload.
//!
//! notify calls back on its own thread; relevant events cross to tokio over a
//! bounded `mpsc` channel (a full channel drops events, which is harmless: a
//! reload is already pending). The first event after a quiet period (no
//! publish for `debounce`) is read after [`LEADING_QUIET`] without events, so a
//! single change pays no debounce; events that come while a burst is in
//! progress wait until `debounce` passes without events, or `max_delay` since
//! the first one, then the files are re-read once: a `cp -r` makes a few
//! updates, an editor save one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};

use super::files::{ManifestFiles, Reload};

/// How long the first event after a quiet period waits for more: the events
/// of one save or rename arrive within it.
pub const LEADING_QUIET: Duration = Duration::from_millis(2);
use super::{ProviderUpdate, WatchError};

/// Where a provider publishes: the latest update, `None` until the first load.
pub type UpdateSender = watch::Sender<Option<Arc<ProviderUpdate>>>;

type EventResult = notify::Result<Event>;

/// How often a provider whose path disappeared looks for it again.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Configures and runs the manifest-file provider.
#[derive(Debug, Clone)]
pub struct FileProvider {
    path: PathBuf,
    debounce: Duration,
    max_delay: Duration,
}

impl FileProvider {
    /// A provider for `path` (a directory or a file) with a 100 ms debounce.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
        }
    }

    /// How long the files must stay quiet after an event before a reload.
    #[must_use]
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// The longest wait from the first event to the reload, even if events keep coming.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Runs until `updates` has no receivers: loads, publishes the first update, then watches.
    ///
    /// # Errors
    ///
    /// Fails before publishing anything if the path does not exist
    /// ([`WatchError::NotFound`]) or cannot be watched; later only if a reload panics.
    pub async fn run(self, updates: UpdateSender) -> Result<(), WatchError> {
        let files = ManifestFiles::open(&self.path)?;
        let (tx, mut rx) = mpsc::channel(256);
        // Watch before the first load so no change falls in between.
        let first = Watching::start(&files, tx.clone())?;
        // The first load reads everything anyway.
        first.fresh.store(false, Ordering::Relaxed);
        let mut watching = Some(first);
        let files = Arc::new(Mutex::new(files));
        let mut published = None;
        if !load_and_publish(&files, &updates, &mut published, Changed::Everything).await? {
            return Ok(());
        }
        let mut last_publish = Instant::now();
        loop {
            let mut changed = Changed::Everything;
            tokio::select! {
                () = updates.closed() => return Ok(()),
                Some(event) = rx.recv() => {
                    changed = Changed::Paths(Vec::new());
                    changed.add(event);
                    // After a quiet period the change goes out at once (the
                    // events of one save arrive within a millisecond); while
                    // a burst is in progress, changes are coalesced.
                    let quiet = last_publish.elapsed() >= self.debounce;
                    let debounce = if quiet { LEADING_QUIET.min(self.debounce) } else { self.debounce };
                    self.settle(&mut rx, &updates, &mut changed, debounce).await;
                }
                () = tokio::time::sleep(RETRY_INTERVAL), if watching.is_none() => {}
            }
            let restarted;
            (watching, restarted) = Watching::refresh(watching, &lock(&files), &tx);
            if watching.is_none() {
                continue; // The path is gone: keep the last objects.
            }
            if restarted {
                // A new watch may have missed events: read everything.
                changed = Changed::Everything;
            }
            if !load_and_publish(&files, &updates, &mut published, changed).await? {
                return Ok(());
            }
            last_publish = Instant::now();
        }
    }

    /// Waits until events stop for `debounce` (the provider's, or less for
    /// the first change after a quiet period), at most `max_delay` in all,
    /// collecting the paths they name.
    async fn settle(
        &self,
        rx: &mut mpsc::Receiver<EventResult>,
        updates: &UpdateSender,
        changed: &mut Changed,
        debounce: Duration,
    ) {
        let deadline = Instant::now() + self.max_delay;
        loop {
            let quiet = (Instant::now() + debounce).min(deadline);
            tokio::select! {
                () = updates.closed() => return,
                next = timeout_at(quiet, rx.recv()) => match next {
                    Ok(Some(event)) => changed.add(event),
                    Ok(None) | Err(_) => return,
                },
            }
        }
    }
}

/// What a burst of events touched.
#[derive(Debug)]
enum Changed {
    /// Unknown (start, a watcher error, a rescan, a dropped event): re-read every file.
    Everything,
    /// These paths, as the events named them.
    Paths(Vec<PathBuf>),
}

impl Changed {
    /// The most paths worth handling one by one.
    const MAX_PATHS: usize = 64;

    fn add(&mut self, event: EventResult) {
        let Self::Paths(paths) = self else { return };
        match event {
            Ok(event) if !event.need_rescan() && !event.paths.is_empty() => {
                for path in event.paths {
                    if !paths.contains(&path) {
                        paths.push(path);
                    }
                }
                if paths.len() > Self::MAX_PATHS {
                    *self = Self::Everything;
                }
            }
            _ => *self = Self::Everything,
        }
    }
}

/// Runs the file provider until `updates` is closed: loads `path`, sends the first update, then watches.
///
/// # Errors
///
/// Returns an error before sending anything if `path` does not exist; see [`FileProvider::run`].
pub async fn run_file_provider(
    path: PathBuf,
    debounce: Duration,
    updates: UpdateSender,
) -> Result<(), WatchError> {
    FileProvider::new(path)
        .debounce(debounce)
        .run(updates)
        .await
}

fn lock(files: &Mutex<ManifestFiles>) -> std::sync::MutexGuard<'_, ManifestFiles> {
    files.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reloads off the async threads and publishes if the store changed; false once nobody listens.
///
/// `published` is the store generation last published: an unchanged generation
/// means the files contribute exactly what they did.
async fn load_and_publish(
    files: &Arc<Mutex<ManifestFiles>>,
    updates: &UpdateSender,
    published: &mut Option<u64>,
    changed: Changed,
) -> Result<bool, WatchError> {
    let task_files = Arc::clone(files);
    let started = std::time::Instant::now();
    let last = *published;
    let loaded = tokio::task::spawn_blocking(move || {
        let mut files = lock(&task_files);
        let reload = match &changed {
            Changed::Everything => files.reload(),
            Changed::Paths(paths) => files.reload_paths(paths),
        };
        if reload != Reload::Loaded {
            return None;
        }
        let generation = files.generation();
        let update = (last != Some(generation)).then(|| files.update());
        Some((generation, update))
    })
    .await?;
    let Some((generation, update)) = loaded else {
        return Ok(!updates.is_closed());
    };
    let Some(update) = update else {
        tracing::debug!(elapsed = ?started.elapsed(), "manifests reloaded, nothing changed");
        return Ok(!updates.is_closed());
    };
    let s = &update.snapshot;
    let objects = s.ingresses.len()
        + s.ingress_classes.len()
        + s.services.len()
        + s.endpoint_slices.len()
        + s.endpoints.len()
        + s.secrets.len();
    tracing::info!(
        objects,
        diagnostics = update.diagnostics.len(),
        elapsed = ?started.elapsed(),
        "manifests loaded"
    );
    *published = Some(generation);
    Ok(updates.send(Some(Arc::new(update))).is_ok())
}

/// A live watcher and the identity of the directory it watches.
struct Watching {
    _watcher: RecommendedWatcher,
    identity: Option<(u64, u64)>,
    /// Set when the watched directory itself was removed or renamed (or the
    /// watcher failed): the watch is dead even if the path exists again.
    stale: Arc<AtomicBool>,
    /// Set until the first reload after this watcher started.
    fresh: AtomicBool,
}

impl Watching {
    /// Watches the directory recursively, or the parent of a single file
    /// (editors replace a file by renaming another over it).
    fn start(files: &ManifestFiles, tx: mpsc::Sender<EventResult>) -> Result<Self, WatchError> {
        let (target, recursive) = files.watch_target();
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        let stale = Arc::new(AtomicBool::new(false));
        let (flag, watched) = (Arc::clone(&stale), target.clone());
        let mut watcher = notify::recommended_watcher(move |event: EventResult| {
            if is_relevant(&event) {
                if touches_root(&event, &watched) {
                    flag.store(true, Ordering::Relaxed);
                }
                // Full means a reload is already pending.
                let _ = tx.try_send(event);
            }
        })?;
        watcher.watch(&target, mode)?;
        let identity = identity(&target);
        Ok(Self {
            _watcher: watcher,
            identity,
            stale,
            fresh: AtomicBool::new(true),
        })
    }

    /// Keeps watching while the watched directory is the same one; drops the
    /// watcher when it is gone and starts a new one when it is back (a watch
    /// on a deleted directory sees nothing, even if the path is recreated).
    ///
    /// Also says whether a new watcher was started (which may have missed events).
    fn refresh(
        current: Option<Self>,
        files: &ManifestFiles,
        tx: &mpsc::Sender<EventResult>,
    ) -> (Option<Self>, bool) {
        let was_watching = current.is_some();
        let next = Self::refresh_inner(current, files, tx);
        let restarted = next
            .as_ref()
            .is_some_and(|w| !was_watching || w.fresh.swap(false, Ordering::Relaxed));
        (next, restarted)
    }

    fn refresh_inner(
        current: Option<Self>,
        files: &ManifestFiles,
        tx: &mpsc::Sender<EventResult>,
    ) -> Option<Self> {
        let now = identity(&files.watch_target().0);
        let path = files.root().display();
        match (current, now) {
            (Some(watching), Some(_))
                if watching.identity == now && !watching.stale.load(Ordering::Relaxed) =>
            {
                Some(watching)
            }
            (Some(_), None) => {
                tracing::warn!(%path, "watched path is gone; keeping the last objects");
                None
            }
            (_, None) => None,
            (_, Some(_)) => match Self::start(files, tx.clone()) {
                Ok(watching) => {
                    tracing::info!(%path, "watching the manifest path again");
                    Some(watching)
                }
                Err(err) => {
                    tracing::warn!(%path, "cannot watch manifests: {err}");
                    None
                }
            },
        }
    }
}

/// Tells a recreated directory from the old one at the same path.
#[cfg(unix)]
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Tells whether the path exists (no inode numbers here).
#[cfg(not(unix))]
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

/// True for an event that removes or renames the watched directory itself.
fn touches_root(event: &EventResult, root: &std::path::Path) -> bool {
    let Ok(event) = event else { return true };
    let gone = matches!(
        event.kind,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    );
    gone && event.paths.iter().any(|path| path == root)
}

/// Reads (our own included) are not changes; a close after writing is.
fn is_relevant(event: &EventResult) -> bool {
    match event {
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        },
        Err(err) => {
            tracing::warn!("file watcher error: {err}");
            true
        }
    }
}
