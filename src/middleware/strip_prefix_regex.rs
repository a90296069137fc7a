//! `stripPrefixRegex`: not built yet (placeholder while the middleware engine lands).

use std::sync::Arc;

use serde_json::Value;

use super::build::{BuildError, Context};
use super::Middleware;

/// Builds a `stripPrefixRegex` middleware from its config section.
pub(super) fn build(
    _config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    Err(cx.invalid("the stripPrefixRegex middleware is not supported yet".to_owned()))
}
