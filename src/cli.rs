//! Command-line flags. Every flag also reads `SLUICE_<FLAG>` from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use sluice::accesslog::{AccessLogSettings, Format, StatusRanges, Target};
use sluice::app::{DataPlane, Settings, Source, StatusConfig, TlsSettings};
use sluice::proxy::{ConnectionSettings, Http1Engine};
use sluice::router::CompileOptions;
use sluice::status::{LeaseSettings, StatusSettings};
use sluice::tls::TlsVersion;
use sluice::upstream::PoolSettings;
use sluice::watch::KubeSettings;

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
    /// Reports, per Ingress, the annotations sluice would ignore, refuse or read
    /// differently from ingress-nginx or Traefik, unknown annotation keys, and the
    /// compiler's diagnostics, for the objects of `--manifests` or of the
    /// Kubernetes API (`--kubeconfig`, in-cluster). Changes nothing and opens no
    /// listener. Exit status: 0 nothing would change, 1 something would, 2 the
    /// objects could not be loaded.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        output: CheckOutput,
        /// How long to wait for the Kubernetes API to list every object.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// The format of `sluice check`'s report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    /// Lines for a terminal.
    Text,
    /// One JSON document.
    Json,
}

/// Where the proxy runs (see `--data-plane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataPlaneMode {
    /// One current-thread runtime per worker thread.
    PerCore,
    /// One multi-threaded runtime for everything.
    Shared,
}

/// Which engine serves HTTP/1.1 clients (see `--http1-engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Http1EngineMode {
    /// sluice's own HTTP/1.1 forwarding path.
    Native,
    /// hyper's server and client (the previous engine, kept as a fallback).
    Hyper,
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
    /// Without it, sluice watches the Kubernetes API.
    #[arg(long, env = "SLUICE_MANIFESTS", global = true)]
    pub manifests: Option<PathBuf>,
    /// The kubeconfig to reach the API server with (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account).
    #[arg(
        long,
        env = "SLUICE_KUBECONFIG",
        global = true,
        conflicts_with = "manifests"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(
        long,
        env = "SLUICE_CONTEXT",
        global = true,
        conflicts_with = "manifests"
    )]
    pub context: Option<String>,
    /// Watch only these namespaces (comma-separated; default: all).
    #[arg(
        long,
        env = "SLUICE_WATCH_NAMESPACE",
        value_delimiter = ',',
        global = true,
        conflicts_with = "manifests"
    )]
    pub watch_namespace: Vec<String>,
    /// Serve only Ingresses matching this label selector (`app=web,tier!=internal`).
    #[arg(
        long,
        env = "SLUICE_INGRESS_LABEL_SELECTOR",
        global = true,
        conflicts_with = "manifests"
    )]
    pub ingress_label_selector: Option<String>,
    /// `namespace/name` of sluice's own Service: its address is written into the
    /// status of every served Ingress (by the elected leader only).
    #[arg(
        long,
        env = "SLUICE_PUBLISH_SERVICE",
        global = true,
        conflicts_with = "manifests"
    )]
    pub publish_service: Option<String>,
    /// Fixed addresses (IPs or host names, comma-separated) to write into the
    /// status of served Ingresses instead of the Service's.
    #[arg(
        long,
        env = "SLUICE_PUBLISH_STATUS_ADDRESS",
        value_delimiter = ',',
        global = true,
        conflicts_with = "manifests"
    )]
    pub publish_status_address: Vec<String>,
    /// The name of the Lease (in the pod's namespace, `POD_NAMESPACE`) that elects
    /// the one replica writing Ingress status.
    #[arg(
        long,
        env = "SLUICE_ELECTION_ID",
        default_value = "sluice-leader",
        global = true
    )]
    pub election_id: String,
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
    /// `namespace/name` of an ingress-nginx controller ConfigMap whose global settings
    /// (proxy-body-size, proxy-*-timeout, hsts, ssl-redirect, ...) apply to every Ingress.
    #[arg(long, env = "SLUICE_NGINX_CONFIGMAP", global = true)]
    pub nginx_configmap: Option<String>,
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
    /// A client that stops sending a request body it announced for this long has its connection
    /// closed (HTTP/2, and HTTP/1.1 on the hyper engine: the request is answered 408).
    #[arg(long, env = "SLUICE_BODY_READ_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub body_read_timeout: Duration,
    /// Access log: `off`, `stdout`, or a file PATH (appended to; SIGUSR1 reopens it).
    #[arg(long, env = "SLUICE_ACCESS_LOG", default_value = "off", global = true)]
    pub access_log: Target,
    /// Access-log line format: `common` (Traefik's CLF) or `json` (Traefik's field names).
    #[arg(
        long,
        env = "SLUICE_ACCESS_LOG_FORMAT",
        default_value = "common",
        global = true
    )]
    pub access_log_format: Format,
    /// A request header to write in JSON access logs (repeatable); Authorization,
    /// Cookie and Proxy-Authorization are written as REDACTED.
    #[arg(
        long = "access-log-header",
        env = "SLUICE_ACCESS_LOG_HEADER",
        value_delimiter = ',',
        global = true
    )]
    pub access_log_headers: Vec<String>,
    /// Log only these statuses: codes and ranges, e.g. `400-599,302` (default: all).
    #[arg(
        long,
        env = "SLUICE_ACCESS_LOG_STATUS",
        default_value = "",
        global = true
    )]
    pub access_log_status: StatusRanges,
    /// Log only requests that took at least this long (e.g. `100ms`).
    #[arg(long, env = "SLUICE_ACCESS_LOG_MIN_DURATION", default_value = "0s", value_parser = humantime::parse_duration, global = true)]
    pub access_log_min_duration: Duration,
    /// OpenTelemetry: the collector's OTLP/HTTP base URL (e.g. `http://otel-collector:4318`;
    /// `/v1/traces` is appended). Tracing is off when unset.
    #[arg(long, env = "SLUICE_TRACING_OTLP_ENDPOINT", global = true)]
    pub tracing_otlp_endpoint: Option<String>,
    /// The fraction of new traces sampled (0.0 to 1.0); a client's sampled
    /// `traceparent` is always continued.
    #[arg(
        long,
        env = "SLUICE_TRACING_SAMPLE_RATIO",
        default_value_t = 1.0,
        global = true
    )]
    pub tracing_sample_ratio: f64,
    /// `service.name` of the exported traces.
    #[arg(
        long,
        env = "SLUICE_TRACING_SERVICE_NAME",
        default_value = "sluice",
        global = true
    )]
    pub tracing_service_name: String,
    /// Redis endpoints (`host:port`, comma-separated) that ingress-nginx's
    /// `limit-rps` / `limit-rpm` share between replicas; per replica when unset.
    #[arg(
        long,
        env = "SLUICE_RATE_LIMIT_REDIS",
        value_delimiter = ',',
        global = true
    )]
    pub rate_limit_redis: Vec<String>,
    /// The engine for HTTP/1.1 clients: `native` (sluice's own forwarding path) or `hyper`.
    #[arg(
        long,
        env = "SLUICE_HTTP1_ENGINE",
        value_enum,
        default_value = "native",
        global = true
    )]
    pub http1_engine: Http1EngineMode,
}

