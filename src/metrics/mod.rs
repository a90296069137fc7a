//! Metrics: lock-free per-route counters for the data plane, and the Prometheus
//! registry the admin listener renders.

mod route_stats;

pub use route_stats::RouteStats;
