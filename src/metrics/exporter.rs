//! The Prometheus registry: control-plane counters plus collectors that read the
//! data plane's lock-free counters at scrape time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::route_stats::DURATION_BUCKETS;
use super::RouteStats;
use super::{HandshakeStats, OpenConnections};
use crate::router::{Registries, RouteTable, Target};
use crate::upstream::{Backend, PoolStats};

/// Control-plane metrics that are updated as things happen (off the request path).
#[derive(Debug, Default, Clone)]
pub struct ControlMetrics {
    /// Routing tables published.
    pub reloads: Counter,
    /// Compiles that failed as a whole (the last good table kept serving).
    pub reload_failures: Counter,
    /// Endpoint-only changes applied without recompiling the routes.
    pub endpoint_updates: Counter,
    /// Unix time of the last successful publish.
    pub last_reload_success: Gauge<f64, AtomicU64>,
    /// Objects currently rejected or reported, by diagnostic kind.
    pub rejected_objects: Family<Vec<(String, String)>, Gauge>,
    /// Diagnostics raised since start, by kind (a parse error counts each time it is seen anew).
    pub rejections: Family<Vec<(String, String)>, Counter>,
}

/// The metrics registry served on `/metrics`.
pub struct Metrics {
    registry: Registry,
    /// The control-plane metrics, to update.
    pub control: ControlMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What the data-plane collector reads at scrape time.
#[derive(Debug, Clone)]
pub struct DataPlaneSources {
    /// The published routing table (route counters hang off its routes).
    pub table: Arc<ArcSwap<RouteTable>>,
    /// Counters for requests that matched no route.
    pub unmatched: Arc<RouteStats>,
    /// Open client connections on the HTTP entrypoint.
    pub open_connections: Arc<OpenConnections>,
    /// Open client connections on the HTTPS entrypoint.
    pub open_tls_connections: Arc<OpenConnections>,
    /// The registries (upstream clients and their pool counters).
    pub registries: Arc<Registries>,
    /// TLS handshakes on the HTTPS entrypoint.
    pub handshakes: Arc<HandshakeStats>,
    /// The provider's own counters (the Kubernetes provider's watch health).
    pub provider: Option<Arc<dyn ProviderCounters>>,
}

/// Counters a provider exposes on `/metrics` (implemented by the Kubernetes
/// provider, so this module need not know it).
pub trait ProviderCounters: Send + Sync + fmt::Debug {
    /// `(metric name, help, value)` of each monotonic counter.
    fn counters(&self) -> Vec<(&'static str, &'static str, u64)>;
}

impl Metrics {
    /// A registry with every sluice metric registered.
    pub fn new(sources: DataPlaneSources) -> Self {
        let mut registry = Registry::default();
        let control = ControlMetrics::default();
        registry.register(
            "sluice_config_reloads",
            "Routing tables published",
            control.reloads.clone(),
        );
        registry.register(
            "sluice_config_reload_failures",
            "Compiles that failed as a whole; the last good table kept serving",
            control.reload_failures.clone(),
        );
        registry.register(
            "sluice_endpoint_updates",
            "Endpoint changes applied to live backends without recompiling the routes",
            control.endpoint_updates.clone(),
        );
        registry.register(
            "sluice_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful publish",
            control.last_reload_success.clone(),
        );
        registry.register(
            "sluice_config_rejected_objects",
            "Objects currently rejected or reported, by diagnostic kind",
            control.rejected_objects.clone(),
        );
        registry.register(
            "sluice_config_rejections",
            "Diagnostics raised since start, by kind",
            control.rejections.clone(),
        );
        registry.register_collector(Box::new(DataPlaneCollector(sources)));
        Self { registry, control }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct DataPlaneCollector(DataPlaneSources);

/// One route's labels and counters.
type Row<'a> = (&'a str, String, &'a RouteStats);

const ENTRYPOINTS: [(&str, bool); 2] = [("web", false), ("websecure", true)];

impl Collector for DataPlaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let table = self.0.table.load();
        let mut rows: Vec<Row<'_>> = table
            .all_routes()
            .map(|r| {
                let service = r
                    .service
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (&*r.name, service, &*r.stats)
            })
            .collect();
        // Defensive: a stats object reachable from two routes is reported once.
        rows.sort_by_key(|row| std::ptr::from_ref(row.2));
        rows.dedup_by(|a, b| std::ptr::eq(a.2, b.2));
        rows.push(("", String::new(), &self.0.unmatched));
        encode_requests(&mut encoder, &rows)?;
        encode_durations(&mut encoder, &rows)?;
        encode_ready_endpoints(&mut encoder, &table)?;
        self.encode_connections(&mut encoder)?;
        self.encode_pools(&mut encoder)?;
        if let Some(provider) = &self.0.provider {
            for (name, help, value) in provider.counters() {
                ConstCounter::new(value).encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Counter,
                )?)?;
            }
        }
        ConstCounter::new(crate::accesslog::dropped_total()).encode(encoder.encode_descriptor(
            "sluice_access_log_dropped",
            "Access-log lines dropped because the writer fell behind",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(crate::middleware::redis_store::redis_fallbacks()).encode(
            encoder.encode_descriptor(
                "sluice_rate_limit_redis_fallbacks",
                "Rate-limited requests decided by the per-instance buckets because Redis did not answer",
                None,
                MetricType::Counter,
            )?,
        )?;
        self.encode_tls(&mut encoder, &table)
    }
}

impl DataPlaneCollector {
    fn encode_connections(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut m = encoder.encode_descriptor(
            "sluice_open_connections",
            "Client connections open now, by entrypoint",
            None,
            MetricType::Gauge,
        )?;
        for (entrypoint, open) in [
            ("web", &self.0.open_connections),
            ("websecure", &self.0.open_tls_connections),
        ] {
            ConstGauge::new(open.get()).encode(m.encode_family(&[("entrypoint", entrypoint)])?)?;
        }
        Ok(())
    }

