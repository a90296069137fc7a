//! ingress-nginx middleware types for the HTTP annotations: redirects,
//! `app-root`, `from-to-www-redirect`, CORS, `rewrite-target`, body size
//! limits and the header/return/rewrite directives read from snippets.
//! Each type lives in `http/`.

#[path = "http/body_size.rs"]
mod body_size;
#[path = "http/cors.rs"]
mod cors;
#[path = "http/headers.rs"]
mod headers;
#[path = "http/nginx_return.rs"]
mod nginx_return;
#[path = "http/rewrite.rs"]
mod rewrite;
#[path = "http/vars.rs"]
pub(in crate::middleware::nginx) mod vars;
#[path = "http/www.rs"]
mod www;

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
        "nginxReturn" => nginx_return::build,
        "nginxWwwRedirect" => www::build,
        "nginxCors" => cors::build,
        "nginxRewrite" => rewrite::build,
        "nginxRewriteRedirect" => rewrite::build_redirect,
        "nginxBodySize" => body_size::build,
        "nginxHeaders" => headers::build,
        _ => return None,
    };
    Some(build(config, cx))
}
