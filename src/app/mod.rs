//! Wiring: binds the listeners and runs provider → compiler → published table →
//! proxy and admin, until told to stop. The binary and the integration tests both
//! start sluice through [`start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::watch as provider;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::metrics::{ControlMetrics, DataPlaneSources, Metrics, RouteStats};
use crate::proxy::{self, ConnectionSettings, OpenConnections, Proxy};
use crate::router::{self, CompileOptions, Compiled, Diagnostic, Registries, RouteTable, Severity};
use crate::upstream::{PoolSettings, UpstreamClient};
use crate::watch::ProviderUpdate;

mod resolver;

/// Everything `start` needs; the CLI flags map onto these fields.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--manifests`: the directory or file the file provider reads.
    pub manifests: PathBuf,
    /// `--http-addr`.
    pub http_addr: SocketAddr,
    /// `--admin-addr`.
    pub admin_addr: SocketAddr,
    /// `--ingress-class` and friends.
    pub compile: CompileOptions,
    /// `--shutdown-grace`: how long in-flight requests may take to finish on stop.
    pub shutdown_grace: Duration,
    /// Client connection limits (`--header-read-timeout` ...).
    pub connections: ConnectionSettings,
    /// Backend connection settings (`--connect-timeout` ...).
    pub pool: PoolSettings,
    /// How long the file provider waits for a burst of changes to settle.
    pub debounce: Duration,
}

/// Why sluice could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--manifests` names nothing.
    #[error("manifest path {0} does not exist")]
    NoManifests(PathBuf),
}

/// A running sluice: its bound addresses and the handle that stops it.
#[derive(Debug)]
pub struct Running {
    /// Where the HTTP entrypoint listens (useful with port 0).
    pub http_addr: SocketAddr,
    /// Where the admin listener listens.
    pub admin_addr: SocketAddr,
    /// The published table (tests inspect it).
    pub table: Arc<ArcSwap<RouteTable>>,
    stop: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    proxy_task: JoinHandle<()>,
    state: Arc<AdminState>,
}

impl Running {
    /// Starts a graceful shutdown: not ready, stop accepting, drain in-flight requests.
    pub fn stop(&self) {
        self.state.ready.store(false, Ordering::Release);
        self.stop.send_replace(true);
    }

    /// Waits until the proxy has drained (or the grace period ran out), then ends
    /// every background task.
    pub async fn wait(self) {
        if let Err(e) = self.proxy_task.await {
            tracing::error!(error = %e, "proxy task failed");
        }
        self.admin_stop.send_replace(true);
        for task in self.tasks {
            task.abort();
        }
    }

    /// Whether the first table has been published and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Binds the listeners and starts every task; returns once listening.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    if !settings.manifests.exists() {
        return Err(StartError::NoManifests(settings.manifests));
    }
    let http = bind(settings.http_addr).await?;
    let admin_listener = bind(settings.admin_addr).await?;
    let http_addr = http.local_addr().map_err(|source| StartError::Bind {
        addr: settings.http_addr,
        source,
    })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: settings.admin_addr,
            source,
        })?;

    let table = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
    let client = UpstreamClient::new(&settings.pool);
    let unmatched = Arc::new(RouteStats::default());
    let open = Arc::new(OpenConnections::default());
    let metrics = Metrics::new(DataPlaneSources {
        table: table.clone(),
        unmatched: unmatched.clone(),
        open_connections: open.clone(),
        pool: client.stats().clone(),
    });
    let state = Arc::new(AdminState {
        table: table.clone(),
        ready: false.into(),
        diagnostics: ArcSwap::from_pointee(Vec::new()),
        metrics,
    });
    let (stop, stop_rx) = watch::channel(false);
    // The admin listener outlives the drain, so /readyz can say 503 meanwhile.
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let registries = Arc::new(Registries::default());
    let (updates_tx, updates_rx) = watch::channel(None);

    let mut tasks = Vec::new();
    let manifests = settings.manifests.clone();
    let debounce = settings.debounce;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = provider::run_file_provider(manifests, debounce, updates_tx).await {
            tracing::error!(error = %e, "file provider stopped");
        }
    }));
    let publisher = Publisher {
        table: table.clone(),
        state: state.clone(),
        registries: registries.clone(),
        options: settings.compile.clone(),
    };
    tasks.push(tokio::spawn(publisher.run(updates_rx)));
    tasks.push(tokio::spawn(resolver::run(registries.clone())));
    tasks.push(tokio::spawn(admin::serve(
        admin_listener,
        state.clone(),
        admin_stop_rx,
    )));
    let proxy = Arc::new(Proxy::new(table.clone(), client, unmatched));
    let proxy_task = tokio::spawn(proxy::serve(
        http,
        proxy,
        settings.connections.clone(),
        open,
        stop_rx,
        settings.shutdown_grace,
    ));
    tracing::info!(%http_addr, %admin_addr, manifests = %settings.manifests.display(), "sluice listening");
    Ok(Running {
        http_addr,
        admin_addr,
        table,
        stop,
        admin_stop,
        tasks,
        proxy_task,
        state,
    })
}