    fn encode_pools(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let clients = self.0.registries.clients.live();
        let sum = |pick: fn(&PoolStats) -> &AtomicU64| -> u64 {
            clients
                .iter()
                .map(|c| pick(c.stats()).load(Ordering::Relaxed))
                .sum()
        };
        let opened = sum(|p| &p.connections_opened);
        let requests = sum(|p| &p.requests);
        for (name, help, value) in [
            (
                "sluice_upstream_connections_opened",
                "TCP connections opened to backends (reuse ratio: 1 - this / sluice_upstream_requests)",
                opened,
            ),
            ("sluice_upstream_requests", "Requests sent to backends", requests),
        ] {
            ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }

    fn encode_tls(&self, encoder: &mut DescriptorEncoder, table: &RouteTable) -> fmt::Result {
        let h = &self.0.handshakes;
        let mut m = encoder.encode_descriptor(
            "sluice_tls_handshakes",
            "TLS handshakes on the HTTPS entrypoint, by protocol version and outcome",
            None,
            MetricType::Counter,
        )?;
        for (version, outcome, value) in [
            ("TLSv1.2", "ok", &h.ok_tls12),
            ("TLSv1.3", "ok", &h.ok_tls13),
            ("none", "failed", &h.failed),
        ] {
            let labels = [("version", version), ("outcome", outcome)];
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value.load(Ordering::Relaxed), None)?;
        }
        let mut m = encoder.encode_descriptor(
            "sluice_tls_cert_not_after_seconds",
            "Expiry (Unix time) of each served certificate",
            None,
            MetricType::Gauge,
        )?;
        for info in table.certs().infos() {
            let (namespace, secret) = info.secret.clone().unwrap_or_default();
            let labels = [
                ("namespace", namespace.as_str()),
                ("secret", secret.as_str()),
                ("default", if info.is_default { "true" } else { "false" }),
            ];
            ConstGauge::new(info.not_after).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `sluice_service_ready_endpoints{service}`: for every backend Service port a
/// route of the table sends to (`service` as in `sluice_requests_total`), the
/// endpoints requests can go to now. 0 when it has none (the routes answer
/// 503), including a Service or port that does not exist.
fn encode_ready_endpoints(encoder: &mut DescriptorEncoder, table: &RouteTable) -> fmt::Result {
    let mut services: std::collections::BTreeMap<String, usize> = Default::default();
    for route in table.all_routes() {
        let Some(key) = &route.service else {
            continue;
        };
        let ready = match &route.target {
            Target::Backend(backend) => ready_endpoints(backend),
            Target::Unavailable { .. } => 0,
        };
        let entry = services.entry(key.to_string()).or_default();
        *entry = (*entry).max(ready);
    }
    let mut m = encoder.encode_descriptor(
        "sluice_service_ready_endpoints",
        "Ready endpoints of each backend Service port the routes use (0: its routes answer 503)",
        None,
        MetricType::Gauge,
    )?;
    for (service, ready) in &services {
        let ready = i64::try_from(*ready).unwrap_or(i64::MAX);
        ConstGauge::new(ready).encode(m.encode_family(&[("service", service.as_str())])?)?;
    }
    Ok(())
}

/// The endpoints [`Backend::pick`] chooses from now: the ready addresses, or
/// for an ExternalName the addresses its current name resolved to.
fn ready_endpoints(backend: &Backend) -> usize {
    let set = backend.endpoints();
    match &set.external {
        None => set.addrs.len(),
        Some(external) => {
            let resolved = backend.resolved();
            if resolved.target.as_ref() == Some(external) {
                resolved.addrs.len()
            } else {
                0
            }
        }
    }
}

fn encode_requests(encoder: &mut DescriptorEncoder, rows: &[Row<'_>]) -> fmt::Result {
    let mut m = encoder.encode_descriptor(
        "sluice_requests",
        "Requests answered, by entrypoint, route, service, code and method",
        None,
        MetricType::Counter,
    )?;
    for (route, service, stats) in rows {
        for (entrypoint, tls) in ENTRYPOINTS {
            for (method, code, count) in stats.entry(tls).requests() {
                let code = code.map_or_else(|| "other".to_owned(), |c| c.to_string());
                let labels = [
                    ("entrypoint", entrypoint),
                    ("route", route),
                    ("service", service.as_str()),
                    ("code", code.as_str()),
                    ("method", method),
                ];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }
    }
    Ok(())
}

fn encode_durations(encoder: &mut DescriptorEncoder, rows: &[Row<'_>]) -> fmt::Result {
    let mut m = encoder.encode_descriptor(
        "sluice_request_duration_seconds",
        "Time from request head to response head, by entrypoint and route",
        None,
        MetricType::Histogram,
    )?;
    for (route, service, stats) in rows {
        for (entrypoint, tls) in ENTRYPOINTS {
            let (counts, count, sum) = stats.entry(tls).durations();
            if count == 0 {
                continue;
            }
            let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS
                .iter()
                .copied()
                .zip(counts.iter().copied())
                .collect();
            let in_buckets: u64 = counts.iter().sum();
            buckets.push((f64::INFINITY, count.saturating_sub(in_buckets)));
            let labels = [
                ("entrypoint", entrypoint),
                ("route", route),
                ("service", service.as_str()),
            ];
            m.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
    }
    Ok(())
}
