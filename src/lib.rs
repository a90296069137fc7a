//! sluice: a Kubernetes ingress controller and reverse proxy.
//!
//! The pipeline, in ten lines:
//!
//! 1. A provider ([`watch`]) reads Kubernetes objects (from manifest files, later from the API).
//! 2. It keeps them in a store and hands out immutable [`router::Snapshot`]s.
//! 3. The compiler ([`router::compile`]) turns a snapshot into a [`router::RouteTable`]
//!    plus [`router::Diagnostic`]s; it is a pure function and never fails as a whole.
//! 4. The table is published with `arc-swap`; the data plane does one atomic load per request.
//! 5. The data plane ([`proxy`]) accepts HTTP/1.1 and HTTP/2, looks up host then path,
//!    and forwards to a ready endpoint picked by [`upstream`] over pooled connections.
//! 6. State that must outlive a table swap (balancer counters, pools) lives in
//!    [`upstream::Upstreams`], keyed by identity, never inside the table.
//! 7. The [`admin`] listener serves health, readiness, metrics and the JSON API.

pub mod accesslog;
pub mod admin;
pub mod app;
pub mod body;
pub mod check;
pub mod exchange;
pub mod gateway;
pub mod identity;
pub mod metrics;
pub mod middleware;
pub mod proxy;
pub mod router;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod watch;
pub mod whoami;
