//! The middleware types sluice knows, by their `spec` section name.

use std::sync::Arc;

use serde_json::Value;

use super::build::{BuildError, Context};
use super::Middleware;

/// Builds the middleware of section `kind` from its `config`.
pub(super) fn build(
    kind: &str,
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    match kind {
        "addPrefix" => super::add_prefix::build(config, cx),
        "basicAuth" => super::basic_auth::build(config, cx),
        "buffering" => super::buffering::build(config, cx),
        "chain" => super::nested::build(config, cx),
        "circuitBreaker" => super::circuit_breaker::build(config, cx),
        "compress" => super::compress::build(config, cx),
        "contentType" => super::content_type::build(config, cx),
        "digestAuth" => super::digest_auth::build(config, cx),
        "errors" => super::errors::build(config, cx),
        "forwardAuth" => super::forward_auth::build(config, cx),
        "headers" => super::headers::build(config, cx),
        "inFlightReq" => super::in_flight::build(config, cx),
        // `ipWhiteList` is the name Traefik v2 used; v3 still reads it.
        "ipAllowList" | "ipWhiteList" => super::ip_allow_list::build(config, cx),
        "rateLimit" => super::rate_limit::build(config, cx),
        "redirectRegex" => super::redirect_regex::build(config, cx),
        "redirectScheme" => super::redirect_scheme::build(config, cx),
        "replacePath" => super::replace_path::build(config, cx),
        "replacePathRegex" => super::replace_path_regex::build(config, cx),
        "retry" => super::retry::build(config, cx),
        "stripPrefix" => super::strip_prefix::build(config, cx),
        "stripPrefixRegex" => super::strip_prefix_regex::build(config, cx),
        gateway if gateway.starts_with("gateway") => super::gateway::build(gateway, config, cx)
            .unwrap_or_else(|| {
                Err(BuildError::UnknownKind(
                    format!("{}/?", cx.namespace()),
                    gateway.to_owned(),
                ))
            }),
        nginx if nginx.starts_with("nginx") => super::nginx::build(nginx, config, cx)
            .unwrap_or_else(|| {
                Err(BuildError::UnknownKind(
                    format!("{}/?", cx.namespace()),
                    nginx.to_owned(),
                ))
            }),
        other => Err(BuildError::UnknownKind(
            format!("{}/?", cx.namespace()),
            other.to_owned(),
        )),
    }
}
