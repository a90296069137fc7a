//! Middleware types that exist for ingress-nginx's annotations (`nginx*`
//! section names, built only from annotations, never from `Middleware`
//! objects' documented types): what Traefik's middlewares cannot express
//! with nginx's semantics.

mod access_kinds;
mod client_cert_kind;
mod errors_kinds;
mod http_kinds;
mod traffic_kinds;

use std::sync::Arc;

use serde_json::Value;

use super::build::{BuildError, Context};
use super::Middleware;

/// Builds the ingress-nginx middleware `kind`, or `None` when it is not one.
pub(super) fn build(
    kind: &str,
    config: &Value,
    cx: &mut dyn Context,
) -> Option<Result<Arc<dyn Middleware>, BuildError>> {
    access_kinds::build(kind, config, cx)
        .or_else(|| http_kinds::build(kind, config, cx))
        .or_else(|| traffic_kinds::build(kind, config, cx))
        .or_else(|| client_cert_kind::build(kind, config, cx))
        .or_else(|| errors_kinds::build(kind, config, cx))
}
