//! Command-line flags. Every flag also reads `SLUICE_<FLAG>` from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use sluice::app::{DataPlane, Settings, TlsSettings};
use sluice::proxy::ConnectionSettings;
use sluice::router::CompileOptions;
use sluice::tls::TlsVersion;
use sluice::upstream::PoolSettings;

/// sluice: a Kubernetes ingress controller and reverse proxy.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = false)]
pub struct Cli {
    /// What to run; without a subcommand, the ingress controller.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of the ingress controller (also used by `demo`).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A built-in echo backend (like Traefik's whoami), for demos and tests.
    Whoami {
        /// Where to listen.
        #[arg(long, env = "SLUICE_WHOAMI_ADDR", default_value = "127.0.0.1:8081")]
        addr: SocketAddr,
        /// The name it reports.
        #[arg(long, env = "SLUICE_WHOAMI_NAME", default_value = "whoami")]
        name: String,
    },
    /// Runs sluice on the bundled examples/ manifests with bundled whoami backends.
    Demo,
}

/// Where the proxy runs (see `--data-plane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataPlaneMode {
    /// One current-thread runtime per worker thread.
    PerCore,
    /// One multi-threaded runtime for everything.
    Shared,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The ingress controller's flags.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Serve the Kubernetes manifests in this directory (recursively) or file, reloading on change.
    #[arg(long, env = "SLUICE_MANIFESTS", global = true)]
    pub manifests: Option<PathBuf>,
    /// The plain-HTTP entrypoint.
    #[arg(
        long,
        env = "SLUICE_HTTP_ADDR",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    pub http_addr: SocketAddr,
    /// The HTTPS entrypoint (certificates from the Ingresses' TLS Secrets, chosen by SNI).
    #[arg(
        long,
        env = "SLUICE_HTTPS_ADDR",
        default_value = "0.0.0.0:8443",
        global = true
    )]
    pub https_addr: SocketAddr,
    /// `namespace/name` of the TLS Secret served when SNI matches no host (default: a generated self-signed certificate).
    #[arg(long, env = "SLUICE_DEFAULT_CERT_SECRET", global = true)]
    pub default_cert_secret: Option<String>,
    /// Let Ingresses reference Middlewares of other namespaces (`<ns>-<name>@kubernetescrd`).
    #[arg(long, env = "SLUICE_ALLOW_CROSS_NAMESPACE", global = true)]
    pub allow_cross_namespace: bool,
    /// Lowest TLS version accepted from clients: 1.2 or 1.3.
    #[arg(
        long,
        env = "SLUICE_TLS_MIN_VERSION",
        default_value = "1.2",
        global = true
    )]
    pub tls_min_version: TlsVersion,
    /// The port HTTP → HTTPS redirects point at (left out of the URL when 443).
    #[arg(
        long,
        env = "SLUICE_HTTPS_REDIRECT_PORT",
        default_value_t = 443,
        global = true
    )]
    pub https_redirect_port: u16,
    /// The admin listener: /healthz, /readyz, /metrics, /api.
    #[arg(
        long,
        env = "SLUICE_ADMIN_ADDR",
        default_value = "127.0.0.1:9000",
        global = true
    )]
    pub admin_addr: SocketAddr,
    /// Serve Ingresses of this class (and class-less ones).
    #[arg(
        long,
        env = "SLUICE_INGRESS_CLASS",
        default_value = "sluice",
        global = true
    )]
    pub ingress_class: String,
    /// Log format.
    #[arg(
        long,
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "SLUICE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_grace: Duration,
    /// Where the proxy runs: `per-core` (one single-threaded runtime per worker,
    /// each with its own SO_REUSEPORT listeners) or `shared` (one work-stealing runtime).
    #[arg(
        long,
        env = "SLUICE_DATA_PLANE",
        value_enum,
        default_value = "per-core",
        global = true
    )]
    pub data_plane: DataPlaneMode,
    /// How long the file provider waits for a burst of file changes to settle before reloading.
    #[arg(long, env = "SLUICE_DEBOUNCE", default_value = "20ms", value_parser = humantime::parse_duration, global = true)]
    pub debounce: Duration,
    /// Worker threads of the data plane (default: the number of cores).
    #[arg(long, env = "SLUICE_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// Time a client has to send a complete request head; also the idle keep-alive limit.
    #[arg(long, env = "SLUICE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub header_read_timeout: Duration,
    /// HTTP/2 client connections are pinged after this much idleness and closed if silent.
    #[arg(long, env = "SLUICE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub idle_timeout: Duration,
    /// Time allowed to connect to a backend (502 after).
    #[arg(long, env = "SLUICE_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub connect_timeout: Duration,
    /// Time allowed for a backend's response head (504 after).
    #[arg(long, env = "SLUICE_RESPONSE_HEADER_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub response_header_timeout: Duration,
    /// How long an idle pooled backend connection is kept.
    #[arg(long, env = "SLUICE_UPSTREAM_IDLE_TIMEOUT", default_value = "90s", value_parser = humantime::parse_duration, global = true)]
    pub upstream_idle_timeout: Duration,
}

impl RunArgs {
    /// The app settings, or `None` when no manifest path was given.
    pub fn settings(&self) -> Result<Option<Settings>> {
        let Some(manifests) = self.manifests.clone() else {
            return Ok(None);
        };
        Ok(Some(Settings {
            manifests,
            http_addr: self.http_addr,
            admin_addr: self.admin_addr,
            compile: CompileOptions {
                ingress_class: self.ingress_class.clone(),
                default_cert_secret: None,
                allow_cross_namespace: self.allow_cross_namespace,
            },
            shutdown_grace: self.shutdown_grace,
            connections: ConnectionSettings {
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
                ..ConnectionSettings::default()
            },
            pool: PoolSettings {
                connect_timeout: self.connect_timeout,
                response_header_timeout: self.response_header_timeout,
                idle_timeout: self.upstream_idle_timeout,
                ..PoolSettings::default()
            },
            debounce: self.debounce,
            https_addr: self.https_addr,
            tls: TlsSettings {
                default_cert_secret: self.default_cert_secret.clone(),
                min_version: self.tls_min_version,
            },
            https_redirect_port: self.https_redirect_port,
            data_plane: match self.data_plane {
                DataPlaneMode::Shared => DataPlane::Shared,
                DataPlaneMode::PerCore => DataPlane::PerCore(self.worker_count()),
            },
        }))
    }

    /// `--workers`, or the number of cores.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}
