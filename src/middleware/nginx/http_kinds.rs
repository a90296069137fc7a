//! ingress-nginx middleware types (see the parent module).

use std::sync::Arc;

use serde_json::Value;

use crate::middleware::build::{BuildError, Context};
use crate::middleware::Middleware;

/// Builds `kind` if this module owns it.
pub(super) fn build(
    kind: &str,
    _config: &Value,
    _cx: &mut dyn Context,
) -> Option<Result<Arc<dyn Middleware>, BuildError>> {
    match kind {
        _ => None,
    }
}
