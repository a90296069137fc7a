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
use crate::proxy::{ConnectionSettings, HandshakeStats, OpenConnections, Proxy, TlsEntry};
use crate::router::{self, CompileOptions, Compiled, Diagnostic, Registries, RouteTable, Severity};
use crate::status::{LeaseSettings, StatusSettings};
use crate::tls::{self, SniResolver, TlsVersion};
use crate::upstream::PoolSettings;
use crate::watch::{KubeSettings, KubeStats, ProviderUpdate};

mod data_plane;
mod resolver;

pub use data_plane::DataPlane;

/// Where the Kubernetes objects come from.
// Built once at start and read by reference: the size of the Kube variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Source {
    /// `--manifests`: a directory or file of manifests, reloaded on change.
    Manifests(PathBuf),
    /// No `--manifests`: the cluster's API server (`--kubeconfig`, `--context`,
    /// `--watch-namespace`, `--ingress-label-selector`).
    Kube(KubeSettings),
}

/// Everything `start` needs; the CLI flags map onto these fields.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the objects come from: manifest files or the Kubernetes API.
    pub source: Source,
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
    /// `--https-addr`.
    pub https_addr: SocketAddr,
    /// `--default-cert-secret`, `--tls-min-version`.
    pub tls: TlsSettings,
    /// `--https-redirect-port`: the port HTTP → HTTPS redirects point at.
    pub https_redirect_port: u16,
    /// `--data-plane`: where the proxy listeners run.
    pub data_plane: DataPlane,
    /// Ingress status publishing (Kubernetes source only).
    pub status: StatusConfig,
    /// The access log (`--access-log*`).
    pub access_log: crate::accesslog::AccessLogSettings,
    /// OpenTelemetry tracing (`--tracing-*`).
    pub tracing: crate::telemetry::TracingSettings,
    /// `--rate-limit-redis`: Redis endpoints ingress-nginx's request limits share.
    pub rate_limit_redis: Vec<String>,
}

/// Ingress status publishing: what to publish and the Lease that elects the
/// one replica that writes it.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// `--publish-service` / `--publish-status-address`.
    pub publish: StatusSettings,
    /// `--election-id` and this replica's identity.
    pub lease: LeaseSettings,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            publish: StatusSettings::default(),
            lease: LeaseSettings::new(
                "default".into(),
                "sluice-leader".into(),
                crate::status::unique_identity(),
            ),
        }
    }
}