/// A `namespace/name` flag value.
fn namespaced(flag: &str, value: &str) -> Result<(String, String)> {
    match value.trim().split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => anyhow::bail!("{flag} {value:?}: expected namespace/name"),
    }
}

impl RunArgs {
    /// The app settings: the file provider with `--manifests`, else the Kubernetes API.
    pub fn settings(&self) -> Result<Settings> {
        let nginx_configmap = self
            .nginx_configmap
            .as_deref()
            .map(|v| namespaced("--nginx-configmap", v))
            .transpose()?;
        let source = match &self.manifests {
            Some(manifests) => Source::Manifests(manifests.clone()),
            None => Source::Kube(KubeSettings {
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
                namespaces: self
                    .watch_namespace
                    .iter()
                    .map(|ns| ns.trim().to_owned())
                    .filter(|ns| !ns.is_empty())
                    .collect(),
                ingress_label_selector: self.ingress_label_selector.clone(),
                nginx_configmap: nginx_configmap.clone(),
                debounce: self.debounce,
                ..KubeSettings::default()
            }),
        };
        let publish_service = self
            .publish_service
            .as_deref()
            .map(|v| namespaced("--publish-service", v))
            .transpose()?;
        let status = StatusConfig {
            publish: StatusSettings {
                publish_service,
                publish_addresses: self
                    .publish_status_address
                    .iter()
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect(),
                refresh: Duration::from_secs(30),
            },
            lease: LeaseSettings::new(
                std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".to_owned()),
                self.election_id.clone(),
                // Built once per process: settings are built once.
                sluice::status::unique_identity(),
            ),
        };
        Ok(Settings {
            source,
            http_addr: self.http_addr,
            admin_addr: self.admin_addr,
            compile: CompileOptions {
                ingress_class: self.ingress_class.clone(),
                default_cert_secret: None,
                allow_cross_namespace: self.allow_cross_namespace,
                nginx_configmap,
                gateway: sluice::gateway::resolve::ResolveSettings {
                    supported_features: sluice::gateway::supported_features(),
                    // The compiler serves a Gateway's `spec.addresses` as
                    // given; the status writer checks them against the
                    // published addresses.
                    addresses_unknown: true,
                    ..Default::default()
                },
            },
            shutdown_grace: self.shutdown_grace,
            connections: ConnectionSettings {
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
                body_read_timeout: self.body_read_timeout,
                http1_engine: match self.http1_engine {
                    Http1EngineMode::Native => Http1Engine::Native,
                    Http1EngineMode::Hyper => Http1Engine::Hyper,
                },
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
            status,
            access_log: self.access_log_settings()?,
            rate_limit_redis: self.rate_limit_redis.clone(),
            tracing: sluice::telemetry::TracingSettings {
                endpoint: self
                    .tracing_otlp_endpoint
                    .clone()
                    .filter(|e| !e.trim().is_empty()),
                sample_ratio: self.tracing_sample_ratio,
                service_name: self.tracing_service_name.clone(),
            },
        })
    }

    /// The access-log flags as settings.
    fn access_log_settings(&self) -> Result<AccessLogSettings> {
        let mut headers = Vec::new();
        for name in &self.access_log_headers {
            let header = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| anyhow::anyhow!("invalid --access-log-header {name:?}"))?;
            headers.push(header);
        }
        Ok(AccessLogSettings {
            target: self.access_log.clone(),
            format: self.access_log_format,
            headers,
            statuses: self.access_log_status.clone(),
            min_duration: self.access_log_min_duration,
        })
    }

    /// `--workers`, or the number of cores.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}
