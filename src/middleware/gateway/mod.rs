//! Middleware types that exist for Gateway API HTTPRoute filters
//! (`gateway*` section names, built only by the Gateway compiler from an
//! HTTPRoute rule, never from `Middleware` objects): the filters'
//! semantics as the Gateway API specification words them, where Traefik's
//! middlewares differ.
//!
//! Each kind's config is the filter's own section of the HTTPRoute, as JSON
//! (camelCase, API-server defaults applied), plus what the compiler knows
//! that the filter does not (the rule's matched prefix, the listener port).

mod cors;
mod headers;
mod mirror;
mod path_modifier;
mod redirect;
mod rewrite;
mod timeout;

use std::sync::Arc;

use serde_json::Value;

use super::build::{BuildError, Context};
use super::Middleware;

/// Builds the Gateway filter middleware `kind`, or `None` when it is not one.
pub(super) fn build(
    kind: &str,
    config: &Value,
    cx: &mut dyn Context,
) -> Option<Result<Arc<dyn Middleware>, BuildError>> {
    Some(match kind {
        "gatewayRequestHeaders" => headers::build_request(config, cx),
        "gatewayResponseHeaders" => headers::build_response(config, cx),
        "gatewayRedirect" => redirect::build(config, cx),
        "gatewayRewrite" => rewrite::build(config, cx),
        "gatewayMirror" => mirror::build(config, cx),
        "gatewayCors" => cors::build(config, cx),
        "gatewayTimeout" => timeout::build(config, cx),
        _ => return None,
    })
}