/// TLS settings of the HTTPS entrypoint.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `namespace/name` of the Secret served for unknown or missing SNI; without
    /// it, a self-signed certificate is generated at start.
    pub default_cert_secret: Option<String>,
    /// The lowest TLS version accepted.
    pub min_version: TlsVersion,
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
    /// No `--manifests`, and no usable Kubernetes configuration.
    #[error("cannot use the Kubernetes API ({0}); give --kubeconfig, run in a cluster, or serve files with --manifests")]
    Kube(#[from] crate::watch::KubeError),
    /// The TLS settings cannot be used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A data-plane thread or runtime could not be started.
    #[error("cannot start the data plane: {0}")]
    Runtime(String),
    /// The access log cannot be opened.
    #[error(transparent)]
    AccessLog(#[from] crate::accesslog::AccessLogError),
    /// Tracing cannot be set up.
    #[error(transparent)]
    Tracing(#[from] crate::telemetry::TracingError),
}

/// A running sluice: its bound addresses and the handle that stops it.
#[derive(Debug)]
pub struct Running {
    /// Where the HTTP entrypoint listens (useful with port 0).
    pub http_addr: SocketAddr,
    /// Where the HTTPS entrypoint listens.
    pub https_addr: SocketAddr,
    /// Where the admin listener listens.
    pub admin_addr: SocketAddr,
    /// The published table (tests inspect it).
    pub table: Arc<ArcSwap<RouteTable>>,
    /// The Kubernetes provider's counters (reconnects, relists...), with `Source::Kube`.
    pub kube_stats: Option<Arc<KubeStats>>,
    stop: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    proxy_tasks: Vec<JoinHandle<()>>,
    state: Arc<AdminState>,
    tracer: Option<Arc<crate::telemetry::Tracing>>,
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
        for task in self.proxy_tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "proxy task failed");
            }
        }
        self.admin_stop.send_replace(true);
        for task in self.tasks {
            task.abort();
        }
        if let Some(tracer) = self.tracer {
            // Flushing blocks until the exporter thread has sent the last
            // batch, which it does from this runtime: keep a worker free.
            let _ = tokio::task::spawn_blocking(move || tracer.shutdown()).await;
        }
    }

    /// Whether the first table has been published and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Binds the listeners and starts every task; returns once listening.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    // Fail before binding anything when the source cannot be used.
    let feed = match &settings.source {
        Source::Manifests(path) if !path.exists() => {
            return Err(StartError::NoManifests(path.clone()))
        }
        Source::Manifests(path) => Feed::Files(path.clone()),
        Source::Kube(kube) => Feed::Kube(Box::new((
            provider::kube::client(kube).await?,
            kube.clone(),
        ))),
    };
    let mut compile = settings.compile.clone();
    compile.default_cert_secret = default_secret(&settings.tls)?;
    let http = data_plane::bind(settings.data_plane, settings.http_addr).await?;
    let https = data_plane::bind(settings.data_plane, settings.https_addr).await?;
    let (http_addr, https_addr) = (http.addr, https.addr);
    compile.gateway.http_port = http_addr.port();
    compile.gateway.https_port = https_addr.port();
    let (admin_listener, admin_addr) = bind(settings.admin_addr).await?;

    let table = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
    let registries = Arc::new(Registries::new(settings.pool.clone()));
    let unmatched = Arc::new(RouteStats::default());
    let open = Arc::new(OpenConnections::default());
    let open_tls = Arc::new(OpenConnections::default());
    let handshakes = Arc::new(HandshakeStats::default());
    let kube_stats = matches!(feed, Feed::Kube(_)).then(|| Arc::new(KubeStats::default()));
    let metrics = Metrics::new(DataPlaneSources {
        provider: kube_stats
            .clone()
            .map(|s| s as Arc<dyn crate::metrics::ProviderCounters>),
        table: table.clone(),
        unmatched: unmatched.clone(),
        open_connections: open.clone(),
        open_tls_connections: open_tls.clone(),
        registries: registries.clone(),
        handshakes: handshakes.clone(),
    });
    let state = Arc::new(AdminState::new(
        table.clone(),
        metrics,
        admin::EntryPointsInfo {
            web: Some(http_addr),
            websecure: Some(https_addr),
            web_open: open.clone(),
            websecure_open: open_tls.clone(),
        },
    ));
    let (stop, stop_rx) = watch::channel(false);
    // The admin listener outlives the drain, so /readyz can say 503 meanwhile.
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let (updates_tx, updates_rx) = watch::channel(None);

    let mut tasks = Vec::new();
    match feed {
        Feed::Files(manifests) => {
            let debounce = settings.debounce;
            tasks.push(tokio::spawn(async move {
                if let Err(e) = provider::run_file_provider(manifests, debounce, updates_tx).await {
                    tracing::error!(error = %e, "file provider stopped");
                }
            }));
        }
        Feed::Kube(kube) => {
            let (client, kube) = *kube;
            // Always elected in a cluster: the Gateway API status is written
            // whether or not Ingress addresses are published.
            {
                let (leading_tx, leading_rx) = watch::channel(false);
                tasks.push(tokio::spawn(crate::status::run_election(
                    client.clone(),
                    settings.status.lease.clone(),
                    leading_tx,
                    stop_rx.clone(),
                )));
                tasks.push(tokio::spawn(crate::status::run_status_writer(
                    client.clone(),
                    settings.status.publish.clone(),
                    compile.clone(),
                    crate::status::GatewayPorts {
                        http: http_addr.port(),
                        https: https_addr.port(),
                    },
                    updates_rx.clone(),
                    leading_rx,
                    stop_rx.clone(),
                )));
            }
            let stats = kube_stats.clone().unwrap_or_default();
            let task_stats = stats.clone();
            tasks.push(tokio::spawn(async move {
                let run = provider::run_kube_provider(client, kube, updates_tx, task_stats);
                if let Err(e) = run.await {
                    tracing::error!(error = %e, "Kubernetes provider stopped");
                }
            }));
        }
    }
    let publisher = Publisher {
        table: table.clone(),
        state: state.clone(),
        registries: registries.clone(),
        options: compile,
    };
    tasks.push(tokio::spawn(publisher.run(updates_rx)));
    tasks.push(tokio::spawn(resolver::run(registries.clone())));
    tasks.push(tokio::spawn(admin::live::run_sampler(
        state.live.clone(),
        table.clone(),
        unmatched.clone(),
    )));
    tasks.push(tokio::spawn(admin::serve(
        admin_listener,
        state.clone(),
        admin_stop_rx,
    )));
    let access_log = crate::accesslog::AccessLog::start(&settings.access_log)?.map(Arc::new);
    let tracer = crate::telemetry::Tracing::start(&settings.tracing)?;
    if !settings.rate_limit_redis.is_empty() {
        let options = crate::middleware::redis_store::RedisOptions {
            endpoints: settings.rate_limit_redis.clone(),
            ..Default::default()
        };
        let store = crate::middleware::redis_store::RedisStore::new(options)
            .map_err(|e| StartError::Runtime(format!("--rate-limit-redis: {e}")))?;
        if !crate::middleware::redis_store::install_global(store) {
            tracing::warn!(
                "--rate-limit-redis: a store is already installed in this process; keeping it"
            );
        }
    }
    let proxy = Arc::new(Proxy::new(
        table.clone(),
        unmatched,
        settings.https_redirect_port,
        access_log,
        tracer.clone(),
    ));
    let tls = TlsEntry {
        acceptor: acceptor(&table, settings.tls.min_version)?,
        stats: handshakes,
        min_version: settings.tls.min_version,
    };
    let entrypoints = vec![
        data_plane::Entrypoint {
            bound: http,
            open,
            tls: None,
        },
        data_plane::Entrypoint {
            bound: https,
            open: open_tls,
            tls: Some(tls),
        },
    ];
    let proxy_tasks = data_plane::run(
        settings.data_plane,
        entrypoints,
        proxy,
        settings.connections.clone(),
        stop_rx,
        settings.shutdown_grace,
    )?;
    let source = match &settings.source {
        Source::Manifests(path) => path.display().to_string(),
        Source::Kube(_) => "kubernetes".to_owned(),
    };
    tracing::info!(%http_addr, %https_addr, %admin_addr, %source, "sluice listening");
    Ok(Running {
        http_addr,
        https_addr,
        admin_addr,
        table,
        kube_stats,
        stop,
        admin_stop,
        tasks,
        proxy_tasks,
        state,
        tracer,
    })
}