/// The single compiler task: latest update wins, so a burst makes one compile.
struct Publisher {
    table: Arc<ArcSwap<RouteTable>>,
    state: Arc<AdminState>,
    registries: Arc<Registries>,
    options: CompileOptions,
}

impl Publisher {
    async fn run(self, mut updates: watch::Receiver<Option<Arc<ProviderUpdate>>>) {
        while updates.changed().await.is_ok() {
            let Some(update) = updates.borrow_and_update().clone() else {
                continue;
            };
            self.publish(update).await;
        }
    }

    async fn publish(&self, update: Arc<ProviderUpdate>) {
        let started = std::time::Instant::now();
        let registries = self.registries.clone();
        let options = self.options.clone();
        let input = update.clone();
        // Compiling thousands of Ingresses is CPU work: keep it off the proxy's workers.
        let compiled = tokio::task::spawn_blocking(move || {
            router::compile(&input.snapshot, &options, &registries)
        })
        .await;
        let control = &self.state.metrics.control;
        let Compiled {
            table,
            diagnostics,
            endpoints,
        } = match compiled {
            Ok(compiled) => compiled,
            Err(e) => {
                control.reload_failures.inc();
                tracing::error!(error = %e, "compile failed; the last good table keeps serving");
                return;
            }
        };
        for (backend, set) in &endpoints {
            backend.set_endpoints(set.clone());
        }
        // New ExternalNames are looked up before the table that routes to them serves.
        let backends: Vec<_> = endpoints
            .iter()
            .map(|(backend, _)| backend.clone())
            .collect();
        resolver::resolve_new(&backends).await;
        self.table.store(Arc::new(table));
        let mut all: Vec<Diagnostic> = update.diagnostics.clone();
        all.extend(diagnostics);
        all.sort();
        all.dedup();
        self.report(&all);
        self.state.diagnostics.store(Arc::new(all));
        control.reloads.inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        control.last_reload_success.set(now);
        self.state.ready.store(true, Ordering::Release);
        tracing::info!(elapsed = ?started.elapsed(), "routing table published");
    }

    /// Logs diagnostics that are new since the last publish and updates their metrics.
    fn report(&self, all: &[Diagnostic]) {
        let previous = self.state.diagnostics.load();
        let control: &ControlMetrics = &self.state.metrics.control;
        control.rejected_objects.clear();
        for d in all {
            let labels = vec![("kind".to_owned(), d.kind.as_str().to_owned())];
            control.rejected_objects.get_or_create(&labels).inc();
            if previous.binary_search(d).is_err() {
                control.rejections.get_or_create(&labels).inc();
                match d.severity {
                    Severity::Error => {
                        tracing::warn!(object = %d.object, kind = d.kind.as_str(), "{}", d.message)
                    }
                    Severity::Warning => {
                        tracing::info!(object = %d.object, kind = d.kind.as_str(), "{}", d.message)
                    }
                }
            }
        }
    }
}
