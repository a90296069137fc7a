//! ingress-nginx middleware types of the access and limit phases (see the
//! parent module): `nginxAccess` (allow/deny lists and authentication, with
//! `satisfy`), `nginxExternalAuth` (`auth-url`) and `nginxLimit`
//! (`limit-rps`/`limit-rpm`/`limit-connections`).

#[path = "access/combined.rs"]
mod combined;
#[path = "access/external.rs"]
mod external;
#[path = "access/limit.rs"]
mod limit;

use std::sync::Arc;

use serde_json::Value;

use crate::middleware::build::{BuildError, Context};
use crate::middleware::Middleware;

/// Builds `kind` if this module owns it.
pub(super) fn build(
    kind: &str,
    config: &Value,
    cx: &mut dyn Context,
) -> Option<Result<Arc<dyn Middleware>, BuildError>> {
    let build = match kind {
        "nginxAccess" => combined::build,
        "nginxExternalAuth" => external::build,
        "nginxLimit" => limit::build,
        _ => return None,
    };
    Some(build(config, cx))
}