/// The provider `start` runs, checked before anything is bound.
enum Feed {
    Files(PathBuf),
    Kube(Box<(::kube::Client, KubeSettings)>),
}

/// Parses `--default-cert-secret` (`namespace/name`).
fn default_secret(tls: &TlsSettings) -> Result<Option<(String, String)>, StartError> {
    let Some(value) = &tls.default_cert_secret else {
        return Ok(None);
    };
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
            Ok(Some((ns.to_owned(), name.to_owned())))
        }
        _ => Err(StartError::Tls(format!(
            "--default-cert-secret {value:?} is not namespace/name"
        ))),
    }
}

/// The TLS acceptor: certificates picked by SNI from the published table, one
/// atomic load per handshake.
fn acceptor(
    table: &Arc<ArcSwap<RouteTable>>,
    min_version: TlsVersion,
) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    let table = table.clone();
    let resolver = SniResolver::new(move |sni| table.load().certs().resolve(sni));
    let config = tls::server_config(Arc::new(resolver), min_version)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The single compiler task: latest update wins, so a burst makes one compile.
struct Publisher {
    table: Arc<ArcSwap<RouteTable>>,
    state: Arc<AdminState>,
    registries: Arc<Registries>,
    options: CompileOptions,
}

/// What the last full compile was made from, for the endpoint-only path.
struct LastCompile {
    update: Arc<ProviderUpdate>,
    diagnostics: Vec<Diagnostic>,
}

impl Publisher {
    async fn run(self, mut updates: watch::Receiver<Option<Arc<ProviderUpdate>>>) {
        let mut last: Option<LastCompile> = None;
        while updates.changed().await.is_ok() {
            let Some(update) = updates.borrow_and_update().clone() else {
                continue;
            };
            match &mut last {
                Some(prev)
                    if router::only_endpoints_changed(&prev.update.snapshot, &update.snapshot) =>
                {
                    self.refresh_endpoints(&prev.update, &update, &prev.diagnostics)
                        .await;
                    prev.update = update;
                }
                _ => {
                    if let Some(diagnostics) = self.publish(update.clone()).await {
                        last = Some(LastCompile {
                            update,
                            diagnostics,
                        });
                    }
                }
            }
        }
    }

    /// Pod churn: new endpoint sets for the live backends, no recompile.
    async fn refresh_endpoints(
        &self,
        before: &Arc<ProviderUpdate>,
        update: &Arc<ProviderUpdate>,
        compile_diagnostics: &[Diagnostic],
    ) {
        let started = std::time::Instant::now();
        let registries = self.registries.clone();
        let (old, new) = (before.clone(), update.clone());
        let refreshed = tokio::task::spawn_blocking(move || {
            router::refresh_endpoints(&old.snapshot, &new.snapshot, &registries)
        })
        .await;
        let Ok(sets) = refreshed else {
            self.state.metrics.control.reload_failures.inc();
            return;
        };
        // Only diagnostics changed (a file that no longer parses keeps its
        // last good objects): say so rather than "endpoints".
        let kind = if sets.is_empty() {
            "diagnostics"
        } else {
            "endpoints"
        };
        for (backend, set) in sets {
            backend.set_endpoints(set);
        }
        let mut all: Vec<Diagnostic> = update.diagnostics.clone();
        all.extend(compile_diagnostics.iter().cloned());
        all.sort();
        all.dedup();
        self.report(&all);
        self.state.diagnostics.store(Arc::new(all));
        self.state.metrics.control.endpoint_updates.inc();
        self.state.reloaded(kind, started.elapsed());
        tracing::info!(elapsed = ?started.elapsed(), "endpoints updated without recompiling");
    }

    /// Compiles and publishes; returns the compile's diagnostics when it succeeded.
    async fn publish(&self, update: Arc<ProviderUpdate>) -> Option<Vec<Diagnostic>> {
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
                return None;
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
        all.extend(diagnostics.iter().cloned());
        all.sort();
        all.dedup();
        self.report(&all);
        self.state.diagnostics.store(Arc::new(all));
        self.state.objects.store(Some(update));
        self.state.reloaded("routes", started.elapsed());
        control.reloads.inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        control.last_reload_success.set(now);
        self.state.ready.store(true, Ordering::Release);
        tracing::info!(elapsed = ?started.elapsed(), "routing table published");
        Some(diagnostics)
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
