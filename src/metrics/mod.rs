//! Metrics: lock-free per-route counters for the data plane, and the Prometheus
//! registry the admin listener renders.

mod connections;
mod exporter;
mod route_stats;

pub use connections::{HandshakeStats, OpenConnections};
pub use exporter::{ControlMetrics, DataPlaneSources, Metrics, ProviderCounters, CONTENT_TYPE};
pub use route_stats::{EntryStats, LazyEntryStats, RouteStats, Totals};
